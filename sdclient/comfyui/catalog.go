package comfyui

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/easelbot/easel/sdclient"
)

// Catalog lists checkpoints, LoRAs and upscale models from GET
// /models/{folder} (server.py; exact file names, which is what the loader
// nodes take) and samplers and schedulers from GET /object_info/KSampler.
// Servers older than the /models route answer 404 there; the lists are then
// read from the loader nodes' object_info. ComfyUI does not say which
// checkpoint is loaded; Loaded is the checkpoint of the server's most
// recent prompt, whoever sent it (ComfyUI keeps a model in memory after a
// prompt unless VRAM runs short), or "" when that is unclear.
func (c *Client) Catalog(ctx context.Context) (*sdclient.Catalog, error) {
	ks, err := c.objectInfo(ctx, "KSampler")
	if err != nil {
		return nil, err
	}
	cat := &sdclient.Catalog{}
	if cat.Samplers, err = ks.combo("sampler_name"); err != nil {
		return nil, err
	}
	if cat.Schedulers, err = ks.combo("scheduler"); err != nil {
		return nil, err
	}
	ckpts, err := c.models(ctx, "checkpoints", "CheckpointLoaderSimple", "ckpt_name")
	if err != nil {
		return nil, err
	}
	for _, m := range ckpts {
		cat.Models = append(cat.Models, sdclient.Model{Name: m, Title: m})
	}
	if cat.LoRAs, err = c.models(ctx, "loras", "LoraLoader", "lora_name"); err != nil {
		return nil, err
	}
	// Upscale models are optional: a server may lack the node entirely.
	if up, err := c.models(ctx, "upscale_models", "UpscaleModelLoader", "model_name"); err == nil {
		cat.Upscalers = append(append([]string{}, scaleMethods...), up...)
	} else if errors.Is(err, sdclient.ErrUnavailable) {
		return nil, err
	} else {
		cat.Upscalers = append([]string{}, scaleMethods...)
	}
	cat.Loaded = c.lastCheckpoint(ctx)
	return cat, nil
}

// lastCheckpoint reads GET /history?max_items=1 and returns the ckpt_name
// of the entry's one CheckpointLoaderSimple, or "" (no history, several
// loaders, a link instead of a name, or an error: Loaded is a hint).
func (c *Client) lastCheckpoint(ctx context.Context) string {
	var h map[string]struct {
		Prompt []json.RawMessage `json:"prompt"`
	}
	if err := c.getJSON(ctx, "/history?max_items=1", &h); err != nil || len(h) != 1 {
		return ""
	}
	for _, e := range h {
		if len(e.Prompt) < 3 {
			return ""
		}
		var g map[string]struct {
			ClassType string         `json:"class_type"`
			Inputs    map[string]any `json:"inputs"`
		}
		if json.Unmarshal(e.Prompt[2], &g) != nil {
			return ""
		}
		name := ""
		for _, n := range g {
			if n.ClassType != "CheckpointLoaderSimple" {
				continue
			}
			s, ok := n.Inputs["ckpt_name"].(string)
			if !ok || name != "" && name != s {
				return ""
			}
			name = s
		}
		return name
	}
	return ""
}

// models lists a model folder, falling back to a loader node's combo input
// on servers without GET /models.
func (c *Client) models(ctx context.Context, folder, class, input string) ([]string, error) {
	var names []string
	err := c.getJSON(ctx, "/models/"+folder, &names)
	var he *sdclient.HTTPError
	if errors.As(err, &he) && he.Status == http.StatusNotFound {
		info, ierr := c.objectInfo(ctx, class)
		if ierr != nil {
			return nil, ierr
		}
		return info.combo(input)
	}
	if names == nil && err == nil {
		names = []string{}
	}
	return names, err
}

// nodeInfo is one node class's GET /object_info/{class} entry
// (server.py node_info): input.required and input.optional map an input
// name to its type spec.
type nodeInfo struct {
	class string
	Input struct {
		Required map[string]json.RawMessage `json:"required"`
		Optional map[string]json.RawMessage `json:"optional"`
	} `json:"input"`
}

func (c *Client) objectInfo(ctx context.Context, class string) (*nodeInfo, error) {
	var all map[string]*nodeInfo
	if err := c.getJSON(ctx, "/object_info/"+class, &all); err != nil {
		return nil, err
	}
	info := all[class]
	if info == nil {
		return nil, &sdclient.PermanentError{Reason: fmt.Sprintf("comfyui: the server has no %s node", class)}
	}
	info.class = class
	return info, nil
}

// combo reads a choice input's options. ComfyUI writes a combo as
// [[choice, …], {options}] and, since its typed-node rewrite, as
// ["COMBO", {"options": [choice, …]}].
func (n *nodeInfo) combo(input string) ([]string, error) {
	raw, ok := n.Input.Required[input]
	if !ok {
		raw, ok = n.Input.Optional[input]
	}
	if !ok {
		return nil, fmt.Errorf("comfyui: object_info %s has no input %s", n.class, input)
	}
	list, err := parseCombo(raw)
	if err != nil {
		return nil, fmt.Errorf("comfyui: object_info %s input %s: %w", n.class, input, err)
	}
	return list, nil
}

func parseCombo(raw json.RawMessage) ([]string, error) {
	var spec []json.RawMessage
	if err := json.Unmarshal(raw, &spec); err != nil || len(spec) == 0 {
		return nil, errors.New("not a combo input")
	}
	var list []string
	if json.Unmarshal(spec[0], &list) == nil {
		if list == nil {
			list = []string{}
		}
		return list, nil
	}
	var typ string
	if json.Unmarshal(spec[0], &typ) == nil && typ == "COMBO" && len(spec) > 1 {
		var opts struct {
			Options []string `json:"options"`
		}
		if json.Unmarshal(spec[1], &opts) == nil {
			if opts.Options == nil {
				opts.Options = []string{}
			}
			return opts.Options, nil
		}
	}
	return nil, errors.New("not a combo input")
}
