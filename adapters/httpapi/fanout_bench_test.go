package httpapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"runtime"
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

// openIdle opens n event streams on job and waits until each has its
// first event (it is then subscribed), reading with a small buffer so the
// client side adds little to the measurement.
func openIdle(tb testing.TB, b *bundle, job string, n int) []net.Conn {
	tb.Helper()
	addr := strings.TrimPrefix(b.srv.URL, "http://")
	conns := make([]net.Conn, n)
	for i := range conns {
		conns[i] = rawStream(tb, addr, "/v1/jobs/"+job+"/events")
	}
	buf := make([]byte, 512)
	for _, c := range conns {
		var got []byte
		for !strings.Contains(string(got), "event: queued") {
			k, err := c.Read(buf)
			require.NoError(tb, err)
			got = append(got, buf[:k]...)
		}
	}
	return conns
}

func inUse() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse + m.StackInuse
}

// BenchmarkIdleStreamMemory reports the memory `serve` holds per idle
// event stream (heap and goroutine stacks, client sockets included).
func BenchmarkIdleStreamMemory(bb *testing.B) {
	const n = 2000
	b := setup(bb, opts{cfg: httpapi.Config{MaxStreamsPerAddr: n, MaxStreamsPerKey: n},
		sched: scheduler.Config{Lease: time.Hour}, timeout: 10 * time.Minute})
	job := heldJob(bb, b)
	openIdle(bb, b, job, 10) // warm up: feed, connections pools, scripts
	var per float64
	bb.ResetTimer()
	for range bb.N {
		before := inUse()
		conns := openIdle(bb, b, job, n)
		after := inUse()
		per += float64(after-before) / n
		for _, c := range conns {
			c.Close()
		}
	}
	bb.ReportMetric(per/float64(bb.N), "B/stream")
}

// BenchmarkStartLatency measures a job's start latency (submit to its
// started event) on an idle `serve` and with 2 000 idle event streams held
// on another job.
func BenchmarkStartLatency(bb *testing.B) {
	for _, n := range []int{0, 2000} {
		bb.Run(fmt.Sprintf("streams=%d", n), func(bb *testing.B) {
			b := setup(bb, opts{cfg: httpapi.Config{MaxStreamsPerAddr: n + 10, MaxStreamsPerKey: n + 10},
				sched: scheduler.Config{Lease: time.Hour}, timeout: 10 * time.Minute})
			job := heldJob(bb, b)
			conns := openIdle(bb, b, job, n)
			defer func() {
				for _, c := range conns {
					c.Close()
				}
			}()
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
				// Let it finish so the next one starts on a free slot.
				require.NoError(bb, b.sched.Follow(b.ctx, id, 0, func(scheduler.Event) error { return nil }))
			}
			bb.StopTimer()
			var sum time.Duration
			for _, l := range lat {
				sum += l
			}
			bb.ReportMetric(float64(sum.Microseconds())/float64(len(lat))/1000, "ms/start")
		})
	}
}
