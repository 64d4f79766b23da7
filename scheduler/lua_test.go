package scheduler

import (
	"context"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/redis/rueidis"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/easelbot/easel/internal/redistest"
)

// The contract tests call each script directly through its call struct and
// check its reply and the keys it promises to write, against real Redis (or
// the embedded one with EASEL_TEST_REDIS=embedded, through EVALSHA).

func contractSetup(t *testing.T, cfg Config) (*Scheduler, context.Context) {
	t.Helper()
	s, err := New(context.Background(), redistest.Store(t), cfg, zap.NewNop())
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return s, ctx
}

func TestScriptsLoadAsFunctionsOnRealRedis(t *testing.T) {
	t.Parallel()
	s, ctx := contractSetup(t, Config{})
	if os.Getenv("EASEL_TEST_REDIS") == "embedded" {
		require.False(t, s.runner.functions.Load(), "the embedded Redis has no FUNCTION: EVALSHA")
		return
	}
	require.True(t, s.runner.functions.Load())
	libs, err := s.client.Do(ctx, s.client.B().FunctionList().Libraryname(library.name).Build()).ToArray()
	require.NoError(t, err)
	require.Len(t, libs, 1)
	// Every script file is a function of the library, and each is headed by
	// its KEYS, ARGV and reply.
	for _, n := range scriptNames {
		require.Contains(t, library.code, "'"+library.name+"_"+n+"'")
		b, err := luaFS.ReadFile("lua/" + n + ".lua")
		require.NoError(t, err)
		head := string(b)[:strings.Index(string(b), "\nlocal ")+1]
		if !strings.Contains(string(b), "\nlocal ") {
			head = string(b)
		}
		require.Contains(t, head, "KEYS", n)
		require.Contains(t, head, "ARGV", n)
		require.Contains(t, head, "Reply", n)
	}
}

func TestScriptTimeIsRedisTimeUnlessInjected(t *testing.T) {
	t.Parallel()
	s, ctx := contractSetup(t, Config{})
	id := submitForContract(t, s, ctx, "api:clock", "u")
	j, err := s.Get(ctx, id)
	require.NoError(t, err)
	require.WithinDuration(t, time.Now(), j.CreatedAt, time.Minute, "TIME of the server on this machine")

	fixed := time.Date(2001, 2, 28, 23, 59, 58, 123e6, time.UTC)
	s2, ctx2 := contractSetup(t, Config{Now: func() time.Time { return fixed }})
	id = submitForContract(t, s2, ctx2, "api:clock", "u")
	j, err = s2.Get(ctx2, id)
	require.NoError(t, err)
	require.Equal(t, fixed, j.CreatedAt)
	// Event times are rendered by the script itself (RFC 3339, UTC).
	sl := s2.Slot("w", "b")
	defer func() { _ = sl.Close(context.Background()) }()
	l, err := sl.Next(ctx2, time.Second)
	require.NoError(t, err)
	require.Equal(t, id, l.JobID)
	var got []Event
	ctx3, cancel := context.WithCancel(ctx2)
	defer cancel()
	_ = s2.Follow(ctx3, id, 1, func(e Event) error { got = append(got, e); cancel(); return nil })
	require.Len(t, got, 1)
	require.Equal(t, fixed, got[0].Time)
}

func TestLuaISOMatchesGo(t *testing.T) {
	t.Parallel()
	s, ctx := contractSetup(t, Config{})
	// Through the progress script's event: the time member comes from iso().
	for _, at := range []time.Time{
		time.Date(1970, 1, 2, 3, 4, 5, 1e6, time.UTC),
		time.Date(2000, 2, 29, 12, 30, 45, 7e6, time.UTC),
		time.Date(2024, 12, 31, 23, 59, 59, 999e6, time.UTC),
		time.Date(2100, 3, 1, 0, 0, 0, 0, time.UTC),
	} {
		s.clock, s.cfg.Now = true, func() time.Time { return at }
		id := submitForContract(t, s, ctx, "api:iso", "u")
		j, err := s.Get(ctx, id)
		require.NoError(t, err)
		require.Equal(t, at, j.CreatedAt)
		raw, err := s.client.Do(ctx, s.client.B().Xrevrange().Key(s.keys.Events()).End("+").Start("-").Count(1).Build()).AsXRange()
		require.NoError(t, err)
		ev, err := DecodeEvent(raw[0].FieldValues["e"])
		require.NoError(t, err)
		require.Equal(t, at, ev.Time, at.String())
	}
}

func submitForContract(t *testing.T, s *Scheduler, ctx context.Context, tenant, user string) string {
	t.Helper()
	r, err := s.Submit(ctx, SubmitRequest{Tenant: tenant, User: user, Payload: json.RawMessage(`{"p":1}`), Origin: json.RawMessage(`{"o":1}`)})
	require.NoError(t, err)
	return r.ID
}

func TestScriptContracts(t *testing.T) {
	t.Parallel()
	s, ctx := contractSetup(t, Config{})
	scriptContracts(t, s, ctx)
}

// scriptContracts calls the scripts one by one and checks their replies
// and writes (TestEveryScriptOnCluster runs it on the cluster too).
func scriptContracts(t *testing.T, s *Scheduler, ctx context.Context) {
	k := s.keys

	// submit: {id, position, duplicate, lane}; the record, its request, the
	// active set and the quota counters are written.
	call := submitCall{ID: "job1", Tenant: "api:c", User: "u", Request: encodeRequest(json.RawMessage(`{"p":1}`), json.RawMessage(`null`)),
		Cost: 2, Images: 3, MaxAttempts: 2, IdempotencyKey: "idem", IdempotencyTTL: time.Hour}
	res := submitOne(ctx, t, s, call)
	require.Equal(t, []any{"job1", int64(1), int64(0), "api:c"}, values(t, res))
	st, err := s.client.Do(ctx, s.client.B().Hget().Key(k.Job("job1")).Field("status").Build()).ToString()
	require.NoError(t, err)
	require.Equal(t, "queued", st)
	_, err = s.client.Do(ctx, s.client.B().Zscore().Key(k.TenantActive("api:c")).Member("job1").Build()).AsFloat64()
	require.NoError(t, err, "listed among the tenant's live jobs")
	used, err := s.client.Do(ctx, s.client.B().Hget().Key(k.Quota("api:c")).Field("u:u").Build()).ToString()
	require.NoError(t, err)
	require.Equal(t, "3", used)
	// The same idempotency key answers the first job as a duplicate.
	call.ID = "job2"
	res = submitOne(ctx, t, s, call)
	require.Equal(t, []any{"job1", int64(0), int64(1), ""}, values(t, res))
	// A refusal: {"", 0, 0, reason, retry after, limit}.
	call.ID, call.IdempotencyKey, call.Admission = "job6", "", Admission{UserDailyImages: 4}
	v := values(t, submitOne(ctx, t, s, call))
	require.Equal(t, "", v[0])
	require.Equal(t, "user_quota", v[3])
	require.Greater(t, v[4].(int64), int64(0))
	require.Equal(t, "4", v[5])

	// position: 1 for the head of the only lane.
	n, err := s.exec(ctx, positionCall{ID: "job1"}).AsInt64()
	require.NoError(t, err)
	require.Equal(t, int64(1), n)

	// offer: the job dispatched to the calling slot, as a delivery
	// {entry, job, attempt, created ms, dispatched ms, request}; the job is
	// running on the slot's backend.
	sl := s.Slot("w", "b")
	res, err = s.exec(ctx, slotCall{Member: sl.member, TTL: time.Minute}).ToArray()
	require.NoError(t, err)
	v = values(t, res)
	require.Len(t, v, 6)
	require.Equal(t, []any{"job1", "1"}, v[1:3])
	require.Equal(t, call.Request, v[5])
	j, err := s.Get(ctx, "job1")
	require.NoError(t, err)
	require.Equal(t, StatusRunning, j.Status)
	require.Equal(t, "b", j.Backend)
	// Nothing left: the slot stays offered ({}), until withdrawn (1, then 0).
	res, err = s.exec(ctx, slotCall{Member: sl.member, TTL: time.Minute}).ToArray()
	require.NoError(t, err)
	require.Empty(t, res)
	for _, want := range []int64{1, 0} {
		n, err := s.exec(ctx, withdrawCall{Member: sl.member}).AsInt64()
		require.NoError(t, err)
		require.Equal(t, want, n)
	}

	// The attempt check before images are written: live for the running
	// attempt only.
	for a, want := range map[int]bool{1: true, 2: false} {
		live, err := s.attemptLive(ctx, "job1", a)
		require.NoError(t, err)
		require.Equal(t, want, live, "attempt %d", a)
	}

	// progress: 1 for the live attempt, 0 for another.
	for _, c := range []struct {
		call scriptCall
		want int64
	}{
		{progressCall{ID: "job1", Attempt: 1, Step: 1, N: 2, Fraction: .5, EventBody: `,"step":1`}, 1},
		{progressCall{ID: "job1", Attempt: 9, Step: 1, N: 2, Fraction: .5, EventBody: `,"step":1`}, 0},
	} {
		n, err := s.exec(ctx, c.call).AsInt64()
		require.NoError(t, err)
		require.Equal(t, c.want, n, "%#v", c.call)
	}

	// renew: 1 while the work entry is the consumer's, 0 once stale.
	n, err = s.exec(ctx, renewCall{ID: "job1", Attempt: 1, Consumer: "w"}).AsInt64()
	require.NoError(t, err)
	require.Equal(t, int64(1), n)

	// fail: "retry" while attempts remain, then "stale" for the old attempt.
	// No backoff: the retry is due at once, so promote needs no wait.
	r, err := s.exec(ctx, failCall{ID: "job1", Attempt: 1, Retryable: true, Code: "x", MessageJSON: `"m"`,
		Backoff: backoff{Jitter: 1}}).ToString()
	require.NoError(t, err)
	require.Equal(t, "retry", r)
	r, err = s.exec(ctx, failCall{ID: "job1", Attempt: 1, Code: "x", MessageJSON: `"m"`, Backoff: backoff{Jitter: 1}}).ToString()
	require.NoError(t, err)
	require.Equal(t, "stale", r)
	n, err = s.exec(ctx, renewCall{ID: "job1", Attempt: 1, Consumer: "w"}).AsInt64()
	require.NoError(t, err)
	require.Equal(t, int64(0), n)

	// promote: the due time of the next delayed job, -1 when none.
	n, err = s.exec(ctx, promoteCall{Max: 10}).AsInt64()
	require.NoError(t, err)
	require.Equal(t, int64(-1), n, "the retry, due at once, was promoted")

	// succeed with offer: {1, delivery} when a job waited for the slot, and
	// the slot stays offered when none did; {0} when stale.
	res, err = s.exec(ctx, slotCall{Member: sl.member, TTL: time.Minute}).ToArray()
	require.NoError(t, err)
	require.Len(t, res, 6, "the retry is dispatched to the slot")
	id2 := submitForContract(t, s, ctx, "api:c", "u2")
	res = succeedOne(ctx, t, s, succeedCall{ID: "job1", Attempt: 2, Images: 1, SeedsJSON: "[1]", InfoJSON: `""`,
		Member: sl.member, OfferTTL: time.Minute})
	ok, _ := res[0].AsInt64()
	require.Equal(t, int64(1), ok)
	d, err := res[1].AsStrSlice()
	require.NoError(t, err)
	require.Equal(t, id2, d[1])
	res = succeedOne(ctx, t, s, succeedCall{ID: id2, Attempt: 1, SeedsJSON: "[]", InfoJSON: `""`,
		Member: sl.member, OfferTTL: time.Minute})
	require.Len(t, res, 2)
	d, err = res[1].AsStrSlice()
	require.NoError(t, err)
	require.Empty(t, d)
	idle, err := s.client.Do(ctx, s.client.B().Zcard().Key(k.Slots()).Build()).AsInt64()
	require.NoError(t, err)
	require.Equal(t, int64(1), idle)
	res = succeedOne(ctx, t, s, succeedCall{ID: "job1", Attempt: 2, SeedsJSON: "[]", InfoJSON: `""`})
	require.Equal(t, []any{int64(0)}, values(t, res))

	// handback: 1 for a live attempt (back at the front), 0 when stale.
	id := submitForContract(t, s, ctx, "api:c", "u")
	j, err = s.Get(ctx, id)
	require.NoError(t, err)
	require.Equal(t, StatusRunning, j.Status, "the idle slot took it")
	n, err = s.exec(ctx, handBackCall{ID: id, Attempt: 1}).AsInt64()
	require.NoError(t, err)
	require.Equal(t, int64(1), n)
	n, err = s.exec(ctx, handBackCall{ID: id, Attempt: 1}).AsInt64()
	require.NoError(t, err)
	require.Equal(t, int64(0), n)

	// cancel: the previous status, then the final one, or "missing".
	for _, want := range []string{"queued", "canceled"} {
		r, err = s.exec(ctx, cancelCall{ID: id, ByJSON: `"u"`, Channel: k.CancelChannel()}).ToString()
		require.NoError(t, err)
		require.Equal(t, want, r)
	}
	r, err = s.exec(ctx, cancelCall{ID: "nope", ByJSON: `"u"`, Channel: k.CancelChannel()}).ToString()
	require.NoError(t, err)
	require.Equal(t, "missing", r)

	// reclaim: {reclaimed, next cursor}.
	res, err = s.exec(ctx, reclaimCall{Lease: time.Hour, Consumer: "m", Page: 10, MessageJSON: `"m"`,
		Backoff: backoff{Jitter: 1}, Cursor: "0-0"}).ToArray()
	require.NoError(t, err)
	require.Equal(t, []any{int64(0), "0-0"}, values(t, res))
}

// values flattens a script reply of integers and strings.
func values(t *testing.T, res []rueidis.RedisMessage) []any {
	t.Helper()
	out := make([]any, len(res))
	for i, m := range res {
		if n, err := m.AsInt64(); err == nil && m.IsInt64() {
			out[i] = n
			continue
		}
		s, err := m.ToString()
		require.NoError(t, err)
		out[i] = s
	}
	return out
}

// submitOne runs one submit as a batch of one and returns its reply.
func submitOne(ctx context.Context, t *testing.T, s *Scheduler, c submitCall) []rueidis.RedisMessage {
	t.Helper()
	res, err := s.exec(ctx, submitBatch{c}).ToArray()
	require.NoError(t, err)
	require.Len(t, res, 1)
	one, err := res[0].ToArray()
	require.NoError(t, err)
	return one
}

// A batch of submits in one call: each is admitted in turn as if alone, so
// a second submit with one idempotency key in the same batch is the first's
// duplicate, and a refusal leaves the others admitted.
func TestSubmitBatchContract(t *testing.T) {
	t.Parallel()
	s, ctx := contractSetup(t, Config{})
	a := submitCall{ID: "job3", Tenant: "api:c", User: "u", Request: encodeRequest(json.RawMessage(`{"p":1}`), json.RawMessage(`null`)),
		Cost: 1, Images: 1, MaxAttempts: 2, IdempotencyKey: "idem2", IdempotencyTTL: time.Hour}
	b := a
	b.ID = "job4"
	refused := a
	refused.ID, refused.IdempotencyKey, refused.Admission = "job5", "", Admission{UserDailyImages: 1}
	batch, err := s.exec(ctx, submitBatch{a, refused, b}).ToArray()
	require.NoError(t, err)
	require.Len(t, batch, 3)
	first, err := batch[0].ToArray()
	require.NoError(t, err)
	require.Equal(t, []any{"job3", int64(1), int64(0), "api:c"}, values(t, first))
	no, err := batch[1].ToArray()
	require.NoError(t, err)
	require.Equal(t, []any{"", int64(0), int64(0), "user_quota", values(t, no)[4], "1"}, values(t, no))
	dup, err := batch[2].ToArray()
	require.NoError(t, err)
	require.Equal(t, []any{"job3", int64(0), int64(1), ""}, values(t, dup))
	n, err := s.client.Do(ctx, s.client.B().Exists().Key(s.keys.Job("job4"), s.keys.Job("job5")).Build()).AsInt64()
	require.NoError(t, err)
	require.Zero(t, n, "neither the duplicate nor the refused job has a record")
}

// succeedOne runs one succeed as a batch of one and returns its reply.
func succeedOne(ctx context.Context, t *testing.T, s *Scheduler, c succeedCall) []rueidis.RedisMessage {
	t.Helper()
	res, err := s.exec(ctx, succeedBatch{c}).ToArray()
	require.NoError(t, err)
	require.Len(t, res, 1)
	one, err := res[0].ToArray()
	require.NoError(t, err)
	return one
}

// A batch of succeeds from two slots in one call: each attempt ends, and
// each slot gets its own next job back in its own reply element.
func TestSucceedBatchContract(t *testing.T) {
	t.Parallel()
	s, ctx := contractSetup(t, Config{})
	a, b := s.Slot("wa", "x"), s.Slot("wb", "x")
	var ids []string
	for _, sl := range []*Slot{a, b} {
		id := submitForContract(t, s, ctx, "api:c", "u")
		d, err := s.exec(ctx, slotCall{Member: sl.member, TTL: time.Minute}).AsStrSlice()
		require.NoError(t, err)
		require.Len(t, d, 6)
		require.Equal(t, id, d[1])
		ids = append(ids, id)
	}
	next := []string{submitForContract(t, s, ctx, "api:c", "u2"), submitForContract(t, s, ctx, "api:c", "u3")}
	res, err := s.exec(ctx, succeedBatch{
		{ID: ids[0], Attempt: 1, SeedsJSON: "[]", InfoJSON: `""`, InfoRecord: `""`, Member: a.member, OfferTTL: time.Minute},
		{ID: ids[1], Attempt: 1, SeedsJSON: "[]", InfoJSON: `""`, InfoRecord: `""`, Member: b.member, OfferTTL: time.Minute},
		{ID: ids[1], Attempt: 1, SeedsJSON: "[]", InfoJSON: `""`, InfoRecord: `""`, Member: b.member, OfferTTL: time.Minute},
	}).ToArray()
	require.NoError(t, err)
	require.Len(t, res, 3)
	var got []string
	for i, want := range []int64{1, 1, 0} {
		one, err := res[i].ToArray()
		require.NoError(t, err)
		ok, _ := one[0].AsInt64()
		require.Equal(t, want, ok, "element %d", i)
		if want == 1 {
			d, err := one[1].AsStrSlice()
			require.NoError(t, err)
			require.Len(t, d, 6)
			got = append(got, d[1])
		}
	}
	require.ElementsMatch(t, next, got, "each slot got one of the waiting jobs")
	for _, id := range ids {
		j, err := s.Get(ctx, id)
		require.NoError(t, err)
		require.Equal(t, StatusSucceeded, j.Status)
	}
}
