package httpapi_test

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/easelbot/easel/adapters/httpapi"
	"github.com/easelbot/easel/scheduler"
)

// rawStream opens an event stream on a bare connection and sends the
// request, reading nothing: the server's writes wait in the socket
// buffers, so thousands of streams need no client goroutines.
func rawStream(t testing.TB, addr, path string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	_, err = fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: easel\r\nAccept: text/event-stream\r\n\r\n", path)
	require.NoError(t, err)
	return c
}

// 2 000 event streams on one job, held while a worker runs other jobs:
// every stream sees the job's whole life, and the other jobs finish.
//
// Not parallel: it loads the machine for seconds, which would make other
// tests' timings (rate-limit Retry-After) drift; alone, it runs first.
func TestTwoThousandStreamsOnOneJob(t *testing.T) {
	const n = 2000
	// Under the race detector 2 000 streams load the machine: allow Redis
	// calls more than the default 2s.
	b := setup(t, opts{cfg: httpapi.Config{MaxStreamsPerAddr: n, MaxStreamsPerKey: n, RedisTimeout: 20 * time.Second},
		timeout: 2 * time.Minute})
	resp, m := b.do(t, "POST", "/v1/jobs", "", map[string]any{"prompt": "watched", "user": "watched", "steps": 10})
	require.Equal(t, http.StatusAccepted, resp.StatusCode, m)
	id := m["id"].(string)
	addr := strings.TrimPrefix(b.srv.URL, "http://")
	conns := make([]net.Conn, n)
	for i := range conns {
		conns[i] = rawStream(t, addr, "/v1/jobs/"+id+"/events")
		defer conns[i].Close()
	}
	// Every stream is subscribed once its first event is out; wait for
	// that through the job's own feed: the worker starts only then.
	deadline, _ := b.ctx.Deadline()
	readers := make([]*bufio.Reader, n)
	for i, c := range conns {
		require.NoError(t, c.SetReadDeadline(deadline))
		readers[i] = bufio.NewReader(c)
		for {
			line, err := readers[i].ReadString('\n')
			require.NoError(t, err, "stream %d", i)
			if strings.HasPrefix(line, "event: queued") {
				break
			}
		}
	}
	b.startWorker(t)
	var others []string
	for i := 0; i < 5; i++ {
		resp, m := b.do(t, "POST", "/v1/jobs", "", map[string]any{"prompt": fmt.Sprint("other ", i), "user": "other", "steps": 5})
		require.Equal(t, http.StatusAccepted, resp.StatusCode, m)
		others = append(others, m["id"].(string))
	}
	for _, o := range append(others, id) {
		require.NoError(t, b.sched.Follow(b.ctx, o, 0, func(scheduler.Event) error { return nil }))
		j, err := b.sched.Get(b.ctx, o)
		require.NoError(t, err)
		require.Equal(t, scheduler.StatusSucceeded, j.Status, o)
	}
	for i := range conns {
		var types []string
		sc := bufio.NewScanner(readers[i])
		for sc.Scan() {
			if ev, ok := strings.CutPrefix(sc.Text(), "event: "); ok {
				if len(types) == 0 || types[len(types)-1] != ev {
					types = append(types, ev)
				}
				if ev == "succeeded" {
					break
				}
			}
		}
		require.Equal(t, []string{"started", "progress", "succeeded"}, types, "stream %d", i)
	}
}
