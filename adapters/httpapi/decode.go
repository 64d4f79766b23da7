package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"

	"github.com/easelbot/easel/commands"
)

// JobRequest is the body of POST /v1/jobs.
type JobRequest struct {
	commands.Imagine
	// User is the end user on whose behalf the job runs (for per-user
	// fairness and quotas). Default "api".
	User string `json:"user,omitempty"`
	// CallbackURL receives the final job as a signed POST.
	CallbackURL string `json:"callback_url,omitempty"`
}

// RequestError is a body that could not be decoded, naming the field.
type RequestError struct {
	Status  int
	Field   string
	Message string
}

func (e *RequestError) Error() string { return e.Field + ": " + e.Message }

// DecodeJobRequest decodes a POST /v1/jobs body strictly.
func DecodeJobRequest(body []byte) (JobRequest, error) {
	var r JobRequest
	if !utf8.Valid(body) {
		return r, &RequestError{400, "body", "must be valid UTF-8"}
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return r, &RequestError{400, "body", "must be a JSON object with at least a prompt"}
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		return JobRequest{}, jsonError(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return JobRequest{}, &RequestError{400, "body", "must hold exactly one JSON object (trailing data found)"}
	}
	return r, nil
}

func jsonError(err error) error {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return &RequestError{400, "body", fmt.Sprintf("is not valid JSON (at byte %d: %v)", se.Offset, se)}
	case errors.As(err, &te):
		field := strings.TrimPrefix(te.Field, "Imagine.")
		if field == "" {
			field = "body"
		}
		return &RequestError{400, field, fmt.Sprintf("must be %s (got JSON %s)", jsonKind(te.Type.Kind().String()), te.Value)}
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		f := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		if f == "" {
			return &RequestError{400, "body", `has a field with an empty name ("")`}
		}
		return &RequestError{400, f, "is not a known field"}
	case errors.Is(err, io.ErrUnexpectedEOF):
		return &RequestError{400, "body", "is not valid JSON (unexpected end)"}
	}
	return &RequestError{400, "body", "is not valid JSON: " + err.Error()}
}

func jsonKind(k string) string {
	switch k {
	case "int", "int64":
		return "a whole number"
	case "float64":
		return "a number"
	case "string":
		return "a string"
	case "struct", "map":
		return "an object"
	}
	return "a " + k
}
