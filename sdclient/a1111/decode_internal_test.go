package a1111

import (
	"encoding/base64"
	"encoding/json"
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

func TestDecodeTxt2Img(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		raw     []byte
		want    int
		reqSeed int64
		formats []string
		seeds   []int64
		err     string
	}{
		{name: "all_seeds", raw: answer(t, []string{pngB64, jpegB64}, `{"seed":5,"all_seeds":[5,9]}`), want: 2,
			formats: []string{"png", "jpeg"}, seeds: []int64{5, 9}},
		{name: "seed counts up without all_seeds", raw: answer(t, []string{pngB64, webpB64}, `{"seed":5}`), want: 2,
			formats: []string{"png", "webp"}, seeds: []int64{5, 6}},
		{name: "request seed without info", raw: answer(t, []string{pngB64, pngB64}, ""), want: 2, reqSeed: 40,
			formats: []string{"png", "png"}, seeds: []int64{40, 41}},
		{name: "unknown seed", raw: answer(t, []string{pngB64}, "not json"), want: 1, reqSeed: -1,
			formats: []string{"png"}, seeds: []int64{-1}},
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
		{name: "not an image", raw: answer(t, []string{base64.StdEncoding.EncodeToString([]byte("GIF89a..."))}, `{}`), want: 1,
			err: "image 0: not a PNG, JPEG or WebP image"},
		{name: "not JSON", raw: []byte("<html>"), want: 1, err: "not TextToImageResponse JSON"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			res, err := decodeTxt2Img(tc.raw, tc.want, tc.reqSeed)
			if tc.err != "" {
				require.ErrorContains(t, err, tc.err)
				return
			}
			require.NoError(t, err)
			formats := make([]string, len(res.Images))
			for i, img := range res.Images {
				formats[i] = img.Format
			}
			require.Equal(t, tc.formats, formats)
			require.Equal(t, tc.seeds, res.Seeds)
		})
	}
}

func TestReadProgress(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		raw  string
		want sdclient.Progress
		ok   bool
	}{
		{name: "idle", raw: `{"progress":0,"eta_relative":0,"state":{"job_count":0,"sampling_step":20,"sampling_steps":20},"current_image":null}`},
		{name: "loading", raw: `{"progress":0.01,"eta_relative":3,"state":{"job_count":-1,"sampling_step":0,"sampling_steps":20}}`},
		{name: "sampling", raw: `{"progress":0.26,"eta_relative":1.5,"state":{"job_count":1,"job_no":0,"sampling_step":5,"sampling_steps":20}}`,
			want: sdclient.Progress{Step: 5, Steps: 20, Fraction: 0.26, ETA: 1500 * time.Millisecond}, ok: true},
		{name: "floats and out of range", raw: `{"progress":7,"eta_relative":-2,"state":{"job_count":1.0,"sampling_step":30.0,"sampling_steps":20.0}}`,
			want: sdclient.Progress{Step: 20, Steps: 20, Fraction: 1}, ok: true},
		{name: "huge eta", raw: `{"progress":0.5,"eta_relative":1e300,"state":{"job_count":1,"sampling_step":1,"sampling_steps":2}}`,
			want: sdclient.Progress{Step: 1, Steps: 2, Fraction: 0.5, ETA: 24 * time.Hour}, ok: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var a progressAnswer
			require.NoError(t, json.Unmarshal([]byte(tc.raw), &a))
			got, _, ok := readProgress(a)
			require.Equal(t, tc.ok, ok)
			require.Equal(t, tc.want, got)
		})
	}
}

func FuzzDecodeTxt2Img(f *testing.F) {
	f.Add(answer(f, []string{pngB64, jpegB64}, `{"seed":5,"all_seeds":[5,9],"index_of_first_image":1}`), 2, int64(1))
	f.Add([]byte(`{"images":["data:image/png;base64,`+pngB64+`"],"info":{"seed":1}}`), 1, int64(-1))
	f.Add([]byte(`{"images":null,"info":7}`), 0, int64(0))
	f.Fuzz(func(t *testing.T, raw []byte, want int, seed int64) {
		res, err := decodeTxt2Img(raw, want, seed)
		if err != nil {
			require.Nil(t, res)
			return
		}
		require.NotEmpty(t, res.Images)
		require.Len(t, res.Seeds, len(res.Images))
		if want > 0 {
			require.LessOrEqual(t, len(res.Images), want)
		}
		for _, img := range res.Images {
			require.Equal(t, sdclient.SniffFormat(img.Data), img.Format)
			require.NotEmpty(t, img.Format)
		}
	})
}

func FuzzReadProgress(f *testing.F) {
	f.Add([]byte(`{"progress":0.26,"eta_relative":1.5,"state":{"job_count":1,"job_no":0,"sampling_step":5,"sampling_steps":20},"current_image":null}`))
	f.Add([]byte(`{"progress":-1,"eta_relative":1e308,"state":{"job_count":-1,"sampling_step":-5,"sampling_steps":1e300}}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		var a progressAnswer
		if json.Unmarshal(raw, &a) != nil {
			return
		}
		p, _, ok := readProgress(a)
		if !ok {
			return
		}
		require.Positive(t, p.Steps)
		require.True(t, p.Step >= 0 && p.Step <= p.Steps)
		require.True(t, p.Fraction >= 0 && p.Fraction <= 1)
		require.True(t, p.ETA >= 0 && p.ETA <= 24*time.Hour)
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
