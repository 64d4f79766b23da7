package fakesd

import (
	"bytes"
	"image"
	"image/png"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestProgressFormula(t *testing.T) {
	t.Parallel()
	start := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name          string
		st            jobState
		elapsed       time.Duration
		progress, eta float64
	}{
		{name: "idle", st: jobState{jobCount: 0, step: 20, steps: 20}, elapsed: time.Second},
		{name: "loading", st: jobState{jobCount: -1, step: 0, steps: 20}, elapsed: time.Second, progress: 0.01, eta: 99},
		{name: "first step", st: jobState{jobCount: 1, step: 1, steps: 4}, elapsed: 26 * time.Second / 10, progress: 0.26, eta: 7.4},
		{name: "second iteration", st: jobState{jobCount: 2, jobNo: 1, step: 2, steps: 4}, elapsed: 76 * time.Second / 10, progress: 0.76, eta: 2.4},
		{name: "capped at 1", st: jobState{jobCount: 1, step: 4, steps: 4}, elapsed: 101 * time.Second / 100, progress: 1, eta: -0.01},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.st.started = start
			p, eta := tc.st.progress(start.Add(tc.elapsed))
			require.InDelta(t, tc.progress, p, 1e-9)
			require.InDelta(t, tc.eta, eta, 1e-9)
		})
	}
}

func TestDecodeTxt2Img(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		body string
		want Txt2ImgRequest
		errs []validationError
	}{
		{name: "defaults", body: `{"prompt":"p"}`, want: Txt2ImgRequest{Prompt: "p", Width: 512, Height: 512, Steps: 50,
			CFGScale: 7, Seed: -1, Subseed: -1, BatchSize: 1, NIter: 1, SendImages: true}},
		{name: "fields", body: `{"prompt":"p","width":64,"height":2048,"steps":1,"seed":9,"batch_size":16,"n_iter":2,"send_images":false,"unknown":1}`,
			want: Txt2ImgRequest{Prompt: "p", Width: 64, Height: 2048, Steps: 1, CFGScale: 7, Seed: 9, Subseed: -1, BatchSize: 16, NIter: 2}},
		{name: "ranges", body: `{"width":100,"height":4096,"steps":0,"batch_size":17,"n_iter":0}`, errs: []validationError{
			{Loc: []any{"body", "width"}, Msg: "ensure this value is a multiple of 8", Type: "value_error.number.not_multiple"},
			{Loc: []any{"body", "height"}, Msg: "ensure this value is less than or equal to 2048", Type: "value_error.number.not_le"},
			{Loc: []any{"body", "steps"}, Msg: "ensure this value is greater than or equal to 1", Type: "value_error.number.not_ge"},
			{Loc: []any{"body", "batch_size"}, Msg: "ensure this value is less than or equal to 16", Type: "value_error.number.not_le"},
			{Loc: []any{"body", "n_iter"}, Msg: "ensure this value is greater than or equal to 1", Type: "value_error.number.not_ge"},
		}},
		{name: "type", body: `{"width":"wide"}`, errs: []validationError{
			{Loc: []any{"body", "width"}, Msg: "value is not a valid integer", Type: "type_error.integer"}}},
		{name: "not an object", body: `[1]`, errs: []validationError{
			{Loc: []any{"body"}, Msg: "value is not a valid dict", Type: "type_error.dict"}}},
		{name: "empty", body: ` `, errs: []validationError{{Loc: []any{"body"}, Msg: "field required", Type: "value_error.missing"}}},
		{name: "null", body: `null`, errs: []validationError{{Loc: []any{"body"}, Msg: "field required", Type: "value_error.missing"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, errs := decodeTxt2Img([]byte(tc.body), 2048)
			require.Equal(t, tc.errs, errs)
			if tc.errs == nil {
				require.Equal(t, tc.want, got)
			}
		})
	}
	_, errs := decodeTxt2Img([]byte(`{"prompt":`), 2048)
	require.Len(t, errs, 1)
	require.Equal(t, "value_error.jsondecode", errs[0].Type)
}

func FuzzDecodeTxt2Img(f *testing.F) {
	f.Add([]byte(`{"prompt":"x","width":512,"height":512,"steps":20}`), 2048)
	f.Add([]byte(`{"width":-8,"override_settings":{"sd_model_checkpoint":1}}`), 1024)
	f.Add([]byte(`{"seed":1e30}`), 64)
	f.Add([]byte(`nonsense`), 2048)
	f.Fuzz(func(t *testing.T, body []byte, maxSize int) {
		req, errs := decodeTxt2Img(body, maxSize)
		for _, e := range errs {
			require.NotEmpty(t, e.Loc)
			require.Equal(t, "body", e.Loc[0])
			require.NotEmpty(t, e.Msg)
		}
		if errs == nil {
			require.True(t, req.Width >= minSize && req.Width <= maxSize && req.Width%8 == 0)
			require.True(t, req.Height >= minSize && req.Height <= maxSize && req.Height%8 == 0)
			require.True(t, req.Steps >= 1 && req.Steps <= maxSteps)
			require.True(t, req.BatchSize >= 1 && req.BatchSize <= maxBatch)
			require.True(t, req.NIter >= 1 && req.NIter <= maxBatch)
		}
	})
}

func TestRender(t *testing.T) {
	t.Parallel()
	enc := func(sc scene, w, h int, done float64) []byte {
		b, err := encodePNG(sc.draw(w, h, done))
		require.NoError(t, err)
		return b
	}
	a := newScene("a fox", 1)
	for _, size := range []image.Point{{512, 512}, {64, 2048}, {96, 64}, {1, 1}} {
		im, err := png.Decode(bytes.NewReader(enc(a, size.X, size.Y, 1)))
		require.NoError(t, err)
		require.Equal(t, size, im.Bounds().Size())
	}
	require.Equal(t, enc(a, 96, 64, 1), enc(newScene("a fox", 1), 96, 64, 1), "deterministic")
	require.NotEqual(t, enc(a, 96, 64, 1), enc(newScene("a fox", 2), 96, 64, 1), "seed matters")
	require.NotEqual(t, enc(a, 96, 64, 1), enc(newScene("a cat", 1), 96, 64, 1), "prompt matters")
	require.NotEqual(t, enc(a, 96, 64, 1), enc(a, 96, 64, 0.5), "unfinished is washed out")
	b := newScene("a fox", 2)
	require.Equal(t, a, a.mix(b, 0))
	require.Equal(t, b, a.mix(b, 1))
}

func TestPreviewSize(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ w, h, pw, ph int }{
		{96, 64, 96, 64}, {512, 512, 256, 256}, {1024, 512, 256, 128}, {64, 2048, 8, 256},
	} {
		pw, ph := previewSize(tc.w, tc.h)
		require.Equal(t, [2]int{tc.pw, tc.ph}, [2]int{pw, ph}, "%dx%d", tc.w, tc.h)
	}
}

func BenchmarkRender512(b *testing.B) {
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if _, err := encodePNG(newScene("bench", int64(i)).draw(512, 512, 1)); err != nil {
			b.Fatal(err)
		}
	}
}
