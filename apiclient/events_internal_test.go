package apiclient

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// scripted serves event streams from a list of bodies, one per connection
// (the last one repeating), and records each Last-Event-ID. It stands in
// for a server misbehaving in ways the real one cannot be made to.
type scripted struct {
	mu      sync.Mutex
	bodies  []string
	ctype   string
	lastIDs []string
	// onRequest, when set, is called with the number of the connection.
	onRequest func(n int)
}

func (s *scripted) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	body := s.bodies[min(len(s.lastIDs), len(s.bodies)-1)]
	s.lastIDs = append(s.lastIDs, r.Header.Get("Last-Event-ID"))
	n := len(s.lastIDs)
	s.mu.Unlock()
	if s.onRequest != nil {
		s.onRequest(n)
	}
	w.Header().Set("Content-Type", s.ctype)
	fmt.Fprint(w, body)
}

func scriptedClient(t *testing.T, s *scripted) *Client {
	t.Helper()
	if s.ctype == "" {
		s.ctype = "text/event-stream; charset=utf-8"
	}
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	c, err := New(srv.URL, "", srv.Client())
	require.NoError(t, err)
	c.streamBackoff, c.streamBackoffMax = 0, 0 // no waiting in tests
	return c
}

func ev(seq int64, typ string) string {
	return fmt.Sprintf("id: %d\nevent: %s\ndata: {\"type\":%q,\"job_id\":\"j\",\"seq\":%d}\n\n", seq, typ, typ, seq)
}

// TestEventsResumeAfterCleanEnd: streams that end before the terminal
// event are resumed after the last event seen; replayed events are
// dropped.
func TestEventsResumeAfterCleanEnd(t *testing.T) {
	t.Parallel()
	s := &scripted{bodies: []string{
		ev(1, "queued") + ev(2, "started"),
		": keep-alive\n\n" + ev(2, "started") + ev(3, "progress"), // replays 2
		"event: error\ndata: {\"message\":\"redis hiccup\"}\n\n",
		ev(4, "succeeded") + ev(5, "progress"), // nothing is read after the end
	}}
	c := scriptedClient(t, s)
	var seqs []int64
	require.NoError(t, c.Events(context.Background(), "j", 0, func(e Event) error {
		seqs = append(seqs, e.Seq)
		return nil
	}))
	require.Equal(t, []int64{1, 2, 3, 4}, seqs)
	require.Equal(t, []string{"", "2", "3", "3"}, s.lastIDs)
}

func TestEventsGivesUp(t *testing.T) {
	t.Parallel()
	s := &scripted{bodies: []string{ev(1, "queued"), ": nothing new\n\n"}}
	c := scriptedClient(t, s)
	n := 0
	err := c.Events(context.Background(), "j", 0, func(Event) error { n++; return nil })
	require.ErrorContains(t, err, "gave up after 5 reconnects")
	require.Equal(t, 1, n)
	require.Len(t, s.lastIDs, 1+5)
}

func TestEventsNotAnEventStream(t *testing.T) {
	t.Parallel()
	c := scriptedClient(t, &scripted{bodies: []string{`{"id":"j"}`}, ctype: "application/json"})
	err := c.Events(context.Background(), "j", 0, func(Event) error { return nil })
	require.ErrorContains(t, err, "not an event stream")

	c = scriptedClient(t, &scripted{bodies: []string{"event: queued\ndata: {not json\n\n"}})
	err = c.Events(context.Background(), "j", 0, func(Event) error { return nil })
	require.ErrorContains(t, err, "queued event: ")
}

// TestEventsStopsWithContext: canceling the context ends Events, even
// in an hour-long reconnect pause.
func TestEventsStopsWithContext(t *testing.T) {
	t.Parallel()
	second := make(chan struct{})
	s := &scripted{bodies: []string{ev(1, "queued"), ""}, onRequest: func(n int) {
		if n == 2 {
			close(second)
		}
	}}
	c := scriptedClient(t, s)
	c.streamBackoff, c.streamBackoffMax = time.Hour, time.Hour
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-second // the stream brought nothing: Events pauses
		cancel()
	}()
	err := c.Events(ctx, "j", 0, func(Event) error { return nil })
	require.ErrorIs(t, err, context.Canceled)
}

func TestReconnectDelay(t *testing.T) {
	t.Parallel()
	c, err := New("http://h", "", nil)
	require.NoError(t, err)
	dropped := streamError{err: errors.New("x")}
	for _, tc := range []struct {
		n          int
		progressed bool
		err        error
		want       time.Duration
	}{
		{1, true, dropped, 0},
		{1, false, dropped, 250 * time.Millisecond},
		{2, false, dropped, 500 * time.Millisecond},
		{4, false, dropped, 2 * time.Second},
		{5, false, dropped, 4 * time.Second},
		{9, false, dropped, 4 * time.Second},
		{1, false, streamError{err: dropped.err, retry: 3 * time.Second}, 3 * time.Second},
		{2, false, &APIError{Status: 503, RetryAfter: 10 * time.Second}, 10 * time.Second},
		{1, false, &APIError{Status: 503, RetryAfter: time.Hour}, time.Minute},
	} {
		require.Equal(t, tc.want, c.reconnectDelay(tc.n, tc.progressed, tc.err), "%+v", tc)
	}
}
