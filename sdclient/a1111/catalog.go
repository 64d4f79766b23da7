package a1111

import (
	"context"

	"github.com/easelbot/easel/sdclient"
)

// sdModel is one entry of A1111's GET /sdapi/v1/sd-models (SDModelItem).
type sdModel struct {
	Title     string  `json:"title"`
	ModelName string  `json:"model_name"`
	Hash      *string `json:"hash"`
	SHA256    *string `json:"sha256"`
	Filename  string  `json:"filename"`
}

// Models lists the server's checkpoints (GET /sdapi/v1/sd-models). Name is
// A1111's model_name, the short name; Title ("name.safetensors [hash]") and
// Name are both accepted as Request.Model.
func (c *Client) Models(ctx context.Context) ([]sdclient.Model, error) {
	var raw []sdModel
	if err := c.getJSON(ctx, pathModels, &raw); err != nil {
		return nil, err
	}
	out := make([]sdclient.Model, len(raw))
	for i, m := range raw {
		out[i] = sdclient.Model{Name: m.ModelName, Title: m.Title}
		if m.Hash != nil {
			out[i].Hash = *m.Hash
		}
	}
	return out, nil
}

// Samplers lists the sampler names the server accepts (GET
// /sdapi/v1/samplers), in the server's order.
func (c *Client) Samplers(ctx context.Context) ([]string, error) {
	var raw []struct {
		Name    string   `json:"name"`
		Aliases []string `json:"aliases"`
	}
	if err := c.getJSON(ctx, pathSamplers, &raw); err != nil {
		return nil, err
	}
	out := make([]string, len(raw))
	for i, s := range raw {
		out[i] = s.Name
	}
	return out, nil
}

// Options returns the server's settings (GET /sdapi/v1/options), e.g.
// "sd_model_checkpoint" (the loaded checkpoint's title) and
// "samples_format".
func (c *Client) Options(ctx context.Context) (map[string]any, error) {
	var out map[string]any
	if err := c.getJSON(ctx, pathOptions, &out); err != nil {
		return nil, err
	}
	return out, nil
}

// Catalog lists the server's models and samplers and its loaded checkpoint
// (options.sd_model_checkpoint).
func (c *Client) Catalog(ctx context.Context) (*sdclient.Catalog, error) {
	models, err := c.Models(ctx)
	if err != nil {
		return nil, err
	}
	samplers, err := c.Samplers(ctx)
	if err != nil {
		return nil, err
	}
	cat := &sdclient.Catalog{Models: models, Samplers: samplers}
	if opts, err := c.Options(ctx); err == nil {
		if s, ok := opts["sd_model_checkpoint"].(string); ok {
			cat.Loaded = s
		}
	}
	return cat, nil
}
