package scheduler

import (
	"context"
	"encoding/json"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/rueidis"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/easelbot/easel/internal/redistest"
)

// nowRecorder is the store's Redis client, noting the clock argument
// (ARGV[2], see lua/lib.lua) of every script call.
type nowRecorder struct {
	rueidis.Client
	mu   sync.Mutex
	nows map[string][]string // script (function or sha) -> ARGV[2]s
}

func (r *nowRecorder) note(cmd rueidis.Completed) {
	c := cmd.Commands()
	if len(c) < 3 || (c[0] != "FCALL" && c[0] != "EVALSHA" && c[0] != "EVAL") {
		return
	}
	nkeys, err := strconv.Atoi(c[2])
	if err != nil || len(c) < 3+nkeys+2 {
		return
	}
	r.mu.Lock()
	r.nows[c[1]] = append(r.nows[c[1]], c[3+nkeys+1])
	r.mu.Unlock()
}

func (r *nowRecorder) Do(ctx context.Context, cmd rueidis.Completed) rueidis.RedisResult {
	r.note(cmd)
	return r.Client.Do(ctx, cmd)
}

func (r *nowRecorder) DoMulti(ctx context.Context, cmds ...rueidis.Completed) []rueidis.RedisResult {
	for _, c := range cmds {
		r.note(c)
	}
	return r.Client.DoMulti(ctx, cmds...)
}

// "Now" in the scripts is Redis's TIME, never the calling process's clock:
// with no clock injected (Config.Now, for tests), every script call of a
// job's life passes "" (read TIME) or "-" (reads no clock) as its time.
// Two processes whose clocks disagree thus agree on leases, rate limits,
// offers and virtual times.
func TestScriptsTakeNowFromRedis(t *testing.T) {
	t.Parallel()
	store := redistest.Store(t)
	rec := &nowRecorder{Client: store.Client, nows: map[string][]string{}}
	store.Client = rec
	s, err := New(context.Background(), store, Config{}, zap.NewNop())
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	for _, fail := range []bool{false, true} {
		id := submitForContract(t, s, ctx, "api:clock", "u")
		_, err := s.Position(ctx, id)
		require.NoError(t, err)
		sl := s.Slot("w", "b")
		l, err := sl.Next(ctx, 5*time.Second)
		require.NoError(t, err)
		require.NotNil(t, l)
		require.NoError(t, l.Renew(ctx))
		require.NoError(t, l.Progress(ctx, 1, 2, .5, 0, nil))
		if fail {
			_, err = l.Fail(ctx, "x", "m", false)
		} else {
			err = l.Succeed(ctx, nil, nil, "")
		}
		require.NoError(t, err)
		require.NoError(t, sl.Close(ctx))
	}
	_, err = NewMaintainer(s, "m", zap.NewNop()).Reclaim(ctx)
	require.NoError(t, err)

	rec.mu.Lock()
	defer rec.mu.Unlock()
	require.GreaterOrEqual(t, len(rec.nows), 6, "scripts called: %v", rec.nows)
	for script, nows := range rec.nows {
		for _, now := range nows {
			require.Contains(t, []string{"", "-"}, now, "script %s was given the caller's clock", script)
		}
	}
}

// The maintainer's trim of the shared events stream by age takes "now" from
// Redis's clock, as the entry ids do: a maintainer whose clock is an hour
// ahead drops no recent event, and one whose clock is an hour behind still
// drops what is older than the grace.
func TestTrimEventsByRedisClock(t *testing.T) {
	t.Parallel()
	store := redistest.Store(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	ahead := skewed(t, store, time.Hour)
	behind := skewed(t, store, -time.Hour)
	c := store.Client
	key := ahead.shards[0].keys.Events()
	xlen := func() int64 {
		t.Helper()
		n, err := c.Do(ctx, c.B().Xlen().Key(key).Build()).AsInt64()
		require.NoError(t, err)
		return n
	}
	add := func(id func(i int) string) {
		t.Helper()
		cmds := make(rueidis.Commands, 0, 350)
		for i := range 350 {
			cmds = append(cmds, c.B().Xadd().Key(key).Id(id(i)).FieldValue().FieldValue("e", "filler").Build())
		}
		for _, r := range c.DoMulti(ctx, cmds...) {
			require.NoError(t, r.Error())
		}
	}
	// 350 entries from twice the grace ago (by Redis's clock), then 350
	// fresh ones. No relay has read, so no group holds the trim back.
	now, err := ahead.redisNow(ctx)
	require.NoError(t, err)
	old := now.Add(-2 * ahead.cfg.EventsGrace).UnixMilli()
	add(func(i int) string { return strconv.FormatInt(old, 10) + "-" + strconv.Itoa(i+1) })
	add(func(int) string { return "*" })
	require.Equal(t, int64(700), xlen())

	n, err := behind.TrimEvents(ctx)
	require.NoError(t, err)
	require.GreaterOrEqual(t, n, int64(250), "what is older than the grace goes, though the maintainer's clock is behind")
	left := xlen()
	require.GreaterOrEqual(t, left, int64(350))

	n, err = ahead.TrimEvents(ctx)
	require.NoError(t, err)
	require.Zero(t, n, "no entry younger than the grace goes, though the maintainer's clock is ahead")
	require.Equal(t, left, xlen())
}

// Idle slots (scored by their offers' expiry), down reports and the
// served-cost minutes are all on Redis's clock, and the Go-side reads of
// them take "now" from Redis too: a reader whose clock is 20 minutes ahead
// still counts the idle slots (in the ETA, WaitingFor and the free slots
// metric) and finds the cost served this minute, and a down report from a
// worker whose clock is 20 minutes behind is not stale. (The ETA and the
// metric read time.Now before, which a test cannot skew: for them this
// checks only that the Redis clock reads count the slots.)
func TestReadsOfSlotsAndReportsByRedisClock(t *testing.T) {
	t.Parallel()
	store := redistest.Store(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	worker := skewed(t, store, -20*time.Minute)
	reader := skewed(t, store, 20*time.Minute)

	// A job run to its end (the served cost, an average run time), then
	// two idle slots offered for a minute.
	id := submitForContract(t, worker, ctx, "api:skew", "u")
	l, err := worker.Slot("w0", "b").Next(ctx, 5*time.Second)
	require.NoError(t, err)
	require.NotNil(t, l)
	require.Equal(t, id, l.JobID)
	require.NoError(t, l.Succeed(ctx, nil, nil, ""))
	c := store.Client
	require.NoError(t, c.Do(ctx, c.B().Hset().Key(reader.keys.Global()).FieldValue().FieldValue("avg_ms", "1000").Build()).Error())
	for _, w := range []string{"w1", "w2"} {
		require.NoError(t, worker.exec(ctx, slotCall{Member: worker.Slot(w, "b").member, TTL: time.Minute}).Error())
	}
	idle, err := c.Do(ctx, c.B().Zcard().Key(reader.keys.Slots()).Build()).AsInt64()
	require.NoError(t, err)
	require.GreaterOrEqual(t, idle, int64(2))

	eta, err := reader.ETA(ctx, 4)
	require.NoError(t, err)
	require.LessOrEqual(t, eta, 2*time.Second, "4 jobs over at least 2 idle slots: at most 2 rounds of 1 s")

	reg := prometheus.NewPedanticRegistry()
	require.NoError(t, reg.Register(NewCollector(reader)))
	n, err := testutil.GatherAndCount(reg, "easel_worker_free_slots")
	require.NoError(t, err)
	require.Equal(t, 1, n)
	mfs, err := reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() == "easel_worker_free_slots" {
			require.GreaterOrEqual(t, mf.GetMetric()[0].GetGauge().GetValue(), 2.0)
		}
	}

	served, err := reader.Served(ctx, time.Minute)
	require.NoError(t, err)
	require.Contains(t, served, "api:skew")

	// Idle slots: nothing waits, though a backend is reported down.
	require.NoError(t, worker.BackendDown(ctx, "gpu0", time.Now()))
	w, err := reader.WaitingFor(ctx)
	require.NoError(t, err)
	require.Nil(t, w, "slots are offered")
	// With no slot offered, the worker's fresh report counts.
	require.NoError(t, c.Do(ctx, c.B().Del().Key(reader.keys.Slots()).Build()).Error())
	w, err = reader.WaitingFor(ctx)
	require.NoError(t, err)
	require.NotNil(t, w, "a fresh down report is not stale")
	require.Equal(t, "gpu0", w.Backends[0].Name)
}

// The maintainer waits for the next delayed retry by Redis's clock, as the
// retry's due time is: with its own clock 20 minutes behind it still
// promotes a retry when it is due, not at its next reclaim pass (here 5
// minutes away, past the test's timeout).
func TestMaintainerPromotesByRedisClock(t *testing.T) {
	t.Parallel()
	store := redistest.Store(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s := skewedWith(t, store, Config{Lease: 10 * time.Minute, RetryBackoff: 200 * time.Millisecond}, -20*time.Minute)
	m := NewMaintainer(s, "m", zap.NewNop())
	require.NoError(t, m.Start(ctx))
	defer func() { require.NoError(t, m.Stop(context.Background())) }()
	select { // its first pass (reclaim and all) is behind it
	case <-m.passes:
	case <-ctx.Done():
		require.FailNow(t, "no maintenance pass")
	}

	id := submitForContract(t, s, ctx, "api:retry", "u")
	sl := s.Slot("w", "b")
	l, err := sl.Next(ctx, 5*time.Second)
	require.NoError(t, err)
	require.NotNil(t, l)
	retry, err := l.Fail(ctx, "x", "m", true)
	require.NoError(t, err)
	require.True(t, retry)
	// The retry comes back once due: Next blocks for it (up to 20 s).
	l, err = sl.Next(ctx, 20*time.Second)
	require.NoError(t, err)
	require.NotNil(t, l, "the retry was not promoted when due")
	require.Equal(t, id, l.JobID)
	require.Equal(t, 2, l.Attempt)
}

// Today's usage and a finished job's history compare with Redis's clock, as
// the scripts wrote them: a reader whose clock is a day ahead still reads
// today's quota counts, and one whose clock is a minute ahead still
// rebuilds the started event of a job that finished seconds ago.
func TestUsageAndHistoryByRedisClock(t *testing.T) {
	t.Parallel()
	store := redistest.Store(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s := skewed(t, store, 0)
	dayAhead := skewed(t, store, 24*time.Hour)
	minuteAhead := skewed(t, store, time.Minute)

	r, err := s.Submit(ctx, SubmitRequest{Tenant: "api:q", User: "ann", Images: 3, Cost: 1,
		Payload: json.RawMessage(`{"p":1}`), Origin: json.RawMessage(`{"o":1}`)})
	require.NoError(t, err)
	ps, err := NewPolicies(dayAhead, PolicyConfig{})
	require.NoError(t, err)
	tn, un, err := ps.UsageToday(ctx, "api:q", "ann")
	require.NoError(t, err)
	require.Equal(t, []int{3, 3}, []int{tn, un}, "today's usage, though the reader's clock is in tomorrow")

	l, err := s.Slot("w", "b").Next(ctx, 5*time.Second)
	require.NoError(t, err)
	require.NotNil(t, l)
	require.Equal(t, r.ID, l.JobID)
	require.NoError(t, l.Succeed(ctx, nil, nil, ""))
	evs, done, err := minuteAhead.History(ctx, r.ID, 0)
	require.NoError(t, err)
	require.True(t, done)
	var types []EventType
	for _, e := range evs {
		types = append(types, e.Type)
	}
	require.Equal(t, []EventType{EventQueued, EventStarted, EventSucceeded}, types)
}
