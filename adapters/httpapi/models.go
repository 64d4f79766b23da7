package httpapi

import (
	"net/http"

	"github.com/easelbot/easel/commands"
)

// models answers GET /v1/models: the models (with the backends that have
// each and those that have it loaded), samplers, schedulers, LoRAs and
// upscalers across the healthy backends.
func (s *Server) models(w http.ResponseWriter, r *http.Request, _ commands.Caller) {
	cat, err := s.svc.Models(r.Context())
	if err != nil {
		s.writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, cat)
}
