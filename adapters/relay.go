package adapters

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/easelbot/easel/scheduler"
)

// Renderer shows a job's state on one platform.
type Renderer interface {
	// Kind is the origin kind it renders ("discord", "slack").
	Kind() string
	// MinInterval is the least time between two renders of one message.
	MinInterval() time.Duration
	// Render shows ev (the latest event) for job. Terminal events are
	// rendered once; an error is retried by the relay.
	Render(ctx context.Context, job *scheduler.Job, ev scheduler.Event) error
}

// OriginKind reads the "kind" of an origin.
func OriginKind(origin json.RawMessage) string {
	var o struct {
		Kind string `json:"kind"`
	}
	_ = json.Unmarshal(origin, &o)
	return o.Kind
}

// Relay delivers events to renderers.
type Relay struct {
	sched     *scheduler.Scheduler
	renderers map[string]Renderer
	consumer  string
	log       *zap.Logger

	// Lag is the time from a job event to its render call.
	Lag *prometheus.HistogramVec

	mu     sync.Mutex
	boxes  map[string]*mailbox
	kinds  map[string]string // job id → origin kind, so most events need no lookup
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// mailbox holds the latest undelivered event of one job.
type mailbox struct {
	pending *scheduler.Event
	// finalEntry is the stream entry of a terminal event, acknowledged only
	// once it is delivered, so a relay that dies first leaves it to another.
	finalEntry string
	running    bool
	last       time.Time
	lastSeq    int64
	finished   bool
	// wake cuts a coalescing wait short when the final event arrives.
	wake chan struct{}
}

// NewRelay returns a relay for the given renderers.
func NewRelay(sched *scheduler.Scheduler, log *zap.Logger, renderers ...Renderer) *Relay {
	host, _ := os.Hostname()
	r := &Relay{sched: sched, renderers: map[string]Renderer{}, log: log,
		consumer: fmt.Sprintf("relay-%s-%d", host, os.Getpid()), boxes: map[string]*mailbox{}, kinds: map[string]string{}}
	for _, x := range renderers {
		r.renderers[x.Kind()] = x
	}
	r.Lag = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "easel_relay_lag_seconds",
		Help:    "From a job event to the platform render call, by platform (coalescing waits included).",
		Buckets: prometheus.ExponentialBuckets(0.0005, 2, 20)}, []string{"platform"})
	return r
}

// SetConsumer names this relay in the consumer group (default
// relay-<host>-<pid>); call before Start.
func (r *Relay) SetConsumer(name string) { r.consumer = name }

// Start reads events in the background.
func (r *Relay) Start(context.Context) error {
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		for ctx.Err() == nil && !r.loopRecovered(ctx) {
			pause(ctx, time.Second)
		}
	}()
	return nil
}

// loopRecovered runs the read loop; a panic in it is logged and reported
// (false) so the loop starts again.
func (r *Relay) loopRecovered(ctx context.Context) (ok bool) {
	defer func() {
		if p := recover(); p != nil {
			r.log.Error("relay loop panicked; restarting it", zap.Any("panic", p), zap.Stack("stack"))
			ok = false
		}
	}()
	r.loop(ctx)
	return true
}

// Stop stops reading and waits for renders in flight until ctx ends.
func (r *Relay) Stop(ctx context.Context) error {
	if r.cancel == nil {
		return nil
	}
	r.cancel()
	done := make(chan struct{})
	go func() { r.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (r *Relay) loop(ctx context.Context) {
	// Entries this consumer read before a restart come first, then new ones.
	id := "0"
	seen := map[string]struct{}{}
	lastSweep := time.Now()
	for ctx.Err() == nil {
		entries, err := r.sched.RelayRead(ctx, r.consumer, id, 100, 5*time.Second)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			r.log.Warn("relay read", zap.Error(err))
			pause(ctx, time.Second)
			continue
		}
		if id == "0" {
			// A final still rendering stays pending, so reading from "0"
			// again returns it at once, without blocking: once a read of
			// the pending entries brings nothing new, read new entries (the
			// sweep takes over what a longer backlog leaves).
			fresh := entries[:0]
			for _, e := range entries {
				if _, ok := seen[e.ID]; !ok {
					seen[e.ID] = struct{}{}
					fresh = append(fresh, e)
				}
			}
			entries = fresh
			if len(entries) == 0 {
				id, seen = ">", nil
			}
		}
		for _, e := range entries {
			r.handle(ctx, e)
		}
		if time.Since(lastSweep) > 30*time.Second {
			lastSweep = time.Now()
			r.sweep(ctx)
		}
	}
}

// sweep takes over entries another relay read but never acknowledged (it
// died), so their final renders still happen.
func (r *Relay) sweep(ctx context.Context) {
	entries, err := r.sched.RelayTakeOver(ctx, r.consumer, time.Minute, 100, 10)
	if err != nil && ctx.Err() == nil {
		r.log.Warn("relay sweep", zap.Error(err))
	}
	for _, e := range entries {
		r.handle(ctx, e)
	}
}

func (r *Relay) ack(ctx context.Context, entryID string) {
	_ = r.sched.RelayAck(ctx, entryID)
}

// handle routes one stream entry: events of jobs no renderer owns are
// acknowledged at once; others go to the job's mailbox.
func (r *Relay) handle(ctx context.Context, e scheduler.RelayEntry) {
	ev, err := scheduler.DecodeEvent(e.Raw)
	if err != nil {
		r.ack(ctx, e.ID)
		return
	}
	r.mu.Lock()
	kind, known := r.kinds[ev.JobID]
	r.mu.Unlock()
	if !known {
		job, err := r.sched.Get(ctx, ev.JobID)
		if err != nil {
			r.ack(ctx, e.ID)
			return
		}
		kind = OriginKind(job.Origin)
		r.mu.Lock()
		if len(r.kinds) > 100000 {
			clear(r.kinds)
		}
		r.kinds[ev.JobID] = kind
		r.mu.Unlock()
	}
	rd := r.renderers[kind]
	if rd == nil {
		r.ack(ctx, e.ID)
		return
	}
	r.mu.Lock()
	box := r.boxes[ev.JobID]
	if box == nil {
		box = &mailbox{wake: make(chan struct{}, 1)}
		r.boxes[ev.JobID] = box
	}
	if ev.Seq <= box.lastSeq || box.finished || (box.pending != nil && box.pending.Seq >= ev.Seq) {
		r.mu.Unlock()
		r.ack(ctx, e.ID) // duplicate or stale
		return
	}
	box.pending = &ev
	start := !box.running
	box.running = true
	if ev.Type.Terminal() {
		box.finalEntry = e.ID
		select {
		case box.wake <- struct{}{}:
		default:
		}
	}
	r.mu.Unlock()
	if !ev.Type.Terminal() {
		r.ack(ctx, e.ID)
	}
	if start {
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			defer func() {
				if p := recover(); p != nil {
					// A renderer bug: this message stops updating, the relay goes
					// on; the final entry stays pending for the sweep.
					r.log.Error("relay render panicked", zap.String("job", ev.JobID), zap.Any("panic", p), zap.Stack("stack"))
					r.mu.Lock()
					box.running = false
					r.mu.Unlock()
				}
			}()
			r.deliver(ctx, rd, ev.JobID, box)
		}()
	}
}

// deliver renders the mailbox's latest event until it is empty; one render
// in flight per message, MinInterval apart, terminal events always.
func (r *Relay) deliver(ctx context.Context, rd Renderer, jobID string, box *mailbox) {
	for {
		r.mu.Lock()
		ev := box.pending
		if ev == nil {
			box.running = false
			if box.finished {
				delete(r.boxes, jobID)
			}
			r.mu.Unlock()
			return
		}
		wait := rd.MinInterval() - time.Since(box.last)
		terminal := ev.Type.Terminal()
		r.mu.Unlock()
		if !terminal && wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			case <-box.wake: // the final state arrived: no more waiting
				t.Stop()
			}
			continue
		}
		r.mu.Lock()
		ev = box.pending
		box.pending = nil
		r.mu.Unlock()
		if ev.Type.Terminal() {
			if r.final(ctx, rd, jobID, *ev) {
				r.mu.Lock()
				entry := box.finalEntry
				r.mu.Unlock()
				r.ack(ctx, entry)
			}
			r.mu.Lock()
			box.finished = true
			box.lastSeq = ev.Seq
			r.mu.Unlock()
			continue
		}
		job, err := r.sched.Get(ctx, jobID)
		if err == nil {
			r.Lag.WithLabelValues(rd.Kind()).Observe(time.Since(ev.Time).Seconds())
			err = rd.Render(ctx, job, *ev)
		}
		if err != nil && ctx.Err() == nil {
			r.log.Warn("relay render", zap.String("job", jobID), zap.Error(err))
		}
		r.mu.Lock()
		box.last = time.Now()
		box.lastSeq = ev.Seq
		r.mu.Unlock()
	}
}

// Final delivery: a claim lasts finalClaim, and each render under it is cut
// off at finalRender, so a claim never runs out while its render is still
// going (no double post).
const (
	finalClaim  = 2 * time.Minute
	finalRender = 90 * time.Second
)

// final renders a terminal event exactly once across relays and retries:
// a delivery record claims it, failures release the claim and retry. It
// reports whether the event is settled (delivered here or elsewhere). A
// claim held by another relay is not settled: the entry stays pending, and
// the sweep tries again after that claim is released or has run out (its
// relay died), so the final is not lost.
func (r *Relay) final(ctx context.Context, rd Renderer, jobID string, ev scheduler.Event) bool {
	backoff := 500 * time.Millisecond
	for attempt := 1; ctx.Err() == nil && attempt <= 8; attempt++ {
		claimed, delivered, err := r.sched.ClaimDelivery(ctx, jobID, r.consumer, finalClaim)
		if err != nil {
			pause(ctx, backoff)
			continue
		}
		if !claimed {
			return delivered
		}
		job, err := r.sched.Get(ctx, jobID)
		if err == nil {
			r.Lag.WithLabelValues(rd.Kind()).Observe(time.Since(ev.Time).Seconds())
			rctx, cancel := context.WithTimeout(ctx, finalRender)
			err = rd.Render(rctx, job, ev)
			cancel()
		}
		if err == nil {
			_ = r.sched.DeliveryDone(ctx, jobID, ev.Seq)
			return true
		}
		r.log.Warn("relay final render failed; retrying", zap.String("job", jobID), zap.Int("attempt", attempt), zap.Error(err))
		_ = r.sched.ReleaseDelivery(ctx, jobID)
		if !pause(ctx, backoff) {
			return false
		}
		backoff = min(backoff*2, 30*time.Second)
	}
	return false
}

func pause(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
