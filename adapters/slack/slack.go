package slack

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/slack-go/slack"
	"github.com/slack-go/slack/slackevents"
	"github.com/slack-go/slack/socketmode"
	"go.uber.org/zap"

	"github.com/easelbot/easel/commands"
	"github.com/easelbot/easel/scheduler"
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
	// and preview updates share (Slack's Tier 3 is about 50); final states
	// are never skipped. Shared by every serve instance through Redis.
	// Default 40.
	UpdatesPerMinute int `yaml:"updates_per_minute"`
	// JoinChannels lets the bot join a public channel it is not in when
	// someone uses /imagine there (conversations.join; needs the
	// channels:join scope). Default false: the result comes through the
	// command's response_url and the user is told how to invite the bot.
	JoinChannels bool `yaml:"join_channels"`
	// RedisTimeout is the longest an HTTP-mode request from Slack waits on
	// Redis before it is acknowledged; beyond it, or when Redis cannot be
	// reached, Slack is answered "unavailable" (see Routes). Not set in the
	// slack section: serve copies http.redis_timeout. Default 2s (below
	// Slack's 3-second acknowledgement limit).
	RedisTimeout time.Duration `yaml:"-"`
}

// Origin is where a Slack job's messages go.
type Origin struct {
	Kind     string `json:"kind"` // "slack"
	Team     string `json:"team"`
	Channel  string `json:"channel"`
	ThreadTS string `json:"thread_ts,omitempty"`
	ReplyTS  string `json:"reply_ts,omitempty"`
	User     string `json:"user"`
	// ResponseURL is set when the bot cannot post in the channel (it is not
	// a member): the result goes through the slash command's response_url.
	ResponseURL string `json:"response_url,omitempty"`
	// Locale is the user's Slack locale from users.info ("de-DE"); the
	// job's messages use its catalog.
	Locale string `json:"locale,omitempty"`
}

// userCacheTTL is how long a users.info answer is reused.
const userCacheTTL = 10 * time.Minute

// Adapter is the Slack app.
type Adapter struct {
	cfg    Config
	svc    *commands.Service
	sched  *scheduler.Scheduler
	api    *slack.Client
	http   *http.Client
	log    *zap.Logger
	wg     sync.WaitGroup
	cancel context.CancelFunc

	stateMu   sync.Mutex
	connected bool  // Socket Mode: a connection said hello
	fatal     error // Socket Mode stopped for good (invalid_auth, revoked token)
	stateCh   chan struct{}

	usersMu sync.Mutex
	users   map[string]cachedUser

	previewsMu sync.Mutex
	previews   map[string]*preview // job id → latest preview shown
}

type cachedUser struct {
	user    *slack.User
	expires time.Time
}

// WithDefaults returns c with its zero fields set to their defaults.
func (c Config) WithDefaults() Config {
	if c.EditInterval == 0 {
		c.EditInterval = 1500 * time.Millisecond
	}
	if c.UpdatesPerMinute == 0 {
		c.UpdatesPerMinute = 40
	}
	if c.RedisTimeout == 0 {
		c.RedisTimeout = 2 * time.Second
	}
	return c
}

// New returns the adapter. Commands run through svc; job state, images,
// events and the shared de-duplication records are read from sched.
func New(cfg Config, svc *commands.Service, sched *scheduler.Scheduler, log *zap.Logger) (*Adapter, error) {
	if cfg.BotToken == "" {
		return nil, errors.New("slack.bot_token: is required")
	}
	if cfg.SigningSecret == "" && cfg.AppToken == "" {
		return nil, errors.New("slack.signing_secret: is required to verify requests from Slack (or set slack.app_token for Socket Mode)")
	}
	cfg = cfg.WithDefaults()
	hc := &http.Client{Timeout: 30 * time.Second}
	opts := []slack.Option{slack.OptionHTTPClient(hc)}
	if cfg.AppToken != "" {
		opts = append(opts, slack.OptionAppLevelToken(cfg.AppToken))
	}
	if cfg.APIBase != "" {
		opts = append(opts, slack.OptionAPIURL(cfg.APIBase))
	}
	return &Adapter{cfg: cfg, svc: svc, sched: sched, log: log, http: hc,
		api: slack.New(cfg.BotToken, opts...), stateCh: make(chan struct{}), users: map[string]cachedUser{}, previews: map[string]*preview{}}, nil
}

// Routes are the HTTP endpoints to mount on the API server. Each waits on
// Redis (the replay and retry records) at most Config.RedisTimeout before
// it acknowledges; when Redis does not answer in time or cannot be reached,
// the Events API and interactivity endpoints answer 503 with Retry-After
// (nothing is started; Slack redelivers an event, and shows the click as
// failed), and a slash command answers 200 with an ephemeral "unavailable,
// try again" (Slack shows the body of a 200 only, and does not retry
// commands).
func (a *Adapter) Routes() map[string]http.Handler {
	return map[string]http.Handler{
		"POST /slack/events":        http.HandlerFunc(a.events),
		"POST /slack/interactivity": http.HandlerFunc(a.interactivity),
		"POST /slack/commands":      http.HandlerFunc(a.slash),
	}
}

// Ready reports whether Slack can reach Easel: in Socket Mode, a live
// connection; a fatal Socket Mode error (a revoked or wrong token) keeps it
// not ready with what to fix.
func (a *Adapter) Ready(context.Context) error {
	a.stateMu.Lock()
	defer a.stateMu.Unlock()
	switch {
	case a.fatal != nil:
		return fmt.Errorf("slack socket mode stopped: %w (%s)", a.fatal, socketFix)
	case a.cfg.AppToken != "" && !a.connected:
		return errors.New("slack socket mode not connected")
	}
	return nil
}

// socketFix says what to fix when Socket Mode stops for good; /readyz and
// the log line both carry it (never the token itself).
const socketFix = "check slack.app_token: an xapp- token of this app with connections:write, and slack.bot_token"

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
		// RunContext reconnects by itself on disconnect requests and
		// network errors; it returns only on fatal errors.
		err := sm.RunContext(ctx)
		if ctx.Err() == nil {
			// Logged before the state changes: whoever sees /readyz
			// not ready finds the line in the log already.
			a.log.Error("slack: socket mode stopped; not ready: "+socketFix, zap.Error(err))
			a.setState(false, err)
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
	case socketmode.EventTypeConnected:
		a.setState(true, nil)
	case socketmode.EventTypeDisconnect, socketmode.EventTypeConnecting:
		a.setState(false, nil)
	case socketmode.EventTypeInvalidAuth:
		a.setState(false, errors.New("invalid_auth"))
	case socketmode.EventTypeEventsAPI:
		ev, ok := evt.Data.(slackevents.EventsAPIEvent)
		if !ok {
			_ = sm.Ack(*evt.Request)
			return
		}
		id := ""
		if cb, ok := ev.Data.(*slackevents.EventsAPICallbackEvent); ok {
			id = cb.EventID
		}
		if id != "" {
			isNew, err := a.fresh(ctx, "event:"+id, time.Hour)
			if err != nil {
				return // not acknowledged: Slack redelivers the event
			}
			_ = sm.Ack(*evt.Request)
			if !isNew {
				return
			}
		} else {
			_ = sm.Ack(*evt.Request)
		}
		a.mention(ev)
	case socketmode.EventTypeInteractive:
		_ = sm.Ack(*evt.Request)
		cb, ok := evt.Data.(slack.InteractionCallback)
		if !ok {
			return
		}
		if cb.TriggerID != "" {
			if isNew, err := a.fresh(ctx, "trigger:"+cb.TriggerID, replayTTL); err != nil || !isNew {
				return // a replay, or Redis is unavailable: the click would fail
			}
		}
		a.interaction(cb)
	case socketmode.EventTypeSlashCommand:
		cmd, ok := evt.Data.(slack.SlashCommand)
		if !ok {
			_ = sm.Ack(*evt.Request)
			return
		}
		if cmd.TriggerID != "" {
			isNew, err := a.fresh(ctx, "trigger:"+cmd.TriggerID, replayTTL)
			if err != nil {
				_ = sm.Ack(*evt.Request, map[string]string{"response_type": "ephemeral", "text": slashUnavailable})
				return
			}
			if !isNew {
				_ = sm.Ack(*evt.Request)
				return
			}
		}
		_ = sm.Ack(*evt.Request, map[string]string{"response_type": "ephemeral", "text": "On it…"})
		a.slashCommand(cmd)
	}
}

// setState records the Socket Mode connection state (a fatal error
// sticks) and wakes StateChanged waiters.
func (a *Adapter) setState(connected bool, fatal error) {
	a.stateMu.Lock()
	defer a.stateMu.Unlock()
	a.connected = connected
	if fatal != nil {
		a.fatal = fatal
	}
	close(a.stateCh)
	a.stateCh = make(chan struct{})
}

// StateChanged returns a channel closed at the next change of what Ready
// reports.
func (a *Adapter) StateChanged() <-chan struct{} {
	a.stateMu.Lock()
	defer a.stateMu.Unlock()
	return a.stateCh
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

// firstTime claims key in Redis and reports whether it is new, so retried
// or replayed deliveries never act twice. When Redis cannot answer it acts
// (and logs): dropping a request would be worse than a rare double.
func (a *Adapter) firstTime(ctx context.Context, key string, ttl time.Duration) bool {
	ok, err := a.claim(ctx, key, ttl)
	if err != nil {
		a.log.Warn("slack: dedupe", zap.Error(err))
		return true
	}
	return ok
}

// claim claims key in Redis and reports whether it is new.
func (a *Adapter) claim(ctx context.Context, key string, ttl time.Duration) (bool, error) {
	ok, err := a.sched.Claim(ctx, "slack:"+key, "1", ttl)
	if err != nil {
		return false, fmt.Errorf("slack: dedupe: %w", err)
	}
	return ok, nil
}

// userInfo answers users.info from a cache kept userCacheTTL.
func (a *Adapter) userInfo(ctx context.Context, id string) (*slack.User, error) {
	now := time.Now()
	a.usersMu.Lock()
	c, ok := a.users[id]
	a.usersMu.Unlock()
	if ok && now.Before(c.expires) {
		return c.user, nil
	}
	u, err := a.api.GetUserInfoContext(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("slack: users.info: %w", err)
	}
	a.usersMu.Lock()
	if len(a.users) > 10000 {
		clear(a.users)
	}
	a.users[id] = cachedUser{user: u, expires: now.Add(userCacheTTL)}
	a.usersMu.Unlock()
	return u, nil
}
