package scheduler

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/rueidis"

	"github.com/easelbot/easel/storage/blob"
)

// Lease is a worker's hold on one attempt of a job, delivered to its Slot.
// The attempt is already running: the dispatch marked it so and emitted its
// started event. Every write through the lease carries the attempt number;
// once the attempt is stale (canceled, reclaimed) every method returns
// ErrStale.
type Lease struct {
	JobID    string
	Attempt  int
	EntryID  string
	Consumer string
	// Payload is the job's request JSON.
	Payload json.RawMessage
	// CreatedAt and DispatchedAt are when the job was submitted and when
	// this attempt left the queue.
	CreatedAt, DispatchedAt time.Time
	s                       *Scheduler
	slot                    *Slot
	// preview is the attempt's latest stored preview.
	previewMu sync.Mutex
	preview   blob.Ref
}

// parseDelivery reads a delivery {entry, job, attempt, created ms,
// dispatched ms, request}, from a reply or from a slot's channel.
func (sl *Slot) parseDelivery(f []string) *Lease {
	if len(f) != 6 {
		return nil
	}
	a, _ := strconv.Atoi(f[2])
	c, _ := strconv.ParseInt(f[3], 10, 64)
	d, _ := strconv.ParseInt(f[4], 10, 64)
	payload, _ := decodeRequest(f[5])
	return &Lease{JobID: f[1], Attempt: a, EntryID: f[0], Consumer: sl.Consumer, Payload: payload,
		CreatedAt: time.UnixMilli(c), DispatchedAt: time.UnixMilli(d), s: sl.s, slot: sl}
}

// deliveredLease reads the delivery part of a script reply (empty: none).
func (sl *Slot) deliveredLease(m rueidis.RedisMessage) (*Lease, error) {
	f, err := m.AsStrSlice()
	if err != nil || len(f) == 0 {
		return nil, err
	}
	l := sl.parseDelivery(f)
	if l != nil {
		sl.saw(l.EntryID)
	}
	return l, nil
}

// Renew extends the lease; workers call it every Lease/3.
func (l *Lease) Renew(ctx context.Context) error {
	n, err := l.s.exec(ctx, renewCall{ID: l.JobID, Attempt: l.Attempt, Consumer: l.Consumer}).AsInt64()
	if err != nil {
		return fmt.Errorf("renew: %w", err)
	}
	if n != 1 {
		return ErrStale
	}
	return nil
}

// Progress records and emits progress. preview, when not nil, is stored as a
// blob under this attempt's own name and named in the event; the record
// names it only once the progress script has checked the attempt is live,
// a refused attempt deletes it again, and the attempt's previous preview is
// deleted, so only a job's latest preview is kept.
func (l *Lease) Progress(ctx context.Context, step, steps int, fraction float64, eta time.Duration, preview []byte) error {
	ev := Event{Step: step, Steps: steps, Fraction: fraction, ETASec: eta.Seconds()}
	var ref blob.Ref
	if preview != nil {
		ev.Preview = strconv.Itoa(l.Attempt) + "-" + strconv.Itoa(step)
		ref = blob.Ref{Job: l.JobID, Attempt: l.Attempt, Name: "p" + strconv.Itoa(step)}
		if err := l.s.store.Blobs.Put(ctx, ref, bytes.NewReader(preview), int64(len(preview))); err != nil {
			return fmt.Errorf("progress: %w", err)
		}
	}
	n, err := l.s.exec(ctx, progressCall{ID: l.JobID, Attempt: l.Attempt, Step: step, N: steps, Fraction: fraction,
		EventBody: eventBody(ev), Preview: ev.Preview}).AsInt64()
	if err != nil {
		return fmt.Errorf("progress: %w", err)
	}
	if n != 1 {
		if preview != nil {
			_ = l.s.store.Blobs.Delete(ctx, ref)
		}
		return ErrStale
	}
	if preview != nil {
		l.previewMu.Lock()
		prev := l.preview
		l.preview = ref
		l.previewMu.Unlock()
		if prev.Name != "" && prev != ref {
			// Best effort: the sweeper removes it within the preview TTL.
			_ = l.s.store.Blobs.Delete(ctx, prev)
		}
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

// A backend's info text (A1111's is ~1 KB of JSON) longer than
// maxInlineInfo bytes as a JSON string is kept in the blob store beside the
// images, under infoBlobName, and the record's info field holds infoInBlob:
// a hash whose values all stay within Redis's hash-max-listpack-value (64
// by default) keeps its compact encoding, a few hundred bytes instead of
// over a kilobyte.
const (
	maxInlineInfo = 64
	infoInBlob    = "@"
	infoBlobName  = "info"
)

// Succeed stores the images and ends the attempt. It first checks that the
// attempt is still live, so a zombie attempt writes no images; blobs are
// written under this attempt's own names (the image store: files, S3 or
// Redis), so a stale attempt can never replace the images of the live one,
// and are deleted again if the attempt turned stale while they were
// written. The record names the attempt's images (image_attempt) only when
// the succeed script accepts the attempt.
func (l *Lease) Succeed(ctx context.Context, images [][]byte, seeds []int64, info string) error {
	_, err := l.succeed(ctx, Result{Images: images, Seeds: seeds, Info: info}, false)
	return err
}

// SucceedAndOffer is Succeed followed by offering the lease's slot again in
// the same script: a job dispatched to it at once is what the slot's next
// Next returns. It reports whether the slot was offered (not when the
// attempt was stale).
func (l *Lease) SucceedAndOffer(ctx context.Context, images [][]byte, seeds []int64, info string) (bool, error) {
	return l.succeed(ctx, Result{Images: images, Seeds: seeds, Info: info}, l.offers())
}

// Result is what a successful attempt stores with its job.
type Result struct {
	// Images are the encoded result images, in order.
	Images [][]byte
	// Seeds are each image's seed; Subseeds each image's variation
	// subseed when the job was a variation (nil otherwise).
	Seeds, Subseeds []int64
	// Info is the backend's own description of the run.
	Info string
}

// SucceedWith is Succeed with every part of the result, and with offer
// SucceedAndOffer (it reports whether the slot was offered: not while it is
// paused).
func (l *Lease) SucceedWith(ctx context.Context, r Result, offer bool) (bool, error) {
	return l.succeed(ctx, r, offer && l.offers())
}

// offers says whether the lease's slot is offered again by the succeed
// script: with shards the slot chooses its next shard in Next
// (shards_slot.go).
func (l *Lease) offers() bool { return l.slot != nil && l.slot.parent == nil }

func (l *Lease) succeed(ctx context.Context, r Result, offer bool) (bool, error) {
	images, seeds, info := r.Images, r.Seeds, r.Info
	var blobs []blob.Ref
	infoJSON, _ := json.Marshal(info)
	infoRecord := string(infoJSON)
	if len(infoJSON) > maxInlineInfo {
		infoRecord = infoInBlob
	}
	if len(images) > 0 || infoRecord == infoInBlob {
		live, err := l.s.attemptLive(ctx, l.JobID, l.Attempt)
		if err != nil {
			return false, fmt.Errorf("succeed: %w", err)
		}
		if !live {
			return false, ErrStale
		}
		for i, img := range images {
			ref := blob.Ref{Job: l.JobID, Attempt: l.Attempt, Name: strconv.Itoa(i)}
			blobs = append(blobs, ref)
			if err := l.s.store.Blobs.Put(ctx, ref, bytes.NewReader(img), int64(len(img))); err != nil {
				_ = l.s.store.Blobs.Delete(ctx, blobs...)
				return false, fmt.Errorf("succeed: store image: %w", err)
			}
		}
		if infoRecord == infoInBlob {
			ref := blob.Ref{Job: l.JobID, Attempt: l.Attempt, Name: infoBlobName}
			blobs = append(blobs, ref)
			if err := l.s.store.Blobs.Put(ctx, ref, strings.NewReader(info), int64(len(info))); err != nil {
				_ = l.s.store.Blobs.Delete(ctx, blobs...)
				return false, fmt.Errorf("succeed: store info: %w", err)
			}
		}
	}
	if seeds == nil {
		seeds = []int64{}
	}
	seedsJSON, _ := json.Marshal(seeds)
	call := succeedCall{ID: l.JobID, Attempt: l.Attempt, Images: len(images),
		SeedsJSON: string(seedsJSON), InfoJSON: string(infoJSON), InfoRecord: infoRecord}
	if r.Subseeds != nil {
		sub, _ := json.Marshal(r.Subseeds)
		call.SubseedsJSON = string(sub)
	}
	if offer {
		// Not while the slot is paused (Slot.Pause, which waits for this).
		l.slot.offerMu.Lock()
		defer l.slot.offerMu.Unlock()
		offer = !l.slot.paused
	}
	if offer {
		call.Member, call.OfferTTL = l.slot.member, l.s.cfg.Lease
	}
	msg, err := l.s.succeedBatched(ctx, call)
	if err != nil {
		return false, fmt.Errorf("succeed: %w", err)
	}
	res, err := msg.ToArray()
	if err != nil {
		return false, fmt.Errorf("succeed: %w", err)
	}
	if ok, _ := res[0].AsInt64(); ok != 1 {
		if len(blobs) > 0 {
			_ = l.s.store.Blobs.Delete(ctx, blobs...)
		}
		return false, ErrStale
	}
	if offer && len(res) > 1 {
		next, err := l.slot.deliveredLease(res[1])
		if err != nil {
			return true, fmt.Errorf("succeed: %w", err)
		}
		if next != nil {
			l.slot.push(next)
		}
	}
	return offer, nil
}

// attemptLive says whether attempt is the job's live running one. Workers
// ask before they write result images, so a zombie attempt writes none. It
// is one HMGET of the record, not a script: the answer can turn stale right
// after anyway, which the succeed script checks again (and the images are
// removed then).
func (s *Scheduler) attemptLive(ctx context.Context, id string, attempt int) (bool, error) {
	v, err := s.client.Do(ctx, s.client.B().Hmget().Key(s.kid(id).Job(id)).Field("status", "attempt").Build()).ToArray()
	if err != nil {
		return false, err
	}
	st, _ := v[0].ToString()
	a, _ := v[1].ToString()
	return st == string(StatusRunning) && a == strconv.Itoa(attempt), nil
}

// Fail ends the attempt with an error. A retryable failure goes back through
// the delayed set with backoff while attempts remain; otherwise the job fails.
// It reports whether the job will be retried.
func (l *Lease) Fail(ctx context.Context, code, message string, retryable bool) (bool, error) {
	return l.fail(ctx, failCall{Retryable: retryable, Code: code}, message)
}

// FailElsewhere ends the attempt like a retryable Fail, and the retry
// avoids this attempt's worker slot while another live slot can run the
// job: its backend stalled, and may well stall again. (With no other slot
// the retry runs here after all.)
func (l *Lease) FailElsewhere(ctx context.Context, code, message string) (bool, error) {
	return l.fail(ctx, failCall{Retryable: true, Code: code, Avoid: true}, message)
}

func (l *Lease) fail(ctx context.Context, call failCall, message string) (bool, error) {
	msg, _ := json.Marshal(message)
	call.ID, call.Attempt, call.MessageJSON, call.Backoff = l.JobID, l.Attempt, string(msg), l.s.backoff()
	res, err := l.s.exec(ctx, call).ToString()
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
	n, err := l.s.exec(ctx, handBackCall{ID: l.JobID, Attempt: l.Attempt}).AsInt64()
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
	return s.notices(ctx, s.keys.CancelChannel(), "cancel notices", ready, fn)
}

// notices blocks on a subscription to Pub/Sub channel ch of its own
// connection, calling fn with each message, until ctx ends or the
// connection breaks; ready is called once the subscription is live. what
// names it in errors.
func (s *Scheduler) notices(ctx context.Context, ch, what string, ready func(), fn func(string)) error {
	c, release := s.client.Dedicate()
	defer release()
	wait := c.SetPubSubHooks(rueidis.PubSubHooks{
		OnMessage: func(m rueidis.PubSubMessage) { fn(m.Message) },
		OnSubscription: func(sub rueidis.PubSubSubscription) {
			if sub.Kind == "subscribe" && sub.Channel == ch && ready != nil {
				ready()
			}
		},
	})
	if err := c.Do(ctx, c.B().Subscribe().Channel(ch).Build()).Error(); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case err := <-wait:
		return err
	}
}
