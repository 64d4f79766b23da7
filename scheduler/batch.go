package scheduler

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"

	"github.com/redis/rueidis"

	"github.com/easelbot/easel/storage"
)

// Submits, and a worker's succeeds, are sent in batches: while one call of
// the script is in flight, the calls that arrive meanwhile wait and go
// together in the next one (at most maxBatch), which pays the script's fixed
// work (the call, the clock, the global hash read and written back) once
// for all of them. A call that finds nothing in flight goes at once, so an
// idle system adds no wait.
const maxBatch = 64

// submitBatch is several submits in one call of lua/submit.lua: the common
// KEYS and ARGV once, then each job's own in turn.
type submitBatch []submitCall

func (submitBatch) script() string { return scriptSubmit }

func (b submitBatch) keys(k storage.Keys) []string {
	out := make([]string, 0, 9*len(b))
	for _, c := range b {
		out = append(out, c.keys(k)...)
	}
	return out
}

func (b submitBatch) argv() []string {
	out := make([]string, 0, 22*len(b))
	for _, c := range b {
		out = append(out, c.argv()...)
	}
	return out
}

// succeedBatch is several succeeds in one call of lua/succeed.lua, each
// with the slot it comes from.
type succeedBatch []succeedCall

func (succeedBatch) script() string { return scriptSucceed }

func (b succeedBatch) keys(k storage.Keys) []string {
	out := make([]string, 0, len(b))
	for _, c := range b {
		out = append(out, c.keys(k)...)
	}
	return out
}

func (b succeedBatch) argv() []string {
	out := make([]string, 0, 9*len(b))
	for _, c := range b {
		out = append(out, c.argv()...)
	}
	return out
}

var errShortReply = errors.New("the reply has fewer elements than the batch")

// batchWait is one call waiting for its batch's reply.
type batchWait[T scriptCall] struct {
	ctx  context.Context
	call T
	done chan batchReply
}

type batchReply struct {
	msg rueidis.RedisMessage
	err error
}

// batcher gathers a shard's calls of one script into batches; one batch is
// in flight at a time.
type batcher[T scriptCall] struct {
	build   func([]T) scriptCall
	mu      sync.Mutex
	queue   []*batchWait[T]
	running bool
}

func newBatcher[T scriptCall](build func([]T) scriptCall) *batcher[T] {
	return &batcher[T]{build: build}
}

// batched runs c in b's next batch and returns its own reply element.
func batched[T scriptCall](ctx context.Context, s *Scheduler, b *batcher[T], c T) (rueidis.RedisMessage, error) {
	w := &batchWait[T]{ctx: ctx, call: c, done: make(chan batchReply, 1)}
	b.mu.Lock()
	b.queue = append(b.queue, w)
	lead := !b.running
	b.running = true
	b.mu.Unlock()
	if lead {
		runBatches(s, b)
	}
	select {
	case r := <-w.done:
		return r.msg, r.err
	case <-ctx.Done():
		select {
		case r := <-w.done: // answered meanwhile: the answer holds
			return r.msg, r.err
		default:
		}
		// The call may still run in its batch when others wait on it, as
		// a call canceled in flight may.
		return rueidis.RedisMessage{}, ctx.Err()
	}
}

// runBatches sends batches until none waits. The caller's own call is in
// the first; when more arrived meanwhile, a new goroutine carries on so the
// caller gets its answer at once. A call whose caller gave up before its
// batch left is not sent; a batch is canceled once every caller in it gave
// up (so a submit answered with an error during an outage is not admitted
// when Redis comes back); each of them then gets its own context's error.
func runBatches[T scriptCall](s *Scheduler, b *batcher[T]) {
	b.mu.Lock()
	var batch []*batchWait[T]
	for len(b.queue) > 0 && len(batch) < maxBatch {
		w := b.queue[0]
		b.queue = b.queue[1:]
		if err := w.ctx.Err(); err != nil {
			w.done <- batchReply{err: err}
			continue
		}
		batch = append(batch, w)
	}
	b.mu.Unlock()

	if len(batch) > 0 {
		ctx, cancel := context.WithCancel(context.Background())
		var waiting atomic.Int64
		waiting.Store(int64(len(batch)))
		calls := make([]T, len(batch))
		stops := make([]func() bool, len(batch))
		for i, w := range batch {
			calls[i] = w.call
			stops[i] = context.AfterFunc(w.ctx, func() {
				if waiting.Add(-1) == 0 {
					cancel()
				}
			})
		}
		res, err := s.exec(ctx, b.build(calls)).ToArray()
		for _, stop := range stops {
			stop()
		}
		gaveUp := ctx.Err() != nil // every caller did, before the reply
		cancel()
		for i, w := range batch {
			switch {
			case err != nil && gaveUp && w.ctx.Err() != nil:
				// The caller's own reason, not the batch's cancel: a
				// deadline (Redis too slow or reconnecting) is an outage
				// to callers (Unavailable: 503), a bare "context
				// canceled" an internal error (500).
				w.done <- batchReply{err: w.ctx.Err()}
			case err != nil:
				w.done <- batchReply{err: err}
			case i >= len(res):
				w.done <- batchReply{err: errShortReply}
			default:
				w.done <- batchReply{msg: res[i]}
			}
		}
	}

	b.mu.Lock()
	if len(b.queue) == 0 {
		b.running = false
		b.mu.Unlock()
		return
	}
	b.mu.Unlock()
	go runBatches(s, b)
}

// submit runs c in its shard's next submit batch.
func (s *Scheduler) submit(ctx context.Context, c submitCall) (rueidis.RedisMessage, error) {
	return batched(ctx, s, s.route(c).submits, c)
}

// succeedBatched runs c in its shard's next succeed batch.
func (s *Scheduler) succeedBatched(ctx context.Context, c succeedCall) (rueidis.RedisMessage, error) {
	return batched(ctx, s, s.route(c).succeeds, c)
}
