package a1111

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
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
	// ProgressInterval is the time between two GET /sdapi/v1/progress while
	// txt2img runs; a poll still in flight when the next is due is not
	// doubled. Default 250ms.
	ProgressInterval time.Duration
	// Timeout bounds one txt2img or extra-single-image call, from request to
	// last byte of the answer. Default 10m.
	Timeout time.Duration
	// CallTimeout bounds each short call: progress polls, interrupt, health,
	// models, samplers and options (the caller's context may end it sooner).
	// Default 10s.
	CallTimeout time.Duration
	// InterruptGrace is how long Generate waits, once its context ended and
	// the interrupt was sent, for txt2img to answer before it abandons the
	// request. A1111 stops at the next sampling step, so this only matters
	// for a server that ignores the interrupt. Default 30s.
	InterruptGrace time.Duration
	// HTTPClient makes every request. Its own Timeout, if any, must exceed
	// Timeout or it cuts generations short. Default: a client with a 5s dial
	// timeout and no overall timeout.
	HTTPClient *http.Client
}

// Client is an sdclient.Backend for one A1111, Forge or SD.Next server. It is
// safe for concurrent use, although the server itself runs one job at a time.
type Client struct {
	cfg  Config
	base string // scheme://host[/prefix], no trailing slash, no credentials
	http *http.Client
}

var _ sdclient.Backend = (*Client)(nil)

// API paths, relative to Config.BaseURL.
const (
	pathTxt2Img     = "/sdapi/v1/txt2img"
	pathExtraSingle = "/sdapi/v1/extra-single-image"
	pathProgress    = "/sdapi/v1/progress"
	pathInterrupt   = "/sdapi/v1/interrupt"
	pathModels      = "/sdapi/v1/sd-models"
	pathSamplers    = "/sdapi/v1/samplers"
	pathOptions     = "/sdapi/v1/options"
)

// maxAnswer caps an answer body; a batch of large PNGs in base64 stays well
// below it.
const maxAnswer = 256 << 20

// New checks cfg, fills its defaults and returns a client. Nothing is sent to
// the server until a method is called.
func New(cfg Config) (*Client, error) {
	u, err := url.Parse(cfg.BaseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("a1111: Config.BaseURL must be an http:// or https:// URL (got %q)", cfg.BaseURL)
	}
	if u.User != nil && cfg.Username == "" {
		cfg.Username = u.User.Username()
		cfg.Password, _ = u.User.Password()
	}
	u.User, u.RawQuery, u.Fragment = nil, "", ""
	for _, f := range []struct {
		name string
		d    time.Duration
	}{
		{"ProgressInterval", cfg.ProgressInterval},
		{"Timeout", cfg.Timeout},
		{"CallTimeout", cfg.CallTimeout},
		{"InterruptGrace", cfg.InterruptGrace},
	} {
		if f.d < 0 {
			return nil, fmt.Errorf("a1111: Config.%s must not be negative (got %s)", f.name, f.d)
		}
	}
	cfg.ProgressInterval = cmpOr(cfg.ProgressInterval, 250*time.Millisecond)
	cfg.Timeout = cmpOr(cfg.Timeout, 10*time.Minute)
	cfg.CallTimeout = cmpOr(cfg.CallTimeout, 10*time.Second)
	cfg.InterruptGrace = cmpOr(cfg.InterruptGrace, 30*time.Second)
	hc := cfg.HTTPClient
	if hc == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.DialContext = (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext
		hc = &http.Client{Transport: tr}
	}
	return &Client{cfg: cfg, base: strings.TrimSuffix(u.String(), "/"), http: hc}, nil
}

func cmpOr(d, def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	return d
}

// Interrupt asks the server to stop the running generation at its next
// sampling step; the txt2img call then answers with the partial images. It
// is a no-op when nothing runs.
func (c *Client) Interrupt(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.CallTimeout)
	defer cancel()
	_, err := c.call(ctx, http.MethodPost, pathInterrupt, []byte("{}"))
	return err
}

// Health returns nil when GET /sdapi/v1/progress?skip_current_image=true
// answers within CallTimeout. Progress is the cheapest route the API has and
// is served outside the generation lock, so a busy server is still healthy.
func (c *Client) Health(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.CallTimeout)
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
	he := &sdclient.HTTPError{Status: resp.StatusCode, Message: errorMessage(raw)}
	if he.Message == "" {
		he.Message = http.StatusText(resp.StatusCode)
	}
	switch resp.StatusCode {
	case http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return nil, fmt.Errorf("a1111: %s %s: %w: %w", method, route, sdclient.ErrUnavailable, he)
	}
	return nil, fmt.Errorf("a1111: %s %s: %w", method, route, he)
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
	return fmt.Errorf("a1111: %s %s: %w: %v", method, route, sdclient.ErrUnavailable, err)
}

// getJSON GETs path within CallTimeout and decodes the answer into out.
func (c *Client) getJSON(ctx context.Context, path string, out any) error {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.CallTimeout)
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
