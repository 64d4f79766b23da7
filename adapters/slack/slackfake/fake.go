// Package slackfake is a Slack Web API, response_url and Socket Mode server
// for tests that enforces Slack's documented rules instead of accepting
// anything (slack-go's slacktest, which Easel's tests started from, answers
// ok to every post, never checks membership, blocks or upload lengths).
// Each rule cites the Slack documentation page it comes from:
//
//   - chat.postMessage — https://docs.slack.dev/reference/methods/chat.postMessage
//     (channel_not_found, not_in_channel, is_archived, msg_too_long over
//     40 000 characters, invalid_blocks, missing_scope chat:write; "1 message
//     per second per channel, short bursts allowed", answered 429 with
//     Retry-After — https://docs.slack.dev/apis/web-api/rate-limits).
//     A user's id as channel posts into the app's DM with them (the App
//     Home's Messages tab — https://docs.slack.dev/surfaces/app-home); the
//     answer's channel, and where the message then lives, is that DM's own
//     id (D…), not the user's: a later chat.update must name the D… id.
//   - conversations.open — https://docs.slack.dev/reference/methods/conversations.open
//     (scope im:write; users with one user id opens or resumes the DM and
//     answers {"channel": {"id": "D…"}}, the same id every time; channel
//     resumes a D… id; user_not_found, users_list_not_supplied,
//     channel_not_found, too_many_users over 8. Group DMs of several users
//     are not modelled: asking for one is a violation.)
//   - chat.update — https://docs.slack.dev/reference/methods/chat.update
//     (message_not_found for an unknown ts, cant_update_message for a
//     message the bot did not post, Tier 3: about 50 a minute per workspace)
//   - chat.postEphemeral — https://docs.slack.dev/reference/methods/chat.postEphemeral
//   - files.* — Tier 4 (about 100 a minute per workspace), answered 429
//     with Retry-After past it.
//   - files.getUploadURLExternal — https://docs.slack.dev/reference/methods/files.getUploadURLExternal
//     (filename and length required, files:write) and the upload itself
//     (the bytes received must match length)
//   - files.completeUploadExternal — https://docs.slack.dev/reference/methods/files.completeUploadExternal
//     (file ids from getUploadURLExternal, uploaded; without channel_id the
//     file stays private; channel membership as for posting)
//   - users.info — https://docs.slack.dev/reference/methods/users.info (users:read)
//   - Block Kit — https://docs.slack.dev/reference/block-kit/blocks: at most
//     50 blocks, section text ≤ 3 000, fields ≤ 10 of ≤ 2 000, block_id ≤ 255
//     and unique in a message ("If a message is updated, use a new block_id"),
//     actions ≤ 25 elements, button text ≤ 75, value ≤ 2 000, action_id ≤ 255,
//     image blocks with exactly one of image_url or slack_file
//     (https://docs.slack.dev/reference/block-kit/composition-objects/slack-file-object:
//     the poster must have access to the file).
//   - response_url — https://docs.slack.dev/interactivity/handling-user-interaction
//     (valid for 30 minutes, at most 5 uses).
//   - Socket Mode — https://docs.slack.dev/apis/events-api/using-socket-mode
//     (apps.connections.open with an xapp token, hello, envelopes acknowledged
//     within 3 seconds or redelivered with retry_attempt, disconnect with a
//     reason such as refresh_requested).
//   - app_mention — https://docs.slack.dev/reference/events/app_mention
//     (Mention builds the event as Slack sends it: text in Slack's format,
//     https://docs.slack.dev/messaging/formatting-message-text, with
//     edited, thread_ts, bot_id and files).
package slackfake

import (
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
	"unicode/utf8"

	"github.com/gorilla/websocket"
)

// Config sets up the fake workspace.
type Config struct {
	// BotToken is the accepted bot token (default "xoxb-test").
	BotToken string
	// AppToken is the accepted app-level token for Socket Mode (default
	// "xapp-test").
	AppToken string
	// Team is the workspace id (default "T1").
	Team string
	// Scopes are the bot token's scopes (default: chat:write, files:write,
	// users:read, commands, app_mentions:read; not channels:join).
	Scopes []string
	// PostBurst is how many posts a channel takes at once before the
	// 1-per-second limit answers 429 (default 4).
	PostBurst int
	// UpdatesPerMinute is chat.update's Tier 3 limit per workspace
	// (default 50, burst of the same size).
	UpdatesPerMinute int
	// FilesPerMinute is the Tier 4 limit of files.getUploadURLExternal and
	// files.completeUploadExternal per workspace (default 100, burst of
	// the same size).
	FilesPerMinute int
	// AckTimeout is how long a Socket Mode envelope may wait for its
	// acknowledgement before it is redelivered (default 3s).
	AckTimeout time.Duration
}

// Channel is a conversation in the fake workspace.
type Channel struct {
	ID       string
	Private  bool // private channel or DM: non-members get channel_not_found
	Member   bool // the bot is in it
	Archived bool
}

// User is a workspace member.
type User struct {
	ID     string
	Name   string
	Admin  bool
	Owner  bool
	Bot    bool
	Locale string
}

// Message is a message the bot posted (or a file share).
type Message struct {
	Channel   string
	TS        string
	ThreadTS  string
	Text      string
	Blocks    json.RawMessage
	Ephemeral bool
	User      string // ephemeral recipient
	Files     []string
	Edits     int
	blockIDs  map[string]bool // every block_id of every iteration
}

// File is an uploaded file.
type File struct {
	ID        string
	Name      string
	Length    int
	Bytes     []byte
	Uploaded  bool
	Completed bool
	Channel   string // "" while private
	ThreadTS  string
	Deleted   bool
}

// Call is one request the fake answered.
type Call struct {
	Method string
	Form   url.Values
	Error  string // Slack's error code, "" for ok
	// At is when the fake answered the call (shown by Wait's timeout
	// report, to tell a slow path from a lost one).
	At time.Time
}

// ResponsePost is one use of a response_url.
type ResponsePost struct {
	URL  string
	Body map[string]any
}

type response struct {
	created time.Time
	uses    int
}

// rule fails calls of a method whose form matches, n times (-1: always).
type rule struct {
	method string
	match  func(url.Values) bool
	code   string
	n      int
}

type bucket struct {
	tokens float64
	last   time.Time
}

// Server is the fake.
type Server struct {
	cfg    Config
	srv    *httptest.Server
	mu     sync.Mutex
	offset time.Duration // Advance's shift of the fake's clock
	seq    int
	chg    chan struct{} // closed and replaced on every change

	channels   map[string]*Channel
	users      map[string]*User
	messages   map[string]*Message // channel + "/" + ts
	files      map[string]*File
	calls      []Call
	violations []string
	responses  map[string]*response
	respPosts  []ResponsePost
	fail       map[string][]string
	rules      []rule
	lastRule   string
	postBucket map[string]*bucket
	updBucket  *bucket
	fileBucket *bucket
	scopes     map[string]bool
	dms        map[string]string // user id → their DM's channel id (D…)

	conn    *websocket.Conn
	connWMu sync.Mutex
	conns   chan *websocket.Conn
	acks    map[string]chan struct{}
	opened  int
}

// New starts the fake on a loopback port.
func New(cfg Config) *Server {
	if cfg.BotToken == "" {
		cfg.BotToken = "xoxb-test"
	}
	if cfg.AppToken == "" {
		cfg.AppToken = "xapp-test"
	}
	if cfg.Team == "" {
		cfg.Team = "T1"
	}
	if cfg.Scopes == nil {
		cfg.Scopes = []string{"chat:write", "files:write", "users:read", "commands", "app_mentions:read"}
	}
	if cfg.PostBurst == 0 {
		cfg.PostBurst = 4
	}
	if cfg.UpdatesPerMinute == 0 {
		cfg.UpdatesPerMinute = 50
	}
	if cfg.FilesPerMinute == 0 {
		cfg.FilesPerMinute = 100
	}
	if cfg.AckTimeout == 0 {
		cfg.AckTimeout = 3 * time.Second
	}
	s := &Server{cfg: cfg, chg: make(chan struct{}), channels: map[string]*Channel{},
		users: map[string]*User{}, messages: map[string]*Message{}, files: map[string]*File{},
		responses: map[string]*response{}, fail: map[string][]string{}, postBucket: map[string]*bucket{},
		scopes: map[string]bool{}, dms: map[string]string{}, conns: make(chan *websocket.Conn, 4), acks: map[string]chan struct{}{}}
	for _, sc := range cfg.Scopes {
		s.scopes[sc] = true
	}
	mux := http.NewServeMux()
	for name, h := range map[string]func(url.Values) (map[string]any, string){
		"chat.postMessage":             s.postMessage,
		"chat.update":                  s.update,
		"chat.postEphemeral":           s.postEphemeral,
		"files.getUploadURLExternal":   s.getUploadURL,
		"files.completeUploadExternal": s.completeUpload,
		"files.delete":                 s.deleteFile,
		"users.info":                   s.userInfo,
		"conversations.join":           s.join,
		"conversations.open":           s.open,
		"apps.connections.open":        nil,
	} {
		mux.HandleFunc("POST /"+name, s.method(name, h))
	}
	mux.HandleFunc("POST /upload/{id}", s.upload)
	mux.HandleFunc("POST /response/{id}", s.respond)
	mux.HandleFunc("GET /socket", s.socket)
	s.srv = httptest.NewServer(mux)
	return s
}

// URL is the Web API base (ending in "/") for slack.OptionAPIURL.
func (s *Server) URL() string { return s.srv.URL + "/" }

// Close stops the fake.
func (s *Server) Close() {
	s.mu.Lock()
	c := s.conn
	s.mu.Unlock()
	if c != nil {
		_ = c.Close()
	}
	s.srv.Close()
}

// now is the fake's clock (time.Now moved on by Advance); call with mu
// held.
func (s *Server) now() time.Time { return time.Now().Add(s.offset) }

// Advance moves the fake's clock on by d, as if that much time had passed:
// response_urls expire after 30 minutes, rate limits refill.
func (s *Server) Advance(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.offset += d
}

// AddChannel adds or replaces a channel.
func (s *Server) AddChannel(c Channel) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.channels[c.ID] = &c
}

// AddUser adds or replaces a user.
func (s *Server) AddUser(u User) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.users[u.ID] = &u
}

// FailNext makes the next calls of method answer the given Slack error
// codes, one per call, before any other check ("ratelimited" answers 429
// with Retry-After: 1).
func (s *Server) FailNext(method string, codes ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fail[method] = append(s.fail[method], codes...)
}

// FailIf makes calls of method whose form matches answer the Slack error
// code, n times (-1: every time); for example every final chat.update.
func (s *Server) FailIf(method string, match func(url.Values) bool, code string, n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rules = append(s.rules, rule{method: method, match: match, code: code, n: n})
}

// ruled returns the error code of the first rule matching; call with mu held.
func (s *Server) ruled(method string, form url.Values) string {
	for i := range s.rules {
		r := &s.rules[i]
		if r.method == method && r.n != 0 && r.match(form) {
			if r.n > 0 {
				r.n--
			}
			s.lastRule = r.code
			return r.code
		}
	}
	return ""
}

// NewResponseURL returns a fresh response_url as Slack puts in a slash
// command or interaction payload.
func (s *Server) NewResponseURL() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seq++
	id := "R" + strconv.Itoa(s.seq)
	s.responses[id] = &response{created: s.now()}
	return s.srv.URL + "/response/" + id
}

// Calls returns every call so far.
func (s *Server) Calls() []Call {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Call(nil), s.calls...)
}

// Violations lists rules our client broke that Slack does not answer with
// an error but documents (reused block_ids on update, late Socket Mode
// acknowledgements, a response_url used after it expired).
func (s *Server) Violations() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.violations...)
}

// Files returns the uploaded files.
func (s *Server) Files() []File {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []File
	for _, f := range s.files {
		out = append(out, *f)
	}
	return out
}

// Message returns the message at channel/ts.
func (s *Server) Message(channel, ts string) (Message, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, ok := s.messages[channel+"/"+ts]
	if !ok {
		return Message{}, false
	}
	return *m, true
}

// Messages returns the messages in a channel.
func (s *Server) Messages(channel string) []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Message
	for _, m := range s.messages {
		if m.Channel == channel {
			out = append(out, *m)
		}
	}
	return out
}

// AddMessage puts a message the bot posted earlier into channel and
// returns its ts.
func (s *Server) AddMessage(channel, text string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	ts := s.nextTS()
	s.messages[channel+"/"+ts] = &Message{Channel: channel, TS: ts, Text: text, blockIDs: map[string]bool{}}
	s.changed()
	return ts
}

// DeleteMessage removes a message (as a user deleting it would).
func (s *Server) DeleteMessage(channel, ts string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.messages, channel+"/"+ts)
}

// ResponsePosts returns what was posted to response_urls.
func (s *Server) ResponsePosts() []ResponsePost {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]ResponsePost(nil), s.respPosts...)
}

// WaitTimeout is how long Wait waits: generous, as a passing Wait returns
// as soon as pred holds. Under a loaded race-enabled run one job has taken
// over 20 s, most of it the fake SD backend encoding full-size PNGs and
// its client decoding them (CPU-bound; the steps are paced by timers). It
// stays under the relay's recovery of an unacknowledged final (its sweep
// takes entries idle for a minute), so a final lost and only recovered by
// the sweep still fails the test.
const WaitTimeout = 45 * time.Second

// Wait blocks until pred holds for the calls so far (checked after every
// change), failing t after WaitTimeout with every call and its time.
func (s *Server) Wait(t testing.TB, what string, pred func([]Call) bool) []Call {
	t.Helper()
	start := time.Now()
	deadline := time.NewTimer(WaitTimeout)
	defer deadline.Stop()
	for {
		s.mu.Lock()
		calls := append([]Call(nil), s.calls...)
		chg := s.chg
		s.mu.Unlock()
		if pred(calls) {
			return calls
		}
		select {
		case <-chg:
		case <-deadline.C:
			var b strings.Builder
			for _, c := range calls {
				fmt.Fprintf(&b, "\n  %s (%+.3fs) %s %s %v", c.At.Format("15:04:05.000"), c.At.Sub(start).Seconds(), c.Method, c.Error, c.Form)
			}
			t.Fatalf("timed out waiting for %s (since %s); calls:%s", what, start.Format("15:04:05.000"), b.String())
		}
	}
}

// changed wakes waiters; call with mu held.
func (s *Server) changed() {
	close(s.chg)
	s.chg = make(chan struct{})
}

func (s *Server) violate(format string, args ...any) {
	s.violations = append(s.violations, fmt.Sprintf(format, args...))
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

var methodScope = map[string]string{
	"chat.postMessage": "chat:write", "chat.update": "chat:write", "chat.postEphemeral": "chat:write",
	"files.getUploadURLExternal": "files:write", "files.completeUploadExternal": "files:write",
	"files.delete": "files:write", "users.info": "users:read", "conversations.join": "channels:join",
	"conversations.open": "im:write",
}

// method wraps a Web API method: token and scope, injected failures, the
// call record, and Slack's {"ok": …} envelope.
func (s *Server) method(name string, h func(url.Values) (map[string]any, string)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		form := r.Form
		token := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
		if token == "" {
			token = form.Get("token")
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		code, status := "", http.StatusOK
		var body map[string]any
		want := s.cfg.BotToken
		if name == "apps.connections.open" {
			want = s.cfg.AppToken
		}
		switch {
		case token == "":
			code = "not_authed"
		case token != want:
			code = "invalid_auth"
		case methodScope[name] != "" && !s.scopes[methodScope[name]]:
			code = "missing_scope"
			body = map[string]any{"needed": methodScope[name]}
		case len(s.fail[name]) > 0:
			code = s.fail[name][0]
			s.fail[name] = s.fail[name][1:]
			if code == "ratelimited" {
				w.Header().Set("Retry-After", "1")
				status = http.StatusTooManyRequests
			}
		case len(s.fail[name]) == 0 && s.ruled(name, form) != "":
			code = s.lastRule
			if code == "ratelimited" {
				w.Header().Set("Retry-After", "1")
				status = http.StatusTooManyRequests
			}
		case name == "apps.connections.open":
			s.opened++
			body = map[string]any{"url": "ws" + strings.TrimPrefix(s.srv.URL, "http") + "/socket"}
		default:
			body, code = h(form)
			if code == "ratelimited" {
				w.Header().Set("Retry-After", "1")
				status = http.StatusTooManyRequests
			}
		}
		redacted := url.Values{}
		for k, v := range form {
			if k != "token" {
				redacted[k] = v
			}
		}
		s.calls = append(s.calls, Call{Method: name, Form: redacted, Error: code, At: time.Now()})
		s.changed()
		if body == nil {
			body = map[string]any{}
		}
		body["ok"] = code == ""
		if code != "" {
			body["error"] = code
		}
		writeJSON(w, status, body)
	}
}

// channelErr applies Slack's membership rules for posting into a channel.
func (s *Server) channelErr(id string) string {
	c, ok := s.channels[id]
	switch {
	case !ok, c.Private && !c.Member:
		return "channel_not_found"
	case c.Archived:
		return "is_archived"
	case !c.Member:
		return "not_in_channel"
	}
	return ""
}

func (s *Server) take(b *bucket, perSecond, burst float64) bool {
	now := s.now()
	if b.last.IsZero() {
		b.tokens, b.last = burst, now
	}
	b.tokens = min(burst, b.tokens+now.Sub(b.last).Seconds()*perSecond)
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

func (s *Server) nextTS() string {
	s.seq++
	return fmt.Sprintf("1700000000.%06d", s.seq)
}

// content checks text and blocks as chat.postMessage and chat.update do.
func (s *Server) content(form url.Values) (json.RawMessage, []string, string) {
	text, blocks := form.Get("text"), form.Get("blocks")
	if text == "" && blocks == "" && form.Get("attachments") == "" {
		return nil, nil, "no_text"
	}
	if utf8.RuneCountInString(text) > 40000 {
		return nil, nil, "msg_too_long"
	}
	if blocks == "" {
		return nil, nil, ""
	}
	ids, err := s.validateBlocks([]byte(blocks))
	if err != nil {
		return nil, nil, "invalid_blocks"
	}
	return json.RawMessage(blocks), ids, ""
}

func (s *Server) postMessage(form url.Values) (map[string]any, string) {
	ch := form.Get("channel")
	// A user's id as the channel posts into the Messages tab of the app's
	// App Home with that user, its DM with them
	// (https://docs.slack.dev/surfaces/app-home#messages-tab); no
	// membership needed. The message lives in (and the answer names) the
	// DM's D… id.
	if u, ok := s.users[ch]; ok && !u.Bot {
		ch = s.dm(u.ID)
	}
	if e := s.channelErr(ch); e != "" {
		return nil, e
	}
	b := s.postBucket[ch]
	if b == nil {
		b = &bucket{}
		s.postBucket[ch] = b
	}
	if !s.take(b, 1, float64(s.cfg.PostBurst)) {
		return nil, "ratelimited"
	}
	blocks, ids, e := s.content(form)
	if e != "" {
		return nil, e
	}
	// thread_ts may name a user's message the fake never saw (a mention).
	thread := form.Get("thread_ts")
	ts := s.nextTS()
	m := &Message{Channel: ch, TS: ts, ThreadTS: thread, Text: form.Get("text"), Blocks: blocks, blockIDs: map[string]bool{}}
	for _, id := range ids {
		m.blockIDs[id] = true
	}
	s.messages[ch+"/"+ts] = m
	return map[string]any{"channel": ch, "ts": ts, "message": map[string]any{"text": m.Text, "ts": ts}}, ""
}

func (s *Server) update(form url.Values) (map[string]any, string) {
	ch, ts := form.Get("channel"), form.Get("ts")
	if e := s.channelErr(ch); e != "" {
		return nil, e
	}
	if s.updBucket == nil {
		s.updBucket = &bucket{}
	}
	per := float64(s.cfg.UpdatesPerMinute)
	if !s.take(s.updBucket, per/60, per) {
		return nil, "ratelimited"
	}
	m, ok := s.messages[ch+"/"+ts]
	if !ok {
		return nil, "message_not_found"
	}
	if m.Ephemeral || len(m.Files) > 0 {
		return nil, "cant_update_message"
	}
	blocks, ids, e := s.content(form)
	if e != "" {
		return nil, e
	}
	for _, id := range ids {
		if m.blockIDs[id] {
			s.violate("chat.update %s/%s reuses block_id %q (Slack: use a new block_id when a message is updated)", ch, ts, id)
		}
		m.blockIDs[id] = true
	}
	m.Text, m.Edits = form.Get("text"), m.Edits+1
	if form.Has("blocks") {
		m.Blocks = blocks
	}
	return map[string]any{"channel": ch, "ts": ts, "text": m.Text}, ""
}

func (s *Server) postEphemeral(form url.Values) (map[string]any, string) {
	ch, user := form.Get("channel"), form.Get("user")
	if e := s.channelErr(ch); e != "" {
		return nil, e
	}
	if _, ok := s.users[user]; !ok {
		return nil, "user_not_in_channel"
	}
	_, _, e := s.content(form)
	if e != "" {
		return nil, e
	}
	ts := s.nextTS()
	s.messages[ch+"/"+ts] = &Message{Channel: ch, TS: ts, ThreadTS: form.Get("thread_ts"), Text: form.Get("text"),
		Ephemeral: true, User: user}
	return map[string]any{"message_ts": ts}, ""
}

// fileRate applies Tier 4 (100+ a minute per workspace,
// https://docs.slack.dev/apis/web-api/rate-limits) to the file methods;
// call with mu held.
func (s *Server) fileRate() bool {
	if s.fileBucket == nil {
		s.fileBucket = &bucket{}
	}
	per := float64(s.cfg.FilesPerMinute)
	return s.take(s.fileBucket, per/60, per)
}

func (s *Server) getUploadURL(form url.Values) (map[string]any, string) {
	if !s.fileRate() {
		return nil, "ratelimited"
	}
	name := form.Get("filename")
	n, err := strconv.Atoi(form.Get("length"))
	if name == "" || err != nil || n <= 0 {
		return nil, "invalid_arguments"
	}
	s.seq++
	id := "F" + strconv.Itoa(s.seq)
	s.files[id] = &File{ID: id, Name: name, Length: n}
	return map[string]any{"upload_url": s.srv.URL + "/upload/" + id, "file_id": id}, ""
}

// upload receives a file's bytes (multipart "file" or a raw body) and
// checks them against the length announced to getUploadURLExternal.
func (s *Server) upload(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	var data []byte
	if strings.HasPrefix(r.Header.Get("Content-Type"), "multipart/") {
		f, _, err := r.FormFile("file")
		if err != nil {
			http.Error(w, "no file", http.StatusBadRequest)
			return
		}
		data, _ = io.ReadAll(f)
	} else {
		data, _ = io.ReadAll(r.Body)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	f, ok := s.files[id]
	code := ""
	switch {
	case !ok:
		code = "file_not_found"
	case len(data) != f.Length:
		code = "length_mismatch"
	default:
		f.Bytes, f.Uploaded = data, true
	}
	s.calls = append(s.calls, Call{Method: "upload", Form: url.Values{"id": {id}}, Error: code, At: time.Now()})
	s.changed()
	if code != "" {
		http.Error(w, code, http.StatusBadRequest)
		return
	}
	_, _ = fmt.Fprintf(w, "OK - %d", len(data))
}

func (s *Server) completeUpload(form url.Values) (map[string]any, string) {
	if !s.fileRate() {
		return nil, "ratelimited"
	}
	var list []struct {
		ID    string `json:"id"`
		Title string `json:"title"`
	}
	if err := json.Unmarshal([]byte(form.Get("files")), &list); err != nil || len(list) == 0 {
		return nil, "invalid_arguments"
	}
	for _, x := range list {
		f, ok := s.files[x.ID]
		if !ok || !f.Uploaded || f.Completed || f.Deleted {
			return nil, "file_not_found"
		}
	}
	ch, thread := form.Get("channel_id"), form.Get("thread_ts")
	if ch != "" {
		if e := s.channelErr(ch); e != "" {
			return nil, e
		}
	}
	var out []any
	var ids []string
	for _, x := range list {
		f := s.files[x.ID]
		f.Completed, f.Channel, f.ThreadTS = true, ch, thread
		ids = append(ids, f.ID)
		out = append(out, map[string]any{"id": f.ID, "title": x.Title})
	}
	if ch != "" {
		ts := s.nextTS()
		s.messages[ch+"/"+ts] = &Message{Channel: ch, TS: ts, ThreadTS: thread, Files: ids}
	}
	return map[string]any{"files": out}, ""
}

func (s *Server) deleteFile(form url.Values) (map[string]any, string) {
	f, ok := s.files[form.Get("file")]
	if !ok || f.Deleted {
		return nil, "file_not_found"
	}
	f.Deleted = true
	return nil, ""
}

// join is conversations.join
// (https://docs.slack.dev/reference/methods/conversations.join): public
// channels only, scope channels:join.
func (s *Server) join(form url.Values) (map[string]any, string) {
	c, ok := s.channels[form.Get("channel")]
	switch {
	case !ok, c.Private:
		return nil, "channel_not_found"
	case c.Archived:
		return nil, "is_archived"
	}
	c.Member = true
	return map[string]any{"channel": map[string]any{"id": c.ID, "is_channel": true, "is_member": true}}, ""
}

// dm is the id of the app's DM with user, opened on first use; call with
// mu held.
func (s *Server) dm(user string) string {
	if id, ok := s.dms[user]; ok {
		return id
	}
	s.seq++
	id := fmt.Sprintf("D%08d", s.seq)
	s.dms[user] = id
	s.channels[id] = &Channel{ID: id, Private: true, Member: true}
	return id
}

// open is conversations.open for one user: their DM's D… id, the same
// on every call; or a D… channel to resume.
func (s *Server) open(form url.Values) (map[string]any, string) {
	if ch := form.Get("channel"); ch != "" && form.Get("users") == "" {
		for _, id := range s.dms {
			if id == ch {
				return map[string]any{"channel": map[string]any{"id": id}, "already_open": true}, ""
			}
		}
		return nil, "channel_not_found"
	}
	users := strings.FieldsFunc(form.Get("users"), func(r rune) bool { return r == ',' })
	switch {
	case len(users) == 0:
		return nil, "users_list_not_supplied"
	case len(users) > 8:
		return nil, "too_many_users"
	case len(users) > 1:
		s.violate("conversations.open with users %q: group DMs are not modelled by the fake", form.Get("users"))
		return nil, "method_not_supported_for_channel_type"
	}
	u, ok := s.users[strings.TrimSpace(users[0])]
	if !ok || u.Bot {
		return nil, "user_not_found"
	}
	_, already := s.dms[u.ID]
	return map[string]any{"channel": map[string]any{"id": s.dm(u.ID)}, "already_open": already}, ""
}

// DMChannel is the id of the app's DM with user, "" while none was
// opened (by a post to the user's id or conversations.open).
func (s *Server) DMChannel(user string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.dms[user]
}

func (s *Server) userInfo(form url.Values) (map[string]any, string) {
	u, ok := s.users[form.Get("user")]
	if !ok {
		return nil, "user_not_found"
	}
	v := map[string]any{"id": u.ID, "name": u.Name, "is_admin": u.Admin, "is_owner": u.Owner, "is_bot": u.Bot}
	if form.Get("include_locale") == "true" {
		v["locale"] = u.Locale
	}
	return map[string]any{"user": v}, ""
}

// respond is a response_url: 30 minutes, 5 uses; the body is JSON with
// text and/or blocks checked like a message.
func (s *Server) respond(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	raw, _ := io.ReadAll(r.Body)
	s.mu.Lock()
	defer s.mu.Unlock()
	code := ""
	var body map[string]any
	resp, ok := s.responses[id]
	switch {
	case !ok:
		code = "invalid_url"
	case s.now().Sub(resp.created) > 30*time.Minute:
		code = "expired_url"
	case resp.uses >= 5:
		code = "used_url"
	case json.Unmarshal(raw, &body) != nil:
		code = "invalid_payload"
	}
	if code == "" {
		if b, ok := body["blocks"]; ok {
			bb, _ := json.Marshal(b)
			if _, err := s.validateBlocks(bb); err != nil {
				code = "invalid_blocks"
			}
		}
		if t, _ := body["text"].(string); t == "" && body["blocks"] == nil && body["delete_original"] == nil {
			code = "no_text"
		}
	}
	s.calls = append(s.calls, Call{Method: "response_url", Form: url.Values{"id": {id}, "body": {string(raw)}}, Error: code, At: time.Now()})
	if code == "" {
		resp.uses++
		s.respPosts = append(s.respPosts, ResponsePost{URL: id, Body: body})
	}
	s.changed()
	if code != "" {
		http.Error(w, code, http.StatusNotFound)
		return
	}
	_, _ = w.Write([]byte("ok"))
}
