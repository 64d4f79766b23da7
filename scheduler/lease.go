package scheduler

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/rueidis"
)

// Lease is a worker's hold on one attempt of a job, read from the work
// stream. Every write through it carries the attempt number; once the attempt
// is stale (canceled, reclaimed) every method returns ErrStale.
type Lease struct {
	JobID    string
	Attempt  int
	EntryID  string
	Consumer string
	// Payload is the job's request JSON, set by Start.
	Payload json.RawMessage
	// CreatedAt and DispatchedAt are when the job was submitted and when
	// this attempt left the queue, set by Start.
	CreatedAt, DispatchedAt time.Time
	s                       *Scheduler
}

// Offer tells the scheduler n more worker slots are free and dispatches
// waiting jobs onto the work stream for them. Returns how many were dispatched.
func (s *Scheduler) Offer(ctx context.Context, n int) (int, error) {
	d, err := s.exec(ctx, slotsCall{N: n}).AsInt64()
	if err != nil {
		return 0, fmt.Errorf("offer: %w", err)
	}
	return int(d), nil
}

// Withdraw takes back up to n offered slots that were not used.
func (s *Scheduler) Withdraw(ctx context.Context, n int) error {
	if err := s.exec(ctx, slotsCall{Withdraw: true, N: n}).Error(); err != nil {
		return fmt.Errorf("withdraw: %w", err)
	}
	return nil
}

// Next blocks up to block for one new work entry for consumer (block 0:
// do not wait). It returns (nil, nil) when none arrived in time.
func (s *Scheduler) Next(ctx context.Context, consumer string, block time.Duration) (*Lease, error) {
	b := s.client.B().Xreadgroup().Group(WorkersGroup, consumer).Count(1)
	var cmd rueidis.Completed
	if block > 0 {
		cmd = b.Block(block.Milliseconds()).Streams().Key(s.keys.Work()).Id(">").Build()
	} else {
		cmd = b.Streams().Key(s.keys.Work()).Id(">").Build()
	}
	res, err := s.client.Do(ctx, cmd).AsXRead()
	if rueidis.IsRedisNil(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("next: %w", err)
	}
	for _, e := range res[s.keys.Work()] {
		a, _ := strconv.Atoi(e.FieldValues["a"])
		return &Lease{JobID: e.FieldValues["id"], Attempt: a, EntryID: e.ID, Consumer: consumer, s: s}, nil
	}
	return nil, nil
}

// Start marks the attempt running on backend and loads the job's payload.
func (l *Lease) Start(ctx context.Context, backend string) error {
	name, _ := json.Marshal(backend)
	res, err := l.s.exec(ctx, startCall{ID: l.JobID, Attempt: l.Attempt, Backend: backend, BackendJSON: string(name)}).ToArray()
	if err != nil {
		return fmt.Errorf("start: %w", err)
	}
	ok, _ := res[0].AsInt64()
	if ok != 1 {
		// The entry belongs to a canceled or superseded attempt: drop it.
		l.s.client.DoMulti(ctx,
			l.s.client.B().Xack().Key(l.s.keys.Work()).Group(WorkersGroup).Id(l.EntryID).Build(),
		)
		return ErrStale
	}
	p, _ := res[1].ToString()
	l.Payload, _ = decodeRequest(p)
	if len(res) >= 4 {
		c, _ := res[2].AsInt64()
		d, _ := res[3].AsInt64()
		l.CreatedAt, l.DispatchedAt = time.UnixMilli(c), time.UnixMilli(d)
	}
	return nil
}

// Renew extends the lease; workers call it every Lease/3.
func (l *Lease) Renew(ctx context.Context) error {
	n, err := l.s.exec(ctx, attemptCall{Script: scriptRenew, ID: l.JobID, Attempt: l.Attempt, Consumer: l.Consumer}).AsInt64()
	if err != nil {
		return fmt.Errorf("renew: %w", err)
	}
	if n != 1 {
		return ErrStale
	}
	return nil
}

// Progress records and emits progress. preview, when not nil, is stored as a
// blob and named in the event.
func (l *Lease) Progress(ctx context.Context, step, steps int, fraction float64, eta time.Duration, preview []byte) error {
	ev := Event{Step: step, Steps: steps, Fraction: fraction, ETASec: eta.Seconds()}
	if preview != nil {
		ev.Preview = strconv.Itoa(l.Attempt) + "-" + strconv.Itoa(step)
		key := l.s.keys.Blob(l.JobID, l.Attempt, "p"+strconv.Itoa(step))
		if err := l.s.store.PutBlob(ctx, key, preview, time.Hour); err != nil {
			return fmt.Errorf("progress: %w", err)
		}
	}
	n, err := l.s.exec(ctx, progressCall{ID: l.JobID, Attempt: l.Attempt, Step: step, N: steps, Fraction: fraction,
		EventBody: eventBody(ev), Preview: ev.Preview}).AsInt64()
	if err != nil {
		return fmt.Errorf("progress: %w", err)
	}
	if n != 1 {
		return ErrStale
	}
	return nil
}

// eventBody renders the type-specific members of ev as a JSON fragment that
// follows the common members (",\"step\":1,...").
func eventBody(ev Event) string {
	b, _ := json.Marshal(struct {
		Step     int     `json:"step,omitempty"`
		Steps    int     `json:"steps,omitempty"`
		Fraction float64 `json:"fraction"`
		ETASec   float64 `json:"eta_s"`
		Preview  string  `json:"preview,omitempty"`
	}{ev.Step, ev.Steps, ev.Fraction, ev.ETASec, ev.Preview})
	return "," + string(b[1:len(b)-1])
}

// Succeed stores the images and ends the attempt. Blobs are written under
// this attempt's own keys first, so a stale attempt can never replace the
// images of the live one.
func (l *Lease) Succeed(ctx context.Context, images [][]byte, seeds []int64, info string) error {
	_, err := l.succeed(ctx, images, seeds, info, false)
	return err
}

// SucceedAndOffer is Succeed followed by Offer(1) in the same script: the
// worker's slot is offered again as the job ends. It reports whether the
// slot was offered (not when the attempt was stale).
func (l *Lease) SucceedAndOffer(ctx context.Context, images [][]byte, seeds []int64, info string) (bool, error) {
	return l.succeed(ctx, images, seeds, info, true)
}

func (l *Lease) succeed(ctx context.Context, images [][]byte, seeds []int64, info string, offer bool) (bool, error) {
	ttl := l.s.cfg.Retention
	if len(images) > 0 {
		cmds := make(rueidis.Commands, 0, len(images))
		for i, img := range images {
			cmds = append(cmds, l.s.client.B().Set().Key(l.s.keys.Blob(l.JobID, l.Attempt, strconv.Itoa(i))).
				Value(rueidis.BinaryString(img)).Px(ttl).Build())
		}
		for _, r := range l.s.client.DoMulti(ctx, cmds...) {
			if err := r.Error(); err != nil {
				return false, fmt.Errorf("succeed: store image: %w", err)
			}
		}
	}
	if seeds == nil {
		seeds = []int64{}
	}
	seedsJSON, _ := json.Marshal(seeds)
	infoJSON, _ := json.Marshal(info)
	n, err := l.s.exec(ctx, succeedCall{ID: l.JobID, Attempt: l.Attempt, Images: len(images),
		SeedsJSON: string(seedsJSON), InfoJSON: string(infoJSON), Offer: offer}).AsInt64()
	if err != nil {
		return false, fmt.Errorf("succeed: %w", err)
	}
	if n != 1 {
		return false, ErrStale
	}
	return offer, nil
}

// Fail ends the attempt with an error. A retryable failure goes back through
// the delayed set with backoff while attempts remain; otherwise the job fails.
// It reports whether the job will be retried.
func (l *Lease) Fail(ctx context.Context, code, message string, retryable bool) (bool, error) {
	msg, _ := json.Marshal(message)
	res, err := l.s.exec(ctx, failCall{ID: l.JobID, Attempt: l.Attempt, Retryable: retryable, Code: code,
		MessageJSON: string(msg), Backoff: l.s.backoff()}).ToString()
	if err != nil {
		return false, fmt.Errorf("fail: %w", err)
	}
	switch res {
	case "stale":
		return false, ErrStale
	case "retry":
		return true, nil
	}
	return false, nil
}

// HandBack returns the job to the front of its user's queue without using up
// an attempt (a worker stopping gracefully).
func (l *Lease) HandBack(ctx context.Context) error {
	n, err := l.s.exec(ctx, attemptCall{Script: scriptHandBack, ID: l.JobID, Attempt: l.Attempt}).AsInt64()
	if err != nil {
		return fmt.Errorf("hand back: %w", err)
	}
	if n != 1 {
		return ErrStale
	}
	return nil
}

// CancelNotices blocks, calling fn with the id of each running job that is
// canceled, until ctx ends or the connection breaks. ready is called once
// the subscription is live.
func (s *Scheduler) CancelNotices(ctx context.Context, ready func(), fn func(jobID string)) error {
	c, release := s.client.Dedicate()
	defer release()
	ch := s.keys.CancelChannel()
	wait := c.SetPubSubHooks(rueidis.PubSubHooks{
		OnMessage: func(m rueidis.PubSubMessage) { fn(m.Message) },
		OnSubscription: func(sub rueidis.PubSubSubscription) {
			if sub.Kind == "subscribe" && sub.Channel == ch && ready != nil {
				ready()
			}
		},
	})
	if err := c.Do(ctx, c.B().Subscribe().Channel(ch).Build()).Error(); err != nil {
		return fmt.Errorf("cancel notices: %w", err)
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case err := <-wait:
		return err
	}
}
