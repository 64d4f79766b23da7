package slack

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/rueidis"
	"github.com/slack-go/slack"
	"github.com/slack-go/slack/slackevents"
	"github.com/slack-go/slack/socketmode"
	"go.uber.org/zap"

	"github.com/easelbot/easel/adapters"
	"github.com/easelbot/easel/commands"
	"github.com/easelbot/easel/scheduler"
	"github.com/easelbot/easel/storage"
)

// Config configures the Slack app.
type Config struct {
	// BotToken is the bot token (xoxb-…). Secret: set EASEL_SLACK_BOT_TOKEN.
	// Empty: the Slack adapter is off.
	BotToken string `yaml:"bot_token"`
	// AppToken (xapp-…, with connections:write) turns on Socket Mode: Easel
	// connects out to Slack and needs no public URL. Secret:
	// EASEL_SLACK_APP_TOKEN. Empty: HTTP mode (Events API endpoints).
	AppToken string `yaml:"app_token"`
	// SigningSecret verifies requests from Slack in HTTP mode. Secret:
	// EASEL_SLACK_SIGNING_SECRET. Required without an app token.
	SigningSecret string `yaml:"signing_secret"`
	// APIBase is Slack's Web API URL. Default https://slack.com/api/.
	APIBase string `yaml:"api_base"`
	// EditInterval is the least time between two chat.update calls on one
	// message. Default 1.5s.
	EditInterval time.Duration `yaml:"edit_interval"`
	// UpdatesPerMinute is the chat.update budget per workspace that progress
	// updates share (Slack's Tier 3 is about 50); final states are never
	// skipped. Per process. Default 40.
	UpdatesPerMinute int `yaml:"updates_per_minute"`
}

// Origin is where a Slack job's messages go.
type Origin struct {
	Kind     string `json:"kind"` // "slack"
	Team     string `json:"team"`
	Channel  string `json:"channel"`
	ThreadTS string `json:"thread_ts,omitempty"`
	ReplyTS  string `json:"reply_ts"`
	User     string `json:"user"`
}

// Adapter is the Slack app.
type Adapter struct {
	cfg    Config
	svc    *commands.Service
	sched  *scheduler.Scheduler
	store  *storage.Store
	api    *slack.Client
	log    *zap.Logger
	wg     sync.WaitGroup
	cancel context.CancelFunc

	budgetMu sync.Mutex
	budget   map[string]*bucket // team → progress update budget
	// Verify is the request verifier; tests may swap the clock through it.
	now func() time.Time
}

// New returns the adapter.
func New(cfg Config, svc *commands.Service, log *zap.Logger) (*Adapter, error) {
	if cfg.BotToken == "" {
		return nil, errors.New("slack.bot_token: is required")
	}
	if cfg.SigningSecret == "" && cfg.AppToken == "" {
		return nil, errors.New("slack.signing_secret: is required to verify requests from Slack (or set slack.app_token for Socket Mode)")
	}
	if cfg.EditInterval == 0 {
		cfg.EditInterval = 1500 * time.Millisecond
	}
	if cfg.UpdatesPerMinute == 0 {
		cfg.UpdatesPerMinute = 40
	}
	opts := []slack.Option{slack.OptionHTTPClient(&http.Client{Timeout: 30 * time.Second})}
	if cfg.AppToken != "" {
		opts = append(opts, slack.OptionAppLevelToken(cfg.AppToken))
	}
	if cfg.APIBase != "" {
		opts = append(opts, slack.OptionAPIURL(cfg.APIBase))
	}
	return &Adapter{cfg: cfg, svc: svc, sched: svc.Scheduler(), store: svc.Scheduler().Store(), log: log,
		api: slack.New(cfg.BotToken, opts...), now: time.Now, budget: map[string]*bucket{}}, nil
}

// Routes are the HTTP endpoints to mount on the API server.
func (a *Adapter) Routes() map[string]http.Handler {
	return map[string]http.Handler{
		"POST /slack/events":        http.HandlerFunc(a.events),
		"POST /slack/interactivity": http.HandlerFunc(a.interactivity),
		"POST /slack/commands":      http.HandlerFunc(a.slash),
	}
}

// Start connects Socket Mode when an app token is set; in HTTP mode there
// is nothing to start.
func (a *Adapter) Start(context.Context) error {
	if a.cfg.AppToken == "" {
		return nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	a.cancel = cancel
	sm := socketmode.New(a.api)
	a.wg.Add(2)
	go func() {
		defer a.wg.Done()
		err := sm.RunContext(ctx)
		if ctx.Err() == nil {
			a.log.Error("slack: socket mode stopped", zap.Error(err))
		}
	}()
	go func() {
		defer a.wg.Done()
		for {
			select {
			case <-ctx.Done():
				return
			case evt, ok := <-sm.Events:
				if !ok {
					return
				}
				a.socketEvent(ctx, sm, evt)
			}
		}
	}()
	return nil
}

// socketEvent acknowledges a Socket Mode envelope at once and handles it
// with the same code as HTTP mode.
func (a *Adapter) socketEvent(ctx context.Context, sm *socketmode.Client, evt socketmode.Event) {
	switch evt.Type {
	case socketmode.EventTypeEventsAPI:
		_ = sm.Ack(*evt.Request)
		ev, ok := evt.Data.(slackevents.EventsAPIEvent)
		if !ok {
			return
		}
		id := ""
		if cb, ok := ev.Data.(*slackevents.EventsAPICallbackEvent); ok {
			id = cb.EventID
		}
		if !a.firstTime(ctx, id) {
			return
		}
		a.mention(ev)
	case socketmode.EventTypeInteractive:
		_ = sm.Ack(*evt.Request)
		if cb, ok := evt.Data.(slack.InteractionCallback); ok {
			a.interaction(cb)
		}
	case socketmode.EventTypeSlashCommand:
		cmd, ok := evt.Data.(slack.SlashCommand)
		_ = sm.Ack(*evt.Request, map[string]string{"response_type": "ephemeral", "text": "On it…"})
		if !ok {
			return
		}
		a.wg.Add(1)
		go func() {
			defer a.wg.Done()
			a.text(cmd.TeamID, cmd.ChannelID, "", cmd.UserID, cmd.Text)
		}()
	}
}

// Stop disconnects Socket Mode and waits for work started by requests.
func (a *Adapter) Stop(ctx context.Context) error {
	if a.cancel != nil {
		a.cancel()
	}
	done := make(chan struct{})
	go func() { a.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Kind implements adapters.Renderer.
func (a *Adapter) Kind() string { return "slack" }

// MinInterval implements adapters.Renderer.
func (a *Adapter) MinInterval() time.Duration { return a.cfg.EditInterval }

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

// firstTime records an event id and reports whether it is new, so retried
// deliveries never act twice.
func (a *Adapter) firstTime(ctx context.Context, id string) bool {
	if id == "" {
		return true
	}
	c := a.store.Client
	err := c.Do(ctx, c.B().Set().Key(a.store.Keys.Prefix+":slack:event:"+id).Value("1").Nx().Ex(time.Hour).Build()).Error()
	if rueidis.IsRedisNil(err) {
		return false // seen before: a retry
	}
	return true // new (or Redis unreachable: act rather than drop)
}

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
		w.WriteHeader(http.StatusOK) // ack at once; work happens below
		if !a.firstTime(r.Context(), outer.EventID) {
			return
		}
		a.mention(ev)
		return
	}
	w.WriteHeader(http.StatusOK)
}

var mention = regexp.MustCompile(`^\s*<@[A-Z0-9]+>\s*`)

func stripMention(s string) string { return mention.ReplaceAllString(s, "") }

func (a *Adapter) slash(w http.ResponseWriter, r *http.Request) {
	if a.verified(w, r) == nil {
		return
	}
	cmd, err := slack.SlashCommandParse(r)
	if err != nil {
		http.Error(w, "bad slash command", http.StatusBadRequest)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]string{"response_type": "ephemeral", "text": "On it…"})
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		a.text(cmd.TeamID, cmd.ChannelID, "", cmd.UserID, cmd.Text)
	}()
}

// caller builds the caller, asking users.info whether they administer the
// workspace only when a command needs it.
func (a *Adapter) caller(ctx context.Context, team, user string, needAdmin bool) commands.Caller {
	c := commands.Caller{Tenant: "slack:" + team, User: user}
	if needAdmin {
		if u, err := a.api.GetUserInfoContext(ctx, user); err == nil {
			c.Admin = u.IsAdmin || u.IsOwner || u.IsPrimaryOwner
		}
	}
	return c
}

// say posts in the thread (or channel) and returns the message ts.
func (a *Adapter) say(ctx context.Context, channel, thread, text string, blocks ...slack.Block) string {
	opts := []slack.MsgOption{slack.MsgOptionText(text, false)}
	if thread != "" {
		opts = append(opts, slack.MsgOptionTS(thread))
	}
	if len(blocks) > 0 {
		opts = append(opts, slack.MsgOptionBlocks(blocks...))
	}
	_, ts, err := a.api.PostMessageContext(ctx, channel, opts...)
	if err != nil {
		a.log.Warn("slack: post", zap.Error(err))
	}
	return ts
}

// tell answers one user only (an ephemeral message, in the thread when there
// is one): errors, help and personal information.
func (a *Adapter) tell(ctx context.Context, channel, thread, user, text string) {
	opts := []slack.MsgOption{slack.MsgOptionText(text, false)}
	if thread != "" {
		opts = append(opts, slack.MsgOptionTS(thread))
	}
	if _, err := a.api.PostEphemeralContext(ctx, channel, user, opts...); err != nil {
		a.log.Warn("slack: ephemeral", zap.Error(err))
	}
}

// text handles a mention or slash command: a prompt with flags, or one of
// queue, cancel, usage, help, admin.
func (a *Adapter) text(team, channel, thread, user, text string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	say := func(ctx context.Context, channel, thread, text string) { a.tell(ctx, channel, thread, user, text) }
	fields := strings.Fields(text)
	word := ""
	if len(fields) > 0 {
		word = strings.ToLower(fields[0])
	}
	c := a.caller(ctx, team, user, word == "admin" || word == "cancel")
	switch word {
	case "help", "--help":
		say(ctx, channel, thread, commands.FlagHelp)
		return
	case "queue":
		entries, err := a.svc.Queue(ctx, c)
		if err != nil {
			say(ctx, channel, thread, userError(err))
			return
		}
		var b strings.Builder
		for _, e := range entries {
			fmt.Fprintf(&b, "`%s` %s", e.Job.ID, e.Job.Status)
			if e.Position > 0 {
				fmt.Fprintf(&b, " — #%d in line, ~%s", e.Position, e.ETA.Round(time.Second))
			}
			b.WriteString("\n")
		}
		if b.Len() == 0 {
			b.WriteString("You have no jobs in line.")
		}
		say(ctx, channel, thread, b.String())
		return
	case "cancel":
		entries, err := a.svc.Queue(ctx, commands.Caller{Tenant: c.Tenant, User: user})
		if err != nil || len(entries) == 0 {
			say(ctx, channel, thread, "You have no jobs to cancel.")
			return
		}
		id := entries[len(entries)-1].Job.ID
		if len(fields) > 1 {
			id = fields[1]
		}
		if _, err := a.svc.Cancel(ctx, c, id); err != nil {
			say(ctx, channel, thread, userError(err))
			return
		}
		say(ctx, channel, thread, "Canceled `"+id+"`.")
		return
	case "usage":
		u, err := a.svc.Usage(ctx, c)
		if err != nil {
			say(ctx, channel, thread, userError(err))
			return
		}
		limit := "no daily limit"
		if u.UserLimit > 0 {
			limit = fmt.Sprintf("%d left of %d; resets in %s", max(u.UserLimit-u.UserImages, 0), u.UserLimit, u.ResetsIn.Round(time.Minute))
		}
		say(ctx, channel, thread, fmt.Sprintf("You made %d images today (%s).", u.UserImages, limit))
		return
	case "admin":
		say(ctx, channel, thread, a.admin(ctx, c, fields[1:]))
		return
	}
	im, help, err := commands.ParseFlags(text)
	if help {
		say(ctx, channel, thread, commands.FlagHelp)
		return
	}
	if err != nil {
		say(ctx, channel, thread, userError(err))
		return
	}
	a.submit(ctx, c, channel, thread, user, im)
}

func (a *Adapter) submit(ctx context.Context, c commands.Caller, channel, thread, user string, im commands.Imagine) {
	reply := a.say(ctx, channel, thread, "Submitting…")
	if reply == "" {
		return
	}
	if thread == "" {
		thread = reply
	}
	origin, _ := json.Marshal(Origin{Kind: "slack", Team: strings.TrimPrefix(c.Tenant, "slack:"), Channel: channel,
		ThreadTS: thread, ReplyTS: reply, User: user})
	if _, _, err := a.svc.Imagine(ctx, c, origin, im, ""); err != nil {
		_, _, _, _ = a.api.UpdateMessageContext(ctx, channel, reply, slack.MsgOptionText(userError(err), false))
	}
}

func (a *Adapter) admin(ctx context.Context, c commands.Caller, args []string) string {
	if !c.Admin {
		return "🚫 Only workspace admins and owners can change Easel's settings."
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
		if _, err = a.svc.SetPolicy(ctx, c, "", args[1], strings.Join(args[2:], " ")); err == nil {
			msg = fmt.Sprintf("Set `%s` to `%s`.", args[1], strings.Join(args[2:], " "))
		}
	case (sub == "reset" || sub == "block" || sub == "unblock") && len(args) == 2:
		u := strings.Trim(args[1], "<@>")
		if sub == "reset" {
			err = a.svc.ResetUsage(ctx, c, u)
		} else {
			err = a.svc.Block(ctx, c, u, sub == "block")
		}
		msg = "Done."
	default:
		msg = "Admin commands: `admin policy`, `admin set <field> <value>`, `admin reset @user`, `admin block @user`, `admin unblock @user`."
	}
	if err != nil {
		return userError(err)
	}
	return msg
}

func userError(err error) string {
	var ve *commands.ValidationError
	var re *scheduler.RefusedError
	switch {
	case errors.As(err, &ve):
		return "⚠️ " + ve.Error() + ". Try `--help`."
	case errors.As(err, &re):
		return "⏳ " + re.Error()
	case errors.Is(err, commands.ErrForbidden), errors.Is(err, commands.ErrNotFound), errors.Is(err, commands.ErrFinished):
		return "🚫 " + err.Error()
	}
	return "Something went wrong on our side; please try again."
}

// interactivity handles button clicks: action_id easel:<action>:<job>[:<n>].
func (a *Adapter) interactivity(w http.ResponseWriter, r *http.Request) {
	if a.verified(w, r) == nil {
		return
	}
	var cb slack.InteractionCallback
	if err := json.Unmarshal([]byte(r.FormValue("payload")), &cb); err != nil {
		http.Error(w, "bad payload", http.StatusBadRequest)
		return
	}
	w.WriteHeader(http.StatusOK)
	a.interaction(cb)
}

// mention handles an app mention (from either mode) off the caller's
// goroutine; the reply goes into the mention's thread.
func (a *Adapter) mention(ev slackevents.EventsAPIEvent) {
	m, ok := ev.InnerEvent.Data.(*slackevents.AppMentionEvent)
	if !ok {
		return
	}
	thread := m.ThreadTimeStamp
	if thread == "" {
		thread = m.TimeStamp
	}
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		a.text(ev.TeamID, m.Channel, thread, m.User, stripMention(m.Text))
	}()
}

// interaction handles a button click (from either mode) off the caller's
// goroutine.
func (a *Adapter) interaction(cb slack.InteractionCallback) {
	if cb.Type != slack.InteractionTypeBlockActions || len(cb.ActionCallback.BlockActions) == 0 {
		return
	}
	actionID := cb.ActionCallback.BlockActions[0].ActionID
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		a.click(ctx, cb.Team.ID, cb.Channel.ID, cb.User.ID, actionID)
	}()
}

func (a *Adapter) click(ctx context.Context, team, channel, user, actionID string) {
	parts := strings.Split(actionID, ":")
	if len(parts) < 3 || parts[0] != "easel" {
		return
	}
	c := a.caller(ctx, team, user, true)
	job, err := a.svc.Job(ctx, c, parts[2])
	if err != nil {
		return
	}
	var o Origin
	_ = json.Unmarshal(job.Origin, &o)
	if job.User != user && !c.Admin {
		_, _ = a.api.PostEphemeralContext(ctx, channel, user, slack.MsgOptionText("🚫 Only the person who asked (or a workspace admin) can use these buttons.", false), slack.MsgOptionTS(o.ThreadTS))
		return
	}
	switch parts[1] {
	case "cancel":
		if _, err := a.svc.Cancel(ctx, c, job.ID); err != nil && !errors.Is(err, commands.ErrFinished) {
			a.log.Warn("slack: cancel", zap.Error(err))
		}
	case "reroll", "var":
		n := -1
		if parts[1] == "var" {
			var err error
			if len(parts) != 4 {
				return
			}
			if n, err = strconv.Atoi(parts[3]); err != nil || n < 0 {
				a.tell(ctx, channel, o.ThreadTS, user, "No such image.")
				return
			}
		}
		im, err := commands.Rerun(job, n)
		if err != nil {
			a.tell(ctx, channel, o.ThreadTS, user, userError(err))
			return
		}
		a.submit(ctx, c, channel, o.ThreadTS, user, im)
	case "up":
		if len(parts) == 4 {
			n, _ := strconv.Atoi(parts[3])
			reply := a.say(ctx, channel, o.ThreadTS, fmt.Sprintf("Upscaling image %d…", n+1))
			origin, _ := json.Marshal(Origin{Kind: "slack", Team: team, Channel: channel, ThreadTS: o.ThreadTS, ReplyTS: reply, User: user})
			if _, err := a.svc.Upscale(ctx, c, origin, job.ID, n, ""); err != nil {
				_, _, _, _ = a.api.UpdateMessageContext(ctx, channel, reply, slack.MsgOptionText(userError(err), false))
			}
		}
	}
}

// bucket is a token bucket: UpdatesPerMinute tokens a minute, burst of a
// tenth of a minute's worth.
type bucket struct {
	tokens float64
	last   time.Time
}

// spend takes one progress-update token of team, reporting false when the
// workspace's budget is used up (the update is skipped; a later one or the
// final state follows).
func (a *Adapter) spend(team string) bool {
	a.budgetMu.Lock()
	defer a.budgetMu.Unlock()
	rate := float64(a.cfg.UpdatesPerMinute) / 60
	burst := max(float64(a.cfg.UpdatesPerMinute)/10, 1)
	b := a.budget[team]
	now := a.now()
	if b == nil {
		b = &bucket{tokens: burst, last: now}
		a.budget[team] = b
	}
	b.tokens = min(burst, b.tokens+now.Sub(b.last).Seconds()*rate)
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

func button(label, actionID string) *slack.ButtonBlockElement {
	return slack.NewButtonBlockElement(actionID, actionID, slack.NewTextBlockObject(slack.PlainTextType, label, false, false))
}

// Render implements adapters.Renderer: it updates the thread reply and, at
// the end, uploads the images into the thread.
func (a *Adapter) Render(ctx context.Context, job *scheduler.Job, ev scheduler.Event) error {
	var o Origin
	if err := json.Unmarshal(job.Origin, &o); err != nil {
		return fmt.Errorf("slack origin: %w", err)
	}
	var im commands.Imagine
	_ = json.Unmarshal(job.Payload, &im)
	head := "*" + im.Prompt + "*\n"
	cancelBtn := slack.NewActionBlock("controls", button("Cancel", "easel:cancel:"+job.ID))
	var text string
	var actions *slack.ActionBlock
	switch ev.Type {
	case scheduler.EventQueued:
		text, actions = head+fmt.Sprintf("Queued — #%d in line", ev.Position), cancelBtn
	case scheduler.EventStarted:
		text, actions = head+"Starting on "+ev.Backend+"…", cancelBtn
	case scheduler.EventProgress:
		if !a.spend(o.Team) {
			return nil
		}
		text, actions = head+fmt.Sprintf("%s %d/%d", adapters.ProgressBar(ev.Fraction), ev.Step, ev.Steps), cancelBtn
	case scheduler.EventRetrying:
		text, actions = head+fmt.Sprintf("Retrying in %.0fs: %s", ev.AfterS, ev.Reason), cancelBtn
	case scheduler.EventFailed:
		text = head + "❌ " + ev.Message
	case scheduler.EventCanceled:
		text = head + "Canceled."
	case scheduler.EventSucceeded:
		if err := a.upload(ctx, job, o); err != nil {
			return err
		}
		seeds := make([]string, len(job.Seeds))
		for i, s := range job.Seeds {
			seeds[i] = strconv.FormatInt(s, 10)
		}
		text = head + fmt.Sprintf("Done · %d×%d · %d steps · seed %s", im.Width, im.Height, im.Steps, strings.Join(seeds, ", "))
		els := []slack.BlockElement{button("Reroll", "easel:reroll:"+job.ID)}
		for n := 0; n < min(job.Images, 4); n++ {
			els = append(els, button(fmt.Sprintf("V%d", n+1), fmt.Sprintf("easel:var:%s:%d", job.ID, n)),
				button(fmt.Sprintf("U%d", n+1), fmt.Sprintf("easel:up:%s:%d", job.ID, n)))
		}
		actions = slack.NewActionBlock("result", els...)
	default:
		return nil
	}
	blocks := []slack.Block{slack.NewSectionBlock(slack.NewTextBlockObject(slack.MarkdownType, text, false, false), nil, nil)}
	if actions != nil {
		blocks = append(blocks, actions)
	}
	_, _, _, err := a.api.UpdateMessageContext(ctx, o.Channel, o.ReplyTS, slack.MsgOptionText(text, false), slack.MsgOptionBlocks(blocks...))
	var rl *slack.RateLimitedError
	if errors.As(err, &rl) {
		t := time.NewTimer(rl.RetryAfter)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		_, _, _, err = a.api.UpdateMessageContext(ctx, o.Channel, o.ReplyTS, slack.MsgOptionText(text, false), slack.MsgOptionBlocks(blocks...))
	}
	return err
}

// upload puts the job's images into the thread with the external upload
// flow (files.upload is retired).
func (a *Adapter) upload(ctx context.Context, job *scheduler.Job, o Origin) error {
	var files []slack.FileSummary
	for n := 0; n < job.Images; n++ {
		img, err := a.sched.Image(ctx, job, n)
		if err != nil {
			return fmt.Errorf("slack: image %d: %w", n, err)
		}
		name := fmt.Sprintf("easel-%s-%d.png", job.ID, n+1)
		up, err := a.api.GetUploadURLExternalContext(ctx, slack.GetUploadURLExternalParameters{FileName: name, FileSize: len(img)})
		if err != nil {
			return fmt.Errorf("slack: getUploadURLExternal: %w", err)
		}
		if err := a.api.UploadToURL(ctx, slack.UploadToURLParameters{UploadURL: up.UploadURL, Reader: bytes.NewReader(img), Filename: name}); err != nil {
			return fmt.Errorf("slack: upload: %w", err)
		}
		files = append(files, slack.FileSummary{ID: up.FileID, Title: name})
	}
	_, err := a.api.CompleteUploadExternalContext(ctx, slack.CompleteUploadExternalParameters{Files: files, Channel: o.Channel, ThreadTimestamp: o.ThreadTS})
	if err != nil {
		return fmt.Errorf("slack: completeUploadExternal: %w", err)
	}
	return nil
}
