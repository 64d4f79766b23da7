package scheduler

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/rueidis"
	"go.uber.org/zap"
)

// Slot is one worker slot (one backend of one worker). While it waits for
// work it is offered to the scheduler, with an offer that lasts one Lease
// and is renewed by every Next: a worker killed without a goodbye stops
// renewing, and its slot stops taking work when the offer runs out. A job is
// dispatched to one slot: its entry goes into the slot's consumer's pending
// list (the lease), the job is running, and the slot hears of it on its own
// pub/sub channel, or in the reply of its own script (SucceedAndOffer).
type Slot struct {
	s        *Scheduler
	Consumer string
	Backend  string
	member   string
	channel  string

	deliveries chan *Lease

	mu        sync.Mutex
	listening bool
	ready     chan struct{}
	stop      context.CancelFunc
	done      chan struct{}
	// last is the newest entry delivered, for the rescan after a reconnect.
	last string
	// taken is the newest entry Next handed to the worker. The offer check
	// looks for entries after it, not after last: a delivery that arrived
	// but still waits in deliveries must keep the slot from being offered
	// again, or the slot would hold two jobs at once.
	taken string

	// offerMu orders Next's offer against Pause's withdrawal, so an offer
	// made before a Pause is taken back by it and none is made after.
	offerMu sync.Mutex
	// paused is set by Pause until Resume; resumed is closed by Resume
	// (both guarded by offerMu).
	paused  bool
	resumed chan struct{}

	// With shards (shards_slot.go): a parent has one child per shard
	// (subs); a child's deliveries go to its parent, which holds one job at
	// a time (holding) and knows on which shards it is offered (listed).
	subs            []*Slot
	parent          *Slot
	holding, closed bool
	listed          []bool
	rot             int
}

// Slot returns the worker slot of consumer (unique per worker and backend)
// serving backend.
func (s *Scheduler) Slot(consumer, backend string) *Slot {
	if len(s.shards) > 1 {
		return s.multiSlot(consumer, backend)
	}
	return &Slot{s: s, Consumer: consumer, Backend: backend, member: consumer + "\t" + backend,
		channel: s.keys.SlotChannel(consumer), deliveries: make(chan *Lease, 4), ready: make(chan struct{})}
}

// push hands a delivered lease to the slot's next Next.
func (sl *Slot) push(l *Lease) {
	sl.saw(l.EntryID)
	if sl.parent != nil {
		sl.parent.accept(l)
		return
	}
	sl.deliveries <- l
}

// saw notes a work entry delivered to the slot.
func (sl *Slot) saw(entry string) {
	sl.mu.Lock()
	if entryAfter(entry, sl.last) {
		sl.last = entry
	}
	sl.mu.Unlock()
}

// take notes that Next handed lease l to the worker and returns it.
func (sl *Slot) take(l *Lease) *Lease {
	sl.mu.Lock()
	if entryAfter(l.EntryID, sl.taken) {
		sl.taken = l.EntryID
	}
	sl.mu.Unlock()
	return l
}

// unseen is the first work entry id after the newest one Next handed to the
// worker ("-": none yet).
func (sl *Slot) unseen() string {
	sl.mu.Lock()
	last := sl.taken
	sl.mu.Unlock()
	ms, seq, ok := strings.Cut(last, "-")
	n, err := strconv.ParseUint(seq, 10, 64)
	if !ok || err != nil {
		return "-"
	}
	return ms + "-" + strconv.FormatUint(n+1, 10)
}

// entryAfter reports whether stream entry id a comes after b ("" before all).
func entryAfter(a, b string) bool {
	am, as, _ := strings.Cut(a, "-")
	bm, bs, _ := strings.Cut(b, "-")
	an, _ := strconv.ParseUint(am, 10, 64)
	bn, _ := strconv.ParseUint(bm, 10, 64)
	if an != bn {
		return an > bn
	}
	ai, _ := strconv.ParseUint(as, 10, 64)
	bi, _ := strconv.ParseUint(bs, 10, 64)
	return ai > bi || b == ""
}

// Next offers the slot (renewing its offer) and waits up to block for a job
// dispatched to it (block 0: do not wait). It returns (nil, nil) when none
// came in time.
func (sl *Slot) Next(ctx context.Context, block time.Duration) (*Lease, error) {
	if sl.subs != nil {
		return sl.nextMulti(ctx, block)
	}
	select {
	case l := <-sl.deliveries:
		return sl.take(l), nil
	default:
	}
	if err := sl.listen(ctx); err != nil {
		return nil, err
	}
	sl.offerMu.Lock()
	if sl.paused {
		resumed := sl.resumed
		sl.offerMu.Unlock()
		return sl.waitPaused(ctx, block, resumed, sl.deliveries, sl.take)
	}
	res, err := sl.s.exec(ctx, slotCall{Member: sl.member, TTL: sl.s.cfg.Lease, After: sl.unseen()}).ToMessage()
	sl.offerMu.Unlock()
	if err != nil {
		return nil, fmt.Errorf("next: offer: %w", err)
	}
	l, err := sl.deliveredLease(res)
	if err != nil {
		return nil, fmt.Errorf("next: %w", err)
	}
	if l != nil {
		return sl.take(l), nil
	}
	if block <= 0 {
		select {
		case l := <-sl.deliveries:
			return sl.take(l), nil
		default:
			return nil, nil
		}
	}
	// Come back before the offer runs out, to renew it.
	t := time.NewTimer(min(block, sl.s.cfg.Lease/2))
	defer t.Stop()
	select {
	case l := <-sl.deliveries:
		return sl.take(l), nil
	case <-t.C:
		return nil, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// waitPaused is Next while the slot is paused: it offers nothing and waits
// up to block for a job dispatched before the pause, or for Resume (then it
// returns (nil, nil), and the next Next offers the slot).
func (sl *Slot) waitPaused(ctx context.Context, block time.Duration, resumed <-chan struct{},
	deliveries <-chan *Lease, take func(*Lease) *Lease) (*Lease, error) {
	if block <= 0 {
		select {
		case l := <-deliveries:
			return take(l), nil
		default:
			return nil, nil
		}
	}
	t := time.NewTimer(block)
	defer t.Stop()
	select {
	case l := <-deliveries:
		return take(l), nil
	case <-resumed:
		return nil, nil
	case <-t.C:
		return nil, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Pause takes back the slot's offer and keeps it from being offered until
// Resume (its backend is out of rotation while it waits for work): Next
// meanwhile only waits, for Resume or a job dispatched before the pause,
// which is still delivered. Safe to call while another goroutine is in
// Next. When the withdrawal fails, the offer still runs out within a lease.
func (sl *Slot) Pause(ctx context.Context) error {
	sl.offerMu.Lock()
	defer sl.offerMu.Unlock()
	if !sl.paused {
		sl.paused, sl.resumed = true, make(chan struct{})
	}
	return sl.withdraw(ctx)
}

// Resume ends a Pause: a Next waiting in it returns, and the next one
// offers the slot again.
func (sl *Slot) Resume() {
	sl.offerMu.Lock()
	defer sl.offerMu.Unlock()
	if sl.paused {
		sl.paused = false
		close(sl.resumed)
	}
}

// Withdraw takes back the slot's offer (its backend is out of rotation); the
// next Next offers it again. A job dispatched to it before the withdrawal
// is still delivered.
func (sl *Slot) Withdraw(ctx context.Context) error {
	sl.offerMu.Lock()
	defer sl.offerMu.Unlock()
	return sl.withdraw(ctx)
}

// withdraw is Withdraw with sl.offerMu held.
func (sl *Slot) withdraw(ctx context.Context) error {
	if sl.subs != nil {
		return sl.withdrawMulti(ctx)
	}
	if err := sl.s.exec(ctx, withdrawCall{Member: sl.member}).Error(); err != nil {
		return fmt.Errorf("withdraw slot: %w", err)
	}
	return nil
}

// Close withdraws the slot's offer and its capabilities, hands back a job
// that was dispatched to it and not yet taken, and stops listening.
func (sl *Slot) Close(ctx context.Context) error {
	if sl.subs != nil {
		return sl.closeMulti(ctx)
	}
	err := sl.forget(ctx)
	sl.mu.Lock()
	stop, done := sl.stop, sl.done
	sl.mu.Unlock()
	if stop != nil {
		stop()
		<-done
	}
	for {
		select {
		case l := <-sl.deliveries:
			if herr := l.HandBack(ctx); herr != nil && err == nil && !errors.Is(herr, ErrStale) {
				err = herr
			}
		default:
			if err != nil {
				return fmt.Errorf("close slot: %w", err)
			}
			return nil
		}
	}
}

// listen starts the slot's subscription once and waits until it is live, so
// no delivery is published before anyone listens.
func (sl *Slot) listen(ctx context.Context) error {
	sl.mu.Lock()
	if !sl.listening {
		sl.listening = true
		lctx, stop := context.WithCancel(context.Background())
		sl.stop, sl.done = stop, make(chan struct{})
		go sl.subscribe(lctx)
	}
	sl.mu.Unlock()
	select {
	case <-sl.ready:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// subscribe keeps the slot's channel subscribed. After a reconnect it reads
// the consumer's pending entries newer than the last delivery, so a job
// published while the connection was down is not lost.
func (sl *Slot) subscribe(ctx context.Context) {
	defer close(sl.done)
	var once sync.Once
	for first := true; ctx.Err() == nil; first = false {
		c, release := sl.s.client.Dedicate()
		subscribed := make(chan struct{}, 1)
		wait := c.SetPubSubHooks(rueidis.PubSubHooks{
			OnMessage: func(m rueidis.PubSubMessage) {
				if l := sl.parseDelivery(strings.SplitN(m.Message, "\n", 6)); l != nil {
					sl.push(l)
				}
			},
			OnSubscription: func(s rueidis.PubSubSubscription) {
				if s.Kind == "subscribe" {
					select {
					case subscribed <- struct{}{}:
					default:
					}
				}
			},
		})
		err := c.Do(ctx, c.B().Subscribe().Channel(sl.channel).Build()).Error()
		if err == nil {
			select {
			case <-subscribed:
				if !first {
					sl.rescan(ctx)
				}
				once.Do(func() { close(sl.ready) })
				select {
				case <-ctx.Done():
				case err = <-wait:
				}
			case err = <-wait:
			case <-ctx.Done():
			}
		}
		release()
		if ctx.Err() != nil {
			return
		}
		sl.s.log.Warn("worker slot subscription ended; subscribing again", zap.String("slot", sl.Consumer), zap.Error(err))
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}

// rescan delivers the consumer's pending entries newer than the last one
// seen whose job still runs under that attempt.
func (sl *Slot) rescan(ctx context.Context) {
	sl.mu.Lock()
	last := sl.last
	sl.mu.Unlock()
	if last == "" {
		last = "0-0"
	}
	c := sl.s.client
	res, err := c.Do(ctx, c.B().Xreadgroup().Group(WorkersGroup, sl.Consumer).Count(100).
		Streams().Key(sl.s.keys.Work()).Id(last).Build()).AsXRead()
	if err != nil {
		if !rueidis.IsRedisNil(err) {
			sl.s.log.Warn("worker slot rescan", zap.Error(err))
		}
		return
	}
	for _, e := range res[sl.s.keys.Work()] {
		id := e.FieldValues["id"]
		jobs, err := sl.s.getMany(ctx, []string{id})
		if err != nil || jobs[0] == nil || jobs[0].Status != StatusRunning || jobs[0].Attempt != atoiOr0(e.FieldValues["a"]) {
			continue
		}
		j := jobs[0]
		sl.push(&Lease{JobID: id, Attempt: j.Attempt, EntryID: e.ID, Consumer: sl.Consumer, Payload: j.Payload,
			CreatedAt: j.CreatedAt, DispatchedAt: j.StartedAt, s: sl.s, slot: sl})
	}
}

func atoiOr0(s string) int {
	n, _ := strconv.Atoi(s)
	return n
}
