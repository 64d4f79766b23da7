package a1111

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"syscall"
	"time"

	"github.com/easelbot/easel/sdclient"
)

// Config says where the server is.
type Config struct {
	// BaseURL is the server, e.g. http://127.0.0.1:7860. Required.
	BaseURL string
	// Username and Password for HTTP basic auth (A1111 --api-auth). Default none.
	Username string
	Password string
	// ProgressInterval is how often progress is polled while a generation
	// runs. Default 250ms.
	ProgressInterval time.Duration
	// Timeout bounds one generation. Default 10m.
	Timeout time.Duration
	// HTTPClient is used for every call. Default: a client with no overall
	// timeout (generations are bounded by Timeout).
	HTTPClient *http.Client
}

// Client talks to one A1111-compatible server.
type Client struct {
	cfg  Config
	base *url.URL
	http *http.Client
}

var _ sdclient.Backend = (*Client)(nil)

// New validates cfg and returns a client.
func New(cfg Config) (*Client, error) {
	u, err := url.Parse(cfg.BaseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("a1111: url must be an http:// or https:// URL (got %q)", cfg.BaseURL)
	}
	if cfg.ProgressInterval == 0 {
		cfg.ProgressInterval = 250 * time.Millisecond
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 10 * time.Minute
	}
	hc := cfg.HTTPClient
	if hc == nil {
		hc = &http.Client{Transport: &http.Transport{
			Proxy:               http.ProxyFromEnvironment,
			DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			MaxIdleConnsPerHost: 4,
			IdleConnTimeout:     90 * time.Second,
		}}
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	return &Client{cfg: cfg, base: u, http: hc}, nil
}

// txt2imgRequest is A1111's StableDiffusionTxt2ImgProcessingAPI subset.
type txt2imgRequest struct {
	Prompt           string         `json:"prompt"`
	NegativePrompt   string         `json:"negative_prompt"`
	Width            int            `json:"width"`
	Height           int            `json:"height"`
	Steps            int            `json:"steps"`
	CFGScale         float64        `json:"cfg_scale"`
	Seed             int64          `json:"seed"`
	Subseed          int64          `json:"subseed"`
	SubseedStrength  float64        `json:"subseed_strength"`
	SamplerName      string         `json:"sampler_name,omitempty"`
	BatchSize        int            `json:"batch_size"`
	NIter            int            `json:"n_iter"`
	SendImages       bool           `json:"send_images"`
	SaveImages       bool           `json:"save_images"`
	OverrideSettings map[string]any `json:"override_settings,omitempty"`
}

// Txt2ImgResponse is A1111's TextToImageResponse.
type Txt2ImgResponse struct {
	Images []string `json:"images"`
	Info   string   `json:"info"`
}

// ProgressResponse is A1111's ProgressResponse.
type ProgressResponse struct {
	Progress    float64 `json:"progress"`
	ETARelative float64 `json:"eta_relative"`
	State       struct {
		Interrupted   bool `json:"interrupted"`
		JobCount      int  `json:"job_count"`
		JobNo         int  `json:"job_no"`
		SamplingStep  int  `json:"sampling_step"`
		SamplingSteps int  `json:"sampling_steps"`
	} `json:"state"`
	CurrentImage *string `json:"current_image"`
}

// Generate runs txt2img and polls progress while it runs.
func (c *Client) Generate(ctx context.Context, req sdclient.Request, progress func(sdclient.Progress)) (*sdclient.Result, error) {
	body := txt2imgRequest{
		Prompt: req.Prompt, NegativePrompt: req.NegativePrompt, Width: req.Width, Height: req.Height,
		Steps: req.Steps, CFGScale: req.CFGScale, Seed: req.Seed, Subseed: -1, SubseedStrength: req.SubseedStrength, SamplerName: req.Sampler,
		BatchSize: max(req.Count, 1), NIter: 1, SendImages: true,
	}
	if req.Model != "" {
		body.OverrideSettings = map[string]any{"sd_model_checkpoint": req.Model}
	}
	genCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.cfg.Timeout)
	defer cancel()
	type result struct {
		res *Txt2ImgResponse
		err error
	}
	done := make(chan result, 1)
	go func() {
		var r Txt2ImgResponse
		err := c.do(genCtx, http.MethodPost, "/sdapi/v1/txt2img", body, &r)
		done <- result{&r, err}
	}()

	tick := time.NewTicker(c.cfg.ProgressInterval)
	defer tick.Stop()
	var last ProgressResponse
	var lastImage string
	interrupted := false
	stop := ctx.Done()
	for {
		select {
		case r := <-done:
			if interrupted {
				return nil, fmt.Errorf("a1111: generation interrupted: %w", ctx.Err())
			}
			if r.err != nil {
				return nil, r.err
			}
			return decodeResult(r.res, req)
		case <-stop:
			// Interrupt, then wait for txt2img to return its partial result.
			interrupted, stop = true, nil
			ictx, icancel := context.WithTimeout(context.Background(), 5*time.Second)
			_ = c.Interrupt(ictx)
			icancel()
		case <-tick.C:
			if progress == nil || interrupted {
				continue
			}
			var p ProgressResponse
			if err := c.do(genCtx, http.MethodGet, "/sdapi/v1/progress?skip_current_image=false", nil, &p); err != nil {
				continue // progress is best effort; txt2img reports real failures
			}
			img := ""
			if p.CurrentImage != nil {
				img = *p.CurrentImage
			}
			if p.State.SamplingStep == last.State.SamplingStep && p.State.SamplingSteps == last.State.SamplingSteps && img == lastImage {
				continue
			}
			last = p
			ev := sdclient.Progress{Step: p.State.SamplingStep, Steps: p.State.SamplingSteps, Fraction: p.Progress,
				ETA: time.Duration(p.ETARelative * float64(time.Second))}
			if img != "" && img != lastImage {
				if b, err := decodeImage(img); err == nil {
					ev.Preview = &sdclient.Image{Data: b, Format: sdclient.SniffFormat(b)}
				}
			}
			lastImage = img
			if ev.Steps > 0 {
				progress(ev)
			}
		}
	}
}

func decodeResult(r *Txt2ImgResponse, req sdclient.Request) (*sdclient.Result, error) {
	if len(r.Images) == 0 {
		return nil, errors.New("a1111: txt2img answered no images")
	}
	res := &sdclient.Result{Info: r.Info}
	var info struct {
		AllSeeds []int64 `json:"all_seeds"`
		Seed     int64   `json:"seed"`
	}
	_ = json.Unmarshal([]byte(r.Info), &info)
	// A1111 appends grids and extras after the batch; keep the batch.
	n := len(r.Images)
	if req.Count > 0 && n > req.Count {
		n = req.Count
	}
	for i := 0; i < n; i++ {
		b, err := decodeImage(r.Images[i])
		if err != nil {
			return nil, fmt.Errorf("a1111: image %d: %w", i, err)
		}
		f := sdclient.SniffFormat(b)
		if f == "" {
			return nil, fmt.Errorf("a1111: image %d is not PNG, JPEG or WebP", i)
		}
		res.Images = append(res.Images, sdclient.Image{Data: b, Format: f})
		seed := info.Seed + int64(i)
		if i < len(info.AllSeeds) {
			seed = info.AllSeeds[i]
		}
		res.Seeds = append(res.Seeds, seed)
	}
	return res, nil
}

// Upscale runs POST /sdapi/v1/extra-single-image.
func (c *Client) Upscale(ctx context.Context, req sdclient.UpscaleRequest) (*sdclient.Result, error) {
	upscaler := req.Upscaler
	if upscaler == "" {
		upscaler = "R-ESRGAN 4x+"
	}
	body := map[string]any{"image": base64.StdEncoding.EncodeToString(req.Image), "resize_mode": 0,
		"upscaling_resize": req.Factor, "upscaler_1": upscaler}
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	var out struct {
		Image    string `json:"image"`
		HTMLInfo string `json:"html_info"`
	}
	if err := c.do(ctx, http.MethodPost, "/sdapi/v1/extra-single-image", body, &out); err != nil {
		return nil, err
	}
	b, err := decodeImage(out.Image)
	if err != nil {
		return nil, fmt.Errorf("a1111: upscaled image: %w", err)
	}
	f := sdclient.SniffFormat(b)
	if f == "" {
		return nil, errors.New("a1111: upscaled image is not PNG, JPEG or WebP")
	}
	return &sdclient.Result{Images: []sdclient.Image{{Data: b, Format: f}}, Seeds: []int64{0}, Info: out.HTMLInfo}, nil
}

// decodeImage decodes bare base64, tolerating a data: URL prefix.
func decodeImage(s string) ([]byte, error) {
	if i := strings.Index(s, ";base64,"); i >= 0 && strings.HasPrefix(s, "data:") {
		s = s[i+len(";base64,"):]
	}
	return base64.StdEncoding.DecodeString(s)
}

// Interrupt stops the running generation.
func (c *Client) Interrupt(ctx context.Context) error {
	return c.do(ctx, http.MethodPost, "/sdapi/v1/interrupt", struct{}{}, nil)
}

// Models lists the server's checkpoints.
func (c *Client) Models(ctx context.Context) ([]sdclient.Model, error) {
	var raw []struct {
		Title     string `json:"title"`
		ModelName string `json:"model_name"`
		Hash      string `json:"hash"`
	}
	if err := c.do(ctx, http.MethodGet, "/sdapi/v1/sd-models", nil, &raw); err != nil {
		return nil, err
	}
	out := make([]sdclient.Model, len(raw))
	for i, m := range raw {
		out[i] = sdclient.Model{Name: m.ModelName, Title: m.Title, Hash: m.Hash}
	}
	return out, nil
}

// Samplers lists the server's sampler names.
func (c *Client) Samplers(ctx context.Context) ([]string, error) {
	var raw []struct {
		Name string `json:"name"`
	}
	if err := c.do(ctx, http.MethodGet, "/sdapi/v1/samplers", nil, &raw); err != nil {
		return nil, err
	}
	out := make([]string, len(raw))
	for i, s := range raw {
		out[i] = s.Name
	}
	return out, nil
}

// Options returns the server's options.
func (c *Client) Options(ctx context.Context) (map[string]any, error) {
	var out map[string]any
	return out, c.do(ctx, http.MethodGet, "/sdapi/v1/options", nil, &out)
}

// Health checks that the server answers /sdapi/v1/progress (cheap, and
// served without the generation lock).
func (c *Client) Health(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	return c.do(ctx, http.MethodGet, "/sdapi/v1/progress?skip_current_image=true", nil, nil)
}

func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base.String()+path, body)
	if err != nil {
		return err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.cfg.Username != "" {
		req.SetBasicAuth(c.cfg.Username, c.cfg.Password)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("%w: %s %s: %v", sdclient.ErrUnavailable, method, strings.SplitN(path, "?", 2)[0], unwrapNet(err))
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 256<<20))
	if err != nil {
		return fmt.Errorf("%w: reading answer: %v", sdclient.ErrUnavailable, err)
	}
	switch {
	case resp.StatusCode == http.StatusBadGateway || resp.StatusCode == http.StatusServiceUnavailable || resp.StatusCode == http.StatusGatewayTimeout:
		return fmt.Errorf("%w: HTTP %d: %s", sdclient.ErrUnavailable, resp.StatusCode, ErrorMessage(raw))
	case resp.StatusCode < 200 || resp.StatusCode > 299:
		return &sdclient.HTTPError{Status: resp.StatusCode, Message: ErrorMessage(raw)}
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return fmt.Errorf("a1111: %s %s: bad JSON answer: %w", method, path, err)
	}
	return nil
}

func unwrapNet(err error) error {
	if errors.Is(err, syscall.ECONNREFUSED) {
		return errors.New("connection refused")
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// ErrorMessage renders an A1111/FastAPI error body: {"error", "detail",
// "body", "errors"} from the API's exception handler, or FastAPI's 422
// {"detail": [{"loc", "msg", "type"}]}; otherwise the raw text, trimmed.
func ErrorMessage(raw []byte) string {
	var e struct {
		Error  string          `json:"error"`
		Detail json.RawMessage `json:"detail"`
		Body   any             `json:"body"`
		Errors any             `json:"errors"`
	}
	if json.Unmarshal(raw, &e) == nil {
		var parts []string
		if e.Error != "" {
			parts = append(parts, e.Error)
		}
		var detailStr string
		var detailList []struct {
			Loc []any  `json:"loc"`
			Msg string `json:"msg"`
		}
		switch {
		case json.Unmarshal(e.Detail, &detailStr) == nil && detailStr != "":
			parts = append(parts, detailStr)
		case json.Unmarshal(e.Detail, &detailList) == nil:
			for _, d := range detailList {
				loc := make([]string, 0, len(d.Loc))
				for _, l := range d.Loc {
					if s := fmt.Sprint(l); s != "body" {
						loc = append(loc, s)
					}
				}
				parts = append(parts, strings.Join(loc, ".")+": "+d.Msg)
			}
		}
		if s, ok := e.Errors.(string); ok && s != "" {
			parts = append(parts, s)
		}
		if len(parts) > 0 {
			return trim(strings.Join(parts, ": "))
		}
	}
	return trim(strings.TrimSpace(string(raw)))
}

func trim(s string) string {
	if len(s) > 200 {
		return s[:200] + "…"
	}
	return s
}
