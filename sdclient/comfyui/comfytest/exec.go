package comfytest

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"maps"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/gorilla/websocket"
)

// value is one node output: what a real node would hand on (a model, a
// latent batch, an image batch), reduced to what decides the pictures.
type value struct {
	typ   string
	w, h  int
	n     int
	key   string // identity of the content: prompt, seed, source…
	scale float64
}

type nodeResult struct {
	outs []value
	ui   map[string]any // an output node's "output" ({"images": [...]})
}

// errInterrupted stops a prompt (comfy.model_management
// InterruptProcessingException).
type errInterrupted struct{}

func (errInterrupted) Error() string { return "interrupted" }

// execute is main.py prompt_worker: take the next prompt and run it, one
// at a time, until Close.
func (s *Server) execute() {
	defer close(s.done)
	for {
		s.mu.Lock()
		var t *task
		if !s.hang && len(s.pending) > 0 {
			t = s.pending[0]
			s.pending = s.pending[1:]
			t.status = Running
			s.running = t
			s.lastNode = ""
			// execution.py clears the interrupt flag when a prompt starts.
			select {
			case <-s.interrupt:
			default:
			}
			s.notifyLocked()
		}
		s.mu.Unlock()
		if t == nil {
			select {
			case <-s.wake:
				continue
			case <-s.stop:
				return
			}
		}
		s.run(t)
	}
}

func now() int64 { return time.Now().UnixMilli() }

// emitLocked sends an execution message to the prompt's client and records
// it for history (execution.py add_message: sent only when the prompt has
// a client id, or when broadcast).
func (s *Server) emitLocked(t *task, typ string, data map[string]any, broadcast bool) {
	t.messages = append(t.messages, [2]any{typ, data})
	if t.clientID != "" || broadcast {
		s.sendLocked(t.clientID, typ, data)
	}
}

// run is execution.py PromptExecutor.execute for one prompt.
func (s *Server) run(t *task) {
	order := topo(t.prompt, t.outputs)
	sigs := map[string]string{}
	for _, id := range order {
		sigs[id] = signature(t.prompt, id, sigs)
	}
	s.mu.Lock()
	s.emitLocked(t, "execution_start", map[string]any{"prompt_id": t.id, "timestamp": now()}, false)
	var cached []string
	for _, id := range order {
		if s.cache[sigs[id]] != nil {
			cached = append(cached, id)
		}
	}
	s.emitLocked(t, "execution_cached", map[string]any{"nodes": nonNil(cached), "prompt_id": t.id, "timestamp": now()}, false)
	s.mu.Unlock()

	results := map[string]*nodeResult{}
	newCache := map[string]*nodeResult{}
	outputs := map[string]any{}
	var executed []string
	var failure error
	var failedNode string
	for _, id := range order {
		n := t.prompt[id]
		s.mu.Lock()
		r := s.cache[sigs[id]]
		if r != nil {
			if r.ui != nil {
				outputs[id] = r.ui
				s.sendLocked(t.clientID, "executed", map[string]any{"node": id, "display_node": id, "output": r.ui, "prompt_id": t.id})
			}
			s.mu.Unlock()
		} else {
			s.lastNode = id
			s.sendLocked(t.clientID, "executing", map[string]any{"node": id, "display_node": id, "prompt_id": t.id})
			s.mu.Unlock()
			var err error
			r, err = s.eval(t, id, n, results)
			if err != nil {
				failure, failedNode = err, id
				break
			}
			executed = append(executed, id)
			if r.ui != nil {
				outputs[id] = r.ui
				s.mu.Lock()
				s.sendLocked(t.clientID, "executed", map[string]any{"node": id, "display_node": id, "output": r.ui, "prompt_id": t.id})
				s.mu.Unlock()
			}
		}
		results[id] = r
		newCache[sigs[id]] = r
	}

	s.mu.Lock()
	var interrupted errInterrupted
	switch {
	case failure == nil:
		t.status = Success
		s.emitLocked(t, "execution_success", map[string]any{"prompt_id": t.id, "timestamp": now()}, false)
	case errors.As(failure, &interrupted):
		t.status = Interrupted
		s.emitLocked(t, "execution_interrupted", map[string]any{"prompt_id": t.id, "node_id": failedNode,
			"node_type": t.prompt[failedNode].ClassType, "executed": nonNil(executed), "timestamp": now()}, true)
	default:
		t.status = Failed
		s.emitLocked(t, "execution_error", map[string]any{"prompt_id": t.id, "node_id": failedNode,
			"node_type": t.prompt[failedNode].ClassType, "executed": nonNil(executed), "exception_message": failure.Error(),
			"exception_type": "RuntimeError", "traceback": []string{}, "current_inputs": map[string]any{},
			"current_outputs": map[string]any{}, "timestamp": now()}, false)
	}
	// Classic cache: keep the outputs of this prompt's nodes only.
	s.cache = newCache
	t.histOutputs = outputs
	s.history = append(s.history, t.id)
	s.running = nil
	s.lastNode = ""
	s.notifyLocked()
	// main.py prompt_worker: history first (task_done), then executing
	// with node null, then the queue status.
	s.sendLocked(t.clientID, "executing", map[string]any{"node": nil, "prompt_id": t.id})
	t.finished = time.Now()
	s.broadcastStatusLocked()
	s.mu.Unlock()
}

func nonNil(l []string) []string {
	if l == nil {
		return []string{}
	}
	return l
}

// topo orders the nodes the outputs depend on, inputs first (execution.py
// ExecutionList), ties by id.
func topo(p map[string]node, outputs []string) []string {
	var order []string
	seen := map[string]bool{}
	var visit func(id string)
	visit = func(id string) {
		if seen[id] {
			return
		}
		seen[id] = true
		n := p[id]
		for _, k := range slices.Sorted(maps.Keys(n.Inputs)) {
			if l, ok := asLink(n.Inputs[k]); ok {
				visit(l.node)
			}
		}
		order = append(order, id)
	}
	for _, o := range slices.Sorted(slices.Values(outputs)) {
		visit(o)
	}
	return order
}

// signature is a node's cache key: its class, literal inputs and its
// inputs' signatures (execution.py CacheKeySetInputSignature).
func signature(p map[string]node, id string, sigs map[string]string) string {
	n := p[id]
	h := sha256.New()
	h.Write([]byte(n.ClassType))
	for _, k := range slices.Sorted(maps.Keys(n.Inputs)) {
		v := n.Inputs[k]
		if l, ok := asLink(v); ok {
			fmt.Fprintf(h, "|%s=@%s#%d", k, sigs[l.node], l.out)
			continue
		}
		b, _ := json.Marshal(v)
		fmt.Fprintf(h, "|%s=%s", k, b)
	}
	return hex.EncodeToString(h.Sum(nil))
}

func intIn(n node, k string) int {
	v, _ := n.Inputs[k].(json.Number)
	f, _ := v.Float64()
	return int(f)
}

func floatIn(n node, k string) float64 {
	v, _ := n.Inputs[k].(json.Number)
	f, _ := v.Float64()
	return f
}

func strIn(n node, k string) string {
	s, _ := n.Inputs[k].(string)
	return s
}

func hashKey(parts ...any) string {
	h := sha256.New()
	for _, p := range parts {
		fmt.Fprintf(h, "%v\x00", p)
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// eval runs one node.
func (s *Server) eval(t *task, id string, n node, results map[string]*nodeResult) (*nodeResult, error) {
	get := func(k string) value {
		l, _ := asLink(n.Inputs[k])
		return results[l.node].outs[l.out]
	}
	switch n.ClassType {
	case "CheckpointLoaderSimple":
		ckpt := strIn(n, "ckpt_name")
		s.mu.Lock()
		load := s.loadedCkpt != ckpt
		s.mu.Unlock()
		if load && s.cfg.LoadDuration > 0 {
			if err := s.pause(s.cfg.LoadDuration); err != nil {
				return nil, err
			}
		}
		s.mu.Lock()
		s.loadedCkpt = ckpt
		s.mu.Unlock()
		return &nodeResult{outs: []value{{typ: "MODEL", key: ckpt}, {typ: "CLIP", key: ckpt}, {typ: "VAE", key: ckpt}}}, nil
	case "LoraLoader":
		m, c := get("model"), get("clip")
		k := strIn(n, "lora_name") + fmt.Sprint(floatIn(n, "strength_model"))
		return &nodeResult{outs: []value{{typ: "MODEL", key: hashKey(m.key, k)}, {typ: "CLIP", key: hashKey(c.key, k)}}}, nil
	case "CLIPTextEncode":
		return &nodeResult{outs: []value{{typ: "CONDITIONING", key: hashKey(get("clip").key, strIn(n, "text"))}}}, nil
	case "FluxGuidance":
		// nodes_flux.py: the conditioning with its guidance value set.
		k := hashKey(get("conditioning").key, fmt.Sprint(floatIn(n, "guidance")))
		return &nodeResult{outs: []value{{typ: "CONDITIONING", key: k}}}, nil
	case "EmptyLatentImage":
		return &nodeResult{outs: []value{{typ: "LATENT", w: intIn(n, "width"), h: intIn(n, "height"), n: intIn(n, "batch_size")}}}, nil
	case "RepeatLatentBatch":
		l := get("samples")
		l.n *= intIn(n, "amount")
		return &nodeResult{outs: []value{l}}, nil
	case "VAEEncode":
		im := get("pixels")
		return &nodeResult{outs: []value{{typ: "LATENT", w: im.w, h: im.h, n: im.n, key: im.key}}}, nil
	case "VAEDecode":
		l := get("samples")
		return &nodeResult{outs: []value{{typ: "IMAGE", w: l.w, h: l.h, n: l.n, key: l.key}}}, nil
	case "KSampler":
		l := get("latent_image")
		out := value{typ: "LATENT", w: l.w, h: l.h, n: l.n,
			key: hashKey(get("model").key, get("positive").key, get("negative").key, l.key, n.Inputs["seed"], floatIn(n, "denoise"), floatIn(n, "cfg"))}
		if err := s.sample(t, id, intIn(n, "steps"), out); err != nil {
			return nil, err
		}
		return &nodeResult{outs: []value{out}}, nil
	case "LoadImage":
		name := strIn(n, "image")
		sub, file := "", name
		if i := strings.LastIndex(name, "/"); i >= 0 {
			sub, file = name[:i], name[i+1:]
		}
		s.mu.Lock()
		data := s.files[fileKey("input", sub, file)]
		s.mu.Unlock()
		cfg, _, err := image.DecodeConfig(bytes.NewReader(data))
		if err != nil {
			return nil, fmt.Errorf("cannot identify image file %q", name)
		}
		k := sha256.Sum256(data)
		v := value{typ: "IMAGE", w: cfg.Width, h: cfg.Height, n: 1, key: hex.EncodeToString(k[:8])}
		return &nodeResult{outs: []value{v, {typ: "MASK"}}}, nil
	case "UpscaleModelLoader":
		name := strIn(n, "model_name")
		scale := 2.0
		if strings.HasPrefix(strings.ToLower(name), "4x") {
			scale = 4
		}
		return &nodeResult{outs: []value{{typ: "UPSCALE_MODEL", key: name, scale: scale}}}, nil
	case "ImageUpscaleWithModel":
		m, im := get("upscale_model"), get("image")
		im.w, im.h, im.key = int(float64(im.w)*m.scale), int(float64(im.h)*m.scale), hashKey(im.key, m.key)
		return &nodeResult{outs: []value{im}}, nil
	case "ImageScaleBy":
		im := get("image")
		f := floatIn(n, "scale_by")
		im.w, im.h = max(int(math.Round(float64(im.w)*f)), 1), max(int(math.Round(float64(im.h)*f)), 1)
		return &nodeResult{outs: []value{im}}, nil
	case "ImageScale":
		im := get("image")
		w, h := intIn(n, "width"), intIn(n, "height")
		switch {
		case w == 0 && h == 0:
		case w == 0:
			w = max(int(math.Round(float64(im.w)*float64(h)/float64(im.h))), 1)
		case h == 0:
			h = max(int(math.Round(float64(im.h)*float64(w)/float64(im.w))), 1)
		}
		if w > 0 {
			im.w, im.h = w, h
		}
		return &nodeResult{outs: []value{im}}, nil
	case "SaveImage", "PreviewImage":
		im := get("images")
		typ, prefix := "output", strIn(n, "filename_prefix")
		if n.ClassType == "PreviewImage" {
			typ, prefix = "temp", "ComfyUI_temp_"+hashKey(t.id)[:5]
		}
		var images []any
		for i := range im.n {
			data, err := renderPNG(im.w, im.h, hashKey(im.key, i))
			if err != nil {
				return nil, err
			}
			s.mu.Lock()
			s.counter++
			name := fmt.Sprintf("%s_%05d_.png", prefix, s.counter)
			s.files[fileKey(typ, "", name)] = data
			s.mu.Unlock()
			images = append(images, map[string]any{"filename": name, "subfolder": "", "type": typ})
		}
		return &nodeResult{ui: map[string]any{"images": images}}, nil
	}
	return nil, fmt.Errorf("node %s cannot run in the fake", n.ClassType)
}

// pause waits d unless the prompt is interrupted or the server closes.
func (s *Server) pause(d time.Duration) error {
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-tm.C:
		return nil
	case <-s.interrupt:
		return errInterrupted{}
	case <-s.stop:
		return errInterrupted{}
	}
}

// sample runs a sampler's steps: progress {value, max, prompt_id, node}
// after each (comfy/utils.py ProgressBar hook in server.py), then a preview
// frame (latent_preview.py), both to the prompt's client (sent to every
// socket when the prompt has no client id, as send_sync with sid None
// does). The stall and drop knobs act here.
func (s *Server) sample(t *task, id string, steps int, out value) error {
	for i := 1; i <= steps; i++ {
		if err := s.pause(s.cfg.StepDuration); err != nil {
			return err
		}
		s.mu.Lock()
		t.step = i
		s.sendLocked(t.clientID, "progress", map[string]any{"value": i, "max": steps, "prompt_id": t.id, "node": id})
		if !s.cfg.NoPreviews {
			frame := make([]byte, 8, 1024)
			binary.BigEndian.PutUint32(frame, 1)     // PREVIEW_IMAGE
			binary.BigEndian.PutUint32(frame[4:], 1) // JPEG
			frame = append(frame, previewJPEG(out.w, out.h, hashKey(out.key, i))...)
			s.sendRawLocked(t.clientID, websocket.BinaryMessage, frame)
		}
		if s.dropAt > 0 && i == s.dropAt {
			s.dropAt = 0
			if so := s.sockets[t.clientID]; so != nil {
				so.close()
				delete(s.sockets, t.clientID)
			}
		}
		stall := s.stallAt > 0 && i == s.stallAt
		if stall {
			s.stallAt = 0
		}
		s.notifyLocked()
		s.mu.Unlock()
		if stall {
			select {
			case <-s.interrupt:
				return errInterrupted{}
			case <-s.stop:
				return errInterrupted{}
			case <-s.release:
			}
		}
	}
	return nil
}

// renderPNG draws a deterministic w×h picture for key: two colours from
// its hash, split along a diagonal.
func renderPNG(w, h int, key string) ([]byte, error) {
	sum := sha256.Sum256([]byte(key))
	pal := color.Palette{color.RGBA{sum[0], sum[1], sum[2], 255}, color.RGBA{sum[3], sum[4], sum[5], 255}}
	img := image.NewPaletted(image.Rect(0, 0, w, h), pal)
	for y := range h {
		row := img.Pix[y*img.Stride : y*img.Stride+w]
		for x := range row {
			if x*h+y*w > w*h {
				row[x] = 1
			}
		}
	}
	var buf bytes.Buffer
	if err := (&png.Encoder{CompressionLevel: png.BestSpeed}).Encode(&buf, img); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// previewJPEG draws a small flat preview, fitted in 64 pixels like a TAESD
// preview scaled down.
func previewJPEG(w, h int, key string) []byte {
	pw, ph := 64, 64
	if w > 0 && h > 0 {
		if w >= h {
			ph = max(64*h/w, 1)
		} else {
			pw = max(64*w/h, 1)
		}
	}
	sum := sha256.Sum256([]byte(key))
	img := image.NewRGBA(image.Rect(0, 0, pw, ph))
	for i := 0; i < len(img.Pix); i += 4 {
		img.Pix[i], img.Pix[i+1], img.Pix[i+2], img.Pix[i+3] = sum[0], sum[1], sum[2], 255
	}
	var buf bytes.Buffer
	_ = jpeg.Encode(&buf, img, &jpeg.Options{Quality: 80})
	return buf.Bytes()
}
