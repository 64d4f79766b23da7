package scheduler_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/easelbot/easel/scheduler"
)

// Refusals are counted in Redis by tenant and reason, so every instance
// sees every instance's, and each one is announced.
func TestRefusalsSharedAndAnnounced(t *testing.T) {
	t.Parallel()
	b := setup(t, scheduler.Config{})
	other, err := scheduler.New(context.Background(), b.store, scheduler.Config{}, zap.NewNop())
	require.NoError(t, err)

	ctx, cancel := context.WithCancel(b.ctx)
	ready := make(chan struct{})
	notices := make(chan string, 8)
	done := make(chan error, 1)
	go func() {
		done <- other.RefusalNotices(ctx, func() { close(ready) }, func(tenant string) { notices <- tenant })
	}()
	select {
	case <-ready:
	case <-time.After(10 * time.Second):
		t.Fatal("not subscribed")
	}

	blocked := &scheduler.Admission{Blocked: true}
	for range 2 {
		_, err = b.s.Submit(b.ctx, scheduler.SubmitRequest{Tenant: "api:a", User: "u", Payload: []byte(`{}`), Admission: blocked})
		var re *scheduler.RefusedError
		require.ErrorAs(t, err, &re)
	}
	_, err = b.s.Submit(b.ctx, scheduler.SubmitRequest{Tenant: "api:a", User: "u", Payload: []byte(`{}`),
		Admission: &scheduler.Admission{MaxPendingPerUser: 1}})
	require.NoError(t, err)
	_, err = b.s.Submit(b.ctx, scheduler.SubmitRequest{Tenant: "api:a", User: "u", Payload: []byte(`{}`),
		Admission: &scheduler.Admission{MaxPendingPerUser: 1}})
	require.Error(t, err)
	for range 3 {
		select {
		case tenant := <-notices:
			require.Equal(t, "api:a", tenant)
		case <-time.After(10 * time.Second):
			t.Fatal("a refusal was not announced")
		}
	}

	got, err := other.Refusals(b.ctx, "api:a")
	require.NoError(t, err)
	require.Equal(t, map[string]int64{scheduler.RefusedBlocked: 2, scheduler.RefusedUserPending: 1}, got)
	none, err := other.Refusals(b.ctx, "api:b")
	require.NoError(t, err)
	require.Empty(t, none)

	cancel()
	require.ErrorIs(t, <-done, context.Canceled)
}
