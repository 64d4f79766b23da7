package scheduler

import (
	"context"
	"encoding/json"
	"net/url"
	"testing"
	"time"

	"github.com/redis/rueidis"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/easelbot/easel/internal/redistest"
	"github.com/easelbot/easel/storage"
)

// Follow reads a job's own event stream (History) and, for a finished job
// whose stream has expired, rebuilds the terminal event from the record.
// When Redis answers the stream read with an error, the stream may well be
// there: Follow must fail, not report the end (as an EXISTS error once did).
// The scheduler here runs as a Redis user that may not run XRANGE, so that
// read fails while every other command works.
func TestFollowStreamReadErrorIsNotTheEnd(t *testing.T) {
	t.Parallel()
	rs := redistest.NewServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	u, err := url.Parse(rs.URL)
	require.NoError(t, err)
	admin, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{u.Host}, DisableCache: true})
	require.NoError(t, err)
	defer admin.Close()
	require.NoError(t, admin.Do(ctx, admin.B().Arbitrary("ACL", "SETUSER", "follower", "on", ">pw", "~*", "&*", "+@all", "-xrange").Build()).Error())

	cfg := rs.Config()
	u.User = url.UserPassword("follower", "pw")
	cfg.URL = u.String()
	store, err := storage.Open(ctx, cfg, zap.NewNop())
	require.NoError(t, err)
	defer store.Close()
	require.Error(t, store.Client.Do(ctx, store.Client.B().Xrange().Key("x").Start("-").End("+").Build()).Error(), "the user may not run XRANGE")
	s, err := New(ctx, store, Config{}, zap.NewNop())
	require.NoError(t, err)

	p, _ := json.Marshal(map[string]string{"prompt": "a fox"})
	r, err := s.Submit(ctx, SubmitRequest{Tenant: "api:t", User: "u", Payload: p})
	require.NoError(t, err)
	_, err = s.Cancel(ctx, r.ID, "u")
	require.NoError(t, err)
	var seen []EventType
	err = s.Follow(ctx, r.ID, 0, func(e Event) error { seen = append(seen, e.Type); return nil })
	require.Error(t, err, "a failed read of the stream is not the end of the job")
	require.ErrorContains(t, err, "NOPERM")
	require.NotContains(t, seen, EventCanceled, "the end was not reported")
}

// A follower whose Redis goes away mid-follow reports an error, never the
// end of the job. (rueidis retries the read-only XREAD until the context
// ends, so the error may be the follower's own deadline.)
func TestFollowRedisOutageIsNotTheEnd(t *testing.T) {
	t.Parallel()
	rs := redistest.NewServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	store, err := storage.Open(ctx, rs.Config(), zap.NewNop())
	require.NoError(t, err)
	defer store.Close()
	s, err := New(ctx, store, Config{}, zap.NewNop())
	require.NoError(t, err)
	p, _ := json.Marshal(map[string]string{"prompt": "a fox"})
	r, err := s.Submit(ctx, SubmitRequest{Tenant: "api:t", User: "u", Payload: p})
	require.NoError(t, err)

	followCtx, stopFollow := context.WithCancel(ctx)
	defer stopFollow()
	first := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- s.Follow(followCtx, r.ID, 0, func(e Event) error {
			if e.Type == EventQueued {
				close(first)
			}
			return nil
		})
	}()
	select {
	case <-first:
	case <-ctx.Done():
		t.Fatal("no first event")
	}
	rs.Stop()
	// The follower gets a while to notice; then it is told to stop. Either
	// way it must not report the job done.
	timer := time.AfterFunc(2*time.Second, stopFollow)
	defer timer.Stop()
	select {
	case err := <-done:
		require.Error(t, err, "an outage is not the end of the job")
	case <-ctx.Done():
		t.Fatal("Follow did not return")
	}
}
