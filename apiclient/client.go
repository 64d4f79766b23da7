package apiclient

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// JobRequest is the body of POST /v1/jobs. Zero fields are left out, so the
// server applies its defaults (and the tenant's saved settings) to them.
type JobRequest struct {
	// Prompt is what to draw; required.
	Prompt string `json:"prompt"`
	// NegativePrompt is what to keep out of the image.
	NegativePrompt string `json:"negative_prompt,omitempty"`
	// Width and Height are the image size in pixels; 0: server default.
	Width  int `json:"width,omitempty"`
	Height int `json:"height,omitempty"`
	// Steps is the number of sampling steps; 0: server default.
	Steps int `json:"steps,omitempty"`
	// CFGScale is the classifier-free guidance scale; 0: server default.
	CFGScale float64 `json:"cfg_scale,omitempty"`
	// Seed fixes the seed; nil: random. A pointer because 0 is a seed.
	Seed *int64 `json:"seed,omitempty"`
	// Sampler and Model name a sampler and a checkpoint; "": server default.
	Sampler string `json:"sampler,omitempty"`
	Model   string `json:"model,omitempty"`
	// Count is the number of images; 0: server default (1).
	Count int `json:"count,omitempty"`
	// User is the end user the job runs for (fairness and quotas); "": the
	// API key's default user.
	User string `json:"user,omitempty"`
	// CallbackURL receives the final job as a signed POST.
	CallbackURL string `json:"callback_url,omitempty"`
}

// Submitted is the 202 answer to a submit.
type Submitted struct {
	ID     string `json:"id"`
	Status string `json:"status"`
	// Position is the place in the caller's queue, from 1; 0 when the job
	// was handed to a worker at once.
	Position int `json:"position"`
	// Links are the job's URLs, resolved against the client's base URL.
	Links Links `json:"links"`
}

// Links are a job's URLs.
type Links struct {
	Self   string `json:"self"`
	Events string `json:"events"`
}

// Job is the answer to GET /v1/jobs/{id}.
type Job struct {
	ID       string `json:"id"`
	Status   string `json:"status"`
	Position int    `json:"position"`
	// ETASec is a queued job's estimated wait in seconds (0: no estimate).
	ETASec float64 `json:"eta_s,omitempty"`
	// Waiting says why a queued job cannot start (every backend down).
	Waiting *Waiting `json:"waiting,omitempty"`
	// Progress is the fraction of sampling done, 0 to 1.
	Progress float64 `json:"progress"`
	Step     int     `json:"step"`
	Steps    int     `json:"steps"`
	// CreatedAt, StartedAt and FinishedAt are nil until the job gets there.
	CreatedAt  *time.Time `json:"created_at"`
	StartedAt  *time.Time `json:"started_at"`
	FinishedAt *time.Time `json:"finished_at"`
	// Error is set for a failed or canceled job.
	Error *JobError `json:"error"`
	// Images are a succeeded job's results.
	Images []JobImage `json:"images"`
}

// JobError says why a job failed or was canceled.
type JobError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// JobImage is one result image of a job.
type JobImage struct {
	// URL is absolute: the server's (often relative) URL resolved against
	// the client's base URL.
	URL  string `json:"url"`
	Seed int64  `json:"seed"`
	// Subseed is the image's variation subseed; nil unless the job was a
	// variation.
	Subseed *int64 `json:"subseed,omitempty"`
}

// Client talks to one Easel over its HTTP API. It is safe for concurrent
// use.
type Client struct {
	base *url.URL
	key  string
	http *http.Client

	// submitRetries is how often Submit with an idempotency key resends a
	// request whose answer was lost; submitBackoff is the pause before the
	// first resend, doubled each time.
	submitRetries int
	submitBackoff time.Duration
	// streamRetries is how many reconnects in a row without a new event
	// Events makes before giving up; streamBackoff is the pause before the
	// second of them (the first is immediate when the dropped stream had
	// delivered events), doubled each time up to streamBackoffMax.
	streamRetries    int
	streamBackoff    time.Duration
	streamBackoffMax time.Duration
}

// Limits on what the client reads from a server.
const (
	maxErrorBody = 64 << 10
	maxJSONBody  = 4 << 20
	maxImage     = 256 << 20
)

// New returns a client of the Easel at baseURL (http or https; a path, as
// behind a reverse proxy, is kept as a prefix). apiKey is sent as a bearer
// token; "" sends none, for an Easel without keys answering on loopback.
// httpClient nil means a fresh client; one with a Timeout also cuts event
// streams, so prefer contexts for deadlines.
func New(baseURL, apiKey string, httpClient *http.Client) (*Client, error) {
	u, err := url.Parse(baseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("server URL must look like http://host:port (got %q)", baseURL)
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("server URL must not carry credentials, a query or a fragment (got %q)", u.Redacted())
	}
	if !strings.HasSuffix(u.Path, "/") {
		u.Path += "/"
		u.RawPath = ""
	}
	if httpClient == nil {
		httpClient = &http.Client{}
	}
	return &Client{
		base: u, key: apiKey, http: httpClient,
		submitRetries: 2, submitBackoff: 200 * time.Millisecond,
		streamRetries: 5, streamBackoff: 250 * time.Millisecond, streamBackoffMax: 4 * time.Second,
	}, nil
}

// resolve turns a server-given URL (absolute, or relative like
// /v1/jobs/ID/images/0) into an absolute one.
func (c *Client) resolve(ref string) string {
	r, err := url.Parse(ref)
	if err != nil {
		return ref
	}
	return c.base.ResolveReference(r).String()
}

// endpoint is the URL of an API path ("v1/jobs/…", no leading slash) under
// the base URL.
func (c *Client) endpoint(path string) string {
	return c.base.String() + path
}

func jobPath(id string) string { return "v1/jobs/" + url.PathEscape(id) }

// do sends one request and returns a 2xx response; any other answer is an
// *APIError.
func (c *Client) do(ctx context.Context, method, target string, body []byte, hdr http.Header) (*http.Response, error) {
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, target, r)
	if err != nil {
		return nil, err
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.key != "" {
		req.Header.Set("Authorization", "Bearer "+c.key)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		defer resp.Body.Close()
		return nil, decodeError(resp)
	}
	return resp, nil
}

func (c *Client) doJSON(ctx context.Context, method, target string, body []byte, hdr http.Header, out any) error {
	resp, err := c.do(ctx, method, target, body, hdr)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxJSONBody)).Decode(out); err != nil {
		return fmt.Errorf("decode answer: %w", err)
	}
	return nil
}

// Submit creates a job. With an idempotencyKey ("" for none) the server
// answers a repeat with the first job, so Submit also resends a request
// whose answer was lost on the way (a dropped connection, not a refused
// one): a few times, with the same key.
func (c *Client) Submit(ctx context.Context, r JobRequest, idempotencyKey string) (*Submitted, error) {
	body, err := json.Marshal(r)
	if err != nil {
		return nil, fmt.Errorf("submit: %w", err)
	}
	hdr := http.Header{}
	if idempotencyKey != "" {
		hdr.Set("Idempotency-Key", idempotencyKey)
	}
	pause := c.submitBackoff
	for attempt := 0; ; attempt++ {
		var s Submitted
		err = c.doJSON(ctx, http.MethodPost, c.endpoint("v1/jobs"), body, hdr, &s)
		if err == nil && s.ID == "" {
			return nil, errors.New("submit: the answer names no job")
		}
		if err == nil {
			if s.Links.Self == "" {
				s.Links.Self = "/" + jobPath(s.ID)
			}
			if s.Links.Events == "" {
				s.Links.Events = "/" + jobPath(s.ID) + "/events"
			}
			s.Links.Self, s.Links.Events = c.resolve(s.Links.Self), c.resolve(s.Links.Events)
			return &s, nil
		}
		if idempotencyKey == "" || attempt >= c.submitRetries || !answerLost(ctx, err) {
			return nil, fmt.Errorf("submit: %w", err)
		}
		if err := sleep(ctx, pause); err != nil {
			return nil, fmt.Errorf("submit: %w", err)
		}
		pause *= 2
	}
}

// answerLost reports whether err is a transport failure after which the
// request may have reached the server: not a refused connection, not an
// API answer, not the caller giving up.
func answerLost(ctx context.Context, err error) bool {
	var ue *url.Error
	return ctx.Err() == nil && errors.As(err, &ue) && !errors.Is(err, syscall.ECONNREFUSED)
}

// Job reads a job.
func (c *Client) Job(ctx context.Context, id string) (*Job, error) {
	var j Job
	if err := c.doJSON(ctx, http.MethodGet, c.endpoint(jobPath(id)), nil, nil, &j); err != nil {
		return nil, fmt.Errorf("job %s: %w", id, err)
	}
	for i := range j.Images {
		j.Images[i].URL = c.resolve(j.Images[i].URL)
	}
	return &j, nil
}

// Cancel cancels a queued or running job. A finished job answers an
// *APIError with Status 409 and Code "finished".
func (c *Client) Cancel(ctx context.Context, id string) error {
	resp, err := c.do(ctx, http.MethodDelete, c.endpoint(jobPath(id)), nil, nil)
	if err != nil {
		return fmt.Errorf("cancel %s: %w", id, err)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxJSONBody))
	return resp.Body.Close()
}

// Image downloads result image n (from 0) of a succeeded job.
func (c *Client) Image(ctx context.Context, id string, n int) ([]byte, error) {
	resp, err := c.do(ctx, http.MethodGet, c.endpoint(jobPath(id)+"/images/"+strconv.Itoa(n)), nil, nil)
	if err != nil {
		return nil, fmt.Errorf("image %d of %s: %w", n, id, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxImage+1))
	if err == nil && len(b) > maxImage {
		err = fmt.Errorf("larger than %d MiB", maxImage>>20)
	}
	if err != nil {
		return nil, fmt.Errorf("image %d of %s: %w", n, id, err)
	}
	return b, nil
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
