package httpapi

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/easelbot/easel/scheduler"
)

// Webhooks delivers a job's final state to its callback_url once the job
// ends: a POST of the job JSON, signed X-Easel-Signature: t=<unix>,v1=<hex
// HMAC-SHA256 of "<t>.<body>">, with X-Easel-Event-Id for deduplication,
// retried with exponential backoff. Deliveries in flight when the process
// stops are lost (the job's state stays readable with GET /v1/jobs/{id}).
type Webhooks struct {
	cfg    Config
	sched  *scheduler.Scheduler
	log    *zap.Logger
	client *http.Client
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	// now is the clock for signatures.
	now func() time.Time
}

func newWebhooks(cfg Config, sched *scheduler.Scheduler, log *zap.Logger) *Webhooks {
	ctx, cancel := context.WithCancel(context.Background())
	return &Webhooks{cfg: cfg, sched: sched, log: log, ctx: ctx, cancel: cancel, now: time.Now,
		client: &http.Client{Timeout: 15 * time.Second, Transport: safeTransport(cfg.AllowPrivateCallbacks),
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

func (h *Webhooks) stop(ctx context.Context) {
	done := make(chan struct{})
	go func() { h.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
	}
	h.cancel()
	<-done
}

// watch follows job id and delivers its final state to callback.
func (h *Webhooks) watch(id, callback string) {
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		var final scheduler.Event
		err := h.sched.Follow(h.ctx, id, 0, func(e scheduler.Event) error {
			final = e
			return nil
		})
		if err != nil {
			if !errors.Is(err, context.Canceled) {
				h.log.Warn("webhook: following job", zap.String("job", id), zap.Error(err))
			}
			return
		}
		j, err := h.sched.Get(h.ctx, id)
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
		req, err := http.NewRequestWithContext(h.ctx, http.MethodPost, callback, bytes.NewReader(body))
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
		if h.ctx.Err() != nil {
			return
		}
		h.log.Warn("webhook delivery failed", zap.String("event", eventID), zap.Int("attempt", attempt), zap.Error(err))
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-h.ctx.Done():
			t.Stop()
			return
		}
		delay = min(delay*2, 5*time.Minute)
	}
	h.log.Error("webhook given up", zap.String("event", eventID))
}

// checkCallback refuses callback URLs that are not http(s) or that resolve
// to loopback, private, link-local or unspecified addresses (unless allowed).
func checkCallback(ctx context.Context, raw string, allowPrivate bool) error {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Hostname() == "" {
		return errors.New("must be an http:// or https:// URL")
	}
	if len(raw) > 2048 {
		return errors.New("must be at most 2048 characters")
	}
	if allowPrivate {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	ips, err := net.DefaultResolver.LookupIPAddr(ctx, u.Hostname())
	if err != nil {
		return fmt.Errorf("host %s does not resolve", u.Hostname())
	}
	for _, ip := range ips {
		if private(ip.IP) {
			return fmt.Errorf("must not point at a loopback, private or link-local address (%s)", ip.IP)
		}
	}
	return nil
}

func private(ip net.IP) bool {
	return ip.IsLoopback() || ip.IsPrivate() || ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast() ||
		ip.IsUnspecified() || ip.IsMulticast() || ip.IsInterfaceLocalMulticast()
}

// safeTransport re-checks the address at connect time, so a DNS answer that
// changes after validation cannot reach a private address.
func safeTransport(allowPrivate bool) *http.Transport {
	d := &net.Dialer{Timeout: 5 * time.Second}
	return &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := d.DialContext(ctx, network, addr)
			if err != nil || allowPrivate {
				return c, err
			}
			if ta, ok := c.RemoteAddr().(*net.TCPAddr); ok && private(ta.IP) {
				c.Close()
				return nil, fmt.Errorf("callback address %s is private", ta.IP)
			}
			return c, nil
		},
		MaxIdleConns: 10, IdleConnTimeout: 30 * time.Second,
	}
}
