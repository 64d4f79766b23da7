package apiclient

import (
	"bufio"
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
	"time"
)

// JobRequest is the body of POST /v1/jobs.
type JobRequest struct {
	Prompt         string  `json:"prompt"`
	NegativePrompt string  `json:"negative_prompt,omitempty"`
	Width          int     `json:"width,omitempty"`
	Height         int     `json:"height,omitempty"`
	Steps          int     `json:"steps,omitempty"`
	CFGScale       float64 `json:"cfg_scale,omitempty"`
	Seed           *int64  `json:"seed,omitempty"`
	Sampler        string  `json:"sampler,omitempty"`
	Model          string  `json:"model,omitempty"`
	Count          int     `json:"count,omitempty"`
	User           string  `json:"user,omitempty"`
	CallbackURL    string  `json:"callback_url,omitempty"`
}

// Submitted is the answer to a submit.
type Submitted struct {
	ID       string `json:"id"`
	Status   string `json:"status"`
	Position int    `json:"position"`
}

// Job is GET /v1/jobs/{id}.
type Job struct {
	ID       string  `json:"id"`
	Status   string  `json:"status"`
	Position int     `json:"position"`
	Progress float64 `json:"progress"`
	Step     int     `json:"step"`
	Steps    int     `json:"steps"`
	Error    *struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
	Images []struct {
		URL  string `json:"url"`
		Seed int64  `json:"seed"`
	} `json:"images"`
}

// Event is one Server-Sent Event of a job.
type Event struct {
	Type     string  `json:"type"`
	JobID    string  `json:"job_id"`
	Seq      int64   `json:"seq"`
	Position int     `json:"position"`
	Backend  string  `json:"backend"`
	Attempt  int     `json:"attempt"`
	Step     int     `json:"step"`
	Steps    int     `json:"steps"`
	Fraction float64 `json:"fraction"`
	ETASec   float64 `json:"eta_s"`
	AfterS   float64 `json:"after_s"`
	Reason   string  `json:"reason"`
	Images   int     `json:"images"`
	Seeds    []int64 `json:"seeds"`
	Code     string  `json:"code"`
	Message  string  `json:"message"`
	By       string  `json:"by"`
}

// Terminal reports whether the event ends the job.
func (e Event) Terminal() bool {
	return e.Type == "succeeded" || e.Type == "failed" || e.Type == "canceled"
}

// APIError is a non-2xx answer.
type APIError struct {
	Status     int
	Code       string
	Message    string
	Field      string
	RetryAfter time.Duration
}

func (e *APIError) Error() string {
	if e.Message != "" {
		return e.Message
	}
	return fmt.Sprintf("HTTP %d", e.Status)
}

// Client talks to one Easel.
type Client struct {
	base *url.URL
	key  string
	http *http.Client
}

// New returns a client of the API at baseURL; key may be empty (loopback).
func New(baseURL, key string, hc *http.Client) (*Client, error) {
	u, err := url.Parse(baseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("server must be an http:// or https:// URL (got %q)", baseURL)
	}
	if hc == nil {
		hc = &http.Client{}
	}
	return &Client{base: u, key: key, http: hc}, nil
}

func (c *Client) do(ctx context.Context, method, path string, body any, hdr http.Header) (*http.Response, error) {
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		r = bytes.NewReader(b)
	}
	ref, err := url.Parse(path)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base.ResolveReference(ref).String(), r)
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

func decodeError(resp *http.Response) error {
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	var e struct {
		Error struct {
			Code        string `json:"code"`
			Message     string `json:"message"`
			Field       string `json:"field"`
			RetryAfterS int    `json:"retry_after_s"`
		} `json:"error"`
	}
	ae := &APIError{Status: resp.StatusCode}
	if json.Unmarshal(raw, &e) == nil {
		ae.Code, ae.Message, ae.Field = e.Error.Code, e.Error.Message, e.Error.Field
		ae.RetryAfter = time.Duration(e.Error.RetryAfterS) * time.Second
	} else {
		ae.Message = strings.TrimSpace(string(raw))
	}
	return ae
}

func (c *Client) doJSON(ctx context.Context, method, path string, body, out any, hdr http.Header) error {
	resp, err := c.do(ctx, method, path, body, hdr)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	return json.NewDecoder(resp.Body).Decode(out)
}

// Submit creates a job; idempotencyKey may be empty.
func (c *Client) Submit(ctx context.Context, r JobRequest, idempotencyKey string) (*Submitted, error) {
	hdr := http.Header{}
	if idempotencyKey != "" {
		hdr.Set("Idempotency-Key", idempotencyKey)
	}
	var s Submitted
	return &s, c.doJSON(ctx, http.MethodPost, "/v1/jobs", r, &s, hdr)
}

// Job reads a job.
func (c *Client) Job(ctx context.Context, id string) (*Job, error) {
	var j Job
	return &j, c.doJSON(ctx, http.MethodGet, "/v1/jobs/"+url.PathEscape(id), nil, &j, nil)
}

// Cancel cancels a job.
func (c *Client) Cancel(ctx context.Context, id string) error {
	var j Job
	return c.doJSON(ctx, http.MethodDelete, "/v1/jobs/"+url.PathEscape(id), nil, &j, nil)
}

// Image downloads result image n of a job.
func (c *Client) Image(ctx context.Context, id string, n int) ([]byte, error) {
	resp, err := c.do(ctx, http.MethodGet, "/v1/jobs/"+url.PathEscape(id)+"/images/"+strconv.Itoa(n), nil, nil)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	return io.ReadAll(resp.Body)
}

// Events calls fn with each event of the job after lastSeq until a terminal
// event; a dropped stream is resumed with Last-Event-ID, up to 5 times in a
// row with a growing pause.
func (c *Client) Events(ctx context.Context, id string, lastSeq int64, fn func(Event) error) error {
	failures := 0
	for {
		hdr := http.Header{"Accept": {"text/event-stream"}}
		if lastSeq > 0 {
			hdr.Set("Last-Event-ID", strconv.FormatInt(lastSeq, 10))
		}
		resp, err := c.do(ctx, http.MethodGet, "/v1/jobs/"+url.PathEscape(id)+"/events", nil, hdr)
		if err == nil {
			var done bool
			done, err = readSSE(resp.Body, func(m Message) error {
				if m.Event == "error" {
					return fmt.Errorf("event stream: %s", m.Data)
				}
				var e Event
				if err := json.Unmarshal([]byte(m.Data), &e); err != nil {
					return fmt.Errorf("event stream: %w", err)
				}
				if e.Seq <= lastSeq {
					return nil
				}
				lastSeq = e.Seq
				failures = 0
				if err := fn(e); err != nil {
					return err
				}
				if e.Terminal() {
					return errDone
				}
				return nil
			})
			resp.Body.Close()
			if done {
				return nil
			}
		}
		var ae *APIError
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if errors.As(err, &ae) && ae.Status < 500 {
			return err
		}
		if err != nil && !isNetErr(err) {
			return err
		}
		failures++
		if failures > 5 {
			return fmt.Errorf("event stream keeps dropping: %v", err)
		}
		t := time.NewTimer(time.Duration(failures) * 200 * time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}

var errDone = errors.New("done")

func isNetErr(err error) bool {
	return err == nil || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) ||
		strings.Contains(err.Error(), "connection") || strings.Contains(err.Error(), "EOF")
}

// Message is one Server-Sent Events message.
type Message struct {
	ID    string
	Event string
	Data  string
}

// ParseSSE reads messages from r and calls fn with each, until r ends.
func ParseSSE(r io.Reader, fn func(Message) error) error {
	_, err := readSSE(r, fn)
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return nil
	}
	return err
}

// readSSE parses the text/event-stream format: fields "id", "event",
// "data" (joined with newlines), comments starting with ':', messages ended
// by a blank line, CRLF or LF line ends. It reports done when fn returned
// errDone.
func readSSE(r io.Reader, fn func(Message) error) (bool, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	var m Message
	var data []string
	for sc.Scan() {
		line := strings.TrimSuffix(sc.Text(), "\r")
		if line == "" {
			if len(data) > 0 {
				m.Data = strings.Join(data, "\n")
				if m.Event == "" {
					m.Event = "message"
				}
				if err := fn(m); err != nil {
					if errors.Is(err, errDone) {
						return true, nil
					}
					return false, err
				}
			}
			m, data = Message{}, nil
			continue
		}
		if strings.HasPrefix(line, ":") {
			continue
		}
		field, value, _ := strings.Cut(line, ":")
		value = strings.TrimPrefix(value, " ")
		switch field {
		case "id":
			m.ID = value
		case "event":
			m.Event = value
		case "data":
			data = append(data, value)
		}
	}
	if err := sc.Err(); err != nil {
		return false, err
	}
	return false, io.ErrUnexpectedEOF
}
