package slack

import "strings"

// Unescape turns Slack's message formatting
// (https://docs.slack.dev/messaging/formatting-message-text) back into the
// text the user typed, for prompts:
//
//   - &amp; &lt; &gt; become & < >;
//   - user, bot and group mentions (<@U…>, <!subteam^…>) and special
//     mentions (<!here>, <!channel>, <!everyone>) are dropped: they are not
//     words a picture model knows;
//   - channel mentions become "#name" when Slack sent the name
//     (<#C…|name>), else they are dropped;
//   - links become their label when they have one (<https://x.y|x.y> is what
//     Slack makes of a typed "x.y"), else the URL;
//   - <!date^…|fallback> becomes the fallback text;
//   - runs of white space (also those left by dropped mentions) become one
//     space, and the ends are trimmed.
//
// The result is never longer than the input.
func Unescape(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); {
		switch s[i] {
		case '<':
			end := strings.IndexByte(s[i+1:], '>')
			if end < 0 {
				b.WriteString(entities(s[i:]))
				i = len(s)
				continue
			}
			b.WriteString(token(s[i+1 : i+1+end]))
			i += end + 2
		default:
			next := strings.IndexByte(s[i:], '<')
			if next < 0 {
				next = len(s) - i
			}
			b.WriteString(entities(s[i : i+next]))
			i += next
		}
	}
	return strings.Join(strings.Fields(b.String()), " ")
}

// token reduces the inside of one <…> to text.
func token(t string) string {
	body, label, hasLabel := strings.Cut(t, "|")
	switch {
	case strings.HasPrefix(body, "@"):
		return " "
	case strings.HasPrefix(body, "#"):
		if hasLabel && label != "" {
			return "#" + entities(label)
		}
		return " "
	case strings.HasPrefix(body, "!date^"):
		return entities(label)
	case strings.HasPrefix(body, "!"):
		return " "
	case hasLabel && label != "":
		return entities(label)
	}
	return entities(body)
}

// entities undoes the three escapes Slack applies to message text.
func entities(s string) string {
	if !strings.Contains(s, "&") {
		return s
	}
	return entityReplacer.Replace(s)
}

var entityReplacer = strings.NewReplacer("&amp;", "&", "&lt;", "<", "&gt;", ">")

// escape applies Slack's escapes to text we show in mrkdwn.
func escape(s string) string { return escapeReplacer.Replace(s) }

var escapeReplacer = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;")
