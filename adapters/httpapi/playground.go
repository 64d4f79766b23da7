package httpapi

import (
	_ "embed"
	"net/http"
)

//go:embed playground.html
var playgroundHTML []byte

// playground serves the demo page: prompt box, live progress over SSE,
// previews and the final images. It uses only the public API.
func (s *Server) playground(w http.ResponseWriter, r *http.Request) {
	if _, _, ok := s.caller(r); !ok && len(s.cfg.Keys) == 0 && len(s.cfg.AdminKeys) == 0 {
		s.refuse(w, r)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Security-Policy", "default-src 'self'; img-src 'self' blob:; style-src 'unsafe-inline'; script-src 'unsafe-inline'")
	_, _ = w.Write(playgroundHTML)
}
