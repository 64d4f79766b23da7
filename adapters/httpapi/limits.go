package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"

	"github.com/easelbot/easel/commands"
)

// counter counts what each key and client address holds at once.
type counter struct {
	mu sync.Mutex
	n  map[string]int
	// changed, made only while someone waits (tests, through wait), is
	// closed at the next acquire or release.
	changed chan struct{}
}

func newCounter() *counter { return &counter{n: map[string]int{}} }

// acquire takes one of max for k, reporting false when all are taken.
func (c *counter) acquire(k string, max int) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n[k] >= max {
		return false
	}
	c.n[k]++
	c.notify()
	return true
}

func (c *counter) release(k string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n[k]--; c.n[k] <= 0 {
		delete(c.n, k)
	}
	c.notify()
}

// notify wakes the waiters of wait; c.mu is held.
func (c *counter) notify() {
	if c.changed != nil {
		close(c.changed)
		c.changed = nil
	}
}

// wait blocks until what k holds satisfies ok, or ctx ends (the error
// says what k held then).
func (c *counter) wait(ctx context.Context, k string, ok func(held int) bool) error {
	for {
		c.mu.Lock()
		held := c.n[k]
		if ok(held) {
			c.mu.Unlock()
			return nil
		}
		if c.changed == nil {
			c.changed = make(chan struct{})
		}
		ch := c.changed
		c.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("httpapi: %s holds %d: %w", k, held, ctx.Err())
		}
	}
}

// handler is an API endpoint, given the authenticated caller.
type handler func(http.ResponseWriter, *http.Request, commands.Caller)

// limit describes one kind of thing counted per key and per address.
type limit struct {
	count             *counter
	perKey, perAddr   int
	keyField, adField string
	code, what        string
	retryAfter        int
}

// auth guards an ordinary endpoint: the address's and key's in-flight
// limits, authentication, the body read in full (bounded in size and, by
// the server, in time), then the handler with a context that bounds its
// Redis calls to Config.RedisTimeout (plus limits.init_image_timeout for a
// submit that fetches an init image URL, which the fetch alone may use).
func (s *Server) auth(h handler) http.HandlerFunc { return s.guard(h, &s.inFlight) }

// authStream guards an event stream: the streams limits, authentication,
// no time bound (the stream lasts as long as the job).
func (s *Server) authStream(h handler) http.HandlerFunc { return s.guard(h, &s.streamsLim) }

func (s *Server) guard(h handler, lim *limit) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		addr := "a:" + clientAddr(r)
		if !lim.count.acquire(addr, lim.perAddr) {
			tooMany(w, lim, lim.perAddr, "this address", lim.adField)
			return
		}
		defer lim.count.release(addr)
		c, key, ok := s.caller(r)
		if !ok {
			s.refuse(w, r)
			return
		}
		key = "k:" + key
		if !lim.count.acquire(key, lim.perKey) {
			tooMany(w, lim, lim.perKey, "this API key", lim.keyField)
			return
		}
		defer lim.count.release(key)
		if lim == &s.streamsLim {
			h(w, r, c)
			return
		}
		budget := s.cfg.RedisTimeout
		if r.Body != nil && r.Body != http.NoBody {
			body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.cfg.MaxBodyBytes))
			if err != nil {
				s.bodyError(w, err)
				return
			}
			r.Body = io.NopCloser(bytes.NewReader(body))
			if fetchesImage(body) {
				// The fetch has its own bound (limits.init_image_timeout);
				// the Redis calls around it keep theirs.
				budget += s.svc.InitImageTimeout()
			}
		}
		ctx, cancel := context.WithTimeout(r.Context(), budget)
		defer cancel()
		h(w, r.WithContext(ctx), c)
	}
}

// fetchesImage reports whether a request body names an init image by
// http(s) URL, which the submit downloads.
func fetchesImage(body []byte) bool {
	var req struct {
		InitImage string `json:"init_image"`
	}
	if json.Unmarshal(body, &req) != nil {
		return false
	}
	src := strings.ToLower(strings.TrimSpace(req.InitImage))
	return strings.HasPrefix(src, "http://") || strings.HasPrefix(src, "https://")
}

func (s *Server) bodyError(w http.ResponseWriter, err error) {
	var mbe *http.MaxBytesError
	var ne net.Error
	switch {
	case errors.As(err, &mbe):
		writeError(w, http.StatusRequestEntityTooLarge, "body_too_large",
			fmt.Sprintf("body: must be at most %d bytes (http.max_body_bytes)", s.cfg.MaxBodyBytes), "body")
	case errors.As(err, &ne) && ne.Timeout():
		w.Header().Set("Connection", "close")
		writeError(w, http.StatusRequestTimeout, "request_timeout",
			fmt.Sprintf("body: not received within %s (http.body_timeout)", s.cfg.BodyTimeout), "body")
	default:
		writeError(w, http.StatusBadRequest, "invalid_request", "body: could not be read", "body")
	}
}

func tooMany(w http.ResponseWriter, lim *limit, max int, who, field string) {
	w.Header().Set("Retry-After", strconv.Itoa(lim.retryAfter))
	writeJSON(w, http.StatusTooManyRequests, map[string]any{"error": map[string]any{
		"code":          lim.code,
		"message":       fmt.Sprintf("%s already has %d %s open, the most allowed (%s); retry later", who, max, lim.what, field),
		"retry_after_s": lim.retryAfter,
	}})
}

// clientAddr is the IP the connection comes from; proxy headers are not
// trusted (behind a reverse proxy every client shares its address).
func clientAddr(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}
