package httpapi

import (
	"net/http"

	"github.com/easelbot/easel/commands"
)

// getDefaults answers GET /v1/admin/defaults[?channel=ID]: the tenant's
// server defaults and, with channel, that channel's (admins only).
func (s *Server) getDefaults(w http.ResponseWriter, r *http.Request, c commands.Caller) {
	if !c.Admin {
		s.writeErr(w, commands.ErrForbidden)
		return
	}
	server, err := s.svc.Defaults(r.Context(), c.Tenant, "")
	if err != nil {
		s.writeErr(w, err)
		return
	}
	out := map[string]any{"server": server, "fields": commands.DefaultFields}
	if ch := r.URL.Query().Get("channel"); ch != "" {
		cd, err := s.svc.Defaults(r.Context(), c.Tenant, ch)
		if err != nil {
			s.writeErr(w, err)
			return
		}
		out["channel"] = cd
	}
	writeJSON(w, http.StatusOK, out)
}

// patchDefaults answers PATCH /v1/admin/defaults {"field", "value",
// "channel"}: sets one field of the server's defaults, or of the channel's
// when channel is set; an empty value clears it (admins only).
func (s *Server) patchDefaults(w http.ResponseWriter, r *http.Request, c commands.Caller) {
	var body struct {
		Field   string `json:"field"`
		Value   string `json:"value"`
		Channel string `json:"channel"`
	}
	if err := decodeBody(r, &body); err != nil {
		s.writeErr(w, err)
		return
	}
	st, err := s.svc.SetDefault(r.Context(), c, body.Channel, body.Field, body.Value)
	if err != nil {
		s.writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, st)
}
