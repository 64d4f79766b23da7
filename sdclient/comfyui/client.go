package comfyui

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
	"unicode/utf8"

	"github.com/easelbot/easel/sdclient"
)

// Config says where a ComfyUI server is and how to drive it.
type Config struct {
	// BaseURL is the server's root, e.g. "http://127.0.0.1:8188". Required;
	// must be an http or https URL (the websocket uses ws or wss to the
	// same host). Credentials in the URL are used for basic auth when
	// Username is empty.
	BaseURL string
	// Username is the HTTP basic auth user of a proxy in front of ComfyUI
	// (ComfyUI itself has no auth). Default "": no auth.
	Username string
	// Password goes with Username. Default "".
	Password string
	// Model is the checkpoint file used when a request names none.
	// Default "": the first of GET /models/checkpoints.
	Model string
	// Timeouts bound each phase of a job; zero fields take
	// sdclient.DefaultTimeouts.
	Timeouts sdclient.Timeouts
	// Workflows replaces the built-in workflows with owner-supplied files.
	// Default: all built-in.
	Workflows Workflows
	// HTTPClient makes every HTTP request. Its own Timeout, if any, must
	// exceed Timeouts.Connect. Default: a client whose dial is bounded by
	// Timeouts.Connect.
	HTTPClient *http.Client
}

// Client is an sdclient.Backend for one ComfyUI server. It is safe for
// concurrent use; each Generate has its own websocket and client id.
type Client struct {
	cfg       Config
	base      string // scheme://host[/prefix], no trailing slash, no credentials
	wsBase    string // ws(s)://host[/prefix]
	http      *http.Client
	timeouts  sdclient.Timeouts
	workflows map[workflowKind]*workflow
	cache     catalogCache
}

var _ sdclient.Backend = (*Client)(nil)

// maxAnswer caps an HTTP answer body (an image from /view among them).
const maxAnswer = 256 << 20

// New checks cfg, reads the workflow files and returns a client. Nothing is
// sent to the server until a method is called.
func New(cfg Config) (*Client, error) {
	base, err := sdclient.ParseBaseURL(cfg.BaseURL)
	if err != nil {
		return nil, fmt.Errorf("comfyui: %w", err)
	}
	if cfg.Username == "" {
		cfg.Username, cfg.Password = base.Username, base.Password
	}
	u := base.URL
	if err := cfg.Timeouts.Validate(); err != nil {
		return nil, fmt.Errorf("comfyui: %w", err)
	}
	wfs, err := cfg.Workflows.load()
	if err != nil {
		return nil, err
	}
	c := &Client{cfg: cfg, base: strings.TrimSuffix(u.String(), "/"), timeouts: cfg.Timeouts.WithDefaults(), workflows: wfs}
	ws := *u
	ws.Scheme = map[string]string{"http": "ws", "https": "wss"}[u.Scheme]
	c.wsBase = strings.TrimSuffix(ws.String(), "/")
	c.http = cfg.HTTPClient
	if c.http == nil {
		c.http = sdclient.NewHTTPClient(c.timeouts)
	}
	return c, nil
}

// Health returns nil when GET /system_stats answers within
// Timeouts.Connect and the websocket opens: a proxy that passes HTTP but
// not websockets makes every job fail, so it is not healthy. Both are
// served outside the execution thread (server.py), so a busy server is
// healthy.
func (c *Client) Health(ctx context.Context) error {
	var stats struct {
		System json.RawMessage `json:"system"`
	}
	if err := c.getJSON(ctx, "/system_stats", &stats); err != nil {
		return err
	}
	if len(stats.System) == 0 {
		return fmt.Errorf("comfyui: GET /system_stats: %w: answer has no \"system\"; is this a ComfyUI server?", sdclient.ErrUnavailable)
	}
	sock, err := c.dial(ctx, "easel-health-"+newID())
	if err != nil {
		return err
	}
	sock.close()
	return nil
}

// call sends one request within Timeouts.Connect and returns the 2xx
// answer's body.
func (c *Client) call(ctx context.Context, method, path, contentType string, body []byte) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeouts.Connect)
	defer cancel()
	route, _, _ := strings.Cut(path, "?")
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return nil, fmt.Errorf("comfyui: %s %s: %w", method, route, err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	c.auth(req.Header)
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, transportError(ctx, method, route, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer+1))
	if err != nil {
		return nil, transportError(ctx, method, route, err)
	}
	if len(raw) > maxAnswer {
		return nil, fmt.Errorf("comfyui: %s %s: answer larger than %d bytes", method, route, maxAnswer)
	}
	if resp.StatusCode >= 200 && resp.StatusCode <= 299 {
		return raw, nil
	}
	he := &sdclient.HTTPError{Status: resp.StatusCode, Message: truncate(strings.Join(strings.Fields(strings.ToValidUTF8(string(raw), "?")), " "), 300)}
	if he.Message == "" {
		he.Message = http.StatusText(resp.StatusCode)
	}
	if resp.StatusCode >= 500 {
		// ComfyUI answers 500 only when a handler raised; behind a proxy
		// 502/503/504 mean ComfyUI is down or restarting.
		return raw, fmt.Errorf("comfyui: %s %s: %w: %w", method, route, sdclient.ErrUnavailable, he)
	}
	return raw, fmt.Errorf("comfyui: %s %s: %w", method, route, he)
}

func (c *Client) auth(h http.Header) {
	if c.cfg.Username != "" {
		r := http.Request{Header: h}
		r.SetBasicAuth(c.cfg.Username, c.cfg.Password)
	}
}

// transportError classifies a failed exchange: the caller's cancellation
// stays itself; anything else means the server is not answering.
func transportError(ctx context.Context, method, route string, err error) error {
	if errors.Is(ctx.Err(), context.Canceled) {
		return fmt.Errorf("comfyui: %s %s: %w", method, route, ctx.Err())
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	return fmt.Errorf("comfyui: %s %s: %w: %w", method, route, sdclient.ErrUnavailable, err)
}

func (c *Client) getJSON(ctx context.Context, path string, out any) error {
	raw, err := c.call(ctx, http.MethodGet, path, "", nil)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(raw, out); err != nil {
		route, _, _ := strings.Cut(path, "?")
		return fmt.Errorf("comfyui: GET %s: answer is not the expected JSON: %w", route, err)
	}
	return nil
}

func (c *Client) postJSON(ctx context.Context, path string, in any) ([]byte, error) {
	body, err := json.Marshal(in)
	if err != nil {
		return nil, fmt.Errorf("comfyui: POST %s: %w", path, err)
	}
	return c.call(ctx, http.MethodPost, path, "application/json", body)
}

// truncate cuts s to at most n bytes on a rune boundary, marking the cut.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	const mark = "…"
	cut := n - len(mark)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + mark
}
