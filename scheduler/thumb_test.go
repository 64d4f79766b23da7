package scheduler_test

import (
	"bytes"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/easelbot/easel/scheduler"
	"github.com/easelbot/easel/storage"
)

// testPNG is a w×h PNG with a gradient (so scaling has something to do).
func testPNG(t testing.TB, w, h int) []byte {
	t.Helper()
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			img.Set(x, y, color.NRGBA{uint8(x), uint8(y), 128, 255})
		}
	}
	var b bytes.Buffer
	require.NoError(t, png.Encode(&b, img))
	return b.Bytes()
}

// A thumbnail is a JPEG of ThumbSide pixels on the long side, made once and
// kept beside the image: the second ask reads the stored blob.
func TestThumbnailMadeOnceAndKept(t *testing.T) {
	t.Parallel()
	b, dir := setupFS(t)
	id := b.submit(t, "api:a", "u", "A")
	l := b.take(t, "w")
	require.NoError(t, l.Succeed(b.ctx, [][]byte{testPNG(t, 768, 512), testPNG(t, 100, 60)}, []int64{1, 2}, ""))
	j, err := b.s.Get(b.ctx, id)
	require.NoError(t, err)

	o, etag, err := b.s.OpenThumb(b.ctx, j, 0)
	require.NoError(t, err)
	var buf bytes.Buffer
	_, err = buf.ReadFrom(o)
	require.NoError(t, err)
	require.NoError(t, o.Close())
	require.Equal(t, `"`+id+`.1.t0"`, etag)
	cfg, format, err := image.DecodeConfig(bytes.NewReader(buf.Bytes()))
	require.NoError(t, err)
	require.Equal(t, "jpeg", format)
	require.Equal(t, [2]int{scheduler.ThumbSide, 171}, [2]int{cfg.Width, cfg.Height})
	thumb := filepath.Join(dir, "results", id+".1.t0")
	require.FileExists(t, thumb)

	// A stored thumbnail is served as it is, not made again.
	require.NoError(t, os.WriteFile(thumb, []byte("stored"), 0o600))
	o, _, err = b.s.OpenThumb(b.ctx, j, 0)
	require.NoError(t, err)
	buf.Reset()
	_, err = buf.ReadFrom(o)
	require.NoError(t, err)
	require.NoError(t, o.Close())
	require.Equal(t, "stored", buf.String())

	// A small image is not scaled up.
	o, _, err = b.s.OpenThumb(b.ctx, j, 1)
	require.NoError(t, err)
	cfg, err = jpeg.DecodeConfig(o)
	require.NoError(t, err)
	require.NoError(t, o.Close())
	require.Equal(t, [2]int{100, 60}, [2]int{cfg.Width, cfg.Height})

	_, _, err = b.s.OpenThumb(b.ctx, j, 2)
	require.ErrorIs(t, err, storage.ErrNotFound)
}

// An image that is not one (or too large to decode) gives an error, and
// no thumbnail is stored.
func TestThumbnailOfBadImage(t *testing.T) {
	t.Parallel()
	b, dir := setupFS(t)
	id := b.submit(t, "api:a", "u", "A")
	l := b.take(t, "w")
	require.NoError(t, l.Succeed(b.ctx, [][]byte{[]byte("not an image")}, []int64{1}, ""))
	j, err := b.s.Get(b.ctx, id)
	require.NoError(t, err)
	_, _, err = b.s.OpenThumb(b.ctx, j, 0)
	require.ErrorContains(t, err, "thumbnail:")
	require.NoFileExists(t, filepath.Join(dir, "results", id+".1.t0"))
}

func TestThumbnailSizes(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ w, h, tw, th int }{
		{1024, 1024, 256, 256},
		{1024, 512, 256, 128},
		{512, 1024, 128, 256},
		{256, 100, 256, 100},
		{64, 64, 64, 64},
		{4000, 1, 256, 1},
	} {
		out, err := scheduler.Thumbnail(testPNG(t, c.w, c.h), scheduler.ThumbSide)
		require.NoError(t, err)
		cfg, err := jpeg.DecodeConfig(bytes.NewReader(out))
		require.NoError(t, err)
		require.Equal(t, [2]int{c.tw, c.th}, [2]int{cfg.Width, cfg.Height}, "%d×%d", c.w, c.h)
	}
}

// Thumbnail decodes images a backend returned: whatever the bytes, it
// returns a JPEG within ThumbSide or an error, and never panics.
func FuzzThumbnail(f *testing.F) {
	f.Add(testPNG(f, 300, 200))
	f.Add(testPNG(f, 1, 1))
	var j bytes.Buffer
	require.NoError(f, jpeg.Encode(&j, image.NewGray(image.Rect(0, 0, 40, 500)), nil))
	f.Add(j.Bytes())
	f.Add([]byte("RIFF\x00\x00\x00\x00WEBPVP8 "))
	f.Add([]byte("\x89PNG\r\n\x1a\n"))
	f.Fuzz(func(t *testing.T, src []byte) {
		out, err := scheduler.Thumbnail(src, scheduler.ThumbSide)
		if err != nil {
			require.ErrorContains(t, err, "thumbnail: ")
			return
		}
		cfg, err := jpeg.DecodeConfig(bytes.NewReader(out))
		require.NoError(t, err)
		require.LessOrEqual(t, max(cfg.Width, cfg.Height), scheduler.ThumbSide)
	})
}

// BenchmarkThumbnail makes a thumbnail of a 1024×1024 PNG (SDXL's size).
func BenchmarkThumbnail(b *testing.B) {
	src := testPNG(b, 1024, 1024)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := scheduler.Thumbnail(src, scheduler.ThumbSide); err != nil {
			b.Fatal(err)
		}
	}
}
