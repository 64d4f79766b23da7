package bench

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/easelbot/easel/scheduler"
)

// DispatchLatency fills the queue with work from tenants tenants, then
// measures single dispatches (a worker slot offering itself, the script
// picking the fairest job and delivering it to the slot) n times.
func DispatchLatency(ctx context.Context, url string, tenants, n int) ([]time.Duration, error) {
	return dispatchLatency(ctx, url, tenants, n, false)
}

// RoutedDispatchLatency is DispatchLatency with model-aware routing at work:
// every job names a model (alternately "a" and "b"; the slot has both, "a"
// loaded), and 8 tenants at the front of the line wait for a model "c" that
// no free slot has, so each dispatch looks past them.
func RoutedDispatchLatency(ctx context.Context, url string, tenants, n int) ([]time.Duration, error) {
	return dispatchLatency(ctx, url, tenants, n, true)
}

func dispatchLatency(ctx context.Context, url string, tenants, n int, routed bool) ([]time.Duration, error) {
	r, err := newRig(ctx, url, 1, false)
	if err != nil {
		return nil, err
	}
	defer r.close()
	slot := r.sched.Slot("bench-dispatch", "noop")
	defer func() { _ = slot.Close(ctx) }()
	model := func(i int) string { return "" }
	if routed {
		if err := slot.Advertise(ctx, scheduler.Capabilities{Models: []string{"a", "b"}, Loaded: "a"}, time.Hour); err != nil {
			return nil, err
		}
		// A busy slot has "c", so the waiting jobs are not unroutable.
		other := r.sched.Slot("bench-busy", "c")
		if err := other.Advertise(ctx, scheduler.Capabilities{Models: []string{"c"}}, time.Hour); err != nil {
			return nil, err
		}
		defer func() { _ = other.Close(ctx) }()
		for t := range 8 {
			if _, err := r.sched.Submit(ctx, scheduler.SubmitRequest{Tenant: "api:waiting" + strconv.Itoa(t), User: "u",
				Payload: payload, Images: 1, Model: "c"}); err != nil {
				return nil, err
			}
		}
		model = func(i int) string { return []string{"a", "b"}[i%2] }
	}
	perTenant := n/tenants + 1
	var wg sync.WaitGroup
	errc := make(chan error, 32)
	for g := range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for t := g; t < tenants; t += 32 {
				for i := range perTenant {
					if _, err := r.sched.Submit(ctx, scheduler.SubmitRequest{Tenant: "api:t" + strconv.Itoa(t), User: "u",
						Payload: payload, Images: 1, Model: model(t + i)}); err != nil {
						errc <- err
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	select {
	case err := <-errc:
		return nil, err
	default:
	}
	lat := make([]time.Duration, 0, n)
	for range n {
		t0 := time.Now()
		l, err := slot.Next(ctx, 0)
		if err != nil {
			return nil, err
		}
		if l == nil {
			return nil, fmt.Errorf("no job dispatched")
		}
		lat = append(lat, time.Since(t0))
	}
	return lat, nil
}
