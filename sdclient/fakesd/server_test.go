package fakesd_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"image"
	"image/png"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/easelbot/easel/sdclient/fakesd"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type bundle struct {
	fake *fakesd.Server
	url  string
	hc   *http.Client
}

func setup(t *testing.T, cfg fakesd.Config) *bundle {
	t.Helper()
	fake := fakesd.New(cfg)
	srv := httptest.NewServer(fake.Handler())
	t.Cleanup(srv.Close)
	t.Cleanup(fake.Close)
	tr := http.DefaultTransport.(*http.Transport).Clone()
	t.Cleanup(tr.CloseIdleConnections)
	return &bundle{fake: fake, url: srv.URL, hc: &http.Client{Transport: tr}}
}

// answer is one HTTP exchange's outcome, its body decoded as JSON.
type answer struct {
	status int
	header http.Header
	body   any
}

func (a answer) object(t *testing.T) map[string]any {
	t.Helper()
	m, ok := a.body.(map[string]any)
	require.True(t, ok, "body is %#v", a.body)
	return m
}

// exchange sends one request; it does not fail the test, so goroutines can
// use it.
func (b *bundle) exchange(method, path string, body any, auth ...string) (answer, error) {
	var rd io.Reader
	if body != nil {
		raw, ok := body.(string)
		if !ok {
			enc, err := json.Marshal(body)
			if err != nil {
				return answer{}, err
			}
			raw = string(enc)
		}
		rd = strings.NewReader(raw)
	}
	req, err := http.NewRequest(method, b.url+path, rd)
	if err != nil {
		return answer{}, err
	}
	if len(auth) == 2 {
		req.SetBasicAuth(auth[0], auth[1])
	}
	resp, err := b.hc.Do(req)
	if err != nil {
		return answer{}, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return answer{}, err
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		return answer{}, fmt.Errorf("content type %q", ct)
	}
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		return answer{}, fmt.Errorf("body %q: %w", raw, err)
	}
	return answer{status: resp.StatusCode, header: resp.Header, body: v}, nil
}

func (b *bundle) do(t *testing.T, method, path string, body any, auth ...string) answer {
	t.Helper()
	a, err := b.exchange(method, path, body, auth...)
	require.NoError(t, err)
	return a
}

// goTxt2Img runs a txt2img request on another goroutine.
func (b *bundle) goTxt2Img(req map[string]any) <-chan result {
	out := make(chan result, 1)
	go func() {
		a, err := b.exchange(http.MethodPost, "/sdapi/v1/txt2img", req)
		out <- result{a, err}
	}()
	return out
}

type result struct {
	answer
	err error
}

func (r result) must(t *testing.T) answer {
	t.Helper()
	require.NoError(t, r.err)
	return r.answer
}

// progressState reads progress once, for await conditions.
func (b *bundle) progressState() (p, state map[string]any) {
	a, err := b.exchange(http.MethodGet, "/sdapi/v1/progress?skip_current_image=false", nil)
	if err != nil {
		return nil, nil
	}
	p, _ = a.body.(map[string]any)
	state, _ = p["state"].(map[string]any)
	return p, state
}

// await blocks until cond holds, checking it again at each change of fake's
// state; it fails the test after a generous 10 s.
func await(t *testing.T, fake *fakesd.Server, what string, cond func() bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, fake.Await(ctx, what, cond))
}

func (b *bundle) txt2img(t *testing.T, req map[string]any) answer {
	t.Helper()
	return b.do(t, http.MethodPost, "/sdapi/v1/txt2img", req)
}

func images(t *testing.T, a answer) []image.Image {
	t.Helper()
	require.Equal(t, http.StatusOK, a.status, "%v", a.body)
	var out []image.Image
	for _, s := range a.object(t)["images"].([]any) {
		raw, err := base64.StdEncoding.DecodeString(s.(string))
		require.NoError(t, err)
		im, err := png.Decode(bytes.NewReader(raw))
		require.NoError(t, err)
		out = append(out, im)
	}
	return out
}

func info(t *testing.T, a answer) map[string]any {
	t.Helper()
	var m map[string]any
	require.NoError(t, json.Unmarshal([]byte(a.object(t)["info"].(string)), &m), "info is a JSON string")
	return m
}

func TestTxt2Img(t *testing.T) {
	t.Parallel()
	b := setup(t, fakesd.Config{Instant: true})
	a := b.txt2img(t, map[string]any{"prompt": "a fox", "negative_prompt": "blur", "width": 128, "height": 64,
		"steps": 3, "cfg_scale": 5.5, "seed": 10, "batch_size": 2, "n_iter": 2, "sampler_name": "DDIM"})
	imgs := images(t, a)
	require.Len(t, imgs, 4)
	for _, im := range imgs {
		require.Equal(t, image.Pt(128, 64), im.Bounds().Size())
	}
	in := info(t, a)
	require.Equal(t, []any{10.0, 11.0, 12.0, 13.0}, in["all_seeds"])
	for k, v := range map[string]any{"seed": 10.0, "prompt": "a fox", "negative_prompt": "blur", "width": 128.0,
		"height": 64.0, "steps": 3.0, "cfg_scale": 5.5, "sampler_name": "DDIM", "sd_model_name": "fake-v1-5",
		"index_of_first_image": 0.0} {
		require.Equal(t, v, in[k], k)
	}
	require.Equal(t, "a fox", a.object(t)["parameters"].(map[string]any)["prompt"])

	// Random seeds are reported; a variation departs from its seed's picture.
	a = b.txt2img(t, map[string]any{"prompt": "a fox", "width": 64, "height": 64, "steps": 2})
	seed := info(t, a)["seed"].(float64)
	require.GreaterOrEqual(t, seed, 0.0)
	base := b.txt2img(t, map[string]any{"prompt": "a fox", "width": 64, "height": 64, "steps": 2, "seed": seed})
	require.Equal(t, a.object(t)["images"], base.object(t)["images"])
	varied := b.txt2img(t, map[string]any{"prompt": "a fox", "width": 64, "height": 64, "steps": 2, "seed": seed,
		"subseed": 5, "subseed_strength": 0.5})
	require.NotEqual(t, a.object(t)["images"], varied.object(t)["images"])
	require.Equal(t, 0.5, info(t, varied)["subseed_strength"])
	require.Equal(t, 4, b.fake.Generations())
}

func TestProgressAndInterrupt(t *testing.T) {
	t.Parallel()
	b := setup(t, fakesd.Config{StepDuration: 5 * time.Millisecond, PreviewEvery: 1})
	idle := b.do(t, http.MethodGet, "/sdapi/v1/progress", nil).object(t)
	require.Equal(t, 0.0, idle["progress"])
	require.Equal(t, 0.0, idle["state"].(map[string]any)["job_count"])
	require.Nil(t, idle["current_image"])

	done := b.goTxt2Img(map[string]any{"prompt": "slow", "width": 96, "height": 64, "steps": 1000, "seed": 3})
	require.NoError(t, b.fake.WaitStarted(context.Background(), 1))
	var p map[string]any
	await(t, b.fake, "a preview in progress", func() bool {
		p, _ = b.progressState()
		return p["current_image"] != nil
	})
	st := p["state"].(map[string]any)
	require.Equal(t, 1.0, st["job_count"])
	require.Equal(t, 1000.0, st["sampling_steps"])
	require.InDelta(t, 0.01+st["sampling_step"].(float64)/1000, p["progress"], 1e-9)
	require.Positive(t, p["eta_relative"])
	raw, err := base64.StdEncoding.DecodeString(p["current_image"].(string))
	require.NoError(t, err)
	_, err = png.Decode(bytes.NewReader(raw))
	require.NoError(t, err)
	skipped := b.do(t, http.MethodGet, "/sdapi/v1/progress?skip_current_image=true", nil).object(t)
	require.Nil(t, skipped["current_image"])

	require.Equal(t, http.StatusOK, b.do(t, http.MethodPost, "/sdapi/v1/interrupt", nil).status)
	imgs := images(t, (<-done).must(t))
	require.Len(t, imgs, 1, "interrupted jobs answer 200 with their partial images")
	require.Equal(t, image.Pt(96, 64), imgs[0].Bounds().Size())
	require.Equal(t, 1, b.fake.Interrupts())
	require.Equal(t, 0.0, b.do(t, http.MethodGet, "/sdapi/v1/progress", nil).object(t)["progress"])
}

func TestOneJobAtATime(t *testing.T) {
	t.Parallel()
	b := setup(t, fakesd.Config{StepDuration: 5 * time.Millisecond})
	first := b.goTxt2Img(map[string]any{"width": 64, "height": 64, "steps": 1000})
	require.NoError(t, b.fake.WaitStarted(context.Background(), 1))
	second := b.goTxt2Img(map[string]any{"width": 64, "height": 64, "steps": 2})
	require.Equal(t, 1, b.fake.Generations(), "the second job queues behind the first")
	b.do(t, http.MethodPost, "/sdapi/v1/interrupt", nil)
	images(t, (<-first).must(t))
	require.NoError(t, b.fake.WaitStarted(context.Background(), 2))
	require.Len(t, images(t, (<-second).must(t)), 1, "the interrupt did not carry over to the next job")
}

func TestErrorShapes(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		cfg    fakesd.Config
		prep   func(*fakesd.Server)
		method string
		path   string
		body   any
		auth   []string
		status int
		want   any
	}{
		{name: "validation", method: "POST", path: "/sdapi/v1/txt2img", body: map[string]any{"width": 100}, status: 422,
			want: map[string]any{"detail": []any{map[string]any{"loc": []any{"body", "width"},
				"msg": "ensure this value is a multiple of 8", "type": "value_error.number.not_multiple"}}}},
		{name: "bad JSON", method: "POST", path: "/sdapi/v1/txt2img", body: `{"width":`, status: 422,
			want: map[string]any{"detail": []any{map[string]any{"loc": []any{"body", 9.0},
				"msg": "unexpected end of JSON input", "type": "value_error.jsondecode"}}}},
		{name: "fail 500", prep: func(s *fakesd.Server) { s.FailNext(1, 500) }, method: "POST", path: "/sdapi/v1/txt2img",
			body: map[string]any{"steps": 1}, status: 500, want: map[string]any{"error": "RuntimeError", "detail": "", "body": "",
				"errors": "injected failure (fakesd FailNext)"}},
		{name: "fail 503", prep: func(s *fakesd.Server) { s.FailNext(1, 503) }, method: "POST", path: "/sdapi/v1/txt2img",
			body: map[string]any{"steps": 1}, status: 503, want: map[string]any{"error": "HTTPException",
				"detail": "injected failure (fakesd FailNext)", "body": "", "errors": "503: injected failure (fakesd FailNext)"}},
		{name: "unknown upscaler", method: "POST", path: "/sdapi/v1/extra-single-image", body: map[string]any{"image": "AAAA", "upscaler_1": "nope"},
			status: 500, want: map[string]any{"error": "AssertionError", "detail": "", "body": "", "errors": "could not find upscaler named nope"}},
		{name: "no api", cfg: fakesd.Config{NoAPI: true}, method: "GET", path: "/sdapi/v1/sd-models", status: 404,
			want: map[string]any{"detail": "Not Found"}},
		{name: "unknown option model", method: "POST", path: "/sdapi/v1/options", body: map[string]any{"sd_model_checkpoint": "nope"},
			status: 500, want: map[string]any{"error": "RuntimeError", "detail": "", "body": "", "errors": "model 'nope' not found"}},
		{name: "no credentials", cfg: fakesd.Config{Username: "u", Password: "p"}, method: "GET", path: "/sdapi/v1/sd-models",
			status: 401, want: map[string]any{"error": "HTTPException", "detail": "Not authenticated", "body": "",
				"errors": "401: Not authenticated"}},
		{name: "wrong credentials", cfg: fakesd.Config{Username: "u", Password: "p"}, method: "GET", path: "/sdapi/v1/progress",
			auth: []string{"u", "x"}, status: 401, want: map[string]any{"error": "HTTPException",
				"detail": "Incorrect username or password", "body": "", "errors": "401: Incorrect username or password"}},
		{name: "unknown route", method: "GET", path: "/sdapi/v1/nope", status: 404, want: map[string]any{"detail": "Not Found"}},
		{name: "bad upscale", method: "POST", path: "/sdapi/v1/extra-single-image", body: map[string]any{"image": "AAAA"},
			status: 500, want: map[string]any{"error": "HTTPException", "detail": "Invalid encoded image", "body": "",
				"errors": "500: Invalid encoded image"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.cfg.Instant = true
			b := setup(t, tc.cfg)
			if tc.prep != nil {
				tc.prep(b.fake)
			}
			a := b.do(t, tc.method, tc.path, tc.body, tc.auth...)
			require.Equal(t, tc.status, a.status)
			require.Equal(t, tc.want, a.body)
			if tc.status == http.StatusUnauthorized {
				require.Equal(t, "Basic", a.header.Get("WWW-Authenticate"))
			}
		})
	}
}

func TestAuthAccepted(t *testing.T) {
	t.Parallel()
	b := setup(t, fakesd.Config{Instant: true, Username: "u", Password: "p"})
	require.Equal(t, http.StatusOK, b.do(t, http.MethodGet, "/sdapi/v1/samplers", nil, "u", "p").status)
}

func TestOptionsAndModels(t *testing.T) {
	t.Parallel()
	b := setup(t, fakesd.Config{Instant: true, Models: []string{"a", "b"}})
	models := b.do(t, http.MethodGet, "/sdapi/v1/sd-models", nil).body.([]any)
	require.Len(t, models, 2)
	second := models[1].(map[string]any)
	require.Equal(t, "b", second["model_name"])
	require.Len(t, second["hash"], 10)
	require.Len(t, second["sha256"], 64)
	require.Equal(t, "b.safetensors ["+second["hash"].(string)+"]", second["title"])

	samplers := b.do(t, http.MethodGet, "/sdapi/v1/samplers", nil).body.([]any)
	require.Equal(t, map[string]any{"name": "DPM++ 2M", "aliases": []any{"k_dpmpp_2m"}, "options": map[string]any{}}, samplers[0])

	require.Equal(t, http.StatusOK, b.do(t, http.MethodPost, "/sdapi/v1/options",
		map[string]any{"sd_model_checkpoint": second["title"], "jpeg_quality": 95}).status)
	opts := b.do(t, http.MethodGet, "/sdapi/v1/options", nil).object(t)
	require.Equal(t, second["title"], opts["sd_model_checkpoint"])
	require.Equal(t, 95.0, opts["jpeg_quality"])
	a := b.txt2img(t, map[string]any{"width": 64, "height": 64, "steps": 1})
	require.Equal(t, "b", info(t, a)["sd_model_name"])
	a = b.txt2img(t, map[string]any{"width": 64, "height": 64, "steps": 1, "override_settings": map[string]any{"sd_model_checkpoint": "a"}})
	require.Equal(t, "a", info(t, a)["sd_model_name"])
}

func TestUpscale(t *testing.T) {
	t.Parallel()
	b := setup(t, fakesd.Config{Instant: true})
	src := b.txt2img(t, map[string]any{"width": 64, "height": 72, "steps": 1}).object(t)["images"].([]any)[0].(string)
	a := b.do(t, http.MethodPost, "/sdapi/v1/extra-single-image", map[string]any{"image": "data:image/png;base64," + src,
		"upscaling_resize": 1.5, "upscaler_1": "R-ESRGAN 4x+"})
	require.Equal(t, http.StatusOK, a.status)
	raw, err := base64.StdEncoding.DecodeString(a.object(t)["image"].(string))
	require.NoError(t, err)
	im, err := png.Decode(bytes.NewReader(raw))
	require.NoError(t, err)
	require.Equal(t, image.Pt(96, 108), im.Bounds().Size())
	require.Equal(t, http.StatusUnprocessableEntity, b.do(t, http.MethodPost, "/sdapi/v1/extra-single-image",
		map[string]any{"image": src, "upscaling_resize": 5}).status)
}

func TestSetDown(t *testing.T) {
	t.Parallel()
	b := setup(t, fakesd.Config{Instant: true})
	b.fake.SetDown(true)
	resp, err := b.hc.Get(b.url + "/sdapi/v1/progress")
	if err == nil {
		resp.Body.Close()
	}
	require.Error(t, err, "the connection is dropped")
	b.fake.SetDown(false)
	require.Equal(t, http.StatusOK, b.do(t, http.MethodGet, "/sdapi/v1/progress", nil).status)
}

func TestWaitStartedGivesUp(t *testing.T) {
	t.Parallel()
	b := setup(t, fakesd.Config{Instant: true})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	require.ErrorIs(t, b.fake.WaitStarted(ctx, 1), context.Canceled)
	require.NoError(t, b.fake.WaitStarted(ctx, 0))
}

func TestServe(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	addr := make(chan string, 1)
	errc := make(chan error, 1)
	fake := fakesd.New(fakesd.Config{StepDuration: time.Hour})
	go func() {
		errc <- fake.Serve(ctx, "127.0.0.1:0", func(_ string, args ...any) {
			addr <- fmt.Sprint(args[0])
		})
	}()
	tr := http.DefaultTransport.(*http.Transport).Clone()
	t.Cleanup(tr.CloseIdleConnections)
	b := &bundle{url: "http://" + <-addr, hc: &http.Client{Transport: tr}}
	require.Equal(t, http.StatusOK, b.do(t, http.MethodGet, "/sdapi/v1/sd-models", nil).status)

	// A job that would take an hour a step does not hold shutdown up.
	job := b.goTxt2Img(map[string]any{"steps": 2})
	await(t, fake, "the job sampling", func() bool {
		_, st := b.progressState()
		return st["job_count"] == 1.0
	})
	cancel()
	require.NoError(t, <-errc)
	require.Error(t, (<-job).err, "the job's connection is closed unanswered")
}

func (b *bundle) task(t *testing.T, id string, livePreview int) map[string]any {
	t.Helper()
	return b.do(t, http.MethodPost, "/internal/progress", map[string]any{"id_task": id, "id_live_preview": livePreview}).object(t)
}

func waitState(t *testing.T, fake *fakesd.Server, id, state string) fakesd.TaskInfo {
	t.Helper()
	var info fakesd.TaskInfo
	await(t, fake, fmt.Sprintf("task %s %s", id, state), func() bool {
		var ok bool
		info, ok = fake.Task(id)
		return ok && info.State == state
	})
	return info
}

// One queue for every client; /internal/progress per task; the
// server-wide interrupt stops what runs and a task that begins later
// clears it; an abandoned request keeps its place and runs in full.
func TestSharedQueueTasksAndInterrupt(t *testing.T) {
	t.Parallel()
	b := setup(t, fakesd.Config{StepDuration: 5 * time.Millisecond, PreviewEvery: 1})
	first := b.goTxt2Img(map[string]any{"width": 64, "height": 64, "steps": 1000, "force_task_id": "A"})
	waitState(t, b.fake, "A", "active")
	// B's client gives up while B waits; B stays queued.
	ctx, cancel := context.WithCancel(context.Background())
	body, _ := json.Marshal(map[string]any{"width": 64, "height": 64, "steps": 8, "force_task_id": "B"})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, b.url+"/sdapi/v1/txt2img", bytes.NewReader(body))
	require.NoError(t, err)
	abandoned := make(chan error, 1)
	go func() {
		resp, err := b.hc.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		abandoned <- err
	}()
	waitState(t, b.fake, "B", "queued")
	cancel()
	require.ErrorIs(t, <-abandoned, context.Canceled)

	queued := b.task(t, "B", -1)
	require.Equal(t, map[string]any{"active": false, "queued": true, "completed": false, "progress": nil, "eta": nil,
		"live_preview": nil, "id_live_preview": -1.0, "textinfo": "In queue: 1/1"}, queued)
	require.Equal(t, map[string]any{"active": false, "queued": false, "completed": false, "progress": nil, "eta": nil,
		"live_preview": nil, "id_live_preview": -1.0, "textinfo": "Waiting..."}, b.task(t, "nobody", -1))
	var running map[string]any
	await(t, b.fake, "a live preview of task A", func() bool {
		running = b.task(t, "A", -1)
		return running["live_preview"] != nil && running["progress"].(float64) > 0
	})
	require.Equal(t, true, running["active"])
	require.True(t, strings.HasPrefix(running["live_preview"].(string), "data:image/png;base64,"))
	require.Positive(t, running["eta"])
	again := b.task(t, "A", int(running["id_live_preview"].(float64)))
	if again["id_live_preview"] == running["id_live_preview"] {
		require.Nil(t, again["live_preview"], "the preview the caller has is not sent again")
	}

	b.do(t, http.MethodPost, "/sdapi/v1/interrupt", nil) // server-wide: stops A
	images(t, (<-first).must(t))
	require.True(t, waitState(t, b.fake, "A", "completed").Interrupted)
	infoB := waitState(t, b.fake, "B", "completed")
	require.False(t, infoB.Interrupted, "B began after the interrupt: begin cleared it")
	require.Equal(t, 8, infoB.StepsDone, "the abandoned request ran in full")
	require.Equal(t, true, b.task(t, "B", -1)["completed"])
}

func TestModelOverrideAndRestore(t *testing.T) {
	t.Parallel()
	b := setup(t, fakesd.Config{Instant: true})
	base := map[string]any{"width": 64, "height": 64, "steps": 1}
	with := func(extra map[string]any) map[string]any {
		m := map[string]any{}
		for k, v := range base {
			m[k] = v
		}
		for k, v := range extra {
			m[k] = v
		}
		return m
	}
	a := b.txt2img(t, with(map[string]any{"override_settings": map[string]any{"sd_model_checkpoint": "fake-xl"}}))
	require.Equal(t, "fake-xl", info(t, a)["sd_model_name"])
	require.Equal(t, 2, b.fake.Loads(), "loaded, then restored afterwards (the default)")
	require.Equal(t, "fake-v1-5", b.fake.Loaded())

	a = b.txt2img(t, with(map[string]any{"override_settings": map[string]any{"sd_model_checkpoint": "fake-xl"},
		"override_settings_restore_afterwards": false}))
	require.Equal(t, "fake-xl", info(t, a)["sd_model_name"])
	require.Equal(t, 3, b.fake.Loads())
	require.Equal(t, "fake-xl", b.fake.Loaded(), "kept loaded")

	a = b.txt2img(t, with(map[string]any{"override_settings": map[string]any{"sd_model_checkpoint": "no-such-model"}}))
	require.Equal(t, "fake-xl", info(t, a)["sd_model_name"], "an unknown checkpoint is dropped: the loaded one runs")
	require.Equal(t, 3, b.fake.Loads())
}

func TestSlowFirstLoad(t *testing.T) {
	t.Parallel()
	b := setup(t, fakesd.Config{StepDuration: 5 * time.Millisecond, FirstLoadDuration: time.Hour})
	done := b.goTxt2Img(map[string]any{"width": 64, "height": 64, "steps": 2, "force_task_id": "L",
		"override_settings": map[string]any{"sd_model_checkpoint": "fake-flux"}})
	waitState(t, b.fake, "L", "active")
	_, st := b.progressState()
	require.Equal(t, -1.0, st["job_count"], "job_count is -1 while weights load")
	p := b.task(t, "L", -1)
	require.Equal(t, 0.0, p["progress"])
	require.Nil(t, p["eta"])
	b.fake.Close() // the load never ends on its own
	require.Equal(t, http.StatusInternalServerError, (<-done).must(t).status)
}

func TestSilentSamplerFallback(t *testing.T) {
	t.Parallel()
	b := setup(t, fakesd.Config{Instant: true})
	a := b.txt2img(t, map[string]any{"width": 64, "height": 64, "steps": 1, "sampler_name": "Heun", "force_task_id": "s1"})
	require.Equal(t, "DPM++ 2M", info(t, a)["sampler_name"], "an unknown sampler silently runs the default")
	b.txt2img(t, map[string]any{"width": 64, "height": 64, "steps": 1, "sampler_name": "Euler a Karras", "force_task_id": "s2"})
	ti, _ := b.fake.Task("s2")
	require.Equal(t, [2]string{"Euler a", "karras"}, [2]string{ti.Sampler, ti.Scheduler})
	b.txt2img(t, map[string]any{"width": 64, "height": 64, "steps": 1, "sampler_name": "DDIM", "scheduler": "exponential", "force_task_id": "s3"})
	ti, _ = b.fake.Task("s3")
	require.Equal(t, [2]string{"DDIM", "exponential"}, [2]string{ti.Sampler, ti.Scheduler})
}

func TestHangStallJXLAndNoAPI(t *testing.T) {
	t.Parallel()
	b := setup(t, fakesd.Config{StepDuration: 5 * time.Millisecond})
	b.fake.SetHang(true)
	hc := &http.Client{Timeout: 100 * time.Millisecond, Transport: b.hc.Transport}
	_, err := hc.Post(b.url+"/sdapi/v1/txt2img", "application/json", strings.NewReader(`{"steps":2}`))
	require.Error(t, err, "accepted, never answered")
	require.Empty(t, b.fake.Tasks())
	b.fake.SetHang(false)

	b.fake.StallAt(2)
	done := b.goTxt2Img(map[string]any{"width": 64, "height": 64, "steps": 10, "force_task_id": "S"})
	await(t, b.fake, "task S at step 2", func() bool { ti, _ := b.fake.Task("S"); return ti.StepsDone == 2 })
	frozen := b.task(t, "S", -1)["progress"]
	require.Equal(t, 0.2, frozen)
	b.do(t, http.MethodPost, "/sdapi/v1/interrupt", nil)
	images(t, (<-done).must(t))
	require.True(t, waitState(t, b.fake, "S", "completed").Interrupted)

	jxl := setup(t, fakesd.Config{Instant: true, SamplesFormat: "jxl"})
	a := jxl.txt2img(t, map[string]any{"width": 64, "height": 64, "steps": 1})
	raw, err := base64.StdEncoding.DecodeString(a.object(t)["images"].([]any)[0].(string))
	require.NoError(t, err)
	require.True(t, bytes.HasPrefix(raw, []byte("\x00\x00\x00\x0cJXL \r\n\x87\n")))

	noAPI := setup(t, fakesd.Config{Instant: true, NoAPI: true})
	require.Equal(t, http.StatusNotFound, noAPI.do(t, http.MethodPost, "/sdapi/v1/txt2img", map[string]any{}).status)
	require.Equal(t, http.StatusOK, noAPI.do(t, http.MethodPost, "/internal/progress", map[string]any{"id_task": "x"}).status,
		"the UI's own routes answer without --api")
}

func TestImg2ImgAndCatalogs(t *testing.T) {
	t.Parallel()
	b := setup(t, fakesd.Config{Instant: true})
	src := b.txt2img(t, map[string]any{"width": 64, "height": 64, "steps": 4})
	init := src.object(t)["images"].([]any)[0]
	a := b.do(t, http.MethodPost, "/sdapi/v1/img2img", map[string]any{"width": 64, "height": 64, "steps": 10,
		"init_images": []any{init}, "denoising_strength": 0.3, "force_task_id": "i"})
	require.Len(t, images(t, a), 1)
	ti, _ := b.fake.Task("i")
	require.Equal(t, 3, ti.StepsDone)
	require.Equal(t, http.StatusNotFound, b.do(t, http.MethodPost, "/sdapi/v1/img2img", map[string]any{"steps": 1}).status)

	sch := b.do(t, http.MethodGet, "/sdapi/v1/schedulers", nil).body.([]any)
	require.Equal(t, "karras", sch[2].(map[string]any)["name"])
	require.Equal(t, "Karras", sch[2].(map[string]any)["label"])
	loras := b.do(t, http.MethodGet, "/sdapi/v1/loras", nil).body.([]any)
	require.Equal(t, "fake-detail", loras[0].(map[string]any)["name"])
	ups := b.do(t, http.MethodGet, "/sdapi/v1/upscalers", nil).body.([]any)
	require.Len(t, ups, 4)
}

func TestSubmitAsAnotherClient(t *testing.T) {
	t.Parallel()
	b := setup(t, fakesd.Config{StepDuration: 5 * time.Millisecond})
	id, done := b.fake.Submit(fakesd.Txt2ImgRequest{Prompt: "web UI user", Width: 64, Height: 64, Steps: 30})
	waitState(t, b.fake, id, "active")
	require.Equal(t, true, b.task(t, id, -1)["active"])
	a := b.goTxt2Img(map[string]any{"width": 64, "height": 64, "steps": 2, "force_task_id": "mine"})
	waitState(t, b.fake, "mine", "queued")
	<-done
	ti, _ := b.fake.Task(id)
	require.Equal(t, fakesd.TaskInfo{ID: id, Kind: "txt2img", State: "completed", StepsDone: 30, Prompt: "web UI user",
		Model: "fake-v1-5", Sampler: "DPM++ 2M", Scheduler: "automatic"}, ti)
	images(t, (<-a).must(t))
}
