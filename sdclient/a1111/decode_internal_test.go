package a1111

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/require"

	"github.com/easelbot/easel/sdclient"
)

// Smallest images the sniffer accepts; decodeTxt2Img does not parse pixels.
var (
	pngBytes  = []byte("\x89PNG\r\n\x1a\nrest")
	jpegBytes = []byte("\xff\xd8\xff\xe0rest")
	webpBytes = []byte("RIFF\x00\x00\x00\x00WEBPVP8 ")
	pngB64    = base64.StdEncoding.EncodeToString(pngBytes)
	jpegB64   = base64.StdEncoding.EncodeToString(jpegBytes)
	webpB64   = base64.StdEncoding.EncodeToString(webpBytes)
)

func answer(t testing.TB, images []string, info any) []byte {
	t.Helper()
	var infoJSON json.RawMessage
	switch v := info.(type) {
	case string:
		infoJSON, _ = json.Marshal(v)
	default:
		b, _ := json.Marshal(v)
		infoJSON = b
	}
	b, err := json.Marshal(map[string]any{"images": images, "parameters": map[string]any{}, "info": infoJSON})
	require.NoError(t, err)
	return b
}

func TestDecodeGeneration(t *testing.T) {
	t.Parallel()
	b64 := func(b string) string { return base64.StdEncoding.EncodeToString([]byte(b)) }
	for _, tc := range []struct {
		name      string
		raw       []byte
		want      int
		reqSeed   int64
		variation bool
		formats   []string
		seeds     []int64
		subseeds  []int64
		err       string
		permanent bool
	}{
		{name: "all_seeds", raw: answer(t, []string{pngB64, jpegB64}, `{"seed":5,"all_seeds":[5,9]}`), want: 2,
			formats: []string{"png", "jpeg"}, seeds: []int64{5, 9}},
		{name: "seed counts up without all_seeds", raw: answer(t, []string{pngB64, webpB64}, `{"seed":5}`), want: 2,
			formats: []string{"png", "webp"}, seeds: []int64{5, 6}},
		{name: "request seed without info", raw: answer(t, []string{pngB64, pngB64}, ""), want: 2, reqSeed: 40,
			formats: []string{"png", "png"}, seeds: []int64{40, 41}},
		{name: "unknown seed", raw: answer(t, []string{pngB64}, "not json"), want: 1, reqSeed: -1,
			formats: []string{"png"}, seeds: []int64{-1}},
		{name: "variation", raw: answer(t, []string{pngB64, pngB64}, `{"seed":5,"all_seeds":[5,5],"subseed":70,"all_subseeds":[70,71]}`),
			want: 2, variation: true, formats: []string{"png", "png"}, seeds: []int64{5, 5}, subseeds: []int64{70, 71}},
		{name: "variation without lists", raw: answer(t, []string{pngB64, pngB64}, `{"seed":5,"subseed":70}`),
			want: 2, variation: true, formats: []string{"png", "png"}, seeds: []int64{5, 5}, subseeds: []int64{70, 71}},
		{name: "variation without info", raw: answer(t, []string{pngB64}, ""), reqSeed: 3,
			want: 1, variation: true, formats: []string{"png"}, seeds: []int64{3}, subseeds: []int64{-1}},
		{name: "grid first", raw: answer(t, []string{jpegB64, pngB64, pngB64}, `{"all_seeds":[1,2],"index_of_first_image":1}`), want: 2,
			formats: []string{"png", "png"}, seeds: []int64{1, 2}},
		{name: "script output after the batch", raw: answer(t, []string{pngB64, jpegB64}, `{"all_seeds":[3]}`), want: 1,
			formats: []string{"png"}, seeds: []int64{3}},
		{name: "info as an object", raw: answer(t, []string{pngB64}, map[string]any{"all_seeds": []int64{8}}), want: 1,
			formats: []string{"png"}, seeds: []int64{8}},
		{name: "data URL", raw: answer(t, []string{"data:image/png;base64," + pngB64}, `{"seed":1}`), want: 1,
			formats: []string{"png"}, seeds: []int64{1}},
		{name: "unpadded base64", raw: answer(t, []string{strings.TrimRight(pngB64, "=")}, `{"seed":1}`), want: 1,
			formats: []string{"png"}, seeds: []int64{1}},
		{name: "no images", raw: answer(t, nil, `{}`), want: 1, err: "no images"},
		{name: "not base64", raw: answer(t, []string{"%%%"}, `{}`), want: 1, err: "image 0: not base64"},
		{name: "not an image", raw: answer(t, []string{b64("plain text")}, `{}`), want: 1,
			err: "image 0: not a PNG, JPEG or WebP image"},
		{name: "jxl", raw: answer(t, []string{b64("\x00\x00\x00\x0cJXL \r\n\x87\nxx")}, `{}`), want: 1,
			err: "JPEG XL images, which Easel cannot use: set its image file format to png", permanent: true},
		{name: "jxl codestream", raw: answer(t, []string{b64("\xff\x0axx")}, `{}`), want: 1, err: "JPEG XL", permanent: true},
		{name: "tiff", raw: answer(t, []string{b64("II*\x00xxxx")}, `{}`), want: 1, err: "samples_format", permanent: true},
		{name: "jp2", raw: answer(t, []string{b64("\x00\x00\x00\x0cjP  \r\n\x87\nxx")}, `{}`), want: 1, err: "JPEG 2000", permanent: true},
		{name: "not JSON", raw: []byte("<html>"), want: 1, err: "not TextToImageResponse JSON"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			res, err := decodeGeneration(tc.raw, tc.want, tc.reqSeed, tc.variation)
			if tc.err != "" {
				require.ErrorContains(t, err, tc.err)
				var pe *sdclient.PermanentError
				require.Equal(t, tc.permanent, errors.As(err, &pe))
				return
			}
			require.NoError(t, err)
			formats := make([]string, len(res.Images))
			for i, img := range res.Images {
				formats[i] = img.Format
			}
			require.Equal(t, tc.formats, formats)
			require.Equal(t, tc.seeds, res.Seeds)
			require.Equal(t, tc.subseeds, res.Subseeds)
		})
	}
}

func TestParseInternalProgress(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		raw  string
		want internalProgress
		err  string
	}{
		{name: "queued", raw: `{"active":false,"queued":true,"completed":false,"progress":null,"eta":null,"live_preview":null,"id_live_preview":-1,"textinfo":"In queue: 2/3"}`,
			want: internalProgress{Queued: true, IDLivePreview: -1, TextInfo: "In queue: 2/3"}},
		{name: "loading", raw: `{"active":true,"queued":false,"completed":false,"progress":0,"eta":null,"live_preview":null,"id_live_preview":-1,"textinfo":null}`,
			want: internalProgress{Active: true, IDLivePreview: -1}},
		{name: "sampling", raw: `{"active":true,"queued":false,"completed":false,"progress":0.25,"eta":1.5,"live_preview":"data:image/png;base64,` + pngB64 + `","id_live_preview":3}`,
			want: internalProgress{Active: true, Progress: 0.25, ETA: 1.5, LivePreview: "data:image/png;base64," + pngB64, IDLivePreview: 3}},
		{name: "preview as a URL is skipped", raw: `{"active":true,"progress":0.5,"live_preview":"./internal/live-preview/4","id_live_preview":4}`,
			want: internalProgress{Active: true, Progress: 0.5, IDLivePreview: 4}},
		{name: "out of range", raw: `{"active":true,"progress":7,"eta":-2,"id_live_preview":1e300}`,
			want: internalProgress{Active: true, Progress: 1, IDLivePreview: 2147483647}},
		{name: "completed", raw: `{"active":false,"queued":false,"completed":true}`, want: internalProgress{Completed: true, IDLivePreview: -1}},
		{name: "no active field", raw: `{"detail":"Not Found"}`, err: "no active field"},
		{name: "not JSON", raw: `<html>`, err: "not ProgressResponse JSON"},
		{name: "wrong type", raw: `{"active":"yes"}`, err: "not ProgressResponse JSON"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := parseInternalProgress([]byte(tc.raw))
			if tc.err != "" {
				require.ErrorContains(t, err, tc.err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
		})
	}
}

func TestParseServerIdle(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		raw      string
		idle, ok bool
	}{
		{`{"progress":0,"state":{"job_count":0}}`, true, true},
		{`{"progress":0.01,"state":{"job_count":-1}}`, false, true},
		{`{"progress":0.5,"state":{"job_count":1.0}}`, false, true},
		{`{"progress":0.5,"state":{}}`, false, false},
		{`{"progress":0.5}`, false, false},
		{`nope`, false, false},
	} {
		idle, ok := parseServerIdle([]byte(tc.raw))
		require.Equal(t, [2]bool{tc.idle, tc.ok}, [2]bool{idle, ok}, tc.raw)
	}
}

func FuzzDecodeGeneration(f *testing.F) {
	f.Add(answer(f, []string{pngB64, jpegB64}, `{"seed":5,"all_seeds":[5,9],"index_of_first_image":1}`), 2, int64(1), false)
	f.Add(answer(f, []string{pngB64, pngB64}, `{"seed":5,"all_seeds":[5],"subseed":9,"all_subseeds":[9,10,11]}`), 2, int64(1), true)
	f.Add([]byte(`{"images":["data:image/png;base64,`+pngB64+`"],"info":{"seed":1}}`), 1, int64(-1), false)
	f.Add([]byte(`{"images":["AAAADEpYTCANCocK"],"info":"{\"subseed\":-1}"}`), 1, int64(-1), true)
	f.Add([]byte(`{"images":null,"info":7}`), 0, int64(0), false)
	f.Fuzz(func(t *testing.T, raw []byte, want int, seed int64, variation bool) {
		res, err := decodeGeneration(raw, want, seed, variation)
		if err != nil {
			require.Nil(t, res)
			return
		}
		require.NotEmpty(t, res.Images)
		require.Len(t, res.Seeds, len(res.Images))
		if variation {
			require.Len(t, res.Subseeds, len(res.Images))
		} else {
			require.Nil(t, res.Subseeds)
		}
		if want > 0 {
			require.LessOrEqual(t, len(res.Images), want)
		}
		for _, img := range res.Images {
			require.Equal(t, sdclient.SniffFormat(img.Data), img.Format)
			require.NotEmpty(t, img.Format)
		}
	})
}

func FuzzParseInfo(f *testing.F) {
	f.Add(`{"seed":5,"all_seeds":[5,9],"subseed":3,"all_subseeds":[3,4],"index_of_first_image":1}`)
	f.Add(`{"seed":"x","all_seeds":{}}`)
	f.Add(`[1,2]`)
	f.Fuzz(func(t *testing.T, info string) {
		gi := parseInfo(info)
		var m map[string]any
		if json.Unmarshal([]byte(info), &m) != nil {
			return
		}
		// What parses as an object reads all_seeds as given when valid.
		if v, ok := m["all_seeds"].([]any); ok && len(gi.AllSeeds) > 0 {
			require.Len(t, gi.AllSeeds, len(v))
		}
	})
}

func FuzzParseInternalProgress(f *testing.F) {
	f.Add([]byte(`{"active":true,"queued":false,"completed":false,"progress":0.25,"eta":1.5,"live_preview":"data:image/png;base64,` + pngB64 + `","id_live_preview":3,"textinfo":null}`))
	f.Add([]byte(`{"active":false,"queued":true,"completed":false,"progress":null,"eta":null,"live_preview":null,"id_live_preview":-1,"textinfo":"In queue: 1/2"}`))
	f.Add([]byte(`{"active":true,"progress":-1e308,"eta":1e308,"id_live_preview":-1e308}`))
	f.Add([]byte(`{"state":{"job_count":0}}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		p, err := parseInternalProgress(raw)
		if err != nil {
			require.Equal(t, internalProgress{}, p)
			return
		}
		require.True(t, p.Progress >= 0 && p.Progress <= 1)
		require.True(t, p.ETA >= 0 && p.ETA <= (24*time.Hour).Seconds())
		require.True(t, p.LivePreview == "" || strings.HasPrefix(p.LivePreview, "data:"))
		parseServerIdle(raw) // must not panic
		// A watch fed any answer reports sane progress.
		w := newWatch(sdclient.DefaultTimeouts, 20, true, time.Now())
		if ev, _ := w.update(pollResult{ans: p}, time.Now()); ev != nil {
			require.True(t, ev.Step >= 0 && ev.Step <= ev.Steps)
		}
	})
}

func TestErrorMessage(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, raw, want string
	}{
		{"exception", `{"error":"RuntimeError","detail":"","body":"","errors":"model 'x' not found"}`, "RuntimeError: model 'x' not found"},
		{"http exception", `{"error":"HTTPException","detail":"Sampler not found","body":"","errors":"404: Sampler not found"}`, "Sampler not found"},
		{"name only", `{"error":"OutOfMemoryError","detail":"","body":"","errors":""}`, "OutOfMemoryError"},
		{"fastapi detail", `{"detail":"Not authenticated"}`, "Not authenticated"},
		{"validation", `{"detail":[{"loc":["body","width"],"msg":"bad width","type":"x"},{"loc":["query","skip",0],"msg":"bad","type":"y"}]}`,
			"width: bad width; query.skip.0: bad"},
		{"json syntax", `{"detail":[{"loc":["body",12],"msg":"Expecting value","type":"value_error.jsondecode"}]}`, "12: Expecting value"},
		{"pydantic v2 extras", `{"detail":[{"type":"missing","loc":["body"],"msg":"Field required","input":null,"url":"u"}]}`, "Field required"},
		{"detail object", `{"detail":{"reason":"busy"}}`, `{"reason":"busy"}`},
		{"plain text", "upstream connect error\n  or disconnect", "upstream connect error or disconnect"},
		{"html", "<html>\n<body>502 Bad Gateway</body></html>", "<html> <body>502 Bad Gateway</body></html>"},
		{"empty", "", ""},
		{"long", strings.Repeat("é", 150), strings.Repeat("é", 98) + "…"},
		{"invalid utf-8", "bad \xff byte", "bad \uFFFD byte"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tc.want, errorMessage([]byte(tc.raw)))
		})
	}
}

func FuzzErrorMessage(f *testing.F) {
	f.Add([]byte(`{"error":"RuntimeError","detail":"","body":"","errors":"boom"}`))
	f.Add([]byte(`{"detail":[{"loc":["body","width"],"msg":"bad","type":"x"}]}`))
	f.Add([]byte(`{"detail":[1,{"loc":[{"a":1}],"msg":"m"}],"errors":{"x":[1,2]}}`))
	f.Add([]byte(`{"detail":"Not authenticated"}`))
	f.Add([]byte("<html>502</html>"))
	f.Fuzz(func(t *testing.T, raw []byte) {
		m := errorMessage(raw)
		require.LessOrEqual(t, len(m), maxMessage)
		require.True(t, utf8.ValidString(m))
		require.Equal(t, m, strings.Join(strings.Fields(m), " "), "one line, no runs of spaces")
	})
}

func TestClassifyStatus(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name        string
		route       string
		status      int
		body        string
		unavailable bool
		noAPI       bool
		permanent   bool
	}{
		{"proxy without server", "/sdapi/v1/txt2img", 502, "<html>bad gateway</html>", true, false, false},
		{"busy", "/sdapi/v1/txt2img", 429, "", true, false, false},
		{"credentials", "/sdapi/v1/txt2img", 401, `{"detail":"Not authenticated"}`, true, false, false},
		{"no --api", "/sdapi/v1/txt2img", 404, `{"detail":"Not Found"}`, true, true, false},
		{"not found as an answer", "/sdapi/v1/img2img", 404, `{"error":"HTTPException","detail":"Init image not found","body":"","errors":"404: Init image not found"}`, false, false, true},
		{"validation", "/sdapi/v1/txt2img", 422, `{"detail":[{"loc":["body","width"],"msg":"bad","type":"x"}]}`, false, false, true},
		{"unknown upscaler", "/sdapi/v1/extra-single-image", 500, `{"error":"AssertionError","detail":"","body":"","errors":"could not find upscaler named x"}`, false, false, true},
		{"bad image", "/sdapi/v1/img2img", 500, `{"error":"HTTPException","detail":"Invalid encoded image","body":"","errors":"500: Invalid encoded image"}`, false, false, true},
		{"CUDA", "/sdapi/v1/txt2img", 500, `{"error":"RuntimeError","detail":"","body":"","errors":"CUDA error"}`, false, false, false},
		{"out of memory", "/sdapi/v1/txt2img", 500, `{"error":"OutOfMemoryError","detail":"","body":"","errors":"CUDA out of memory"}`, false, false, false},
		{"plain 500", "/sdapi/v1/txt2img", 500, `Internal Server Error`, false, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := classifyStatus(tc.route, tc.status, []byte(tc.body))
			var he *sdclient.HTTPError
			require.ErrorAs(t, err, &he)
			require.Equal(t, tc.status, he.Status)
			require.Equal(t, tc.unavailable, errors.Is(err, sdclient.ErrUnavailable))
			require.Equal(t, tc.noAPI, errors.Is(err, ErrNoAPI))
			var pe *sdclient.PermanentError
			require.Equal(t, tc.permanent, errors.As(err, &pe))
		})
	}
}
