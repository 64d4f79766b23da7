package worker_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/easelbot/easel/scheduler"
	"github.com/easelbot/easel/sdclient"
	"github.com/easelbot/easel/sdclient/fakesd"
	"github.com/easelbot/easel/worker"
)

// A job whose backend stalls is retried on another backend that can run
// it, even when the stalled backend's slot is the only free one at the
// time of the retry: the retry waits for the other slot rather than going
// back to the backend that just hung.
//
// The hung backend (a fake A1111 that accepts requests and never answers)
// takes the job first; a healthy backend joins and takes a second, longer
// job; the stall is detected while that one runs, so the hung backend's
// slot is free and the healthy one busy when the retry is due.
func TestStallRetryPrefersAnotherBackend(t *testing.T) {
	t.Parallel()
	ctx, sched := scheduled(t, scheduler.Config{MaxAttempts: 3, RetryBackoff: time.Millisecond, RetryBackoffMax: time.Millisecond})
	hung := fakesd.New(fakesd.Config{StepDuration: 5 * time.Millisecond})
	hung.SetHang(true)
	// The second job holds the healthy backend for 60 × 25 ms, well past
	// the hung one's 300 ms stall timeout.
	good := fakesd.New(fakesd.Config{StepDuration: 25 * time.Millisecond})

	started := make(chan string, 16)
	advertised := make(chan string, 4)
	observe := func(o worker.Observation) {
		switch o.Kind {
		case "started":
			started <- o.Backend + " " + o.JobID
		case "advertised":
			advertised <- o.Backend
		}
	}
	wait := func(ch chan string, what string) string {
		t.Helper()
		select {
		case v := <-ch:
			return v
		case <-ctx.Done():
			t.Fatalf("no %s", what)
		}
		return ""
	}
	submit := func(steps int) string {
		t.Helper()
		p, _ := json.Marshal(sdclient.Request{Prompt: "a lighthouse", Width: 64, Height: 64, Steps: steps, Seed: 1, Count: 1})
		r, err := sched.Submit(ctx, scheduler.SubmitRequest{Tenant: "api:t", User: "u", Payload: p, Images: 1})
		require.NoError(t, err)
		return r.ID
	}

	startWorker(t, ctx, sched, "w-hung", []worker.Backend{{Name: "hung", Backend: backendOn(t, hung)}}, observe)
	require.Equal(t, "hung", wait(advertised, "advertisement"))
	stalled := submit(4)
	require.Equal(t, "hung "+stalled, wait(started, "start on the hung backend"))
	long := submit(60)
	startWorker(t, ctx, sched, "w-good", []worker.Backend{{Name: "good", Backend: backendOn(t, good)}}, observe)
	require.Equal(t, "good "+long, wait(started, "start of the long job on the healthy backend"))

	var evs []scheduler.Event
	require.NoError(t, sched.Follow(ctx, stalled, 0, func(e scheduler.Event) error { evs = append(evs, e); return nil }))
	var ran []string
	for _, e := range evs {
		if e.Type == scheduler.EventStarted {
			ran = append(ran, e.Backend)
		}
	}
	require.Equal(t, scheduler.EventSucceeded, evs[len(evs)-1].Type, "%v", evs)
	require.Equal(t, []string{"hung", "good"}, ran, "the retry ran on the other backend, not on the one that stalled")
}
