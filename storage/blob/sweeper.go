package blob

import (
	"context"
	"sync"
	"time"

	"go.uber.org/zap"
)

// Sweeper runs a store's Sweep every interval. Several processes may sweep
// one store at once: deleting an expired blob twice is harmless.
type Sweeper struct {
	store    Store
	interval time.Duration
	now      func() time.Time
	log      *zap.Logger
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	// swept, when set, hears each pass's count (tests).
	swept chan int
}

// NewSweeper sweeps store every interval.
func NewSweeper(store Store, interval time.Duration, log *zap.Logger) *Sweeper {
	return &Sweeper{store: store, interval: interval, now: time.Now, log: log}
}

// Start sweeps once at once, then every interval, until Stop.
func (w *Sweeper) Start(context.Context) error {
	ctx, cancel := context.WithCancel(context.Background())
	w.cancel = cancel
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		t := time.NewTicker(w.interval)
		defer t.Stop()
		for {
			n, err := w.store.Sweep(ctx, w.now())
			if err != nil && ctx.Err() == nil {
				w.log.Warn("sweeping expired images", zap.Error(err))
			} else if n > 0 {
				w.log.Debug("swept expired images", zap.Int("deleted", n))
			}
			if w.swept != nil {
				select {
				case w.swept <- n:
				case <-ctx.Done():
				}
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	return nil
}

// Stop ends the loop and waits for it.
func (w *Sweeper) Stop(context.Context) error {
	if w.cancel != nil {
		w.cancel()
	}
	w.wg.Wait()
	return nil
}
