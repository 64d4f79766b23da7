package main

import (
	"encoding/json"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/easelbot/easel/internal/redistest"
)

// output is what the process has written so far.
func (p *proc) output() string {
	w := p.cmd.Stdout.(*syncWriter)
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}

// TestRedisUnreachableIsOneLine: a Redis that does not answer ends serve
// with exit 1 and one line naming the redacted URL and EASEL_REDIS_URL,
// not a dependency-injection trace.
func TestRedisUnreachableIsOneLine(t *testing.T) {
	t.Parallel()
	dead := freeAddr(t) // nothing listens there
	out, code := easel(t, []string{"EASEL_REDIS_URL=redis://:hunter2hunter2@" + dead + "/0"}, "serve", "--addr", freeAddr(t))
	require.Equal(t, 1, code, out)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	require.Len(t, lines, 1, out)
	require.Contains(t, out, "EASEL_REDIS_URL")
	require.Contains(t, out, "redis://:xxxxx@"+dead+"/0")
	require.NotContains(t, out, "hunter2")
	require.NotContains(t, out, "fx.")
	require.NotContains(t, out, "could not build")
}

// TestPortInUseFailsBeforeStart: a taken HTTP port is reported, naming
// http.addr and EASEL_HTTP_ADDR, before anything starts (no Redis, no
// workers).
func TestPortInUseFailsBeforeStart(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	out, code := easel(t, []string{"EASEL_HTTP_ADDR=" + ln.Addr().String()}, "serve")
	require.Equal(t, 2, code, out)
	require.Contains(t, out, "http.addr")
	require.Contains(t, out, "EASEL_HTTP_ADDR")
	require.Contains(t, out, ln.Addr().String()+" is already in use")
	require.NotContains(t, out, "redis", "something started before the port check")
	require.NotContains(t, out, "fakesd")
}

// TestWorkerWithUnreachableBackend: the backend is named in a warning at
// start, and /readyz says not ready while no backend answers.
func TestWorkerWithUnreachableBackend(t *testing.T) {
	t.Parallel()
	rcfg := redistest.Config(t)
	dead, health := freeAddr(t), freeAddr(t)
	p := startProc(t, []string{"EASEL_REDIS_URL=" + rcfg.URL, "EASEL_REDIS_PREFIX=" + rcfg.Prefix, "EASEL_HTTP_ADDR=" + health,
		`EASEL_BACKENDS=[{name: gpu0, url: "http://u:sdpass@` + dead + `"}]`, sharedImages(t, nil)}, "worker")
	p.waitListening(t, health)
	resp, err := http.Get("http://" + health + "/readyz")
	require.NoError(t, err)
	var body map[string]string
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&body))
	resp.Body.Close()
	require.Equal(t, http.StatusServiceUnavailable, resp.StatusCode, body)
	require.Contains(t, body["reason"], "gpu0 unreachable")
	p.waitOutput(t, 10*time.Second, "backend unreachable at start")
	require.Contains(t, p.output(), "gpu0")
	require.NotContains(t, p.output(), "sdpass")
}
