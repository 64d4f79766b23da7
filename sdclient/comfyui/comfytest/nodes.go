package comfytest

import (
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
)

// inputSpec is one input of a node class, as INPUT_TYPES declares it in
// ComfyUI's nodes.py.
type inputSpec struct {
	name string
	typ  string // INT, FLOAT, STRING, COMBO, or a link type (MODEL, CLIP, …)
	min  float64
	max  float64
	// choices lists a COMBO's options from the server's state.
	choices func(s *Server) []string
}

// classSpec is a node class: inputs, outputs, and whether it is an output
// node (OUTPUT_NODE: SaveImage, PreviewImage).
type classSpec struct {
	inputs  []inputSpec
	outputs []string
	output  bool
}

func in(name, typ string) inputSpec { return inputSpec{name: name, typ: typ} }
func num(name, typ string, lo, hi float64) inputSpec {
	return inputSpec{name: name, typ: typ, min: lo, max: hi}
}
func combo(name string, choices func(s *Server) []string) inputSpec {
	return inputSpec{name: name, typ: "COMBO", choices: choices}
}

var scaleMethods = []string{"nearest-exact", "bilinear", "area", "bicubic", "lanczos"}

// classes are the core nodes the fake runs (ComfyUI nodes.py,
// comfy_extras/nodes_upscale_model.py and comfy_extras/nodes_flux.py), with
// their real input names and limits (MAX_RESOLUTION 16384; seed up to
// 0xffffffffffffffff; FluxGuidance's guidance 0 to 100).
var classes = map[string]classSpec{
	"CheckpointLoaderSimple": {inputs: []inputSpec{combo("ckpt_name", func(s *Server) []string { return s.cfg.Checkpoints })},
		outputs: []string{"MODEL", "CLIP", "VAE"}},
	"LoraLoader": {inputs: []inputSpec{in("model", "MODEL"), in("clip", "CLIP"),
		combo("lora_name", func(s *Server) []string { return s.cfg.LoRAs }),
		num("strength_model", "FLOAT", -100, 100), num("strength_clip", "FLOAT", -100, 100)},
		outputs: []string{"MODEL", "CLIP"}},
	"CLIPTextEncode": {inputs: []inputSpec{in("text", "STRING"), in("clip", "CLIP")}, outputs: []string{"CONDITIONING"}},
	"FluxGuidance": {inputs: []inputSpec{in("conditioning", "CONDITIONING"), num("guidance", "FLOAT", 0, 100)},
		outputs: []string{"CONDITIONING"}},
	"EmptyLatentImage": {inputs: []inputSpec{num("width", "INT", 16, 16384), num("height", "INT", 16, 16384),
		num("batch_size", "INT", 1, 4096)}, outputs: []string{"LATENT"}},
	"KSampler": {inputs: []inputSpec{in("model", "MODEL"), num("seed", "INT", 0, math.MaxUint64),
		num("steps", "INT", 1, 10000), num("cfg", "FLOAT", 0, 100),
		combo("sampler_name", func(s *Server) []string { return s.cfg.Samplers }),
		combo("scheduler", func(s *Server) []string { return s.cfg.Schedulers }),
		in("positive", "CONDITIONING"), in("negative", "CONDITIONING"), in("latent_image", "LATENT"),
		num("denoise", "FLOAT", 0, 1)}, outputs: []string{"LATENT"}},
	"VAEDecode":         {inputs: []inputSpec{in("samples", "LATENT"), in("vae", "VAE")}, outputs: []string{"IMAGE"}},
	"VAEEncode":         {inputs: []inputSpec{in("pixels", "IMAGE"), in("vae", "VAE")}, outputs: []string{"LATENT"}},
	"RepeatLatentBatch": {inputs: []inputSpec{in("samples", "LATENT"), num("amount", "INT", 1, 64)}, outputs: []string{"LATENT"}},
	"LoadImage": {inputs: []inputSpec{combo("image", func(s *Server) []string { return s.inputFiles() })},
		outputs: []string{"IMAGE", "MASK"}},
	"SaveImage":    {inputs: []inputSpec{in("images", "IMAGE"), in("filename_prefix", "STRING")}, output: true},
	"PreviewImage": {inputs: []inputSpec{in("images", "IMAGE")}, output: true},
	"UpscaleModelLoader": {inputs: []inputSpec{combo("model_name", func(s *Server) []string { return s.cfg.UpscaleModels })},
		outputs: []string{"UPSCALE_MODEL"}},
	"ImageUpscaleWithModel": {inputs: []inputSpec{in("upscale_model", "UPSCALE_MODEL"), in("image", "IMAGE")}, outputs: []string{"IMAGE"}},
	"ImageScaleBy": {inputs: []inputSpec{in("image", "IMAGE"), combo("upscale_method", func(*Server) []string { return scaleMethods }),
		num("scale_by", "FLOAT", 0.01, 8)}, outputs: []string{"IMAGE"}},
	"ImageScale": {inputs: []inputSpec{in("image", "IMAGE"), combo("upscale_method", func(*Server) []string { return scaleMethods }),
		num("width", "INT", 0, 16384), num("height", "INT", 0, 16384),
		combo("crop", func(*Server) []string { return []string{"disabled", "center"} })}, outputs: []string{"IMAGE"}},
}

// node is one node of a submitted prompt.
type node struct {
	ClassType string         `json:"class_type"`
	Inputs    map[string]any `json:"inputs"`
}

type link struct {
	node string
	out  int
}

func asLink(v any) (link, bool) {
	l, ok := v.([]any)
	if !ok || len(l) != 2 {
		return link{}, false
	}
	id, ok := l[0].(string)
	if !ok {
		return link{}, false
	}
	n, ok := l[1].(json.Number)
	if !ok {
		return link{}, false
	}
	i, err := n.Int64()
	return link{id, int(i)}, err == nil
}

// nodeError is one reason in node_errors (execution.py validate_inputs).
type nodeError struct {
	Type      string         `json:"type"`
	Message   string         `json:"message"`
	Details   string         `json:"details"`
	ExtraInfo map[string]any `json:"extra_info"`
}

type topError struct {
	Type      string         `json:"type"`
	Message   string         `json:"message"`
	Details   string         `json:"details"`
	ExtraInfo map[string]any `json:"extra_info"`
}

type nodeErrors struct {
	Errors           []nodeError `json:"errors"`
	DependentOutputs []string    `json:"dependent_outputs"`
	ClassType        string      `json:"class_type"`
}

// validate checks a prompt as execution.py validate_prompt does: every
// class known, at least one output node, and every input of every node an
// output depends on present, of the right type, within limits and (for a
// combo) one of the choices. It returns the output node ids, or the top
// error and node_errors for a 400.
func (s *Server) validate(prompt map[string]node) ([]string, *topError, map[string]nodeErrors) {
	var outputs []string
	for _, id := range slices.Sorted(maps.Keys(prompt)) {
		n := prompt[id]
		if n.ClassType == "" {
			return nil, &topError{"invalid_prompt", "Cannot execute because a node is missing the class_type property.", fmt.Sprintf("Node ID '#%s'", id), map[string]any{}}, map[string]nodeErrors{}
		}
		spec, ok := classes[n.ClassType]
		if !ok {
			return nil, &topError{"invalid_prompt", fmt.Sprintf("Cannot execute because node %s does not exist.", n.ClassType), fmt.Sprintf("Node ID '#%s'", id), map[string]any{}}, map[string]nodeErrors{}
		}
		if spec.output {
			outputs = append(outputs, id)
		}
	}
	if len(outputs) == 0 {
		return nil, &topError{"prompt_no_outputs", "Prompt has no outputs", "", map[string]any{}}, map[string]nodeErrors{}
	}
	errs := map[string]nodeErrors{}
	checked := map[string]bool{}
	var check func(id, out string)
	check = func(id, out string) {
		if checked[id] {
			if e, ok := errs[id]; ok && !slices.Contains(e.DependentOutputs, out) {
				e.DependentOutputs = append(e.DependentOutputs, out)
				errs[id] = e
			}
			return
		}
		checked[id] = true
		n := prompt[id]
		spec := classes[n.ClassType]
		var reasons []nodeError
		for _, is := range spec.inputs {
			v, ok := n.Inputs[is.name]
			if !ok {
				reasons = append(reasons, nodeError{"required_input_missing", "Required input is missing", is.name, map[string]any{"input_name": is.name}})
				continue
			}
			if r := s.checkInput(prompt, is, v, out, check); r != nil {
				reasons = append(reasons, *r)
			}
		}
		if len(reasons) > 0 {
			errs[id] = nodeErrors{Errors: reasons, DependentOutputs: []string{out}, ClassType: n.ClassType}
		}
	}
	for _, out := range outputs {
		check(out, out)
	}
	if len(errs) > 0 {
		var details []string
		for _, id := range slices.Sorted(maps.Keys(errs)) {
			for _, r := range errs[id].Errors {
				details = append(details, fmt.Sprintf("%s: %s", r.Message, r.Details))
			}
		}
		return nil, &topError{"prompt_outputs_failed_validation", "Prompt outputs failed validation", strings.Join(details, "\n"), map[string]any{}}, errs
	}
	return outputs, nil, nil
}

func (s *Server) checkInput(prompt map[string]node, is inputSpec, v any, out string, check func(id, out string)) *nodeError {
	extra := map[string]any{"input_name": is.name, "received_value": v}
	switch is.typ {
	case "INT", "FLOAT", "STRING", "COMBO":
		if _, isLink := asLink(v); isLink {
			return &nodeError{"bad_linked_input", "Bad linked input, expected a value", is.name, extra}
		}
	default:
		l, ok := asLink(v)
		if !ok {
			return &nodeError{"bad_linked_input", "Bad linked input, must be a length-2 list of [string, int]", is.name, extra}
		}
		up, ok := prompt[l.node]
		if !ok {
			return &nodeError{"bad_linked_input", fmt.Sprintf("Linked node %s does not exist", l.node), is.name, extra}
		}
		outs := classes[up.ClassType].outputs
		if l.out < 0 || l.out >= len(outs) || outs[l.out] != is.typ {
			got := "nothing"
			if l.out >= 0 && l.out < len(outs) {
				got = outs[l.out]
			}
			return &nodeError{"return_type_mismatch", "Return type mismatch between linked nodes", fmt.Sprintf("%s, received_type(%s) mismatch input_type(%s)", is.name, got, is.typ), extra}
		}
		check(l.node, out)
		return nil
	}
	switch is.typ {
	case "INT", "FLOAT":
		n, ok := v.(json.Number)
		if !ok {
			return &nodeError{"invalid_input_type", fmt.Sprintf("Failed to convert an input value to a %s value", is.typ), fmt.Sprintf("%s, %v", is.name, v), extra}
		}
		f, err := n.Float64()
		if err != nil || (is.typ == "INT" && strings.ContainsAny(n.String(), ".eE")) {
			return &nodeError{"invalid_input_type", fmt.Sprintf("Failed to convert an input value to a %s value", is.typ), fmt.Sprintf("%s, %v", is.name, v), extra}
		}
		if f < is.min {
			return &nodeError{"value_smaller_than_min", fmt.Sprintf("Value %v smaller than min of %v", n, is.min), is.name, extra}
		}
		if f > is.max {
			return &nodeError{"value_bigger_than_max", fmt.Sprintf("Value %v bigger than max of %v", n, is.max), is.name, extra}
		}
	case "STRING":
		if _, ok := v.(string); !ok {
			return &nodeError{"invalid_input_type", "Failed to convert an input value to a STRING value", fmt.Sprintf("%s, %v", is.name, v), extra}
		}
	case "COMBO":
		str, _ := v.(string)
		list := is.choices(s)
		if !slices.Contains(list, str) {
			return &nodeError{"value_not_in_list", "Value not in list", fmt.Sprintf("%s: '%v' not in %s", is.name, v, pyList(list)), extra}
		}
	}
	return nil
}

// pyList writes a list as Python's str() does, as ComfyUI's messages show it.
func pyList(l []string) string {
	q := make([]string, len(l))
	for i, s := range l {
		q[i] = "'" + s + "'"
	}
	return "[" + strings.Join(q, ", ") + "]"
}
