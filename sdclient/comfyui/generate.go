package comfyui

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"image"
	_ "image/jpeg" // DecodeConfig of JPEG sources
	_ "image/png"  // DecodeConfig of PNG sources
	"math"
	"math/rand/v2"
	"mime/multipart"
	"net/http"

	"github.com/easelbot/easel/sdclient"
)

// Defaults for request fields left zero.
const (
	defaultSize    = 512
	defaultSteps   = 20
	defaultCFG     = 7
	defaultDenoise = 0.75
	// defaultGuidance fills {{guidance}} when a job names none: FluxGuidance's
	// default (comfy_extras/nodes_flux.py), as Forge's distilled_cfg_scale.
	defaultGuidance = 3.5
	// maxSeed keeps a picked seed exact in every JSON reader on the way
	// (JavaScript numbers); ComfyUI itself takes up to 2^64-1.
	maxSeed = 1 << 53
)

// Generate runs req as one prompt: the built-in or owner txt2img workflow,
// or img2img when req.InitImage is set (the image is uploaded first). A
// batch of Count images shares one seed in ComfyUI (EmptyLatentImage
// batch_size, one noise seed); Result.Seeds reports that seed for every
// image, because that is what ran, and Info says which batch index each
// image had. A variation with its chosen image (VariationSource) runs as
// img2img of that image (variationByImg2Img).
func (c *Client) Generate(ctx context.Context, req sdclient.Request, progress func(sdclient.Progress)) (*sdclient.Result, error) {
	variation := req.SubseedStrength > 0 && len(req.VariationSource) > 0
	if variation {
		req = variationByImg2Img(req)
	}
	p, err := c.params(ctx, req)
	if err != nil {
		return nil, err
	}
	kind := kindTxt2Img
	if len(req.InitImage) > 0 {
		kind = kindImg2Img
		if p.InitImage, err = c.upload(ctx, req.InitImage); err != nil {
			return nil, err
		}
	}
	var g Graph
	if w := c.workflows[kind]; w != nil {
		if g, err = w.build(p); err != nil {
			return nil, err
		}
	} else {
		g = builtinGenerate(p)
	}
	imgs, err := c.run(ctx, g, progress)
	if err != nil {
		return nil, err
	}
	res := &sdclient.Result{Images: imgs}
	for range imgs {
		res.Seeds = append(res.Seeds, p.Seed)
	}
	fields := map[string]any{
		"seed": p.Seed, "batch_size": p.Batch, "note": "a ComfyUI batch shares one seed; image i is batch index i",
		"sampler_name": p.Sampler, "scheduler": p.Scheduler, "ckpt_name": p.Model, "steps": p.Steps, "cfg": p.CFG,
		"denoise": p.Denoise,
	}
	if p.Guidance > 0 {
		fields["guidance"] = p.Guidance
	}
	if variation {
		fields["variation"] = "img2img of the chosen image (ComfyUI has no subseeds); the seed alone does not reproduce it"
	}
	info, _ := json.Marshal(fields)
	res.Info = string(info)
	return res, nil
}

// A variation made by img2img departs from the chosen image by
// variationDenoiseMin + variationDenoiseSpan × its strength (0.545 for the
// chat buttons' 0.35): below about 0.3 img2img changes little.
const (
	variationDenoiseMin  = 0.3
	variationDenoiseSpan = 0.7
)

// variationByImg2Img turns a variation into what ComfyUI can run: core
// ComfyUI has no subseeds (A1111's variations blend a second noise seed
// in), so the variation is img2img of the chosen image (VariationSource)
// with a fresh seed (the image's own seed would give the same result on
// every click, and ComfyUI would answer a repeat from its cache).
func variationByImg2Img(req sdclient.Request) sdclient.Request {
	req.InitImage = req.VariationSource
	d := variationDenoiseMin + variationDenoiseSpan*req.SubseedStrength
	req.DenoisingStrength = min(math.Round(d*1000)/1000, 1)
	req.Seed, req.SubseedStrength, req.VariationSource = -1, 0, nil
	return req
}

// params fills a request's defaults and picks the seed and model.
func (c *Client) params(ctx context.Context, req sdclient.Request) (genParams, error) {
	if req.SubseedStrength > 0 {
		// Silently running a plain seed would report an image as a
		// variation it is not.
		return genParams{}, &sdclient.PermanentError{Reason: "comfyui: variations by seed (variation_strength, A1111's subseed) do not exist in ComfyUI's core nodes; make a variation with img2img of the chosen image instead (the chat buttons do)"}
	}
	p := genParams{
		Prompt: req.Prompt, Negative: req.NegativePrompt, Seed: req.Seed,
		Steps: req.Steps, CFG: req.CFGScale, Width: req.Width, Height: req.Height, Batch: req.Count,
		Model: req.Model, Denoise: 1, Guidance: req.DistilledCFGScale,
	}
	if p.Seed < 0 {
		p.Seed = rand.Int64N(maxSeed)
	}
	if p.Steps <= 0 {
		p.Steps = defaultSteps
	}
	if p.CFG <= 0 {
		p.CFG = defaultCFG
	}
	if p.Width <= 0 {
		p.Width = defaultSize
	}
	if p.Height <= 0 {
		p.Height = defaultSize
	}
	if p.Batch <= 0 {
		p.Batch = 1
	}
	if len(req.InitImage) > 0 {
		p.Denoise = defaultDenoise
		if req.DenoisingStrength > 0 {
			p.Denoise = min(req.DenoisingStrength, 1)
		}
	}
	p.Sampler, p.Scheduler = mapSampler(req.Sampler, req.Scheduler)
	for _, l := range req.LoRAs {
		w := l.Weight
		if w == 0 {
			w = 1
		}
		p.LoRAs = append(p.LoRAs, loraUse{Name: l.Name, Weight: w})
	}
	if p.Model == "" {
		p.Model = c.cfg.Model
	}
	return p, c.resolve(ctx, &p)
}

// build fills an owner workflow for a generation.
func (w *workflow) build(p genParams) (Graph, error) {
	if len(p.LoRAs) > 0 && w.ckpt == "" {
		return nil, &sdclient.PermanentError{Reason: fmt.Sprintf(`comfyui: workflow %s has no checkpoint loader with ckpt_name "{{model}}" to attach LoRAs to`, w.file)}
	}
	if p.Guidance > 0 && !w.uses["guidance"] {
		return nil, &sdclient.PermanentError{Reason: fmt.Sprintf("comfyui: workflow %s has no {{guidance}} placeholder for the job's distilled_cfg_scale", w.file)}
	}
	guidance := p.Guidance
	if guidance == 0 {
		guidance = defaultGuidance
	}
	g := w.fill(map[string]any{
		"prompt": p.Prompt, "negative": p.Negative, "seed": p.Seed, "steps": p.Steps, "cfg": p.CFG,
		"width": p.Width, "height": p.Height, "batch": p.Batch, "sampler": p.Sampler, "scheduler": p.Scheduler,
		"model": p.Model, "denoise": p.Denoise, "init_image": p.InitImage, "guidance": guidance,
	})
	g.insertLoRAs(w.ckpt, p.LoRAs)
	return g, nil
}

// upload stores an init image on the server with POST /upload/image
// (server.py upload_image: multipart field "image", optional "type",
// "subfolder", "overwrite"; answers {"name", "subfolder", "type"}). The
// file is named by its content hash, so a re-upload of the same image
// overwrites an identical file.
func (c *Client) upload(ctx context.Context, data []byte) (string, error) {
	format := sdclient.SniffFormat(data)
	if format == "" {
		return "", &sdclient.PermanentError{Reason: "comfyui: the source image is not PNG, JPEG or WebP"}
	}
	sum := sha256.Sum256(data)
	ext := format
	if ext == "jpeg" {
		ext = "jpg"
	}
	name := "easel-" + hex.EncodeToString(sum[:12]) + "." + ext
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	fw, err := mw.CreateFormFile("image", name)
	if err == nil {
		_, err = fw.Write(data)
	}
	if err == nil {
		err = mw.WriteField("type", "input")
	}
	if err == nil {
		err = mw.WriteField("overwrite", "true")
	}
	if err == nil {
		err = mw.Close()
	}
	if err != nil {
		return "", fmt.Errorf("comfyui: POST /upload/image: %w", err)
	}
	raw, err := c.call(ctx, http.MethodPost, "/upload/image", mw.FormDataContentType(), body.Bytes())
	if err != nil {
		return "", err
	}
	var ans struct {
		Name      string `json:"name"`
		Subfolder string `json:"subfolder"`
	}
	if err := json.Unmarshal(raw, &ans); err != nil || ans.Name == "" {
		return "", fmt.Errorf("comfyui: POST /upload/image: answer has no name: %s", truncate(string(raw), 200))
	}
	if ans.Subfolder != "" {
		// LoadImage lists input files as "subfolder/name".
		return ans.Subfolder + "/" + ans.Name, nil
	}
	return ans.Name, nil
}

// Upscale enlarges one image with the built-in or owner upscale workflow
// (see builtinUpscale): a resampling method ("lanczos" by default) scales
// by Factor; an upscale model name runs the model, then scales to exactly
// Factor times the source size.
func (c *Client) Upscale(ctx context.Context, req sdclient.UpscaleRequest) (*sdclient.Result, error) {
	if req.Factor <= 0 || req.Factor > 8 || math.IsNaN(req.Factor) {
		return nil, &sdclient.PermanentError{Reason: fmt.Sprintf("comfyui: upscale factor must be in (0, 8] (got %g)", req.Factor)}
	}
	cfg, _, err := image.DecodeConfig(bytes.NewReader(req.Image))
	if err != nil {
		return nil, &sdclient.PermanentError{Reason: "comfyui: the image to upscale is not a PNG or JPEG", Err: err}
	}
	if req.Upscaler != "" {
		if cat, err := c.names(ctx, false); err == nil && !contains(cat.Upscalers, req.Upscaler) {
			if cat, err = c.names(ctx, true); err == nil {
				req.Upscaler = closest(cat.Upscalers, req.Upscaler, modelKey)
			}
		}
	}
	name, err := c.upload(ctx, req.Image)
	if err != nil {
		return nil, err
	}
	p := upParams{
		InitImage: name, Factor: req.Factor, Upscaler: req.Upscaler,
		Width:  int(math.Round(float64(cfg.Width) * req.Factor)),
		Height: int(math.Round(float64(cfg.Height) * req.Factor)),
	}
	var g Graph
	if w := c.workflows[kindUpscale]; w != nil {
		g = w.fill(map[string]any{"init_image": p.InitImage, "factor": p.Factor, "upscaler": p.Upscaler, "width": p.Width, "height": p.Height})
	} else {
		g = builtinUpscale(p)
	}
	imgs, err := c.run(ctx, g, nil)
	if err != nil {
		return nil, err
	}
	return &sdclient.Result{Images: imgs}, nil
}
