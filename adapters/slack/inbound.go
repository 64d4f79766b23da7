package slack

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/slack-go/slack"
	"github.com/slack-go/slack/slackevents"
	"go.uber.org/zap"

	"github.com/easelbot/easel/commands"
	"github.com/easelbot/easel/scheduler"
)

// replayTTL covers Slack's signature window (a request's timestamp may be
// 5 minutes off either way), so an exact replay of a signed request within
// it is recognised.
const replayTTL = 11 * time.Minute

// req is where a request came from and how to answer its user.
type req struct {
	team, channel, thread, user string
	// responseURL is the slash command's or click's response_url ("" for
	// mentions): valid 30 minutes for 5 messages, and usable in channels the
	// bot is not a member of.
	responseURL string
	// files are the files attached to a mention; the first image is the
	// init image of an img2img request.
	files []slack.File
	// locale is the user's Slack locale (users.info), "" until known.
	locale string
}

// verified reads the body and checks Slack's signature; it answers 401 and
// returns nil when the request is not from Slack.
func (a *Adapter) verified(w http.ResponseWriter, r *http.Request) []byte {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 1<<20))
	if err != nil {
		http.Error(w, "body too large", http.StatusRequestEntityTooLarge)
		return nil
	}
	sv, err := slack.NewSecretsVerifier(r.Header, a.cfg.SigningSecret)
	if err == nil {
		_, _ = sv.Write(body)
		err = sv.Ensure()
	}
	if err != nil {
		http.Error(w, "invalid Slack signature", http.StatusUnauthorized)
		return nil
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	return body
}

// unavailableRetry is the Retry-After, in seconds, of an "unavailable"
// answer (the HTTP API's too).
const unavailableRetry = 2

// fresh claims key in Redis within Config.RedisTimeout and reports whether
// it is new, so retried or replayed deliveries never act twice. It returns
// an error only when Redis did not answer in time or could not be reached
// (scheduler.Unavailable): the caller answers "unavailable" and starts
// nothing. Any other Redis error acts (and logs), like firstTime.
func (a *Adapter) fresh(ctx context.Context, key string, ttl time.Duration) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, a.cfg.RedisTimeout)
	defer cancel()
	ok, err := a.claim(ctx, key, ttl)
	switch {
	case err == nil:
		return ok, nil
	case scheduler.Unavailable(err):
		a.log.Warn("slack: redis unavailable", zap.Error(err))
		return false, err
	}
	a.log.Warn("slack: dedupe", zap.Error(err))
	return true, nil
}

// freshBody is fresh for an exact signed body: a replay within the
// signature window is not new.
func (a *Adapter) freshBody(ctx context.Context, body []byte) (bool, error) {
	sum := sha256.Sum256(body)
	return a.fresh(ctx, "body:"+hex.EncodeToString(sum[:]), replayTTL)
}

// unavailable answers 503 with Retry-After: Slack redelivers an Events API
// event after a non-2xx answer and shows a click as failed.
func unavailable(w http.ResponseWriter) {
	w.Header().Set("Retry-After", strconv.Itoa(unavailableRetry))
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusServiceUnavailable)
	_ = json.NewEncoder(w).Encode(map[string]any{"error": map[string]any{
		"code": "unavailable", "message": "the queue store (Redis) is not answering; retry shortly",
		"retry_after_s": unavailableRetry}})
}

// slashUnavailable is the ephemeral reply to a slash command while Redis is
// unavailable (a slash command's payload carries no locale).
const slashUnavailable = "⚠️ Easel cannot reach its job queue right now, so nothing was started. Please try again in a moment."

func (a *Adapter) events(w http.ResponseWriter, r *http.Request) {
	body := a.verified(w, r)
	if body == nil {
		return
	}
	ev, err := slackevents.ParseEvent(json.RawMessage(body), slackevents.OptionNoVerifyToken())
	if err != nil {
		http.Error(w, "bad event", http.StatusBadRequest)
		return
	}
	switch ev.Type {
	case slackevents.URLVerification:
		var ch slackevents.ChallengeResponse
		_ = json.Unmarshal(body, &ch)
		w.Header().Set("Content-Type", "text/plain")
		_, _ = w.Write([]byte(ch.Challenge))
		return
	case slackevents.CallbackEvent:
		var outer struct {
			EventID string `json:"event_id"`
		}
		_ = json.Unmarshal(body, &outer)
		isNew := true
		if outer.EventID != "" {
			var err error
			if isNew, err = a.fresh(r.Context(), "event:"+outer.EventID, time.Hour); err != nil {
				unavailable(w) // Slack redelivers the event later
				return
			}
		}
		w.WriteHeader(http.StatusOK)
		if isNew {
			a.mention(ev) // off this goroutine: the ack is sent
		}
		return
	}
	w.WriteHeader(http.StatusOK)
}

var mention = regexp.MustCompile(`^\s*<@[A-Z0-9]+(\|[^>]*)?>\s*`)

func stripMention(s string) string { return mention.ReplaceAllString(s, "") }

func (a *Adapter) slash(w http.ResponseWriter, r *http.Request) {
	body := a.verified(w, r)
	if body == nil {
		return
	}
	cmd, err := slack.SlashCommandParse(r)
	if err != nil {
		http.Error(w, "bad slash command", http.StatusBadRequest)
		return
	}
	isNew, err := a.freshBody(r.Context(), body)
	if err != nil {
		// 200 with the reason: Slack shows the body of a 200 only (any
		// other status reads "failed with the error http_service_error")
		// and does not retry a command, so the user retries.
		w.Header().Set("Retry-After", strconv.Itoa(unavailableRetry))
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]string{"response_type": "ephemeral", "text": slashUnavailable})
		return
	}
	if !isNew {
		w.WriteHeader(http.StatusOK) // a replay: answered already
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]string{"response_type": "ephemeral", "text": "On it…"})
	a.slashCommand(cmd)
}

func (a *Adapter) slashCommand(cmd slack.SlashCommand) {
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		a.text(req{team: cmd.TeamID, channel: cmd.ChannelID, user: cmd.UserID, responseURL: cmd.ResponseURL}, cmd.Text)
	}()
}

// interactivity handles button clicks: action_id easel:<action>:<job>[:<n>].
func (a *Adapter) interactivity(w http.ResponseWriter, r *http.Request) {
	body := a.verified(w, r)
	if body == nil {
		return
	}
	var cb slack.InteractionCallback
	if err := json.Unmarshal([]byte(r.FormValue("payload")), &cb); err != nil {
		http.Error(w, "bad payload", http.StatusBadRequest)
		return
	}
	isNew, err := a.freshBody(r.Context(), body)
	if err != nil {
		unavailable(w) // Slack marks the click as failed; the user clicks again
		return
	}
	w.WriteHeader(http.StatusOK)
	if isNew {
		a.interaction(cb)
	}
}

// mention handles an app mention (from either mode) off the caller's
// goroutine; the reply goes into the mention's thread. Mentions by bots
// are ignored; an edited mention (Slack sends app_mention again, with
// "edited" and a new event id) starts nothing: the asker is told to mention
// the bot in a new message.
func (a *Adapter) mention(ev slackevents.EventsAPIEvent) {
	m, ok := ev.InnerEvent.Data.(*slackevents.AppMentionEvent)
	if !ok || m.BotID != "" || m.User == "" {
		return
	}
	thread := m.ThreadTimeStamp
	if thread == "" {
		thread = m.TimeStamp
	}
	r := req{team: ev.TeamID, channel: m.Channel, thread: thread, user: m.User, files: m.Files}
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		if m.Edited != nil {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			a.notify(ctx, r, commands.T(a.locale(ctx, r.user), "slack_edited"))
			return
		}
		a.text(r, stripMention(m.Text))
	}()
}

// interaction handles a button click (from either mode) off the caller's
// goroutine.
func (a *Adapter) interaction(cb slack.InteractionCallback) {
	if cb.Type != slack.InteractionTypeBlockActions || len(cb.ActionCallback.BlockActions) == 0 {
		return
	}
	actionID := cb.ActionCallback.BlockActions[0].ActionID
	r := req{team: cb.Team.ID, channel: cb.Channel.ID, user: cb.User.ID, responseURL: cb.ResponseURL}
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		a.click(ctx, r, actionID)
	}()
}

// caller builds the caller, asking users.info (cached) whether they
// administer the workspace only when a command needs it.
func (a *Adapter) caller(ctx context.Context, team, user string, needAdmin bool) commands.Caller {
	c := commands.Caller{Tenant: "slack:" + team, User: user}
	if needAdmin {
		if u, err := a.userInfo(ctx, user); err == nil {
			c.Admin = u.IsAdmin || u.IsOwner || u.IsPrimaryOwner
		} else {
			a.log.Warn("slack: users.info", zap.Error(err))
		}
	}
	return c
}

// text handles a mention or slash command: a prompt with flags, or one of
// queue, cancel, usage, history, help, admin.
func (a *Adapter) text(r req, text string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	say := func(text string) { a.notify(ctx, r, text) }
	fields := strings.Fields(text)
	word := ""
	if len(fields) > 0 {
		word = strings.ToLower(fields[0])
	}
	c := a.caller(ctx, r.team, r.user, word == "admin" || word == "cancel")
	c.Channel = r.channel
	c.NSFW = func(ctx context.Context) (bool, error) { return a.svc.NSFWChannel(ctx, c.Tenant, r.channel) }
	r.locale = a.locale(ctx, r.user)
	switch word {
	case "help", "--help":
		say(commands.FlagHelp)
		return
	case "queue":
		entries, err := a.svc.Queue(ctx, c)
		if err != nil {
			say(userError(err, r.locale))
			return
		}
		var b strings.Builder
		for _, e := range entries {
			status := string(e.Job.Status)
			if m, ok := commands.Message(commands.Lang(r.locale), "status_"+status); ok {
				status = m
			}
			fmt.Fprintf(&b, "`%s` %s", e.Job.ID, status)
			if e.Position > 0 {
				b.WriteString(commands.T(r.locale, "queue_place", e.Position, e.ETA.Round(time.Second)))
			}
			b.WriteString("\n")
		}
		if b.Len() == 0 {
			b.WriteString(commands.T(r.locale, "no_jobs"))
		}
		say(b.String())
		return
	case "cancel":
		entries, err := a.svc.Queue(ctx, commands.Caller{Tenant: c.Tenant, User: r.user})
		if err != nil || len(entries) == 0 {
			say(commands.T(r.locale, "no_jobs_to_cancel"))
			return
		}
		id := entries[len(entries)-1].Job.ID
		if len(fields) > 1 {
			id = fields[1]
		}
		if _, err := a.svc.Cancel(ctx, c, id); err != nil {
			say(userError(err, r.locale))
			return
		}
		say(commands.T(r.locale, "canceled_job", id))
		return
	case "usage":
		u, err := a.svc.Usage(ctx, c)
		if err != nil {
			say(userError(err, r.locale))
			return
		}
		limit := commands.T(r.locale, "no_limit")
		if u.UserLimit > 0 {
			limit = commands.T(r.locale, "usage_left", max(u.UserLimit-u.UserImages, 0), u.UserLimit, u.ResetsIn.Round(time.Minute))
		}
		say(commands.T(r.locale, "usage", u.UserImages, limit))
		return
	case "admin":
		say(a.admin(ctx, c, r.locale, fields[1:]))
		return
	case "history":
		a.history(ctx, r, "", false)
		return
	}
	// Slack's escaping and mentions are undone before the prompt is parsed
	// and validated.
	im, help, err := commands.ParseFlags(Unescape(text))
	if help {
		say(commands.FlagHelp)
		return
	}
	if err != nil {
		say(userError(err, r.locale))
		return
	}
	if err := a.attach(ctx, r, &im); err != nil {
		say(userError(err, r.locale))
		return
	}
	a.submit(ctx, c, r, im)
}

// submit posts the reply that will show the job, then enqueues it. When the
// bot cannot post in the channel, a slash command's job answers through its
// response_url and the user is told how to invite the bot; any other failed
// post is explained to the user and nothing is enqueued.
func (a *Adapter) submit(ctx context.Context, c commands.Caller, r req, im commands.Imagine) {
	o := Origin{Kind: "slack", Team: r.team, Channel: r.channel, ThreadTS: r.thread, User: r.user, Locale: r.locale}
	reply, err := a.post(ctx, r.channel, r.thread, commands.T(r.locale, "slack_submitting"))
	if err != nil && a.cfg.JoinChannels && errorCode(err) == "not_in_channel" {
		if _, _, _, jerr := a.api.JoinConversationContext(ctx, r.channel); jerr != nil {
			a.log.Info("slack: conversations.join", zap.String("channel", r.channel), zap.Error(jerr))
		} else {
			reply, err = a.post(ctx, r.channel, r.thread, commands.T(r.locale, "slack_submitting"))
		}
	}
	if err != nil {
		if r.responseURL == "" || !noAccess(err) {
			a.notify(ctx, r, postFailure(r.locale, err))
			return
		}
		o.ResponseURL = r.responseURL
	} else {
		o.ReplyTS = reply
		if o.ThreadTS == "" {
			o.ThreadTS = reply
		}
	}
	origin, _ := json.Marshal(o)
	if _, _, err := a.svc.Imagine(ctx, c, origin, im, ""); err != nil {
		if o.ReplyTS != "" {
			if a.updateText(ctx, o.Channel, o.ReplyTS, userError(err, r.locale)) == nil {
				return
			}
		}
		a.notify(ctx, r, userError(err, r.locale))
		return
	}
	if o.ResponseURL != "" {
		a.notify(ctx, r, commands.T(r.locale, "slack_working_invite"))
	}
}

// admin runs `admin …` for a workspace admin and answers in the language
// of loc (the asker's Slack locale).
func (a *Adapter) admin(ctx context.Context, c commands.Caller, loc string, args []string) string {
	if !c.Admin {
		return commands.T(loc, "slack_admin_only")
	}
	sub := ""
	if len(args) > 0 {
		sub = args[0]
	}
	var err error
	var msg string
	switch {
	case sub == "policy":
		var v commands.PolicyView
		if v, err = a.svc.Policy(ctx, c); err == nil {
			raw, _ := json.MarshalIndent(v.Effective, "", "  ")
			msg = "```" + string(raw) + "```"
		}
	case sub == "set" && len(args) >= 3:
		value := Unescape(strings.Join(args[2:], " "))
		if _, err = a.svc.SetPolicy(ctx, c, "", args[1], value); err == nil {
			msg = commands.T(loc, "policy_set", args[1], escape(value))
		}
	case sub == "nsfw" && len(args) == 2 && (args[1] == "on" || args[1] == "off"):
		if _, err = a.svc.SetNSFWChannel(ctx, c, c.Channel, args[1] == "on"); err == nil {
			msg = commands.T(loc, "nsfw_channel_on")
			if args[1] == "off" {
				msg = commands.T(loc, "nsfw_channel_off")
			}
		}
	case sub == "defaults":
		msg, err = a.adminDefaults(ctx, c, loc, args[1:])
	case (sub == "reset" || sub == "block" || sub == "unblock") && len(args) == 2:
		u, _, _ := strings.Cut(strings.Trim(args[1], "<@>"), "|")
		if sub == "reset" {
			err = a.svc.ResetUsage(ctx, c, u)
		} else {
			err = a.svc.Block(ctx, c, u, sub == "block")
		}
		msg = commands.T(loc, "slack_admin_done")
	default:
		msg = commands.T(loc, "slack_admin_help")
	}
	if err != nil {
		return userError(err, loc)
	}
	return msg
}

func userError(err error, loc string) string {
	var ve *commands.ValidationError
	var re *scheduler.RefusedError
	var inv *scheduler.InvalidError
	var nsfw *commands.NSFWError
	switch {
	case errors.As(err, &nsfw):
		return commands.T(loc, "slack_nsfw_refused", escape(nsfw.Name))
	case errors.As(err, &ve):
		return commands.T(loc, "slack_invalid", ve.Localized(loc))
	case errors.As(err, &re):
		return commands.T(loc, "refused", re.Error())
	case errors.As(err, &inv):
		// An admin's invalid policy value (`admin set`); its detail is English.
		return "⚠️ " + inv.Error()
	case errors.Is(err, commands.ErrForbidden), errors.Is(err, commands.ErrNotFound), errors.Is(err, commands.ErrFinished):
		return commands.T(loc, "forbidden", err.Error())
	}
	return commands.T(loc, "internal")
}

func (a *Adapter) click(ctx context.Context, r req, actionID string) {
	parts := strings.Split(actionID, ":")
	if len(parts) < 3 || parts[0] != "easel" {
		return
	}
	r.locale = a.locale(ctx, r.user) // a rerun or upscale job keeps it
	if strings.HasPrefix(actionID, historyAction) {
		a.history(ctx, r, strings.TrimPrefix(actionID, historyAction), true)
		return
	}
	c := a.caller(ctx, r.team, r.user, true)
	job, err := a.svc.Job(ctx, c, parts[2])
	if err != nil {
		a.notify(ctx, r, userError(err, r.locale))
		return
	}
	var o Origin
	_ = json.Unmarshal(job.Origin, &o)
	r.thread = o.ThreadTS
	if job.User != r.user && !c.Admin {
		a.notify(ctx, r, commands.T(r.locale, "slack_not_owner"))
		return
	}
	switch parts[1] {
	case "cancel":
		if _, err := a.svc.Cancel(ctx, c, job.ID); err != nil && !errors.Is(err, commands.ErrFinished) {
			a.log.Warn("slack: cancel", zap.Error(err))
			a.notify(ctx, r, userError(err, r.locale))
		}
	case "reroll", "var":
		n := -1
		if parts[1] == "var" {
			var err error
			if len(parts) != 4 {
				return
			}
			if n, err = strconv.Atoi(parts[3]); err != nil || n < 0 {
				a.notify(ctx, r, commands.T(r.locale, "no_such_image"))
				return
			}
		}
		im, err := commands.Rerun(job, n)
		if err != nil {
			a.notify(ctx, r, userError(err, r.locale))
			return
		}
		a.submit(ctx, c, r, im)
	case "up":
		if len(parts) != 4 {
			return
		}
		n, err := strconv.Atoi(parts[3])
		if err != nil || n < 0 {
			a.notify(ctx, r, commands.T(r.locale, "no_such_image"))
			return
		}
		reply, err := a.post(ctx, r.channel, r.thread, commands.T(r.locale, "slack_upscaling_image", n+1))
		if err != nil {
			a.notify(ctx, r, postFailure(r.locale, err)) // no message to show it: nothing enqueued
			return
		}
		origin, _ := json.Marshal(Origin{Kind: "slack", Team: r.team, Channel: r.channel, ThreadTS: r.thread, ReplyTS: reply, User: r.user, Locale: r.locale})
		if _, err := a.svc.Upscale(ctx, c, origin, job.ID, n, ""); err != nil {
			if a.updateText(ctx, r.channel, reply, userError(err, r.locale)) != nil {
				a.notify(ctx, r, userError(err, r.locale))
			}
		}
	}
}
