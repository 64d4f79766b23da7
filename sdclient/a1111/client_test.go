package a1111_test

import (
	"bytes"
	"context"
	"errors"
	"image"
	"image/png"
	"io"
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
	require.Equal(t, map[string]any{"sd_model_checkpoint": "fake-xl"}, sent.OverrideSettings)

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
		require.InDelta(t, min(0.01+float64(ev.Step)/10, 1), ev.Fraction, 1e-9, "A1111's formula")
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

func TestInterruptReturnsPartialImages(t *testing.T) {
	t.Parallel()
	b := setup(t, fakesd.Config{StepDuration: 10 * time.Millisecond}, nil)
	req := request(7)
	req.Steps = 1000
	type outcome struct {
		res *sdclient.Result
		err error
	}
	out := make(chan outcome, 1)
	go func() {
		res, err := b.client.Generate(context.Background(), req, nil)
		out <- outcome{res, err}
	}()
	require.NoError(t, b.fake.WaitStarted(context.Background(), 1))
	require.NoError(t, b.client.Interrupt(context.Background()))
	o := <-out
	require.NoError(t, o.err, "an interrupt from elsewhere ends the job with what it has")
	require.Len(t, o.res.Images, 1)
	require.Equal(t, image.Pt(96, 64), decodePNG(t, o.res.Images[0]).Bounds().Size())

	full := setup(t, fakesd.Config{Instant: true}, nil)
	done, err := full.client.Generate(context.Background(), req, nil)
	require.NoError(t, err)
	require.NotEqual(t, done.Images[0].Data, o.res.Images[0].Data, "a partial picture is not the finished one")
}

func TestCancelInterruptsServer(t *testing.T) {
	t.Parallel()
	b := setup(t, fakesd.Config{StepDuration: 10 * time.Millisecond, PreviewEvery: 1}, nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req := request(1)
	req.Steps = 1000
	rec := &recorder{t: t}
	errc := make(chan error, 1)
	go func() {
		_, err := b.client.Generate(ctx, req, rec.progress)
		rec.done()
		errc <- err
	}()
	require.NoError(t, b.fake.WaitStarted(context.Background(), 1))
	cancel()
	err := <-errc
	require.ErrorIs(t, err, context.Canceled)
	require.NotErrorIs(t, err, sdclient.ErrUnavailable)
	require.Equal(t, 1, b.fake.Interrupts())

	// The server is free again.
	_, err = b.client.Generate(context.Background(), request(2), nil)
	require.NoError(t, err)
}

func TestCancelAbandonsServerIgnoringInterrupt(t *testing.T) {
	t.Parallel()
	started := make(chan struct{})
	var interrupts atomic.Int32
	mux := http.NewServeMux()
	mux.HandleFunc("POST /sdapi/v1/txt2img", func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body) // so the server notices the client leave
		close(started)
		<-r.Context().Done() // never answers
	})
	mux.HandleFunc("POST /sdapi/v1/interrupt", func(w http.ResponseWriter, r *http.Request) {
		interrupts.Add(1)
		_, _ = w.Write([]byte("{}"))
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	c := newClient(t, srv.URL, func(cfg *a1111.Config) { cfg.InterruptGrace = 20 * time.Millisecond })

	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, err := c.Generate(ctx, request(1), nil)
		errc <- err
	}()
	<-started
	cancel()
	err := <-errc
	require.ErrorIs(t, err, context.Canceled)
	require.ErrorContains(t, err, "abandoned")
	require.EqualValues(t, 1, interrupts.Load())
}

func TestTimeoutIsUnavailable(t *testing.T) {
	t.Parallel()
	b := setup(t, fakesd.Config{StepDuration: 10 * time.Millisecond}, func(c *a1111.Config) { c.Timeout = 50 * time.Millisecond })
	req := request(1)
	req.Steps = 1000
	_, err := b.client.Generate(context.Background(), req, nil)
	require.ErrorIs(t, err, sdclient.ErrUnavailable)
	require.Equal(t, 1, b.fake.Interrupts(), "the abandoned job is interrupted")
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
	}{
		{name: "exception", fail: 500, status: 500, message: "RuntimeError: injected failure (fakesd FailNext)"},
		{name: "http exception", fail: 404, status: 404, message: "injected failure (fakesd FailNext)"},
		{name: "503 is unavailable", fail: 503, status: 503, message: "injected failure (fakesd FailNext)", unavailable: true},
		{name: "validation", mutate: func(r *sdclient.Request) { r.Width, r.Steps = 100, 0 }, status: 422,
			message: "width: ensure this value is a multiple of 8; steps: ensure this value is greater than or equal to 1"},
		{name: "sampler", mutate: func(r *sdclient.Request) { r.Sampler = "Heun" }, status: 404, message: "Sampler not found"},
		{name: "model", mutate: func(r *sdclient.Request) { r.Model = "nope" }, status: 404, message: "Model not found"},
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
	_, err = c.Models(context.Background())
	require.ErrorIs(t, err, sdclient.ErrUnavailable)
	_, err = c.Generate(context.Background(), request(1), nil)
	require.ErrorIs(t, err, sdclient.ErrUnavailable)

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = c.Models(ctx)
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
			require.NotContains(t, err.Error(), "s3cret")
		})
	}
}

func TestModelsSamplersOptions(t *testing.T) {
	t.Parallel()
	b := setup(t, fakesd.Config{Instant: true}, nil)
	ctx := context.Background()
	models, err := b.client.Models(ctx)
	require.NoError(t, err)
	require.Len(t, models, 2)
	require.Equal(t, "fake-v1-5", models[0].Name)
	require.Equal(t, "fake-v1-5.safetensors ["+models[0].Hash+"]", models[0].Title)
	require.Len(t, models[0].Hash, 10)

	samplers, err := b.client.Samplers(ctx)
	require.NoError(t, err)
	require.Equal(t, []string{"Euler a", "Euler", "DPM++ 2M Karras", "DDIM"}, samplers)

	opts, err := b.client.Options(ctx)
	require.NoError(t, err)
	require.Equal(t, models[0].Title, opts["sd_model_checkpoint"])
	require.Equal(t, "png", opts["samples_format"])
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
		{"negative", a1111.Config{BaseURL: "http://x", Timeout: -time.Second}, "Config.Timeout must not be negative"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := a1111.New(tc.cfg)
			if tc.err == "" {
				require.NoError(t, err)
			} else {
				require.ErrorContains(t, err, tc.err)
			}
		})
	}
}

func BenchmarkGenerate512(b *testing.B) {
	fake := fakesd.New(fakesd.Config{Instant: true, NoPreviews: true})
	srv := httptest.NewServer(fake.Handler())
	defer srv.Close()
	c, err := a1111.New(a1111.Config{BaseURL: srv.URL})
	require.NoError(b, err)
	req := sdclient.Request{Prompt: "bench", Width: 512, Height: 512, Steps: 20, CFGScale: 7, Count: 1}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		req.Seed = int64(i)
		if _, err := c.Generate(context.Background(), req, nil); err != nil {
			b.Fatal(err)
		}
	}
}
