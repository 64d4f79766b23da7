package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/easelbot/easel/scheduler"
)

// feed is the Server's one reader of the shared events stream: a single
// blocking read, however many event streams and webhook followers are
// open, handing each event to the subscribers of its job through bounded
// buffers. A subscriber that falls behind loses buffered events, not
// events: it is marked lagged and re-reads its job's history.
type feed struct {
	sched *scheduler.Scheduler
	log   *zap.Logger
	// buffer is each subscription's capacity, in events.
	buffer int

	start sync.Once
	// ready is closed once the reader knows where the stream ends, so a
	// subscriber's history read cannot miss an event between the two.
	ready  chan struct{}
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}

	mu   sync.Mutex
	subs map[string]map[*subscription]struct{}
	// watches are wake-ups on any event of a tenant (the dashboard's
	// overview stream), by tenant.
	watches map[string]map[*tenantWatch]struct{}
}

// tenantWatch is woken (through a one-slot channel, so wakes fold) by
// every event of its tenant.
type tenantWatch struct {
	tenant string
	wake   chan struct{}
}

// fedEvent is an event shared by every subscriber of its job, encoded to
// JSON once for all of them.
type fedEvent struct {
	scheduler.Event
	once sync.Once
	data []byte
}

// JSON is the event's JSON encoding.
func (e *fedEvent) JSON() []byte {
	e.once.Do(func() { e.data, _ = json.Marshal(e.Event) })
	return e.data
}

// subscription is one follower of one job.
type subscription struct {
	job    string
	ch     chan *fedEvent
	lagged atomic.Bool
}

func newFeed(sched *scheduler.Scheduler, log *zap.Logger) *feed {
	f := &feed{sched: sched, log: log, buffer: 16, ready: make(chan struct{}), done: make(chan struct{}),
		subs: map[string]map[*subscription]struct{}{}, watches: map[string]map[*tenantWatch]struct{}{}}
	f.ctx, f.cancel = context.WithCancel(context.Background())
	return f
}

// stop ends the reader (if it started) and waits for it.
func (f *feed) stop() {
	f.cancel()
	// Before any subscriber, this marks the reader as never to start (it
	// then closes done itself).
	f.start.Do(func() { close(f.done) })
	<-f.done
}

func (f *feed) run() {
	defer close(f.done)
	after := ""
	backoff := 50 * time.Millisecond
	for f.ctx.Err() == nil {
		evs, next, err := f.sched.ReadEvents(f.ctx, after, 5*time.Second)
		if err != nil {
			if f.ctx.Err() != nil {
				return
			}
			f.log.Warn("event feed: read", zap.Error(err))
			t := time.NewTimer(backoff) // Redis is failing: retry, not spin
			select {
			case <-f.ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
			backoff = min(backoff*2, 2*time.Second)
			continue
		}
		backoff = 50 * time.Millisecond
		if after == "" {
			close(f.ready)
		}
		after = next
		for i := range evs {
			f.dispatch(&fedEvent{Event: evs[i]})
		}
	}
}

func (f *feed) dispatch(ev *fedEvent) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.subs[ev.JobID]) > 0 {
		ev.JSON() // here, not on an idle stream's stack (see offStack)
	}
	for sub := range f.subs[ev.JobID] {
		select {
		case sub.ch <- ev:
		default:
			sub.lagged.Store(true)
		}
	}
	for w := range f.watches[ev.Tenant] {
		select {
		case w.wake <- struct{}{}:
		default:
		}
	}
}

// watch wakes the returned watch on every event of tenant from now on;
// unwatch ends it. The feed's position is known once f.ready is closed.
func (f *feed) watch(tenant string) *tenantWatch {
	f.start.Do(func() { go f.run() })
	w := &tenantWatch{tenant: tenant, wake: make(chan struct{}, 1)}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.watches[tenant] == nil {
		f.watches[tenant] = map[*tenantWatch]struct{}{}
	}
	f.watches[tenant][w] = struct{}{}
	return w
}

func (f *feed) unwatch(w *tenantWatch) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.watches[w.tenant], w)
	if len(f.watches[w.tenant]) == 0 {
		delete(f.watches, w.tenant)
	}
}

func (f *feed) subscribe(job string) *subscription {
	f.start.Do(func() { go f.run() })
	sub := &subscription{job: job, ch: make(chan *fedEvent, f.buffer)}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.subs[job] == nil {
		f.subs[job] = map[*subscription]struct{}{}
	}
	f.subs[job][sub] = struct{}{}
	return sub
}

func (f *feed) unsubscribe(sub *subscription) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.subs[sub.job], sub)
	if len(f.subs[sub.job]) == 0 {
		delete(f.subs, sub.job)
	}
}

// errFeedStopped ends followers when the server stops.
var errFeedStopped = errors.New("event feed stopped")

// follow calls fn with each event of job whose Seq is above after, in
// order, until the terminal event (nil), ctx's end (its error), the job
// turning out unknown (scheduler.ErrNotFound) or fn's error. With idle
// set, it calls idle every idleEvery while no event comes (SSE keep-alives).
func (f *feed) follow(ctx context.Context, job string, after int64, fn func(*fedEvent) error,
	idleEvery time.Duration, idle func() error) error {
	sub := f.subscribe(job)
	defer f.unsubscribe(sub)
	select {
	case <-f.ready:
	case <-ctx.Done():
		return ctx.Err()
	case <-f.ctx.Done():
		return errFeedStopped
	}
	last := after
	// catchUp delivers what the job's stream holds past last; ended means
	// nothing more will come.
	catchUp := func() (ended bool, err error) {
		var evs []*fedEvent
		var over bool
		offStack(func() {
			var hist []scheduler.Event
			if hist, over, err = f.sched.History(ctx, job, last); err == nil {
				for _, e := range hist {
					fe := &fedEvent{Event: e}
					fe.JSON()
					evs = append(evs, fe)
				}
			}
		})
		if err != nil {
			return false, err
		}
		for _, e := range evs {
			if err := fn(e); err != nil {
				return false, err
			}
			last = e.Seq
			if e.Type.Terminal() {
				return true, nil
			}
		}
		return over, nil
	}
	if ended, err := catchUp(); ended || err != nil {
		return err
	}
	var tick <-chan time.Time
	if idle != nil {
		t := time.NewTicker(idleEvery)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-f.ctx.Done():
			return errFeedStopped
		case <-tick:
			if err := idle(); err != nil {
				return err
			}
		case e := <-sub.ch:
			// Dropped events (lagged) or a gap in the sequence: the job's
			// stream has them all.
			if sub.lagged.Swap(false) || e.Seq > last+1 {
				if ended, err := catchUp(); ended || err != nil {
					return err
				}
				continue
			}
			if e.Seq <= last {
				continue
			}
			if err := fn(e); err != nil {
				return err
			}
			last = e.Seq
			if e.Type.Terminal() {
				return nil
			}
		}
	}
}

// offStack runs fn on a goroutine of its own and waits for it: the deep
// calls of a Redis read and JSON encoding grow that goroutine's stack, not
// the one an idle stream waits on for as long as it lasts.
func offStack(fn func()) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn()
	}()
	<-done
}
