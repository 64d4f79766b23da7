package scheduler_test

import (
	"context"
	"encoding/json"
	"strconv"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/easelbot/easel/scheduler"
)

// Concurrent submits go in batches (one script call for those that arrive
// while one is in flight); each still gets its own answer: its own id, a
// refusal of its own, and a record in the queue.
func TestConcurrentSubmitsBatched(t *testing.T) {
	t.Parallel()
	b := setup(t, scheduler.Config{})
	const n = 200
	ids := make([]string, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req := scheduler.SubmitRequest{Tenant: "api:t" + strconv.Itoa(i%7), User: "u" + strconv.Itoa(i%3),
				Payload: json.RawMessage(`{"prompt":"p` + strconv.Itoa(i) + `"}`), Images: 1}
			if i%10 == 0 {
				// One job a minute, no burst past the first: one admitted.
				req.Tenant, req.User = "api:limited", "one"
				req.Admission = &scheduler.Admission{UserRate: scheduler.Rate{PerMinute: 1, Burst: 1}}
			}
			r, err := b.s.Submit(b.ctx, req)
			ids[i], errs[i] = r.ID, err
		}()
	}
	wg.Wait()
	seen := map[string]bool{}
	limited := 0
	for i := range n {
		if i%10 == 0 {
			if errs[i] == nil {
				limited++
			} else {
				var ref *scheduler.RefusedError
				require.ErrorAs(t, errs[i], &ref)
				require.Equal(t, "user_rate", ref.Reason)
			}
			continue
		}
		require.NoError(t, errs[i])
		require.False(t, seen[ids[i]], "id %s given twice", ids[i])
		seen[ids[i]] = true
		j, err := b.s.Get(b.ctx, ids[i])
		require.NoError(t, err)
		require.Equal(t, scheduler.StatusQueued, j.Status)
		require.JSONEq(t, `{"prompt":"p`+strconv.Itoa(i)+`"}`, string(j.Payload))
	}
	require.Equal(t, 1, limited, "one job of the rate-limited user admitted, the rest refused")
}

// A submit whose caller gave up before its batch left is not sent: it
// answers the context's error and nothing is queued.
func TestSubmitGivenUpIsNotAdmitted(t *testing.T) {
	t.Parallel()
	b := setup(t, scheduler.Config{})
	ctx, cancel := context.WithCancel(b.ctx)
	cancel()
	_, err := b.s.Submit(ctx, scheduler.SubmitRequest{Tenant: "api:t", User: "u", Payload: json.RawMessage(`{}`)})
	require.ErrorIs(t, err, context.Canceled)
	active, err := b.s.Active(b.ctx, "api:t")
	require.NoError(t, err)
	require.Empty(t, active)
}
