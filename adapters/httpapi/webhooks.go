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
	"net/netip"
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

// blockedNets are special-purpose ranges (beyond what net.IP's predicates
// cover) a callback must not reach: "this network", carrier-grade NAT (some
// clouds serve instance metadata there), IETF protocol assignments,
// benchmarking, and the reserved 240/4 with the broadcast address.
var blockedNets = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),
	netip.MustParsePrefix("100.64.0.0/10"),
	netip.MustParsePrefix("192.0.0.0/24"),
	netip.MustParsePrefix("198.18.0.0/15"),
	netip.MustParsePrefix("240.0.0.0/4"),
}

// nat64 is the well-known NAT64 prefix: its addresses carry an IPv4 address
// in their last 32 bits, which is what the request would reach.
var nat64 = netip.MustParsePrefix("64:ff9b::/96")

// private reports whether ip is an address a callback must not reach:
// loopback, private (RFC 1918, fc00::/7), link-local, unspecified, multicast
// or another special-purpose range, also when written as IPv4-mapped or
// NAT64 IPv6.
func private(ip net.IP) bool {
	a, ok := netip.AddrFromSlice(ip)
	if !ok {
		return true
	}
	a = a.Unmap()
	if nat64.Contains(a) {
		b := a.As16()
		a = netip.AddrFrom4([4]byte(b[12:]))
	}
	if a.IsLoopback() || a.IsPrivate() || a.IsLinkLocalUnicast() || a.IsLinkLocalMulticast() ||
		a.IsUnspecified() || a.IsMulticast() || a.IsInterfaceLocalMulticast() {
		return true
	}
	for _, p := range blockedNets {
		if p.Contains(a) {
			return true
		}
	}
	return false
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
