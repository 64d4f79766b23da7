package a1111

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/easelbot/easel/sdclient"
)

// Config says where an A1111-compatible server is and how to talk to it.
type Config struct {
	// BaseURL is the server's root, e.g. "http://127.0.0.1:7860"; the API is
	// under BaseURL + "/sdapi/v1". Required; must be an http or https URL.
	// Credentials in the URL ("http://user:pass@host") are used for basic
	// auth when Username is empty.
	BaseURL string
	// Username is the HTTP basic auth user, as given to the server with
	// --api-auth user:password. Default "": no auth.
	Username string
	// Password goes with Username. Default "".
	Password string
	// ProgressInterval is the time between two POST /internal/progress
	// while a generation runs; a poll still in flight when the next is due
	// is not doubled. Default 250ms.
	ProgressInterval time.Duration
	// Timeouts bound the phases of a job: Connect (dial and each short
	// call), Queue (our task waiting behind other clients' tasks),
	// ModelLoad (active, no step yet) and Stall (no step advance). Zero
	// fields take sdclient.DefaultTimeouts.
	Timeouts sdclient.Timeouts
	// HTTPClient makes every request. It must not have an overall Timeout
	// shorter than a generation. Default: a client whose dial timeout is
	// Timeouts.Connect.
	HTTPClient *http.Client
}

// Client is an sdclient.Backend for one A1111, Forge or SD.Next server. It is
// safe for concurrent use, although the server itself runs one job at a time.
type Client struct {
	cfg  Config
	base string // scheme://host[/prefix], no trailing slash, no credentials
	http *http.Client

	catalog catalogCache
	// Abandoned tasks are watched until they can be interrupted (see
	// abandon); Close ends the watchers.
	reapCtx    context.Context
	reapCancel context.CancelFunc
	reapers    sync.WaitGroup
}

var _ sdclient.Backend = (*Client)(nil)

// API paths, relative to Config.BaseURL.
const (
	pathTxt2Img     = "/sdapi/v1/txt2img"
	pathImg2Img     = "/sdapi/v1/img2img"
	pathExtraSingle = "/sdapi/v1/extra-single-image"
	pathProgress    = "/sdapi/v1/progress"
	pathInterrupt   = "/sdapi/v1/interrupt"
	pathModels      = "/sdapi/v1/sd-models"
	pathSamplers    = "/sdapi/v1/samplers"
	pathSchedulers  = "/sdapi/v1/schedulers"
	pathLoRAs       = "/sdapi/v1/loras"
	pathUpscalers   = "/sdapi/v1/upscalers"
	pathOptions     = "/sdapi/v1/options"
	// pathTaskProgress is modules/progress.py's per-task progress, served
	// by the web UI with or without --api.
	pathTaskProgress = "/internal/progress"
)

// maxAnswer caps an answer body; a batch of large PNGs in base64 stays well
// below it.
const maxAnswer = 256 << 20

// New checks cfg, fills its defaults and returns a client. Nothing is sent to
// the server until a method is called.
func New(cfg Config) (*Client, error) {
	base, err := sdclient.ParseBaseURL(cfg.BaseURL)
	if err != nil {
		return nil, fmt.Errorf("a1111: %w", err)
	}
	if cfg.Username == "" {
		cfg.Username, cfg.Password = base.Username, base.Password
	}
	u := base.URL
	if err := cfg.Timeouts.Validate(); err != nil {
		return nil, fmt.Errorf("a1111: %w", err)
	}
	if cfg.ProgressInterval < 0 {
		return nil, fmt.Errorf("a1111: Config.ProgressInterval must not be negative (got %s)", cfg.ProgressInterval)
	}
	cfg.ProgressInterval = cmpOr(cfg.ProgressInterval, 250*time.Millisecond)
	cfg.Timeouts = cfg.Timeouts.WithDefaults()
	hc := cfg.HTTPClient
	if hc == nil {
		hc = sdclient.NewHTTPClient(cfg.Timeouts)
	}
	reapCtx, reapCancel := context.WithCancel(context.Background())
	return &Client{cfg: cfg, base: strings.TrimSuffix(u.String(), "/"), http: hc, reapCtx: reapCtx, reapCancel: reapCancel}, nil
}

// Close stops watching abandoned tasks (a task still queued on the server
// will then run in full) and waits for the watchers to end. The client
// must not be used afterwards.
func (c *Client) Close() {
	c.reapCancel()
	c.reapers.Wait()
}

func cmpOr(d, def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	return d
}

// interrupt asks the server to stop the running generation at its next
// sampling step, whoever's it is: callers check that it is ours first.
func (c *Client) interrupt(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeouts.Connect)
	defer cancel()
	_, err := c.call(ctx, http.MethodPost, pathInterrupt, []byte("{}"))
	return err
}

// Health returns nil when GET /sdapi/v1/progress?skip_current_image=true
// answers within Timeouts.Connect. Progress is the cheapest route the API
// has and is served outside the generation lock, so a busy server is still
// healthy. A server started without --api answers 404 there, and Health
// says so.
func (c *Client) Health(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeouts.Connect)
	defer cancel()
	_, err := c.call(ctx, http.MethodGet, pathProgress+"?skip_current_image=true", nil)
	return err
}

// call sends one request and returns the 2xx answer's body. Errors carry the
// route and are classified as described in the package doc.
func (c *Client) call(ctx context.Context, method, path string, body []byte) ([]byte, error) {
	route, _, _ := strings.Cut(path, "?")
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return nil, fmt.Errorf("a1111: %s %s: %w", method, route, err)
	}
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.cfg.Username != "" {
		req.SetBasicAuth(c.cfg.Username, c.cfg.Password)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, c.transportError(ctx, method, route, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer+1))
	if err != nil {
		return nil, c.transportError(ctx, method, route, err)
	}
	if len(raw) > maxAnswer {
		return nil, fmt.Errorf("a1111: %s %s: answer larger than %d bytes", method, route, maxAnswer)
	}
	if resp.StatusCode >= 200 && resp.StatusCode <= 299 {
		return raw, nil
	}
	return nil, fmt.Errorf("a1111: %s %s: %w", method, route, classifyStatus(route, resp.StatusCode, raw))
}

// classifyStatus turns a non-2xx answer into an error the worker can act
// on:
//   - 502, 503, 504 (a proxy without its server), 408 and 429, 401 and 403
//     (credentials: the owner's to fix), and a 404 from a /sdapi route that
//     does not exist (a server without --api) wrap sdclient.ErrUnavailable:
//     another backend may do, this one is out of rotation until healthy;
//   - any other 4xx (422 validation, an HTTPException about the request)
//     and a deterministic 500 are *sdclient.PermanentError: the same
//     request fails the same way anywhere;
//   - other 5xx (CUDA errors, out of memory, a crash) stay plain
//     *sdclient.HTTPError, retried elsewhere.
func classifyStatus(route string, status int, raw []byte) error {
	he := &sdclient.HTTPError{Status: status, Message: errorMessage(raw)}
	if he.Message == "" {
		he.Message = http.StatusText(status)
	}
	switch {
	case status == http.StatusBadGateway, status == http.StatusServiceUnavailable, status == http.StatusGatewayTimeout,
		status == http.StatusRequestTimeout, status == http.StatusTooManyRequests:
		return fmt.Errorf("%w: %w", sdclient.ErrUnavailable, he)
	case status == http.StatusUnauthorized, status == http.StatusForbidden:
		return fmt.Errorf("%w: check the backend's username and password (A1111 --api-auth): %w", sdclient.ErrUnavailable, he)
	case status == http.StatusNotFound && strings.HasPrefix(route, "/sdapi/") && routeMissing(raw):
		return fmt.Errorf("%w: %w: %w", sdclient.ErrUnavailable, ErrNoAPI, he)
	case status >= 400 && status < 500:
		return &sdclient.PermanentError{Reason: "the backend rejected the request", Err: he}
	case status == http.StatusInternalServerError && deterministic(raw):
		return &sdclient.PermanentError{Reason: "the backend cannot run this request", Err: he}
	}
	return he
}

// ErrNoAPI is a server that answers, but not its /sdapi/v1 API: it was
// started without --api (or url points below its root).
var ErrNoAPI = errors.New("the server has no /sdapi/v1 API: start it with --api (webui: COMMANDLINE_ARGS=--api), or check that url is its root")

// routeMissing reports whether a 404 body is FastAPI's own "no such route"
// ({"detail": "Not Found"}) rather than an API answer about a missing
// thing.
func routeMissing(raw []byte) bool {
	var e struct {
		Detail *string `json:"detail"`
		Error  *string `json:"error"`
	}
	if json.Unmarshal(raw, &e) != nil {
		return len(bytes.TrimSpace(raw)) == 0 || bytes.Contains(raw, []byte("Not Found"))
	}
	return e.Error == nil && e.Detail != nil && *e.Detail == "Not Found"
}

// deterministic reports whether a 500 body is an exception the same
// request raises every time: an HTTPException the API raised on purpose
// (api.py decode_base64_to_image "Invalid encoded image"), or a Python
// error that means bad input rather than a bad GPU (an unknown upscaler is
// an AssertionError in scripts/postprocessing_upscale.py).
func deterministic(raw []byte) bool {
	var e struct {
		Error string `json:"error"`
	}
	if json.Unmarshal(raw, &e) != nil {
		return false
	}
	switch e.Error {
	case "HTTPException", "AssertionError", "ValueError", "KeyError", "IndexError", "TypeError", "NotImplementedError":
		return true
	}
	return false
}

// transportError classifies a failed exchange. A canceled context is the
// caller's decision, not the server's fault; everything else (refused,
// reset, dial or context timeout) means the server is not answering.
func (c *Client) transportError(ctx context.Context, method, route string, err error) error {
	if errors.Is(ctx.Err(), context.Canceled) {
		return fmt.Errorf("a1111: %s %s: %w", method, route, ctx.Err())
	}
	if ctxErr := ctx.Err(); ctxErr != nil {
		return fmt.Errorf("a1111: %s %s: %w: %w", method, route, sdclient.ErrUnavailable, ctxErr)
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err // the URL is already in the message
	}
	return fmt.Errorf("a1111: %s %s: %w: %w", method, route, sdclient.ErrUnavailable, err)
}

// getJSON GETs path within Timeouts.Connect and decodes the answer into
// out.
func (c *Client) getJSON(ctx context.Context, path string, out any) error {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeouts.Connect)
	defer cancel()
	raw, err := c.call(ctx, http.MethodGet, path, nil)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return fmt.Errorf("a1111: GET %s: answer is not the expected JSON: %w", path, err)
	}
	return nil
}
