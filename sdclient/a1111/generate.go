package a1111

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/easelbot/easel/sdclient"
)

// genRequest is the part of A1111's StableDiffusionTxt2ImgProcessingAPI and
// StableDiffusionImg2ImgProcessingAPI (modules/api/models.py) Easel sets;
// the server fills the rest with its defaults.
type genRequest struct {
	Prompt          string  `json:"prompt"`
	NegativePrompt  string  `json:"negative_prompt"`
	Width           int     `json:"width"`
	Height          int     `json:"height"`
	Steps           int     `json:"steps"`
	CFGScale        float64 `json:"cfg_scale"`
	Seed            int64   `json:"seed"`
	Subseed         int64   `json:"subseed"`
	SubseedStrength float64 `json:"subseed_strength"`
	SamplerName     string  `json:"sampler_name,omitempty"`
	// Scheduler is A1111 1.9+'s own field; older servers ignore it.
	Scheduler  string `json:"scheduler,omitempty"`
	BatchSize  int    `json:"batch_size"`
	NIter      int    `json:"n_iter"`
	SendImages bool   `json:"send_images"`
	SaveImages bool   `json:"save_images"`
	// ForceTaskID names our task for /internal/progress.
	ForceTaskID      string         `json:"force_task_id"`
	OverrideSettings map[string]any `json:"override_settings,omitempty"`
	// RestoreAfterwards false keeps an overridden checkpoint loaded
	// (processing.py reloads the previous one otherwise: a full reload).
	RestoreAfterwards *bool `json:"override_settings_restore_afterwards,omitempty"`
	// DistilledCFGScale is Forge's Flux guidance.
	DistilledCFGScale float64 `json:"distilled_cfg_scale,omitempty"`
	// InitImages and DenoisingStrength make it img2img.
	InitImages        []string `json:"init_images,omitempty"`
	DenoisingStrength *float64 `json:"denoising_strength,omitempty"`
}

// defaultDenoising is A1111's img2img default denoising_strength.
const defaultDenoising = 0.75

func newGenRequest(req sdclient.Request, r resolved, taskID string) genRequest {
	g := genRequest{
		Prompt: withLoRAs(req.Prompt, r.loras, req.LoRAs), NegativePrompt: req.NegativePrompt,
		Width: req.Width, Height: req.Height, Steps: req.Steps, CFGScale: req.CFGScale,
		Seed: req.Seed, Subseed: -1, SubseedStrength: req.SubseedStrength,
		SamplerName: r.sampler, Scheduler: r.scheduler,
		BatchSize: max(req.Count, 1), NIter: 1,
		// The images come back in the answer; nothing piles up in the
		// server's outputs folder (and no grid is made).
		SendImages: true, SaveImages: false,
		ForceTaskID:       taskID,
		DistilledCFGScale: req.DistilledCFGScale,
	}
	if r.modelTitle != "" {
		restore := false
		g.OverrideSettings = map[string]any{"sd_model_checkpoint": r.modelTitle}
		g.RestoreAfterwards = &restore
	}
	if req.InitImage != nil {
		g.InitImages = []string{base64.StdEncoding.EncodeToString(req.InitImage)}
		d := req.DenoisingStrength
		if d <= 0 {
			d = defaultDenoising
		}
		g.DenoisingStrength = &d
	}
	return g
}

// withLoRAs appends a <lora:name:weight> tag per LoRA, the prompt syntax of
// A1111's built-in Lora extension.
func withLoRAs(prompt string, names []string, loras []sdclient.LoRA) string {
	var b strings.Builder
	b.WriteString(prompt)
	for i, name := range names {
		fmt.Fprintf(&b, " <lora:%s:%s>", name, strconv.FormatFloat(loras[i].Weight, 'g', -1, 64))
	}
	return b.String()
}

// newTaskID makes a task id no other client uses.
func newTaskID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return "easel-" + hex.EncodeToString(b[:])
}

// Generate runs req with POST /sdapi/v1/txt2img (img2img when
// req.InitImage is set) under a task id of its own, and polls POST
// /internal/progress for that task every Config.ProgressInterval
// meanwhile: progress and previews are our task's only, never another
// client's. progress is called from Generate's own goroutine, so never
// concurrently and never after Generate returns, and only when the
// progress or the preview changed.
//
// The model, sampler, scheduler and LoRAs are checked against the
// server's lists first; an unknown one is an *sdclient.PermanentError
// naming the field and the valid choices. A model override stays loaded
// afterwards.
//
// The phases are bounded by Config.Timeouts (see the package doc); a
// timeout abandons the request and returns an error wrapping
// sdclient.ErrStalled. When ctx ends, Generate returns ctx's error at once;
// our task is interrupted if it is running, and if it is still queued it
// is watched and interrupted the moment it starts. Another client's task
// is never interrupted.
func (c *Client) Generate(ctx context.Context, req sdclient.Request, progress func(sdclient.Progress)) (*sdclient.Result, error) {
	kind, route := "txt2img", pathTxt2Img
	if req.InitImage != nil {
		kind, route = "img2img", pathImg2Img
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("a1111: %s: %w", kind, err)
	}
	if req.InitImage != nil && sdclient.SniffFormat(req.InitImage) == "" {
		return nil, &sdclient.PermanentError{Reason: "init_image: not a PNG, JPEG or WebP image"}
	}
	r, err := c.validate(ctx, req)
	if err != nil {
		return nil, err
	}
	taskID := newTaskID()
	body, err := json.Marshal(newGenRequest(req, r, taskID))
	if err != nil {
		return nil, fmt.Errorf("a1111: %s: %w", kind, err)
	}

	// The request outlives ctx: the phases below bound it, and abandoning
	// it is a decision taken here.
	genCtx, cancelGen := context.WithCancel(context.WithoutCancel(ctx))
	type answer struct {
		raw []byte
		err error
	}
	done := make(chan answer, 1)
	go func() {
		raw, err := c.call(genCtx, http.MethodPost, route, body)
		done <- answer{raw, err}
	}()
	answered := false
	defer func() {
		cancelGen()
		if !answered {
			<-done
		}
	}()

	w := newWatch(c.cfg.Timeouts, req.Steps, progress != nil, time.Now())
	pollCtx, cancelPolls := context.WithCancel(context.WithoutCancel(ctx))
	polls := make(chan pollResult, 1)
	inFlight := false
	defer func() {
		cancelPolls()
		if inFlight {
			<-polls
		}
	}()
	ticker := time.NewTicker(c.cfg.ProgressInterval)
	defer ticker.Stop()
	for {
		var tick <-chan time.Time
		if !inFlight && !w.noTaskProgress {
			tick = ticker.C
		}
		select {
		case a := <-done:
			answered = true
			if errors.Is(a.err, sdclient.ErrUnavailable) && !w.noTaskProgress {
				// A proxy that gave up (504) or a dropped connection may
				// leave our task queued or running on the server.
				c.abandon(ctx, taskID)
			}
			if a.err != nil {
				return nil, a.err
			}
			res, err := decodeGeneration(a.raw, req.Count, req.Seed, req.SubseedStrength > 0)
			if err != nil {
				return nil, fmt.Errorf("a1111: %s: %w", kind, err)
			}
			return res, nil
		case <-ctx.Done():
			c.abandon(ctx, taskID)
			return nil, fmt.Errorf("a1111: %s: %w", kind, ctx.Err())
		case <-w.deadline():
			c.abandon(ctx, taskID)
			return nil, fmt.Errorf("a1111: %s: %w: %s", kind, sdclient.ErrStalled, w.overall())
		case <-tick:
			inFlight = true
			previewID, serverWide := w.previewID, !w.active
			go func() { polls <- c.pollTask(pollCtx, taskID, previewID, progress != nil, serverWide) }()
		case p := <-polls:
			inFlight = false
			ev, stall := w.update(p, time.Now())
			if ev != nil && progress != nil {
				progress(*ev)
			}
			if stall != "" {
				c.abandon(ctx, taskID)
				return nil, fmt.Errorf("a1111: %s: %w: %s", kind, sdclient.ErrStalled, stall)
			}
		}
	}
}

// abandon gives up on our task without touching anyone else's. It asks
// /internal/progress where the task is: running, it is interrupted now;
// queued (or not yet seen), a watcher keeps asking and interrupts it the
// moment it starts, for at most Queue + ModelLoad + Stall (and only while
// the server lists it as queued, give or take Stall); finished, nothing is left
// to do. The interrupt is server-wide (api.py interruptapi), so it is only
// ever sent right after the server said our task is the current one; a
// task that starts later clears the flag in State.begin, so a late
// interrupt cannot stop the next client's task either.
func (c *Client) abandon(ctx context.Context, taskID string) {
	ctx = context.WithoutCancel(ctx)
	if done, _ := c.reapOnce(ctx, taskID); done {
		return
	}
	c.reapers.Add(1)
	go func() {
		defer c.reapers.Done()
		rctx, cancel := context.WithTimeout(c.reapCtx, c.cfg.Timeouts.Queue+c.cfg.Timeouts.ModelLoad+c.cfg.Timeouts.Stall)
		defer cancel()
		t := time.NewTicker(c.cfg.ProgressInterval)
		defer t.Stop()
		lastQueued := time.Now()
		for {
			select {
			case <-rctx.Done():
				return
			case <-t.C:
				done, queued := c.reapOnce(rctx, taskID)
				if done {
					return
				}
				if queued {
					lastQueued = time.Now()
				} else if time.Since(lastQueued) > c.cfg.Timeouts.Stall {
					// Not in the server's queue for Stall (never
					// registered, or the server is gone): nothing of ours
					// will start.
					return
				}
			}
		}
	}()
}

// reapOnce interrupts our task if it runs now. done reports whether
// nothing is left to watch (interrupted, finished, or the server cannot
// say); queued whether the server said our task waits in its queue.
func (c *Client) reapOnce(ctx context.Context, taskID string) (done, queued bool) {
	p := c.pollTask(ctx, taskID, -1, false, false)
	switch {
	case p.missing:
		return true, false // no per-task progress: never interrupt blindly
	case p.err != nil:
		return false, false
	case p.ans.Active:
		_ = c.interrupt(ctx) // a failure leaves a task that runs in full; nothing better to do
		return true, false
	case p.ans.Completed:
		return true, false
	}
	return false, p.ans.Queued
}

// pollResult is one progress poll's outcome.
type pollResult struct {
	ans internalProgress
	err error
	// missing is true when the server has no /internal/progress.
	missing bool
	// serverIdle is the server-wide progress's verdict (job_count 0) when
	// it was asked; nil otherwise.
	serverIdle *bool
}

// pollTask asks POST /internal/progress about our task and, when
// serverWide, GET /sdapi/v1/progress whether the server runs anything at
// all (a queued task behind an idle server is stuck). Server-wide progress
// is only ever used for that: it cannot tell whose task runs.
func (c *Client) pollTask(ctx context.Context, taskID string, previewID int, preview, serverWide bool) pollResult {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeouts.Connect)
	defer cancel()
	body, _ := json.Marshal(map[string]any{"id_task": taskID, "id_live_preview": previewID, "live_preview": preview})
	raw, err := c.call(ctx, http.MethodPost, pathTaskProgress, body)
	var he *sdclient.HTTPError
	if errors.As(err, &he) && he.Status == http.StatusNotFound {
		return pollResult{missing: true, err: err}
	}
	if err != nil {
		return pollResult{err: err}
	}
	var p pollResult
	if p.ans, err = parseInternalProgress(raw); err != nil {
		return pollResult{err: fmt.Errorf("a1111: POST %s: %w", pathTaskProgress, err)}
	}
	if serverWide && !p.ans.Active {
		if raw, err := c.call(ctx, http.MethodGet, pathProgress+"?skip_current_image=true", nil); err == nil {
			if idle, ok := parseServerIdle(raw); ok {
				p.serverIdle = &idle
			}
		}
	}
	return p
}

// watch follows our task through its phases and decides when it stalled.
type watch struct {
	t              sdclient.Timeouts
	steps          int
	wantPreview    bool
	submitted      time.Time
	lastAnswer     time.Time // last successful poll
	active         bool
	activeAt       time.Time
	fraction       float64
	lastAdvance    time.Time
	completedAt    time.Time
	idleSince      time.Time
	previewID      int
	noTaskProgress bool // the server has no /internal/progress
	overallTimer   *time.Timer
}

func newWatch(t sdclient.Timeouts, steps int, wantPreview bool, now time.Time) *watch {
	return &watch{t: t, steps: steps, wantPreview: wantPreview, submitted: now, lastAnswer: now, previewID: -1}
}

// deadline fires, for a server without /internal/progress, when the whole
// generation outlived Queue + ModelLoad + Stall; nil otherwise.
func (w *watch) deadline() <-chan time.Time {
	if w.overallTimer == nil {
		return nil
	}
	return w.overallTimer.C
}

func (w *watch) overall() string {
	return fmt.Sprintf("no answer within %s (queue + model_load + stall timeouts; the server has no per-task progress)",
		w.t.Queue+w.t.ModelLoad+w.t.Stall)
}

// update takes one poll's result and returns the progress report to make
// (nil if nothing changed) and, if the task stalled, why.
func (w *watch) update(p pollResult, now time.Time) (*sdclient.Progress, string) {
	if p.missing {
		// Servers before /internal/progress: no progress, no safe cancel;
		// one overall bound.
		w.noTaskProgress = true
		w.overallTimer = time.NewTimer(w.t.Queue + w.t.ModelLoad + w.t.Stall - now.Sub(w.submitted))
		return nil, ""
	}
	if p.err != nil {
		if now.Sub(w.lastAnswer) > w.t.Stall {
			return nil, fmt.Sprintf("no answer to progress polls for %s (stall timeout): %v", w.t.Stall, p.err)
		}
		return nil, ""
	}
	w.lastAnswer = now
	a := p.ans
	switch {
	case a.Active:
		if !w.active {
			w.active, w.activeAt, w.lastAdvance = true, now, now
		}
		var ev *sdclient.Progress
		if a.Progress > w.fraction {
			w.fraction, w.lastAdvance = a.Progress, now
			ev = w.report(a)
		}
		if a.LivePreview != "" && a.IDLivePreview != w.previewID {
			w.previewID = a.IDLivePreview
			if img, err := decodeImage(a.LivePreview); err == nil && w.wantPreview {
				if ev == nil {
					ev = w.report(a)
				}
				ev.Preview = &img
			}
		}
		switch {
		case w.fraction == 0 && now.Sub(w.activeAt) > w.t.ModelLoad:
			return ev, fmt.Sprintf("no sampling step %s after our task started (model_load timeout)", w.t.ModelLoad)
		case w.fraction >= 1 && now.Sub(w.lastAdvance) > w.t.ModelLoad:
			// Sampling is done; decoding and encoding the images is left,
			// bounded like the load at the start.
			return ev, fmt.Sprintf("no answer %s after the last step (model_load timeout)", w.t.ModelLoad)
		case w.fraction > 0 && w.fraction < 1 && now.Sub(w.lastAdvance) > w.t.Stall:
			return ev, fmt.Sprintf("no step advance for %s (stall timeout)", w.t.Stall)
		}
		return ev, ""
	case a.Completed:
		if w.completedAt.IsZero() {
			w.completedAt = now
		}
		if now.Sub(w.completedAt) > w.t.Stall {
			return nil, fmt.Sprintf("our task finished but its answer did not come within %s (stall timeout)", w.t.Stall)
		}
		return nil, ""
	}
	// Queued, or not seen yet.
	w.active = false
	if now.Sub(w.submitted) > w.t.Queue {
		return nil, fmt.Sprintf("our task did not start within %s (queue timeout)", w.t.Queue)
	}
	if p.serverIdle != nil && *p.serverIdle {
		if w.idleSince.IsZero() {
			w.idleSince = now
		}
		if now.Sub(w.idleSince) > w.t.Stall {
			return nil, fmt.Sprintf("the server runs nothing, yet our task has not started for %s (stall timeout)", w.t.Stall)
		}
	} else {
		w.idleSince = time.Time{}
	}
	return nil, ""
}

// report makes a progress report from an active task's answer. The
// per-task progress has no step numbers: the step is read from the
// fraction of the requested steps.
func (w *watch) report(a internalProgress) *sdclient.Progress {
	steps := max(w.steps, 1)
	return &sdclient.Progress{
		Step:     min(int(math.Floor(a.Progress*float64(steps)+1e-9)), steps),
		Steps:    steps,
		Fraction: a.Progress,
		ETA:      time.Duration(clamp(a.ETA, 0, (24*time.Hour).Seconds()) * float64(time.Second)),
	}
}
