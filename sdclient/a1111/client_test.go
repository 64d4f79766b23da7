package a1111_test

import (
	"bytes"
	"context"
	"errors"
	"image/png"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/easelbot/easel/sdclient"
	"github.com/easelbot/easel/sdclient/a1111"
	"github.com/easelbot/easel/sdclient/fakesd"
)

func setup(t *testing.T, cfg fakesd.Config, user, pass string) (*fakesd.Server, *a1111.Client) {
	t.Helper()
	fake := fakesd.New(cfg)
	srv := httptest.NewServer(fake.Handler())
	t.Cleanup(srv.Close)
	c, err := a1111.New(a1111.Config{BaseURL: srv.URL, Username: user, Password: pass, ProgressInterval: 5 * time.Millisecond})
	require.NoError(t, err)
	return fake, c
}

func req(seed int64) sdclient.Request {
	return sdclient.Request{Prompt: "a red fox in snow", Width: 96, Height: 64, Steps: 10, CFGScale: 7, Seed: seed, Count: 1}
}

func TestGenerateWithProgressAndPreview(t *testing.T) {
	t.Parallel()
	_, c := setup(t, fakesd.Config{StepDuration: 15 * time.Millisecond, PreviewEvery: 2}, "", "")
	var mu sync.Mutex
	var steps []int
	previews := 0
	r := req(42)
	r.Count = 2
	res, err := c.Generate(context.Background(), r, func(p sdclient.Progress) {
		mu.Lock()
		defer mu.Unlock()
		steps = append(steps, p.Step)
		if p.Preview != nil {
			require.Equal(t, "png", p.Preview.Format)
			previews++
		}
		require.Equal(t, 10, p.Steps)
		require.Greater(t, p.Fraction, 0.0)
	})
	require.NoError(t, err)
	require.Len(t, res.Images, 2)
	require.Equal(t, []int64{42, 43}, res.Seeds)
	for _, img := range res.Images {
		im, err := png.Decode(bytes.NewReader(img.Data))
		require.NoError(t, err)
		require.Equal(t, 96, im.Bounds().Dx())
		require.Equal(t, 64, im.Bounds().Dy())
	}
	require.NotEqual(t, res.Images[0].Data, res.Images[1].Data, "seeds differ, images differ")
	mu.Lock()
	defer mu.Unlock()
	require.NotEmpty(t, steps)
	require.IsNonDecreasing(t, steps)
	require.Positive(t, previews)

	again, err := c.Generate(context.Background(), req(42), nil)
	require.NoError(t, err)
	require.Equal(t, res.Images[0].Data, again.Images[0].Data, "same seed and prompt, same image")
}

func TestCancelInterruptsBackend(t *testing.T) {
	t.Parallel()
	fake, c := setup(t, fakesd.Config{StepDuration: 20 * time.Millisecond}, "", "")
	ctx, cancel := context.WithCancel(context.Background())
	r := req(1)
	r.Steps = 500
	errc := make(chan error, 1)
	go func() {
		_, err := c.Generate(ctx, r, nil)
		errc <- err
	}()
	require.NoError(t, fake.WaitStarted(context.Background(), 1))
	cancel()
	err := <-errc
	require.ErrorIs(t, err, context.Canceled)
	require.Equal(t, 1, fake.Interrupts())
}

func TestErrors(t *testing.T) {
	t.Parallel()
	fake, c := setup(t, fakesd.Config{}, "", "")
	fake.FailNext(1, 500)
	_, err := c.Generate(context.Background(), req(1), nil)
	var he *sdclient.HTTPError
	require.True(t, errors.As(err, &he))
	require.Equal(t, 500, he.Status)
	require.Contains(t, he.Message, "RuntimeError: simulated failure")

	bad := req(1)
	bad.Width = 100
	_, err = c.Generate(context.Background(), bad, nil)
	require.True(t, errors.As(err, &he))
	require.Equal(t, 422, he.Status)
	require.Contains(t, he.Message, "width: width must be a multiple of 8")

	fake.SetDown(true)
	_, err = c.Generate(context.Background(), req(1), nil)
	require.ErrorIs(t, err, sdclient.ErrUnavailable)
	require.ErrorIs(t, c.Health(context.Background()), sdclient.ErrUnavailable)
	fake.SetDown(false)
	require.NoError(t, c.Health(context.Background()))

	c2, err := a1111.New(a1111.Config{BaseURL: "http://127.0.0.1:1"})
	require.NoError(t, err)
	_, err = c2.Models(context.Background())
	require.ErrorIs(t, err, sdclient.ErrUnavailable)
	_, err = a1111.New(a1111.Config{BaseURL: "ftp://x"})
	require.ErrorContains(t, err, "url must be")
}

func TestBasicAuthModelsSamplers(t *testing.T) {
	t.Parallel()
	_, c := setup(t, fakesd.Config{Username: "easel", Password: "s3cret"}, "easel", "s3cret")
	models, err := c.Models(context.Background())
	require.NoError(t, err)
	require.Equal(t, "fake-v1-5", models[0].Name)
	samplers, err := c.Samplers(context.Background())
	require.NoError(t, err)
	require.Contains(t, samplers, "Euler a")
	opts, err := c.Options(context.Background())
	require.NoError(t, err)
	require.Equal(t, "fake-v1-5", opts["sd_model_checkpoint"])
	r := req(5)
	r.Model = "fake-xl"
	res, err := c.Generate(context.Background(), r, nil)
	require.NoError(t, err)
	require.Contains(t, res.Info, `"sd_model_name":"fake-xl"`)

	_, wrong := setup(t, fakesd.Config{Username: "easel", Password: "s3cret"}, "easel", "nope")
	_, err = wrong.Models(context.Background())
	var he *sdclient.HTTPError
	require.True(t, errors.As(err, &he))
	require.Equal(t, 401, he.Status)
}

func FuzzErrorMessage(f *testing.F) {
	f.Add([]byte(`{"error":"RuntimeError","detail":"","body":"","errors":"boom"}`))
	f.Add([]byte(`{"detail":[{"loc":["body","width"],"msg":"bad","type":"x"}]}`))
	f.Add([]byte(`{"detail":"Not authenticated"}`))
	f.Add([]byte(`<html>502</html>`))
	f.Fuzz(func(t *testing.T, b []byte) {
		m := a1111.ErrorMessage(b)
		require.LessOrEqual(t, len(m), 204)
	})
}
