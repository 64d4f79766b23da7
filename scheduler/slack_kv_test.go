package scheduler_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/easelbot/easel/internal/redistest"
	"github.com/easelbot/easel/scheduler"
)

// TestChatKV: Claim once, Remember/Recall, and a Spend budget shared by two
// schedulers (two processes) on one Redis.
func TestChatKV(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	store := redistest.Store(t)
	a, err := scheduler.New(ctx, store, scheduler.Config{}, zap.NewNop())
	require.NoError(t, err)
	b, err := scheduler.New(ctx, store, scheduler.Config{}, zap.NewNop())
	require.NoError(t, err)

	ok, err := a.Claim(ctx, "k", "1", time.Minute)
	require.NoError(t, err)
	require.True(t, ok)
	ok, err = b.Claim(ctx, "k", "1", time.Minute)
	require.NoError(t, err)
	require.False(t, ok, "claimed once")

	_, found, err := a.Recall(ctx, "r")
	require.NoError(t, err)
	require.False(t, found)
	require.NoError(t, a.Remember(ctx, "r", "F1,F2", time.Minute))
	v, found, err := b.Recall(ctx, "r")
	require.NoError(t, err)
	require.True(t, found)
	require.Equal(t, "F1,F2", v)

	taken := 0
	for i := range 10 {
		s := a
		if i%2 == 1 {
			s = b
		}
		ok, err := s.Spend(ctx, "budget", 1, 3) // 1 a minute, burst 3
		require.NoError(t, err)
		if ok {
			taken++
		}
	}
	require.Equal(t, 3, taken, "the burst is shared, not per scheduler")
	ok, err = a.Spend(ctx, "none", 0, 3)
	require.NoError(t, err)
	require.False(t, ok, "a zero budget spends nothing")
}
