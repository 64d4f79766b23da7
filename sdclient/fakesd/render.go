package fakesd

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"image"
	"image/color"
	"image/png"
	"math"
	"math/rand/v2"
)

// scene is a picture independent of its pixel size: a diagonal gradient
// under a few discs, every number drawn from a hash of the prompt and seed.
type scene struct {
	from, to [3]float64 // gradient colours, top-left to bottom-right
	discs    [discCount]disc
}

const discCount = 5

type disc struct {
	x, y float64 // centre, as fractions of width and height
	r    float64 // radius, as a fraction of the shorter side
	c    [3]float64
}

func newScene(prompt string, seed int64) scene {
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], uint64(seed))
	sum := sha256.Sum256(append(b[:], prompt...))
	rng := rand.New(rand.NewPCG(binary.LittleEndian.Uint64(sum[:8]), binary.LittleEndian.Uint64(sum[8:16])))
	colour := func() [3]float64 {
		return [3]float64{float64(rng.IntN(256)), float64(rng.IntN(256)), float64(rng.IntN(256))}
	}
	sc := scene{from: colour(), to: colour()}
	for i := range sc.discs {
		sc.discs[i] = disc{x: rng.Float64(), y: rng.Float64(), r: 0.08 + 0.22*rng.Float64(), c: colour()}
	}
	return sc
}

// mix moves sc towards o by t in 0..1: how a variation (A1111 subseed with
// subseed_strength t) departs from its seed's picture.
func (sc scene) mix(o scene, t float64) scene {
	lerp := func(a, b float64) float64 { return a + (b-a)*t }
	lerp3 := func(a, b [3]float64) [3]float64 {
		return [3]float64{lerp(a[0], b[0]), lerp(a[1], b[1]), lerp(a[2], b[2])}
	}
	out := scene{from: lerp3(sc.from, o.from), to: lerp3(sc.to, o.to)}
	for i, d := range sc.discs {
		e := o.discs[i]
		out.discs[i] = disc{x: lerp(d.x, e.x), y: lerp(d.y, e.y), r: lerp(d.r, e.r), c: lerp3(d.c, e.c)}
	}
	return out
}

// gradientLevels is how many colours the gradient is quantised to, leaving
// room in a 256-colour palette for the discs: paletted PNGs encode several
// times faster than RGB ones, which matters to benchmarks.
const gradientLevels = 256 - discCount

// draw renders sc at w×h. done (0..1) is how much of the sampling ran: the
// colours are washed towards grey by the rest, like a half-denoised latent.
func (sc scene) draw(w, h int, done float64) *image.Paletted {
	k := min(max(done, 0), 1)
	wash := func(c [3]float64) color.RGBA {
		return color.RGBA{
			uint8(math.Round(c[0]*k + 128*(1-k))), uint8(math.Round(c[1]*k + 128*(1-k))),
			uint8(math.Round(c[2]*k + 128*(1-k))), 255,
		}
	}
	pal := make(color.Palette, 0, 256)
	for i := range gradientLevels {
		t := float64(i) / float64(gradientLevels-1)
		pal = append(pal, wash([3]float64{
			sc.from[0] + (sc.to[0]-sc.from[0])*t, sc.from[1] + (sc.to[1]-sc.from[1])*t, sc.from[2] + (sc.to[2]-sc.from[2])*t,
		}))
	}
	for _, d := range sc.discs {
		pal = append(pal, wash(d.c))
	}
	img := image.NewPaletted(image.Rect(0, 0, w, h), pal)

	// Pixel (x, y) has the gradient colour of diagonal x+y, so row y is the
	// run of diagonals y..y+w-1: index them once and copy a slice per row.
	n := w + h - 1
	diag := make([]uint8, n)
	for d := range n {
		diag[d] = uint8(d * (gradientLevels - 1) / max(n-1, 1))
	}
	for y := range h {
		copy(img.Pix[y*img.Stride:y*img.Stride+w], diag[y:y+w])
	}

	side := float64(min(w, h))
	for i, dc := range sc.discs {
		idx := uint8(gradientLevels + i)
		cx, cy, r := dc.x*float64(w), dc.y*float64(h), dc.r*side
		for y := max(int(cy-r), 0); y < min(int(cy+r)+1, h); y++ {
			dy := float64(y) + 0.5 - cy
			half := r*r - dy*dy
			if half < 0 {
				continue
			}
			dx := math.Sqrt(half)
			x0, x1 := max(int(math.Round(cx-dx)), 0), min(int(math.Round(cx+dx)), w)
			row := img.Pix[y*img.Stride:]
			for x := x0; x < x1; x++ {
				row[x] = idx
			}
		}
	}
	return img
}

// encodePNG encodes img for speed over size: the fake's pictures are flat
// colours that compress well anyway.
func encodePNG(img image.Image) ([]byte, error) {
	var buf bytes.Buffer
	enc := png.Encoder{CompressionLevel: png.BestSpeed}
	if err := enc.Encode(&buf, img); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// previewSize fits w×h within 256 pixels on its longer side, as live
// previews are decoded small.
func previewSize(w, h int) (int, int) {
	const side = 256
	if w <= side && h <= side {
		return w, h
	}
	s := float64(side) / float64(max(w, h))
	return max(int(math.Round(float64(w)*s)), 1), max(int(math.Round(float64(h)*s)), 1)
}
