package fakesd

import (
	"image"
	"image/color"
	"image/draw"
)

// initImage is img2img's decoded source picture.
type initImage struct{ img image.Image }

// blend shows the source through img by k (0..1), the source scaled to
// img's size by nearest neighbour.
func (s *initImage) blend(img image.Image, k float64) image.Image {
	b := img.Bounds()
	src := enlarge(s.img, b.Dx(), b.Dy())
	out := image.NewNRGBA(image.Rect(0, 0, b.Dx(), b.Dy()))
	draw.Draw(out, out.Rect, img, b.Min, draw.Src)
	for y := range b.Dy() {
		for x := range b.Dx() {
			a, o := src.NRGBAAt(x, y), out.NRGBAAt(x, y)
			mix := func(p, q uint8) uint8 { return uint8(float64(q)*(1-k) + float64(p)*k + 0.5) }
			out.SetNRGBA(x, y, color.NRGBA{mix(a.R, o.R), mix(a.G, o.G), mix(a.B, o.B), 255})
		}
	}
	return out
}
