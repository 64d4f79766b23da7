package worker_test

import (
	"bytes"
	"context"
	"encoding/json"
	"image"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/easelbot/easel/internal/redistest"
	"github.com/easelbot/easel/scheduler"
	"github.com/easelbot/easel/sdclient"
	"github.com/easelbot/easel/sdclient/comfyui"
	"github.com/easelbot/easel/sdclient/comfyui/comfytest"
	"github.com/easelbot/easel/worker"
)

type comfyBundle struct {
	ctx   context.Context
	sched *scheduler.Scheduler
	fake  *comfytest.Server
	url   string // the fake's base URL
}

// setupComfy runs a worker on a ComfyUI backend: the comfyui client
// against the comfytest fake over real HTTP and websocket, real Redis.
func setupComfy(t *testing.T, scfg scheduler.Config, fcfg comfytest.Config, timeouts sdclient.Timeouts) *comfyBundle {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	sched, err := scheduler.New(ctx, redistest.Store(t), scfg, zap.NewNop())
	require.NoError(t, err)
	fake := comfytest.New(fcfg)
	srv := httptest.NewServer(fake.Handler())
	client, err := comfyui.New(comfyui.Config{BaseURL: srv.URL, Timeouts: timeouts})
	require.NoError(t, err)
	w, err := worker.New(worker.Config{Name: "t", HealthInterval: 10 * time.Millisecond, BlockTimeout: time.Second}, sched,
		[]worker.Backend{{Name: "comfy", Backend: client}}, zap.NewNop())
	require.NoError(t, err)
	require.NoError(t, w.Start(ctx))
	m := scheduler.NewMaintainer(sched, "m", zap.NewNop())
	require.NoError(t, m.Start(ctx))
	t.Cleanup(func() {
		stop, c := context.WithTimeout(context.Background(), 10*time.Second)
		defer c()
		require.NoError(t, w.Stop(stop))
		require.NoError(t, m.Stop(stop))
		fake.Close()
		srv.Close()
	})
	return &comfyBundle{ctx: ctx, sched: sched, fake: fake, url: srv.URL}
}

func (b *comfyBundle) submit(t *testing.T, steps int) string {
	p, _ := json.Marshal(map[string]any{"prompt": "a red fox", "width": 96, "height": 64, "steps": steps, "seed": 3, "count": 1,
		"sampler": "DPM++ 2M Karras"})
	r, err := b.sched.Submit(b.ctx, scheduler.SubmitRequest{Tenant: "api:t", User: "u", Payload: p, Images: 1})
	require.NoError(t, err)
	return r.ID
}

func (b *comfyBundle) events(t *testing.T, id string) []scheduler.Event {
	var evs []scheduler.Event
	require.NoError(t, b.sched.Follow(b.ctx, id, 0, func(e scheduler.Event) error { evs = append(evs, e); return nil }))
	return evs
}

func TestComfyUIJobRunsWithProgressAndPreviews(t *testing.T) {
	b := setupComfy(t, scheduler.Config{}, comfytest.Config{StepDuration: 5 * time.Millisecond}, sdclient.Timeouts{})
	id := b.submit(t, 6)
	evs := b.events(t, id)
	require.Equal(t, []string{"queued", "started", "progress", "succeeded"}, types(evs))
	previews := 0
	for _, e := range evs {
		if e.Type == scheduler.EventProgress && e.Preview != "" {
			previews++
		}
	}
	require.Positive(t, previews, "previews from the websocket's binary frames reach the job")
	j, err := b.sched.Get(b.ctx, id)
	require.NoError(t, err)
	require.Equal(t, []int64{3}, j.Seeds)
	img, err := b.sched.Image(b.ctx, j, 0)
	require.NoError(t, err)
	cfg, format, err := image.DecodeConfig(bytes.NewReader(img))
	require.NoError(t, err)
	require.Equal(t, "png", format)
	require.Equal(t, [2]int{96, 64}, [2]int{cfg.Width, cfg.Height})
}

func TestComfyUICancelRunningInterruptsOurPrompt(t *testing.T) {
	b := setupComfy(t, scheduler.Config{}, comfytest.Config{}, sdclient.Timeouts{})
	b.fake.StallAt(2)
	id := b.submit(t, 10)
	require.NoError(t, b.fake.Wait(b.ctx.Done(), func(s comfytest.Snapshot) bool { return s.Step == 2 }))
	_, err := b.sched.Cancel(b.ctx, id, "u")
	require.NoError(t, err)
	got := types(b.events(t, id))
	require.Equal(t, "canceled", got[len(got)-1], "%v", got)
	ours := b.fake.Prompts()[0].ID
	require.NoError(t, b.fake.Wait(b.ctx.Done(), func(s comfytest.Snapshot) bool { return s.Status[ours] == comfytest.Interrupted }))
	require.Equal(t, []comfytest.Interrupt{{Requested: ours, Stopped: ours}}, b.fake.Interrupts())
}

func TestComfyUIStallIsRetried(t *testing.T) {
	// The stall timeout is a wall-clock bound, and on a loaded machine (the
	// race detector, other tests) a healthy attempt may go that long
	// between two websocket messages too: the timeout is generous, a few
	// spare attempts absorb such a spurious stall, and the test checks the
	// deliberate one rather than an exact count of attempts.
	b := setupComfy(t, scheduler.Config{MaxAttempts: 5, RetryBackoff: 5 * time.Millisecond, RetryBackoffMax: 10 * time.Millisecond},
		comfytest.Config{}, sdclient.Timeouts{Stall: 500 * time.Millisecond})
	b.fake.StallAt(2) // the first attempt stops advancing at step 2
	id := b.submit(t, 4)
	evs := b.events(t, id)
	got := types(evs)
	require.Contains(t, got, "retrying")
	require.Equal(t, "succeeded", got[len(got)-1], "%v", got)
	ps := b.fake.Prompts()
	require.GreaterOrEqual(t, len(ps), 2, "a retry sent a new prompt")
	require.Equal(t, comfytest.Interrupted, b.fake.Status(ps[0].ID), "the stalled attempt's own prompt was interrupted")
	require.Equal(t, comfytest.Success, b.fake.Status(ps[len(ps)-1].ID))
}

// A variation (the chat buttons: the chosen image's seed and a variation
// strength) runs on ComfyUI as img2img of that image, which the worker
// reads from the image store; a variation whose image is gone fails
// without retry and says why.
func TestComfyUIVariationIsImg2ImgOfTheChosenImage(t *testing.T) {
	b := setupComfy(t, scheduler.Config{}, comfytest.Config{StepDuration: time.Millisecond, NoPreviews: true}, sdclient.Timeouts{})
	first := b.submit(t, 3)
	require.Equal(t, "succeeded", last(types(b.events(t, first))))
	j, err := b.sched.Get(b.ctx, first)
	require.NoError(t, err)
	chosen, err := b.sched.Image(b.ctx, j, 0)
	require.NoError(t, err)

	vary := func(job string) string {
		p, _ := json.Marshal(sdclient.Request{Prompt: "a red fox", Width: 96, Height: 64, Steps: 3, Seed: j.Seeds[0], Count: 1,
			SubseedStrength: 0.35, VariationOf: &sdclient.ImageRef{Job: job, Image: 0}})
		r, err := b.sched.Submit(b.ctx, scheduler.SubmitRequest{Tenant: "api:t", User: "u", Payload: p, Images: 1})
		require.NoError(t, err)
		return r.ID
	}
	id := vary(first)
	require.Equal(t, "succeeded", last(types(b.events(t, id))))
	ps := b.fake.Prompts()
	g := ps[len(ps)-1].Graph
	var upload string
	for _, n := range g {
		if n := n.(map[string]any); n["class_type"] == "LoadImage" {
			upload = n["inputs"].(map[string]any)["image"].(string)
		}
	}
	require.NotEmpty(t, upload, "the variation is an img2img graph")
	resp, err := http.Get(b.url + "/view?type=input&filename=" + url.QueryEscape(upload))
	require.NoError(t, err)
	got, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.NoError(t, err)
	require.Equal(t, chosen, got, "the img2img source is the chosen image")

	gone := vary("no-such-job")
	evs := b.events(t, gone)
	require.Equal(t, []string{"queued", "started", "failed"}, types(evs))
	require.Contains(t, evs[len(evs)-1].Message, "img2img of the chosen image")
	require.Len(t, b.fake.Prompts(), len(ps), "nothing was sent for it")
}

func last(s []string) string { return s[len(s)-1] }
