package scheduler

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	mrand "math/rand/v2"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/rueidis"
	"go.uber.org/zap"

	"github.com/easelbot/easel/storage"
)

// Config tunes the scheduler. Zero values take the defaults.
type Config struct {
	// Lease is how long a worker may hold a job without renewing before any
	// process may reclaim it. Workers renew every Lease/3. Default 30s.
	Lease time.Duration `yaml:"lease"`
	// MaxAttempts is how many times a job runs before it fails for good.
	// Default 3.
	MaxAttempts int `yaml:"max_attempts"`
	// RetryBackoff is the delay before the first retry; it doubles per
	// attempt up to RetryBackoffMax, with ±20% jitter. Default 2s.
	RetryBackoff time.Duration `yaml:"retry_backoff"`
	// RetryBackoffMax caps the retry delay. Default 1m.
	RetryBackoffMax time.Duration `yaml:"retry_backoff_max"`
	// Retention is how long finished job records and their images are
	// kept (a finished job's own event stream only 30s more; then its
	// terminal event is rebuilt from the record). Default 24h.
	Retention time.Duration `yaml:"retention"`
	// EventsMaxLen bounds the shared events stream (approximate). Default 100000.
	EventsMaxLen int64 `yaml:"events_max_len"`
	// EventsGrace is how long an entry of the shared events stream is kept
	// at least: the maintainer trims older entries once every consumer
	// group (relays, webhooks) has read and acknowledged them
	// (eventtrim.go); EventsMaxLen still caps the stream. A job's history
	// does not depend on it (it is read from the job's record and own
	// stream). Default 5m, at least 1s.
	EventsGrace time.Duration `yaml:"events_grace"`
	// PositionInterval is the least time between two position events of a
	// queued job: position changes are announced by a pass that runs this
	// long after the first change, so a burst of dispatches is one event
	// per job. Default 1s.
	PositionInterval time.Duration `yaml:"position_interval"`
	// Shards spreads tenants over this many hash tags, each with its own
	// ready sets, work stream and slot offers, so a Redis Cluster runs them
	// on different masters (a tenant's jobs all stay in one shard; free
	// worker slots take from every shard, fairly). 1 keeps every key in one
	// hash tag. Changing it needs an empty queue. Default 1, at most 64.
	Shards int `yaml:"shards"`
	// Now is the clock for tests. Default: the scripts, and Go code comparing
	// times other processes wrote (advertisement expiries, the events trim),
	// read Redis's own clock (TIME), so every process agrees on "now"; other
	// Go code uses time.Now.
	Now func() time.Time `yaml:"-"`
}

// WithDefaults returns c with its zero fields set to their defaults, as New
// uses it (for `easel config print`).
func (c Config) WithDefaults() (Config, error) {
	err := c.fill()
	return c, err
}

func (c *Config) fill() error {
	if c.Lease == 0 {
		c.Lease = 30 * time.Second
	}
	if c.MaxAttempts == 0 {
		c.MaxAttempts = 3
	}
	if c.RetryBackoff == 0 {
		c.RetryBackoff = 2 * time.Second
	}
	if c.RetryBackoffMax == 0 {
		c.RetryBackoffMax = time.Minute
	}
	if c.Retention == 0 {
		c.Retention = 24 * time.Hour
	}
	if c.EventsMaxLen == 0 {
		c.EventsMaxLen = 100000
	}
	if c.EventsGrace == 0 {
		c.EventsGrace = 5 * time.Minute
	}
	if c.PositionInterval == 0 {
		c.PositionInterval = time.Second
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Shards == 0 {
		c.Shards = 1
	}
	switch {
	case c.Lease < 300*time.Millisecond:
		return &InvalidError{"scheduler.lease", fmt.Sprintf("must be at least 300ms (got %s)", c.Lease)}
	case c.MaxAttempts < 1 || c.MaxAttempts > 100:
		return &InvalidError{"scheduler.max_attempts", fmt.Sprintf("must be between 1 and 100 (got %d)", c.MaxAttempts)}
	case c.RetryBackoff < 0 || c.RetryBackoffMax < c.RetryBackoff:
		return &InvalidError{"scheduler.retry_backoff", "must be positive and not above retry_backoff_max"}
	case c.EventsGrace < time.Second:
		return &InvalidError{"scheduler.events_grace", fmt.Sprintf("must be at least 1s (got %s)", c.EventsGrace)}
	case c.PositionInterval < 0:
		return &InvalidError{"scheduler.position_interval", fmt.Sprintf("must be positive (got %s)", c.PositionInterval)}
	case c.Shards < 1 || c.Shards > maxShards:
		return &InvalidError{"scheduler.shards", fmt.Sprintf("must be between 1 and %d (got %d)", maxShards, c.Shards)}
	case c.Retention < time.Minute:
		return &InvalidError{"scheduler.retention", fmt.Sprintf("must be at least 1m (got %s)", c.Retention)}
	}
	return nil
}

// Scheduler is the job queue. It is safe for concurrent use; any number of
// processes may share one Redis.
type Scheduler struct {
	store  *storage.Store
	client rueidis.Client
	keys   storage.Keys
	pfx    string
	cfg    Config
	// clock is true when cfg.Now was injected: scripts get it instead of TIME.
	clock  bool
	common []string
	runner *runner
	log    *zap.Logger
	// refusals counts submits turned away, by reason.
	refusals *prometheus.CounterVec
	submits  prometheus.Counter
	// shards are the hash tags tenants are spread over (shards.go); byTag
	// finds one by its tag.
	shards []*shard
	byTag  map[string]*shard
	// doubles counts jobs handed back by a slot that held one already.
	doubles *atomic.Int64
	// policyVersion is when this scheduler started (Redis TIME, µs): the
	// age of the owner's policy this process loaded. A submit changes a
	// tenant's weight and cap only with a policy newer than the one that
	// wrote them (lua/submit.lua).
	policyVersion int64
}

// Group names of the streams' consumer groups.
const (
	WorkersGroup = "workers"
	RelayGroup   = "relay"
)

// New returns a scheduler on store and creates its consumer groups.
func New(ctx context.Context, store *storage.Store, cfg Config, log *zap.Logger) (*Scheduler, error) {
	clock := cfg.Now != nil
	if err := cfg.fill(); err != nil {
		return nil, err
	}
	s := &Scheduler{
		clock:  clock,
		common: commonKeys(store.Keys),
		runner: &runner{client: store.Client},
		store:  store,
		client: store.Client,
		keys:   store.Keys,
		pfx:    store.Keys.ShardPrefix(),
		cfg:    cfg,
		log:    log,
		refusals: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "easel_refusals_total",
			Help: "Submits refused by admission, by reason."}, []string{"reason"}),
		submits: prometheus.NewCounter(prometheus.CounterOpts{Name: "easel_submits_total",
			Help: "Jobs admitted into the queue."}),
		doubles: new(atomic.Int64),
	}
	v, err := s.policyStamp(ctx)
	if err != nil {
		return nil, fmt.Errorf("scheduler: %w", err)
	}
	s.policyVersion = v
	s.initShards(store.Keys, cfg.Shards)
	if err := s.runner.load(ctx); err != nil {
		return nil, fmt.Errorf("scheduler: %w", err)
	}
	for _, sh := range s.shards {
		for stream, group := range map[string]string{sh.keys.Work(): WorkersGroup, sh.keys.Events(): RelayGroup} {
			err := s.client.Do(ctx, s.client.B().XgroupCreate().Key(stream).Group(group).Id("0").Mkstream().Build()).Error()
			if err != nil && !strings.Contains(err.Error(), "BUSYGROUP") {
				return nil, fmt.Errorf("scheduler: create group %s: %w", group, err)
			}
		}
	}
	if err := s.checkShards(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// Config returns the filled configuration.
func (s *Scheduler) Config() Config { return s.cfg }

// Ping checks that Redis answers.
func (s *Scheduler) Ping(ctx context.Context) error { return s.store.Ping(ctx) }

var namePattern = regexp.MustCompile(`^[A-Za-z0-9_.:@-]{1,128}$`)

// NewID returns a new, time-ordered job id.
func NewID(now time.Time) string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return strconv.FormatInt(now.UnixMilli(), 36) + hex.EncodeToString(b[:])
}

// Submit admits a job into its tenant's queue and dispatches it at once when
// a worker slot is free.
func (s *Scheduler) Submit(ctx context.Context, r SubmitRequest) (SubmitResult, error) {
	// admittedID is the id of the job this call created, once it has.
	var admittedID string
	switch {
	case !namePattern.MatchString(r.Tenant):
		return SubmitResult{}, &InvalidError{"tenant", "must be 1-128 characters of letters, digits and _.:@-"}
	case !namePattern.MatchString(r.User):
		return SubmitResult{}, &InvalidError{"user", "must be 1-128 characters of letters, digits and _.:@-"}
	case len(r.IdempotencyKey) > 200:
		return SubmitResult{}, &InvalidError{"idempotency_key", fmt.Sprintf("must be at most 200 bytes (got %d)", len(r.IdempotencyKey))}
	case !json.Valid(r.Payload):
		return SubmitResult{}, &InvalidError{"payload", "must be valid JSON"}
	case math.IsNaN(r.Cost) || math.IsInf(r.Cost, 0) || r.Cost < 0:
		return SubmitResult{}, &InvalidError{"cost", "must be a finite number ≥ 0"}
	case len(r.Model) > maxModelName:
		return SubmitResult{}, &InvalidError{"model", fmt.Sprintf("must be at most %d bytes (got %d)", maxModelName, len(r.Model))}
	}
	if r.Admission != nil && r.Admission.Blocked {
		s.countRefusal(ctx, r.Tenant, RefusedBlocked)
		return SubmitResult{}, &RefusedError{Reason: RefusedBlocked}
	}
	origin := r.Origin
	if len(origin) == 0 {
		origin = json.RawMessage("null")
	}
	cost := r.Cost
	if cost == 0 {
		cost = 1
	}
	call := submitCall{ID: s.newJobID(r.Tenant), Tenant: r.Tenant, User: r.User,
		Request: encodeRequest(r.Payload, origin), Cost: cost, Images: r.Images, MaxAttempts: s.cfg.MaxAttempts,
		IdempotencyKey: r.IdempotencyKey, IdempotencyTTL: s.cfg.Retention, Model: r.Model, PolicyVersion: s.policyVersion}
	if r.Admission != nil {
		call.Admission = *r.Admission
	}
	if len(r.InitImage) > 0 {
		// Written before the job exists, under its new id (no other
		// submit or attempt writes that name), so a worker that takes the
		// job at once finds it; removed again unless this job is admitted.
		ref := initImageRef(call.ID)
		if err := s.store.Blobs.Put(ctx, ref, bytes.NewReader(r.InitImage), int64(len(r.InitImage))); err != nil {
			return SubmitResult{}, fmt.Errorf("submit: store init image: %w", err)
		}
		defer func() {
			if admittedID != call.ID {
				_ = s.store.Blobs.Delete(context.WithoutCancel(ctx), ref)
			}
		}()
	}
	msg, err := s.submit(ctx, call)
	if err != nil {
		return SubmitResult{}, fmt.Errorf("submit: %w", err)
	}
	res, err := msg.ToArray()
	if err != nil {
		return SubmitResult{}, fmt.Errorf("submit: %w", err)
	}
	gotID, _ := res[0].ToString()
	if dup, _ := res[2].AsInt64(); dup == 0 {
		admittedID = gotID
	}
	if gotID == "" {
		reason, _ := res[3].ToString()
		wait, _ := res[4].AsInt64()
		ls, _ := res[5].ToString()
		limit, _ := strconv.ParseFloat(ls, 64)
		s.countRefusal(ctx, r.Tenant, reason)
		return SubmitResult{}, &RefusedError{Reason: reason, Limit: limit, RetryAfter: time.Duration(wait) * time.Millisecond}
	}
	s.submits.Inc()
	pos, _ := res[1].AsInt64()
	dup, _ := res[2].AsInt64()
	lane, _ := res[3].ToString()
	return SubmitResult{ID: gotID, Position: int(pos), Duplicate: dup == 1, Relaxed: strings.HasSuffix(lane, "~relax")}, nil
}

// Get reads a job record.
func (s *Scheduler) Get(ctx context.Context, id string) (*Job, error) {
	if !namePattern.MatchString(id) {
		return nil, ErrNotFound
	}
	jobs, err := s.getMany(ctx, []string{id})
	if err != nil {
		return nil, fmt.Errorf("get job: %w", err)
	}
	if jobs[0] == nil {
		return nil, ErrNotFound
	}
	return jobs[0], nil
}

// getMany reads job records in one round trip; missing ones are nil.
func (s *Scheduler) getMany(ctx context.Context, ids []string) ([]*Job, error) {
	cmds := make(rueidis.Commands, 0, 2*len(ids))
	for _, id := range ids {
		k := s.kid(id)
		cmds = append(cmds, s.client.B().Hgetall().Key(k.Job(id)).Build(),
			s.client.B().Get().Key(k.JobRequest(id)).Build())
	}
	res := s.client.DoMulti(ctx, cmds...)
	jobs := make([]*Job, len(ids))
	for i := range ids {
		m, err := res[2*i].AsStrMap()
		if err != nil {
			return nil, err
		}
		if len(m) == 0 || m["status"] == "" {
			continue
		}
		req, err := res[2*i+1].ToString()
		if err != nil && !rueidis.IsRedisNil(err) {
			return nil, err
		}
		j := parseJob(m)
		j.Payload, j.Origin = decodeRequest(req)
		jobs[i] = j
	}
	return jobs, nil
}

func parseJob(m map[string]string) *Job {
	atoi := func(k string) int { n, _ := strconv.Atoi(m[k]); return n }
	atof := func(k string) float64 { f, _ := strconv.ParseFloat(m[k], 64); return f }
	ms := func(k string) time.Time {
		n, err := strconv.ParseInt(m[k], 10, 64)
		if err != nil || n == 0 {
			return time.Time{}
		}
		return time.UnixMilli(n).UTC()
	}
	unq := func(k string) string {
		var s string
		if json.Unmarshal([]byte(m[k]), &s) != nil {
			return m[k]
		}
		return s
	}
	j := &Job{
		ID:             m["id"],
		Tenant:         m["tenant"],
		User:           m["user"],
		Status:         Status(m["status"]),
		Cost:           atof("cost"),
		Attempt:        atoi("attempt"),
		MaxAttempts:    atoi("max_attempts"),
		CreatedAt:      ms("created_ms"),
		StartedAt:      ms("started_ms"),
		FinishedAt:     ms("finished_ms"),
		Backend:        m["backend"],
		Step:           atoi("step"),
		Steps:          atoi("steps"),
		Fraction:       atof("fraction"),
		Preview:        m["preview"],
		Images:         atoi("images"),
		ImageAttempt:   atoi("image_attempt"),
		Info:           unq("info"),
		ErrorCode:      m["error_code"],
		Error:          unq("error"),
		CanceledBy:     unq("canceled_by"),
		queuedPosition: atoi("qpos"),
		seq:            int64(atoi("seq")),
		startedKept:    m["ss"] == "1",
	}
	if m["info"] == infoInBlob {
		j.Info, j.infoStored = "", true
	}
	if m["seeds"] != "" {
		_ = json.Unmarshal([]byte(m["seeds"]), &j.Seeds)
	}
	if m["subseeds"] != "" {
		_ = json.Unmarshal([]byte(m["subseeds"]), &j.Subseeds)
	}
	return j
}

// Position is the estimated place in line of a queued job (1 = next), or 0
// when it is not waiting.
func (s *Scheduler) Position(ctx context.Context, id string) (int, error) {
	n, err := s.exec(ctx, positionCall{ID: id}).AsInt64()
	if err != nil {
		return 0, fmt.Errorf("position: %w", err)
	}
	return int(n), nil
}

// ETA estimates how long a job at position waits before it starts: the
// rounds of the worker slots (busy and idle) ahead of it times the moving
// average run time. Zero when nothing has finished yet.
func (s *Scheduler) ETA(ctx context.Context, position int) (time.Duration, error) {
	if position <= 0 {
		return 0, nil
	}
	if len(s.shards) > 1 {
		avg, running, idle, err := s.etaSharded(ctx)
		if err != nil {
			return 0, fmt.Errorf("eta: %w", err)
		}
		slots := max(running+idle, 1)
		return time.Duration((position+slots-1)/slots*avg) * time.Millisecond, nil
	}
	// A slot's score is its offer's expiry by Redis's clock.
	now, err := s.redisNow(ctx)
	if err != nil {
		return 0, fmt.Errorf("eta: %w", err)
	}
	c := s.client
	res := c.DoMulti(ctx,
		c.B().Hmget().Key(s.keys.Global()).Field("avg_ms", "running").Build(),
		c.B().Zcount().Key(s.keys.Slots()).Min(strconv.FormatInt(now.UnixMilli(), 10)).Max("+inf").Build())
	v, err := res[0].AsStrSlice()
	if err != nil {
		return 0, fmt.Errorf("eta: %w", err)
	}
	idle, err := res[1].AsInt64()
	if err != nil {
		return 0, fmt.Errorf("eta: %w", err)
	}
	atoi := func(x string) int { n, _ := strconv.Atoi(x); return n }
	avg, slots := atoi(v[0]), max(atoi(v[1])+int(idle), 1)
	rounds := (position + slots - 1) / slots
	return time.Duration(rounds*avg) * time.Millisecond, nil
}

// Cancel cancels a queued, dispatched or running job and returns the status
// it had. A running job's worker is told to interrupt its backend.
func (s *Scheduler) Cancel(ctx context.Context, id, by string) (Status, error) {
	if !namePattern.MatchString(id) {
		return "", ErrNotFound
	}
	byJSON, _ := json.Marshal(by)
	st, err := s.exec(ctx, cancelCall{ID: id, ByJSON: string(byJSON), Channel: s.keys.CancelChannel()}).ToString()
	if err != nil {
		return "", fmt.Errorf("cancel: %w", err)
	}
	switch Status(st) {
	case "missing":
		return "", ErrNotFound
	case StatusSucceeded, StatusFailed, StatusCanceled:
		return Status(st), ErrFinished
	}
	return Status(st), nil
}

// Active lists a tenant's queued, dispatched and running jobs, oldest first.
func (s *Scheduler) Active(ctx context.Context, tenant string) ([]*Job, error) {
	ids, err := s.client.Do(ctx, s.client.B().Zrange().Key(s.kt(tenant).TenantActive(tenant)).Min("0").Max("-1").Build()).AsStrSlice()
	if err != nil {
		return nil, fmt.Errorf("active: %w", err)
	}
	all, err := s.getMany(ctx, ids)
	if err != nil {
		return nil, fmt.Errorf("active: %w", err)
	}
	jobs := make([]*Job, 0, len(ids))
	for _, j := range all {
		if j != nil && !j.Status.Terminal() {
			jobs = append(jobs, j)
		}
	}
	// Ids start with the creation time: id order is age order.
	slices.SortFunc(jobs, func(a, b *Job) int { return strings.Compare(a.ID, b.ID) })
	return jobs, nil
}

// Follow calls fn with each event of job id whose Seq is above afterSeq, in
// order, blocking for new ones. It returns nil after a terminal event,
// ctx.Err() when ctx ends, ErrNotFound for an unknown job, or fn's error.
// It reads the job's history (History) and then the shared events stream,
// as the HTTP API's event fan-out does: a finished job's own stream is
// gone, and its terminal event is rebuilt from the record. An event
// missed between two reads (the shared stream trimmed past it) is found
// again through History.
func (s *Scheduler) Follow(ctx context.Context, id string, afterSeq int64, fn func(Event) error) error {
	last := afterSeq
	// catchUp delivers what History holds past last; ended means nothing
	// more will come.
	catchUp := func() (bool, error) {
		evs, over, err := s.History(ctx, id, last)
		if err != nil {
			return false, err
		}
		for _, ev := range evs {
			if err := fn(ev); err != nil {
				return false, err
			}
			last = ev.Seq
			if ev.Type.Terminal() {
				return true, nil
			}
		}
		return over, nil
	}
	// A finished job needs one read.
	if ended, err := catchUp(); ended || err != nil {
		return err
	}
	// A live one: where the shared stream ends now, then the history again,
	// so no event falls between the two.
	_, pos, err := s.ReadEvents(ctx, "", 0)
	if err != nil {
		return fmt.Errorf("follow: %w", err)
	}
	if ended, err := catchUp(); ended || err != nil {
		return err
	}
	for {
		evs, next, err := s.ReadEvents(ctx, pos, 5*time.Second)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("follow: %w", err)
		}
		if len(evs) == 0 && next == pos {
			// Nothing for 5 s: the job may have ended in a trimmed-away part.
			if ended, err := catchUp(); ended || err != nil {
				return err
			}
			continue
		}
		pos = next
		for _, ev := range evs {
			if ev.JobID != id || ev.Seq <= last {
				continue
			}
			if ev.Seq > last+1 {
				// A gap: the events between are in the history.
				if ended, err := catchUp(); ended || err != nil {
					return err
				}
				if ev.Seq <= last {
					continue
				}
			}
			if err := fn(ev); err != nil {
				return err
			}
			last = ev.Seq
			if ev.Type.Terminal() {
				return nil
			}
		}
	}
}

// DecodeEvent parses one stored event.
func DecodeEvent(raw string) (Event, error) {
	var ev Event
	if err := json.Unmarshal([]byte(raw), &ev); err != nil {
		return ev, fmt.Errorf("decode event: %w", err)
	}
	return ev, nil
}

// backoff is the retry schedule with a fresh jitter.
func (s *Scheduler) backoff() backoff {
	return backoff{Base: s.cfg.RetryBackoff, Max: s.cfg.RetryBackoffMax, Jitter: 0.8 + 0.4*mrand.Float64()}
}

// policyStamp is now in µs by Redis's clock (or the injected one): a
// policy version (policyVersion, Policies.Set).
func (s *Scheduler) policyStamp(ctx context.Context) (int64, error) {
	now, err := s.redisNow(ctx)
	if err != nil {
		return 0, err
	}
	return now.UnixMicro(), nil
}

// redisNow is now by Redis's clock (TIME), or by the injected one in tests
// (Config.Now). Go code that compares a time another process wrote (an
// advertisement's expiry, a stream entry id) with "now" takes it from here,
// not from its own machine's clock: workers run on other hosts, and their
// clocks disagree.
func (s *Scheduler) redisNow(ctx context.Context) (time.Time, error) {
	if s.clock {
		return s.cfg.Now(), nil
	}
	return redisTime(s.client.Do(ctx, s.timeCmd()))
}

// timeCmd is TIME, retried on a broken connection as the client retries
// read-only commands (it does not count TIME as one): a read pipelined
// with it must not fail for it alone while Redis restarts.
func (s *Scheduler) timeCmd() rueidis.Completed {
	return s.client.B().Time().Build().ToRetryable()
}

// timeCmds appends TIME to cmds unless the clock is injected, for
// pipelinedNow to read back from the last reply: "now" by Redis's clock in
// the same round trip as the reads it is compared with.
func (s *Scheduler) timeCmds(cmds rueidis.Commands) rueidis.Commands {
	if s.clock {
		return cmds
	}
	return append(cmds, s.timeCmd())
}

// pipelinedNow is now from the replies to timeCmds' commands.
func (s *Scheduler) pipelinedNow(res []rueidis.RedisResult) (time.Time, error) {
	if s.clock {
		return s.cfg.Now(), nil
	}
	return redisTime(res[len(res)-1])
}

// redisTime reads a TIME reply (seconds, microseconds).
func redisTime(r rueidis.RedisResult) (time.Time, error) {
	t, err := r.AsIntSlice()
	if err == nil && len(t) != 2 {
		err = fmt.Errorf("%d fields", len(t))
	}
	if err != nil {
		return time.Time{}, fmt.Errorf("time: %w", err)
	}
	return time.Unix(t[0], t[1]*1000), nil
}
