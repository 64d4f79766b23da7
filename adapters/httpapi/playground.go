package httpapi

import (
	"embed"
	"io/fs"
	"net/http"
	"path"
	"strings"
)

// webFS holds the pages (playground, dashboard) and their scripts and
// styles: plain HTML, CSS and JS, no build step.
//
//go:embed web
var webFS embed.FS

// pageCSP lets pages load only their own scripts, styles and images (and
// the blob: URLs of images fetched with the API key).
const pageCSP = "default-src 'self'; img-src 'self' blob:; style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'"

// webRoutes mounts the pages and their assets.
func (s *Server) webRoutes() {
	s.mux.HandleFunc("GET /{$}", s.playground)
	s.mux.HandleFunc("GET /web/{file}", s.asset)
}

// playground serves the playground page. The page itself is public when
// keys are set (it asks for a key); in open mode only allowed clients get it.
func (s *Server) playground(w http.ResponseWriter, r *http.Request) {
	s.page(w, r, "web/playground.html")
}

func (s *Server) page(w http.ResponseWriter, r *http.Request, name string) {
	if _, _, ok := s.caller(r); !ok && len(s.cfg.Keys) == 0 && len(s.cfg.AdminKeys) == 0 {
		s.refuse(w, r)
		return
	}
	b, err := webFS.ReadFile(name)
	if err != nil {
		writeError(w, http.StatusNotFound, "not_found", "no such page", "")
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Security-Policy", pageCSP)
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Cache-Control", "no-cache")
	_, _ = w.Write(b)
}

// asset serves web/<file> (scripts and styles; no secrets in them).
func (s *Server) asset(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("file")
	b, err := fs.ReadFile(webFS, "web/"+name)
	if err != nil || strings.HasSuffix(name, ".html") {
		writeError(w, http.StatusNotFound, "not_found", "no such file", "")
		return
	}
	switch path.Ext(name) {
	case ".js":
		w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
	case ".css":
		w.Header().Set("Content-Type", "text/css; charset=utf-8")
	default:
		w.Header().Set("Content-Type", "application/octet-stream")
	}
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Cache-Control", "no-cache")
	_, _ = w.Write(b)
}
