package httpapi

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
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
// One goroutine per job follows its events until the terminal one. On stop,
// followers of jobs that have not ended are dropped at once, and deliveries
// under way get until the stop context ends; a restarted process does not
// pick either up again (the job's state stays readable with GET
// /v1/jobs/{id}).
type Webhooks struct {
	cfg    Config
	sched  *scheduler.Scheduler
	feed   *feed
	log    *zap.Logger
	client *http.Client
	// follow ends the followers; deliver ends deliveries under way.
	follow, deliverCtx      context.Context
	stopFollow, stopDeliver context.CancelFunc
	mu                      sync.Mutex
	stopped                 bool
	wg                      sync.WaitGroup
	// now is the clock for signatures.
	now func() time.Time
}

func newWebhooks(cfg Config, sched *scheduler.Scheduler, feed *feed, log *zap.Logger) *Webhooks {
	h := &Webhooks{cfg: cfg, sched: sched, feed: feed, log: log, now: time.Now,
		client: &http.Client{Timeout: 15 * time.Second, Transport: safeTransport(cfg.AllowPrivateCallbacks),
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
	h.follow, h.stopFollow = context.WithCancel(context.Background())
	h.deliverCtx, h.stopDeliver = context.WithCancel(context.Background())
	return h
}

// stop drops the followers, waits for deliveries under way until ctx ends,
// then abandons them. It returns ctx's error when it had to abandon any.
func (h *Webhooks) stop(ctx context.Context) error {
	h.mu.Lock()
	h.stopped = true
	h.mu.Unlock()
	h.stopFollow()
	done := make(chan struct{})
	go func() { h.wg.Wait(); close(done) }()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = fmt.Errorf("webhooks: abandoning deliveries: %w", ctx.Err())
	}
	h.stopDeliver()
	<-done
	return err
}

// watch follows job id and delivers its final state to callback.
func (h *Webhooks) watch(id, callback string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.stopped {
		h.log.Warn("webhook: not watching a job submitted while stopping", zap.String("job", id))
		return
	}
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		var final scheduler.Event
		err := h.feed.follow(h.follow, id, 0, func(e *fedEvent) error {
			final = e.Event
			return nil
		}, 0, nil)
		if err != nil {
			if h.follow.Err() != nil {
				h.log.Warn("webhook: dropped at stop before the job ended", zap.String("job", id))
			} else {
				h.log.Warn("webhook: following job", zap.String("job", id), zap.Error(err))
			}
			return
		}
		j, err := h.sched.Get(h.deliverCtx, id)
		if err != nil {
			h.log.Warn("webhook: reading job", zap.String("job", id), zap.Error(err))
			return
		}
		body, _ := json.Marshal(map[string]any{"event": final.Type, "job": view(j, 0)})
		h.deliver(callback, id+"-"+strconv.FormatInt(final.Seq, 10), body)
	}()
}

// Sign returns the X-Easel-Signature value of body at time t.
func Sign(secret string, t time.Time, body []byte) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(ts + "."))
	mac.Write(body)
	return "t=" + ts + ",v1=" + hex.EncodeToString(mac.Sum(nil))
}

func (h *Webhooks) deliver(callback, eventID string, body []byte) {
	delay := h.cfg.WebhookBackoff
	for attempt := 1; attempt <= h.cfg.WebhookMaxAttempts; attempt++ {
		req, err := http.NewRequestWithContext(h.deliverCtx, http.MethodPost, callback, bytes.NewReader(body))
		if err != nil {
			return
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
				return
			}
			err = fmt.Errorf("HTTP %d", resp.StatusCode)
		}
		if h.deliverCtx.Err() != nil {
			h.log.Warn("webhook abandoned at stop", zap.String("event", eventID), zap.Int("attempt", attempt))
			return
		}
		h.log.Warn("webhook delivery failed", zap.String("event", eventID), zap.Int("attempt", attempt), zap.Error(err))
		if attempt == h.cfg.WebhookMaxAttempts {
			break
		}
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-h.deliverCtx.Done():
			t.Stop()
			h.log.Warn("webhook abandoned at stop", zap.String("event", eventID), zap.Int("attempt", attempt))
			return
		}
		delay = min(delay*2, 5*time.Minute)
	}
	h.log.Error("webhook given up", zap.String("event", eventID))
}

// checkCallback refuses callback URLs that are not http(s) or that resolve
// to loopback, private, link-local or unspecified addresses (unless allowed).
func checkCallback(ctx context.Context, raw string, allowPrivate bool) error {
	return netguard.CheckURL(ctx, raw, allowPrivate)
}

// safeTransport re-checks the address at connect time, so a DNS answer that
// changes after validation cannot reach a private address.
func safeTransport(allowPrivate bool) *http.Transport { return netguard.Transport(allowPrivate) }
