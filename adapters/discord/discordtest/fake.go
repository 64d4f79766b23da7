// Package discordtest is a fake Discord — REST under /api/v9 and a gateway
// websocket — that the real discordgo client talks to. Tests and `easel
// bench` drive the Discord adapter with it: it records every REST call,
// injects INTERACTION_CREATE dispatches, and can answer message edits with
// 429 or 50027 (Invalid Webhook Token).
//
// It keeps the order Discord enforces between an interaction's reply and
// its edits: until the callback (the reply) is processed there is no
// @original, so an edit or read of it answers 404 Unknown Message (code
// 10008), as documented at
// https://discord.com/developers/docs/interactions/receiving-and-responding#edit-original-interaction-response
// (the message is created by the initial response) and
// https://discord.com/developers/docs/topics/opcodes-and-status-codes#json
// (10008 Unknown message). And it keeps API v10's rule for edits with files
// (https://discord.com/developers/docs/reference#uploading-files): only the
// attachments listed in "attachments" (new files by their index as id)
// stay on the message; Call.Attached records them. An autocomplete result
// (callback type 8) breaking Discord's limits on choices is refused with
// 400 Invalid Form Body (see checkAutocomplete).
package discordtest

import (
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/gorilla/websocket"
)

// Server is the fake Discord.
type Server struct {
	// URL is the base URL to give the adapter as discord.api_base.
	URL  string
	srv  *httptest.Server
	logf func(string, ...any)

	mu       sync.Mutex
	calls    []Call
	notify   chan struct{}
	gw       *websocket.Conn // the first shard's connection
	shards   []int           // shard ids identified, in order
	gwOnce   sync.Once
	gwReady  chan struct{}
	seq      int
	fail429  int
	dead     bool // interaction tokens answer 50027
	inFlight map[string]int
	maxInFl  int
	sent     map[string]time.Time // interaction token → dispatched at
	channels map[string]Channel
	replied  map[string]bool // interaction tokens whose reply exists
	delay    time.Duration   // before an interaction reply is processed
	noApp    bool            // READY without an application
}

// DelayReplies makes the fake take d to process each interaction reply,
// the window in which an edit of @original finds no message.
func (f *Server) DelayReplies(d time.Duration) { f.mu.Lock(); f.delay = d; f.mu.Unlock() }

// Channel is a guild text channel the fake knows. Modelled on Discord's
// channel object (discord-api-docs docs/resources/Channel.md): "nsfw" is
// the age-restricted flag, id and type 0 (GUILD_TEXT). GET
// /channels/{id} returns it, and a dispatched interaction from it carries
// the partial "channel" (id, type, nsfw) as Discord's interaction object
// does (docs/interactions/Receiving_and_Responding.md). A thread (Parent
// set: type 11, PUBLIC_THREAD, with parent_id) carries no "nsfw" of its
// own: Discord leaves it out of thread objects, and a thread is
// age-restricted when its parent is (docs/topics/Threads.md; see
// discord-api-docs discussion #7850).
type Channel struct {
	ID     string
	NSFW   bool
	Parent string
}

// NormalChannel and AgeRestrictedChannel are the fake's channel ids;
// "c1", the default channel of interactions, is normal too.
// NormalThread and AgeRestrictedThread are public threads in them.
const (
	NormalChannel        = "c1"
	AgeRestrictedChannel = "c-nsfw"
	NormalThread         = "t1"
	AgeRestrictedThread  = "t-nsfw"
)

// Call is one recorded REST call.
type Call struct {
	Method, Path string
	Body         map[string]any
	Files        []string // attachment file names
	FileBytes    [][]byte
	Raw          []byte // a JSON body as sent (command registration sends an array)
	// Attached are the file names on the message after the call: the
	// uploaded files listed in the payload's attachments (API v10).
	Attached []string
	Status   int
	At       time.Time
}

// Option changes the fake.
type Option func(*Server)

// WithoutApplication sends READY without its application object, which
// Discord documents as a partial application but an older or proxied
// gateway may leave out; the bot user's id is then the application's.
func WithoutApplication() Option { return func(f *Server) { f.noApp = true } }

// New starts a fake Discord on a loopback port; logf receives its errors.
func New(logf func(string, ...any), opts ...Option) *Server {
	f := &Server{logf: logf, notify: make(chan struct{}, 1), gwReady: make(chan struct{}), inFlight: map[string]int{},
		sent: map[string]time.Time{}, replied: map[string]bool{}, channels: map[string]Channel{
			NormalChannel: {ID: NormalChannel}, AgeRestrictedChannel: {ID: AgeRestrictedChannel, NSFW: true},
			NormalThread: {ID: NormalThread, Parent: NormalChannel}, AgeRestrictedThread: {ID: AgeRestrictedThread, Parent: AgeRestrictedChannel}}}
	for _, o := range opts {
		o(f)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/v9/gateway", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, map[string]any{"url": "ws://" + r.Host + "/gw"})
	})
	mux.HandleFunc("GET /api/v9/gateway/bot", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, map[string]any{"url": "ws://" + r.Host + "/gw", "shards": 2,
			"session_start_limit": map[string]int{"total": 1000, "remaining": 1000, "reset_after": 0, "max_concurrency": 1}})
	})
	mux.HandleFunc("/gw/", f.gateway) // discordgo dials <url>/?v=9&encoding=json
	mux.HandleFunc("/", f.rest)
	f.srv = httptest.NewServer(mux)
	f.URL = f.srv.URL
	return f
}

// Close stops the server.
func (f *Server) Close() { f.srv.Close() }

// Fail429 makes the next n message edits answer 429 (retry_after 50 ms).
func (f *Server) Fail429(n int) { f.mu.Lock(); f.fail429 = n; f.mu.Unlock() }

// ExpireTokens makes every interaction-token edit answer 50027.
func (f *Server) ExpireTokens() { f.mu.Lock(); f.dead = true; f.mu.Unlock() }

// MaxInFlight is the most concurrent REST calls seen on one path.
func (f *Server) MaxInFlight() int { f.mu.Lock(); defer f.mu.Unlock(); return f.maxInFl }

// Calls returns the calls recorded so far.
func (f *Server) Calls() []Call {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]Call(nil), f.calls...)
}

// Shards lists the shard ids that identified, in order.
func (f *Server) Shards() []int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]int(nil), f.shards...)
}

// Dispatched is when the interaction with token was sent to the bot.
func (f *Server) Dispatched(token string) time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.sent[token]
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func (f *Server) gateway(w http.ResponseWriter, r *http.Request) {
	up := websocket.Upgrader{}
	c, err := up.Upgrade(w, r, nil)
	if err != nil {
		f.logf("gateway upgrade: %v (%s %s)", err, r.Method, r.URL)
		return
	}
	_ = c.WriteJSON(map[string]any{"op": 10, "d": map[string]any{"heartbeat_interval": 41250}})
	var identify struct {
		Op int `json:"op"`
		D  struct {
			Shard []int `json:"shard"`
		} `json:"d"`
	}
	if err := c.ReadJSON(&identify); err != nil || identify.Op != 2 {
		c.Close()
		return
	}
	f.mu.Lock()
	if len(identify.D.Shard) == 2 {
		f.shards = append(f.shards, identify.D.Shard[0])
	}
	f.seq++
	ready := map[string]any{"v": 9, "session_id": "sess", "user": map[string]any{"id": "1000", "username": "easel", "bot": true},
		"guilds": []any{}, "application": map[string]any{"id": "app1", "flags": 0}}
	if f.noApp {
		delete(ready, "application")
	}
	_ = c.WriteJSON(map[string]any{"op": 0, "t": "READY", "s": f.seq, "d": ready})
	if f.gw == nil {
		f.gw = c
	}
	f.mu.Unlock()
	f.gwOnce.Do(func() { close(f.gwReady) })
	for {
		var m map[string]any
		if err := c.ReadJSON(&m); err != nil {
			return
		}
		if m["op"] == 1.0 {
			f.mu.Lock()
			_ = c.WriteJSON(map[string]any{"op": 11})
			f.mu.Unlock()
		}
	}
}

// Dispatch sends an INTERACTION_CREATE through the gateway.
func (f *Server) Dispatch(interaction map[string]any) {
	<-f.gwReady
	f.mu.Lock()
	defer f.mu.Unlock()
	f.seq++
	if tok, ok := interaction["token"].(string); ok {
		f.sent[tok] = time.Now()
	}
	if id, ok := interaction["channel_id"].(string); ok {
		if ch, known := f.channels[id]; known {
			interaction["channel"] = ch.json()
		}
	}
	if err := f.gw.WriteJSON(map[string]any{"op": 0, "t": "INTERACTION_CREATE", "s": f.seq, "d": interaction}); err != nil {
		f.logf("dispatch: %v", err)
	}
}

func (f *Server) rest(w http.ResponseWriter, r *http.Request) {
	c := Call{Method: r.Method, Path: strings.TrimPrefix(r.URL.Path, "/api/v9"), At: time.Now(), Status: 200}
	ct, params, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if ct == "multipart/form-data" {
		mr := multipart.NewReader(r.Body, params["boundary"])
		for {
			p, err := mr.NextPart()
			if err != nil {
				break
			}
			b, _ := io.ReadAll(p)
			if p.FormName() == "payload_json" {
				_ = json.Unmarshal(b, &c.Body)
			} else {
				c.Files = append(c.Files, p.FileName())
				c.FileBytes = append(c.FileBytes, b)
			}
		}
	} else {
		b, _ := io.ReadAll(r.Body)
		c.Raw = b
		_ = json.Unmarshal(b, &c.Body)
	}
	if ids, ok := c.Body["attachments"].([]any); ok {
		for _, a := range ids {
			id, _ := a.(map[string]any)["id"].(string)
			var n int
			if _, err := fmt.Sscan(id, &n); err == nil && n >= 0 && n < len(c.Files) {
				c.Attached = append(c.Attached, c.Files[n])
			}
		}
	}
	isEdit := r.Method == "PATCH" && strings.HasPrefix(c.Path, "/webhooks/")
	// /webhooks/{app}/{token}/messages/@original, /interactions/{id}/{token}/callback
	parts := strings.Split(c.Path, "/")
	original := strings.HasPrefix(c.Path, "/webhooks/") && strings.HasSuffix(c.Path, "/messages/@original") && len(parts) > 3
	callback := strings.HasPrefix(c.Path, "/interactions/") && strings.HasSuffix(c.Path, "/callback") && len(parts) > 3
	var formErrs map[string]any
	if callback {
		formErrs = checkAutocomplete(c.Body)
		f.mu.Lock()
		d := f.delay
		f.mu.Unlock()
		if d > 0 {
			time.Sleep(d) // the fake's own processing time, the window tested
		}
	}
	f.mu.Lock()
	if formErrs != nil {
		c.Status = 400 // a refused reply creates nothing
	} else if callback {
		f.replied[parts[3]] = true
	}
	f.inFlight[c.Path]++
	if f.inFlight[c.Path] > f.maxInFl {
		f.maxInFl = f.inFlight[c.Path]
	}
	switch {
	case isEdit && f.dead:
		c.Status = 401
	case isEdit && f.fail429 > 0:
		f.fail429--
		c.Status = 429
	case original && !f.replied[parts[3]]:
		c.Status = 404
	}
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		f.inFlight[c.Path]--
		f.calls = append(f.calls, c)
		f.mu.Unlock()
		select {
		case f.notify <- struct{}{}:
		default:
		}
	}()
	switch {
	case c.Status == 400:
		writeJSON(w, 400, map[string]any{"code": 50035, "message": "Invalid Form Body", "errors": formErrs})
	case c.Status == 401:
		writeJSON(w, 401, map[string]any{"message": "Invalid Webhook Token", "code": 50027})
	case c.Status == 404:
		writeJSON(w, 404, map[string]any{"message": "Unknown Message", "code": 10008})
	case c.Status == 429:
		w.Header().Set("Retry-After", "0.05")
		writeJSON(w, 429, map[string]any{"message": "You are being rate limited.", "retry_after": 0.05, "global": false})
	case r.Method == "GET" && strings.HasPrefix(c.Path, "/channels/") && strings.Count(c.Path, "/") == 2:
		f.mu.Lock()
		ch, ok := f.channels[strings.TrimPrefix(c.Path, "/channels/")]
		f.mu.Unlock()
		if !ok {
			writeJSON(w, 404, map[string]any{"message": "Unknown Channel", "code": 10003})
			return
		}
		writeJSON(w, 200, ch.json())
	case callback:
		w.WriteHeader(http.StatusNoContent)
	case original:
		writeJSON(w, 200, map[string]any{"id": "m-" + parts[3], "channel_id": "c1", "content": c.Body["content"]})
	case r.Method == "PUT" && strings.HasSuffix(c.Path, "/commands"):
		var defs []any
		_ = json.Unmarshal(MustJSON(c.Body), &defs)
		writeJSON(w, 200, []any{})
	default:
		writeJSON(w, 200, map[string]any{"id": fmt.Sprint(len(f.calls) + 5000), "channel_id": "c1", "content": c.Body["content"]})
	}
}

// Discord's limits on an APPLICATION_COMMAND_AUTOCOMPLETE_RESULT (interaction
// callback type 8), from discord-api-docs:
//   - docs/interactions/Receiving_and_Responding.md, "Autocomplete": choices,
//     max 25
//     (https://discord.com/developers/docs/interactions/receiving-and-responding#interaction-response-object-autocomplete);
//   - docs/interactions/Application_Commands.md, "Application Command Option
//     Choice Structure": name 1-100 characters, a string value up to 100
//     characters
//     (https://discord.com/developers/docs/interactions/application-commands#application-command-object-application-command-option-choice-structure).
//
// Discord counts characters (code points), not bytes.
const (
	maxChoices     = 25
	maxChoiceChars = 100
)

// checkAutocomplete returns the "errors" object of Discord's 400 Invalid
// Form Body (code 50035) for an autocomplete result breaking those limits,
// or nil. The shape is the one documented at
// https://discord.com/developers/docs/reference#error-messages: nested
// objects along the field's path (array items by their index as a key),
// ending in "_errors": [{code, message}]; the codes and messages are the
// ones Discord sends for lengths (BASE_TYPE_MAX_LENGTH "Must be 25 or fewer
// in length.", BASE_TYPE_BAD_LENGTH "Must be between 1 and 100 in length.").
func checkAutocomplete(body map[string]any) map[string]any {
	if typ, _ := body["type"].(float64); typ != 8 {
		return nil
	}
	data, _ := body["data"].(map[string]any)
	list, _ := data["choices"].([]any)
	fieldErr := func(code, msg string) map[string]any {
		return map[string]any{"_errors": []any{map[string]any{"code": code, "message": msg}}}
	}
	if len(list) > maxChoices {
		return map[string]any{"data": map[string]any{"choices": fieldErr("BASE_TYPE_MAX_LENGTH",
			fmt.Sprintf("Must be %d or fewer in length.", maxChoices))}}
	}
	bad := map[string]any{}
	for i, item := range list {
		ch, _ := item.(map[string]any)
		errs := map[string]any{}
		name, _ := ch["name"].(string)
		if n := utf8.RuneCountInString(name); n < 1 || n > maxChoiceChars {
			errs["name"] = fieldErr("BASE_TYPE_BAD_LENGTH", fmt.Sprintf("Must be between 1 and %d in length.", maxChoiceChars))
		}
		if v, ok := ch["value"].(string); ok && utf8.RuneCountInString(v) > maxChoiceChars {
			errs["value"] = fieldErr("BASE_TYPE_MAX_LENGTH", fmt.Sprintf("Must be %d or fewer in length.", maxChoiceChars))
		}
		if len(errs) > 0 {
			bad[fmt.Sprint(i)] = errs
		}
	}
	if len(bad) == 0 {
		return nil
	}
	return map[string]any{"data": map[string]any{"choices": bad}}
}

func (ch Channel) json() map[string]any {
	if ch.Parent != "" {
		return map[string]any{"id": ch.ID, "type": 11, "parent_id": ch.Parent, "guild_id": "g1", "name": ch.ID}
	}
	return map[string]any{"id": ch.ID, "type": 0, "nsfw": ch.NSFW, "guild_id": "g1", "name": ch.ID}
}

// MustJSON marshals v.
func MustJSON(v any) []byte { b, _ := json.Marshal(v); return b }

// WaitFor blocks until pred holds for the recorded calls (checked after
// every new call); it returns an error naming what after timeout.
func (f *Server) WaitFor(timeout time.Duration, what string, pred func([]Call) bool) ([]Call, error) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		f.mu.Lock()
		calls := append([]Call(nil), f.calls...)
		f.mu.Unlock()
		if pred(calls) {
			return calls, nil
		}
		select {
		case <-f.notify:
		case <-deadline.C:
			return calls, fmt.Errorf("timed out waiting for %s; calls: %s", what, Summary(calls))
		}
	}
}

// Summary renders calls for error messages.
func Summary(calls []Call) string {
	var b strings.Builder
	for _, c := range calls {
		fmt.Fprintf(&b, "\n  %s %s %d files=%v content=%v", c.Method, c.Path, c.Status, c.Files, c.Body["content"])
	}
	return b.String()
}

var snow = struct {
	mu sync.Mutex
	n  int64
}{}

// Snowflake makes a Discord id carrying time t.
func Snowflake(t time.Time) string {
	snow.mu.Lock()
	defer snow.mu.Unlock()
	snow.n++
	return fmt.Sprint((t.UnixMilli()-1420070400000)<<22 | snow.n&0xfff)
}
