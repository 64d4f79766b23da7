package httpapi_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"image"
	"image/png"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/easelbot/easel/adapters/httpapi"
	"github.com/easelbot/easel/commands"
	"github.com/easelbot/easel/internal/redistest"
	"github.com/easelbot/easel/scheduler"
	"github.com/easelbot/easel/sdclient/a1111"
	"github.com/easelbot/easel/sdclient/fakesd"
	"github.com/easelbot/easel/worker"
)

// catalogSetup serves the API in open mode with limits, and (when fake is
// set) a worker on a fakesd backend, returning once the worker advertised
// the backend's catalog.
func catalogSetup(t *testing.T, limits commands.Limits, fake *fakesd.Config) *bundle {
	t.Helper()
	b, _ := catalogSetupObserved(t, limits, fake)
	return b
}

// catalogSetupObserved is catalogSetup that also returns the worker's
// observations (buffered; the oldest are kept when it fills).
func catalogSetupObserved(t *testing.T, limits commands.Limits, fake *fakesd.Config) (*bundle, <-chan worker.Observation) {
	t.Helper()
	obs := make(chan worker.Observation, 1000)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	store := redistest.Store(t)
	sched, err := scheduler.New(ctx, store, scheduler.Config{}, zap.NewNop())
	require.NoError(t, err)
	pol, err := scheduler.NewPolicies(sched, scheduler.PolicyConfig{})
	require.NoError(t, err)
	svc, err := commands.New(sched, pol, limits, zap.NewNop())
	require.NoError(t, err)
	api, err := httpapi.New(httpapi.Config{}, svc, sched, zap.NewNop())
	require.NoError(t, err)
	srv := httptest.NewServer(api.Handler())
	t.Cleanup(srv.Close)
	t.Cleanup(func() {
		c, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = api.Stop(c)
	})
	b := &bundle{ctx: ctx, sched: sched, api: api, srv: srv}
	if fake == nil {
		return b, obs
	}
	b.fake = fakesd.New(*fake)
	fsrv := httptest.NewServer(b.fake.Handler())
	t.Cleanup(fsrv.Close)
	client, err := a1111.New(a1111.Config{BaseURL: fsrv.URL, ProgressInterval: 2 * time.Millisecond})
	require.NoError(t, err)
	t.Cleanup(client.Close) // after the worker stops: ends the client's task watchers
	w, err := worker.New(worker.Config{Name: "t"}, sched, []worker.Backend{{Name: "gpu1", Backend: client}}, zap.NewNop())
	require.NoError(t, err)
	advertised := make(chan struct{})
	var once sync.Once
	w.Observe(func(o worker.Observation) {
		select {
		case obs <- o:
		default:
		}
		if o.Kind == "advertised" {
			once.Do(func() { close(advertised) })
		}
	})
	require.NoError(t, w.Start(ctx))
	t.Cleanup(func() {
		c, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = w.Stop(c)
	})
	select {
	case <-advertised:
	case <-ctx.Done():
		t.Fatal("the worker never advertised its backend")
	}
	return b, obs
}

// waitObservation blocks until the worker reports kind.
func waitObservation(t *testing.T, ctx context.Context, obs <-chan worker.Observation, kind string) {
	t.Helper()
	for {
		select {
		case o := <-obs:
			if o.Kind == kind {
				return
			}
		case <-ctx.Done():
			t.Fatalf("the worker never reported %q", kind)
		}
	}
}

func fakeConfig() *fakesd.Config {
	return &fakesd.Config{StepDuration: time.Millisecond, PreviewEvery: 2,
		Models: []string{"fake-v1-5", "fake-xl"}, Samplers: []string{"Euler a", "DPM++ 2M"}}
}

func (b *bundle) requireNothingQueued(t *testing.T) {
	t.Helper()
	resp, m := b.do(t, "GET", "/v1/queue", "", nil)
	require.Equal(t, 200, resp.StatusCode, m)
	require.Empty(t, m["jobs"], "a refused request enqueued a job")
}

func TestModelsListsTheBackendsCatalog(t *testing.T) {
	t.Parallel()
	b := catalogSetup(t, commands.Limits{}, fakeConfig())
	resp, m := b.do(t, "GET", "/v1/models", "", nil)
	require.Equal(t, 200, resp.StatusCode, m)
	require.Equal(t, []any{"gpu1"}, m["backends"])
	require.Equal(t, []any{
		map[string]any{"name": "fake-v1-5", "backends": []any{"gpu1"}, "loaded_on": []any{"gpu1"}},
		map[string]any{"name": "fake-xl", "backends": []any{"gpu1"}, "loaded_on": []any{}},
	}, m["models"])
	require.Equal(t, []any{"DPM++ 2M", "Euler a"}, m["samplers"])
	require.Contains(t, m, "schedulers")
	require.Contains(t, m, "loras")
	require.Contains(t, m, "upscalers")
}

func TestSubmitIsCheckedAgainstTheCatalog(t *testing.T) {
	t.Parallel()
	b := catalogSetup(t, commands.Limits{}, fakeConfig())
	for _, c := range []struct {
		name, body, field string
		msg               []string
	}{
		{"unknown model", `{"prompt":"x","model":"sdxl-turbo"}`, "model", []string{`"sdxl-turbo" is not a model`, "choose from fake-v1-5, fake-xl"}},
		{"unknown sampler", `{"prompt":"x","sampler":"LMS"}`, "sampler", []string{`"LMS"`, "choose from DPM++ 2M, Euler a"}},
		{"zero width", `{"prompt":"x","width":0}`, "width", []string{"must not be 0"}},
		{"zero height", `{"prompt":"x","height":0}`, "height", []string{"must not be 0"}},
		{"zero count", `{"prompt":"x","count":0}`, "count", []string{"must not be 0"}},
		{"zero steps", `{"prompt":"x","steps":0}`, "steps", []string{"must not be 0"}},
		{"lora weight", `{"prompt":"x","loras":[{"name":"a","weight":9}]}`, "loras", []string{"between -5 and 5 (got 9)"}},
		{"lora name", `{"prompt":"x","loras":[{"weight":1}]}`, "loras[0].name", []string{"is required"}},
		{"strength without image", `{"prompt":"x","denoising_strength":0.5}`, "denoising_strength", []string{"init image"}},
		{"strength range", `{"prompt":"x","init_image":"aGk=","denoising_strength":1.5}`, "denoising_strength", []string{"at most 1"}},
		{"distilled cfg zero", `{"prompt":"x","distilled_cfg_scale":0}`, "distilled_cfg_scale", []string{"must not be 0"}},
		{"distilled cfg range", `{"prompt":"x","distilled_cfg_scale":40}`, "distilled_cfg_scale", []string{"at most 30"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			resp, m := b.do(t, "POST", "/v1/jobs", "", c.body)
			require.Equal(t, http.StatusBadRequest, resp.StatusCode, m)
			e := m["error"].(map[string]any)
			require.Equal(t, c.field, e["field"])
			for _, s := range c.msg {
				require.Contains(t, e["message"], s)
			}
		})
	}
	b.requireNothingQueued(t)

	// Names match as the backend would: a title and another case pass.
	resp, m := b.do(t, "POST", "/v1/jobs", "", `{"prompt":"x","model":"FAKE-XL.safetensors","sampler":"euler a","steps":2}`)
	require.Equal(t, http.StatusAccepted, resp.StatusCode, m)
}

// Before any backend advertises (just started), names are not refused:
// the backend checks them when the job runs.
func TestSubmitWithNoCatalogYet(t *testing.T) {
	t.Parallel()
	b := catalogSetup(t, commands.Limits{}, nil)
	resp, m := b.do(t, "GET", "/v1/models", "", nil)
	require.Equal(t, 200, resp.StatusCode, m)
	require.Empty(t, m["models"])
	resp, m = b.do(t, "POST", "/v1/jobs", "", `{"prompt":"x","model":"anything","sampler":"any"}`)
	require.Equal(t, http.StatusAccepted, resp.StatusCode, m)
}

// imageServer serves test images on loopback: /ok.png (w×h PNG),
// /big.png (a PNG over the cap), /page.html and /slow (never answers).
func imageServer(t *testing.T, w, h int) *httptest.Server {
	t.Helper()
	var pb bytes.Buffer
	require.NoError(t, png.Encode(&pb, image.NewRGBA(image.Rect(0, 0, w, h))))
	big := append(append([]byte{}, pb.Bytes()...), make([]byte, 64<<10)...)
	done := make(chan struct{})
	mux := http.NewServeMux()
	mux.HandleFunc("/ok.png", func(rw http.ResponseWriter, _ *http.Request) { _, _ = rw.Write(pb.Bytes()) })
	mux.HandleFunc("/big.png", func(rw http.ResponseWriter, _ *http.Request) { _, _ = rw.Write(big) })
	mux.HandleFunc("/page.html", func(rw http.ResponseWriter, _ *http.Request) {
		_, _ = rw.Write([]byte("<!doctype html><title>not an image</title>"))
	})
	mux.HandleFunc("/slow", func(rw http.ResponseWriter, r *http.Request) {
		select {
		case <-done:
		case <-r.Context().Done():
		}
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(done) })
	return srv
}

func TestInitImageRefusals(t *testing.T) {
	t.Parallel()
	imgs := imageServer(t, 96, 64)
	// Private addresses refused (the default): the loopback server is one.
	guarded := catalogSetup(t, commands.Limits{}, nil)
	resp, m := guarded.do(t, "POST", "/v1/jobs", "", map[string]any{"prompt": "x", "init_image": imgs.URL + "/ok.png"})
	require.Equal(t, http.StatusBadRequest, resp.StatusCode, m)
	e := m["error"].(map[string]any)
	require.Equal(t, "init_image", e["field"])
	require.Contains(t, e["message"], "must not point at a loopback, private or link-local address")
	guarded.requireNothingQueued(t)

	// With private addresses allowed (the owner's switch), the other rules.
	b := catalogSetup(t, commands.Limits{AllowPrivateImageURLs: true, MaxInitImageBytes: 32 << 10,
		InitImageTimeout: 2 * time.Second}, nil)
	for _, c := range []struct{ name, src, msg string }{
		{"oversize", imgs.URL + "/big.png", "must be at most 32768 bytes (limits.max_init_image_bytes"},
		{"oversize inline", base64.StdEncoding.EncodeToString(make([]byte, 40<<10)), "must be at most 32768 bytes"},
		{"not an image", imgs.URL + "/page.html", "must be a PNG, JPEG or WebP image"},
		{"not an image inline", "data:text/plain;base64," + base64.StdEncoding.EncodeToString([]byte("hello")), "must be a PNG, JPEG or WebP image"},
		{"missing", imgs.URL + "/nope.png", "HTTP 404"},
		{"timeout", imgs.URL + "/slow", "within 2s (limits.init_image_timeout)"},
		{"scheme", "ftp://example.com/a.png", "must be an http(s) URL, a data: URL or base64"},
	} {
		t.Run(c.name, func(t *testing.T) {
			resp, m := b.do(t, "POST", "/v1/jobs", "", map[string]any{"prompt": "x", "init_image": c.src})
			require.Equal(t, http.StatusBadRequest, resp.StatusCode, m)
			e := m["error"].(map[string]any)
			require.Equal(t, "init_image", e["field"])
			require.Contains(t, e["message"], c.msg)
		})
	}
	b.requireNothingQueued(t)

	// A bad prompt is refused before anything is fetched.
	resp, m = b.do(t, "POST", "/v1/jobs", "", map[string]any{"prompt": " ", "init_image": imgs.URL + "/slow"})
	require.Equal(t, http.StatusBadRequest, resp.StatusCode, m)
	require.Equal(t, "prompt", m["error"].(map[string]any)["field"])
}

// The init image's size becomes the default size (rounded to 8, within
// limits); the payload says the image is stored, and the blob store has
// its bytes.
func TestInitImageSetsSize(t *testing.T) {
	t.Parallel()
	imgs := imageServer(t, 1001, 499)
	b := catalogSetup(t, commands.Limits{AllowPrivateImageURLs: true}, nil)
	resp, m := b.do(t, "POST", "/v1/jobs", "", map[string]any{"prompt": "x", "init_image": imgs.URL + "/ok.png"})
	require.Equal(t, http.StatusAccepted, resp.StatusCode, m)
	j, err := b.sched.Get(b.ctx, m["id"].(string))
	require.NoError(t, err)
	var req struct {
		Width, Height     int
		InitImage         []byte  `json:"init_image"`
		InitImageBytes    int     `json:"init_image_bytes"`
		DenoisingStrength float64 `json:"denoising_strength"`
	}
	require.NoError(t, json.Unmarshal(j.Payload, &req))
	require.Equal(t, [2]int{1000, 496}, [2]int{req.Width, req.Height})
	require.Nil(t, req.InitImage)
	src, err := b.sched.InitImage(b.ctx, j.ID)
	require.NoError(t, err)
	require.Equal(t, len(src), req.InitImageBytes)
	require.True(t, strings.HasPrefix(string(src), "\x89PNG"))
	require.Equal(t, 0.75, req.DenoisingStrength)
}

// img2img end to end: the init image is fetched from a (loopback, so
// allowed by the owner's switch) URL, the job runs on the fake A1111 over
// HTTP, and the backend receives the image, the strength and the LoRA.
func TestImg2ImgEndToEnd(t *testing.T) {
	t.Parallel()
	imgs := imageServer(t, 200, 120)
	cfg := fakeConfig()
	cfg.LoRAs = []string{"fake-detail", "fake-style"}
	b := catalogSetup(t, commands.Limits{AllowPrivateImageURLs: true}, cfg)

	resp, m := b.do(t, "POST", "/v1/jobs", "", map[string]any{"prompt": "x", "loras": []any{map[string]any{"name": "fake-nope", "weight": 0.5}}})
	require.Equal(t, http.StatusBadRequest, resp.StatusCode, m)
	e := m["error"].(map[string]any)
	require.Equal(t, "loras", e["field"])
	require.Contains(t, e["message"], `"fake-nope" is not a LoRA any backend offers; choose from fake-detail, fake-style`)
	b.requireNothingQueued(t)

	resp, m = b.do(t, "POST", "/v1/jobs", "", map[string]any{"prompt": "a fox", "init_image": imgs.URL + "/ok.png",
		"denoising_strength": 0.5, "steps": 4, "seed": 3, "loras": []any{map[string]any{"name": "fake-detail", "weight": 0.8}}})
	require.Equal(t, http.StatusAccepted, resp.StatusCode, m)
	id := m["id"].(string)
	events := b.sse(t, "/v1/jobs/"+id+"/events", "")
	require.Equal(t, "succeeded", events[len(events)-1], events)

	last := b.fake.LastRequest()
	require.Len(t, last.InitImages, 1)
	src, err := base64.StdEncoding.DecodeString(last.InitImages[0])
	require.NoError(t, err)
	cfgImg, err := png.DecodeConfig(bytes.NewReader(src))
	require.NoError(t, err)
	require.Equal(t, [2]int{200, 120}, [2]int{cfgImg.Width, cfgImg.Height})
	require.NotNil(t, last.DenoisingStrength)
	require.Equal(t, 0.5, *last.DenoisingStrength)
	require.Contains(t, last.Prompt, "<lora:fake-detail:0.8>")
	require.Equal(t, [2]int{200, 120}, [2]int{last.Width, last.Height}, "the init image's size is the default")

	resp, m = b.do(t, "GET", "/v1/jobs/"+id, "", nil)
	require.Equal(t, 200, resp.StatusCode)
	require.Equal(t, "succeeded", m["status"])
	require.Len(t, m["images"], 1)
	req := m["request"].(map[string]any)
	require.Equal(t, "a fox", req["prompt"])
	require.Equal(t, map[string]any{"omitted": true, "bytes": float64(len(src))}, req["init_image"],
		"the job view names the init image, it does not echo it")

	// Inline base64 works the same way; Forge's distilled_cfg_scale reaches
	// the backend and shows in the job's request.
	resp, m = b.do(t, "POST", "/v1/jobs", "", map[string]any{"prompt": "a fox", "init_image": base64.StdEncoding.EncodeToString(src), "steps": 2,
		"distilled_cfg_scale": 2.5})
	require.Equal(t, http.StatusAccepted, resp.StatusCode, m)
	id = m["id"].(string)
	events = b.sse(t, "/v1/jobs/"+id+"/events", "")
	require.Equal(t, "succeeded", events[len(events)-1], events)
	require.Len(t, b.fake.LastRequest().InitImages, 1)
	require.Equal(t, 2.5, b.fake.LastRequest().DistilledCFGScale)
	_, m = b.do(t, "GET", "/v1/jobs/"+id, "", nil)
	require.Equal(t, 2.5, m["request"].(map[string]any)["distilled_cfg_scale"])
}

// A backend out of rotation leaves the catalog until it is healthy again.
func TestCatalogListsHealthyBackendsOnly(t *testing.T) {
	t.Parallel()
	cfg := fakeConfig()
	cfg.StepDuration = 50 * time.Millisecond
	b, obs := catalogSetupObserved(t, commands.Limits{}, cfg)
	fresh := func() commands.Catalog { return freshCatalog(t, b) }
	require.Equal(t, []string{"gpu1"}, fresh().Backends)

	b.fake.SetDown(true)
	resp, m := b.do(t, "POST", "/v1/jobs", "", `{"prompt":"x","steps":2}`)
	require.Equal(t, http.StatusAccepted, resp.StatusCode, m)
	waitObservation(t, b.ctx, obs, "down")
	require.Empty(t, fresh().Backends)
	require.Empty(t, fresh().Models)

	b.fake.SetDown(false)
	waitObservation(t, b.ctx, obs, "up")
	require.Equal(t, []string{"gpu1"}, fresh().Backends)
}

// A backend that dies while idle leaves GET /v1/models at its worker's
// idle health checks (not when a job next fails on it, nor when its
// advertisement expires), comes back when it answers again, and its names
// are still accepted by submits meanwhile: the job waits for it.
func TestCatalogDropsABackendThatDiesIdle(t *testing.T) {
	t.Parallel()
	b, obs := catalogSetupObserved(t, commands.Limits{}, fakeConfig())
	fresh := func() commands.Catalog { return freshCatalog(t, b) }
	require.Equal(t, []string{"gpu1"}, fresh().Backends)

	b.fake.SetDown(true) // no job runs: only the idle checks can notice
	waitObservation(t, b.ctx, obs, "down")
	cat := fresh()
	require.Empty(t, cat.Backends)
	require.Empty(t, cat.Models)
	require.Empty(t, cat.Samplers)

	// Submits still know its names (a restart should queue, not refuse)...
	resp, m := b.do(t, "POST", "/v1/jobs", "", `{"prompt":"x","model":"fake-xl","sampler":"Euler a","steps":2}`)
	require.Equal(t, http.StatusAccepted, resp.StatusCode, m)
	// ...and still refuse names no backend has, listing the known ones.
	resp, m = b.do(t, "POST", "/v1/jobs", "", `{"prompt":"x","model":"sdxl-turbo"}`)
	require.Equal(t, http.StatusBadRequest, resp.StatusCode, m)
	e := m["error"].(map[string]any)
	require.Equal(t, "model", e["field"])
	require.Contains(t, e["message"], "choose from fake-v1-5, fake-xl")

	b.fake.SetDown(false)
	waitObservation(t, b.ctx, obs, "up")
	cat = fresh()
	require.Equal(t, []string{"gpu1"}, cat.Backends)
	require.Equal(t, []string{"fake-v1-5", "fake-xl"}, cat.ModelNames())
}

// freshCatalog reads the catalog through a fresh service (as another API
// process would), uncached.
func freshCatalog(t *testing.T, b *bundle) commands.Catalog {
	t.Helper()
	pol, err := scheduler.NewPolicies(b.sched, scheduler.PolicyConfig{})
	require.NoError(t, err)
	svc, err := commands.New(b.sched, pol, commands.Limits{}, zap.NewNop())
	require.NoError(t, err)
	cat, err := svc.Models(b.ctx)
	require.NoError(t, err)
	return cat
}
