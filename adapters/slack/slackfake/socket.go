package slackfake

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// Socket Mode, after https://docs.slack.dev/apis/events-api/using-socket-mode:
// apps.connections.open (app token) gives a wss URL; the server says hello,
// then sends envelopes {envelope_id, type, payload, accepts_response_payload,
// retry_attempt, retry_reason}; the app acknowledges each with
// {"envelope_id": …} within 3 seconds, or Slack sends it again with
// retry_attempt + 1; {"type": "disconnect", "reason": …} asks the app to
// reconnect.
//
// An events_api envelope left unacknowledged is not an error on Slack's
// side: Slack redelivers it, up to 3 times, the envelope carrying
// retry_attempt and retry_reason (the Socket Mode page above, and the
// Events API's retry rules at https://docs.slack.dev/apis/events-api/,
// which Socket Mode shares; paraphrased, not quoted). An app
// may withhold the ack on purpose (ours does while Redis is unavailable),
// so the fake records it as a "socket.retry" call and redelivers; only an
// event still unacknowledged after the last retry (it is lost) is a
// violation. A slash_commands or interactive envelope is not redelivered:
// unacknowledged, the user sees an error, so that is a violation.

// maxRetries is how many times Slack redelivers an unacknowledged event.
const maxRetries = 3

func (s *Server) socket(w http.ResponseWriter, r *http.Request) {
	// slack-go sends Slack's Origin header.
	up := websocket.Upgrader{CheckOrigin: func(*http.Request) bool { return true }}
	conn, err := up.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	s.mu.Lock()
	s.conn = conn
	s.connWMu.Lock()
	err = conn.WriteJSON(map[string]any{"type": "hello", "num_connections": 1,
		"connection_info": map[string]any{"app_id": "A1"}, "debug_info": map[string]any{"host": "fake"}})
	s.connWMu.Unlock()
	s.changed()
	s.mu.Unlock()
	if err != nil {
		return
	}
	for {
		var m map[string]any
		if err := conn.ReadJSON(&m); err != nil {
			return
		}
		if id, ok := m["envelope_id"].(string); ok {
			form := url.Values{"envelope_id": {id}}
			if p, ok := m["payload"]; ok {
				raw, _ := json.Marshal(p)
				form.Set("payload", string(raw))
			}
			s.mu.Lock()
			if ch, ok := s.acks[id]; ok {
				select {
				case <-ch:
				default:
					close(ch)
				}
			}
			s.calls = append(s.calls, Call{Method: "socket.ack", Form: form, At: time.Now()})
			s.changed()
			s.mu.Unlock()
		}
	}
}

// Opened reports how many Socket Mode connections were opened.
func (s *Server) Opened() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.opened
}

// WaitConnected blocks until the n-th Socket Mode connection said hello.
func (s *Server) WaitConnected(t testing.TB, n int) {
	t.Helper()
	deadline := time.NewTimer(20 * time.Second)
	defer deadline.Stop()
	for {
		s.mu.Lock()
		ok := s.opened >= n && s.conn != nil
		chg := s.chg
		s.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-chg:
		case <-deadline.C:
			t.Fatalf("no Socket Mode connection #%d", n)
		}
	}
}

// Send delivers an envelope of typ ("events_api", "slash_commands",
// "interactive") on the current connection and returns a channel closed
// when it is acknowledged (the "socket.ack" call has its envelope_id and,
// if the app sent one, its response payload as JSON in "payload"). An
// events_api envelope not acknowledged within AckTimeout is recorded as a
// "socket.retry" call (envelope_id, retry_attempt) and sent again with
// retry_attempt + 1, up to 3 retries; an event unacknowledged after the
// last one, or any other envelope unacknowledged, is a violation.
func (s *Server) Send(typ string, payload json.RawMessage, retryAttempt int) (<-chan struct{}, error) {
	s.mu.Lock()
	s.seq++
	id := "env-" + strconv.Itoa(s.seq)
	ack := make(chan struct{})
	s.acks[id] = ack
	conn := s.conn
	s.mu.Unlock()
	if conn == nil {
		return nil, errors.New("no Socket Mode connection")
	}
	env := map[string]any{"envelope_id": id, "type": typ, "payload": payload,
		"accepts_response_payload": typ == "slash_commands", "retry_attempt": retryAttempt}
	if retryAttempt > 0 {
		env["retry_reason"] = "timeout"
	}
	s.connWMu.Lock()
	err := conn.WriteJSON(env)
	s.connWMu.Unlock()
	if err != nil {
		return nil, err
	}
	go func() {
		t := time.NewTimer(s.cfg.AckTimeout)
		defer t.Stop()
		select {
		case <-ack:
			return
		case <-t.C:
		}
		retry := typ == "events_api" && retryAttempt < maxRetries
		s.mu.Lock()
		if retry {
			s.calls = append(s.calls, Call{Method: "socket.retry", At: time.Now(), Form: url.Values{
				"envelope_id": {id}, "retry_attempt": {strconv.Itoa(retryAttempt)}}})
		} else {
			s.violate("envelope %s (%s, retry_attempt %d) not acknowledged within %s", id, typ, retryAttempt, s.cfg.AckTimeout)
		}
		s.changed()
		s.mu.Unlock()
		if retry {
			_, _ = s.Send(typ, payload, retryAttempt+1)
		}
	}()
	return ack, nil
}

// Disconnect asks the app to reconnect ({"type":"disconnect"} with reason,
// e.g. "refresh_requested" or "warning") and closes the connection.
func (s *Server) Disconnect(reason string) {
	s.mu.Lock()
	conn := s.conn
	s.conn = nil
	s.mu.Unlock()
	if conn == nil {
		return
	}
	s.connWMu.Lock()
	_ = conn.WriteJSON(map[string]any{"type": "disconnect", "reason": reason,
		"debug_info": map[string]any{"host": "fake"}})
	s.connWMu.Unlock()
	_ = conn.Close()
}
