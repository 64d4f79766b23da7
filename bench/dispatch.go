package bench

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"
)

// DispatchLatency fills the queue with work from tenants tenants, then
// measures single dispatches (a worker offering one slot, the script picking
// the fairest job and moving it to the work stream) n times.
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
	lat := make([]time.Duration, 0, n)
	for range n {
		t0 := time.Now()
		d, err := r.sched.Offer(ctx, 1)
		if err != nil {
			return nil, err
		}
		if d != 1 {
			return nil, fmt.Errorf("dispatched %d jobs, want 1", d)
		}
		lat = append(lat, time.Since(t0))
	}
	return lat, nil
}
