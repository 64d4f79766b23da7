package worker_test

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/easelbot/easel/internal/redistest"
	"github.com/easelbot/easel/scheduler"
	"github.com/easelbot/easel/sdclient"
	"github.com/easelbot/easel/sdclient/a1111"
	"github.com/easelbot/easel/sdclient/fakesd"
	"github.com/easelbot/easel/worker"
)

// BenchmarkStallToRetry measures what a hung backend costs a job: a fake
// A1111 that accepts the request and never answers, a 300 ms stall timeout,
// and a second, healthy backend that joins once the hung one holds the
// job. Reported: stall detection (first start → retrying event, whose
// floor is the stall timeout) and the retry's start (the moment the stall
// timeout ran out → the retry's started event on the healthy backend).
// Real redis-server, fakes over loopback HTTP, a fresh pair of backends
// for every job.
func BenchmarkStallToRetry(b *testing.B) {
	const stall = 300 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sched, err := scheduler.New(ctx, redistest.Store(b), scheduler.Config{MaxAttempts: 5, RetryBackoff: 5 * time.Millisecond,
		RetryBackoffMax: 20 * time.Millisecond}, zap.NewNop())
	require.NoError(b, err)
	m := scheduler.NewMaintainer(sched, "m", zap.NewNop())
	require.NoError(b, m.Start(ctx))
	defer func() { _ = m.Stop(context.Background()) }()

	backend := func(fake *fakesd.Server) (*a1111.Client, func()) {
		srv := httptest.NewServer(fake.Handler())
		c, err := a1111.New(a1111.Config{BaseURL: srv.URL, ProgressInterval: 5 * time.Millisecond,
			Timeouts: sdclient.Timeouts{Stall: stall}})
		require.NoError(b, err)
		return c, func() { c.Close(); srv.Close(); fake.Close() }
	}
	start := func(name string, be worker.Backend, observe func(worker.Observation)) func() {
		w, err := worker.New(worker.Config{Name: name, HealthInterval: 10 * time.Millisecond, BlockTimeout: time.Second},
			sched, []worker.Backend{be}, zap.NewNop())
		require.NoError(b, err)
		w.Observe(observe)
		require.NoError(b, w.Start(ctx))
		return func() {
			stop, c := context.WithTimeout(context.Background(), 10*time.Second)
			defer c()
			_ = w.Stop(stop)
		}
	}
	payload, _ := json.Marshal(map[string]any{"prompt": "a red fox", "width": 64, "height": 64, "steps": 4, "seed": 3, "count": 1})

	var detect, restart []time.Duration
	for i := 0; b.Loop(); i++ {
		stuck := fakesd.New(fakesd.Config{StepDuration: 5 * time.Millisecond})
		stuck.SetHang(true)
		stuckClient, closeStuck := backend(stuck)
		goodClient, closeGood := backend(fakesd.New(fakesd.Config{StepDuration: 5 * time.Millisecond}))
		took := make(chan struct{}, 1)
		stopStuck := start("stuck", worker.Backend{Name: "stuck", Backend: stuckClient}, func(o worker.Observation) {
			if o.Kind == "started" {
				select {
				case took <- struct{}{}:
				default:
				}
			}
		})
		r, err := sched.Submit(ctx, scheduler.SubmitRequest{Tenant: "api:t", User: "u", Payload: payload, Images: 1})
		require.NoError(b, err)
		<-took
		stopGood := start("good", worker.Backend{Name: "good", Backend: goodClient}, func(worker.Observation) {})
		var starts []time.Time
		var retrying time.Time
		require.NoError(b, sched.Follow(ctx, r.ID, 0, func(e scheduler.Event) error {
			switch e.Type {
			case scheduler.EventStarted:
				starts = append(starts, e.Time)
			case scheduler.EventRetrying:
				if retrying.IsZero() {
					retrying = e.Time
				}
			}
			return nil
		}))
		require.Len(b, starts, 2, "one stalled attempt, one retry")
		detect = append(detect, retrying.Sub(starts[0]))
		restart = append(restart, starts[1].Sub(starts[0].Add(stall)))
		stopGood()
		stopStuck()
		closeGood()
		closeStuck()
	}
	b.ReportMetric(pct(detect, 50).Seconds()*1000, "ms-detect-p50")
	b.ReportMetric(pct(restart, 50).Seconds()*1000, "ms-stall-to-retry-p50")
	b.ReportMetric(pct(restart, 99).Seconds()*1000, "ms-stall-to-retry-p99")
}

func pct(d []time.Duration, p int) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[min(len(s)-1, len(s)*p/100)]
}
