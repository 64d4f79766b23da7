package comfyui_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"image"
	"image/color"
	"image/png"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/easelbot/easel/sdclient"
	"github.com/easelbot/easel/sdclient/comfyui"
	"github.com/easelbot/easel/sdclient/comfyui/comfytest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		goleak.IgnoreTopFunction("internal/poll.runtime_pollWait"),
		goleak.IgnoreTopFunction("net/http.(*persistConn).writeLoop"))
}

type bundle struct {
	ctx    context.Context
	fake   *comfytest.Server
	srv    *httptest.Server
	client *comfyui.Client
}

func setup(t *testing.T, fcfg comfytest.Config, ccfg comfyui.Config) *bundle {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	fake := comfytest.New(fcfg)
	srv := httptest.NewServer(fake.Handler())
	t.Cleanup(func() {
		fake.Close()
		srv.Close()
	})
	ccfg.BaseURL = srv.URL
	c, err := comfyui.New(ccfg)
	require.NoError(t, err)
	return &bundle{ctx: ctx, fake: fake, srv: srv, client: c}
}

// progressLog collects progress reports; Generate calls it from one
// goroutine, the test reads it after.
type progressLog struct {
	mu  sync.Mutex
	all []sdclient.Progress
}

func (p *progressLog) add(pr sdclient.Progress) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.all = append(p.all, pr)
}

func (p *progressLog) get() []sdclient.Progress {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]sdclient.Progress(nil), p.all...)
}

func size(t *testing.T, img sdclient.Image) (int, int) {
	t.Helper()
	cfg, _, err := image.DecodeConfig(bytes.NewReader(img.Data))
	require.NoError(t, err)
	return cfg.Width, cfg.Height
}

func pngOf(t *testing.T, w, h int) []byte {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for i := range img.Pix {
		img.Pix[i] = uint8(i)
	}
	img.Set(0, 0, color.RGBA{1, 2, 3, 255})
	var buf bytes.Buffer
	require.NoError(t, png.Encode(&buf, img))
	return buf.Bytes()
}

// graphOf returns the last prompt the fake received.
func lastGraph(t *testing.T, f *comfytest.Server) map[string]any {
	t.Helper()
	ps := f.Prompts()
	require.NotEmpty(t, ps)
	return ps[len(ps)-1].Graph
}

func nodesOf(g map[string]any, class string) []map[string]any {
	var out []map[string]any
	for _, v := range g {
		n := v.(map[string]any)
		if n["class_type"] == class {
			out = append(out, n["inputs"].(map[string]any))
		}
	}
	return out
}

func txt(prompt string) sdclient.Request {
	return sdclient.Request{Prompt: prompt, Width: 96, Height: 64, Steps: 6, CFGScale: 6, Seed: 42, Count: 2}
}

func TestGenerateProgressPreviewsAndImages(t *testing.T) {
	t.Parallel()
	b := setup(t, comfytest.Config{}, comfyui.Config{})
	var log progressLog
	req := txt("a red fox")
	req.Sampler = "DPM++ 2M Karras"
	res, err := b.client.Generate(b.ctx, req, log.add)
	require.NoError(t, err)

	require.Len(t, res.Images, 2)
	for _, im := range res.Images {
		require.Equal(t, "png", im.Format)
		w, h := size(t, im)
		require.Equal(t, [2]int{96, 64}, [2]int{w, h})
	}
	require.Equal(t, []int64{42, 42}, res.Seeds, "a ComfyUI batch shares one seed")

	prs := log.get()
	require.NotEmpty(t, prs)
	previews, last := 0, 0
	for _, p := range prs {
		require.Equal(t, 6, p.Steps)
		require.GreaterOrEqual(t, p.Step, last)
		last = p.Step
		if p.Preview != nil {
			previews++
			require.Equal(t, "jpeg", p.Preview.Format)
		}
	}
	require.Equal(t, 6, last)
	require.Equal(t, 6, previews)
	require.LessOrEqual(t, len(prs), 7, "one report per step once previews flow (the first step's comes before its preview)")

	g := lastGraph(t, b.fake)
	ks := nodesOf(g, "KSampler")
	require.Len(t, ks, 1)
	require.Equal(t, "dpmpp_2m", ks[0]["sampler_name"])
	require.Equal(t, "karras", ks[0]["scheduler"])
	require.Equal(t, json.Number("42"), ks[0]["seed"])
	require.Equal(t, "sd_xl_base_1.0.safetensors", nodesOf(g, "CheckpointLoaderSimple")[0]["ckpt_name"], "the first checkpoint when none is named")
}

func TestGenerateRandomSeedIsPickedAndReported(t *testing.T) {
	t.Parallel()
	b := setup(t, comfytest.Config{NoPreviews: true}, comfyui.Config{})
	req := txt("seedless")
	req.Seed, req.Count = -1, 1
	res, err := b.client.Generate(b.ctx, req, nil)
	require.NoError(t, err)
	require.Len(t, res.Seeds, 1)
	require.GreaterOrEqual(t, res.Seeds[0], int64(0))
	seed := nodesOf(lastGraph(t, b.fake), "KSampler")[0]["seed"].(json.Number)
	require.Equal(t, json.Number(jsonInt(res.Seeds[0])), seed)
}

func jsonInt(n int64) string {
	b, _ := json.Marshal(n)
	return string(b)
}

func TestLooseNamesResolveToTheServersSpelling(t *testing.T) {
	t.Parallel()
	b := setup(t, comfytest.Config{NoPreviews: true}, comfyui.Config{})
	for _, tc := range []struct {
		model, lora, sampler string
	}{
		{"sd_xl_base_1.0", "detail", "dpmpp 2m"},
		{"sd_xl_base_1.0.safetensors [31e35c80fc]", "Detail.safetensors", "DPM++ 2M"},
	} {
		req := txt("loose " + tc.model)
		req.Count, req.Model, req.Sampler = 1, tc.model, tc.sampler
		req.LoRAs = []sdclient.LoRA{{Name: tc.lora, Weight: 1}}
		_, err := b.client.Generate(b.ctx, req, nil)
		require.NoError(t, err, tc.model)
		g := lastGraph(t, b.fake)
		require.Equal(t, "sd_xl_base_1.0.safetensors", nodesOf(g, "CheckpointLoaderSimple")[0]["ckpt_name"])
		require.Equal(t, "detail.safetensors", nodesOf(g, "LoraLoader")[0]["lora_name"])
		require.Equal(t, "dpmpp_2m", nodesOf(g, "KSampler")[0]["sampler_name"])
	}
}

func TestGenerateImg2Img(t *testing.T) {
	t.Parallel()
	b := setup(t, comfytest.Config{NoPreviews: true}, comfyui.Config{})
	req := txt("a watercolour fox")
	req.InitImage, req.DenoisingStrength, req.Count = pngOf(t, 80, 48), 0.4, 2
	res, err := b.client.Generate(b.ctx, req, nil)
	require.NoError(t, err)
	require.Len(t, res.Images, 2)
	w, h := size(t, res.Images[0])
	require.Equal(t, [2]int{80, 48}, [2]int{w, h}, "img2img keeps the source size")

	g := lastGraph(t, b.fake)
	require.Len(t, nodesOf(g, "LoadImage"), 1)
	require.Len(t, nodesOf(g, "VAEEncode"), 1)
	require.Empty(t, nodesOf(g, "EmptyLatentImage"))
	require.Equal(t, json.Number("0.4"), nodesOf(g, "KSampler")[0]["denoise"])
}

func TestLoRAsAreChainedLoraLoaders(t *testing.T) {
	t.Parallel()
	b := setup(t, comfytest.Config{NoPreviews: true}, comfyui.Config{})
	req := txt("with loras")
	req.Count = 1
	req.LoRAs = []sdclient.LoRA{{Name: "detail.safetensors", Weight: 0.8}, {Name: "style.safetensors", Weight: 0.5}}
	_, err := b.client.Generate(b.ctx, req, nil)
	require.NoError(t, err)

	g := lastGraph(t, b.fake)
	ids := map[string]string{} // lora_name → node id
	var first, second map[string]any
	for id, v := range g {
		n := v.(map[string]any)
		if n["class_type"] == "LoraLoader" {
			in := n["inputs"].(map[string]any)
			ids[in["lora_name"].(string)] = id
			if in["lora_name"] == "detail.safetensors" {
				first = in
			} else {
				second = in
			}
		}
	}
	require.Len(t, ids, 2)
	ckpt := ""
	for id, v := range g {
		if v.(map[string]any)["class_type"] == "CheckpointLoaderSimple" {
			ckpt = id
		}
	}
	link := func(v any) []any { return v.([]any) }
	require.Equal(t, ckpt, link(first["model"])[0])
	require.Equal(t, ids["detail.safetensors"], link(second["model"])[0])
	require.Equal(t, ids["detail.safetensors"], link(second["clip"])[0])
	require.Equal(t, json.Number("0.8"), first["strength_model"])
	ks := nodesOf(g, "KSampler")[0]
	require.Equal(t, ids["style.safetensors"], link(ks["model"])[0], "the sampler uses the end of the chain")
	for _, enc := range nodesOf(g, "CLIPTextEncode") {
		require.Equal(t, ids["style.safetensors"], link(enc["clip"])[0])
	}
}

// otherGraph is a prompt another user of the server submits.
func otherGraph(steps int) map[string]any {
	return map[string]any{
		"4": map[string]any{"class_type": "CheckpointLoaderSimple", "inputs": map[string]any{"ckpt_name": "v1-5-pruned-emaonly.safetensors"}},
		"6": map[string]any{"class_type": "CLIPTextEncode", "inputs": map[string]any{"text": "someone else's cat", "clip": []any{"4", 1}}},
		"5": map[string]any{"class_type": "EmptyLatentImage", "inputs": map[string]any{"width": 64, "height": 64, "batch_size": 1}},
		"3": map[string]any{"class_type": "KSampler", "inputs": map[string]any{"seed": 1, "steps": steps, "cfg": 7,
			"sampler_name": "euler", "scheduler": "normal", "denoise": 1, "model": []any{"4", 0}, "positive": []any{"6", 0},
			"negative": []any{"6", 0}, "latent_image": []any{"5", 0}}},
		"8": map[string]any{"class_type": "VAEDecode", "inputs": map[string]any{"samples": []any{"3", 0}, "vae": []any{"4", 2}}},
		"9": map[string]any{"class_type": "SaveImage", "inputs": map[string]any{"filename_prefix": "other", "images": []any{"8", 0}}},
	}
}

func TestCancelPendingDeletesOnlyOurPrompt(t *testing.T) {
	t.Parallel()
	b := setup(t, comfytest.Config{}, comfyui.Config{})
	b.fake.StallAt(2)
	other, err := b.fake.SubmitAs("web-ui", otherGraph(4))
	require.NoError(t, err)
	require.NoError(t, b.fake.Wait(b.ctx.Done(), func(s comfytest.Snapshot) bool { return s.Running == other && s.Step == 2 }))

	ctx, cancel := context.WithCancel(b.ctx)
	done := make(chan error, 1)
	go func() {
		_, err := b.client.Generate(ctx, txt("queued behind"), nil)
		done <- err
	}()
	require.NoError(t, b.fake.Wait(b.ctx.Done(), func(s comfytest.Snapshot) bool { return len(s.Pending) == 1 }))
	cancel()
	err = <-done
	require.ErrorIs(t, err, context.Canceled)

	ours := b.fake.Prompts()[1].ID
	require.Equal(t, comfytest.Deleted, b.fake.Status(ours))
	b.fake.Release()
	require.NoError(t, b.fake.Wait(b.ctx.Done(), func(s comfytest.Snapshot) bool { return s.Status[other] == comfytest.Success }))
	require.Empty(t, b.fake.Interrupts(), "a pending prompt is deleted, nothing is interrupted")
}

func TestCancelRunningInterruptsOnlyOurPrompt(t *testing.T) {
	t.Parallel()
	b := setup(t, comfytest.Config{}, comfyui.Config{})
	b.fake.StallAt(3)
	ctx, cancel := context.WithCancel(b.ctx)
	done := make(chan error, 1)
	var log progressLog
	go func() {
		_, err := b.client.Generate(ctx, txt("running"), log.add)
		done <- err
	}()
	require.NoError(t, b.fake.Wait(b.ctx.Done(), func(s comfytest.Snapshot) bool { return s.Running != "" && s.Step == 3 }))
	ours := b.fake.Prompts()[0].ID
	other, err := b.fake.SubmitAs("web-ui", otherGraph(3))
	require.NoError(t, err)
	cancel()
	require.ErrorIs(t, <-done, context.Canceled)

	require.NoError(t, b.fake.Wait(b.ctx.Done(), func(s comfytest.Snapshot) bool { return s.Status[other] == comfytest.Success }))
	require.Equal(t, comfytest.Interrupted, b.fake.Status(ours))
	require.Equal(t, []comfytest.Interrupt{{Requested: ours, Stopped: ours}}, b.fake.Interrupts())
}

func TestCancelNeverInterruptsAnotherClientsRunningPrompt(t *testing.T) {
	t.Parallel()
	b := setup(t, comfytest.Config{}, comfyui.Config{})
	b.fake.StallAt(1)
	other, err := b.fake.SubmitAs("web-ui", otherGraph(3))
	require.NoError(t, err)
	require.NoError(t, b.fake.Wait(b.ctx.Done(), func(s comfytest.Snapshot) bool { return s.Running == other && s.Step == 1 }))
	// Our Generate dies while the other prompt runs, through its Queue
	// timeout rather than the caller, which takes the same cancel path.
	b2, err := comfyui.New(comfyui.Config{BaseURL: b.srv.URL, Timeouts: sdclient.Timeouts{Queue: 50 * time.Millisecond}})
	require.NoError(t, err)
	_, err = b2.Generate(b.ctx, txt("too late"), nil)
	require.ErrorIs(t, err, sdclient.ErrStalled)
	require.Empty(t, b.fake.Interrupts())
	require.Equal(t, comfytest.Running, b.fake.Status(other))
	b.fake.Release()
	require.NoError(t, b.fake.Wait(b.ctx.Done(), func(s comfytest.Snapshot) bool { return s.Status[other] == comfytest.Success }))
}

func TestValidationErrorIsPermanentAndNamesTheInput(t *testing.T) {
	t.Parallel()
	b := setup(t, comfytest.Config{}, comfyui.Config{})
	for _, tc := range []struct {
		name string
		edit func(*sdclient.Request)
		want []string
	}{
		{"unknown checkpoint", func(r *sdclient.Request) { r.Model = "nope.safetensors" },
			[]string{"Prompt outputs failed validation", "node 4 (CheckpointLoaderSimple) input ckpt_name", "'nope.safetensors' not in"}},
		{"unknown sampler", func(r *sdclient.Request) { r.Sampler = "warp_drive" },
			[]string{"node 3 (KSampler) input sampler_name: Value not in list"}},
		{"unknown lora", func(r *sdclient.Request) { r.LoRAs = []sdclient.LoRA{{Name: "ghost.safetensors", Weight: 1}} },
			[]string{"(LoraLoader) input lora_name", "ghost.safetensors"}},
		{"width too small", func(r *sdclient.Request) { r.Width = 8 },
			[]string{"node 5 (EmptyLatentImage) input width: Value 8 smaller than min of 16"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := txt("bad")
			tc.edit(&req)
			_, err := b.client.Generate(b.ctx, req, nil)
			var pe *sdclient.PermanentError
			require.ErrorAs(t, err, &pe)
			for _, w := range tc.want {
				require.Contains(t, pe.Reason, w)
			}
			require.NotErrorIs(t, err, sdclient.ErrUnavailable)
		})
	}
}

func TestVariationIsRejectedNotFaked(t *testing.T) {
	t.Parallel()
	b := setup(t, comfytest.Config{}, comfyui.Config{})
	req := txt("vary")
	req.SubseedStrength = 0.3
	_, err := b.client.Generate(b.ctx, req, nil)
	var pe *sdclient.PermanentError
	require.ErrorAs(t, err, &pe)
	require.Contains(t, pe.Reason, "variation_strength")
	require.Empty(t, b.fake.Prompts(), "nothing is submitted")
}

// A variation with its chosen image runs as img2img of that image (the
// upload is the image, byte for byte) with a fresh seed, denoise 0.3 + 0.7
// × strength; two clicks on the same image give two different prompts.
func TestVariationWithItsImageRunsAsImg2Img(t *testing.T) {
	t.Parallel()
	b := setup(t, comfytest.Config{NoPreviews: true}, comfyui.Config{})
	src := pngOf(t, 80, 48)
	var seeds []int64
	for range 2 {
		req := txt("vary")
		req.Count, req.SubseedStrength, req.VariationSource = 1, 0.35, src
		req.VariationOf = &sdclient.ImageRef{Job: "j", Image: 0}
		res, err := b.client.Generate(b.ctx, req, nil)
		require.NoError(t, err)
		require.Len(t, res.Images, 1)
		w, h := size(t, res.Images[0])
		require.Equal(t, [2]int{80, 48}, [2]int{w, h}, "img2img keeps the chosen image's size")
		require.Contains(t, res.Info, "img2img of the chosen image")
		require.Nil(t, res.Subseeds)
		seeds = append(seeds, res.Seeds[0])

		g := lastGraph(t, b.fake)
		require.Empty(t, nodesOf(g, "EmptyLatentImage"))
		ks := nodesOf(g, "KSampler")[0]
		require.Equal(t, json.Number("0.545"), ks["denoise"])
		require.Equal(t, ks["seed"], json.Number(strconv.FormatInt(res.Seeds[0], 10)), "the seed reported is the one that ran")
		name := nodesOf(g, "LoadImage")[0]["image"].(string)
		resp, err := http.Get(b.srv.URL + "/view?type=input&filename=" + url.QueryEscape(name))
		require.NoError(t, err)
		got, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		require.NoError(t, err)
		require.Equal(t, src, got, "the chosen image is the img2img source")
	}
	require.NotEqual(t, seeds[0], seeds[1], "each variation gets a fresh seed")
	require.NotEqual(t, int64(42), seeds[0])
}

func TestWebsocketDropMidJobIsRecovered(t *testing.T) {
	t.Parallel()
	b := setup(t, comfytest.Config{}, comfyui.Config{})
	b.fake.DropAt(2)
	var log progressLog
	res, err := b.client.Generate(b.ctx, txt("dropped"), log.add)
	require.NoError(t, err)
	require.Len(t, res.Images, 2)
	w, h := size(t, res.Images[1])
	require.Equal(t, [2]int{96, 64}, [2]int{w, h})
	require.Equal(t, comfytest.Success, b.fake.Status(b.fake.Prompts()[0].ID))
}

func TestWebsocketDropAfterTheEndIsRecoveredFromHistory(t *testing.T) {
	t.Parallel()
	// The drop comes at the last step: the prompt finishes while the client
	// reconnects, so the end is read from /history, not from a message.
	b := setup(t, comfytest.Config{NoPreviews: true}, comfyui.Config{})
	req := txt("dropped at the end")
	b.fake.DropAt(req.Steps)
	res, err := b.client.Generate(b.ctx, req, nil)
	require.NoError(t, err)
	require.Len(t, res.Images, 2)
}

func TestWebsocketThatKeepsDroppingIsUnavailable(t *testing.T) {
	t.Parallel()
	fake := comfytest.New(comfytest.Config{})
	fake.SetHang(true)
	inner := fake.Handler()
	up := websocket.Upgrader{}
	// A proxy that accepts the websocket, passes one status message and
	// cuts it.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/ws" {
			inner.ServeHTTP(w, r)
			return
		}
		conn, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		_ = conn.WriteMessage(websocket.TextMessage, []byte(`{"type": "status", "data": {"status": {"exec_info": {"queue_remaining": 0}}}}`))
		conn.Close()
	}))
	t.Cleanup(func() { fake.Close(); srv.Close() })
	c, err := comfyui.New(comfyui.Config{BaseURL: srv.URL})
	require.NoError(t, err)
	require.NoError(t, c.Health(context.Background()), "the websocket opens")
	_, err = c.Generate(context.Background(), txt("cut"), nil)
	require.ErrorIs(t, err, sdclient.ErrUnavailable)
	require.Contains(t, err.Error(), "dropped")
	require.Equal(t, comfytest.Deleted, fake.Status(fake.Prompts()[0].ID), "the abandoned prompt leaves the queue")
}

func TestHealthNeedsTheWebsocket(t *testing.T) {
	t.Parallel()
	fake := comfytest.New(comfytest.Config{})
	inner := fake.Handler()
	// A proxy that passes HTTP but not websocket upgrades.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/ws" {
			http.Error(w, "upgrade not allowed", http.StatusBadRequest)
			return
		}
		inner.ServeHTTP(w, r)
	}))
	t.Cleanup(func() { fake.Close(); srv.Close() })
	c, err := comfyui.New(comfyui.Config{BaseURL: srv.URL})
	require.NoError(t, err)
	err = c.Health(context.Background())
	require.ErrorIs(t, err, sdclient.ErrUnavailable)
	require.Contains(t, err.Error(), "websocket")
}

func TestCachedResubmissionDoesNotHang(t *testing.T) {
	t.Parallel()
	b := setup(t, comfytest.Config{}, comfyui.Config{Timeouts: sdclient.Timeouts{ModelLoad: 20 * time.Second}})
	first, err := b.client.Generate(b.ctx, txt("same"), nil)
	require.NoError(t, err)
	var log progressLog
	second, err := b.client.Generate(b.ctx, txt("same"), log.add)
	require.NoError(t, err)
	require.Empty(t, log.get(), "a cached graph sends no progress")
	require.Equal(t, first.Images, second.Images)
}

func TestHangIsStalledAfterTheQueueTimeout(t *testing.T) {
	t.Parallel()
	b := setup(t, comfytest.Config{}, comfyui.Config{Timeouts: sdclient.Timeouts{Queue: 100 * time.Millisecond}})
	b.fake.SetHang(true)
	_, err := b.client.Generate(b.ctx, txt("never runs"), nil)
	require.ErrorIs(t, err, sdclient.ErrStalled)
	require.Contains(t, err.Error(), "did not start within 100ms")
	require.Equal(t, comfytest.Deleted, b.fake.Status(b.fake.Prompts()[0].ID), "the abandoned prompt leaves the queue")
}

func TestStallMidSamplingInterruptsOurPrompt(t *testing.T) {
	t.Parallel()
	b := setup(t, comfytest.Config{}, comfyui.Config{Timeouts: sdclient.Timeouts{Stall: 100 * time.Millisecond}})
	b.fake.StallAt(2)
	_, err := b.client.Generate(b.ctx, txt("stops at 2"), nil)
	require.ErrorIs(t, err, sdclient.ErrStalled)
	require.Contains(t, err.Error(), "no progress for 100ms")
	ours := b.fake.Prompts()[0].ID
	require.Equal(t, []comfytest.Interrupt{{Requested: ours, Stopped: ours}}, b.fake.Interrupts())
	require.NoError(t, b.fake.Wait(b.ctx.Done(), func(s comfytest.Snapshot) bool { return s.Status[ours] == comfytest.Interrupted }))
}

func TestAfterTheLastStepTheModelLoadTimeoutApplies(t *testing.T) {
	t.Parallel()
	// The stall timeout must outlast a loaded machine's gaps between the
	// sampler's steps as the client sees them (100 ms did not, once).
	const stall = 500 * time.Millisecond
	b := setup(t, comfytest.Config{}, comfyui.Config{Timeouts: sdclient.Timeouts{Stall: stall, ModelLoad: time.Minute}})
	req := txt("slow decode")
	b.fake.StallAt(req.Steps) // the sampler's last step, then nothing: like a long VAE decode
	done := make(chan error, 1)
	go func() {
		_, err := b.client.Generate(b.ctx, req, nil)
		done <- err
	}()
	require.NoError(t, b.fake.Wait(b.ctx.Done(), func(s comfytest.Snapshot) bool { return s.Step == req.Steps }))
	select {
	case err := <-done:
		t.Fatalf("Generate ended within 3×Stall after the last step: %v", err)
	case <-time.After(3 * stall):
	}
	b.fake.Release()
	require.NoError(t, <-done)
}

func TestSlowModelLoadIsStalled(t *testing.T) {
	t.Parallel()
	b := setup(t, comfytest.Config{LoadDuration: time.Minute}, comfyui.Config{Timeouts: sdclient.Timeouts{ModelLoad: 100 * time.Millisecond}})
	_, err := b.client.Generate(b.ctx, txt("slow load"), nil)
	require.ErrorIs(t, err, sdclient.ErrStalled)
	require.Contains(t, err.Error(), "model load")
}

func TestInterruptByAnotherClientIsRetryable(t *testing.T) {
	t.Parallel()
	b := setup(t, comfytest.Config{}, comfyui.Config{})
	b.fake.StallAt(2)
	done := make(chan error, 1)
	go func() {
		_, err := b.client.Generate(b.ctx, txt("interrupted by someone"), nil)
		done <- err
	}()
	require.NoError(t, b.fake.Wait(b.ctx.Done(), func(s comfytest.Snapshot) bool { return s.Step == 2 }))
	// Someone presses Cancel in the web UI: a server-wide interrupt.
	resp, err := http.Post(b.srv.URL+"/interrupt", "application/json", nil)
	require.NoError(t, err)
	resp.Body.Close()
	err = <-done
	require.Error(t, err)
	var pe *sdclient.PermanentError
	require.False(t, errors.As(err, &pe), "another client's interrupt is not the request's fault")
	require.Contains(t, err.Error(), "interrupted by another client")
}

func TestUpscale(t *testing.T) {
	t.Parallel()
	b := setup(t, comfytest.Config{}, comfyui.Config{})
	for _, tc := range []struct {
		upscaler string
		class    string
	}{{"", "ImageScaleBy"}, {"bicubic", "ImageScaleBy"}, {"4x-UltraSharp.pth", "ImageUpscaleWithModel"}, {"4x-ultrasharp", "ImageUpscaleWithModel"}} {
		res, err := b.client.Upscale(b.ctx, sdclient.UpscaleRequest{Image: pngOf(t, 40, 30), Factor: 2, Upscaler: tc.upscaler})
		require.NoError(t, err, tc.upscaler)
		require.Len(t, res.Images, 1)
		w, h := size(t, res.Images[0])
		require.Equal(t, [2]int{80, 60}, [2]int{w, h}, tc.upscaler)
		require.Len(t, nodesOf(lastGraph(t, b.fake), tc.class), 1)
	}
	_, err := b.client.Upscale(b.ctx, sdclient.UpscaleRequest{Image: pngOf(t, 40, 30), Factor: 2, Upscaler: "ghost.pth"})
	var pe *sdclient.PermanentError
	require.ErrorAs(t, err, &pe)
	require.Contains(t, pe.Reason, "model_name")
}

func TestCatalogAndHealth(t *testing.T) {
	t.Parallel()
	b := setup(t, comfytest.Config{}, comfyui.Config{})
	require.NoError(t, b.client.Health(b.ctx))
	cat, err := b.client.Catalog(b.ctx)
	require.NoError(t, err)
	require.Equal(t, []sdclient.Model{
		{Name: "sd_xl_base_1.0.safetensors", Title: "sd_xl_base_1.0.safetensors"},
		{Name: "v1-5-pruned-emaonly.safetensors", Title: "v1-5-pruned-emaonly.safetensors"},
	}, cat.Models)
	require.Contains(t, cat.Samplers, "dpmpp_2m")
	require.Contains(t, cat.Schedulers, "karras")
	require.Equal(t, []string{"detail.safetensors", "style.safetensors"}, cat.LoRAs)
	require.Contains(t, cat.Upscalers, "4x-UltraSharp.pth")
	require.Contains(t, cat.Upscalers, "lanczos")
	require.Empty(t, cat.Loaded, "nothing ran yet")

	// Another client's prompt ran last: its checkpoint is the loaded one.
	_, err = b.client.Generate(b.ctx, txt("mine"), nil)
	require.NoError(t, err)
	other, err := b.fake.SubmitAs("web-ui", otherGraph(1))
	require.NoError(t, err)
	require.NoError(t, b.fake.Wait(b.ctx.Done(), func(s comfytest.Snapshot) bool { return s.Status[other] == comfytest.Success }))
	cat, err = b.client.Catalog(b.ctx)
	require.NoError(t, err)
	require.Equal(t, "v1-5-pruned-emaonly.safetensors", cat.Loaded)
}

func TestUnreachableServerIsUnavailable(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close()
	c, err := comfyui.New(comfyui.Config{BaseURL: url, Timeouts: sdclient.Timeouts{Connect: 2 * time.Second}})
	require.NoError(t, err)
	ctx := context.Background()
	require.ErrorIs(t, c.Health(ctx), sdclient.ErrUnavailable)
	_, err = c.Generate(ctx, txt("x"), nil)
	require.ErrorIs(t, err, sdclient.ErrUnavailable)
	_, err = c.Catalog(ctx)
	require.ErrorIs(t, err, sdclient.ErrUnavailable)
}

func TestBadGatewayIsUnavailable(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "upstream down", http.StatusBadGateway)
	}))
	t.Cleanup(srv.Close)
	c, err := comfyui.New(comfyui.Config{BaseURL: srv.URL})
	require.NoError(t, err)
	require.ErrorIs(t, c.Health(context.Background()), sdclient.ErrUnavailable)
	_, err = c.Generate(context.Background(), txt("x"), nil)
	require.ErrorIs(t, err, sdclient.ErrUnavailable)
}

func TestBasicAuthForAProxyInFront(t *testing.T) {
	t.Parallel()
	fake := comfytest.New(comfytest.Config{NoPreviews: true})
	inner := fake.Handler()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, p, ok := r.BasicAuth(); !ok || u != "easel" || p != "s3cret" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		inner.ServeHTTP(w, r)
	}))
	t.Cleanup(func() { fake.Close(); srv.Close() })

	c, err := comfyui.New(comfyui.Config{BaseURL: srv.URL, Username: "easel", Password: "s3cret"})
	require.NoError(t, err)
	res, err := c.Generate(context.Background(), txt("behind a proxy"), nil)
	require.NoError(t, err)
	require.Len(t, res.Images, 2)

	bad, err := comfyui.New(comfyui.Config{BaseURL: srv.URL, Username: "easel", Password: "wrong"})
	require.NoError(t, err)
	var he *sdclient.HTTPError
	require.ErrorAs(t, bad.Health(context.Background()), &he)
	require.Equal(t, http.StatusUnauthorized, he.Status)
}

func TestOwnerWorkflowFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	wf := `{
	  "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "{{model}}"}},
	  "2": {"class_type": "CLIPTextEncode", "inputs": {"text": "masterpiece, {{prompt}}", "clip": ["1", 1]}},
	  "3": {"class_type": "CLIPTextEncode", "inputs": {"text": "{{negative}}", "clip": ["1", 1]}},
	  "4": {"class_type": "EmptyLatentImage", "inputs": {"width": "{{width}}", "height": "{{height}}", "batch_size": "{{batch}}"}},
	  "5": {"class_type": "KSampler", "inputs": {"seed": "{{seed}}", "steps": "{{steps}}", "cfg": "{{cfg}}",
	        "sampler_name": "{{sampler}}", "scheduler": "{{scheduler}}", "denoise": 1,
	        "model": ["1", 0], "positive": ["2", 0], "negative": ["3", 0], "latent_image": ["4", 0]}},
	  "6": {"class_type": "VAEDecode", "inputs": {"samples": ["5", 0], "vae": ["1", 2]}},
	  "7": {"class_type": "PreviewImage", "inputs": {"images": ["6", 0]}}
	}`
	file := filepath.Join(dir, "txt2img.json")
	require.NoError(t, os.WriteFile(file, []byte(wf), 0o600))
	b := setup(t, comfytest.Config{NoPreviews: true}, comfyui.Config{Workflows: comfyui.Workflows{Txt2Img: file}, Model: "v1-5-pruned-emaonly.safetensors"})
	req := txt("a fox")
	req.Sampler, req.Scheduler = "euler_ancestral", "Karras"
	req.LoRAs = []sdclient.LoRA{{Name: "detail.safetensors", Weight: 0.7}}
	res, err := b.client.Generate(b.ctx, req, nil)
	require.NoError(t, err)
	require.Len(t, res.Images, 2)
	w, h := size(t, res.Images[0])
	require.Equal(t, [2]int{96, 64}, [2]int{w, h})

	g := lastGraph(t, b.fake)
	ks := nodesOf(g, "KSampler")[0]
	require.Equal(t, json.Number("6"), ks["steps"], "numbers stay numbers")
	require.Equal(t, json.Number("42"), ks["seed"])
	require.Equal(t, "euler_ancestral", ks["sampler_name"])
	require.Equal(t, "karras", ks["scheduler"])
	var texts []any
	for _, enc := range nodesOf(g, "CLIPTextEncode") {
		texts = append(texts, enc["text"])
	}
	require.ElementsMatch(t, []any{"masterpiece, a fox", ""}, texts)
	require.Equal(t, "v1-5-pruned-emaonly.safetensors", nodesOf(g, "CheckpointLoaderSimple")[0]["ckpt_name"])
	require.Len(t, nodesOf(g, "LoraLoader"), 1)
	require.Equal(t, lora(g), ks["model"].([]any)[0], "LoRAs attach after the {{model}} loader")
}

// distilled_cfg_scale becomes a FluxGuidance node between the positive
// prompt and the sampler in the built-in graph, {{guidance}} in a workflow
// file (3.5 when the job names none); a job with it on a workflow without
// the placeholder fails rather than run without it.
func TestDistilledCFGScaleIsFluxGuidance(t *testing.T) {
	t.Parallel()
	b := setup(t, comfytest.Config{NoPreviews: true}, comfyui.Config{})
	req := txt("flux")
	req.DistilledCFGScale = 2.5
	res, err := b.client.Generate(b.ctx, req, nil)
	require.NoError(t, err)
	require.Contains(t, res.Info, `"guidance":2.5`)
	g := lastGraph(t, b.fake)
	fg := nodesOf(g, "FluxGuidance")
	require.Len(t, fg, 1)
	require.Equal(t, json.Number("2.5"), fg[0]["guidance"])
	pos := fg[0]["conditioning"].([]any)[0].(string)
	require.Equal(t, "CLIPTextEncode", g[pos].(map[string]any)["class_type"])
	ks := nodesOf(g, "KSampler")[0]
	require.Equal(t, "FluxGuidance", g[ks["positive"].([]any)[0].(string)].(map[string]any)["class_type"])

	_, err = b.client.Generate(b.ctx, txt("no guidance"), nil)
	require.NoError(t, err)
	require.Empty(t, nodesOf(lastGraph(t, b.fake), "FluxGuidance"), "none unless asked for")

	dir := t.TempDir()
	wf := func(guidance string) string {
		return `{
	  "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "{{model}}"}},
	  "2": {"class_type": "CLIPTextEncode", "inputs": {"text": "{{prompt}}", "clip": ["1", 1]}},
	  "8": {"class_type": "FluxGuidance", "inputs": {"conditioning": ["2", 0], "guidance": ` + guidance + `}},
	  "4": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
	  "5": {"class_type": "KSampler", "inputs": {"seed": "{{seed}}", "steps": 2, "cfg": 1, "sampler_name": "euler",
	        "scheduler": "simple", "denoise": 1, "model": ["1", 0], "positive": ["8", 0], "negative": ["2", 0], "latent_image": ["4", 0]}},
	  "6": {"class_type": "VAEDecode", "inputs": {"samples": ["5", 0], "vae": ["1", 2]}},
	  "7": {"class_type": "SaveImage", "inputs": {"images": ["6", 0], "filename_prefix": "flux"}}
	}`
	}
	for _, tc := range []struct {
		guidance string
		job      float64
		want     string // the guidance sent, or the error
	}{
		{`"{{guidance}}"`, 4, "4"},
		{`"{{guidance}}"`, 0, "3.5"},
		{`2`, 4, "no {{guidance}} placeholder"},
	} {
		file := filepath.Join(dir, tc.want+".json")
		require.NoError(t, os.WriteFile(file, []byte(wf(tc.guidance)), 0o600))
		b := setup(t, comfytest.Config{NoPreviews: true}, comfyui.Config{Workflows: comfyui.Workflows{Txt2Img: file}})
		req := txt("flux file")
		req.DistilledCFGScale = tc.job
		_, err := b.client.Generate(b.ctx, req, nil)
		if strings.Contains(tc.want, " ") {
			var pe *sdclient.PermanentError
			require.ErrorAs(t, err, &pe)
			require.Contains(t, pe.Reason, tc.want)
			require.Contains(t, pe.Reason, file)
			require.Empty(t, b.fake.Prompts())
			continue
		}
		require.NoError(t, err)
		require.Equal(t, json.Number(tc.want), nodesOf(lastGraph(t, b.fake), "FluxGuidance")[0]["guidance"])
	}
}

func lora(g map[string]any) string {
	for id, v := range g {
		if v.(map[string]any)["class_type"] == "LoraLoader" {
			return id
		}
	}
	return ""
}

func TestOwnerWorkflowFileErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for _, tc := range []struct {
		name, body, want string
	}{
		{"not json", `{`, "not a JSON object of nodes"},
		{"unknown placeholder", `{"1": {"class_type": "X", "inputs": {"text": "{{promt}} {{seed}}"}}}`, "node 1 (X) input text: unknown placeholder {{promt}}"},
		{"number inside text", `{"1": {"class_type": "X", "inputs": {"text": "{{prompt}} seed {{seed}}"}}}`, "placeholder {{seed}} is a integer and must be the whole value"},
		{"missing prompt", `{"1": {"class_type": "X", "inputs": {"seed": "{{seed}}"}}}`, "must use the placeholder {{prompt}}"},
		{"no class", `{"1": {"inputs": {}}}`, "node 1: class_type missing"},
		{"dangling link", `{"1": {"class_type": "X", "inputs": {"text": "{{prompt}}", "s": "{{seed}}", "m": ["9", 0]}}}`, `links to node "9"`},
		{"ui format", `{"nodes": [], "links": []}`, "Export (API)"},
	} {
		file := filepath.Join(dir, tc.name+".json")
		require.NoError(t, os.WriteFile(file, []byte(tc.body), 0o600))
		_, err := comfyui.New(comfyui.Config{BaseURL: "http://127.0.0.1:1", Workflows: comfyui.Workflows{Txt2Img: file}})
		require.Error(t, err, tc.name)
		require.Contains(t, err.Error(), file, tc.name)
		require.Contains(t, err.Error(), tc.want, tc.name)
	}
}
