package bench

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"
)

// DispatchLatency fills the queue with work from tenants tenants, then
// measures single dispatches (a worker slot offering itself, the script
// picking the fairest job and delivering it to the slot) n times.
func DispatchLatency(ctx context.Context, url string, tenants, n int) ([]time.Duration, error) {
	r, err := newRig(ctx, url, 1, false)
	if err != nil {
		return nil, err
	}
	defer r.close()
	perTenant := n/tenants + 1
	var wg sync.WaitGroup
	errc := make(chan error, 32)
	for g := range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for t := g; t < tenants; t += 32 {
				for range perTenant {
					if _, err := r.submit(ctx, "api:t"+strconv.Itoa(t)); err != nil {
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
	slot := r.sched.Slot("bench-dispatch", "noop")
	defer func() { _ = slot.Close(ctx) }()
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
