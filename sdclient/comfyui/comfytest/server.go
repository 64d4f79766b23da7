package comfytest

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"path"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// Config sets up a fake server. Zero fields take the defaults shown.
type Config struct {
	// StepDuration is the time of one sampling step. Default 5ms.
	StepDuration time.Duration
	// LoadDuration is the time to load a checkpoint that is not the one
	// loaded now (the first load included). Default 0.
	LoadDuration time.Duration
	// NoPreviews turns off binary preview frames, as a server started
	// without --preview-method sends none.
	NoPreviews bool
	// Checkpoints are the files in models/checkpoints. Default
	// ["sd_xl_base_1.0.safetensors", "v1-5-pruned-emaonly.safetensors"].
	Checkpoints []string
	// LoRAs are the files in models/loras. Default ["detail.safetensors",
	// "style.safetensors"].
	LoRAs []string
	// UpscaleModels are the files in models/upscale_models. Default
	// ["4x-UltraSharp.pth"].
	UpscaleModels []string
	// Samplers are KSampler's sampler_name choices. Default: a subset of
	// comfy/samplers.py KSAMPLER_NAMES.
	Samplers []string
	// Schedulers are KSampler's scheduler choices. Default: comfy/samplers.py
	// SCHEDULER_NAMES.
	Schedulers []string
}

func (c Config) withDefaults() Config {
	if c.StepDuration == 0 {
		c.StepDuration = 5 * time.Millisecond
	}
	if c.Checkpoints == nil {
		c.Checkpoints = []string{"sd_xl_base_1.0.safetensors", "v1-5-pruned-emaonly.safetensors"}
	}
	if c.LoRAs == nil {
		c.LoRAs = []string{"detail.safetensors", "style.safetensors"}
	}
	if c.UpscaleModels == nil {
		c.UpscaleModels = []string{"4x-UltraSharp.pth"}
	}
	if c.Samplers == nil {
		c.Samplers = []string{"euler", "euler_ancestral", "heun", "dpm_2", "dpm_2_ancestral", "lms", "dpm_fast",
			"dpm_adaptive", "dpmpp_2s_ancestral", "dpmpp_sde", "dpmpp_2m", "dpmpp_2m_sde", "dpmpp_3m_sde", "ddpm", "lcm",
			"ddim", "uni_pc"}
	}
	if c.Schedulers == nil {
		c.Schedulers = []string{"normal", "karras", "exponential", "sgm_uniform", "simple", "ddim_uniform", "beta"}
	}
	return c
}

// Server is a fake ComfyUI. Make one with New, serve Handler, Close it.
type Server struct {
	cfg Config

	mu      sync.Mutex
	changed chan struct{} // closed and replaced on every state change
	number  int
	pending []*task // in number order
	running *task
	tasks   map[string]*task
	order   []string // prompt ids, submission order
	history []string // prompt ids, completion order (history's dict order)
	files   map[string][]byte
	sockets map[string]*socket
	// cache holds the previous prompt's node outputs by input signature.
	cache      map[string]*nodeResult
	loadedCkpt string
	hang       bool
	stallAt    int
	dropAt     int
	interrupt  chan struct{} // signalled to stop the running prompt
	release    chan struct{} // signalled to let a stalled sampler go on
	interrupts []Interrupt
	counter    int // SaveImage file counter
	lastNode   string

	wake chan struct{}
	stop chan struct{}
	done chan struct{}
}

// Status is where a prompt is.
type Status string

// Prompt states.
const (
	Pending     Status = "pending"
	Running     Status = "running"
	Success     Status = "success"
	Failed      Status = "error"
	Interrupted Status = "interrupted"
	Deleted     Status = "deleted"
)

type task struct {
	number   int
	id       string
	clientID string // "" when submitted without one
	raw      json.RawMessage
	prompt   map[string]node
	outputs  []string
	extra    map[string]any
	status   Status
	step     int
	// history entry, once done
	histOutputs map[string]any
	messages    [][2]any
	// finished is when history was written and "executing" null sent.
	finished time.Time
}

// Interrupt is one POST /interrupt: the prompt id it named ("" for
// server-wide) and the prompt it stopped ("" for none).
type Interrupt struct {
	Requested string
	Stopped   string
}

// Submitted is a prompt as the server received it.
type Submitted struct {
	ID       string
	ClientID string
	// Graph is the prompt, decoded with numbers as json.Number.
	Graph map[string]any
}

// Snapshot is the server's state for Wait.
type Snapshot struct {
	// Running is the running prompt's id, or "".
	Running string
	// Step is the running prompt's last sampling step sent.
	Step    int
	Pending []string
	// Status maps every prompt id to its state.
	Status map[string]Status
}

// New returns a fake server whose executor runs until Close.
func New(cfg Config) *Server {
	s := &Server{
		cfg: cfg.withDefaults(), changed: make(chan struct{}), tasks: map[string]*task{},
		files: map[string][]byte{}, sockets: map[string]*socket{}, cache: map[string]*nodeResult{},
		interrupt: make(chan struct{}, 1), release: make(chan struct{}, 1), wake: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{}),
	}
	go s.execute()
	return s
}

// Close stops the executor (interrupting what runs) and closes every
// websocket.
func (s *Server) Close() {
	s.mu.Lock()
	select {
	case <-s.stop:
		s.mu.Unlock()
		<-s.done
		return
	default:
	}
	close(s.stop)
	socks := slices.Collect(maps.Values(s.sockets))
	s.mu.Unlock()
	<-s.done
	for _, so := range socks {
		so.close()
	}
}

// SetHang makes the server accept prompts and never start them (true), or
// start them again (false).
func (s *Server) SetHang(h bool) {
	s.mu.Lock()
	s.hang = h
	s.notifyLocked()
	s.mu.Unlock()
	s.poke()
}

// StallAt makes the next sampler that reaches step n stop advancing there
// until it is interrupted; 0 turns it off.
func (s *Server) StallAt(n int) {
	s.mu.Lock()
	s.stallAt = n
	s.mu.Unlock()
}

// Release lets a sampler stalled by StallAt go on.
func (s *Server) Release() {
	select {
	case s.release <- struct{}{}:
	default:
	}
}

// DropAt makes the server close the submitting client's websocket once
// the next sampler sent step n; the prompt keeps running. 0 turns it off.
func (s *Server) DropAt(n int) {
	s.mu.Lock()
	s.dropAt = n
	s.mu.Unlock()
}

// SubmitAs queues a prompt (an API-format graph, marshalled to JSON) as
// client clientID, as another user of the server would, and returns its
// prompt id.
func (s *Server) SubmitAs(clientID string, graph any) (string, error) {
	raw, err := json.Marshal(graph)
	if err != nil {
		return "", err
	}
	body, _ := json.Marshal(map[string]any{"prompt": json.RawMessage(raw), "client_id": clientID})
	code, ans := s.post(body)
	if code != http.StatusOK {
		return "", fmt.Errorf("comfytest: prompt rejected: %s", ans)
	}
	var r struct {
		PromptID string `json:"prompt_id"`
	}
	if err := json.Unmarshal(ans, &r); err != nil {
		return "", err
	}
	return r.PromptID, nil
}

// Prompts returns every prompt received, in order.
func (s *Server) Prompts() []Submitted {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Submitted, 0, len(s.order))
	for _, id := range s.order {
		t := s.tasks[id]
		var g map[string]any
		dec := json.NewDecoder(bytes.NewReader(t.raw))
		dec.UseNumber()
		_ = dec.Decode(&g)
		out = append(out, Submitted{ID: t.id, ClientID: t.clientID, Graph: g})
	}
	return out
}

// Finished returns when a prompt's run ended (history written, "executing"
// with node null sent), or the zero time.
func (s *Server) Finished(id string) time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	if t := s.tasks[id]; t != nil {
		return t.finished
	}
	return time.Time{}
}

// Interrupts returns every POST /interrupt received, in order.
func (s *Server) Interrupts() []Interrupt {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.interrupts)
}

// Status returns a prompt's state, "" when unknown.
func (s *Server) Status(id string) Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	if t := s.tasks[id]; t != nil {
		return t.status
	}
	return ""
}

// Wait blocks until pred holds for the server's state or r's context ends.
func (s *Server) Wait(done <-chan struct{}, pred func(Snapshot) bool) error {
	for {
		s.mu.Lock()
		snap := s.snapshotLocked()
		ch := s.changed
		s.mu.Unlock()
		if pred(snap) {
			return nil
		}
		select {
		case <-ch:
		case <-done:
			return errors.New("comfytest: wait ended before the state was reached")
		}
	}
}

func (s *Server) snapshotLocked() Snapshot {
	snap := Snapshot{Status: map[string]Status{}}
	if s.running != nil {
		snap.Running, snap.Step = s.running.id, s.running.step
	}
	for _, t := range s.pending {
		snap.Pending = append(snap.Pending, t.id)
	}
	for id, t := range s.tasks {
		snap.Status[id] = t.status
	}
	return snap
}

func (s *Server) notifyLocked() {
	close(s.changed)
	s.changed = make(chan struct{})
}

func (s *Server) poke() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Handler serves the ComfyUI routes, each also under /api (server.py
// add_routes).
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	for _, p := range []string{"", "/api"} {
		mux.HandleFunc("GET "+p+"/ws", s.handleWS)
		mux.HandleFunc("POST "+p+"/prompt", s.handlePrompt)
		mux.HandleFunc("GET "+p+"/prompt", s.handleQueueInfo)
		mux.HandleFunc("GET "+p+"/queue", s.handleQueue)
		mux.HandleFunc("POST "+p+"/queue", s.handleQueuePost)
		mux.HandleFunc("POST "+p+"/interrupt", s.handleInterrupt)
		mux.HandleFunc("GET "+p+"/history", s.handleHistory)
		mux.HandleFunc("GET "+p+"/history/{id}", s.handleHistory)
		mux.HandleFunc("GET "+p+"/view", s.handleView)
		mux.HandleFunc("POST "+p+"/upload/image", s.handleUpload)
		mux.HandleFunc("GET "+p+"/models", s.handleModels)
		mux.HandleFunc("GET "+p+"/models/{folder}", s.handleModels)
		mux.HandleFunc("GET "+p+"/object_info", s.handleObjectInfo)
		mux.HandleFunc("GET "+p+"/object_info/{class}", s.handleObjectInfo)
		mux.HandleFunc("GET "+p+"/system_stats", s.handleSystemStats)
	}
	return mux
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// handlePrompt is server.py post_prompt.
func (s *Server) handlePrompt(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 64<<20))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	code, ans := s.post(body)
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(code)
	_, _ = w.Write(ans)
}

func (s *Server) post(body []byte) (int, []byte) {
	enc := func(code int, v any) (int, []byte) {
		b, _ := json.Marshal(v)
		return code, b
	}
	var req struct {
		Prompt    json.RawMessage `json:"prompt"`
		ClientID  *string         `json:"client_id"`
		PromptID  *string         `json:"prompt_id"`
		ExtraData map[string]any  `json:"extra_data"`
		Front     bool            `json:"front"`
	}
	if err := json.Unmarshal(body, &req); err != nil {
		// aiohttp's request.json() raises: a 500 from the server.
		return http.StatusInternalServerError, []byte(`500 Internal Server Error`)
	}
	if len(req.Prompt) == 0 {
		return enc(http.StatusBadRequest, map[string]any{"error": map[string]any{"type": "no_prompt", "message": "No prompt provided", "details": "No prompt provided", "extra_info": map[string]any{}}, "node_errors": []any{}})
	}
	var prompt map[string]node
	dec := json.NewDecoder(bytes.NewReader(req.Prompt))
	dec.UseNumber()
	if err := dec.Decode(&prompt); err != nil {
		return enc(http.StatusBadRequest, map[string]any{"error": map[string]any{"type": "invalid_prompt", "message": "Invalid prompt: " + err.Error(), "details": "", "extra_info": map[string]any{}}, "node_errors": map[string]any{}})
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	outputs, top, nerrs := s.validate(prompt)
	if top != nil {
		return enc(http.StatusBadRequest, map[string]any{"error": top, "node_errors": nerrs})
	}
	id := newID()
	if req.PromptID != nil && *req.PromptID != "" {
		id = *req.PromptID
	}
	if _, dup := s.tasks[id]; dup {
		id = newID()
	}
	extra := req.ExtraData
	if extra == nil {
		extra = map[string]any{}
	}
	t := &task{number: s.number, id: id, raw: req.Prompt, prompt: prompt, outputs: outputs, extra: extra, status: Pending}
	if req.Front {
		t.number = -t.number
	}
	s.number++
	if req.ClientID != nil {
		t.clientID = *req.ClientID
		extra["client_id"] = *req.ClientID
	}
	s.tasks[id] = t
	s.order = append(s.order, id)
	s.pending = append(s.pending, t)
	slices.SortStableFunc(s.pending, func(a, b *task) int { return a.number - b.number })
	s.notifyLocked()
	s.broadcastStatusLocked()
	s.poke()
	return enc(http.StatusOK, map[string]any{"prompt_id": id, "number": t.number, "node_errors": map[string]any{}})
}

func (s *Server) queueRemainingLocked() int {
	n := len(s.pending)
	if s.running != nil {
		n++
	}
	return n
}

func (s *Server) handleQueueInfo(w http.ResponseWriter, _ *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{"exec_info": map[string]any{"queue_remaining": s.queueRemainingLocked()}})
}

func (t *task) queueEntry() []any {
	return []any{t.number, t.id, t.raw, t.extra, t.outputs}
}

// handleQueue is server.py get_queue.
func (s *Server) handleQueue(w http.ResponseWriter, _ *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	running, pending := []any{}, []any{}
	if s.running != nil {
		running = append(running, s.running.queueEntry())
	}
	for _, t := range s.pending {
		pending = append(pending, t.queueEntry())
	}
	writeJSON(w, http.StatusOK, map[string]any{"queue_running": running, "queue_pending": pending})
}

// handleQueuePost is server.py post_queue: clear and delete touch pending
// prompts only.
func (s *Server) handleQueuePost(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Clear  bool     `json:"clear"`
		Delete []string `json:"delete"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		http.Error(w, "500 Internal Server Error", http.StatusInternalServerError)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pending = slices.DeleteFunc(s.pending, func(t *task) bool {
		if req.Clear || slices.Contains(req.Delete, t.id) {
			t.status = Deleted
			return true
		}
		return false
	})
	s.notifyLocked()
	s.broadcastStatusLocked()
	w.WriteHeader(http.StatusOK)
}

// handleInterrupt is server.py post_interrupt: a prompt_id interrupts only
// when that prompt runs; no body or no prompt_id interrupts whatever runs.
func (s *Server) handleInterrupt(w http.ResponseWriter, r *http.Request) {
	var req struct {
		PromptID string `json:"prompt_id"`
	}
	_ = json.NewDecoder(r.Body).Decode(&req)
	s.mu.Lock()
	defer s.mu.Unlock()
	rec := Interrupt{Requested: req.PromptID}
	if s.running != nil && (req.PromptID == "" || req.PromptID == s.running.id) {
		rec.Stopped = s.running.id
		select {
		case s.interrupt <- struct{}{}:
		default:
		}
	}
	s.interrupts = append(s.interrupts, rec)
	s.notifyLocked()
	w.WriteHeader(http.StatusOK)
}

// handleHistory is server.py get_history: {prompt_id: entry}; {} for an
// unknown or unfinished prompt.
//
// GET /history?max_items=N keeps the N most recent entries (execution.py
// PromptQueue.get_history).
func (s *Server) handleHistory(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var done []string
	for _, id := range s.history {
		if want := r.PathValue("id"); want == "" || want == id {
			done = append(done, id)
		}
	}
	if n, err := strconv.Atoi(r.URL.Query().Get("max_items")); err == nil && n >= 0 && n < len(done) {
		done = done[len(done)-n:]
	}
	out := map[string]any{}
	for _, id := range done {
		t := s.tasks[id]
		statusStr := "success"
		if t.status != Success {
			statusStr = "error"
		}
		out[id] = map[string]any{
			"prompt":  t.queueEntry(),
			"outputs": t.histOutputs,
			"status":  map[string]any{"status_str": statusStr, "completed": t.status == Success, "messages": t.messages},
			"meta":    map[string]any{},
		}
	}
	writeJSON(w, http.StatusOK, out)
}

func fileKey(typ, subfolder, name string) string { return typ + "/" + subfolder + "/" + name }

// handleView is server.py view_image: the file of that type, subfolder and
// name, or 404.
func (s *Server) handleView(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	name, sub, typ := q.Get("filename"), q.Get("subfolder"), q.Get("type")
	if typ == "" {
		typ = "output"
	}
	if name == "" || strings.Contains(name, "..") || strings.Contains(sub, "..") {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	data, ok := s.files[fileKey(typ, sub, name)]
	s.mu.Unlock()
	if !ok {
		w.WriteHeader(http.StatusNotFound)
		return
	}
	w.Header().Set("Content-Type", "image/png")
	w.Header().Set("Content-Disposition", fmt.Sprintf("filename=%q", name))
	_, _ = w.Write(data)
}

// handleUpload is server.py upload_image: multipart "image" (required),
// "type" (input, temp or output; default input), "subfolder", "overwrite";
// an existing name without overwrite gets " (1)" and so on.
func (s *Server) handleUpload(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 64<<20)
	if err := r.ParseMultipartForm(64 << 20); err != nil {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	f, fh, err := r.FormFile("image")
	if err != nil {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	defer f.Close()
	data, err := io.ReadAll(f)
	if err != nil || fh.Filename == "" {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	typ := r.FormValue("type")
	if typ == "" {
		typ = "input"
	}
	sub := r.FormValue("subfolder")
	name := path.Base(fh.Filename)
	overwrite := r.FormValue("overwrite") == "true" || r.FormValue("overwrite") == "1"
	s.mu.Lock()
	defer s.mu.Unlock()
	if !overwrite {
		ext := path.Ext(name)
		base := strings.TrimSuffix(name, ext)
		for i := 1; ; i++ {
			if _, ok := s.files[fileKey(typ, sub, name)]; !ok {
				break
			}
			name = fmt.Sprintf("%s (%d)%s", base, i, ext)
		}
	}
	s.files[fileKey(typ, sub, name)] = data
	writeJSON(w, http.StatusOK, map[string]any{"name": name, "subfolder": sub, "type": typ})
}

// inputFiles lists the input folder as LoadImage's combo does.
func (s *Server) inputFiles() []string {
	var out []string
	for k := range s.files {
		if rest, ok := strings.CutPrefix(k, "input/"); ok {
			sub, name, _ := strings.Cut(rest, "/")
			if sub != "" {
				name = sub + "/" + name
			}
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

// handleModels is server.py's model_file_manager routes: GET /models lists
// folder names, GET /models/{folder} its files, 404 for an unknown folder.
func (s *Server) handleModels(w http.ResponseWriter, r *http.Request) {
	folders := map[string][]string{
		"checkpoints": s.cfg.Checkpoints, "loras": s.cfg.LoRAs, "upscale_models": s.cfg.UpscaleModels,
		"vae": {}, "embeddings": {}, "controlnet": {},
	}
	f := r.PathValue("folder")
	if f == "" {
		writeJSON(w, http.StatusOK, slices.Sorted(maps.Keys(folders)))
		return
	}
	list, ok := folders[f]
	if !ok {
		w.WriteHeader(http.StatusNotFound)
		return
	}
	writeJSON(w, http.StatusOK, list)
}

// handleObjectInfo is server.py node_info for the fake's classes: combos
// as [[choices], {}], other inputs as [type, {min, max}].
func (s *Server) handleObjectInfo(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]any{}
	for name, spec := range classes {
		if c := r.PathValue("class"); c != "" && c != name {
			continue
		}
		req := map[string]any{}
		order := []string{}
		for _, is := range spec.inputs {
			order = append(order, is.name)
			switch is.typ {
			case "COMBO":
				req[is.name] = []any{is.choices(s), map[string]any{}}
			case "INT", "FLOAT":
				req[is.name] = []any{is.typ, map[string]any{"min": is.min, "max": is.max}}
			default:
				req[is.name] = []any{is.typ}
			}
		}
		outs := spec.outputs
		if outs == nil {
			outs = []string{}
		}
		out[name] = map[string]any{
			"input": map[string]any{"required": req}, "input_order": map[string]any{"required": order},
			"output": outs, "output_name": outs, "name": name, "display_name": name, "output_node": spec.output,
			"category": "fake",
		}
	}
	writeJSON(w, http.StatusOK, out)
}

// handleSystemStats is server.py system_stats.
func (s *Server) handleSystemStats(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{
		"system": map[string]any{"os": "posix", "comfyui_version": "0.3.0-comfytest", "python_version": "3.12", "embedded_python": false, "argv": []string{"main.py"}},
		"devices": []any{map[string]any{"name": "cuda:0 fake", "type": "cuda", "index": 0,
			"vram_total": 24 << 30, "vram_free": 20 << 30, "torch_vram_total": 24 << 30, "torch_vram_free": 20 << 30}},
	})
}

// socket is one websocket client. Writes are serialised and bounded so a
// stuck client cannot stall the executor.
type socket struct {
	conn *websocket.Conn
	wmu  sync.Mutex
	once sync.Once
}

func (so *socket) write(typ int, data []byte) {
	so.wmu.Lock()
	defer so.wmu.Unlock()
	_ = so.conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if err := so.conn.WriteMessage(typ, data); err != nil {
		so.close()
	}
}

func (so *socket) close() { so.once.Do(func() { _ = so.conn.Close() }) }

var upgrader = websocket.Upgrader{CheckOrigin: func(*http.Request) bool { return true }}

// handleWS is server.py websocket_handler: register under clientId (a new
// id when none; a reconnect replaces the old socket), send status, and the
// current node when this client's prompt runs.
func (s *Server) handleWS(w http.ResponseWriter, r *http.Request) {
	conn, err := upgrader.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	sid := r.URL.Query().Get("clientId")
	if sid == "" {
		sid = newID()
	}
	so := &socket{conn: conn}
	s.mu.Lock()
	select {
	case <-s.stop:
		s.mu.Unlock()
		so.close()
		return
	default:
	}
	s.sockets[sid] = so
	s.sendLocked(sid, "status", map[string]any{"status": map[string]any{"exec_info": map[string]any{"queue_remaining": s.queueRemainingLocked()}}, "sid": sid})
	if s.running != nil && s.running.clientID == sid && s.running.status == Running {
		s.sendLocked(sid, "executing", map[string]any{"node": s.lastNode})
	}
	s.mu.Unlock()
	for {
		if _, _, err := conn.ReadMessage(); err != nil {
			break
		}
	}
	so.close()
	s.mu.Lock()
	if s.sockets[sid] == so {
		delete(s.sockets, sid)
	}
	s.mu.Unlock()
}

// sendLocked sends a JSON message to sid, or to everyone when sid is ""
// (server.py send_json with sid None broadcasts).
func (s *Server) sendLocked(sid, typ string, data any) {
	b, _ := json.Marshal(map[string]any{"type": typ, "data": data})
	s.sendRawLocked(sid, websocket.TextMessage, b)
}

func (s *Server) sendRawLocked(sid string, mt int, b []byte) {
	if sid == "" {
		for _, so := range s.sockets {
			so.write(mt, b)
		}
		return
	}
	if so := s.sockets[sid]; so != nil {
		so.write(mt, b)
	}
}

func (s *Server) broadcastStatusLocked() {
	s.sendLocked("", "status", map[string]any{"status": map[string]any{"exec_info": map[string]any{"queue_remaining": s.queueRemainingLocked()}}})
}
