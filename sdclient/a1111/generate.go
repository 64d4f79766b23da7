package a1111

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/easelbot/easel/sdclient"
)

// txt2imgRequest is the part of A1111's StableDiffusionTxt2ImgProcessingAPI
// Easel sets; the server fills the rest with its defaults.
type txt2imgRequest struct {
	Prompt           string         `json:"prompt"`
	NegativePrompt   string         `json:"negative_prompt"`
	Width            int            `json:"width"`
	Height           int            `json:"height"`
	Steps            int            `json:"steps"`
	CFGScale         float64        `json:"cfg_scale"`
	Seed             int64          `json:"seed"`
	Subseed          int64          `json:"subseed"`
	SubseedStrength  float64        `json:"subseed_strength"`
	SamplerName      string         `json:"sampler_name,omitempty"`
	BatchSize        int            `json:"batch_size"`
	NIter            int            `json:"n_iter"`
	SendImages       bool           `json:"send_images"`
	SaveImages       bool           `json:"save_images"`
	OverrideSettings map[string]any `json:"override_settings,omitempty"`
}

func newTxt2ImgRequest(req sdclient.Request) txt2imgRequest {
	r := txt2imgRequest{
		Prompt: req.Prompt, NegativePrompt: req.NegativePrompt,
		Width: req.Width, Height: req.Height, Steps: req.Steps, CFGScale: req.CFGScale,
		Seed: req.Seed, Subseed: -1, SubseedStrength: req.SubseedStrength,
		SamplerName: req.Sampler,
		BatchSize:   max(req.Count, 1), NIter: 1,
		// The images come back in the answer; nothing piles up in the
		// server's outputs folder (and no grid is made).
		SendImages: true, SaveImages: false,
	}
	if req.Model != "" {
		r.OverrideSettings = map[string]any{"sd_model_checkpoint": req.Model}
	}
	return r
}

// Generate runs req with POST /sdapi/v1/txt2img and, when progress is not
// nil, polls /sdapi/v1/progress every Config.ProgressInterval meanwhile.
// progress is called from Generate's own goroutine, so never concurrently
// and never after Generate returns, and only when the step, the job or the
// preview changed.
//
// When ctx ends, Generate interrupts the server, waits up to
// Config.InterruptGrace for the partial answer, and returns ctx's error. If
// the server interrupts the job some other way (Interrupt, the web UI), the
// partial images are the result.
func (c *Client) Generate(ctx context.Context, req sdclient.Request, progress func(sdclient.Progress)) (*sdclient.Result, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("a1111: txt2img: %w", err)
	}
	body, err := json.Marshal(newTxt2ImgRequest(req))
	if err != nil {
		return nil, fmt.Errorf("a1111: txt2img: %w", err)
	}

	// The txt2img call outlives ctx so that an interrupted job can still be
	// waited for; Timeout bounds it instead.
	genCtx, cancelGen := context.WithTimeout(context.WithoutCancel(ctx), c.cfg.Timeout)
	type answer struct {
		raw []byte
		err error
	}
	done := make(chan answer, 1)
	go func() {
		raw, err := c.call(genCtx, http.MethodPost, pathTxt2Img, body)
		done <- answer{raw, err}
	}()
	answered := false
	defer func() {
		cancelGen()
		if !answered {
			<-done
		}
	}()

	poll := newPoller(ctx, c, progress)
	defer poll.stop()

	ctxDone := ctx.Done() // nil once handled, and for contexts that never end
	canceled := false
	var grace *time.Timer
	defer func() {
		if grace != nil {
			grace.Stop()
		}
	}()
	for {
		select {
		case a := <-done:
			answered = true
			poll.stop()
			switch {
			case canceled: // the interrupt was sent
				return nil, fmt.Errorf("a1111: txt2img interrupted: %w", ctx.Err())
			case a.err != nil && errors.Is(genCtx.Err(), context.DeadlineExceeded):
				c.interruptDetached(ctx)
				return nil, fmt.Errorf("a1111: txt2img: no answer within %s: %w", c.cfg.Timeout, sdclient.ErrUnavailable)
			case a.err != nil:
				return nil, a.err
			}
			res, err := decodeTxt2Img(a.raw, req.Count, req.Seed)
			if err != nil {
				return nil, fmt.Errorf("a1111: txt2img: %w", err)
			}
			return res, nil
		case <-ctxDone:
			ctxDone, canceled = nil, true
			poll.stop()
			c.interruptDetached(ctx)
			grace = time.NewTimer(c.cfg.InterruptGrace)
		case <-timerC(grace):
			return nil, fmt.Errorf("a1111: txt2img still running %s after interrupt, abandoned: %w", c.cfg.InterruptGrace, ctx.Err())
		case <-poll.tick():
			poll.start()
		case a := <-poll.answers():
			poll.report(a)
		}
	}
}

// timerC is t's channel, or nil (never ready) when there is no timer.
func timerC(t *time.Timer) <-chan time.Time {
	if t == nil {
		return nil
	}
	return t.C
}

// interruptDetached sends an interrupt that does not depend on ctx, which
// has ended or is about to be abandoned.
func (c *Client) interruptDetached(ctx context.Context) {
	// A failed interrupt leaves txt2img running; waiting for it (bounded by
	// InterruptGrace or Timeout) is all Generate can do, so the error is
	// dropped.
	_ = c.Interrupt(context.WithoutCancel(ctx))
}

// poller runs at most one progress poll at a time on behalf of Generate's
// loop, which calls every method: only the poll's HTTP exchange runs on
// another goroutine.
type poller struct {
	ctx      context.Context // polls end with it
	c        *Client
	progress func(sdclient.Progress)
	ticker   *time.Ticker
	out      chan []byte // the answer of the poll in flight, nil on failure
	cancel   context.CancelFunc
	inFlight bool
	stopped  bool

	last        progressPoint
	reported    bool
	lastPreview string
}

func newPoller(ctx context.Context, c *Client, progress func(sdclient.Progress)) *poller {
	p := &poller{ctx: ctx, c: c, progress: progress, out: make(chan []byte, 1)}
	if progress == nil {
		p.stopped = true
		return p
	}
	p.ticker = time.NewTicker(c.cfg.ProgressInterval)
	return p
}

// tick fires when the next poll is due and none is in flight.
func (p *poller) tick() <-chan time.Time {
	if p.stopped || p.inFlight {
		return nil
	}
	return p.ticker.C
}

func (p *poller) answers() <-chan []byte {
	if !p.inFlight {
		return nil
	}
	return p.out
}

func (p *poller) start() {
	ctx, cancel := context.WithTimeout(p.ctx, p.c.cfg.CallTimeout)
	p.cancel, p.inFlight = cancel, true
	go func() {
		// A failed poll is skipped: the txt2img call reports real failures.
		raw, err := p.c.call(ctx, http.MethodGet, pathProgress+"?skip_current_image=false", nil)
		if err != nil {
			raw = nil
		}
		p.out <- raw
	}()
}

// report handles one poll's answer, calling progress if it is news.
func (p *poller) report(raw []byte) {
	p.inFlight = false
	p.cancel()
	if p.stopped || raw == nil {
		return
	}
	var a progressAnswer
	if json.Unmarshal(raw, &a) != nil {
		return
	}
	ev, at, ok := readProgress(a)
	if !ok {
		return
	}
	news := !p.reported || at != p.last
	if a.CurrentImage != nil && *a.CurrentImage != "" && *a.CurrentImage != p.lastPreview {
		p.lastPreview = *a.CurrentImage
		if img, err := decodeImage(p.lastPreview); err == nil {
			ev.Preview, news = &img, true
		}
	}
	if news {
		p.last, p.reported = at, true
		p.progress(ev)
	}
}

// stop ends polling and waits for a poll in flight; it may be called again.
func (p *poller) stop() {
	if p.ticker != nil {
		p.ticker.Stop()
	}
	p.stopped = true
	if p.inFlight {
		p.cancel()
		<-p.out
		p.inFlight = false
	}
}
