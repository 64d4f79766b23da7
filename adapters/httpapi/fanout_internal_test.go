package httpapi

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/easelbot/easel/internal/redistest"
	"github.com/easelbot/easel/scheduler"
)

// A subscriber slower than its buffer loses buffered events, not events:
// it catches up from the job's stream and sees every event once, in order.
func TestFeedSlowSubscriberCatchesUp(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	sched, err := scheduler.New(ctx, redistest.Store(t), scheduler.Config{}, zap.NewNop())
	require.NoError(t, err)
	f := newFeed(sched, zap.NewNop())
	f.buffer = 1
	defer f.stop()

	res, err := sched.Submit(ctx, scheduler.SubmitRequest{Tenant: "api:t", User: "u", Payload: json.RawMessage(`{}`)})
	require.NoError(t, err)
	// A watcher with room for everything tells when the feed has passed
	// the job's events on.
	f.buffer = 100
	watcher := f.subscribe(res.ID)
	f.buffer = 1
	first := make(chan struct{})
	release := make(chan struct{})
	got := make(chan []int64, 1)
	go func() {
		var seqs []int64
		err := f.follow(ctx, res.ID, 0, func(e *fedEvent) error {
			seqs = append(seqs, e.Seq)
			if len(seqs) == 1 {
				close(first)
				<-release // stall while the job races ahead
			}
			return nil
		}, 0, nil)
		require.NoError(t, err)
		got <- seqs
	}()
	<-first
	slot := sched.Slot("w", "fake")
	defer func() { _ = slot.Close(context.Background()) }()
	l, err := slot.Next(ctx, 5*time.Second)
	require.NoError(t, err)
	require.NotNil(t, l)
	const steps = 20
	for i := 1; i <= steps; i++ {
		require.NoError(t, l.Progress(ctx, i, steps, float64(i)/steps, 0, nil))
	}
	require.NoError(t, l.Succeed(ctx, nil, nil, ""))
	// Let the feed pass every event on (overflowing the stalled
	// subscriber's one-event buffer) before it resumes.
	var last int64
	for last == 0 {
		select {
		case e := <-watcher.ch:
			if e.Type.Terminal() {
				last = e.Seq
			}
		case <-ctx.Done():
			t.Fatal("the feed did not pass the events on")
		}
	}
	f.mu.Lock() // once held, the dispatch of the terminal event is over
	subs := len(f.subs[res.ID])
	f.mu.Unlock()
	require.Equal(t, 2, subs)
	f.unsubscribe(watcher)
	close(release)
	seqs := <-got
	want := make([]int64, 0, last)
	for i := int64(1); i <= last; i++ {
		want = append(want, i)
	}
	require.Equal(t, want, seqs)
}
