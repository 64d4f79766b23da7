package scheduler_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/easelbot/easel/internal/redistest"
	"github.com/easelbot/easel/scheduler"
)

// A paused slot is not offered: a job queued meanwhile waits however often
// Next is called, and is dispatched once the slot resumes, as its first
// attempt. A job the slot runs as it is paused runs on unaffected.
func TestSlotPauseOffersNothingUntilResume(t *testing.T) {
	t.Parallel()
	for _, shards := range []int{1, 2} {
		t.Run(fmt.Sprint("shards=", shards), func(t *testing.T) {
			t.Parallel()
			b := sharded(t, redistest.Store(t), scheduler.Config{Shards: shards})
			sl := b.slot(t, "w")
			b.submit(t, "api:a", "u", "A")
			running := next(t, b.ctx, sl)
			require.NoError(t, sl.Pause(b.ctx))
			require.NoError(t, running.Renew(b.ctx))
			offered, err := running.SucceedWith(b.ctx, scheduler.Result{}, true)
			require.NoError(t, err)
			require.False(t, offered, "the succeed script does not offer a paused slot")

			id := b.submit(t, "api:a", "u", "B")
			for range 3 {
				l, err := sl.Next(b.ctx, 0)
				require.NoError(t, err)
				require.Nil(t, l, "nothing dispatched to a paused slot")
			}
			require.NoError(t, sl.Pause(b.ctx), "a second pause is harmless")
			require.Equal(t, scheduler.StatusQueued, b.status(t, id))

			// A Next waiting in the pause returns at Resume (else it would
			// wait out the test's deadline); the one after offers the slot.
			type got struct {
				l   *scheduler.Lease
				err error
			}
			waited := make(chan got, 1)
			go func() {
				l, err := sl.Next(b.ctx, time.Hour)
				waited <- got{l, err}
			}()
			sl.Resume()
			r := <-waited
			require.NoError(t, r.err)
			if r.l == nil { // resumed before it waited
				r.l = next(t, b.ctx, sl)
			}
			require.Equal(t, "B", prompt(t, r.l))
			require.Equal(t, 1, r.l.Attempt)
			j, err := b.s.Get(b.ctx, id)
			require.NoError(t, err)
			require.Equal(t, 1, j.Attempt)
		})
	}
}
