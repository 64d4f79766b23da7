package a1111

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"unicode/utf8"
)

// maxMessage caps an error message, in bytes; servers behind proxies can
// answer whole HTML pages.
const maxMessage = 200

// errorMessage renders a non-2xx answer body for sdclient.HTTPError.Message.
//
// A1111's exception handler answers {"error": type name, "detail": the
// HTTPException's detail or "", "body": "", "errors": str(exception)};
// FastAPI's request validation answers 422 {"detail": [{"loc", "msg",
// "type"}]}, rendered as "loc: msg" joined by "; ". Anything else is the raw
// body with its whitespace collapsed. The result is at most maxMessage bytes.
func errorMessage(raw []byte) string {
	var e struct {
		Error  string          `json:"error"`
		Detail json.RawMessage `json:"detail"`
		Body   json.RawMessage `json:"body"`
		Errors json.RawMessage `json:"errors"`
	}
	var msg string
	if json.Unmarshal(raw, &e) == nil {
		msg = renderDetail(e.Detail)
		if msg == "" {
			msg = renderDetail(e.Errors)
		}
		if msg == "" {
			msg = renderDetail(e.Body)
		}
		// HTTPException says nothing the detail does not; a Python exception
		// name (RuntimeError, OutOfMemoryError) does.
		switch {
		case e.Error == "" || e.Error == "HTTPException":
		case msg == "":
			msg = e.Error
		default:
			msg = e.Error + ": " + msg
		}
	}
	if msg == "" {
		msg = string(raw)
	}
	return truncate(strings.Join(strings.Fields(strings.ToValidUTF8(msg, "\uFFFD")), " "), maxMessage)
}

// renderDetail renders one JSON value of an error body: a string as is, a
// list of FastAPI validation errors as "loc: msg; ...", null or "" as "", and
// anything else as compact JSON.
func renderDetail(v json.RawMessage) string {
	v = bytes.TrimSpace(v)
	if len(v) == 0 || string(v) == "null" {
		return ""
	}
	var s string
	if json.Unmarshal(v, &s) == nil {
		return s
	}
	var list []json.RawMessage
	if json.Unmarshal(v, &list) == nil {
		parts := make([]string, 0, len(list))
		for _, item := range list {
			var ve struct {
				Loc []any  `json:"loc"`
				Msg string `json:"msg"`
			}
			if json.Unmarshal(item, &ve) != nil || ve.Msg == "" {
				parts = append(parts, compact(item))
				continue
			}
			if loc := renderLoc(ve.Loc); loc != "" {
				parts = append(parts, loc+": "+ve.Msg)
			} else {
				parts = append(parts, ve.Msg)
			}
		}
		return strings.Join(parts, "; ")
	}
	return compact(v)
}

// renderLoc joins a validation error's location, dropping the "body" every
// request-body error starts with: ["body", "width"] is "width".
func renderLoc(loc []any) string {
	parts := make([]string, 0, len(loc))
	for i, l := range loc {
		if i == 0 && l == "body" {
			continue
		}
		switch l := l.(type) {
		case string:
			parts = append(parts, l)
		case float64:
			parts = append(parts, fmt.Sprint(l))
		default:
			parts = append(parts, compact(mustJSON(l)))
		}
	}
	return strings.Join(parts, ".")
}

func compact(v []byte) string {
	var b bytes.Buffer
	if json.Compact(&b, v) != nil {
		return string(v)
	}
	return b.String()
}

func mustJSON(v any) []byte {
	b, _ := json.Marshal(v)
	return b
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
