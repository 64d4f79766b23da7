package comfyui

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// Workflows names owner-supplied workflow files: ComfyUI API-format graphs
// (the web UI's "Export (API)") whose inputs hold placeholders such as
// "{{prompt}}" or "{{seed}}". A file replaces the built-in workflow of its
// kind; "" keeps the built-in one. Files are read and checked once, when
// the client is made.
type Workflows struct {
	// Txt2Img is the text-to-image workflow file. It must use {{prompt}}
	// and {{seed}}. Default "": the built-in graph.
	Txt2Img string `yaml:"txt2img"`
	// Img2Img is the image-to-image workflow file. It must use {{prompt}},
	// {{seed}} and {{init_image}}. Default "": the built-in graph.
	Img2Img string `yaml:"img2img"`
	// Upscale is the upscale workflow file. It must use {{init_image}}.
	// Default "": the built-in graph.
	Upscale string `yaml:"upscale"`
}

// Check reads and checks every workflow file named, as New does, so a
// configuration can be validated before anything starts.
func (w Workflows) Check() error {
	_, err := w.load()
	return err
}

// load reads the files named, in the order txt2img, img2img, upscale.
func (w Workflows) load() (map[workflowKind]*workflow, error) {
	out := map[workflowKind]*workflow{}
	for _, f := range []struct {
		kind workflowKind
		file string
	}{{kindTxt2Img, w.Txt2Img}, {kindImg2Img, w.Img2Img}, {kindUpscale, w.Upscale}} {
		if f.file == "" {
			continue
		}
		wf, err := readWorkflow(f.file, f.kind)
		if err != nil {
			return nil, err
		}
		out[f.kind] = wf
	}
	return out, nil
}

type valueKind int

const (
	kindString valueKind = iota
	kindInt
	kindFloat
)

func (k valueKind) String() string {
	return [...]string{"text", "integer", "number"}[k]
}

// placeholders are the names a workflow file may use, with the type each
// is filled with: numbers stay JSON numbers, so "{{steps}}" becomes 30,
// not "30".
var placeholders = map[string]valueKind{
	"prompt":     kindString,
	"negative":   kindString,
	"seed":       kindInt,
	"steps":      kindInt,
	"cfg":        kindFloat,
	"width":      kindInt,
	"height":     kindInt,
	"batch":      kindInt,
	"sampler":    kindString,
	"scheduler":  kindString,
	"model":      kindString,
	"denoise":    kindFloat,
	"guidance":   kindFloat,
	"init_image": kindString,
	"factor":     kindFloat,
	"upscaler":   kindString,
}

// workflowKind is what a workflow file is for; it decides which
// placeholders it may and must use.
type workflowKind string

const (
	kindTxt2Img workflowKind = "txt2img"
	kindImg2Img workflowKind = "img2img"
	kindUpscale workflowKind = "upscale"
)

func (k workflowKind) allowed(name string) bool {
	switch name {
	case "init_image":
		return k != kindTxt2Img
	case "factor", "upscaler":
		return k == kindUpscale
	case "width", "height":
		return true
	}
	return k != kindUpscale
}

func (k workflowKind) required() []string {
	switch k {
	case kindTxt2Img:
		return []string{"prompt", "seed"}
	case kindImg2Img:
		return []string{"prompt", "seed", "init_image"}
	}
	return []string{"init_image"}
}

// workflow is a loaded, checked workflow file.
type workflow struct {
	file  string
	graph Graph
	// uses is the set of placeholders the file uses.
	uses map[string]bool
	// ckpt is the id of the node whose ckpt_name is "{{model}}": LoRA
	// loaders are chained after it. "" when there is none.
	ckpt string
}

var placeholderRE = regexp.MustCompile(`\{\{\s*([^{}]*?)\s*\}\}`)

// maxWorkflow caps a workflow file; real graphs are tens of kilobytes.
const maxWorkflow = 4 << 20

func readWorkflow(file string, kind workflowKind) (*workflow, error) {
	raw, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("comfyui: %s workflow: %w", kind, err)
	}
	return parseWorkflow(file, raw, kind)
}

// parseWorkflow decodes and checks one API-format workflow. Errors name
// the file, the node and input, and the placeholder.
func parseWorkflow(file string, raw []byte, kind workflowKind) (*workflow, error) {
	fail := func(format string, a ...any) error {
		return fmt.Errorf("comfyui: %s workflow %s: %s", kind, file, fmt.Sprintf(format, a...))
	}
	if len(raw) > maxWorkflow {
		return nil, fail("larger than %d bytes", maxWorkflow)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var top map[string]json.RawMessage
	if err := dec.Decode(&top); err != nil {
		return nil, fail("not a JSON object of nodes: %v", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, fail("trailing data after the JSON object")
	}
	if len(top) == 0 {
		return nil, fail("has no nodes")
	}
	if _, ok := top["nodes"]; ok {
		if _, ok := top["links"]; ok {
			return nil, fail(`is a UI workflow ("nodes" and "links"); export it with "Export (API)" instead`)
		}
	}
	w := &workflow{file: file, graph: Graph{}, uses: map[string]bool{}}
	for _, id := range slices.Sorted(maps.Keys(top)) {
		var n struct {
			ClassType *string        `json:"class_type"`
			Inputs    map[string]any `json:"inputs"`
		}
		d := json.NewDecoder(bytes.NewReader(top[id]))
		d.UseNumber()
		if err := d.Decode(&n); err != nil {
			return nil, fail("node %s: not an object with class_type and inputs: %v", id, err)
		}
		if n.ClassType == nil || *n.ClassType == "" {
			return nil, fail("node %s: class_type missing", id)
		}
		if n.Inputs == nil {
			n.Inputs = map[string]any{}
		}
		for _, in := range slices.Sorted(maps.Keys(n.Inputs)) {
			if err := w.scan(n.Inputs[in], kind); err != nil {
				return nil, fail("node %s (%s) input %s: %v", id, *n.ClassType, in, err)
			}
			if s, ok := n.Inputs[in].(string); ok && in == "ckpt_name" && isWhole(s, "model") {
				if w.ckpt != "" {
					return nil, fail("nodes %s and %s both load {{model}}; use it in one checkpoint loader", w.ckpt, id)
				}
				w.ckpt = id
			}
		}
		w.graph[id] = Node{ClassType: *n.ClassType, Inputs: n.Inputs}
	}
	for id, n := range w.graph {
		for in, v := range n.Inputs {
			if l, ok := linkOf(v); ok {
				if _, ok := w.graph[l.Node]; !ok {
					return nil, fail("node %s (%s) input %s: links to node %q, which is not in the file", id, n.ClassType, in, l.Node)
				}
			}
		}
	}
	for _, name := range kind.required() {
		if !w.uses[name] {
			return nil, fail("must use the placeholder {{%s}}", name)
		}
	}
	return w, nil
}

func isWhole(s, name string) bool {
	m := placeholderRE.FindStringSubmatchIndex(s)
	return m != nil && m[0] == 0 && m[1] == len(s) && s[m[2]:m[3]] == name
}

// scan records the placeholders in v and checks each is known, allowed
// for kind, and (for numbers) the whole value.
func (w *workflow) scan(v any, kind workflowKind) error {
	switch v := v.(type) {
	case string:
		for _, m := range placeholderRE.FindAllStringSubmatchIndex(v, -1) {
			name := v[m[2]:m[3]]
			k, ok := placeholders[name]
			if !ok {
				return fmt.Errorf("unknown placeholder {{%s}} (known: %s)", name, knownPlaceholders(kind))
			}
			if !kind.allowed(name) {
				return fmt.Errorf("placeholder {{%s}} does not belong in a %s workflow (known: %s)", name, kind, knownPlaceholders(kind))
			}
			if k != kindString && (m[0] != 0 || m[1] != len(v)) {
				return fmt.Errorf("placeholder {{%s}} is a %s and must be the whole value, not part of %q", name, k, v)
			}
			w.uses[name] = true
		}
	case []any:
		for _, e := range v {
			if err := w.scan(e, kind); err != nil {
				return err
			}
		}
	case map[string]any:
		for _, k := range slices.Sorted(maps.Keys(v)) {
			if err := w.scan(v[k], kind); err != nil {
				return err
			}
		}
	}
	return nil
}

func knownPlaceholders(kind workflowKind) string {
	var names []string
	for name := range placeholders {
		if kind.allowed(name) {
			names = append(names, "{{"+name+"}}")
		}
	}
	slices.Sort(names)
	return strings.Join(names, ", ")
}

// fill returns a copy of the workflow's graph with every placeholder
// replaced by its value from vals (typed: int64, int, float64 or string).
func (w *workflow) fill(vals map[string]any) Graph {
	g := w.graph.clone()
	for _, n := range g {
		for in, v := range n.Inputs {
			n.Inputs[in] = fillValue(v, vals)
		}
	}
	return g
}

func fillValue(v any, vals map[string]any) any {
	switch v := v.(type) {
	case string:
		if m := placeholderRE.FindStringSubmatchIndex(v); m != nil && m[0] == 0 && m[1] == len(v) {
			if val, ok := vals[v[m[2]:m[3]]]; ok {
				return val
			}
		}
		return placeholderRE.ReplaceAllStringFunc(v, func(s string) string {
			name := placeholderRE.FindStringSubmatch(s)[1]
			val, ok := vals[name]
			if !ok {
				return s
			}
			return formatValue(val)
		})
	case []any:
		for i, e := range v {
			v[i] = fillValue(e, vals)
		}
	case map[string]any:
		for k, e := range v {
			v[k] = fillValue(e, vals)
		}
	}
	return v
}

func formatValue(v any) string {
	switch v := v.(type) {
	case string:
		return v
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64)
	}
	return fmt.Sprint(v)
}
