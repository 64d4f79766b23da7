package fakesd

import (
	"encoding/json"
	"fmt"
	"net/http"
)

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// writeHTTPException answers like A1111's exception handler
// (modules/api/api.py api_middleware, handle_exception: {error, detail,
// body, errors}) does for a FastAPI HTTPException: errors is str(e), which
// Starlette renders as "status: detail".
func writeHTTPException(w http.ResponseWriter, status int, detail string) {
	writeJSON(w, status, map[string]any{
		"error": "HTTPException", "detail": detail, "body": "",
		"errors": fmt.Sprintf("%d: %s", status, detail),
	})
}

// writeException answers like A1111's exception handler does for any other
// Python exception: always 500, the type's name and str(e).
func writeException(w http.ResponseWriter, name, msg string) {
	writeJSON(w, http.StatusInternalServerError, map[string]any{
		"error": name, "detail": "", "body": "", "errors": msg,
	})
}

// validationError is one entry of FastAPI's 422 answer
// {"detail": [validationError...]} (pydantic v1 shape).
type validationError struct {
	// Loc is where the error is: "body", then a field name or, for a JSON
	// syntax error, the byte offset.
	Loc  []any  `json:"loc"`
	Msg  string `json:"msg"`
	Type string `json:"type"`
}

func writeValidation(w http.ResponseWriter, errs []validationError) {
	writeJSON(w, http.StatusUnprocessableEntity, map[string]any{"detail": errs})
}
