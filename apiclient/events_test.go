package apiclient_test

import (
	"bytes"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/easelbot/easel/apiclient"
)

// TestEventsResumeAfterDrop cuts the first event stream after its second
// event; the client reconnects with Last-Event-ID and still sees every event
// once, in order, up to the terminal one.
func TestEventsResumeAfterDrop(t *testing.T) {
	t.Parallel()
	// Long enough for progress events (the worker polls every 250ms).
	b := setup(t, opts{step: 20 * time.Millisecond})
	target, err := url.Parse(b.url)
	require.NoError(t, err)
	proxy := relay(target)
	var mu sync.Mutex
	var lastIDs []string
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasSuffix(r.URL.Path, "/events") {
			proxy.ServeHTTP(w, r)
			return
		}
		mu.Lock()
		lastIDs = append(lastIDs, r.Header.Get("Last-Event-ID"))
		first := len(lastIDs) == 1
		mu.Unlock()
		if first {
			proxy.ServeHTTP(&cutWriter{ResponseWriter: w, limit: 2}, r)
			return
		}
		proxy.ServeHTTP(w, r)
	}))
	defer front.Close()
	c, err := apiclient.New(front.URL, "", nil)
	require.NoError(t, err)
	sub, err := c.Submit(b.ctx, apiclient.JobRequest{Prompt: "x", Steps: 20}, "")
	require.NoError(t, err)

	var seqs []int64
	var types []string
	require.NoError(t, c.Events(b.ctx, sub.ID, 0, func(e apiclient.Event) error {
		seqs = append(seqs, e.Seq)
		types = append(types, e.Type)
		return nil
	}))
	mu.Lock()
	defer mu.Unlock()
	require.GreaterOrEqual(t, len(lastIDs), 2)
	require.Equal(t, []string{"", "2"}, lastIDs[:2], "the second stream resumes after the last event seen")
	for i, s := range seqs {
		require.Equal(t, int64(i+1), s, "every event once, in order: %v", seqs)
	}
	require.Equal(t, apiclient.EventQueued, types[0])
	require.Contains(t, types, apiclient.EventProgress)
	require.Equal(t, apiclient.EventSucceeded, types[len(types)-1])
}

// cutWriter passes through limit SSE messages, then aborts the stream.
type cutWriter struct {
	http.ResponseWriter
	limit int
	seen  int
	// lastNL is whether the last byte written was a newline, so that a
	// message end split across writes is still counted.
	lastNL bool
}

func (w *cutWriter) Write(p []byte) (int, error) {
	written := 0
	for len(p) > 0 {
		if w.seen >= w.limit {
			w.Flush()
			panic(http.ErrAbortHandler)
		}
		n, ended := len(p), true
		if w.lastNL && p[0] == '\n' {
			n = 1
		} else if i := bytes.Index(p, []byte("\n\n")); i >= 0 {
			n = i + 2
		} else {
			ended = false
		}
		if _, err := w.ResponseWriter.Write(p[:n]); err != nil {
			return written, err
		}
		if ended {
			w.seen++
		}
		w.lastNL = !ended && p[n-1] == '\n'
		written += n
		p = p[n:]
	}
	return written, nil
}

func (w *cutWriter) Flush() { w.ResponseWriter.(http.Flusher).Flush() }

func TestEventsResumeFromLastSeq(t *testing.T) {
	t.Parallel()
	b := setup(t, opts{})
	sub, err := b.client.Submit(b.ctx, apiclient.JobRequest{Prompt: "x", Steps: 4}, "")
	require.NoError(t, err)
	var all []int64
	require.NoError(t, b.client.Events(b.ctx, sub.ID, 0, func(e apiclient.Event) error { all = append(all, e.Seq); return nil }))
	require.Greater(t, len(all), 2)
	var tail []int64
	require.NoError(t, b.client.Events(b.ctx, sub.ID, 2, func(e apiclient.Event) error { tail = append(tail, e.Seq); return nil }))
	require.Equal(t, all[2:], tail)
}

func TestEventsUnknownJobFailsAtOnce(t *testing.T) {
	t.Parallel()
	b := setup(t, opts{})
	err := b.client.Events(b.ctx, "no-such-job", 0, func(apiclient.Event) error { return nil })
	var ae *apiclient.APIError
	require.ErrorAs(t, err, &ae)
	require.Equal(t, http.StatusNotFound, ae.Status)
}

func TestEventsCallbackErrorEndsStream(t *testing.T) {
	t.Parallel()
	b := setup(t, opts{step: 5 * time.Millisecond})
	sub, err := b.client.Submit(b.ctx, apiclient.JobRequest{Prompt: "x", Steps: 20}, "")
	require.NoError(t, err)
	stop := errors.New("stop")
	n := 0
	err = b.client.Events(b.ctx, sub.ID, 0, func(apiclient.Event) error { n++; return stop })
	require.Same(t, stop, err)
	require.Equal(t, 1, n)
}
