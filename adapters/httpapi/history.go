package httpapi

import (
	"fmt"
	"io"
	"net/http"
	"strconv"

	"github.com/easelbot/easel/commands"
	"github.com/easelbot/easel/scheduler"
)

// extraRoutes mounts history, upscale and the OpenAPI document.
func (s *Server) extraRoutes() {
	m := s.mux
	m.HandleFunc("GET /v1/jobs", s.auth(s.history))
	m.HandleFunc("POST /v1/jobs/{id}/images/{n}/upscale", s.auth(s.upscale))
	m.HandleFunc("GET /openapi.json", s.openapi)
	s.adminRoutes()
}

// history lists the tenant's finished jobs, newest first, or one user's
// with ?user=, a page at a time: ?limit= (1-100, default 20) and ?cursor=
// (the previous page's next_cursor). Each job carries its request
// (parameters) and image URLs; images are kept for storage.image_ttl.
func (s *Server) history(w http.ResponseWriter, r *http.Request, c commands.Caller) {
	q := r.URL.Query()
	limit := 20
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > scheduler.MaxPageSize {
			writeError(w, http.StatusBadRequest, "invalid_request",
				fmt.Sprintf("limit: must be a whole number between 1 and %d (got %q)", scheduler.MaxPageSize, v), "limit")
			return
		}
		limit = n
	}
	user := q.Get("user")
	if user != "" && (len(user) > 64 || !userName.MatchString(user)) {
		writeError(w, http.StatusBadRequest, "invalid_request", "user: must be 1-64 letters, digits and _.@-", "user")
		return
	}
	page, err := s.sched.FinishedPage(r.Context(), c.Tenant, user, q.Get("cursor"), limit)
	if err != nil {
		s.writeErr(w, err)
		return
	}
	out := make([]JobView, 0, len(page.Jobs))
	for _, j := range page.Jobs {
		if j.Tenant != c.Tenant {
			continue
		}
		out = append(out, view(j, 0))
	}
	body := map[string]any{"jobs": out}
	if page.Next != "" {
		body["next_cursor"] = page.Next
	}
	writeJSON(w, http.StatusOK, body)
}

// upscale queues a 2× upscale of image n (0-based) of a finished job,
// through the same fair queue, for the job's user.
func (s *Server) upscale(w http.ResponseWriter, r *http.Request, c commands.Caller) {
	_, _ = io.Copy(io.Discard, r.Body) // no body; bounded by auth
	j, err := s.svc.Job(r.Context(), c, r.PathValue("id"))
	if err != nil {
		s.writeErr(w, err)
		return
	}
	n, err := strconv.Atoi(r.PathValue("n"))
	if err != nil {
		writeError(w, http.StatusBadRequest, "invalid_request", "n: must be an image number (0-based)", "n")
		return
	}
	res, err := s.svc.Upscale(r.Context(), keyHolder(c, j.User), []byte(`{"kind":"http"}`), j.ID, n, r.Header.Get("Idempotency-Key"))
	if err != nil {
		s.writeErr(w, err)
		return
	}
	writeAccepted(w, res)
}
