package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"unicode/utf8"

	"github.com/easelbot/easel/commands"
	"github.com/easelbot/easel/sdclient"
)

// JobRequest is the body of POST /v1/jobs.
type JobRequest struct {
	commands.Imagine
	// User is the end user on whose behalf the job runs (for per-user
	// fairness and quotas). Default "api".
	User string `json:"user,omitempty"`
	// CallbackURL receives the final job as a signed POST.
	CallbackURL string `json:"callback_url,omitempty"`

	// The fields below shadow Imagine's in JSON, so that a field given as
	// 0 is told apart from one left out (which takes the default).
	// DecodeJobRequest copies them into Imagine and leaves them mirroring
	// it, so the request encodes back to what was accepted.
	Width             *int        `json:"width,omitempty"`
	Height            *int        `json:"height,omitempty"`
	Steps             *int        `json:"steps,omitempty"`
	Count             *int        `json:"count,omitempty"`
	CFGScale          *float64    `json:"cfg_scale,omitempty"`
	DenoisingStrength *float64    `json:"denoising_strength,omitempty"`
	DistilledCFGScale *float64    `json:"distilled_cfg_scale,omitempty"`
	LoRAs             []loraInput `json:"loras,omitempty"`
}

// loraInput is one entry of "loras": a name and a weight (default 1).
type loraInput struct {
	Name   string   `json:"name"`
	Weight *float64 `json:"weight"`
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
	for _, f := range []struct {
		name string
		v    *int
		dst  *int
	}{{"width", r.Width, &r.Imagine.Width}, {"height", r.Height, &r.Imagine.Height}, {"steps", r.Steps, &r.Imagine.Steps},
		{"count", r.Count, &r.Imagine.Count}} {
		if f.v == nil {
			continue
		}
		if *f.v == 0 {
			return JobRequest{}, &RequestError{400, f.name, "must not be 0 (leave it out for the default)"}
		}
		*f.dst = *f.v
	}
	for _, f := range []struct {
		name string
		v    *float64
		dst  *float64
	}{{"cfg_scale", r.CFGScale, &r.Imagine.CFGScale}, {"denoising_strength", r.DenoisingStrength, &r.Imagine.DenoisingStrength},
		{"distilled_cfg_scale", r.DistilledCFGScale, &r.Imagine.DistilledCFGScale}} {
		if f.v == nil {
			continue
		}
		if *f.v == 0 {
			return JobRequest{}, &RequestError{400, f.name, "must not be 0 (leave it out for the default)"}
		}
		*f.dst = *f.v
	}
	r.Imagine.LoRAs = nil
	for i, l := range r.LoRAs {
		w := 1.0
		if l.Weight != nil {
			w = *l.Weight
		}
		if l.Name == "" {
			return JobRequest{}, &RequestError{400, fmt.Sprintf("loras[%d].name", i), "is required"}
		}
		r.Imagine.LoRAs = append(r.Imagine.LoRAs, sdclient.LoRA{Name: l.Name, Weight: w})
	}
	r.mirror()
	return r, nil
}

// mirror sets the shadow fields from Imagine.
func (r *JobRequest) mirror() {
	pi := func(v int) *int {
		if v == 0 {
			return nil
		}
		return &v
	}
	pf := func(v float64) *float64 {
		if v == 0 {
			return nil
		}
		return &v
	}
	im := &r.Imagine
	r.Width, r.Height, r.Steps, r.Count = pi(im.Width), pi(im.Height), pi(im.Steps), pi(im.Count)
	r.CFGScale, r.DenoisingStrength, r.DistilledCFGScale = pf(im.CFGScale), pf(im.DenoisingStrength), pf(im.DistilledCFGScale)
	r.LoRAs = nil
	for _, l := range im.LoRAs {
		w := l.Weight
		r.LoRAs = append(r.LoRAs, loraInput{Name: l.Name, Weight: &w})
	}
}

// decodeBody decodes a small JSON request body (already read in full and
// bounded by the auth wrapper) strictly into v; errors name the field.
func decodeBody(r *http.Request, v any) error {
	raw, err := io.ReadAll(r.Body)
	if err == nil {
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.DisallowUnknownFields()
		err = dec.Decode(v)
	}
	if err != nil {
		return jsonError(err)
	}
	return nil
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
