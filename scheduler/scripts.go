package scheduler

import (
	"context"
	"strconv"
	"time"

	"github.com/redis/rueidis"

	"github.com/easelbot/easel/storage"
)

// Each script's KEYS and ARGV are built from one struct (see the header of
// lua/<script>.lua for their order). The common KEYS and ARGV of lib.lua come
// first and are added by Scheduler.exec, which also adds the slots'
// capabilities hash as the last KEY (routing, read by every dispatch).

// scriptCall is the arguments of one script.
type scriptCall interface {
	script() string
	// keys are the script's own KEYS, from KEYS[11].
	keys(k storage.Keys) []string
	// argv are the script's own ARGV, from ARGV[6].
	argv() []string
}

// commonKeys are KEYS[1..10] of every script, in lib.lua's order.
func commonKeys(k storage.Keys) []string {
	return []string{k.Global(), k.Ready(), k.Relax(), k.Blocked(), k.Work(), k.Delayed(), k.Dead(), k.Events(),
		k.Wake(), k.Slots()}
}

// noClock is a call whose script may read no clock (it saves a TIME).
type noClock interface{ noClock() bool }

// A renewal reads no clock; a hand-back dispatches (offers expire, events
// carry a time): it needs one.
func (renewCall) noClock() bool    { return true }
func (positionCall) noClock() bool { return true }

// fromSlot is a call made by a worker slot (ARGV[5]): a job dispatched to
// that slot comes back in the reply.
type fromSlot interface {
	slotMember() string
}

// exec runs a script with the common KEYS and ARGV followed by its own, on
// the call's shard (shards.go: route).
func (s *Scheduler) exec(ctx context.Context, c scriptCall) rueidis.RedisResult {
	keys, argv := s.args(s.route(c), c)
	return s.runner.call(ctx, c.script(), keys, argv)
}

// args are a call's KEYS and ARGV on shard sh.
func (s *Scheduler) args(sh *shard, c scriptCall) ([]string, []string) {
	own := c.keys(sh.keys)
	keys := make([]string, 0, len(sh.common)+len(own)+1)
	keys = append(append(append(keys, sh.common...), own...), sh.keys.SlotCaps())
	now := ""
	if nc, ok := c.(noClock); ok && nc.noClock() {
		now = "-"
	} else if s.clock {
		now = strconv.FormatInt(s.cfg.Now().UnixMilli(), 10)
	}
	self := ""
	if f, ok := c.(fromSlot); ok {
		self = f.slotMember()
	}
	extra := c.argv()
	argv := make([]string, 0, 5+len(extra))
	argv = append(argv, sh.pfx, now, strconv.FormatInt(s.cfg.Retention.Milliseconds(), 10),
		strconv.FormatInt(s.cfg.EventsMaxLen, 10), self)
	return keys, append(argv, extra...)
}

func itoa(n int) string            { return strconv.Itoa(n) }
func ftoa(f float64) string        { return strconv.FormatFloat(f, 'g', -1, 64) }
func mstoa(d time.Duration) string { return strconv.FormatInt(d.Milliseconds(), 10) }
func btoa(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

// submitCall admits and enqueues a job (lua/submit.lua).
type submitCall struct {
	ID, Tenant, User string
	// Request is the payload and origin (encodeRequest).
	Request        string
	Cost           float64
	Images         int
	MaxAttempts    int
	IdempotencyKey string
	IdempotencyTTL time.Duration
	Admission      Admission
	// Model is the job's checkpoint (routing), "" for any backend.
	Model string
	// PolicyVersion is how recent the policy behind Admission's weight and
	// cap is (Scheduler.policyVersion), 0 for unknown.
	PolicyVersion int64
}

func (submitCall) script() string { return scriptSubmit }

func (c submitCall) keys(k storage.Keys) []string {
	return []string{k.Job(c.ID), k.JobRequest(c.ID), k.Idempotency(c.Tenant, c.IdempotencyKey),
		k.RateLimit(c.Tenant, c.User), k.RateLimit(c.Tenant, ""), k.Quota(c.Tenant),
		k.Tenant(c.Tenant), k.TenantActive(c.Tenant)}
}

func (c submitCall) argv() []string {
	a := c.Admission
	w, uw := a.TenantWeight, a.UserWeight
	if w <= 0 {
		w = 1
	}
	if uw <= 0 {
		uw = 1
	}
	overflow := "reject"
	if a.Relax {
		overflow = "relax"
	}
	return []string{c.ID, c.Tenant, c.User, c.Request, ftoa(c.Cost), itoa(c.Images), itoa(c.MaxAttempts),
		c.IdempotencyKey, mstoa(c.IdempotencyTTL), ftoa(w), ftoa(uw), itoa(a.MaxRunning),
		ftoa(a.UserRate.PerMinute), itoa(a.UserRate.Burst), ftoa(a.TenantRate.PerMinute), itoa(a.TenantRate.Burst),
		itoa(a.UserDailyImages), itoa(a.TenantDailyImages), itoa(a.MaxPendingPerUser), overflow, ModelKey(c.Model),
		strconv.FormatInt(c.PolicyVersion, 10)}
}

// slotCall offers a worker slot (lua/offer.lua).
type slotCall struct {
	Member string
	// TTL is how long the offer lasts unless renewed.
	TTL time.Duration
	// After is the first work entry id the slot has not seen delivered: a
	// pending entry from there on means a delivery on its way, and the slot
	// is not offered. "" skips the check.
	After string
}

func (slotCall) script() string             { return scriptOffer }
func (slotCall) keys(storage.Keys) []string { return nil }
func (c slotCall) slotMember() string       { return c.Member }
func (c slotCall) argv() []string           { return []string{mstoa(c.TTL), c.After} }

// withdrawCall takes back a worker slot's offer (lua/withdraw.lua).
type withdrawCall struct{ Member string }

func (withdrawCall) script() string             { return scriptWithdraw }
func (withdrawCall) keys(storage.Keys) []string { return nil }
func (c withdrawCall) slotMember() string       { return c.Member }
func (withdrawCall) argv() []string             { return nil }

// renewCall extends an attempt's lease (lua/renew.lua).
type renewCall struct {
	ID       string
	Attempt  int
	Consumer string
}

func (renewCall) script() string                 { return scriptRenew }
func (c renewCall) keys(k storage.Keys) []string { return []string{k.Job(c.ID)} }
func (c renewCall) argv() []string               { return []string{c.ID, itoa(c.Attempt), c.Consumer} }

// handBackCall returns a live attempt to its user's queue
// (lua/handback.lua).
type handBackCall struct {
	ID      string
	Attempt int
}

func (handBackCall) script() string                 { return scriptHandBack }
func (c handBackCall) keys(k storage.Keys) []string { return []string{k.Job(c.ID)} }
func (c handBackCall) argv() []string               { return []string{c.ID, itoa(c.Attempt)} }

// progressCall records progress (lua/progress.lua).
type progressCall struct {
	ID                 string
	Attempt, Step, N   int
	Fraction           float64
	EventBody, Preview string
}

func (progressCall) script() string                 { return scriptProgress }
func (c progressCall) keys(k storage.Keys) []string { return []string{k.Job(c.ID)} }
func (c progressCall) argv() []string {
	return []string{c.ID, itoa(c.Attempt), itoa(c.Step), itoa(c.N), strconv.FormatFloat(c.Fraction, 'f', 4, 64),
		c.EventBody, c.Preview}
}

// succeedCall ends an attempt with its results (lua/succeed.lua) and, with
// Member and OfferTTL set, offers the slot again.
type succeedCall struct {
	ID        string
	Attempt   int
	Images    int
	SeedsJSON string
	InfoJSON  string
	// InfoRecord is what the record keeps of the info: InfoJSON, or
	// infoInBlob.
	InfoRecord string
	// SubseedsJSON is the variation subseeds as a JSON array, "" when the
	// job was no variation.
	SubseedsJSON string
	Member       string
	OfferTTL     time.Duration
}

func (succeedCall) script() string                 { return scriptSucceed }
func (c succeedCall) keys(k storage.Keys) []string { return []string{k.Job(c.ID)} }
func (c succeedCall) argv() []string {
	return []string{c.ID, itoa(c.Attempt), itoa(c.Images), c.SeedsJSON, c.InfoJSON, mstoa(c.OfferTTL), c.InfoRecord, c.Member,
		c.SubseedsJSON}
}

// backoff is the retry schedule scripts apply.
type backoff struct {
	Base, Max time.Duration
	// Jitter multiplies the delay (0.8–1.2).
	Jitter float64
}

func (b backoff) argv() []string {
	return []string{mstoa(b.Base), mstoa(b.Max), strconv.FormatFloat(b.Jitter, 'f', 3, 64)}
}

// failCall ends an attempt with an error (lua/fail.lua).
type failCall struct {
	ID          string
	Attempt     int
	Retryable   bool
	Code        string
	MessageJSON string
	Backoff     backoff
	// Avoid makes the retry prefer another worker slot than this
	// attempt's (its backend stalled).
	Avoid bool
}

func (failCall) script() string                 { return scriptFail }
func (c failCall) keys(k storage.Keys) []string { return []string{k.Job(c.ID)} }
func (c failCall) argv() []string {
	return append(append([]string{c.ID, itoa(c.Attempt), btoa(c.Retryable), c.Code, c.MessageJSON}, c.Backoff.argv()...), btoa(c.Avoid))
}

// cancelCall cancels a job (lua/cancel.lua).
type cancelCall struct {
	ID, ByJSON, Channel string
}

func (cancelCall) script() string                 { return scriptCancel }
func (c cancelCall) keys(k storage.Keys) []string { return []string{k.Job(c.ID)} }
func (c cancelCall) argv() []string               { return []string{c.ID, c.ByJSON, c.Channel} }

// promoteCall moves due retries back (lua/promote.lua).
type promoteCall struct{ Max int }

func (promoteCall) script() string             { return scriptPromote }
func (promoteCall) keys(storage.Keys) []string { return nil }
func (c promoteCall) argv() []string           { return []string{itoa(c.Max)} }

// reclaimCall takes back one page of expired leases (lua/reclaim.lua).
type reclaimCall struct {
	Lease       time.Duration
	Consumer    string
	Page        int
	MessageJSON string
	Backoff     backoff
	Cursor      string
}

func (reclaimCall) script() string             { return scriptReclaim }
func (reclaimCall) keys(storage.Keys) []string { return nil }
func (c reclaimCall) argv() []string {
	return append(append([]string{mstoa(c.Lease), c.Consumer, itoa(c.Page), c.MessageJSON}, c.Backoff.argv()...), c.Cursor)
}

// positionCall reads a queued job's place in line (lua/position.lua).
type positionCall struct{ ID string }

func (positionCall) script() string                 { return scriptPosition }
func (c positionCall) keys(k storage.Keys) []string { return []string{k.Job(c.ID)} }
func (c positionCall) argv() []string               { return []string{c.ID} }

// positionsCall is one page of the positions pass (lua/positions.lua).
type positionsCall struct {
	Cursor       string
	Lanes, Jobs  int
	StaleReports time.Duration
}

func (positionsCall) script() string               { return scriptPositions }
func (positionsCall) keys(k storage.Keys) []string { return []string{k.BackendsDown()} }
func (c positionsCall) argv() []string {
	return []string{c.Cursor, itoa(c.Lanes), itoa(c.Jobs), mstoa(c.StaleReports)}
}
