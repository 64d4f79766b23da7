package commands

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"image"
	_ "image/jpeg" // DecodeConfig of JPEG init images
	_ "image/png"  // DecodeConfig of PNG init images
	"io"
	"math"
	"net/http"
	"strings"

	"github.com/easelbot/easel/internal/netguard"
	"github.com/easelbot/easel/scheduler"
	"github.com/easelbot/easel/sdclient"
)

// maxInitImageSide caps an init image's width and height in pixels: the
// backend decodes it in full, so the header alone must not ask for a
// gigapixel canvas.
const maxInitImageSide = 8192

// InitImage is a checked img2img source image.
type InitImage struct {
	Data []byte
	// Format is "png", "jpeg" or "webp".
	Format        string
	Width, Height int
}

// FetchImage downloads an image from url for an adapter (a chat
// attachment) under the init-image rules: http(s) only, no loopback or
// private addresses unless Limits.AllowPrivateImageURLs, at most
// Limits.MaxInitImageBytes, within Limits.InitImageTimeout. header is added
// to the request (Slack's url_private needs the bot token). Errors name
// field.
func (s *Service) FetchImage(ctx context.Context, field, url string, header http.Header) ([]byte, error) {
	if err := netguard.CheckURL(ctx, url, s.limits.AllowPrivateImageURLs); err != nil {
		return nil, invalid(field, "%v", err)
	}
	ctx, cancel := context.WithTimeout(ctx, s.limits.InitImageTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, Invalid(field, "v_url_scheme")
	}
	for k, v := range header {
		req.Header[k] = v
	}
	req.Header.Set("User-Agent", "Easel-ImageFetch/1")
	resp, err := s.imageClient.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, Invalid(field, "v_fetch_timeout", s.limits.InitImageTimeout)
		}
		return nil, invalid(field, "could not be fetched: %v", unwrapURLError(err))
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, Invalid(field, "v_fetch_status", resp.StatusCode)
	}
	max := s.limits.MaxInitImageBytes
	if resp.ContentLength > max {
		return nil, tooLarge(field, max, resp.ContentLength)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, max+1))
	if err != nil {
		if ctx.Err() != nil {
			return nil, Invalid(field, "v_fetch_timeout", s.limits.InitImageTimeout)
		}
		return nil, invalid(field, "could not be fetched: %v", err)
	}
	if int64(len(data)) > max {
		return nil, tooLarge(field, max, -1)
	}
	return data, nil
}

func unwrapURLError(err error) error {
	for {
		u := errors.Unwrap(err)
		if u == nil {
			return err
		}
		err = u
	}
}

func tooLarge(field string, max, got int64) error {
	if got > 0 {
		return Invalid(field, "v_image_bytes_got", max, got)
	}
	return Invalid(field, "v_image_bytes", max)
}

// initImage resolves im's init image (adapter bytes, URL, data URL or
// base64) and checks it; nil when im has none.
func (s *Service) initImage(ctx context.Context, im *Imagine) (*InitImage, error) {
	field := im.InitImageField
	if field == "" {
		field = "init_image"
	}
	data := im.InitImageData
	if data == nil && im.InitImageFrom != "" {
		var err error
		if data, err = s.sched.InitImage(ctx, im.InitImageFrom); err != nil {
			if errors.Is(err, scheduler.ErrInitImageGone) || errors.Is(err, scheduler.ErrNotFound) {
				return nil, Invalid(field, "v_init_gone", im.InitImageFrom)
			}
			return nil, err
		}
	}
	if data == nil {
		src := strings.TrimSpace(im.InitImage)
		if src == "" {
			return nil, nil
		}
		lower := strings.ToLower(src[:min(len(src), 8)])
		var err error
		if strings.HasPrefix(lower, "http://") || strings.HasPrefix(lower, "https://") {
			data, err = s.FetchImage(ctx, field, src, nil)
		} else {
			data, err = DecodeInlineImage(field, src, s.limits.MaxInitImageBytes)
		}
		if err != nil {
			return nil, err
		}
	}
	return CheckImage(field, data, s.limits.MaxInitImageBytes)
}

// DecodeInlineImage decodes an init image given inline: a data: URL
// ("data:image/png;base64,…") or plain base64 (standard or URL alphabet,
// padded or not), refusing more than max decoded bytes before decoding.
func DecodeInlineImage(field, src string, max int64) ([]byte, error) {
	if rest, ok := cutPrefixFold(src, "data:"); ok {
		meta, payload, found := strings.Cut(rest, ",")
		if !found || !strings.HasSuffix(strings.ToLower(meta), ";base64") {
			return nil, Invalid(field, "v_data_base64")
		}
		src = payload
	}
	src = strings.TrimRight(strings.Join(strings.Fields(src), ""), "=")
	if int64(len(src)) > (max*4+2)/3 {
		return nil, tooLarge(field, max, int64(len(src))*3/4)
	}
	enc := base64.RawStdEncoding
	if strings.ContainsAny(src, "-_") {
		enc = base64.RawURLEncoding
	}
	data, err := enc.DecodeString(src)
	if err != nil {
		return nil, Invalid(field, "v_image_source")
	}
	return data, nil
}

func cutPrefixFold(s, prefix string) (string, bool) {
	if len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix) {
		return s[len(prefix):], true
	}
	return s, false
}

// CheckImage checks that data is a PNG, JPEG or WebP image of at most max
// bytes whose header gives a sensible size.
func CheckImage(field string, data []byte, max int64) (*InitImage, error) {
	if int64(len(data)) > max {
		return nil, tooLarge(field, max, int64(len(data)))
	}
	format := sdclient.SniffFormat(data)
	var w, h int
	switch format {
	case "png", "jpeg":
		cfg, _, err := image.DecodeConfig(bytes.NewReader(data))
		if err != nil {
			return nil, Invalid(field, "v_image_unreadable", strings.ToUpper(format))
		}
		w, h = cfg.Width, cfg.Height
	case "webp":
		var err error
		if w, h, err = webpSize(data); err != nil {
			return nil, Invalid(field, "v_image_unreadable", "WebP")
		}
	default:
		return nil, Invalid(field, "v_image_format")
	}
	if w < 1 || h < 1 || w > maxInitImageSide || h > maxInitImageSide {
		return nil, Invalid(field, "v_image_side", maxInitImageSide, w, h)
	}
	return &InitImage{Data: data, Format: format, Width: w, Height: h}, nil
}

// webpSize reads a WebP image's canvas size from its first chunk (the
// WebP container spec: VP8X canvas, or a simple file's VP8 or VP8L frame
// header).
func webpSize(b []byte) (w, h int, err error) {
	bad := fmt.Errorf("webp: bad header")
	if len(b) < 30 || string(b[:4]) != "RIFF" || string(b[8:12]) != "WEBP" {
		return 0, 0, bad
	}
	le24 := func(p []byte) int { return int(p[0]) | int(p[1])<<8 | int(p[2])<<16 }
	switch string(b[12:16]) {
	case "VP8X":
		return le24(b[24:27]) + 1, le24(b[27:30]) + 1, nil
	case "VP8L":
		if b[20] != 0x2f {
			return 0, 0, bad
		}
		bits := binary.LittleEndian.Uint32(b[21:25])
		return int(bits&0x3fff) + 1, int(bits>>14&0x3fff) + 1, nil
	case "VP8 ":
		if b[23] != 0x9d || b[24] != 0x01 || b[25] != 0x2a {
			return 0, 0, bad
		}
		return int(binary.LittleEndian.Uint16(b[26:28]) & 0x3fff), int(binary.LittleEndian.Uint16(b[28:30]) & 0x3fff), nil
	}
	return 0, 0, bad
}

// fitSize picks a generation size for an init image of w×h when the
// request names none: the image's aspect ratio, scaled down to fit
// maxSide and maxPixels (and up to minSide), in multiples of 8.
func fitSize(w, h, minSide, maxSide, maxPixels int) (int, int) {
	fw, fh := float64(w), float64(h)
	scale := 1.0
	if s := float64(maxSide) / max(fw, fh); s < scale {
		scale = s
	}
	if px := fw * fh * scale * scale; px > float64(maxPixels) {
		scale *= math.Sqrt(float64(maxPixels) / px)
	}
	if s := float64(minSide) / min(fw, fh); s > scale {
		scale = s
	}
	round := func(v float64) int {
		n := int(v/8) * 8 // down, so the caps hold
		return min(max(n, (minSide+7)/8*8), maxSide/8*8)
	}
	return round(fw * scale), round(fh * scale)
}

// sizeFor is the generation size of an img2img request with init image
// ii: the width and height given, or, for what is left out, the image's
// own (keeping its aspect ratio) within the size and pixel limits.
func (l Limits) sizeFor(ii *InitImage, w, h, maxPixels int) (int, int) {
	switch {
	case w == 0 && h == 0:
		return fitSize(ii.Width, ii.Height, l.MinSize, l.MaxSize, maxPixels)
	case h == 0:
		return w, round8(float64(w)*float64(ii.Height)/float64(ii.Width), l.MinSize, l.MaxSize)
	case w == 0:
		return round8(float64(h)*float64(ii.Width)/float64(ii.Height), l.MinSize, l.MaxSize), h
	}
	return w, h
}

// round8 rounds v to the nearest multiple of 8 within minSide..maxSide.
func round8(v float64, minSide, maxSide int) int {
	n := int(math.Round(v/8)) * 8
	return min(max(n, (minSide+7)/8*8), maxSide/8*8)
}
