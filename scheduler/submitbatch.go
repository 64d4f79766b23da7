package scheduler

import (
	"context"
	"errors"
	"sync"

	"github.com/redis/rueidis"

	"github.com/easelbot/easel/storage"
)

// Submits are sent in batches: while one submit script is in flight, the
// submits that arrive meanwhile wait and go together in the next call (at
// most maxSubmitBatch), which pays the script's fixed work (the call, the
// clock, the global hash read and written back, the dispatch) once for all
// of them. A submit that finds nothing in flight goes at once, so an idle
// system adds no wait.
const maxSubmitBatch = 64

// submitBatch is several submits in one call of lua/submit.lua: the common
// KEYS and ARGV once, then each job's own in turn.
type submitBatch []submitCall

func (submitBatch) script() string { return scriptSubmit }

func (b submitBatch) keys(k storage.Keys) []string {
	out := make([]string, 0, 8*len(b))
	for _, c := range b {
		out = append(out, c.keys(k)...)
	}
	return out
}

func (b submitBatch) argv() []string {
	out := make([]string, 0, 21*len(b))
	for _, c := range b {
		out = append(out, c.argv()...)
	}
	return out
}

var errShortReply = errors.New("submit: the reply has fewer elements than the batch")

// submitWait is one submit waiting for its batch's reply.
type submitWait struct {
	call submitCall
	done chan submitReply
}

type submitReply struct {
	msg rueidis.RedisMessage
	err error
}

// submitter gathers a shard's submits into batches; one batch is in flight
// at a time.
type submitter struct {
	mu      sync.Mutex
	queue   []*submitWait
	running bool
}

// submit runs c in the next batch and returns its own reply element.
func (s *Scheduler) submit(ctx context.Context, c submitCall) (rueidis.RedisMessage, error) {
	w := &submitWait{call: c, done: make(chan submitReply, 1)}
	sb := s.route(c).submitter
	sb.mu.Lock()
	sb.queue = append(sb.queue, w)
	lead := !sb.running
	sb.running = true
	sb.mu.Unlock()
	if lead {
		s.runSubmits(ctx, sb)
	}
	select {
	case r := <-w.done:
		return r.msg, r.err
	case <-ctx.Done():
		// The submit may still be admitted by its batch, as a call
		// canceled in flight may.
		return rueidis.RedisMessage{}, ctx.Err()
	}
}

// runSubmits sends batches until none waits. The caller's own submit is in
// the first; when more arrived meanwhile, a new goroutine carries on so the
// caller gets its answer at once.
func (s *Scheduler) runSubmits(ctx context.Context, sb *submitter) {
	sb.mu.Lock()
	n := min(len(sb.queue), maxSubmitBatch)
	batch := append([]*submitWait(nil), sb.queue[:n]...)
	sb.queue = append(sb.queue[:0], sb.queue[n:]...)
	sb.mu.Unlock()

	calls := make(submitBatch, len(batch))
	for i, w := range batch {
		calls[i] = w.call
	}
	// The batch outlives a caller that gives up: others wait on it.
	res, err := s.exec(context.WithoutCancel(ctx), calls).ToArray()
	for i, w := range batch {
		switch {
		case err != nil:
			w.done <- submitReply{err: err}
		case i >= len(res):
			w.done <- submitReply{err: errShortReply}
		default:
			w.done <- submitReply{msg: res[i]}
		}
	}

	sb.mu.Lock()
	if len(sb.queue) == 0 {
		sb.running = false
		sb.mu.Unlock()
		return
	}
	sb.mu.Unlock()
	go s.runSubmits(context.WithoutCancel(ctx), sb)
}
