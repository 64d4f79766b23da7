package a1111_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"image/png"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/easelbot/easel/sdclient"
	"github.com/easelbot/easel/sdclient/a1111"
	"github.com/easelbot/easel/sdclient/fakesd"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type bundle struct {
	fake   *fakesd.Server
	url    string
	client *a1111.Client
}

// setup serves a fake over real HTTP and returns a client of it; mutate
// adjusts the client's config.
func setup(t *testing.T, fcfg fakesd.Config, mutate func(*a1111.Config)) *bundle {
	t.Helper()
	fake := fakesd.New(fcfg)
	srv := httptest.NewServer(fake.Handler())
	t.Cleanup(srv.Close)
	t.Cleanup(fake.Close)
	return &bundle{fake: fake, url: srv.URL, client: newClient(t, srv.URL, mutate)}
}

func newClient(t *testing.T, url string, mutate func(*a1111.Config)) *a1111.Client {
	t.Helper()
	tr := http.DefaultTransport.(*http.Transport).Clone()
	t.Cleanup(tr.CloseIdleConnections)
	cfg := a1111.Config{BaseURL: url, ProgressInterval: 2 * time.Millisecond, HTTPClient: &http.Client{Transport: tr}}
	if mutate != nil {
		mutate(&cfg)
	}
	c, err := a1111.New(cfg)
	require.NoError(t, err)
	t.Cleanup(c.Close)
	return c
}

func request(seed int64) sdclient.Request {
	return sdclient.Request{Prompt: "a red fox in snow", Width: 96, Height: 64, Steps: 10, CFGScale: 7, Seed: seed, Count: 1}
}

func decodePNG(t *testing.T, img sdclient.Image) image.Image {
	t.Helper()
	require.Equal(t, "png", img.Format)
	im, err := png.Decode(bytes.NewReader(img.Data))
	require.NoError(t, err)
	return im
}

// recorder is a progress callback that checks it is never called
// concurrently or after Generate returned.
type recorder struct {
	t        *testing.T
	busy     atomic.Bool
	returned atomic.Bool
	mu       sync.Mutex
	events   []sdclient.Progress
}

func (r *recorder) progress(p sdclient.Progress) {
	if !r.busy.CompareAndSwap(false, true) {
		r.t.Error("progress called concurrently")
	}
	defer r.busy.Store(false)
	if r.returned.Load() {
		r.t.Error("progress called after Generate returned")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, p)
}

func (r *recorder) done() []sdclient.Progress {
	r.returned.Store(true)
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.events
}

func TestGenerate(t *testing.T) {
	t.Parallel()
	b := setup(t, fakesd.Config{StepDuration: 20 * time.Millisecond, PreviewEvery: 2}, nil)
	rec := &recorder{t: t}
	req := request(42)
	req.Count = 2
	req.Sampler = "DDIM"
	req.Model = "fake-xl"
	res, err := b.client.Generate(context.Background(), req, rec.progress)
	events := rec.done()
	require.NoError(t, err)

	sent := b.fake.LastRequest()
	require.Equal(t, 2, sent.BatchSize)
	require.Equal(t, 1, sent.NIter)
	require.True(t, sent.SendImages)
	require.False(t, sent.SaveImages)
	require.Equal(t, "DDIM", sent.SamplerName)
	require.Equal(t, map[string]any{"sd_model_checkpoint": b.title("fake-xl")}, sent.OverrideSettings)
	require.NotNil(t, sent.OverrideSettingsRestoreAfterwards)
	require.False(t, *sent.OverrideSettingsRestoreAfterwards, "the override stays loaded")
	require.True(t, strings.HasPrefix(sent.ForceTaskID, "easel-"), sent.ForceTaskID)

	require.Len(t, res.Images, 2)
	require.Equal(t, []int64{42, 43}, res.Seeds)
	for _, img := range res.Images {
		im := decodePNG(t, img)
		require.Equal(t, image.Pt(96, 64), im.Bounds().Size())
	}
	require.NotEqual(t, res.Images[0].Data, res.Images[1].Data, "other seed, other picture")
	require.Contains(t, res.Info, `"sd_model_name":"fake-xl"`)

	require.NotEmpty(t, events)
	previews := 0
	for i, ev := range events {
		require.Equal(t, 10, ev.Steps)
		require.Equal(t, ev.Step, int(ev.Fraction*10+1e-9), "the step is read from the task's progress")
		if i > 0 {
			require.GreaterOrEqual(t, ev.Step, events[i-1].Step, "in order")
		}
		if ev.Preview != nil {
			previews++
			decodePNG(t, *ev.Preview)
		}
	}
	require.Positive(t, previews)

	again, err := b.client.Generate(context.Background(), req, nil)
	require.NoError(t, err)
	require.Equal(t, res.Images, again.Images, "same seed and prompt, same bytes")
}

func TestGenerateRandomSeed(t *testing.T) {
	t.Parallel()
	b := setup(t, fakesd.Config{Instant: true}, nil)
	req := request(-1)
	req.Count = 3
	res, err := b.client.Generate(context.Background(), req, nil)
	require.NoError(t, err)
	require.Len(t, res.Seeds, 3)
	require.GreaterOrEqual(t, res.Seeds[0], int64(0))
	require.Equal(t, []int64{res.Seeds[0], res.Seeds[0] + 1, res.Seeds[0] + 2}, res.Seeds)

	// The reported seed reproduces the picture.
	req.Seed, req.Count = res.Seeds[1], 1
	again, err := b.client.Generate(context.Background(), req, nil)
	require.NoError(t, err)
	require.Equal(t, res.Images[1], again.Images[0])
}

// title is a fake model's A1111 title, read from the server.
func (b *bundle) title(name string) string {
	cat, err := b.client.Catalog(context.Background())
	if err != nil {
		panic(err)
	}
	for _, m := range cat.Models {
		if m.Name == name {
			return m.Title
		}
	}
	return ""
}

type outcome struct {
	res *sdclient.Result
	err error
}

func (b *bundle) goGenerate(ctx context.Context, req sdclient.Request, progress func(sdclient.Progress)) <-chan outcome {
	out := make(chan outcome, 1)
	go func() {
		res, err := b.client.Generate(ctx, req, progress)
		out <- outcome{res, err}
	}()
	return out
}

// other submits a txt2img as another client of the server (a web UI user)
// under task id id, and returns its answer's channel.
func (b *bundle) other(t *testing.T, id string, steps int) <-chan map[string]any {
	t.Helper()
	body, err := json.Marshal(map[string]any{"prompt": "someone else's castle", "width": 64, "height": 64,
		"steps": steps, "seed": 11, "force_task_id": id})
	require.NoError(t, err)
	out := make(chan map[string]any, 1)
	go func() {
		var ans map[string]any
		resp, err := http.Post(b.url+"/sdapi/v1/txt2img", "application/json", bytes.NewReader(body))
		if err == nil {
			_ = json.NewDecoder(resp.Body).Decode(&ans)
			resp.Body.Close()
		}
		out <- ans
	}()
	waitTask(t, b.fake, id, "active")
	return out
}

// ours returns the id of the one task that is not the other client's.
func (b *bundle) ours(t *testing.T, other string) string {
	t.Helper()
	var id string
	await(t, b.fake, "a task of ours", func() bool {
		for _, task := range b.fake.Tasks() {
			if task.ID != other {
				id = task.ID
				return true
			}
		}
		return false
	})
	return id
}

func waitTask(t *testing.T, fake *fakesd.Server, id string, state string) fakesd.TaskInfo {
	t.Helper()
	var info fakesd.TaskInfo
	await(t, fake, fmt.Sprintf("task %s %s", id, state), func() bool {
		var ok bool
		info, ok = fake.Task(id)
		return ok && info.State == state
	})
	return info
}

// await blocks until cond holds, checking it again at each change of fake's
// state; it fails the test after a generous 10 s.
func await(t *testing.T, fake *fakesd.Server, what string, cond func() bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, fake.Await(ctx, what, cond))
}

func TestInterruptFromElsewhereReturnsPartialImages(t *testing.T) {
	t.Parallel()
	b := setup(t, fakesd.Config{StepDuration: 10 * time.Millisecond}, nil)
	req := request(7)
	req.Steps = 1000
	out := b.goGenerate(context.Background(), req, nil)
	require.NoError(t, b.fake.WaitStarted(context.Background(), 1))
	resp, err := http.Post(b.url+"/sdapi/v1/interrupt", "application/json", nil) // the web UI's Interrupt button
	require.NoError(t, err)
	resp.Body.Close()
	o := <-out
	require.NoError(t, o.err, "an interrupt from elsewhere ends the job with what it has")
	require.Len(t, o.res.Images, 1)
	require.Equal(t, image.Pt(96, 64), decodePNG(t, o.res.Images[0]).Bounds().Size())
}

func TestCancelRunningInterruptsOurTask(t *testing.T) {
	t.Parallel()
	b := setup(t, fakesd.Config{StepDuration: 10 * time.Millisecond, PreviewEvery: 1}, nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req := request(1)
	req.Steps = 1000
	rec := &recorder{t: t}
	out := b.goGenerate(ctx, req, rec.progress)
	require.NoError(t, b.fake.WaitStarted(context.Background(), 1))
	id := b.ours(t, "")
	waitTask(t, b.fake, id, "active")
	cancel()
	o := <-out
	rec.done()
	require.ErrorIs(t, o.err, context.Canceled)
	require.NotErrorIs(t, o.err, sdclient.ErrUnavailable)
	info := waitTask(t, b.fake, id, "completed")
	require.True(t, info.Interrupted)
	require.Equal(t, 1, b.fake.Interrupts())

	// The server is free again.
	_, err := b.client.Generate(context.Background(), request(2), nil)
	require.NoError(t, err)
}

// The scenario: a web UI user's long job runs; an Easel job waits
// behind it and is cancelled. Their job must complete uninterrupted, ours
// must be interrupted as it starts, and our call ends canceled at once.
func TestSharedServerCancelWhileQueued(t *testing.T) {
	t.Parallel()
	b := setup(t, fakesd.Config{StepDuration: 5 * time.Millisecond, PreviewEvery: 1}, nil)
	theirs := b.other(t, "task(txt2img-WEBUI01)", 60)
	ctx, cancel := context.WithCancel(context.Background())
	rec := &recorder{t: t}
	out := b.goGenerate(ctx, request(1), rec.progress)
	ours := b.ours(t, "task(txt2img-WEBUI01)")
	waitTask(t, b.fake, ours, "queued")
	cancel()
	o := <-out
	require.ErrorIs(t, o.err, context.Canceled)
	require.Empty(t, rec.done(), "no progress of someone else's task")
	info, ok := b.fake.Task("task(txt2img-WEBUI01)")
	require.True(t, ok)
	require.Equal(t, "active", info.State, "the call ended while their job still runs")

	ans := <-theirs
	require.Len(t, ans["images"], 1)
	info = waitTask(t, b.fake, "task(txt2img-WEBUI01)", "completed")
	require.False(t, info.Interrupted, "their job was not interrupted")
	require.Equal(t, 60, info.StepsDone)

	mine := waitTask(t, b.fake, ours, "completed")
	require.True(t, mine.Interrupted, "ours was interrupted when it started")
	require.Less(t, mine.StepsDone, 10)
	require.Equal(t, 1, b.fake.Interrupts())
}

func TestSharedServerPreviewsAreOurs(t *testing.T) {
	t.Parallel()
	b := setup(t, fakesd.Config{StepDuration: 5 * time.Millisecond, PreviewEvery: 1}, nil)
	const theirID = "task(txt2img-WEBUI02)"
	theirs := b.other(t, theirID, 40)
	var early atomic.Int32
	previews := 0
	res, err := b.client.Generate(context.Background(), request(5), func(p sdclient.Progress) {
		if info, _ := b.fake.Task(theirID); info.State != "completed" {
			early.Add(1)
		}
		if p.Preview != nil {
			previews++
		}
	})
	require.NoError(t, err)
	require.Len(t, res.Images, 1)
	require.Zero(t, early.Load(), "progress reported while their task ran")
	require.Positive(t, previews)
	<-theirs
}

func TestQueueTimeoutAbandonsAndInterruptsOursLater(t *testing.T) {
	t.Parallel()
	b := setup(t, fakesd.Config{StepDuration: 5 * time.Millisecond}, func(c *a1111.Config) {
		c.Timeouts = sdclient.Timeouts{Queue: 100 * time.Millisecond}
	})
	const theirID = "task(txt2img-WEBUI03)"
	theirs := b.other(t, theirID, 80)
	_, err := b.client.Generate(context.Background(), request(1), nil)
	require.ErrorIs(t, err, sdclient.ErrStalled)
	require.ErrorContains(t, err, "queue timeout")
	<-theirs
	require.False(t, waitTask(t, b.fake, theirID, "completed").Interrupted)
	require.True(t, waitTask(t, b.fake, b.ours(t, theirID), "completed").Interrupted)
}

func TestStallHangingServer(t *testing.T) {
	t.Parallel()
	b := setup(t, fakesd.Config{StepDuration: 5 * time.Millisecond}, func(c *a1111.Config) {
		c.Timeouts = sdclient.Timeouts{Stall: 300 * time.Millisecond}
	})
	b.fake.SetHang(true)
	_, err := b.client.Generate(context.Background(), request(1), nil)
	require.ErrorIs(t, err, sdclient.ErrStalled)
	require.ErrorContains(t, err, "runs nothing")
	require.Zero(t, b.fake.Interrupts(), "nothing of ours ran: nothing interrupted")
	b.fake.SetHang(false)
	_, err = newClient(t, b.url, nil).Generate(context.Background(), request(1), nil)
	require.NoError(t, err)
}

func TestStallMidSampling(t *testing.T) {
	t.Parallel()
	b := setup(t, fakesd.Config{StepDuration: 5 * time.Millisecond}, func(c *a1111.Config) {
		c.Timeouts = sdclient.Timeouts{Stall: 300 * time.Millisecond}
	})
	b.fake.StallAt(3)
	rec := &recorder{t: t}
	_, err := b.client.Generate(context.Background(), request(1), rec.progress)
	events := rec.done()
	require.ErrorIs(t, err, sdclient.ErrStalled)
	require.ErrorContains(t, err, "stall timeout")
	require.NotEmpty(t, events)
	require.Equal(t, 3, events[len(events)-1].Step)
	info := waitTask(t, b.fake, b.ours(t, ""), "completed")
	require.True(t, info.Interrupted, "our stalled task was interrupted")
	b.fake.StallAt(0)
	_, err = newClient(t, b.url, nil).Generate(context.Background(), request(2), nil)
	require.NoError(t, err, "the server is free again")
}

func TestModelLoadTimeout(t *testing.T) {
	t.Parallel()
	b := setup(t, fakesd.Config{StepDuration: 5 * time.Millisecond, FirstLoadDuration: 2 * time.Second}, func(c *a1111.Config) {
		c.Timeouts = sdclient.Timeouts{ModelLoad: 100 * time.Millisecond}
	})
	req := request(1)
	req.Model = "fake-xl"
	_, err := b.client.Generate(context.Background(), req, nil)
	require.ErrorIs(t, err, sdclient.ErrStalled)
	require.ErrorContains(t, err, "model_load timeout")
}

func TestModelOverrideStaysLoaded(t *testing.T) {
	t.Parallel()
	b := setup(t, fakesd.Config{Instant: true}, nil)
	req := request(1)
	req.Model = "fake-xl"
	for range 3 {
		res, err := b.client.Generate(context.Background(), req, nil)
		require.NoError(t, err)
		require.Contains(t, res.Info, `"sd_model_name":"fake-xl"`)
	}
	require.Equal(t, 1, b.fake.Loads(), "one load, no restore, no reload")
	require.Equal(t, "fake-xl", b.fake.Loaded())
	cat, err := b.client.Catalog(context.Background())
	require.NoError(t, err)
	require.Equal(t, "fake-xl", cat.Loaded)
}

func TestValidation(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		mutate func(*sdclient.Request)
		want   string
	}{
		{"model", func(r *sdclient.Request) { r.Model = "nope" }, `model: "nope" is not on this backend; valid: fake-v1-5, fake-xl, fake-flux`},
		{"sampler", func(r *sdclient.Request) { r.Sampler = "Heun" }, `sampler: "Heun" is not on this backend; valid: DPM++ 2M, Euler a, Euler, DDIM`},
		{"scheduler", func(r *sdclient.Request) { r.Scheduler = "cosine" }, `scheduler: "cosine" is not on this backend; valid: automatic, uniform, karras`},
		{"lora", func(r *sdclient.Request) {
			r.LoRAs = []sdclient.LoRA{{Name: "fake-style", Weight: 1}, {Name: "nope", Weight: 1}}
		},
			`loras[1].name: "nope" is not on this backend; valid: fake-detail, fake-style`},
		{"init image", func(r *sdclient.Request) { r.InitImage = []byte("GIF89a") }, "init_image: not a PNG, JPEG or WebP image"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, fakesd.Config{Instant: true}, nil)
			req := request(1)
			tc.mutate(&req)
			_, err := b.client.Generate(context.Background(), req, nil)
			var pe *sdclient.PermanentError
			require.ErrorAs(t, err, &pe)
			require.Contains(t, pe.Reason, tc.want)
			require.Empty(t, b.fake.Tasks(), "nothing was submitted")
		})
	}
}

func TestNamesAsTheServerKnowsThem(t *testing.T) {
	t.Parallel()
	b := setup(t, fakesd.Config{Instant: true}, nil)
	req := request(1)
	req.Sampler = "dpm++ 2m karras" // legacy name, any case
	req.Model = "FAKE-FLUX"
	req.LoRAs = []sdclient.LoRA{{Name: "fake-detail", Weight: 0.6}, {Name: "fake-style", Weight: -1}}
	req.DistilledCFGScale = 3.5
	_, err := b.client.Generate(context.Background(), req, nil)
	require.NoError(t, err)
	tasks := b.fake.Tasks()
	require.Len(t, tasks, 1)
	require.Equal(t, "DPM++ 2M", tasks[0].Sampler)
	require.Equal(t, "karras", tasks[0].Scheduler)
	require.Equal(t, "fake-flux", tasks[0].Model)
	require.Equal(t, "a red fox in snow <lora:fake-detail:0.6> <lora:fake-style:-1>", tasks[0].Prompt)
	require.Equal(t, 3.5, tasks[0].DistilledCFGScale)

	req = request(1)
	req.Sampler, req.Scheduler = "Euler", "Karras"
	_, err = b.client.Generate(context.Background(), req, nil)
	require.NoError(t, err)
	tasks = b.fake.Tasks()
	require.Equal(t, "Euler", tasks[1].Sampler)
	require.Equal(t, "karras", tasks[1].Scheduler)
}

func TestVariationReportsSubseeds(t *testing.T) {
	t.Parallel()
	b := setup(t, fakesd.Config{Instant: true}, nil)
	req := request(40)
	req.Count, req.SubseedStrength = 3, 0.4
	res, err := b.client.Generate(context.Background(), req, nil)
	require.NoError(t, err)
	require.Equal(t, []int64{40, 40, 40}, res.Seeds, "a variation keeps the base seed")
	require.Len(t, res.Subseeds, 3)
	require.Equal(t, res.Subseeds[0]+1, res.Subseeds[1])
	require.Equal(t, res.Subseeds[0]+2, res.Subseeds[2])
	require.NotEqual(t, res.Images[0].Data, res.Images[1].Data)

	plain, err := b.client.Generate(context.Background(), request(40), nil)
	require.NoError(t, err)
	require.Nil(t, plain.Subseeds)
}

func TestImg2Img(t *testing.T) {
	t.Parallel()
	b := setup(t, fakesd.Config{Instant: true}, nil)
	src, err := b.client.Generate(context.Background(), request(3), nil)
	require.NoError(t, err)
	req := request(4)
	req.InitImage, req.DenoisingStrength = src.Images[0].Data, 0.5
	res, err := b.client.Generate(context.Background(), req, nil)
	require.NoError(t, err)
	require.Equal(t, image.Pt(96, 64), decodePNG(t, res.Images[0]).Bounds().Size())
	tasks := b.fake.Tasks()
	require.Equal(t, "img2img", tasks[1].Kind)
	require.Equal(t, 5, tasks[1].StepsDone, "A1111 runs steps × denoising_strength")
}

func TestUndecodableFormatIsPermanent(t *testing.T) {
	t.Parallel()
	b := setup(t, fakesd.Config{Instant: true, SamplesFormat: "jxl"}, nil)
	_, err := b.client.Generate(context.Background(), request(1), nil)
	var pe *sdclient.PermanentError
	require.ErrorAs(t, err, &pe)
	require.Contains(t, pe.Reason, "JPEG XL")
	require.Contains(t, pe.Reason, "samples_format")
}

func TestNoAPI(t *testing.T) {
	t.Parallel()
	b := setup(t, fakesd.Config{Instant: true, NoAPI: true}, nil)
	err := b.client.Health(context.Background())
	require.ErrorIs(t, err, a1111.ErrNoAPI)
	require.ErrorIs(t, err, sdclient.ErrUnavailable)
	require.ErrorContains(t, err, "start it with --api")
	_, err = b.client.Generate(context.Background(), request(1), nil)
	require.ErrorIs(t, err, a1111.ErrNoAPI)
}

func TestHTTPErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name        string
		fail        int // FailNext status, or 0
		mutate      func(*sdclient.Request)
		status      int
		message     string
		unavailable bool
		permanent   bool
	}{
		{name: "exception", fail: 500, status: 500, message: "RuntimeError: injected failure (fakesd FailNext)"},
		{name: "http exception", fail: 404, status: 404, message: "injected failure (fakesd FailNext)", permanent: true},
		{name: "503 is unavailable", fail: 503, status: 503, message: "injected failure (fakesd FailNext)", unavailable: true},
		{name: "429 is unavailable", fail: 429, status: 429, message: "injected failure (fakesd FailNext)", unavailable: true},
		{name: "validation", mutate: func(r *sdclient.Request) { r.Width, r.Steps = 100, 0 }, status: 422, permanent: true,
			message: "width: ensure this value is a multiple of 8; steps: ensure this value is greater than or equal to 1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, fakesd.Config{Instant: true}, nil)
			if tc.fail != 0 {
				b.fake.FailNext(1, tc.fail)
			}
			req := request(1)
			if tc.mutate != nil {
				tc.mutate(&req)
			}
			_, err := b.client.Generate(context.Background(), req, nil)
			var he *sdclient.HTTPError
			require.ErrorAs(t, err, &he)
			require.Equal(t, tc.status, he.Status)
			require.Equal(t, tc.message, he.Message)
			require.Equal(t, tc.unavailable, errors.Is(err, sdclient.ErrUnavailable))
			var pe *sdclient.PermanentError
			require.Equal(t, tc.permanent, errors.As(err, &pe))

			_, err = b.client.Generate(context.Background(), request(1), nil)
			require.NoError(t, err, "one failure only")
		})
	}
}

func TestUnavailable(t *testing.T) {
	t.Parallel()
	b := setup(t, fakesd.Config{Instant: true}, nil)
	b.fake.SetDown(true)
	_, err := b.client.Generate(context.Background(), request(1), nil)
	require.ErrorIs(t, err, sdclient.ErrUnavailable)
	require.ErrorIs(t, b.client.Health(context.Background()), sdclient.ErrUnavailable)
	b.fake.SetDown(false)
	require.NoError(t, b.client.Health(context.Background()))

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	refused := "http://" + ln.Addr().String()
	require.NoError(t, ln.Close())
	c := newClient(t, refused, nil)
	_, err = c.Catalog(context.Background())
	require.ErrorIs(t, err, sdclient.ErrUnavailable)
	_, err = c.Generate(context.Background(), request(1), nil)
	require.ErrorIs(t, err, sdclient.ErrUnavailable)

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = c.Catalog(ctx)
	require.ErrorIs(t, err, context.Canceled)
	require.NotErrorIs(t, err, sdclient.ErrUnavailable, "the caller gave up; the server is not to blame")
}

func TestBasicAuth(t *testing.T) {
	t.Parallel()
	fcfg := fakesd.Config{Instant: true, Username: "easel", Password: "s3cret"}
	for _, tc := range []struct {
		name      string
		baseURL   func(string) string
		user, pwd string
		message   string // "" when accepted
	}{
		{name: "accepted", user: "easel", pwd: "s3cret"},
		{name: "in the URL", baseURL: func(u string) string { return strings.Replace(u, "http://", "http://easel:s3cret@", 1) }},
		{name: "wrong password", user: "easel", pwd: "nope", message: "Incorrect username or password"},
		{name: "none", message: "Not authenticated"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, fcfg, nil)
			url := b.url
			if tc.baseURL != nil {
				url = tc.baseURL(url)
			}
			c := newClient(t, url, func(c *a1111.Config) { c.Username, c.Password = tc.user, tc.pwd })
			_, err := c.Generate(context.Background(), request(1), nil)
			if tc.message == "" {
				require.NoError(t, err)
				return
			}
			var he *sdclient.HTTPError
			require.ErrorAs(t, err, &he)
			require.Equal(t, http.StatusUnauthorized, he.Status)
			require.Equal(t, tc.message, he.Message)
			require.ErrorIs(t, err, sdclient.ErrUnavailable, "another backend may take the job")
			require.ErrorContains(t, err, "username and password")
			require.NotContains(t, err.Error(), "s3cret")
		})
	}
}

func TestCatalog(t *testing.T) {
	t.Parallel()
	b := setup(t, fakesd.Config{Instant: true}, nil)
	cat, err := b.client.Catalog(context.Background())
	require.NoError(t, err)
	require.Len(t, cat.Models, 3)
	require.Equal(t, "fake-v1-5", cat.Models[0].Name)
	require.Equal(t, "fake-v1-5.safetensors ["+cat.Models[0].Hash+"]", cat.Models[0].Title)
	require.Len(t, cat.Models[0].Hash, 10)
	require.Equal(t, "fake-v1-5", cat.Loaded)
	require.Equal(t, []string{"DPM++ 2M", "Euler a", "Euler", "DDIM"}, cat.Samplers)
	require.Equal(t, []string{"automatic", "uniform", "karras", "exponential", "polyexponential", "sgm_uniform"}, cat.Schedulers)
	require.Equal(t, []string{"fake-detail", "fake-style"}, cat.LoRAs)
	require.Equal(t, []string{"None", "Lanczos", "Nearest", "R-ESRGAN 4x+"}, cat.Upscalers)
}

func TestUpscale(t *testing.T) {
	t.Parallel()
	b := setup(t, fakesd.Config{Instant: true}, nil)
	res, err := b.client.Generate(context.Background(), request(3), nil)
	require.NoError(t, err)
	up, err := b.client.Upscale(context.Background(), sdclient.UpscaleRequest{Image: res.Images[0].Data, Factor: 2})
	require.NoError(t, err)
	require.Len(t, up.Images, 1)
	require.Equal(t, image.Pt(192, 128), decodePNG(t, up.Images[0]).Bounds().Size())

	_, err = b.client.Upscale(context.Background(), sdclient.UpscaleRequest{Image: res.Images[0].Data, Factor: 2, Upscaler: "SwinIR"})
	var pe *sdclient.PermanentError
	require.ErrorAs(t, err, &pe)
	require.Contains(t, pe.Reason, `upscaler: "SwinIR" is not on this backend; valid: None, Lanczos, Nearest, R-ESRGAN 4x+`)
}

func TestNewChecksConfig(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		cfg  a1111.Config
		err  string
	}{
		{"ok", a1111.Config{BaseURL: "http://127.0.0.1:7860/"}, ""},
		{"https with prefix", a1111.Config{BaseURL: "https://sd.example/a1111"}, ""},
		{"empty", a1111.Config{}, "Config.BaseURL must be"},
		{"scheme", a1111.Config{BaseURL: "ftp://x"}, "Config.BaseURL must be"},
		{"no host", a1111.Config{BaseURL: "http://"}, "Config.BaseURL must be"},
		{"negative", a1111.Config{BaseURL: "http://x", Timeouts: sdclient.Timeouts{Stall: -time.Second}}, "Config.Timeouts.Stall must not be negative"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c, err := a1111.New(tc.cfg)
			if tc.err == "" {
				require.NoError(t, err)
				c.Close()
			} else {
				require.ErrorContains(t, err, tc.err)
			}
		})
	}
}

func BenchmarkGenerate512(b *testing.B) {
	fake := fakesd.New(fakesd.Config{Instant: true, NoPreviews: true})
	defer fake.Close()
	srv := httptest.NewServer(fake.Handler())
	defer srv.Close()
	c, err := a1111.New(a1111.Config{BaseURL: srv.URL})
	require.NoError(b, err)
	defer c.Close()
	req := sdclient.Request{Prompt: "bench", Width: 512, Height: 512, Steps: 20, CFGScale: 7, Count: 1}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		req.Seed = int64(i)
		if _, err := c.Generate(context.Background(), req, nil); err != nil {
			b.Fatal(err)
		}
	}
}

// A server without /internal/progress (before it existed) still runs
// jobs, without progress; a cancel then never interrupts blindly.
func TestServerWithoutTaskProgress(t *testing.T) {
	t.Parallel()
	fake := fakesd.New(fakesd.Config{StepDuration: 5 * time.Millisecond})
	t.Cleanup(fake.Close)
	inner := fake.Handler()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/internal/progress" {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusNotFound)
			_, _ = w.Write([]byte(`{"detail":"Not Found"}`))
			return
		}
		inner.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	c := newClient(t, srv.URL, nil)
	rec := &recorder{t: t}
	res, err := c.Generate(context.Background(), request(1), rec.progress)
	require.NoError(t, err)
	require.Len(t, res.Images, 1)
	require.Empty(t, rec.done())

	ctx, cancel := context.WithCancel(context.Background())
	req := request(2)
	req.Steps = 40
	out := make(chan error, 1)
	go func() { _, err := c.Generate(ctx, req, nil); out <- err }()
	require.NoError(t, fake.WaitStarted(context.Background(), 2))
	cancel()
	require.ErrorIs(t, <-out, context.Canceled)
	require.Zero(t, fake.Interrupts(), "no per-task progress: nothing is interrupted blindly")
}
