package scheduler

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	_ "image/png" // decode PNG results

	"golang.org/x/image/draw"
	_ "golang.org/x/image/webp" // decode WebP results

	"github.com/easelbot/easel/storage/blob"
)

// ThumbSide is a thumbnail's long side in pixels (a smaller image keeps
// its size).
const ThumbSide = 256

// thumbMaxPixels bounds the images thumbnails are made of: decoding is
// refused above it, so a huge image cannot take the server's memory.
const thumbMaxPixels = 16 << 20

// thumbRef names the thumbnail of result image n: "t<n>" beside the image,
// kept (and swept) like a result.
func thumbRef(j *Job, n int) (blob.Ref, error) {
	ref, err := imageRef(j, n)
	if err != nil {
		return blob.Ref{}, err
	}
	ref.Name = "t" + ref.Name
	return ref, nil
}

// OpenThumb opens a JPEG thumbnail (ThumbSide pixels on the long side) of
// result image n of a succeeded job. The first ask makes it from the image
// and keeps it in the image store beside the image; later asks (from any
// instance) read the stored one. Its ETag never changes.
func (s *Scheduler) OpenThumb(ctx context.Context, j *Job, n int) (*blob.Object, string, error) {
	ref, err := thumbRef(j, n)
	if err != nil {
		return nil, "", err
	}
	o, err := s.store.Blobs.Open(ctx, ref)
	if err == nil {
		return o, ref.ETag(), nil
	}
	if !errors.Is(err, blob.ErrNotFound) {
		return nil, "", err
	}
	src, err := s.Image(ctx, j, n)
	if err != nil {
		return nil, "", err
	}
	b, err := Thumbnail(src, ThumbSide)
	if err != nil {
		return nil, "", err
	}
	// Two instances making the same thumbnail at once write the same
	// bytes; Put is atomic, so readers see one or the other whole.
	if err := s.store.Blobs.Put(ctx, ref, bytes.NewReader(b), int64(len(b))); err != nil {
		return nil, "", fmt.Errorf("thumbnail: %w", err)
	}
	o, err = s.store.Blobs.Open(ctx, ref)
	return o, ref.ETag(), err
}

// Thumbnail scales a PNG, JPEG or WebP image down to side pixels on its
// long side (never up) with a Catmull-Rom filter, over white where it is
// transparent, and encodes it as a JPEG.
func Thumbnail(src []byte, side int) ([]byte, error) {
	cfg, _, err := image.DecodeConfig(bytes.NewReader(src))
	if err != nil {
		return nil, fmt.Errorf("thumbnail: %w", err)
	}
	if cfg.Width <= 0 || cfg.Height <= 0 || int64(cfg.Width)*int64(cfg.Height) > thumbMaxPixels {
		return nil, fmt.Errorf("thumbnail: image is %d×%d pixels (at most %d)", cfg.Width, cfg.Height, thumbMaxPixels)
	}
	img, _, err := image.Decode(bytes.NewReader(src))
	if err != nil {
		return nil, fmt.Errorf("thumbnail: %w", err)
	}
	b := img.Bounds()
	w, h := thumbSize(b.Dx(), b.Dy(), side)
	dst := image.NewRGBA(image.Rect(0, 0, w, h))
	draw.Draw(dst, dst.Bounds(), image.NewUniform(color.White), image.Point{}, draw.Src)
	draw.CatmullRom.Scale(dst, dst.Bounds(), img, b, draw.Over, nil)
	var out bytes.Buffer
	if err := jpeg.Encode(&out, dst, &jpeg.Options{Quality: 82}); err != nil {
		return nil, fmt.Errorf("thumbnail: %w", err)
	}
	return out.Bytes(), nil
}

// thumbSize is w×h scaled to side on the long side, never up, at least 1.
func thumbSize(w, h, side int) (int, int) {
	if w <= side && h <= side {
		return w, h
	}
	if w >= h {
		return side, max(1, (h*side+w/2)/w)
	}
	return max(1, (w*side+h/2)/h), side
}
