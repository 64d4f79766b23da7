package discord

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"image/jpeg"
	_ "image/png" // decode PNGs for re-encoding
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/bwmarrin/discordgo"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/easelbot/easel/adapters"
	"github.com/easelbot/easel/commands"
	"github.com/easelbot/easel/scheduler"
	"github.com/easelbot/easel/sdclient"
)

// Config configures the Discord bot.
type Config struct {
	// Token is the bot token. Secret: set EASEL_DISCORD_TOKEN. Empty: the
	// Discord adapter is off.
	Token string `yaml:"token"`
	// APIBase is the Discord API's base URL; REST goes there and the
	// gateway URL comes from its /gateway. Default https://discord.com.
	APIBase string `yaml:"api_base"`
	// DevGuilds registers the commands in these guilds only (instant, for
	// development) instead of globally. Default: global.
	DevGuilds []string `yaml:"dev_guilds"`
	// EditInterval is the least time between two progress edits of one
	// message. Default 1.5s.
	EditInterval time.Duration `yaml:"edit_interval"`
	// MaxUploadBytes is the size above which images are re-encoded as JPEG
	// before upload, when the interaction does not carry Discord's own
	// attachment_size_limit (which then applies). Default 10 MiB (Discord's
	// default attachment limit).
	MaxUploadBytes int `yaml:"max_upload_bytes"`
	// Shards is how many gateway shards this process runs; 0 asks Discord
	// (/gateway/bot) for the recommended count. Default 0.
	Shards int `yaml:"shards"`
	// NSFWInDMs lets NSFW-tagged models and LoRAs (limits.nsfw_models,
	// limits.nsfw_loras) run in direct messages; in servers they run only
	// in age-restricted channels. Default false.
	NSFWInDMs bool `yaml:"nsfw_in_dms"`
}

// Origin is where a Discord job's messages go.
type Origin struct {
	Kind      string `json:"kind"` // "discord"
	AppID     string `json:"app_id"`
	Token     string `json:"token"`
	ChannelID string `json:"channel_id"`
	GuildID   string `json:"guild_id,omitempty"`
	UserID    string `json:"user_id"`
	// CreatedMS is when the interaction was created (from its snowflake);
	// its token dies 15 minutes later.
	CreatedMS int64 `json:"created_ms"`
	// Locale is the user's client language ("de", "en-US"); progress and
	// final messages use its catalog.
	Locale string `json:"locale,omitempty"`
	// UploadLimit is the interaction's attachment_size_limit, in bytes:
	// what Discord accepts in that channel (boosted servers allow more).
	// 0: not sent; Config.MaxUploadBytes applies.
	UploadLimit int64 `json:"upload_limit,omitempty"`
}

// tokenLife is how long an interaction token is used before falling back to
// bot-token messages (Discord's limit is 15 minutes).
const tokenLife = 14 * time.Minute

// Adapter is the Discord bot.
type Adapter struct {
	cfg   Config
	svc   *commands.Service
	sched *scheduler.Scheduler
	log   *zap.Logger
	s     *discordgo.Session // shard 0, and every REST call
	extra []*discordgo.Session
	now   func() time.Time

	// Errors counts Discord API errors by kind (rate_limited, token_expired, other).
	Errors *prometheus.CounterVec

	mu    sync.Mutex
	appID string
	// replies gate the renders of the jobs an interaction submits until
	// its reply (the first render) is acknowledged, by interaction token
	// (a job's Origin carries it). A gate is made before the command runs,
	// so before any job it submits can have an event.
	replies map[string]chan struct{}
	// answerOf is the job each interaction being answered submitted, by
	// interaction id.
	answerOf map[string]string
	// limits are the attachment_size_limit of interactions being answered.
	limits map[string]int64
	// submitted, when set (by tests only), runs after a handler has
	// submitted a job and before the interaction's reply: the window in
	// which the job's events must not yet be rendered.
	submitted func(jobID string)
	wg        sync.WaitGroup
	ready     chan struct{}
}

// WithDefaults returns c with its zero fields set to their defaults.
func (c Config) WithDefaults() Config {
	if c.APIBase == "" {
		c.APIBase = "https://discord.com"
	}
	if c.EditInterval == 0 {
		c.EditInterval = 1500 * time.Millisecond
	}
	if c.MaxUploadBytes == 0 {
		c.MaxUploadBytes = 10 << 20
	}
	return c
}

// New returns the adapter; Start connects. Commands run through svc; job
// state, images and events are read from sched.
func New(cfg Config, svc *commands.Service, sched *scheduler.Scheduler, log *zap.Logger) (*Adapter, error) {
	cfg = cfg.WithDefaults()
	base, err := url.Parse(cfg.APIBase)
	if err != nil || (base.Scheme != "http" && base.Scheme != "https") || base.Host == "" {
		return nil, fmt.Errorf("discord.api_base: must be an http(s) URL (got %q)", cfg.APIBase)
	}
	if cfg.Token == "" {
		return nil, errors.New("discord.token: is required")
	}
	s, err := discordgo.New("Bot " + cfg.Token)
	if err != nil {
		return nil, fmt.Errorf("discord: %w", err)
	}
	a := &Adapter{cfg: cfg, svc: svc, sched: sched, log: log, s: s,
		now: time.Now, ready: make(chan struct{}), replies: map[string]chan struct{}{}, answerOf: map[string]string{},
		limits: map[string]int64{}}
	a.Errors = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "easel_platform_errors_total",
		Help: "Platform API errors by platform and kind (rate_limited counts 429s, which are waited out and retried)."},
		[]string{"platform", "kind"})
	a.configure(s, base)
	s.AddHandler(a.onReady)
	return a, nil
}

func (a *Adapter) configure(s *discordgo.Session, base *url.URL) {
	s.Client = &http.Client{Timeout: 30 * time.Second, Transport: &rewrite{base: base, next: http.DefaultTransport}}
	s.Identify.Intents = discordgo.IntentsGuilds // no privileged intents
	s.ShouldRetryOnRateLimit = true
	s.MaxRestRetries = 5
	s.AddHandler(a.onEvent)
	s.AddHandler(func(_ *discordgo.Session, _ *discordgo.RateLimit) {
		a.Errors.WithLabelValues("discord", "rate_limited").Inc()
	})
}

// rewrite sends requests for discord.com to the configured API base.
type rewrite struct {
	base *url.URL
	next http.RoundTripper
}

func (t *rewrite) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.URL.Host == "discord.com" && t.base.Host != "discord.com" {
		r = r.Clone(r.Context())
		r.URL.Scheme, r.URL.Host, r.Host = t.base.Scheme, t.base.Host, t.base.Host
		r.URL.Path = strings.TrimSuffix(t.base.Path, "/") + r.URL.Path
	}
	return t.next.RoundTrip(r)
}

// Start opens every shard's gateway and waits for shard 0's READY.
func (a *Adapter) Start(ctx context.Context) error {
	shards := a.cfg.Shards
	if shards == 0 {
		gb, err := a.s.GatewayBot(discordgo.WithContext(ctx))
		if err != nil {
			return fmt.Errorf("discord: /gateway/bot: %w", err)
		}
		shards = max(gb.Shards, 1)
	}
	base, _ := url.Parse(a.cfg.APIBase)
	a.s.ShardID, a.s.ShardCount = 0, shards
	for id := 1; id < shards; id++ {
		s, err := discordgo.New("Bot " + a.cfg.Token)
		if err != nil {
			return err
		}
		a.configure(s, base)
		s.ShardID, s.ShardCount = id, shards
		a.extra = append(a.extra, s)
	}
	for _, s := range append([]*discordgo.Session{a.s}, a.extra...) {
		if err := s.Open(); err != nil {
			return fmt.Errorf("discord: open gateway shard %d/%d: %w", s.ShardID, shards, err)
		}
	}
	a.log.Info("discord: connected", zap.Int("shards", shards))
	select {
	case <-a.ready:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Stop closes the gateway and waits for handlers in flight.
func (a *Adapter) Stop(ctx context.Context) error {
	err := a.s.Close()
	for _, s := range a.extra {
		_ = s.Close()
	}
	done := make(chan struct{})
	go func() { a.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
	}
	return err
}

// Ready fails while the gateway connection is down.
func (a *Adapter) Ready(context.Context) error {
	a.s.RLock()
	ready := a.s.DataReady
	a.s.RUnlock()
	if !ready {
		return errors.New("discord gateway not connected")
	}
	return nil
}

// Kind implements adapters.Renderer.
func (a *Adapter) Kind() string { return "discord" }

// MinInterval implements adapters.Renderer.
func (a *Adapter) MinInterval() time.Duration { return a.cfg.EditInterval }

func (a *Adapter) onReady(_ *discordgo.Session, r *discordgo.Ready) {
	a.mu.Lock()
	// A bot's application id is READY's application, else its user's id
	// (they are the same for bots created since 2019).
	switch {
	case r.Application != nil && r.Application.ID != "":
		a.appID = r.Application.ID
	case a.appID == "" && r.User != nil && r.User.ID != "":
		a.appID = r.User.ID
	}
	appID := a.appID
	a.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if appID == "" {
		a.log.Error("discord: READY has neither an application nor a user id: commands not registered")
	} else if err := a.register(ctx, appID); err != nil {
		a.log.Error("discord: register commands", zap.Error(err))
	}
	select {
	case <-a.ready:
	default:
		close(a.ready)
	}
}

// register overwrites the command definitions only when they changed (a
// hash kept in Redis), never on every start.
func (a *Adapter) register(ctx context.Context, appID string) error {
	defs := localize(commandDefs())
	raw, _ := json.Marshal(defs)
	sum := sha256.Sum256(raw)
	hash := hex.EncodeToString(sum[:])
	scopes := a.cfg.DevGuilds
	if len(scopes) == 0 {
		scopes = []string{""}
	}
	for _, guild := range scopes {
		key := "discord:commands:" + appID + ":" + guild
		cur, _, err := a.sched.Recall(ctx, key)
		if err != nil {
			return err
		}
		if cur == hash {
			continue
		}
		if _, err := a.s.ApplicationCommandBulkOverwrite(appID, guild, defs); err != nil {
			return err
		}
		// Kept a month: registering again after that is harmless.
		if err := a.sched.Remember(ctx, key, hash, 30*24*time.Hour); err != nil {
			return err
		}
		a.log.Info("discord: commands registered", zap.String("guild", guild))
	}
	return nil
}

// caller is who sent an interaction, with Manage Server checked from the
// interaction's own permissions (never trusting the command's default).
func caller(i *discordgo.Interaction) (commands.Caller, string) {
	if i.Member != nil && i.Member.User != nil {
		return commands.Caller{Tenant: "discord:" + i.GuildID, User: i.Member.User.ID, Channel: i.ChannelID,
			Admin: i.Member.Permissions&discordgo.PermissionManageGuild != 0}, i.Member.User.ID
	}
	uid := ""
	if i.User != nil {
		uid = i.User.ID
	}
	// In a DM the user is the whole tenant and its admin.
	return commands.Caller{Tenant: "discord:dm:" + uid, User: uid, Admin: true, Channel: i.ChannelID}, uid
}

// onEvent takes interactions from the raw gateway event: discordgo's
// Interaction has no attachment_size_limit, the upload limit Discord
// sends with each interaction (docs: interactions/receiving-and-responding,
// "Interaction Object"), so it is read from the event's JSON.
func (a *Adapter) onEvent(s *discordgo.Session, e *discordgo.Event) {
	ic, ok := e.Struct.(*discordgo.InteractionCreate)
	if e.Type != "INTERACTION_CREATE" || !ok || ic.Interaction == nil {
		return
	}
	var raw struct {
		Limit int64 `json:"attachment_size_limit"`
	}
	if json.Unmarshal(e.RawData, &raw) == nil && raw.Limit > 0 {
		a.mu.Lock()
		a.limits[ic.ID] = raw.Limit
		a.mu.Unlock()
		defer func() {
			a.mu.Lock()
			delete(a.limits, ic.ID)
			a.mu.Unlock()
		}()
	}
	a.onInteraction(s, ic)
}

func (a *Adapter) onInteraction(_ *discordgo.Session, ic *discordgo.InteractionCreate) {
	// Every REST call goes through shard 0's session: REST is stateless.
	a.wg.Add(1)
	defer a.wg.Done()
	i := ic.Interaction
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	var resp *discordgo.InteractionResponse
	switch i.Type {
	case discordgo.InteractionApplicationCommand:
		// A command or a button may submit a job, whose events the relay
		// renders at once in another goroutine: gate them before the
		// submit, and open the gate however the handler ends.
		a.replying(i.Token)
		defer a.replied(i.Token)
		resp = a.command(ctx, i)
	case discordgo.InteractionMessageComponent:
		a.replying(i.Token)
		defer a.replied(i.Token)
		resp = a.component(ctx, i)
	case discordgo.InteractionApplicationCommandAutocomplete:
		resp = a.autocomplete(ctx, i)
	default:
		return
	}
	if resp == nil {
		return // answered already (deferred)
	}
	if err := a.s.InteractionRespond(i, resp); err != nil {
		a.log.Warn("discord: respond", zap.Error(err))
	}
	a.answered(i)
}

// replying gates the renders of jobs whose origin has the interaction
// token until replied(token). A redelivered interaction shares the gate.
func (a *Adapter) replying(token string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if _, ok := a.replies[token]; !ok {
		a.replies[token] = make(chan struct{})
	}
}

// replied opens the gate of the interaction token, if still closed.
func (a *Adapter) replied(token string) {
	a.mu.Lock()
	gate, ok := a.replies[token]
	delete(a.replies, token)
	a.mu.Unlock()
	if ok {
		close(gate)
	}
}

// awaiting notes jobID as the job interactionID submitted, whose reply's
// message id answered remembers.
func (a *Adapter) awaiting(interactionID, jobID string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.answerOf[interactionID] = jobID
}

// afterSubmit runs the test hook submitted, if set.
func (a *Adapter) afterSubmit(jobID string) {
	a.mu.Lock()
	f := a.submitted
	a.mu.Unlock()
	if f != nil {
		f(jobID)
	}
}

// answered opens the gate of interaction i's renders, and remembers the
// reply's message id for the job it submitted (if any), which edits with
// the bot token need once the interaction token has expired.
func (a *Adapter) answered(i *discordgo.Interaction) {
	a.replied(i.Token)
	a.mu.Lock()
	jobID, ok := a.answerOf[i.ID]
	delete(a.answerOf, i.ID)
	a.mu.Unlock()
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	m, err := a.s.InteractionResponse(i, discordgo.WithContext(ctx))
	if err != nil {
		a.log.Warn("discord: reading the reply", zap.Error(err))
		return
	}
	if err := a.sched.Remember(ctx, "discord:msg:"+jobID, m.ID, 48*time.Hour); err != nil {
		a.log.Warn("discord: remembering the reply", zap.Error(err))
	}
}

// awaitReply waits for the reply of the interaction with token, which
// submitted the job, when this process is answering it.
func (a *Adapter) awaitReply(ctx context.Context, token string) error {
	a.mu.Lock()
	gate := a.replies[token]
	a.mu.Unlock()
	if gate == nil {
		return nil
	}
	select {
	case <-gate:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func ephemeral(msg string) *discordgo.InteractionResponse {
	return &discordgo.InteractionResponse{Type: discordgo.InteractionResponseChannelMessageWithSource,
		Data: &discordgo.InteractionResponseData{Content: msg, Flags: discordgo.MessageFlagsEphemeral}}
}

func message(msg string) *discordgo.InteractionResponse {
	return &discordgo.InteractionResponse{Type: discordgo.InteractionResponseChannelMessageWithSource,
		Data: &discordgo.InteractionResponseData{Content: msg}}
}

// userError renders an error for the user: specific for what they can fix,
// generic (and logged) otherwise.
func (a *Adapter) userError(err error, loc discordgo.Locale) *discordgo.InteractionResponse {
	var ve *commands.ValidationError
	var re *scheduler.RefusedError
	var inv *scheduler.InvalidError
	var nsfw *commands.NSFWError
	l := string(loc)
	switch {
	case errors.As(err, &nsfw):
		return ephemeral(commands.T(l, "nsfw_refused", nsfw.Name))
	case errors.As(err, &ve):
		return ephemeral(commands.T(l, "invalid_here", ve.Localized(l)))
	case errors.As(err, &re):
		return ephemeral(commands.T(l, "refused", re.Error()))
	case errors.As(err, &inv):
		return ephemeral("⚠️ " + inv.Error())
	case errors.Is(err, commands.ErrForbidden):
		return ephemeral(commands.T(l, "forbidden", err.Error()))
	case errors.Is(err, commands.ErrNotFound):
		return ephemeral(commands.T(l, "no_such_job"))
	case errors.Is(err, commands.ErrFinished):
		return ephemeral(commands.T(l, "finished"))
	}
	a.log.Error("discord: command", zap.Error(err))
	return ephemeral(commands.T(l, "internal"))
}

func (a *Adapter) origin(i *discordgo.Interaction, uid string) json.RawMessage {
	created := time.Now()
	if t, err := discordgo.SnowflakeTimestamp(i.ID); err == nil {
		created = t
	}
	o, _ := json.Marshal(Origin{Kind: "discord", AppID: i.AppID, Token: i.Token, ChannelID: i.ChannelID,
		GuildID: i.GuildID, UserID: uid, CreatedMS: created.UnixMilli(), Locale: string(i.Locale), UploadLimit: a.uploadLimit(i.ID)})
	return o
}

func (a *Adapter) command(ctx context.Context, i *discordgo.Interaction) *discordgo.InteractionResponse {
	c, uid := caller(i)
	data := i.ApplicationCommandData()
	switch data.Name {
	case "imagine":
		im, err := ParseImagine(FromInteraction(data))
		if err != nil {
			return a.userError(err, i.Locale)
		}
		if utf8.RuneCountInString(im.Model) == maxChoice || utf8.RuneCountInString(im.Sampler) == maxChoice {
			if cat, err := a.svc.Models(ctx); err == nil {
				im.Model = resolveClipped(im.Model, cat.ModelNames())
				im.Sampler = resolveClipped(im.Sampler, cat.Samplers)
			}
		}
		if im.InitImage != "" {
			return a.submitDeferred(c, i, uid, im)
		}
		return a.submit(ctx, c, i, uid, im)
	case "queue":
		entries, err := a.svc.Queue(ctx, c)
		if err != nil {
			return a.userError(err, i.Locale)
		}
		if len(entries) == 0 {
			return ephemeral(commands.T(string(i.Locale), "no_jobs"))
		}
		loc := string(i.Locale)
		var b strings.Builder
		for _, e := range entries {
			fmt.Fprintf(&b, "`%s` %s", e.Job.ID, statusText(loc, e.Job.Status))
			if e.Position > 0 {
				b.WriteString(commands.T(loc, "queue_place", e.Position, e.ETA.Round(time.Second)))
			}
			b.WriteString("\n")
		}
		return ephemeral(b.String())
	case "cancel":
		id := ""
		for _, o := range data.Options {
			if o.Name == "job" {
				id = o.StringValue()
			}
		}
		if id == "" {
			entries, err := a.svc.Queue(ctx, c)
			if err != nil || len(entries) == 0 {
				return ephemeral(commands.T(string(i.Locale), "no_jobs_to_cancel"))
			}
			id = entries[len(entries)-1].Job.ID
		}
		if _, err := a.svc.Cancel(ctx, c, id); err != nil {
			return a.userError(err, i.Locale)
		}
		return ephemeral(commands.T(string(i.Locale), "canceled_job", id))
	case "history":
		return a.history(i, "", false, false)
	case "usage":
		u, err := a.svc.Usage(ctx, c)
		if err != nil {
			return a.userError(err, i.Locale)
		}
		loc := string(i.Locale)
		limit := commands.T(loc, "no_limit")
		if u.UserLimit > 0 {
			limit = commands.T(loc, "usage_left", max(u.UserLimit-u.UserImages, 0), u.UserLimit, u.ResetsIn.Round(time.Minute))
		}
		return ephemeral(commands.T(loc, "usage", u.UserImages, limit))
	case "easel-admin":
		return a.admin(ctx, c, i)
	case "models":
		cat, err := a.svc.Models(ctx)
		if err != nil {
			return a.userError(err, i.Locale)
		}
		if len(cat.Backends) == 0 {
			return ephemeral(commands.T(string(i.Locale), "no_models"))
		}
		return ephemeral(clip(modelsText(string(i.Locale), cat), 1900))
	case "settings":
		arg := map[string]string{}
		for _, o := range data.Options {
			arg[o.Name] = fmt.Sprint(o.Value)
		}
		var st commands.Settings
		var err error
		if f, ok := arg["field"]; ok {
			st, err = a.svc.SetSetting(ctx, c, f, arg["value"])
		} else {
			st, err = a.svc.Settings(ctx, c)
		}
		if err != nil {
			return a.userError(err, i.Locale)
		}
		raw, _ := json.Marshal(st)
		return ephemeral(commands.T(string(i.Locale), "your_defaults", string(raw)))
	}
	return ephemeral(commands.T(string(i.Locale), "unknown_command"))
}

// autocomplete offers the backends' real models and samplers.
func (a *Adapter) autocomplete(ctx context.Context, i *discordgo.Interaction) *discordgo.InteractionResponse {
	var focused *discordgo.ApplicationCommandInteractionDataOption
	for _, o := range i.ApplicationCommandData().Options {
		if o.Focused {
			focused = o
		}
	}
	resp := &discordgo.InteractionResponse{Type: discordgo.InteractionApplicationCommandAutocompleteResult,
		Data: &discordgo.InteractionResponseData{Choices: []*discordgo.ApplicationCommandOptionChoice{}}}
	if focused == nil {
		return resp
	}
	cat, err := a.svc.Models(ctx)
	if err != nil {
		return resp
	}
	list := cat.ModelNames()
	switch focused.Name {
	case "sampler":
		list = cat.Samplers
	case "scheduler":
		list = cat.Schedulers
	case "loras":
		list = cat.LoRAs
	}
	resp.Data.Choices = choices(list, focused.Name, fmt.Sprint(focused.Value))
	return resp
}

func (a *Adapter) admin(ctx context.Context, c commands.Caller, i *discordgo.Interaction) *discordgo.InteractionResponse {
	loc := string(i.Locale)
	data := i.ApplicationCommandData()
	if len(data.Options) == 0 {
		return ephemeral(commands.T(loc, "pick_subcommand"))
	}
	sub := data.Options[0]
	arg := map[string]string{}
	for _, o := range sub.Options {
		arg[o.Name] = fmt.Sprint(o.Value) // a user option's value is the user id
	}
	var err error
	var msg string
	switch sub.Name {
	case "policy":
		var v commands.PolicyView
		if v, err = a.svc.Policy(ctx, c); err == nil {
			raw, _ := json.MarshalIndent(v.Effective, "", "  ")
			msg = "```json\n" + string(raw) + "\n```\n" + commands.T(loc, "policy_settable", strings.Join(v.Settable, ", "))
		}
	case "set":
		if _, err = a.svc.SetPolicy(ctx, c, "", arg["field"], arg["value"]); err == nil {
			msg = commands.T(loc, "policy_set", arg["field"], arg["value"])
		}
	case "reset":
		if err = a.svc.ResetUsage(ctx, c, arg["user"]); err == nil {
			msg = commands.T(loc, "usage_reset", arg["user"])
		}
	case "block", "unblock":
		if err = a.svc.Block(ctx, c, arg["user"], sub.Name == "block"); err == nil {
			msg = commands.T(loc, "user_"+sub.Name+"ed", arg["user"])
		}
	case "defaults":
		msg, err = a.adminDefaults(ctx, c, i, arg)
	case "spoilers":
		on := arg["on"] == "true"
		if _, err = a.svc.SetSpoilers(ctx, c, on); err == nil {
			msg = commands.T(loc, map[bool]string{true: "spoilers_on", false: "spoilers_off"}[on])
		}
	case "usage":
		var top []scheduler.Usage
		if top, err = a.svc.TopUsers(ctx, c, 10); err == nil {
			var b strings.Builder
			b.WriteString(commands.T(loc, "top_members") + "\n")
			for _, u := range top {
				b.WriteString(commands.T(loc, "top_member", u.User, u.Images) + "\n")
			}
			msg = b.String()
		}
	default:
		msg = commands.T(loc, "unknown_subcommand")
	}
	if err != nil {
		return a.userError(err, i.Locale)
	}
	return ephemeral(msg)
}

func (a *Adapter) submit(ctx context.Context, c commands.Caller, i *discordgo.Interaction, uid string, im commands.Imagine) *discordgo.InteractionResponse {
	c.NSFW = a.nsfwAllowed(i)
	res, im, err := a.svc.Imagine(ctx, c, a.origin(i, uid), im, i.ID)
	if err != nil {
		return a.userError(err, i.Locale)
	}
	a.afterSubmit(res.ID)
	if !res.Duplicate {
		a.awaiting(i.ID, res.ID)
	}
	loc := string(i.Locale)
	line := commands.T(loc, "starting")
	if res.Position > 0 {
		line = commands.T(loc, "queued", res.Position)
		if eta, err := a.sched.ETA(ctx, res.Position); err == nil && eta > 0 {
			line += commands.T(loc, "eta", eta.Round(time.Second))
		}
	}
	if res.Relaxed {
		line += commands.T(loc, "relaxed")
	}
	r := message(fmt.Sprintf("**%s**\n%s", clip(im.Prompt, 300), line))
	r.Data.Components = []discordgo.MessageComponent{discordgo.ActionsRow{Components: []discordgo.MessageComponent{
		discordgo.Button{Label: commands.T(loc, "button_cancel"), Style: discordgo.DangerButton, CustomID: "easel:cancel:" + res.ID}}}}
	return r
}

// component handles button clicks: easel:<action>:<job>[:<n>].
func (a *Adapter) component(ctx context.Context, i *discordgo.Interaction) *discordgo.InteractionResponse {
	c, uid := caller(i)
	if id := i.MessageComponentData().CustomID; strings.HasPrefix(id, historyButton) {
		return a.historyClick(i, id)
	}
	parts := strings.Split(i.MessageComponentData().CustomID, ":")
	if len(parts) < 3 || parts[0] != "easel" {
		return ephemeral(commands.T(string(i.Locale), "not_easel_button"))
	}
	action, jobID := parts[1], parts[2]
	job, err := a.svc.Job(ctx, c, jobID)
	if err != nil {
		return a.userError(err, i.Locale)
	}
	if job.User != uid && !c.Admin {
		return ephemeral(commands.T(string(i.Locale), "not_owner"))
	}
	switch action {
	case "cancel":
		if _, err := a.svc.Cancel(ctx, c, jobID); err != nil {
			return a.userError(err, i.Locale)
		}
		return ephemeral(commands.T(string(i.Locale), "canceled"))
	case "up":
		n, err := strconv.Atoi(parts[len(parts)-1])
		if err != nil {
			return ephemeral(commands.T(string(i.Locale), "no_such_image"))
		}
		res, err := a.svc.Upscale(ctx, c, a.origin(i, uid), jobID, n, i.ID)
		if err != nil {
			return a.userError(err, i.Locale)
		}
		a.afterSubmit(res.ID)
		if !res.Duplicate {
			a.awaiting(i.ID, res.ID)
		}
		line := commands.T(string(i.Locale), "upscaling")
		if res.Position > 0 {
			line = commands.T(string(i.Locale), "upscale_queued", res.Position)
		}
		return message(commands.T(string(i.Locale), "upscale_of", n+1, jobID) + "\n" + line)
	case "reroll", "var":
		n := -1
		if action == "var" {
			var err error
			if n, err = strconv.Atoi(parts[len(parts)-1]); err != nil || n < 0 {
				return ephemeral(commands.T(string(i.Locale), "no_such_image"))
			}
		}
		im, err := commands.Rerun(job, n)
		if err != nil {
			return ephemeral(commands.T(string(i.Locale), "no_such_image"))
		}
		return a.submit(ctx, c, i, uid, im)
	}
	return ephemeral(commands.T(string(i.Locale), "unknown_button"))
}

// clip shortens s to at most n runes, the last an ellipsis when cut.
func clip(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}

// maxChoice is Discord's limit on an autocomplete choice's name and value,
// in characters (docs: interactions/application-commands, "Application
// Command Option Choice Structure": name 1-100, string value up to 100).
const maxChoice = 100

// choices are the autocomplete choices for what the user typed in option
// name, from list: at most 25, names and values within maxChoice runes. A
// value cut short is a prefix of the item; resolveClipped maps it back.
func choices(list []string, name, typed string) []*discordgo.ApplicationCommandOptionChoice {
	out := []*discordgo.ApplicationCommandOptionChoice{}
	// loras is a list: complete its last item, keeping the ones before.
	prefix := ""
	if name == "loras" {
		if i := strings.LastIndexByte(typed, ','); i >= 0 {
			prefix, typed = typed[:i+1], typed[i+1:]
		}
		typed, _, _ = strings.Cut(strings.TrimSpace(typed), ":")
	}
	typed = strings.ToLower(typed)
	for _, v := range list {
		if !strings.Contains(strings.ToLower(v), typed) || len(out) == 25 {
			continue
		}
		value := prefix + v
		if name == "loras" {
			value += ":1"
			if utf8.RuneCountInString(value) > maxChoice {
				continue // a cut list would lose its weights
			}
		}
		r := []rune(value)
		out = append(out, &discordgo.ApplicationCommandOptionChoice{Name: clip(value, maxChoice), Value: string(r[:min(len(r), maxChoice)])})
	}
	return out
}

// resolveClipped maps a value autocomplete had to cut at maxChoice runes
// back to the one item of list it is a prefix of; other values pass.
func resolveClipped(v string, list []string) string {
	if utf8.RuneCountInString(v) != maxChoice {
		return v
	}
	found := ""
	for _, item := range list {
		if strings.HasPrefix(item, v) {
			if found != "" {
				return v // ambiguous: let validation name it
			}
			found = item
		}
	}
	if found == "" {
		return v
	}
	return found
}

// discordTime is a time as Discord shows it, in the reader's own time zone.
func discordTime(t time.Time) string { return fmt.Sprintf("<t:%d:T>", t.Unix()) }

// Render implements adapters.Renderer: it edits the interaction's message,
// or, once the token is about to die (or Discord says it did), replies in
// the channel with the bot token.
func (a *Adapter) Render(ctx context.Context, job *scheduler.Job, ev scheduler.Event) error {
	var o Origin
	if err := json.Unmarshal(job.Origin, &o); err != nil {
		return fmt.Errorf("discord origin: %w", err)
	}
	var im commands.Imagine
	_ = json.Unmarshal(job.Payload, &im)
	var up sdclient.UpscaleJob
	_ = json.Unmarshal(job.Payload, &up)
	head := fmt.Sprintf("**%s**\n", clip(im.Prompt, 300))
	loc := o.Locale
	var content string
	var files []*discordgo.File
	var comps []discordgo.MessageComponent
	cancelRow := discordgo.ActionsRow{Components: []discordgo.MessageComponent{
		discordgo.Button{Label: commands.T(loc, "button_cancel"), Style: discordgo.DangerButton, CustomID: "easel:cancel:" + job.ID}}}
	switch ev.Type {
	case scheduler.EventQueued:
		if ev.Seq == 1 {
			return nil // the interaction's reply said so: it is the first render
		}
		content = head + adapters.QueuedLine(loc, ev, discordTime)
		comps = []discordgo.MessageComponent{cancelRow}
	case scheduler.EventPosition:
		// The place in line changed, or why the job waits.
		content = head + adapters.QueuedLine(loc, ev, discordTime)
		comps = []discordgo.MessageComponent{cancelRow}
	case scheduler.EventStarted:
		content = head + commands.T(loc, "starting_on", ev.Backend)
		comps = []discordgo.MessageComponent{cancelRow}
	case scheduler.EventProgress:
		content = head + fmt.Sprintf("%s %d/%d", adapters.ProgressBar(ev.Fraction), ev.Step, ev.Steps)
		if ev.ETASec > 0 {
			content += commands.T(loc, "left", int(ev.ETASec+0.5))
		}
		// Coalescing may have dropped the event that carried the latest
		// preview; the record keeps its name.
		name := ev.Preview
		if name == "" {
			name = job.Preview
		}
		if name != "" {
			if p, err := a.sched.Preview(ctx, job.ID, name); err == nil {
				files = append(files, a.file("preview", p, o.UploadLimit))
			}
		}
		comps = []discordgo.MessageComponent{cancelRow}
	case scheduler.EventRetrying:
		content = head + commands.T(loc, "retrying", ev.AfterS, ev.Reason)
		comps = []discordgo.MessageComponent{cancelRow}
	case scheduler.EventSucceeded:
		content = head + commands.T(loc, "done", im.Width, im.Height, im.Steps, im.CFGScale, commands.SeedsText(loc, job.Seeds, job.Subseeds))
		if up.Kind == sdclient.KindUpscale {
			content = head + commands.T(loc, "upscaled", up.Factor, up.SourceImage+1, up.SourceJob)
		}
		spoiler := a.spoilers(ctx, job.Tenant)
		for n := 0; n < min(job.Images, 10); n++ {
			img, err := a.sched.Image(ctx, job, n)
			if err != nil {
				return fmt.Errorf("discord: image %d: %w", n, err)
			}
			name := fmt.Sprintf("easel-%s-%d", job.ID, n+1)
			if spoiler {
				name = "SPOILER_" + name // Discord blurs attachments named so
			}
			files = append(files, a.file(name, img, o.UploadLimit))
		}
		row := []discordgo.MessageComponent{discordgo.Button{Label: commands.T(loc, "button_reroll"), Emoji: &discordgo.ComponentEmoji{Name: "🔁"},
			Style: discordgo.SecondaryButton, CustomID: "easel:reroll:" + job.ID}}
		for n := 0; n < min(job.Images, 4); n++ {
			row = append(row, discordgo.Button{Label: fmt.Sprintf("V%d", n+1), Style: discordgo.SecondaryButton,
				CustomID: fmt.Sprintf("easel:var:%s:%d", job.ID, n)})
		}
		comps = []discordgo.MessageComponent{discordgo.ActionsRow{Components: row}}
		if job.Images > 0 {
			var ups []discordgo.MessageComponent
			for n := 0; n < min(job.Images, 4); n++ {
				ups = append(ups, discordgo.Button{Label: fmt.Sprintf("U%d", n+1), Style: discordgo.SecondaryButton,
					CustomID: fmt.Sprintf("easel:up:%s:%d", job.ID, n)})
			}
			comps = append(comps, discordgo.ActionsRow{Components: ups})
		}
		if up.Kind == sdclient.KindUpscale {
			comps = []discordgo.MessageComponent{}
		}
	case scheduler.EventFailed:
		content = head + commands.T(loc, "failed", ev.Message)
		comps = []discordgo.MessageComponent{}
	case scheduler.EventCanceled:
		content = head + commands.T(loc, "canceled")
		comps = []discordgo.MessageComponent{}
	default:
		return nil
	}
	// The reply is the message every edit changes: edit only once it is out.
	if err := a.awaitReply(ctx, o.Token); err != nil {
		return err
	}
	// API v10 keeps only the attachments listed, new files by their index.
	atts := make([]*discordgo.MessageAttachment, len(files))
	for n, f := range files {
		atts[n] = &discordgo.MessageAttachment{ID: strconv.Itoa(n), Filename: f.Name}
	}
	if a.now().Sub(time.UnixMilli(o.CreatedMS)) < tokenLife {
		_, err := a.s.WebhookMessageEdit(o.AppID, o.Token, "@original", &discordgo.WebhookEdit{
			Content: &content, Components: &comps, Files: files, Attachments: &atts}, discordgo.WithContext(ctx))
		if err == nil {
			return nil
		}
		if unknownMessage(err) {
			// The reply is not out yet (another process answers it): the
			// relay retries.
			a.Errors.WithLabelValues("discord", "unknown_message").Inc()
			return fmt.Errorf("discord: the reply is not out yet: %w", err)
		}
		if !tokenDead(err) {
			a.Errors.WithLabelValues("discord", "other").Inc()
			return err
		}
		a.Errors.WithLabelValues("discord", "token_expired").Inc()
		for _, f := range files {
			_, _ = f.Reader.(*bytes.Reader).Seek(0, io.SeekStart) // sent once already
		}
	}
	// The token is dead: edit the same message with the bot token when its
	// id is known, else post the final state anew.
	if id, ok, err := a.sched.Recall(ctx, "discord:msg:"+job.ID); err == nil && ok {
		_, err := a.s.ChannelMessageEditComplex(&discordgo.MessageEdit{ID: id, Channel: o.ChannelID, Content: &content,
			Components: &comps, Files: files, Attachments: &atts}, discordgo.WithContext(ctx))
		if err == nil || !ev.Type.Terminal() {
			return err
		}
		a.log.Warn("discord: editing with the bot token; posting instead", zap.Error(err))
		for _, f := range files {
			_, _ = f.Reader.(*bytes.Reader).Seek(0, io.SeekStart)
		}
	}
	if !ev.Type.Terminal() {
		return nil // progress is not worth a new message per update
	}
	_, err := a.s.ChannelMessageSendComplex(o.ChannelID, &discordgo.MessageSend{Content: "<@" + o.UserID + "> " + content,
		Files: files, Components: comps}, discordgo.WithContext(ctx))
	return err
}

// unknownMessage reports Discord's Unknown Message (10008): an edit of
// @original before the interaction's reply exists.
func unknownMessage(err error) bool {
	var re *discordgo.RESTError
	return errors.As(err, &re) && re.Message != nil && re.Message.Code == discordgo.ErrCodeUnknownMessage
}

// halve scales img to half its size (box filter over 2×2 pixels).
func halve(img image.Image) image.Image {
	r := img.Bounds()
	out := image.NewRGBA(image.Rect(0, 0, r.Dx()/2, r.Dy()/2))
	for y := 0; y < r.Dy()/2; y++ {
		for x := 0; x < r.Dx()/2; x++ {
			var sr, sg, sb uint32
			for _, d := range [4][2]int{{0, 0}, {1, 0}, {0, 1}, {1, 1}} {
				cr, cg, cb, _ := img.At(r.Min.X+2*x+d[0], r.Min.Y+2*y+d[1]).RGBA()
				sr, sg, sb = sr+cr, sg+cg, sb+cb
			}
			i := out.PixOffset(x, y)
			out.Pix[i], out.Pix[i+1], out.Pix[i+2], out.Pix[i+3] = uint8(sr>>10), uint8(sg>>10), uint8(sb>>10), 255
		}
	}
	return out
}

// tokenDead reports Discord's "Invalid Webhook Token" (50027) or 401s on a
// webhook edit: the interaction token expired.
func tokenDead(err error) bool {
	var re *discordgo.RESTError
	if errors.As(err, &re) {
		return (re.Message != nil && re.Message.Code == discordgo.ErrCodeInvalidWebhookTokenProvided) ||
			re.Response.StatusCode == http.StatusUnauthorized
	}
	return false
}

// uploadLimit is the attachment_size_limit of interaction id, 0 if unknown.
func (a *Adapter) uploadLimit(id string) int64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.limits[id]
}

// file makes an attachment, re-encoding as JPEG when over the upload limit:
// the interaction's (limit) when Discord sent one, else MaxUploadBytes.
func (a *Adapter) file(name string, b []byte, limit int64) *discordgo.File {
	format := sdclient.SniffFormat(b)
	most := a.cfg.MaxUploadBytes
	if limit > 0 {
		most = int(min(limit, 1<<40))
	}
	if len(b) > most {
		if img, _, err := image.Decode(bytes.NewReader(b)); err == nil {
			// JPEG at falling quality, then at half the size, until it fits.
		fit:
			for img.Bounds().Dx() >= 16 {
				for q := 90; q >= 50; q -= 20 {
					var buf bytes.Buffer
					if jpeg.Encode(&buf, img, &jpeg.Options{Quality: q}) == nil && buf.Len() <= most {
						b, format = buf.Bytes(), "jpeg"
						break fit
					}
				}
				img = halve(img)
			}
		}
	}
	ext := map[string]string{"png": ".png", "jpeg": ".jpg", "webp": ".webp"}[format]
	if ext == "" {
		ext = ".png"
	}
	return &discordgo.File{Name: name + ext, ContentType: "image/" + strings.TrimPrefix(ext, "."), Reader: bytes.NewReader(b)}
}
