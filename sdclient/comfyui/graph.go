package comfyui

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"
)

// Graph is a ComfyUI API-format workflow: node id → node. It is what POST
// /prompt takes as "prompt" (ComfyUI execution.py validate_prompt).
type Graph map[string]Node

// Node is one node of a Graph. An input is a literal (string, number, bool)
// or a link to another node's output, written [node_id, output_index].
type Node struct {
	ClassType string         `json:"class_type"`
	Inputs    map[string]any `json:"inputs"`
}

// Link is an input fed by output Output of node Node; it marshals as
// ComfyUI's ["node_id", index].
type Link struct {
	Node   string
	Output int
}

// MarshalJSON writes l as [node, output].
func (l Link) MarshalJSON() ([]byte, error) { return json.Marshal([]any{l.Node, l.Output}) }

// clone copies g deeply enough that filling placeholders or inserting
// nodes does not touch the original.
func (g Graph) clone() Graph {
	out := make(Graph, len(g))
	for id, n := range g {
		out[id] = Node{ClassType: n.ClassType, Inputs: cloneValue(n.Inputs).(map[string]any)}
	}
	return out
}

func cloneValue(v any) any {
	switch v := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, e := range v {
			out[k] = cloneValue(e)
		}
		return out
	case []any:
		out := make([]any, len(v))
		for i, e := range v {
			out[i] = cloneValue(e)
		}
		return out
	}
	return v
}

// nextID returns a node id not used in g: one more than the largest
// numeric id.
func (g Graph) nextID() string {
	maxID := 0
	for id := range g {
		if n, err := strconv.Atoi(id); err == nil && n > maxID {
			maxID = n
		}
	}
	return strconv.Itoa(maxID + 1)
}

// linkOf reads an input as a link: Link or the decoded JSON form
// ["id", n] (n a float64 or json.Number).
func linkOf(v any) (Link, bool) {
	switch v := v.(type) {
	case Link:
		return v, true
	case []any:
		if len(v) != 2 {
			return Link{}, false
		}
		id, ok := v[0].(string)
		if !ok {
			return Link{}, false
		}
		switch n := v[1].(type) {
		case float64:
			return Link{id, int(n)}, true
		case json.Number:
			i, err := n.Int64()
			return Link{id, int(i)}, err == nil
		case int:
			return Link{id, n}, true
		}
	}
	return Link{}, false
}

// insertLoRAs chains one LoraLoader per LoRA after the checkpoint loader
// ckpt (outputs 0 MODEL and 1 CLIP) and moves every consumer of those two
// outputs to the end of the chain (ComfyUI nodes.py LoraLoader: inputs
// model, clip, lora_name, strength_model, strength_clip; outputs MODEL,
// CLIP).
func (g Graph) insertLoRAs(ckpt string, loras []loraUse) {
	if len(loras) == 0 {
		return
	}
	consumers := map[string][]string{} // node id → input names fed by ckpt 0/1
	for id, n := range g {
		for name, v := range n.Inputs {
			if l, ok := linkOf(v); ok && l.Node == ckpt && (l.Output == 0 || l.Output == 1) {
				consumers[id] = append(consumers[id], name)
			}
		}
	}
	model, clip := Link{ckpt, 0}, Link{ckpt, 1}
	for _, l := range loras {
		id := g.nextID()
		g[id] = Node{ClassType: "LoraLoader", Inputs: map[string]any{
			"lora_name": l.Name, "strength_model": l.Weight, "strength_clip": l.Weight,
			"model": model, "clip": clip,
		}}
		model, clip = Link{id, 0}, Link{id, 1}
	}
	for _, id := range slices.Sorted(maps.Keys(consumers)) {
		for _, name := range consumers[id] {
			l, _ := linkOf(g[id].Inputs[name])
			if l.Output == 0 {
				g[id].Inputs[name] = model
			} else {
				g[id].Inputs[name] = clip
			}
		}
	}
}

type loraUse struct {
	Name   string
	Weight float64
}

// Node ids of the built-in workflows; the numbering follows ComfyUI's own
// default graph (script_examples/basic_api_example.py) so a graph is easy
// to compare with one exported from the web UI.
const (
	idSampler  = "3"
	idCkpt     = "4"
	idLatent   = "5"
	idPositive = "6"
	idNegative = "7"
	idDecode   = "8"
	idSave     = "9"
	idLoad     = "10"
	idEncode   = "11"
	idUpModel  = "12"
	idUpscale  = "13"
	idGuidance = "14"
)

// genParams are the values a generation workflow is filled with.
type genParams struct {
	Prompt, Negative   string
	Seed               int64
	Steps              int
	CFG                float64
	Width, Height      int
	Batch              int
	Sampler, Scheduler string
	Model              string
	Denoise            float64
	// Guidance is a guidance-distilled model's guidance (FluxGuidance,
	// A1111/Forge distilled_cfg_scale); 0 leaves the model's default.
	Guidance  float64
	InitImage string // uploaded file name; "" for txt2img
	LoRAs     []loraUse
}

// builtinGenerate builds the txt2img graph, or the img2img one when
// p.InitImage is set: CheckpointLoaderSimple → [LoraLoader…] → two
// CLIPTextEncode → EmptyLatentImage (or LoadImage → VAEEncode) → KSampler
// → VAEDecode → SaveImage. A Guidance puts a FluxGuidance node between the
// positive prompt and the sampler (comfy_extras/nodes_flux.py; a model that
// is not guidance-distilled ignores the value).
func builtinGenerate(p genParams) Graph {
	g := Graph{
		idCkpt:     {"CheckpointLoaderSimple", map[string]any{"ckpt_name": p.Model}},
		idPositive: {"CLIPTextEncode", map[string]any{"text": p.Prompt, "clip": Link{idCkpt, 1}}},
		idNegative: {"CLIPTextEncode", map[string]any{"text": p.Negative, "clip": Link{idCkpt, 1}}},
		idSampler: {"KSampler", map[string]any{
			"seed": p.Seed, "steps": p.Steps, "cfg": p.CFG, "sampler_name": p.Sampler, "scheduler": p.Scheduler,
			"denoise": p.Denoise, "model": Link{idCkpt, 0}, "positive": Link{idPositive, 0},
			"negative": Link{idNegative, 0}, "latent_image": Link{idLatent, 0},
		}},
		idDecode: {"VAEDecode", map[string]any{"samples": Link{idSampler, 0}, "vae": Link{idCkpt, 2}}},
		idSave:   {"SaveImage", map[string]any{"filename_prefix": "easel", "images": Link{idDecode, 0}}},
	}
	if p.InitImage == "" {
		g[idLatent] = Node{"EmptyLatentImage", map[string]any{"width": p.Width, "height": p.Height, "batch_size": p.Batch}}
	} else {
		// VAEEncode makes a batch of one; RepeatLatentBatch repeats it so a
		// count > 1 gives that many variations of the source.
		g[idLoad] = Node{"LoadImage", map[string]any{"image": p.InitImage}}
		g[idEncode] = Node{"VAEEncode", map[string]any{"pixels": Link{idLoad, 0}, "vae": Link{idCkpt, 2}}}
		g[idLatent] = Node{"RepeatLatentBatch", map[string]any{"samples": Link{idEncode, 0}, "amount": p.Batch}}
	}
	if p.Guidance > 0 {
		g[idGuidance] = Node{"FluxGuidance", map[string]any{"conditioning": Link{idPositive, 0}, "guidance": p.Guidance}}
		g[idSampler].Inputs["positive"] = Link{idGuidance, 0}
	}
	g.insertLoRAs(idCkpt, p.LoRAs)
	return g
}

// upParams are the values an upscale workflow is filled with.
type upParams struct {
	InitImage     string
	Factor        float64
	Upscaler      string
	Width, Height int // target size: the source's times Factor
}

// scaleMethods are ImageScaleBy's upscale_method choices (ComfyUI nodes.py
// ImageScaleBy); an Upscaler that is not one of them names an upscale model.
var scaleMethods = []string{"nearest-exact", "bilinear", "area", "bicubic", "lanczos"}

// builtinUpscale builds the upscale graph. With no upscaler or a plain
// resampling method: LoadImage → ImageScaleBy → SaveImage. With an upscale
// model (a file in models/upscale_models): LoadImage → UpscaleModelLoader →
// ImageUpscaleWithModel (the model's own factor, often 4×) → ImageScale to
// exactly the requested size → SaveImage.
func builtinUpscale(p upParams) Graph {
	g := Graph{idLoad: {"LoadImage", map[string]any{"image": p.InitImage}}}
	method := p.Upscaler
	if method == "" {
		method = "lanczos"
	}
	if slices.Contains(scaleMethods, method) {
		g[idUpscale] = Node{"ImageScaleBy", map[string]any{"upscale_method": method, "scale_by": p.Factor, "image": Link{idLoad, 0}}}
	} else {
		g[idUpModel] = Node{"UpscaleModelLoader", map[string]any{"model_name": p.Upscaler}}
		g[idEncode] = Node{"ImageUpscaleWithModel", map[string]any{"upscale_model": Link{idUpModel, 0}, "image": Link{idLoad, 0}}}
		g[idUpscale] = Node{"ImageScale", map[string]any{
			"upscale_method": "lanczos", "width": p.Width, "height": p.Height, "crop": "disabled", "image": Link{idEncode, 0},
		}}
	}
	g[idSave] = Node{"SaveImage", map[string]any{"filename_prefix": "easel-upscale", "images": Link{idUpscale, 0}}}
	return g
}

// String renders g as compact JSON, for error messages and tests.
func (g Graph) String() string {
	b, err := json.Marshal(g)
	if err != nil {
		return fmt.Sprintf("<graph: %v>", err)
	}
	return string(b)
}
