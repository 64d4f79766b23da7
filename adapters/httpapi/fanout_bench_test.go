package httpapi_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/easelbot/easel/adapters/httpapi"
	"github.com/easelbot/easel/scheduler"
)

// heldJob submits a job and leases it to a consumer that never runs it
// (the lease outlasts the benchmark), so its event streams stay open and
// idle while a real worker runs other jobs.
func heldJob(tb testing.TB, b *bundle) string {
	tb.Helper()
	id := submit(tb, b, "held")
	slot := b.sched.Slot("holder", "none")
	tb.Cleanup(func() { _ = slot.Close(context.Background()) })
	l, err := slot.Next(b.ctx, 5*time.Second)
	require.NoError(tb, err)
	require.NotNil(tb, l)
	require.Equal(tb, id, l.JobID)
	return id
}

func submit(tb testing.TB, b *bundle, prompt string) string {
	tb.Helper()
	resp, err := http.Post(b.srv.URL+"/v1/jobs", "application/json", strings.NewReader(`{"prompt":"`+prompt+`","steps":2}`))
	require.NoError(tb, err)
	defer resp.Body.Close()
	var m map[string]any
	require.NoError(tb, json.NewDecoder(resp.Body).Decode(&m))
	require.Equal(tb, http.StatusAccepted, resp.StatusCode, m)
	return m["id"].(string)
}

// inUseParts is the heap and the goroutine stacks in use, after two GCs.
func inUseParts() (heap, stack uint64) {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse, m.StackInuse
}

// holdStreamsEnv names, in a helper process, the event streams it holds:
// "<addr> <path> <n>". One process cannot hold 10 000 streams from both
// ends (20 000 sockets is this machine's per-process limit), so the
// clients live in a child process: the test binary run again.
const holdStreamsEnv = "HTTPAPI_BENCH_HOLD_STREAMS"

// holdStreams opens the streams holdStreamsEnv names, waits for each
// one's first event, says "ready" on stdout and holds them until stdin
// closes.
func holdStreams() int {
	var addr, path string
	var n int
	if _, err := fmt.Sscan(os.Getenv(holdStreamsEnv), &addr, &path, &n); err != nil {
		fmt.Fprintln(os.Stderr, "hold streams:", err)
		return 2
	}
	conns := make([]net.Conn, 0, n)
	buf := make([]byte, 512)
	for len(conns) < n {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			_, err = fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: easel\r\nAccept: text/event-stream\r\n\r\n", path)
		}
		for got := []byte{}; err == nil && !bytes.Contains(got, []byte("event: queued")); {
			var k int
			k, err = c.Read(buf)
			got = append(got, buf[:k]...)
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "hold streams: stream %d: %v\n", len(conns), err)
			return 1
		}
		conns = append(conns, c)
	}
	fmt.Println("ready")
	_, _ = io.Copy(io.Discard, os.Stdin)
	for _, c := range conns {
		c.Close()
	}
	return 0
}

// heldElsewhere has a child process open n idle event streams on job and
// returns once all are subscribed; the streams close at the end of tb.
func heldElsewhere(tb testing.TB, b *bundle, job string, n int) {
	tb.Helper()
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%s /v1/jobs/%s/events %d", holdStreamsEnv, strings.TrimPrefix(b.srv.URL, "http://"), job, n))
	stdin, err := cmd.StdinPipe()
	require.NoError(tb, err)
	stdout, err := cmd.StdoutPipe()
	require.NoError(tb, err)
	cmd.Stderr = os.Stderr
	require.NoError(tb, cmd.Start())
	tb.Cleanup(func() {
		stdin.Close()
		_ = cmd.Wait()
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	require.NoError(tb, err, "the helper holding the streams failed")
	require.Equal(tb, "ready\n", line)
}

// BenchmarkHeldStreams holds n idle event streams on one job (opened by a
// child process) and reports the memory `serve` holds per stream (heap and
// goroutine stacks, server side only, after two GCs) and the start latency
// (submit → started event) of jobs a worker runs meanwhile; streams=0 is
// the same with none held.
func BenchmarkHeldStreams(bb *testing.B) {
	for _, n := range []int{0, 2000, 10000} {
		bb.Run(fmt.Sprintf("streams=%d", n), func(bb *testing.B) {
			b := setup(bb, opts{cfg: httpapi.Config{MaxStreamsPerAddr: n + 10, MaxStreamsPerKey: n + 10, RedisTimeout: 30 * time.Second},
				sched: scheduler.Config{Lease: time.Hour}, timeout: 10 * time.Minute})
			job := heldJob(bb, b)
			heldElsewhere(bb, b, job, 10) // warm up: feed, connection pools, scripts
			heap0, stack0 := inUseParts()
			var heap, stack float64 // per stream
			if n > 0 {
				heldElsewhere(bb, b, job, n)
				heap1, stack1 := inUseParts()
				heap, stack = (float64(heap1)-float64(heap0))/float64(n), (float64(stack1)-float64(stack0))/float64(n)
			}
			b.startWorker(bb)
			var lat []time.Duration
			bb.ResetTimer()
			for range bb.N {
				t0 := time.Now()
				id := submit(bb, b, "measured")
				err := b.sched.Follow(b.ctx, id, 0, func(e scheduler.Event) error {
					if e.Type == scheduler.EventStarted {
						lat = append(lat, time.Since(t0))
						return context.Canceled // stop following
					}
					return nil
				})
				require.ErrorIs(bb, err, context.Canceled)
				require.NoError(bb, b.sched.Follow(b.ctx, id, 0, func(scheduler.Event) error { return nil }))
			}
			bb.StopTimer()
			slices.Sort(lat)
			ms := func(q float64) float64 { return float64(lat[int(q*float64(len(lat)-1))].Microseconds()) / 1000 }
			bb.ReportMetric(ms(0.5), "p50-ms/start")
			bb.ReportMetric(ms(0.99), "p99-ms/start")
			if n > 0 { // after ResetTimer, which drops reported metrics
				bb.ReportMetric(heap+stack, "B/stream")
				bb.ReportMetric(heap, "heap-B/stream")
				bb.ReportMetric(stack, "stack-B/stream")
			}
		})
	}
}
