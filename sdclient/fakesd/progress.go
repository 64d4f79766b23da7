package fakesd

import (
	"encoding/base64"
	"net/http"
	"strconv"
	"time"
)

// jobState mirrors the fields of A1111's shared.state that progress reads
// (modules/shared_state.py State).
type jobState struct {
	job string
	// jobCount is -1 from begin until the job count is known (while a
	// checkpoint loads), then n_iter; 0 when idle.
	jobCount, jobNo int
	// step counts the sampling steps done in the current iteration, of
	// steps. Like A1111, begin resets step but not steps.
	step, steps  int
	timestamp    string
	started      time.Time
	interrupted  bool
	skipped      bool
	currentImage []byte // the latest preview, PNG
	// idLivePreview counts previews since begin (State.id_live_preview).
	idLivePreview int
}

// begin starts a job, as State.begin does.
func (st *jobState) begin(job string, now time.Time) {
	*st = jobState{
		job: job, jobCount: -1, steps: st.steps,
		timestamp: now.Format("20060102150405"), started: now,
	}
}

// end marks the server idle, as State.end does; the other fields keep their
// last values, and progress ignores them.
func (st *jobState) end() {
	st.job, st.jobCount = "", 0
}

// progress is A1111's progressapi formula (modules/api/api.py): a 0.01 floor, plus the share of
// finished iterations, plus the current iteration's share of steps; the ETA
// extrapolates the time since begin.
func (st *jobState) progress(now time.Time) (progress, etaRelative float64) {
	if st.jobCount == 0 {
		return 0, 0
	}
	progress = 0.01
	if st.jobCount > 0 {
		progress += float64(st.jobNo) / float64(st.jobCount)
	}
	if st.steps > 0 {
		progress += 1 / float64(st.jobCount) * float64(st.step) / float64(st.steps)
	}
	if progress > 0 {
		elapsed := now.Sub(st.started).Seconds()
		etaRelative = elapsed/progress - elapsed
	}
	return min(progress, 1), etaRelative
}

func (st *jobState) dict() map[string]any {
	return map[string]any{
		"skipped": st.skipped, "interrupted": st.interrupted, "job": st.job,
		"job_count": st.jobCount, "job_timestamp": st.timestamp, "job_no": st.jobNo,
		"sampling_step": st.step, "sampling_steps": st.steps,
	}
}

// progress serves GET /sdapi/v1/progress without the queue lock.
func (s *Server) progress(w http.ResponseWriter, r *http.Request) {
	skip, _ := strconv.ParseBool(r.URL.Query().Get("skip_current_image"))
	s.mu.Lock()
	st := s.state
	s.mu.Unlock()
	p, eta := st.progress(time.Now())
	var current any
	if st.jobCount != 0 && !skip && st.currentImage != nil {
		current = base64.StdEncoding.EncodeToString(st.currentImage)
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"progress": p, "eta_relative": eta, "state": st.dict(),
		"current_image": current, "textinfo": nil,
	})
}

// interrupt serves POST /sdapi/v1/interrupt (api.py interruptapi, which
// calls State.interrupt in modules/shared_state.py): the running job stops
// at its next step. As in A1111 the flag is set even when idle, and the next
// job's begin clears it.
func (s *Server) interrupt(w http.ResponseWriter, _ *http.Request) {
	s.mu.Lock()
	s.state.interrupted = true
	s.interrupts++
	close(s.interrupted)
	s.interrupted = make(chan struct{})
	s.notify()
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{})
}
