package scheduler_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/easelbot/easel/internal/redistest"
	"github.com/easelbot/easel/scheduler"
	"github.com/easelbot/easel/storage"
)

// FuzzScheduleSequence drives the scheduler with sequences of submits,
// dispatches, completions, failures, hand-backs and cancels decoded from the
// fuzz input, and checks after every step that no job is lost, none is
// leased twice at once, no tenant runs more than its cap, and no job runs
// on a slot whose backend lacks its model (two slots: one has x, the other
// x and y; jobs name x, y or no model), and that the counts the global
// hash keeps of the ready, relax and slots sets match them.
func FuzzScheduleSequence(f *testing.F) {
	f.Add([]byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16})
	f.Add([]byte("submit submit take take done cancel take fail back take done"))
	f.Add(make([]byte, 64))
	f.Add([]byte{1, 1, 1, 1, 1, 1, 9, 9, 9, 9, 9, 9, 9, 9, 200, 201, 202, 203, 17, 33, 49, 65, 81})
	f.Fuzz(runSequence)
}

var (
	fuzzStoreOnce sync.Once
	fuzzStore     *storage.Store
)

func runSequence(t *testing.T, ops []byte) { runSequenceWith(t, ops, sequenceOpts{}) }

// sequenceOpts varies the property test: shards, and worker deaths (an op
// that kills a slot without a goodbye: its jobs are reclaimed once their
// lease runs out, and none of its writes lands after that).
type sequenceOpts struct {
	shards int
	deaths bool
}

func runSequenceWith(t *testing.T, ops []byte, o sequenceOpts) {
	fuzzStoreOnce.Do(func() {
		var err error
		fuzzStore, err = storage.Open(context.Background(), redistest.Config(t), zap.NewNop())
		require.NoError(t, err)
	})
	store := fuzzStore
	{
		if len(ops) > 300 {
			ops = ops[:300]
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		// A fresh key prefix per input: reuse the connection, not the keys.
		st := *store
		st.Keys.Prefix = fmt.Sprintf("%s-f%d", store.Keys.Prefix, seq())
		cfg := scheduler.Config{MaxAttempts: 2, RetryBackoff: time.Millisecond, RetryBackoffMax: time.Millisecond, Shards: o.shards}
		if o.deaths {
			cfg.Lease = 300 * time.Millisecond
		}
		s, err := scheduler.New(ctx, &st, cfg, zap.NewNop())
		require.NoError(t, err)
		m := scheduler.NewMaintainer(s, "m", zap.NewNop())
		tenants := []string{"api:a", "api:b", "api:c"}
		if o.shards > 1 {
			tenants = tenantPerShard(t, s, "api:p")[:3]
		}
		caps := map[string]int{tenants[0]: 1, tenants[1]: 2, tenants[2]: 0}
		status := map[string]scheduler.Status{} // model: last known status
		tenantOf := map[string]string{}
		held := map[string]*scheduler.Lease{} // job → live lease
		var ids []string
		modelOf := map[string]string{}
		has := []map[string]bool{{"x": true}, {"x": true, "y": true}}
		var slots []*scheduler.Slot
		var dead []*scheduler.Slot
		defer func() {
			// The dead slots' goroutines end with the test (after the checks).
			for _, sl := range dead {
				_ = sl.Close(context.Background())
			}
		}()
		lives := 0
		newSlot := func(i int) *scheduler.Slot {
			lives++
			sl := s.Slot(fmt.Sprint([]string{"w", "v"}[i], lives), []string{"b", "c"}[i])
			if lives <= 2 {
				// Nothing is queued yet: the first offer takes no job.
				l, err := sl.Next(ctx, 0)
				require.NoError(t, err)
				require.Nil(t, l)
			}
			caps := scheduler.Capabilities{Loaded: "x"}
			for m := range has[i] {
				caps.Models = append(caps.Models, m)
			}
			require.NoError(t, sl.Advertise(ctx, caps, time.Minute))
			// Offered only while take asks, so every job comes in a reply.
			require.NoError(t, sl.Withdraw(ctx))
			return sl
		}
		for i := range 2 {
			slots = append(slots, newSlot(i))
			defer func() { require.NoError(t, slots[i].Close(context.Background())) }()
		}
		slotOf := map[string]int{}               // job → the slot index holding it
		zombies := map[string]*scheduler.Lease{} // job → the lease of a dead slot
		take := func(b byte) {
			i := int(b) % 2
			l, err := slots[i].Next(ctx, 0)
			require.NoError(t, err)
			if l == nil {
				require.NoError(t, slots[i].Withdraw(ctx))
				return
			}
			require.Nil(t, held[l.JobID], "job %s leased twice", l.JobID)
			if z := zombies[l.JobID]; z != nil {
				// Running again only once the dead slot's attempt is stale.
				require.Greater(t, l.Attempt, z.Attempt)
				require.ErrorIs(t, z.Renew(ctx), scheduler.ErrStale, "job %s: the dead slot's lease still holds", l.JobID)
			}
			if m := modelOf[l.JobID]; m != "" {
				require.True(t, has[i][m], "job for model %s ran on slot %d", m, i)
			}
			held[l.JobID] = l
			slotOf[l.JobID] = i
		}
		// kill drops slot i without a goodbye: its jobs' leases become
		// zombies, and a new slot (another consumer) takes its place.
		kill := func(b byte) {
			i := int(b) % 2
			for id, l := range held {
				if slotOf[id] == i {
					zombies[id] = l
					delete(held, id)
				}
			}
			dead = append(dead, slots[i])
			slots[i] = newSlot(i)
		}
		nops := byte(7)
		if o.deaths {
			nops = 8
		}
		pick := func(b byte) *scheduler.Lease {
			i := 0
			for _, id := range ids {
				if l := held[id]; l != nil {
					if i == int(b)%max(len(held), 1) {
						return l
					}
					i++
				}
			}
			return nil
		}
		for i, op := range ops {
			arg := byte(0)
			if i+1 < len(ops) {
				arg = ops[i+1]
			}
			switch op % nops {
			case 0, 1: // submit
				tn := tenants[int(arg)%3]
				p, _ := json.Marshal(map[string]int{"n": i})
				model := []string{"", "x", "y"}[int(arg/16)%3]
				r, err := s.Submit(ctx, scheduler.SubmitRequest{Tenant: tn, User: fmt.Sprint("u", arg%4), Payload: p,
					Admission: &scheduler.Admission{MaxRunning: caps[tn]}, Model: model})
				require.NoError(t, err)
				ids = append(ids, r.ID)
				modelOf[r.ID] = model
				tenantOf[r.ID] = tn
				status[r.ID] = scheduler.StatusQueued
			case 2: // a worker takes a job
				take(arg)
			case 3: // succeed
				if l := pick(arg); l != nil {
					require.NoError(t, l.Succeed(ctx, [][]byte{{1}}, []int64{1}, ""))
					delete(held, l.JobID)
				}
			case 4: // retryable failure
				if l := pick(arg); l != nil {
					_, err := l.Fail(ctx, "backend_error", "boom", true)
					require.NoError(t, err)
					delete(held, l.JobID)
				}
			case 5: // hand back
				if l := pick(arg); l != nil {
					require.NoError(t, l.HandBack(ctx))
					delete(held, l.JobID)
				}
			case 6: // cancel any job
				if len(ids) > 0 {
					id := ids[int(arg)%len(ids)]
					_, err := s.Cancel(ctx, id, "u")
					if err != nil {
						require.ErrorIs(t, err, scheduler.ErrFinished)
					}
					delete(held, id)
				}
			case 7: // a worker dies
				kill(arg)
			}
			_, err := m.Promote(ctx)
			require.NoError(t, err)
			drift, err := s.CountDrift(ctx)
			require.NoError(t, err)
			require.Empty(t, drift, "a kept count differs from its set")
			running := map[string]int{}
			for id := range held {
				running[tenantOf[id]]++
			}
			for tn, c := range caps {
				if c > 0 {
					require.LessOrEqual(t, running[tn], c, "tenant %s over its cap", tn)
				}
			}
		}
		// Drain: every job must end, exactly once.
		for _, l := range held {
			require.NoError(t, l.Succeed(ctx, nil, nil, ""))
		}
		clear(held)
		if len(zombies) > 0 {
			// The dead slots' leases run out in Redis time: a running
			// maintainer reclaims them, and each zombie job's events say
			// when its dead attempt ended (retried, failed for good, or
			// canceled earlier). No slot offers meanwhile, so the
			// maintainer's promotions dispatch nothing.
			require.NoError(t, m.Start(ctx))
			for id, z := range zombies {
				waitEvent(t, ctx, s, id, func(e scheduler.Event) bool {
					return e.Type.Terminal() || (e.Type == scheduler.EventRetrying && e.Attempt == z.Attempt)
				})
			}
			require.NoError(t, m.Stop(ctx))
		}
		for guard := 0; ; guard++ {
			require.Less(t, guard, 3*len(ids)+50, "drain does not end: a job is stuck")
			active := 0
			for _, tn := range tenants {
				js, err := s.Active(ctx, tn)
				require.NoError(t, err)
				active += len(js)
			}
			if active == 0 {
				break
			}
			if _, err := m.Promote(ctx); err != nil {
				t.Fatal(err)
			}
			take(0)
			take(1)
			for id, l := range held {
				require.NoError(t, l.Succeed(ctx, nil, nil, ""))
				delete(held, id)
			}
		}
		for id, z := range zombies {
			require.ErrorIs(t, z.Succeed(ctx, [][]byte{{2}}, nil, ""), scheduler.ErrStale, "job %s: a dead slot's write landed", id)
		}
		for _, id := range ids {
			j, err := s.Get(ctx, id)
			require.NoError(t, err)
			require.True(t, j.Status.Terminal(), "job %s left %s", id, j.Status)
			n := 0
			require.NoError(t, s.Follow(ctx, id, 0, func(e scheduler.Event) error {
				if e.Type.Terminal() {
					n++
				}
				return nil
			}))
			require.Equal(t, 1, n, "job %s: one terminal event", id)
		}
	}
}

var fuzzSeq atomic.Uint64

func seq() uint64 { return fuzzSeq.Add(1) }

// TestRandomSequences runs a fixed set of pseudo-random operation sequences
// through the same checks as the fuzz test, so CI covers more than the seeds.
func TestRandomSequences(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(7, 11))
	for range 80 {
		ops := make([]byte, r.IntN(250))
		for k := range ops {
			ops[k] = byte(r.IntN(256))
		}
		runSequence(t, ops)
	}
}

// TestRandomSequencesShardsAndDeaths runs pseudo-random sequences through
// the same checks on three shards, with worker slots killed without a
// goodbye among the operations.
func TestRandomSequencesShardsAndDeaths(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(13, 17))
	for range 25 {
		ops := make([]byte, r.IntN(250))
		for k := range ops {
			ops[k] = byte(r.IntN(256))
		}
		runSequenceWith(t, ops, sequenceOpts{shards: 3, deaths: true})
	}
}
