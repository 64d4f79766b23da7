package apiclient

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"time"
)

// Event types of a job's event stream.
const (
	EventQueued    = "queued"
	EventStarted   = "started"
	EventProgress  = "progress"
	EventRetrying  = "retrying"
	EventSucceeded = "succeeded"
	EventFailed    = "failed"
	EventCanceled  = "canceled"
	// EventPosition is a queued job's new place in line and ETA, or why it
	// waits (Waiting); at most one a second.
	EventPosition = "position"
)

// Event is one event of a job. Which fields are set depends on Type.
type Event struct {
	Type   string `json:"type"`
	JobID  string `json:"job_id"`
	Tenant string `json:"tenant"`
	// Seq numbers the job's events from 1.
	Seq  int64     `json:"seq"`
	Time time.Time `json:"time"`

	// Position is the place in the queue, 1 = next (queued, position).
	Position int `json:"position,omitempty"`
	// Waiting says why a queued job cannot start: every GPU backend is
	// down (position).
	Waiting *Waiting `json:"waiting,omitempty"`
	// Backend and Attempt say where and which try runs (started); Attempt
	// is also the next try (retrying).
	Backend string `json:"backend,omitempty"`
	Attempt int    `json:"attempt,omitempty"`
	// Step of Steps is how far sampling got, Fraction the same from 0 to 1,
	// ETASec the estimated seconds left and Preview the name of the latest
	// preview image, "" when none (progress). For a position event, ETASec
	// is the estimated wait before the job starts: ceil(position / worker
	// slots) × the average run time.
	Step     int     `json:"step,omitempty"`
	Steps    int     `json:"steps,omitempty"`
	Fraction float64 `json:"fraction,omitempty"`
	ETASec   float64 `json:"eta_s,omitempty"`
	Preview  string  `json:"preview,omitempty"`
	// AfterS is the pause in seconds before the next try and Reason why the
	// last one failed (retrying).
	AfterS float64 `json:"after_s,omitempty"`
	Reason string  `json:"reason,omitempty"`
	// Images is the number of images, Seeds their seeds, Subseeds their
	// variation subseeds (variations only) and Info the backend's
	// generation info (succeeded).
	Images   int     `json:"images,omitempty"`
	Seeds    []int64 `json:"seeds,omitempty"`
	Subseeds []int64 `json:"subseeds,omitempty"`
	Info     string  `json:"info,omitempty"`
	// Code and Message say why the job failed (failed).
	Code    string `json:"code,omitempty"`
	Message string `json:"message,omitempty"`
	// By says who canceled the job (canceled).
	By string `json:"by,omitempty"`
}

// Waiting is why a queued job cannot start: no worker slot is free or busy,
// and these backends are reported down.
type Waiting struct {
	// Message says it in English: "waiting for a GPU backend (gpu0
	// unreachable since 19:02:11 UTC)".
	Message  string           `json:"message"`
	Backends []WaitingBackend `json:"backends"`
}

// WaitingBackend is a backend found unreachable, and since when.
type WaitingBackend struct {
	Name  string    `json:"name"`
	Since time.Time `json:"since"`
}

// Terminal reports whether the event ends the job.
func (e Event) Terminal() bool {
	return e.Type == EventSucceeded || e.Type == EventFailed || e.Type == EventCanceled
}

// Events calls fn with each event of job id after sequence number lastSeq
// (0: from the first), in order and each once, and returns nil after the
// terminal event. A stream that drops is resumed with Last-Event-ID: at
// once after a stream that brought news, then with a growing pause, giving
// up after a few failed reconnects in a row. An error from fn ends Events
// and is returned as is; so is ctx's error.
func (c *Client) Events(ctx context.Context, id string, lastSeq int64, fn func(Event) error) error {
	failures := 0
	for {
		progressed, err := c.stream(ctx, id, &lastSeq, fn)
		var ce callbackError
		switch {
		case err == nil:
			return nil
		case errors.As(err, &ce):
			return ce.err
		case ctx.Err() != nil:
			return ctx.Err()
		case !resumable(err):
			return fmt.Errorf("events of %s: %w", id, err)
		}
		if progressed {
			failures = 0
		}
		failures++
		if failures > c.streamRetries {
			return fmt.Errorf("events of %s: gave up after %d reconnects: %w", id, c.streamRetries, err)
		}
		if err := sleep(ctx, c.reconnectDelay(failures, progressed, err)); err != nil {
			return err
		}
	}
}

// reconnectDelay is the pause before reconnect number n in a row: none
// after a stream that brought news, else the base pause (or the server's
// hint, up to a minute) doubled per failure, up to a cap.
func (c *Client) reconnectDelay(n int, progressed bool, err error) time.Duration {
	if n == 1 && progressed {
		return 0
	}
	d := c.streamBackoff
	var se streamError
	var ae *APIError
	switch {
	case errors.As(err, &se) && se.retry > 0:
		d = min(se.retry, time.Minute)
	case errors.As(err, &ae) && ae.RetryAfter > 0:
		d = min(ae.RetryAfter, time.Minute)
	}
	limit := max(c.streamBackoffMax, d)
	for i := 1; i < n && d < limit; i++ {
		d *= 2
	}
	return min(d, limit)
}

// stream reads one connection's worth of events. It reports whether any new
// event arrived, and returns nil after the terminal event.
func (c *Client) stream(ctx context.Context, id string, lastSeq *int64, fn func(Event) error) (bool, error) {
	hdr := http.Header{"Accept": {"text/event-stream"}, "Cache-Control": {"no-cache"}}
	if *lastSeq > 0 {
		hdr.Set("Last-Event-ID", strconv.FormatInt(*lastSeq, 10))
	}
	resp, err := c.do(ctx, http.MethodGet, c.endpoint(jobPath(id)+"/events"), nil, hdr)
	if err != nil {
		return false, err
	}
	defer resp.Body.Close()
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt != "text/event-stream" {
		return false, protocolError{fmt.Errorf("answer is %q, not an event stream", resp.Header.Get("Content-Type"))}
	}
	progressed := false
	r := newSSEReader(resp.Body)
	for {
		m, err := r.Next()
		if errors.Is(err, io.EOF) {
			return progressed, streamError{errors.New("stream ended before the job did"), r.retry}
		}
		if errors.Is(err, errSSETooLong) {
			return progressed, protocolError{err}
		}
		if err != nil {
			return progressed, streamError{err, r.retry}
		}
		if m.Event == "error" {
			// The server could not follow the job any further; a new stream
			// may well succeed.
			var e struct {
				Message string `json:"message"`
			}
			_ = json.Unmarshal([]byte(m.Data), &e)
			return progressed, streamError{fmt.Errorf("server: %s", e.Message), r.retry}
		}
		var e Event
		if err := json.Unmarshal([]byte(m.Data), &e); err != nil {
			return progressed, protocolError{fmt.Errorf("%s event: %w", m.Event, err)}
		}
		if e.Type == "" {
			e.Type = m.Event
		}
		if e.Seq == 0 {
			e.Seq, _ = strconv.ParseInt(m.ID, 10, 64)
		}
		if e.Seq > 0 && e.Seq <= *lastSeq {
			continue // replayed by a resume
		}
		if e.Seq > 0 {
			*lastSeq = e.Seq
		}
		progressed = true
		if err := fn(e); err != nil {
			return progressed, callbackError{err}
		}
		if e.Terminal() {
			return progressed, nil
		}
	}
}

// callbackError carries an error of Events' fn through stream.
type callbackError struct{ err error }

func (e callbackError) Error() string { return e.err.Error() }

// protocolError is a stream that is not what the API sends; reconnecting
// will not help.
type protocolError struct{ err error }

func (e protocolError) Error() string { return e.err.Error() }
func (e protocolError) Unwrap() error { return e.err }

// streamError is a stream that broke off; retry is the server's reconnect
// hint, 0 when none.
type streamError struct {
	err   error
	retry time.Duration
}

func (e streamError) Error() string { return e.err.Error() }
func (e streamError) Unwrap() error { return e.err }

// resumable reports whether a new stream may succeed where this one failed:
// after a drop, a transport failure or a server-side error answer, not
// after a client-side one (a 404, a bad key) or a protocol mismatch.
func resumable(err error) bool {
	var pe protocolError
	if errors.As(err, &pe) {
		return false
	}
	var ae *APIError
	if errors.As(err, &ae) {
		return ae.Status >= 500 || ae.Status == http.StatusTooManyRequests || ae.Status == http.StatusRequestTimeout
	}
	return true
}
