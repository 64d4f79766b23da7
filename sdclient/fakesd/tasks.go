package fakesd

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"slices"
	"time"
)

// task is one generation request, named by its task id as in
// modules/progress.py: the request's force_task_id, or one the server makes
// up ("task(txt2img-XXXXXXX)", progress.create_task_id).
type task struct {
	id   string
	seq  int    // arrival order
	kind string // "txt2img" or "img2img"
	req  Txt2ImgRequest
	// init is img2img's decoded source picture.
	init *initImage

	done chan struct{} // closed when the job ended, ans and err set
	ans  *txt2imgAnswer
	err  error

	// Written under Server.mu.
	state       string // "queued", "active", "completed", "failed"
	interrupted bool
	stepsDone   int
	model       string
	sampler     string
	scheduler   string
}

// TaskInfo is what a test can read about a task.
type TaskInfo struct {
	ID string
	// Kind is "txt2img" or "img2img".
	Kind string
	// State is "queued", "active", "completed" or "failed" (the server
	// closed under it).
	State string
	// Interrupted is true when an interrupt stopped the task.
	Interrupted bool
	// StepsDone is the number of sampling steps the task ran.
	StepsDone int
	// Prompt is the prompt as sent, LoRA tags included.
	Prompt string
	// Model, Sampler and Scheduler are what the task ran with, after the
	// server's silent fallbacks.
	Model, Sampler, Scheduler string
	// DistilledCFGScale is Forge's distilled_cfg_scale as sent.
	DistilledCFGScale float64
}

// Tasks returns every task the server has seen, in arrival order.
func (s *Server) Tasks() []TaskInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]TaskInfo, 0, len(s.tasks))
	for _, t := range s.tasks {
		out = append(out, t.info())
	}
	slices.SortFunc(out, func(a, b TaskInfo) int { return s.tasks[a.ID].seq - s.tasks[b.ID].seq })
	return out
}

// Task returns one task by id.
func (s *Server) Task(id string) (TaskInfo, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.tasks[id]
	if !ok {
		return TaskInfo{}, false
	}
	return t.info(), true
}

func (t *task) info() TaskInfo {
	return TaskInfo{ID: t.id, Kind: t.kind, State: t.state, Interrupted: t.interrupted, StepsDone: t.stepsDone,
		Prompt: t.req.Prompt, Model: t.model, Sampler: t.sampler, Scheduler: t.scheduler,
		DistilledCFGScale: t.req.DistilledCFGScale}
}

// newTaskID is progress.create_task_id: seven random upper-case letters and
// digits.
func newTaskID(kind string) string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	b := make([]byte, 7)
	for i := range b {
		b[i] = alphabet[rand.IntN(len(alphabet))]
	}
	return fmt.Sprintf("task(%s-%s)", kind, b)
}

// addTask is progress.add_task_to_queue, called before the queue lock is
// taken. Caller holds s.mu.
func (s *Server) addTask(t *task) {
	s.seq++
	t.seq, t.state = s.seq, "queued"
	s.tasks[t.id] = t
	s.pending = append(s.pending, t.id)
	s.notify()
}

// startTask is progress.start_task: the task becomes current and leaves the
// pending list. Caller holds s.mu.
func (s *Server) startTask(t *task) {
	s.current = t.id
	s.pending = slices.DeleteFunc(s.pending, func(id string) bool { return id == t.id })
	t.state = "active"
}

// finishTask is progress.finish_task, which api.py calls only when
// processing returned (an exception skips it, leaving the task current).
// Caller holds s.mu.
func (s *Server) finishTask(t *task) {
	if s.current == t.id {
		s.current = ""
	}
	s.finished = append(s.finished, t.id)
	if len(s.finished) > 16 {
		s.finished = s.finished[1:]
	}
	t.state = "completed"
}

// internalProgressRequest is progress.ProgressRequest.
type internalProgressRequest struct {
	IDTask        *string `json:"id_task"`
	IDLivePreview int     `json:"id_live_preview"`
	LivePreview   bool    `json:"live_preview"`
}

// internalProgress serves POST /internal/progress as modules/progress.py's
// progressapi (A1111 1.9/1.10, Forge): the state of one task by id. A task
// that is not current gets only active, queued, completed and a textinfo;
// the current one gets progress (no 0.01 floor here, unlike the server-wide
// /sdapi/v1/progress; 0 while job_count is -1), eta (null while progress
// is 0) and, when the caller's id_live_preview is not the latest, the live
// preview as a data: URL.
func (s *Server) internalProgress(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<16))
	if err != nil {
		return
	}
	req := internalProgressRequest{IDLivePreview: -1, LivePreview: true}
	if err := json.Unmarshal(body, &req); err != nil {
		writeValidation(w, []validationError{jsonError(err)})
		return
	}
	id := ""
	if req.IDTask != nil {
		id = *req.IDTask
	}
	s.mu.Lock()
	active := id != "" && id == s.current
	queued := slices.Contains(s.pending, id)
	completed := slices.Contains(s.finished, id)
	st := s.state
	textinfo := "Waiting..."
	if queued {
		textinfo = fmt.Sprintf("In queue: %d/%d", slices.Index(s.pending, id)+1, len(s.pending))
	}
	s.mu.Unlock()
	if !active {
		writeJSON(w, http.StatusOK, map[string]any{
			"active": false, "queued": queued, "completed": completed, "progress": nil, "eta": nil,
			"live_preview": nil, "id_live_preview": -1, "textinfo": textinfo,
		})
		return
	}
	progress := 0.0
	if st.jobCount > 0 {
		progress += float64(st.jobNo) / float64(st.jobCount)
		if st.steps > 0 {
			progress += 1 / float64(st.jobCount) * float64(st.step) / float64(st.steps)
		}
	}
	progress = min(progress, 1)
	var eta any
	if progress > 0 {
		elapsed := time.Since(st.started).Seconds()
		eta = elapsed/progress - elapsed
	}
	var preview any
	idPreview := req.IDLivePreview
	if s.cfg.PreviewEvery > 0 && req.LivePreview && st.idLivePreview != req.IDLivePreview && st.currentImage != nil {
		preview = "data:image/png;base64," + base64.StdEncoding.EncodeToString(st.currentImage)
		idPreview = st.idLivePreview
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"active": true, "queued": queued, "completed": completed, "progress": progress, "eta": eta,
		"live_preview": preview, "id_live_preview": idPreview, "textinfo": nil,
	})
}

// Submit queues a txt2img as another client of the server would (its web
// UI, another bot): under the same queue lock, in arrival order, with
// A1111's defaults for zero Width, Height, Steps, CFGScale, BatchSize and
// NIter, and a made-up task id when ForceTaskID is empty. It returns the
// task id and a channel closed when the task ended; read the outcome with
// Task.
func (s *Server) Submit(req Txt2ImgRequest) (string, <-chan struct{}) {
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	def(&req.Width, 512)
	def(&req.Height, 512)
	def(&req.Steps, 50)
	def(&req.BatchSize, 1)
	def(&req.NIter, 1)
	if req.CFGScale == 0 {
		req.CFGScale = 7
	}
	req.SendImages = true
	t := &task{id: req.ForceTaskID, kind: "txt2img", req: req, done: make(chan struct{})}
	if t.id == "" {
		t.id = newTaskID("txt2img")
	}
	s.mu.Lock()
	s.addTask(t)
	s.jobs.Add(1)
	s.mu.Unlock()
	go s.runTask(t)
	return t.id, t.done
}
