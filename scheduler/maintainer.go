package scheduler

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"go.uber.org/zap"
)

// Maintainer promotes due retries back into fair dispatch, reclaims work
// whose lease expired and announces queued jobs' places in line
// (positions.go); on the reclaim pace it trims the shared events stream
// by age (eventtrim.go). Any number of processes may run one; the scripts are
// atomic. It waits by blocking on the wake list until the next deadline
// (the next due retry or the next reclaim pass), never by polling.
type Maintainer struct {
	s        *Scheduler
	consumer string
	log      *zap.Logger
	cancel   context.CancelFunc
	done     chan struct{}
	once     sync.Once
	// passes is signalled after each pass; tests read it.
	passes chan struct{}
	// dirty marks the queue positions for a pass (positions.go); kick
	// runs the pass without waiting out the interval (tests); posPasses is
	// signalled after each positions pass (tests).
	dirty, kick, posPasses chan struct{}
	wg                     sync.WaitGroup
	// subs are the per-shard maintainers with shards (shards_read.go).
	subs []*Maintainer
}

// NewMaintainer returns a maintainer; consumer names it in the workers group.
func NewMaintainer(s *Scheduler, consumer string, log *zap.Logger) *Maintainer {
	m := &Maintainer{s: s, consumer: consumer, log: log, passes: make(chan struct{}, 1),
		dirty: make(chan struct{}, 1), kick: make(chan struct{}), posPasses: make(chan struct{}, 1)}
	m.shardSubs()
	return m
}

// Start runs the loop in a goroutine.
func (m *Maintainer) Start(ctx context.Context) error {
	if m.subs != nil {
		return m.startSubs(ctx)
	}
	ctx, cancel := context.WithCancel(context.Background())
	m.cancel = cancel
	m.done = make(chan struct{})
	m.wg.Add(2)
	go func() { defer m.wg.Done(); m.positions(ctx) }()
	go func() { defer m.wg.Done(); m.watchQueue(ctx) }()
	go func() { m.loop(ctx); m.wg.Wait(); close(m.done) }()
	return nil
}

// Stop ends the loop and waits for it.
func (m *Maintainer) Stop(ctx context.Context) error {
	if m.subs != nil {
		return m.stopSubs(ctx)
	}
	if m.cancel == nil {
		return nil
	}
	m.once.Do(m.cancel)
	select {
	case <-m.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (m *Maintainer) loop(ctx context.Context) {
	lease := m.s.cfg.Lease
	nextReclaim := time.Time{}
	for ctx.Err() == nil {
		now := m.s.cfg.Now()
		due, err := m.Promote(ctx)
		// Promoted retries are back in line.
		m.markPositions()
		if err == nil && !now.Before(nextReclaim) {
			_, err = m.Reclaim(ctx)
			nextReclaim = now.Add(lease / 2)
			if err == nil {
				// The shared events stream by age, at the reclaim pace.
				_, err = m.s.trimEvents(ctx)
			}
		}
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			m.log.Error("scheduler maintenance", zap.Error(err))
		}
		select {
		case m.passes <- struct{}{}:
		default:
		}
		wait := nextReclaim.Sub(m.s.cfg.Now())
		if due > 0 && err == nil {
			// due is by Redis's clock (the delayed set's scores): so is
			// the wait for it. By this machine's clock a retry would be
			// promoted late (clock behind) or the loop would spin (ahead).
			var at time.Time
			if at, err = m.s.redisNow(ctx); err == nil {
				if d := time.UnixMilli(due).Sub(at); d < wait {
					wait = d
				}
			}
		}
		if err != nil {
			wait = time.Second
		}
		if wait < 10*time.Millisecond {
			wait = 10 * time.Millisecond
		}
		c := m.s.client
		_ = c.Do(ctx, c.B().Blpop().Key(m.s.keys.Wake()).Timeout(wait.Seconds()).Build()).Error()
	}
}

// Promote moves due retries back into their queues and dispatches. It
// returns the due time (unix ms) of the next delayed job, or -1.
func (m *Maintainer) Promote(ctx context.Context) (int64, error) {
	if m.subs != nil {
		return m.promoteSubs(ctx)
	}
	due, err := m.s.exec(ctx, promoteCall{Max: 1000}).AsInt64()
	if err != nil {
		return 0, fmt.Errorf("promote: %w", err)
	}
	return due, nil
}

// Reclaim retries (or fails) jobs whose worker stopped renewing its lease.
// It follows XAUTOCLAIM's cursor through the whole pending list, so every
// expired lease is found however many entries are in flight.
func (m *Maintainer) Reclaim(ctx context.Context) (int, error) {
	if m.subs != nil {
		return m.reclaimSubs(ctx)
	}
	msg, _ := json.Marshal("the worker running this job stopped responding (lease expired)")
	total := 0
	cursor := "0-0"
	for {
		res, err := m.s.exec(ctx, reclaimCall{Lease: m.s.cfg.Lease, Consumer: m.consumer, Page: 100,
			MessageJSON: string(msg), Backoff: m.s.backoff(), Cursor: cursor}).ToArray()
		if err != nil {
			return total, fmt.Errorf("reclaim: %w", err)
		}
		if len(res) != 2 {
			return total, fmt.Errorf("reclaim: reply of %d elements", len(res))
		}
		n, err := res[0].AsInt64()
		if err != nil {
			return total, fmt.Errorf("reclaim: %w", err)
		}
		total += int(n)
		if cursor, err = res[1].ToString(); err != nil {
			return total, fmt.Errorf("reclaim: cursor: %w", err)
		}
		if cursor == "0-0" {
			if total > 0 {
				m.log.Warn("reclaimed jobs whose lease expired", zap.Int("jobs", total))
			}
			return total, nil
		}
	}
}
