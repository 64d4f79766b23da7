package slack

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/require"
)

func TestUnescape(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ in, want string }{
		{"salt &amp; pepper", "salt & pepper"},
		{"&lt;3 &gt;_&lt;", "<3 >_<"},
		{"&amp;lt;", "&lt;"},
		{"<@U123> a cat", "a cat"},
		{"a <@U123|bob> cat", "a cat"},
		{"<!here> <!channel> <!subteam^S1|@team> dogs", "dogs"},
		{"in <#C1|art> style", "in #art style"},
		{"in <#C1> style", "in style"},
		{"see <https://ex.am/ple|ex.am/ple>", "see ex.am/ple"},
		{"see <https://ex.am/ple?a=1&amp;b=2>", "see https://ex.am/ple?a=1&b=2"},
		{"<mailto:a@b.c|a@b.c>", "a@b.c"},
		{"<!date^1392734382^{date}|Feb 18, 2014>", "Feb 18, 2014"},
		{"unclosed < bracket", "unclosed < bracket"},
		{"a\n\tb   c", "a b c"},
		{"", ""},
		{"<>", ""},
	} {
		require.Equal(t, tc.want, Unescape(tc.in), tc.in)
	}
}

func FuzzUnescape(f *testing.F) {
	for _, s := range []string{"salt &amp; pepper", "<@U1> hi", "<#C1|x> <https://a.b|c> <!here>", "&lt;&gt;&amp;",
		"<", ">", "<|>", "<#|>", "<!date^1|>", "a <b c", "\xff<@\xfe>"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out := Unescape(s)
		if len(out) > len(s) {
			t.Fatalf("Unescape(%q) = %q grew", s, out)
		}
		if utf8.ValidString(s) && !utf8.ValidString(out) {
			t.Fatalf("Unescape(%q) = %q is not UTF-8", s, out)
		}
		if out != strings.TrimSpace(out) || strings.Contains(out, "  ") {
			t.Fatalf("Unescape(%q) = %q keeps runs of space", s, out)
		}
		if !strings.ContainsAny(s, "<&") && out != strings.Join(strings.Fields(s), " ") {
			t.Fatalf("Unescape(%q) = %q changed plain text", s, out)
		}
	})
}

func TestSectionTextFitsSlack(t *testing.T) {
	t.Parallel()
	for _, prompt := range []string{"short", strings.Repeat("x", 5000), strings.Repeat("&", 2000), strings.Repeat("é<", 1600)} {
		got := sectionText(prompt, strings.Repeat("s", 1200))
		require.LessOrEqual(t, utf8.RuneCountInString(got), maxSectionText)
		require.NotContains(t, strings.ReplaceAll(strings.ReplaceAll(strings.ReplaceAll(got, "&amp;", ""), "&lt;", ""), "&gt;", ""), "&", "no escape cut in half")
	}
	require.Equal(t, "*a &amp; b*\nok", sectionText("a & b", "ok"))
}

// A result shown by file id stays within Slack's 50 blocks however many
// images a policy allows, with room for the section and a note.
func TestImageBlocksWithinSlackLimit(t *testing.T) {
	t.Parallel()
	for _, n := range []int{0, 1, 4, 48, 49, 100} {
		ids := make([]string, n)
		for i := range ids {
			ids[i] = "F" + strings.Repeat("1", i+1)
		}
		got := imageBlocks(ids)
		require.Len(t, got, min(n, 48), "%d images", n)
		require.LessOrEqual(t, len(got)+2, 50)
	}
}
