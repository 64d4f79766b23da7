package slack_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/slack-go/slack/slacktest"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/easelbot/easel/adapters"
	easelslack "github.com/easelbot/easel/adapters/slack"
	"github.com/easelbot/easel/commands"
	"github.com/easelbot/easel/internal/redistest"
	"github.com/easelbot/easel/scheduler"
	"github.com/easelbot/easel/sdclient/a1111"
	"github.com/easelbot/easel/sdclient/fakesd"
	"github.com/easelbot/easel/worker"
)

const secret = "signing-secret-for-tests"

// fakeSlack extends slacktest with the methods it lacks, recording calls.
type fakeSlack struct {
	srv     *slacktest.Server
	sock    chan *websocket.Conn // Socket Mode connections
	acks    chan string          // acknowledged envelope ids
	mu      sync.Mutex
	calls   []slackCall
	notify  chan struct{}
	ts      int
	fail429 int
	uploads map[string][]byte
}

type slackCall struct {
	Method string
	Form   url.Values
}

func newFakeSlack(t *testing.T) *fakeSlack {
	f := &fakeSlack{notify: make(chan struct{}, 1), uploads: map[string][]byte{}, sock: make(chan *websocket.Conn, 1),
		acks: make(chan string, 16)}
	record := func(method string, r *http.Request) url.Values {
		_ = r.ParseForm()
		f.mu.Lock()
		f.calls = append(f.calls, slackCall{Method: method, Form: r.Form})
		f.mu.Unlock()
		select {
		case f.notify <- struct{}{}:
		default:
		}
		return r.Form
	}
	ok := func(w http.ResponseWriter, v map[string]any) {
		v["ok"] = true
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(v)
	}
	f.srv = slacktest.NewTestServer(func(c slacktest.Customize) {
		c.Handle("/chat.postMessage", func(w http.ResponseWriter, r *http.Request) {
			form := record("chat.postMessage", r)
			f.mu.Lock()
			f.ts++
			ts := fmt.Sprintf("1700000000.%06d", f.ts)
			f.mu.Unlock()
			ok(w, map[string]any{"channel": form.Get("channel"), "ts": ts})
		})
		c.Handle("/chat.update", func(w http.ResponseWriter, r *http.Request) {
			form := record("chat.update", r)
			f.mu.Lock()
			limited := f.fail429 > 0
			if limited {
				f.fail429--
			}
			f.mu.Unlock()
			if limited {
				w.Header().Set("Retry-After", "1")
				w.WriteHeader(http.StatusTooManyRequests)
				_, _ = w.Write([]byte(`{"ok":false,"error":"ratelimited"}`))
				return
			}
			ok(w, map[string]any{"channel": form.Get("channel"), "ts": form.Get("ts"), "text": form.Get("text")})
		})
		c.Handle("/files.getUploadURLExternal", func(w http.ResponseWriter, r *http.Request) {
			form := record("files.getUploadURLExternal", r)
			f.mu.Lock()
			id := "F" + strconv.Itoa(len(f.calls))
			f.mu.Unlock()
			ok(w, map[string]any{"upload_url": f.srv.GetAPIURL() + "upload/" + id + "?name=" + url.QueryEscape(form.Get("filename")), "file_id": id})
		})
		c.Handle("/upload/", func(w http.ResponseWriter, r *http.Request) {
			file, _, err := r.FormFile("file")
			if err == nil {
				b, _ := io.ReadAll(file)
				f.mu.Lock()
				f.uploads[strings.TrimPrefix(r.URL.Path, "/upload/")] = b
				f.mu.Unlock()
			}
			record("upload", r)
			_, _ = w.Write([]byte("OK"))
		})
		c.Handle("/apps.connections.open", func(w http.ResponseWriter, r *http.Request) {
			record("apps.connections.open", r)
			ok(w, map[string]any{"url": "ws" + strings.TrimPrefix(f.srv.GetAPIURL(), "http") + "socket"})
		})
		c.Handle("/socket", func(w http.ResponseWriter, r *http.Request) {
			// socketmode sends Slack's Origin header.
			up := websocket.Upgrader{CheckOrigin: func(*http.Request) bool { return true }}
			conn, err := up.Upgrade(w, r, nil)
			if err != nil {
				return
			}
			_ = conn.WriteJSON(map[string]any{"type": "hello", "num_connections": 1,
				"connection_info": map[string]any{"app_id": "A1"}, "debug_info": map[string]any{"host": "fake"}})
			f.sock <- conn
			for {
				var m map[string]any
				if err := conn.ReadJSON(&m); err != nil {
					return
				}
				if id, ok := m["envelope_id"].(string); ok {
					f.acks <- id
				}
			}
		})
		c.Handle("/chat.postEphemeral", func(w http.ResponseWriter, r *http.Request) {
			record("chat.postEphemeral", r)
			ok(w, map[string]any{"message_ts": "1700000000.999999"})
		})
		c.Handle("/files.completeUploadExternal", func(w http.ResponseWriter, r *http.Request) {
			record("files.completeUploadExternal", r)
			ok(w, map[string]any{"files": []any{}})
		})
		c.Handle("/users.info", func(w http.ResponseWriter, r *http.Request) {
			form := record("users.info", r)
			u := form.Get("user")
			ok(w, map[string]any{"user": map[string]any{"id": u, "name": u, "is_admin": strings.HasPrefix(u, "UADMIN")}})
		})
	})
	f.srv.Start()
	t.Cleanup(f.srv.Stop)
	return f
}

func (f *fakeSlack) waitFor(t *testing.T, what string, pred func([]slackCall) bool) []slackCall {
	t.Helper()
	deadline := time.NewTimer(20 * time.Second)
	defer deadline.Stop()
	for {
		f.mu.Lock()
		calls := append([]slackCall(nil), f.calls...)
		f.mu.Unlock()
		if pred(calls) {
			return calls
		}
		select {
		case <-f.notify:
		case <-deadline.C:
			var b strings.Builder
			for _, c := range calls {
				fmt.Fprintf(&b, "\n  %s %v", c.Method, c.Form)
			}
			t.Fatalf("timed out waiting for %s; calls:%s", what, b.String())
		}
	}
}

type bundle struct {
	ctx   context.Context
	fake  *fakeSlack
	app   *httptest.Server
	sched *scheduler.Scheduler
	sd    *fakesd.Server
}

func setup(t *testing.T, step time.Duration) *bundle { return setupMode(t, step, "") }

func setupMode(t *testing.T, step time.Duration, appToken string) *bundle {
	return setupWith(t, step, easelslack.Config{AppToken: appToken})
}

func setupBudget(t *testing.T, perMinute int) *bundle {
	return setupWith(t, 5*time.Millisecond, easelslack.Config{UpdatesPerMinute: perMinute})
}

func setupWith(t *testing.T, step time.Duration, extra easelslack.Config) *bundle {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	t.Cleanup(cancel)
	store := redistest.Store(t)
	sched, err := scheduler.New(ctx, store, scheduler.Config{}, zap.NewNop())
	require.NoError(t, err)
	pol, err := scheduler.NewPolicies(sched, scheduler.PolicyConfig{})
	require.NoError(t, err)
	svc, err := commands.New(sched, pol, commands.Limits{}, zap.NewNop())
	require.NoError(t, err)
	sd := fakesd.New(fakesd.Config{StepDuration: step, PreviewEvery: 2})
	sdSrv := httptest.NewServer(sd.Handler())
	t.Cleanup(sdSrv.Close)
	client, err := a1111.New(a1111.Config{BaseURL: sdSrv.URL, ProgressInterval: 5 * time.Millisecond})
	require.NoError(t, err)
	w, err := worker.New(worker.Config{Name: "w"}, sched, []worker.Backend{{Name: "gpu0", Backend: client}}, zap.NewNop())
	require.NoError(t, err)
	fake := newFakeSlack(t)
	bot, err := easelslack.New(easelslack.Config{BotToken: "xoxb-test", SigningSecret: secret, AppToken: extra.AppToken,
		APIBase: fake.srv.GetAPIURL(), EditInterval: 20 * time.Millisecond, UpdatesPerMinute: extra.UpdatesPerMinute}, svc, zap.NewNop())
	require.NoError(t, err)
	mux := http.NewServeMux()
	for p, h := range bot.Routes() {
		mux.Handle(p, h)
	}
	app := httptest.NewServer(mux)
	t.Cleanup(app.Close)
	relay := adapters.NewRelay(sched, zap.NewNop(), bot)
	require.NoError(t, w.Start(ctx))
	require.NoError(t, relay.Start(ctx))
	require.NoError(t, bot.Start(ctx))
	t.Cleanup(func() {
		c, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = bot.Stop(c)
		_ = relay.Stop(c)
		_ = w.Stop(c)
	})
	return &bundle{ctx: ctx, fake: fake, app: app, sched: sched, sd: sd}
}

// post sends a request signed like Slack (or not, per mutate).
func (b *bundle) post(t *testing.T, path, contentType, body string, mutate func(http.Header)) int {
	t.Helper()
	req, _ := http.NewRequestWithContext(b.ctx, "POST", b.app.URL+path, strings.NewReader(body))
	req.Header.Set("Content-Type", contentType)
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte("v0:" + ts + ":" + body))
	req.Header.Set("X-Slack-Request-Timestamp", ts)
	req.Header.Set("X-Slack-Signature", "v0="+hex.EncodeToString(mac.Sum(nil)))
	if mutate != nil {
		mutate(req.Header)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	return resp.StatusCode
}

var eventSeq struct {
	mu sync.Mutex
	n  int
}

func mentionEvent(user, text string) (string, string) {
	eventSeq.mu.Lock()
	eventSeq.n++
	n := eventSeq.n
	eventSeq.mu.Unlock()
	id := fmt.Sprintf("Ev%06d", n)
	raw, _ := json.Marshal(map[string]any{"token": "x", "team_id": "T1", "api_app_id": "A1", "type": "event_callback",
		"event_id": id, "event_time": time.Now().Unix(),
		"event": map[string]any{"type": "app_mention", "user": user, "text": "<@UBOT> " + text, "channel": "C1",
			"ts": fmt.Sprintf("1690000000.%06d", n), "event_ts": "1690000000.000001"}})
	return string(raw), id
}

func calls(cs []slackCall, method string) []slackCall {
	var out []slackCall
	for _, c := range cs {
		if c.Method == method {
			out = append(out, c)
		}
	}
	return out
}

func finalUpdate(cs []slackCall) bool {
	for _, c := range calls(cs, "chat.update") {
		if strings.Contains(c.Form.Get("blocks"), "easel:reroll:") {
			return true
		}
	}
	return false
}

func TestMentionProgressUploadAndButtons(t *testing.T) {
	t.Parallel()
	b := setup(t, 10*time.Millisecond)
	body, _ := mentionEvent("U1", "a lighthouse at dusk --ar 16:9 --steps 10 --n 2")
	require.Equal(t, 200, b.post(t, "/slack/events", "application/json", body, nil))
	cs := b.fake.waitFor(t, "final update", finalUpdate)
	post := calls(cs, "chat.postMessage")[0]
	require.Equal(t, "C1", post.Form.Get("channel"))
	require.NotEmpty(t, post.Form.Get("thread_ts"), "the reply is in a thread")
	require.GreaterOrEqual(t, len(calls(cs, "chat.update")), 2, "progress updates before the final one")
	require.Len(t, calls(cs, "files.getUploadURLExternal"), 2)
	done := calls(cs, "files.completeUploadExternal")
	require.Len(t, done, 1)
	require.Equal(t, post.Form.Get("thread_ts"), done[0].Form.Get("thread_ts"), "images go into the thread")
	require.Equal(t, "C1", done[0].Form.Get("channel_id"))
	b.fake.mu.Lock()
	for _, img := range b.fake.uploads {
		require.True(t, strings.HasPrefix(string(img), "\x89PNG"))
	}
	b.fake.mu.Unlock()

	// Reroll by the requester starts another job; a click by someone else is refused.
	final := calls(cs, "chat.update")
	blocks := final[len(final)-1].Form.Get("blocks")
	jobID := strings.Split(strings.Split(blocks, "easel:reroll:")[1], `"`)[0]
	click := func(user, action string) int {
		payload, _ := json.Marshal(map[string]any{"type": "block_actions", "team": map[string]any{"id": "T1"},
			"user": map[string]any{"id": user}, "channel": map[string]any{"id": "C1"},
			"actions": []any{map[string]any{"action_id": action, "block_id": "result", "value": action, "type": "button"}}})
		return b.post(t, "/slack/interactivity", "application/x-www-form-urlencoded", "payload="+url.QueryEscape(string(payload)), nil)
	}
	require.Equal(t, 200, click("U2", "easel:reroll:"+jobID))
	b.fake.waitFor(t, "refusal", func(cs []slackCall) bool {
		for _, c := range calls(cs, "chat.postEphemeral") {
			if strings.Contains(c.Form.Get("text"), "Only the person who asked") {
				return true
			}
		}
		return false
	})
	require.Equal(t, 200, click("U1", "easel:reroll:"+jobID))
	b.fake.waitFor(t, "reroll final", func(cs []slackCall) bool {
		n := 0
		for _, c := range calls(cs, "chat.update") {
			if strings.Contains(c.Form.Get("blocks"), "easel:reroll:") {
				n++
			}
		}
		return n == 2
	})
}

func TestSignaturesAndRetries(t *testing.T) {
	t.Parallel()
	b := setup(t, 0)
	body, id := mentionEvent("U1", "a fox --steps 2")
	require.Equal(t, 401, b.post(t, "/slack/events", "application/json", body, func(h http.Header) {
		h.Set("X-Slack-Signature", "v0=deadbeef")
	}), "forged signature")
	require.Equal(t, 401, b.post(t, "/slack/events", "application/json", body, func(h http.Header) {
		old := strconv.FormatInt(time.Now().Add(-6*time.Minute).Unix(), 10)
		mac := hmac.New(sha256.New, []byte(secret))
		mac.Write([]byte("v0:" + old + ":" + body))
		h.Set("X-Slack-Request-Timestamp", old)
		h.Set("X-Slack-Signature", "v0="+hex.EncodeToString(mac.Sum(nil)))
	}), "stale timestamp, correctly signed")
	require.Equal(t, 401, b.post(t, "/slack/events", "application/json", body, func(h http.Header) {
		h.Del("X-Slack-Signature")
		h.Del("X-Slack-Request-Timestamp")
	}), "missing headers")
	active, err := b.sched.Active(b.ctx, "slack:T1")
	require.NoError(t, err)
	require.Empty(t, active, "nothing enqueued")

	// The real delivery and Slack's retry of it enqueue once.
	require.Equal(t, 200, b.post(t, "/slack/events", "application/json", body, nil))
	require.Equal(t, 200, b.post(t, "/slack/events", "application/json", body, func(h http.Header) { h.Set("X-Slack-Retry-Num", "1") }))
	cs := b.fake.waitFor(t, "final", finalUpdate)
	require.Len(t, calls(cs, "chat.postMessage"), 1, "event %s handled once", id)

	// URL verification answers the challenge.
	req, _ := json.Marshal(map[string]any{"type": "url_verification", "challenge": "c123", "token": "x"})
	require.Equal(t, 200, b.post(t, "/slack/events", "application/json", string(req), nil))
}

func TestRateLimitedUpdateStillDeliversFinal(t *testing.T) {
	t.Parallel()
	b := setup(t, 5*time.Millisecond)
	b.fake.mu.Lock()
	b.fake.fail429 = 1
	b.fake.mu.Unlock()
	body, _ := mentionEvent("U1", "a fox --steps 4")
	require.Equal(t, 200, b.post(t, "/slack/events", "application/json", body, nil))
	b.fake.waitFor(t, "final after 429", finalUpdate)
}

func TestAdminCommands(t *testing.T) {
	t.Parallel()
	b := setup(t, 0)
	body, _ := mentionEvent("U7", "admin set max_steps 30")
	require.Equal(t, 200, b.post(t, "/slack/events", "application/json", body, nil))
	cs := b.fake.waitFor(t, "refusal", func(cs []slackCall) bool { return len(calls(cs, "chat.postEphemeral")) == 1 })
	refusal := calls(cs, "chat.postEphemeral")[0]
	require.Contains(t, refusal.Form.Get("text"), "Only workspace admins")
	require.Equal(t, "U7", refusal.Form.Get("user"), "only the asker sees it")
	require.NotEmpty(t, refusal.Form.Get("thread_ts"))
	body, _ = mentionEvent("UADMIN1", "admin set max_steps 30")
	require.Equal(t, 200, b.post(t, "/slack/events", "application/json", body, nil))
	cs = b.fake.waitFor(t, "applied", func(cs []slackCall) bool { return len(calls(cs, "chat.postEphemeral")) == 2 })
	require.Contains(t, calls(cs, "chat.postEphemeral")[1].Form.Get("text"), "Set `max_steps` to `30`")
	body, _ = mentionEvent("U7", "a fox --steps 40")
	require.Equal(t, 200, b.post(t, "/slack/events", "application/json", body, nil))
	b.fake.waitFor(t, "validation", func(cs []slackCall) bool {
		for _, c := range append(calls(cs, "chat.update"), calls(cs, "chat.postEphemeral")...) {
			if strings.Contains(c.Form.Get("text"), "steps: must be between 1 and 30 (got 40)") {
				return true
			}
		}
		return false
	})
}

// TestSocketMode: with an app token the same handlers run over Socket Mode:
// envelopes are acknowledged, a mention makes a job that finishes in the
// thread, a redelivered event (new envelope, same event id) is ignored, and
// /imagine works.
func TestSocketMode(t *testing.T) {
	t.Parallel()
	b := setupMode(t, 5*time.Millisecond, "xapp-test")
	var conn *websocket.Conn
	select {
	case conn = <-b.fake.sock:
	case <-b.ctx.Done():
		t.Fatal("no Socket Mode connection")
	}
	body, _ := mentionEvent("U1", "a fox over socket mode --steps 3")
	send := func(envelope, typ string, payload json.RawMessage) {
		b.fake.mu.Lock()
		defer b.fake.mu.Unlock()
		require.NoError(t, conn.WriteJSON(map[string]any{"envelope_id": envelope, "type": typ, "payload": payload,
			"accepts_response_payload": typ == "slash_commands"}))
	}
	ack := func(want string) {
		select {
		case got := <-b.fake.acks:
			require.Equal(t, want, got)
		case <-b.ctx.Done():
			t.Fatalf("envelope %s not acknowledged", want)
		}
	}
	send("env-1", "events_api", json.RawMessage(body))
	ack("env-1")
	b.fake.waitFor(t, "final", finalUpdate)
	send("env-2", "events_api", json.RawMessage(body)) // Slack's redelivery
	ack("env-2")
	slash, _ := json.Marshal(map[string]any{"token": "x", "team_id": "T1", "channel_id": "C1", "user_id": "U1",
		"command": "/imagine", "text": "a second fox --steps 2"})
	send("env-3", "slash_commands", slash)
	ack("env-3")
	cs := b.fake.waitFor(t, "slash final", func(cs []slackCall) bool {
		n := 0
		for _, c := range calls(cs, "chat.update") {
			if strings.Contains(c.Form.Get("blocks"), "easel:reroll:") {
				n++
			}
		}
		return n == 2
	})
	require.Len(t, calls(cs, "chat.postMessage"), 2, "the redelivered mention made no second job")
}

// TestWorkspaceBudget: progress updates of many jobs in one workspace share
// its chat.update budget, while every final state still arrives.
func TestWorkspaceBudget(t *testing.T) {
	t.Parallel()
	b := setupBudget(t, 2)
	for i := range 3 {
		body, _ := mentionEvent("U"+strconv.Itoa(i), "a fox --steps 20")
		require.Equal(t, 200, b.post(t, "/slack/events", "application/json", body, nil))
	}
	cs := b.fake.waitFor(t, "three finals", func(cs []slackCall) bool {
		n := 0
		for _, c := range calls(cs, "chat.update") {
			if strings.Contains(c.Form.Get("blocks"), "easel:reroll:") {
				n++
			}
		}
		return n == 3
	})
	progress := 0
	for _, c := range calls(cs, "chat.update") {
		if strings.Contains(c.Form.Get("text"), "/20") {
			progress++
		}
	}
	require.LessOrEqual(t, progress, 2, "the burst of a 2-per-minute budget (at least 1) bounds progress updates")
}

func TestHelpAndBadFlagsAreEphemeral(t *testing.T) {
	t.Parallel()
	b := setup(t, 0)
	body, _ := mentionEvent("U3", "a fox --ar 2:1")
	require.Equal(t, 200, b.post(t, "/slack/events", "application/json", body, nil))
	body, _ = mentionEvent("U3", "--help")
	require.Equal(t, 200, b.post(t, "/slack/events", "application/json", body, nil))
	cs := b.fake.waitFor(t, "answers", func(cs []slackCall) bool { return len(calls(cs, "chat.postEphemeral")) == 2 })
	var texts []string
	for _, c := range calls(cs, "chat.postEphemeral") {
		texts = append(texts, c.Form.Get("text"))
	}
	require.Contains(t, strings.Join(texts, "\n"), "--ar: must be one of 1:1, 3:4, 4:3, 9:16, 16:9")
	require.Contains(t, strings.Join(texts, "\n"), "--steps")
	require.Empty(t, calls(cs, "chat.postMessage"), "nothing public, nothing queued")
}
