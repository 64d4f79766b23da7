package httpapi

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strconv"

	"github.com/easelbot/easel/commands"
	"github.com/easelbot/easel/sdclient"
	"github.com/easelbot/easel/storage"
	"github.com/easelbot/easel/storage/blob"
)

// image serves result image n of a succeeded job: a redirect to a
// presigned URL when the image store hands them out (storage.blobs.presign),
// else the image streamed from the store with its ETag, Range support and
// Cache-Control immutable (an image's URL never names other bytes).
// ?size=thumb serves a JPEG thumbnail (scheduler.ThumbSide pixels on the
// long side) instead, made on first ask and kept beside the image.
func (s *Server) image(w http.ResponseWriter, r *http.Request, c commands.Caller) {
	size := r.URL.Query().Get("size")
	if size != "" && size != "full" && size != "thumb" {
		writeError(w, http.StatusBadRequest, "invalid_request", `size: must be "full" or "thumb"`, "size")
		return
	}
	j, err := s.svc.Job(r.Context(), c, r.PathValue("id"))
	if err != nil {
		s.writeErr(w, err)
		return
	}
	n, err := strconv.Atoi(r.PathValue("n"))
	if err != nil {
		writeError(w, http.StatusNotFound, "not_found", "no such image", "")
		return
	}
	if size == "thumb" {
		// Making a thumbnail is CPU work the Redis deadline was not meant
		// for: the first ask gets the write timeout instead (and the
		// thumbnail is kept even if the client leaves).
		ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), s.cfg.WriteTimeout)
		defer cancel()
		o, etag, err := s.sched.OpenThumb(ctx, j, n)
		s.serveBlob(w, r, o, etag, err)
		return
	}
	u, err := s.sched.ImageURL(r.Context(), j, n)
	if err == nil {
		// The redirect itself is not cached: the signature expires.
		w.Header().Set("Cache-Control", "private, no-store")
		http.Redirect(w, r, u.String(), http.StatusFound)
		return
	}
	if !errors.Is(err, blob.ErrNoPresign) {
		s.writeImageErr(w, err)
		return
	}
	o, etag, err := s.sched.OpenImage(r.Context(), j, n)
	s.serveBlob(w, r, o, etag, err)
}

func (s *Server) preview(w http.ResponseWriter, r *http.Request, c commands.Caller) {
	j, err := s.svc.Job(r.Context(), c, r.PathValue("id"))
	if err != nil {
		s.writeErr(w, err)
		return
	}
	o, etag, err := s.sched.OpenPreview(r.Context(), j.ID, r.PathValue("name"))
	s.serveBlob(w, r, o, etag, err)
}

func (s *Server) writeImageErr(w http.ResponseWriter, err error) {
	if errors.Is(err, storage.ErrNotFound) {
		writeError(w, http.StatusNotFound, "not_found", "no such image (or it expired)", "")
		return
	}
	s.writeErr(w, err)
}

// serveBlob streams an open blob; http.ServeContent answers Range,
// If-Range and If-None-Match (against the blob's ETag).
func (s *Server) serveBlob(w http.ResponseWriter, r *http.Request, o *blob.Object, etag string, err error) {
	if err != nil {
		s.writeImageErr(w, err)
		return
	}
	defer o.Close()
	head := make([]byte, 16)
	n, err := io.ReadFull(o, head)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		s.writeErr(w, err)
		return
	}
	if _, err := o.Seek(0, io.SeekStart); err != nil {
		s.writeErr(w, err)
		return
	}
	ct := "application/octet-stream"
	if f := sdclient.SniffFormat(head[:n]); f != "" {
		ct = "image/" + f
	}
	w.Header().Set("Content-Type", ct)
	w.Header().Set("ETag", etag)
	w.Header().Set("Cache-Control", "private, max-age=86400, immutable")
	http.ServeContent(w, r, "", o.ModTime, o)
}

// imageResponses adds the answers of serveBlob (and of a presigned
// redirect, for results) to an image route's OpenAPI operation.
func imageResponses(o obj, presign bool) obj {
	r := o["responses"].(obj)
	r["206"] = obj{"description": "the byte range asked for with Range"}
	r["304"] = obj{"description": "not modified (If-None-Match matched the image's ETag)"}
	if presign {
		r["302"] = obj{"description": "storage.blobs.presign: Location is a presigned URL of the image"}
	}
	return o
}
