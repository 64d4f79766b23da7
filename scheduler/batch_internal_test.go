package scheduler

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/easelbot/easel/internal/redistest"
	"github.com/easelbot/easel/storage"
)

// A batch whose every caller gave up while it was in flight is canceled;
// each caller then gets its own context's error, not the batch's "context
// canceled": a submit whose Redis budget ran out (Redis slow, or
// reconnecting after a restart) is an outage (Unavailable, which the HTTP
// API answers 503 with Retry-After), where a bare cancel read as an
// internal error (500). batched's caller chose at random between its
// deadline and that reply, so this drives runBatches directly.
func TestBatchGivenUpInFlightAnswersCallersError(t *testing.T) {
	t.Parallel()
	rs := redistest.NewServer(t) // its own: the test pauses it
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	store, err := storage.Open(ctx, rs.Config(), zap.NewNop())
	require.NoError(t, err)
	defer store.Close()
	s, err := New(ctx, store, Config{}, zap.NewNop())
	require.NoError(t, err)
	// Another connection pauses writes, so the batch's script call waits
	// in Redis until its caller's deadline; it unpauses when done.
	admin, err := storage.Open(ctx, rs.Config(), zap.NewNop())
	require.NoError(t, err)
	defer admin.Close()
	c := admin.Client
	require.NoError(t, c.Do(ctx, c.B().ClientPause().Timeout(30000).Write().Build()).Error())
	defer func() { require.NoError(t, c.Do(ctx, c.B().ClientUnpause().Build()).Error()) }()

	callCtx, callCancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer callCancel()
	call := submitCall{ID: s.newJobID("api:t"), Tenant: "api:t", User: "u", Cost: 1, Images: 1, MaxAttempts: 3,
		Request: encodeRequest(json.RawMessage(`{}`), json.RawMessage("null")), IdempotencyTTL: time.Hour}
	w := &batchWait[submitCall]{ctx: callCtx, call: call, done: make(chan batchReply, 1)}
	b := newBatcher(func(c []submitCall) scriptCall { return submitBatch(c) })
	b.queue, b.running = []*batchWait[submitCall]{w}, true
	runBatches(s, b) // returns once the deadline canceled the batch
	r := <-w.done
	require.ErrorIs(t, r.err, context.DeadlineExceeded)
	require.True(t, Unavailable(r.err))
}
