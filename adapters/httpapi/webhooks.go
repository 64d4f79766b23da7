package httpapi

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/easelbot/easel/internal/netguard"
	"github.com/easelbot/easel/scheduler"
)

// Webhooks delivers a job's final state to its callback_url once the job
// ends: a POST of the job JSON, signed X-Easel-Signature: t=<unix>,v1=<hex
// HMAC-SHA256 of "<t>.<body>">, with X-Easel-Event-Id for deduplication,
// retried with exponential backoff.
//
// Deliveries are durable and shared between instances: every Server reads
// the events stream in the consumer group "webhooks" (like the chat
// relay), and a job's terminal event stays pending for the instance that
// read it until its delivery succeeds or is given up. An instance that
// stops or dies leaves its pending deliveries in the group, and another
// instance (or this one restarted) claims them once they have sat for
// WebhookClaimAfter, so every delivery happens at least once; receivers
// deduplicate by X-Easel-Event-Id.
type Webhooks struct {
	cfg      Config
	sched    *scheduler.Scheduler
	log      *zap.Logger
	client   *http.Client
	consumer string
	// read ends the group reader; deliverCtx ends deliveries under way.
	read, deliverCtx      context.Context
	stopRead, stopDeliver context.CancelFunc
	mu                    sync.Mutex
	joined, started       bool
	stopped               bool
	// delivering holds the entries under way here, so a sweep does not
	// start one twice.
	delivering map[string]bool
	wg         sync.WaitGroup
	// now is the clock for signatures.
	now func() time.Time
}

func newWebhooks(cfg Config, sched *scheduler.Scheduler, log *zap.Logger) *Webhooks {
	host, _ := os.Hostname()
	var r [4]byte
	_, _ = rand.Read(r[:])
	h := &Webhooks{cfg: cfg, sched: sched, log: log, now: time.Now, delivering: map[string]bool{},
		consumer: fmt.Sprintf("webhooks-%s-%d-%s", host, os.Getpid(), hex.EncodeToString(r[:])),
		client: &http.Client{Timeout: cfg.WebhookTimeout, Transport: safeTransport(cfg.AllowPrivateCallbacks),
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
	h.read, h.stopRead = context.WithCancel(context.Background())
	h.deliverCtx, h.stopDeliver = context.WithCancel(context.Background())
	return h
}

// join makes sure the consumer group exists: a job's terminal event must
// come after it, so a submit with a callback calls it first.
func (h *Webhooks) join(ctx context.Context) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.joined {
		return nil
	}
	if err := h.sched.JoinEventGroup(ctx, scheduler.WebhooksGroup); err != nil {
		return fmt.Errorf("webhooks: %w", err)
	}
	h.joined = true
	return nil
}

// start runs the group reader in the background (once).
func (h *Webhooks) start() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.started || h.stopped {
		return
	}
	h.started = true
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		h.run()
	}()
}

// stop ends the reader, waits for deliveries under way until ctx ends,
// then abandons them (they stay pending in the group for another
// instance). It returns ctx's error when it had to abandon any.
func (h *Webhooks) stop(ctx context.Context) error {
	h.mu.Lock()
	h.stopped = true
	h.mu.Unlock()
	h.stopRead()
	done := make(chan struct{})
	go func() { h.wg.Wait(); close(done) }()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = fmt.Errorf("webhooks: abandoning deliveries (another instance takes them over): %w", ctx.Err())
	}
	h.stopDeliver()
	<-done
	return err
}

func (h *Webhooks) run() {
	ctx := h.read
	backoff := 100 * time.Millisecond
	var lastSweep time.Time
	for ctx.Err() == nil {
		err := h.join(ctx)
		if err == nil && time.Since(lastSweep) >= h.cfg.WebhookClaimAfter/2 {
			lastSweep = time.Now()
			var evs []scheduler.GroupEvent
			if evs, err = h.sched.ClaimEvents(ctx, scheduler.WebhooksGroup, h.consumer, h.cfg.WebhookClaimAfter, 100); err == nil {
				h.handle(ctx, evs)
			}
		}
		if err == nil {
			var evs []scheduler.GroupEvent
			wait := min(h.cfg.WebhookClaimAfter/2, 5*time.Second)
			if evs, err = h.sched.ReadEventGroup(ctx, scheduler.WebhooksGroup, h.consumer, false, 100, wait); err == nil {
				h.handle(ctx, evs)
				backoff = 100 * time.Millisecond
				continue
			}
		}
		if ctx.Err() != nil {
			return
		}
		h.log.Warn("webhooks: reading events", zap.Error(err))
		if !sleepCtx(ctx, backoff) {
			return
		}
		backoff = min(backoff*2, 5*time.Second)
	}
}

// handle acknowledges events that need no delivery and starts the
// deliveries of terminal events of jobs with a callback.
func (h *Webhooks) handle(ctx context.Context, evs []scheduler.GroupEvent) {
	var done []string
	for _, ge := range evs {
		if !ge.Event.Type.Terminal() {
			done = append(done, ge.EntryID)
			continue
		}
		j, err := h.sched.Get(ctx, ge.Event.JobID)
		if errors.Is(err, scheduler.ErrNotFound) {
			done = append(done, ge.EntryID)
			continue
		}
		if err != nil {
			// Left pending: claimed again after WebhookClaimAfter.
			h.log.Warn("webhook: reading job", zap.String("job", ge.Event.JobID), zap.Error(err))
			continue
		}
		var origin struct {
			Kind        string `json:"kind"`
			CallbackURL string `json:"callback_url"`
		}
		_ = json.Unmarshal(j.Origin, &origin)
		if origin.Kind != "http" || origin.CallbackURL == "" {
			done = append(done, ge.EntryID)
			continue
		}
		h.mu.Lock()
		busy := h.delivering[ge.EntryID]
		h.delivering[ge.EntryID] = true
		h.mu.Unlock()
		if busy {
			continue
		}
		body, _ := json.Marshal(map[string]any{"event": ge.Event.Type, "job": view(j, 0)})
		h.wg.Add(1)
		go func(entry, callback, eventID string) {
			defer h.wg.Done()
			settled := h.deliver(entry, callback, eventID, body)
			if settled {
				if err := h.sched.AckEvents(h.deliverCtx, scheduler.WebhooksGroup, entry); err != nil {
					h.log.Warn("webhook: ack", zap.String("event", eventID), zap.Error(err))
				}
			}
			h.mu.Lock()
			delete(h.delivering, entry)
			h.mu.Unlock()
		}(ge.EntryID, origin.CallbackURL, j.ID+"-"+strconv.FormatInt(ge.Event.Seq, 10))
	}
	if err := h.sched.AckEvents(ctx, scheduler.WebhooksGroup, done...); err != nil && ctx.Err() == nil {
		h.log.Warn("webhooks: ack", zap.Error(err))
	}
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// Sign returns the X-Easel-Signature value of body at time t.
func Sign(secret string, t time.Time, body []byte) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(ts + "."))
	mac.Write(body)
	return "t=" + ts + ",v1=" + hex.EncodeToString(mac.Sum(nil))
}

// deliver POSTs body to callback until it succeeds or WebhookMaxAttempts
// are spent, keeping its group entry held meanwhile. It reports whether
// the delivery is settled (delivered or given up); false when stop
// abandoned it, leaving it to another instance.
func (h *Webhooks) deliver(entry, callback, eventID string, body []byte) bool {
	delay := h.cfg.WebhookBackoff
	for attempt := 1; attempt <= h.cfg.WebhookMaxAttempts; attempt++ {
		req, err := http.NewRequestWithContext(h.deliverCtx, http.MethodPost, callback, bytes.NewReader(body))
		if err != nil {
			h.log.Error("webhook: bad callback", zap.String("event", eventID), zap.Error(err))
			return true
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("User-Agent", "Easel-Webhook/1")
		req.Header.Set("X-Easel-Event-Id", eventID)
		if h.cfg.WebhookSecret != "" {
			req.Header.Set("X-Easel-Signature", Sign(h.cfg.WebhookSecret, h.now(), body))
		}
		resp, err := h.client.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode >= 200 && resp.StatusCode < 300 {
				return true
			}
			err = fmt.Errorf("HTTP %d", resp.StatusCode)
		}
		if h.deliverCtx.Err() != nil {
			h.log.Warn("webhook abandoned at stop", zap.String("event", eventID), zap.Int("attempt", attempt))
			return false
		}
		h.log.Warn("webhook delivery failed", zap.String("event", eventID), zap.Int("attempt", attempt), zap.Error(err))
		if attempt == h.cfg.WebhookMaxAttempts {
			break
		}
		// Wait out the backoff holding the entry, so no other instance
		// claims a delivery still in hand here.
		for left := delay; left > 0; left -= h.cfg.WebhookClaimAfter / 3 {
			if !sleepCtx(h.deliverCtx, min(left, h.cfg.WebhookClaimAfter/3)) {
				h.log.Warn("webhook abandoned at stop", zap.String("event", eventID), zap.Int("attempt", attempt))
				return false
			}
			if err := h.sched.HoldEvent(h.deliverCtx, scheduler.WebhooksGroup, h.consumer, entry); err != nil {
				h.log.Warn("webhook: hold", zap.String("event", eventID), zap.Error(err))
			}
		}
		delay = min(delay*2, 5*time.Minute)
	}
	h.log.Error("webhook given up", zap.String("event", eventID))
	return true
}

// checkCallback refuses callback URLs that are not http(s) or that resolve
// to loopback, private, link-local or unspecified addresses (unless allowed).
func checkCallback(ctx context.Context, raw string, allowPrivate bool) error {
	return netguard.CheckURL(ctx, raw, allowPrivate)
}

// safeTransport re-checks the address at connect time, so a DNS answer that
// changes after validation cannot reach a private address.
func safeTransport(allowPrivate bool) *http.Transport { return netguard.Transport(allowPrivate) }
