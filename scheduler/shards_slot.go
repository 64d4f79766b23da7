package scheduler

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.uber.org/zap"
)

// A worker slot with shards (shards.go) is one Slot per shard under a
// parent: each child offers the slot on its shard and listens on its
// shard's channel, and every delivery goes through the parent, which hands
// the worker one job at a time.

// multiSlot builds the parent slot of consumer over every shard.
func (s *Scheduler) multiSlot(consumer, backend string) *Slot {
	p := &Slot{s: s, Consumer: consumer, Backend: backend, member: consumer + "\t" + backend,
		deliveries: make(chan *Lease, 4*len(s.shards)), ready: make(chan struct{}), listed: make([]bool, len(s.shards))}
	for _, sh := range s.shards {
		c := sh.view.Slot(consumer, backend)
		c.parent = p
		p.subs = append(p.subs, c)
	}
	return p
}

// accept takes a delivery from a child: it waits for the parent's next
// Next, unless the slot already holds a job (or closed), when it is a
// double delivery and goes back to its queue.
func (p *Slot) accept(l *Lease) {
	p.mu.Lock()
	if p.holding || p.closed {
		p.mu.Unlock()
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			p.handBackDouble(ctx, l)
		}()
		return
	}
	select {
	case p.deliveries <- l:
		p.mu.Unlock()
	default:
		p.mu.Unlock()
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			p.handBackDouble(ctx, l)
		}()
	}
}

// handBackDouble returns a job delivered to a slot that holds one already
// (two shards dispatched to it at once) to the front of its user's queue.
func (p *Slot) handBackDouble(ctx context.Context, l *Lease) {
	p.s.doubles.Add(1)
	if err := l.HandBack(ctx); err != nil && !errors.Is(err, ErrStale) {
		p.s.log.Warn("hand back a second job delivered to a busy slot", zap.String("slot", p.Consumer),
			zap.String("job", l.JobID), zap.Error(err))
	}
}

// hold makes l the job the slot runs: deliveries still waiting are handed
// back, and the offers on other shards are taken back.
func (p *Slot) hold(ctx context.Context, l *Lease) *Lease {
	l.slot.take(l)
	p.mu.Lock()
	p.holding = true
	var extra []*Lease
drain:
	for {
		select {
		case x := <-p.deliveries:
			extra = append(extra, x)
		default:
			break drain
		}
	}
	p.mu.Unlock()
	// listed is the offers' bookkeeping, which Pause clears.
	p.offerMu.Lock()
	var ws []*shard
	for i, on := range p.listed {
		if on && p.subs[i] != l.slot {
			ws = append(ws, p.s.shards[i])
		}
		p.listed[i] = false
	}
	if len(ws) > 0 {
		for _, r := range p.s.execMulti(ctx, ws, withdrawCall{Member: p.member}) {
			if err := r.Error(); err != nil {
				// The offer runs out within a lease; a job it brings is handed back.
				p.s.log.Warn("withdraw slot from another shard", zap.String("slot", p.Consumer), zap.Error(err))
			}
		}
	}
	p.offerMu.Unlock()
	for _, x := range extra {
		p.handBackDouble(ctx, x)
	}
	return l
}

// nextMulti is Next over shards: the slot reads every shard's head and
// offers itself first where the head's virtual time is least (shards.go:
// Clocks), then on the other shards, and waits for a delivery from any.
func (p *Slot) nextMulti(ctx context.Context, block time.Duration) (*Lease, error) {
	p.mu.Lock()
	p.holding = false
	p.mu.Unlock()
	select {
	case l := <-p.deliveries:
		return p.hold(ctx, l), nil
	default:
	}
	for _, c := range p.subs {
		if err := c.listen(ctx); err != nil {
			return nil, err
		}
	}
	p.offerMu.Lock()
	if p.paused {
		resumed := p.resumed
		p.offerMu.Unlock()
		return p.waitPaused(ctx, block, resumed, p.deliveries, func(l *Lease) *Lease { return p.hold(ctx, l) })
	}
	l, err := p.offerShards(ctx)
	p.offerMu.Unlock()
	if err != nil {
		return nil, err
	}
	if l != nil {
		return p.hold(ctx, l), nil
	}
	if block <= 0 {
		select {
		case l := <-p.deliveries:
			return p.hold(ctx, l), nil
		default:
			return nil, nil
		}
	}
	t := time.NewTimer(min(block, p.s.cfg.Lease/2))
	defer t.Stop()
	select {
	case l := <-p.deliveries:
		return p.hold(ctx, l), nil
	case <-t.C:
		return nil, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// offerShards offers the slot on every shard, the one whose head's virtual
// time is least first; it returns the job one of them dispatched to it (for
// hold), or nil. Call with p.offerMu held.
func (p *Slot) offerShards(ctx context.Context) (*Lease, error) {
	hs := p.s.peekAll(ctx)
	p.rot = (p.rot + 1) % len(p.subs)
	c, rc := order(hs, p.rot)
	for _, h := range hs {
		if h.err != nil {
			return nil, fmt.Errorf("next: %w", h.err)
		}
		sub := p.subs[h.sh.i]
		res, err := sub.s.exec(ctx, offerFloorCall{slotCall: slotCall{Member: p.member, TTL: p.s.cfg.Lease, After: sub.unseen()},
			Floor: c, RelaxFloor: rc}).ToMessage()
		if err != nil {
			return nil, fmt.Errorf("next: offer: %w", err)
		}
		l, err := sub.deliveredLease(res)
		if err != nil {
			return nil, fmt.Errorf("next: %w", err)
		}
		if l != nil {
			return l, nil
		}
		p.listed[h.sh.i] = true
	}
	return nil, nil
}

// withdrawMulti takes back the slot's offers on every shard. Call with
// p.offerMu held.
func (p *Slot) withdrawMulti(ctx context.Context) error {
	var errs []error
	for _, r := range p.s.execMulti(ctx, p.s.shards, withdrawCall{Member: p.member}) {
		errs = append(errs, r.Error())
	}
	clear(p.listed)
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("withdraw slot: %w", err)
	}
	return nil
}

// advertiseMulti records the slot's capabilities on every shard.
func (p *Slot) advertiseMulti(ctx context.Context, caps Capabilities, ttl time.Duration) error {
	var errs []error
	for _, r := range p.s.execMulti(ctx, p.s.shards, capsCall{Member: p.member, TTL: ttl, Caps: caps}) {
		errs = append(errs, r.Error())
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("advertise slot: %w", err)
	}
	return nil
}

// closeMulti closes every child and hands back what waits.
func (p *Slot) closeMulti(ctx context.Context) error {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	var errs []error
	for _, c := range p.subs {
		errs = append(errs, c.Close(ctx))
	}
	for {
		select {
		case l := <-p.deliveries:
			if err := l.HandBack(ctx); err != nil && !errors.Is(err, ErrStale) {
				errs = append(errs, err)
			}
		default:
			if err := errors.Join(errs...); err != nil {
				return fmt.Errorf("close slot: %w", err)
			}
			return nil
		}
	}
}
