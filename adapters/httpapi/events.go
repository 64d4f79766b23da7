package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/easelbot/easel/commands"
)

// events streams a job's events as Server-Sent Events: "id: <seq>", "event:
// <type>", "data: <event JSON>", resuming after Last-Event-ID, ending after
// the terminal event. A comment line every 15 s keeps proxies from closing
// an idle stream. When the server stops, the stream ends early and the
// client's EventSource resumes from its Last-Event-ID.
func (s *Server) events(w http.ResponseWriter, r *http.Request, c commands.Caller) {
	// A stream is exempt from the server's read deadline (it has no body,
	// and the deadline would end it) and from its whole-response write
	// deadline: each event written gets WriteTimeout instead.
	rc := http.NewResponseController(w)
	_ = rc.SetReadDeadline(time.Time{})
	lookup, cancel := context.WithTimeout(r.Context(), s.cfg.RedisTimeout)
	j, err := s.svc.Job(lookup, c, r.PathValue("id"))
	cancel()
	if err != nil {
		s.writeErr(w, err)
		return
	}
	var after int64
	if v := r.Header.Get("Last-Event-ID"); v != "" {
		if after, err = strconv.ParseInt(v, 10, 64); err != nil || after < 0 {
			writeError(w, http.StatusBadRequest, "invalid_request", "Last-Event-ID: must be an event sequence number", "Last-Event-ID")
			return
		}
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("X-Accel-Buffering", "no")
	// send writes and flushes one piece of the stream within WriteTimeout.
	send := func(format string, args ...any) error {
		_ = rc.SetWriteDeadline(time.Now().Add(s.cfg.WriteTimeout))
		if _, err := fmt.Fprintf(w, format, args...); err != nil {
			return err
		}
		return rc.Flush()
	}
	w.WriteHeader(http.StatusOK)
	if err := send(""); err != nil {
		return
	}

	// The stream ends with the request or when the server stops; it runs
	// on the handler's goroutine, fed by the server's one event reader.
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	defer context.AfterFunc(s.streams, cancel)()
	err = s.feed.follow(ctx, j.ID, after, func(e *fedEvent) error {
		return send("id: %d\nevent: %s\ndata: %s\n\n", e.Seq, e.Type, e.JSON())
	}, 15*time.Second, func() error { return send(": keep-alive\n\n") })
	if err != nil && ctx.Err() == nil && !errors.Is(err, errFeedStopped) {
		data, _ := json.Marshal(map[string]string{"message": err.Error()})
		_ = send("event: error\ndata: %s\n\n", data)
	}
}
