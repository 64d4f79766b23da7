package apiclient

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// APIError is a non-2xx answer of the API.
type APIError struct {
	// Status is the HTTP status code.
	Status int
	// Code is the machine-readable error code ("invalid_request",
	// "not_found", "user_rate", …); "" when the answer was not the API's
	// JSON (a proxy's error page, say).
	Code string
	// Message is the human-readable message; for a bad request it usually
	// starts with the field name.
	Message string
	// Field names the request field at fault, if any.
	Field string
	// RetryAfter is how long to wait before trying again (429 and 503
	// answers); 0 when the server did not say.
	RetryAfter time.Duration
}

// Error is "<field>: <message>", or the message alone when it has no field
// or already starts with it.
func (e *APIError) Error() string {
	msg := e.Message
	if msg == "" {
		msg = fmt.Sprintf("HTTP %d %s", e.Status, http.StatusText(e.Status))
	}
	if e.Field != "" && !strings.HasPrefix(msg, e.Field+":") {
		msg = e.Field + ": " + msg
	}
	return msg
}

// decodeError reads an error answer: the API's {error:{…}} JSON, else the
// start of whatever body came.
func decodeError(resp *http.Response) *APIError {
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	ae := &APIError{Status: resp.StatusCode}
	var body struct {
		Error *struct {
			Code        string  `json:"code"`
			Message     string  `json:"message"`
			Field       string  `json:"field"`
			RetryAfterS float64 `json:"retry_after_s"`
		} `json:"error"`
	}
	if json.Unmarshal(raw, &body) == nil && body.Error != nil {
		e := body.Error
		ae.Code, ae.Message, ae.Field = e.Code, e.Message, e.Field
		if e.RetryAfterS > 0 && e.RetryAfterS < 1e6 {
			ae.RetryAfter = time.Duration(e.RetryAfterS * float64(time.Second))
		}
	} else {
		ae.Message = snippet(raw)
	}
	if ae.RetryAfter == 0 {
		ae.RetryAfter = parseRetryAfter(resp.Header.Get("Retry-After"), time.Now())
	}
	return ae
}

// parseRetryAfter reads a Retry-After header: delay seconds or an HTTP date.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if s, err := strconv.ParseInt(v, 10, 64); err == nil {
		if s <= 0 || s > 1e6 {
			return 0
		}
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now).Round(time.Second)
	}
	return 0
}

// snippet is the first line of a non-JSON error body, short; "" for an
// HTML page, whose first line says nothing.
func snippet(raw []byte) string {
	s, _, _ := strings.Cut(strings.TrimSpace(string(raw)), "\n")
	s = strings.TrimSpace(strings.ToValidUTF8(s, "?"))
	if strings.HasPrefix(s, "<") {
		return ""
	}
	if utf8.RuneCountInString(s) > 200 {
		s = string([]rune(s)[:200]) + "…"
	}
	return s
}
