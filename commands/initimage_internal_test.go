package commands

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"image"
	"image/jpeg"
	"image/png"
	"testing"

	"github.com/stretchr/testify/require"
)

func pngBytes(t testing.TB, w, h int) []byte {
	var b bytes.Buffer
	require.NoError(t, png.Encode(&b, image.NewGray(image.Rect(0, 0, w, h))))
	return b.Bytes()
}

// webpHeader builds the first 30 bytes of a WebP file whose first chunk is
// kind, as the container spec lays them out.
func webpHeader(kind string, w, h int) []byte {
	b := make([]byte, 30)
	copy(b, "RIFF")
	binary.LittleEndian.PutUint32(b[4:], 22)
	copy(b[8:], "WEBPVP8")
	switch kind {
	case "VP8X":
		b[15] = 'X'
		for i, v := range []int{w - 1, h - 1} {
			b[24+3*i], b[25+3*i], b[26+3*i] = byte(v), byte(v>>8), byte(v>>16)
		}
	case "VP8L":
		b[15] = 'L'
		b[20] = 0x2f
		binary.LittleEndian.PutUint32(b[21:], uint32(w-1)|uint32(h-1)<<14)
	case "VP8 ":
		b[15] = ' '
		b[23], b[24], b[25] = 0x9d, 0x01, 0x2a
		binary.LittleEndian.PutUint16(b[26:], uint16(w))
		binary.LittleEndian.PutUint16(b[28:], uint16(h))
	}
	return b
}

func TestCheckImage(t *testing.T) {
	t.Parallel()
	var jb bytes.Buffer
	require.NoError(t, jpeg.Encode(&jb, image.NewGray(image.Rect(0, 0, 40, 24)), nil))
	for _, c := range []struct {
		name   string
		data   []byte
		format string
		w, h   int
		msg    string
	}{
		{"png", pngBytes(t, 64, 32), "png", 64, 32, ""},
		{"jpeg", jb.Bytes(), "jpeg", 40, 24, ""},
		{"webp VP8X", webpHeader("VP8X", 1000, 700), "webp", 1000, 700, ""},
		{"webp VP8L", webpHeader("VP8L", 320, 200), "webp", 320, 200, ""},
		{"webp VP8", webpHeader("VP8 ", 640, 480), "webp", 640, 480, ""},
		{"gif", []byte("GIF89a\x01\x00\x01\x00"), "", 0, 0, "must be a PNG, JPEG or WebP image"},
		{"text", []byte("<html>hello</html>"), "", 0, 0, "must be a PNG, JPEG or WebP image"},
		{"truncated png", pngBytes(t, 8, 8)[:12], "", 0, 0, "is not a readable PNG image"},
		{"huge webp", webpHeader("VP8X", 20000, 20000), "", 0, 0, "must be between 1 and 8192 pixels"},
		{"bad webp", append(webpHeader("VP8 ", 4, 4)[:23], 0, 0, 0, 0, 0, 0, 0), "", 0, 0, "is not a readable WebP"},
	} {
		t.Run(c.name, func(t *testing.T) {
			ii, err := CheckImage("init_image", c.data, 1<<20)
			if c.msg != "" {
				require.ErrorContains(t, err, "init_image: "+c.msg)
				return
			}
			require.NoError(t, err)
			require.Equal(t, c.format, ii.Format)
			require.Equal(t, [2]int{c.w, c.h}, [2]int{ii.Width, ii.Height})
		})
	}
	_, err := CheckImage("image", pngBytes(t, 64, 64), 10)
	require.ErrorContains(t, err, "image: must be at most 10 bytes (limits.max_init_image_bytes")
}

func TestDecodeInlineImage(t *testing.T) {
	t.Parallel()
	p := pngBytes(t, 16, 16)
	for _, in := range []string{
		base64.StdEncoding.EncodeToString(p),
		base64.RawStdEncoding.EncodeToString(p),
		base64.URLEncoding.EncodeToString(p),
		"data:image/png;base64," + base64.StdEncoding.EncodeToString(p),
		"DATA:image/png;BASE64,\n" + base64.StdEncoding.EncodeToString(p)[:20] + "\n" + base64.StdEncoding.EncodeToString(p)[20:],
	} {
		got, err := DecodeInlineImage("init_image", in, 1<<20)
		require.NoError(t, err, in)
		require.Equal(t, p, got)
	}
	for in, msg := range map[string]string{
		"not base64 at all!":                                  "must be an http(s) URL, a data: URL or base64",
		"data:image/png,rawbytes":                             "a data: URL must be base64",
		"ftp://example.com/x.png":                             "must be an http(s) URL, a data: URL or base64",
		base64.StdEncoding.EncodeToString(make([]byte, 2000)): "must be at most 1024 bytes",
	} {
		_, err := DecodeInlineImage("init_image", in, 1024)
		require.ErrorContains(t, err, "init_image: "+msg, in)
	}
}

func FuzzDecodeInitImage(f *testing.F) {
	p := pngBytes(f, 8, 8)
	for _, s := range []string{
		base64.StdEncoding.EncodeToString(p), "data:image/png;base64," + base64.StdEncoding.EncodeToString(p),
		base64.StdEncoding.EncodeToString(webpHeader("VP8X", 100, 100)), base64.StdEncoding.EncodeToString(webpHeader("VP8L", 1, 1)),
		base64.StdEncoding.EncodeToString(webpHeader("VP8 ", 0, 0)), "data:,", "====", "iVBORw0KGgo",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		data, err := DecodeInlineImage("init_image", s, 1<<16)
		if err != nil {
			requireField(t, err, "init_image")
			return
		}
		require.LessOrEqual(t, len(data), 1<<16)
		ii, err := CheckImage("init_image", data, 1<<16)
		if err != nil {
			requireField(t, err, "init_image")
			return
		}
		require.Contains(t, []string{"png", "jpeg", "webp"}, ii.Format)
		require.True(t, ii.Width >= 1 && ii.Width <= maxInitImageSide && ii.Height >= 1 && ii.Height <= maxInitImageSide)
		w, h := fitSize(ii.Width, ii.Height, 64, 2048, 2048*2048)
		require.True(t, w%8 == 0 && h%8 == 0 && w >= 64 && h >= 64 && w <= 2048 && h <= 2048, "%dx%d from %dx%d", w, h, ii.Width, ii.Height)
	})
}

func requireField(t *testing.T, err error, field string) {
	t.Helper()
	var ve *ValidationError
	require.ErrorAs(t, err, &ve)
	require.Equal(t, field, ve.Field)
}
