package comfyui

import (
	"context"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/easelbot/easel/sdclient"
)

// Easel accepts names more loosely than ComfyUI does: a model or LoRA
// without its extension or with A1111's "[hash]" suffix, "sub_name" for
// "sub/name.safetensors", a sampler as "dpmpp 2m". ComfyUI's loaders take
// exact file names and KSampler exact choices (a near miss is a 400), so
// Generate resolves each name against the server's lists first.

// catalogTTL is how long Generate trusts the lists it read; a name not
// found in an older copy reads them again (an owner may just have added a
// model).
const catalogTTL = 30 * time.Second

type catalogCache struct {
	mu  sync.Mutex
	cat *sdclient.Catalog
	at  time.Time
}

// names returns the server's lists, at most catalogTTL old unless fresh
// is set.
func (c *Client) names(ctx context.Context, fresh bool) (*sdclient.Catalog, error) {
	c.cache.mu.Lock()
	cat, at := c.cache.cat, c.cache.at
	c.cache.mu.Unlock()
	if cat != nil && !fresh && time.Since(at) < catalogTTL {
		return cat, nil
	}
	cat, err := c.Catalog(ctx)
	if err != nil {
		return nil, err
	}
	c.cache.mu.Lock()
	c.cache.cat, c.cache.at = cat, time.Now()
	c.cache.mu.Unlock()
	return cat, nil
}

// resolve rewrites p's model, LoRAs, sampler and scheduler to the
// server's exact spellings where they match loosely. A name that matches
// nothing stays as given: ComfyUI rejects it with a 400 naming the input
// and the valid choices.
func (c *Client) resolve(ctx context.Context, p *genParams) error {
	cat, err := c.names(ctx, false)
	if err != nil {
		return err
	}
	if miss(cat, p) {
		if cat, err = c.names(ctx, true); err != nil {
			return err
		}
	}
	models := make([]string, len(cat.Models))
	for i, m := range cat.Models {
		models[i] = m.Name
	}
	if p.Model == "" {
		if len(models) == 0 {
			return &sdclient.PermanentError{Reason: "comfyui: the server has no checkpoints in models/checkpoints"}
		}
		p.Model = models[0]
	}
	p.Model = closest(models, p.Model, modelKey)
	for i := range p.LoRAs {
		p.LoRAs[i].Name = closest(cat.LoRAs, p.LoRAs[i].Name, modelKey)
	}
	p.Sampler = closest(cat.Samplers, p.Sampler, samplerKey)
	p.Scheduler = closest(cat.Schedulers, p.Scheduler, samplerKey)
	return nil
}

// miss reports whether a name of p is not in cat exactly.
func miss(cat *sdclient.Catalog, p *genParams) bool {
	found := p.Model == ""
	for _, m := range cat.Models {
		found = found || m.Name == p.Model
	}
	if !found {
		return true
	}
	for _, l := range p.LoRAs {
		if !contains(cat.LoRAs, l.Name) {
			return true
		}
	}
	return !contains(cat.Samplers, p.Sampler) || !contains(cat.Schedulers, p.Scheduler)
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// closest returns name itself when listed, else the one listed name with
// the same key, else name.
func closest(list []string, name string, key func(string) string) string {
	if contains(list, name) {
		return name
	}
	k, hit := key(name), ""
	for _, v := range list {
		if k != "" && key(v) == k {
			if hit != "" {
				return name // ambiguous: let the server say so
			}
			hit = v
		}
	}
	if hit == "" {
		return name
	}
	return hit
}

var (
	hashSuffix = regexp.MustCompile(`\s*\[[0-9a-fA-F]{6,64}\]$`)
	modelExt   = regexp.MustCompile(`(?i)\.(safetensors|ckpt|pt|pth|bin|gguf|sft)$`)
)

// modelKey is a checkpoint or LoRA name without A1111's hash suffix and
// the file extension, lower-cased, with folder separators as "_".
func modelKey(s string) string {
	s = strings.TrimSpace(hashSuffix.ReplaceAllString(strings.TrimSpace(s), ""))
	s = modelExt.ReplaceAllString(s, "")
	return strings.ToLower(strings.NewReplacer("/", "_", `\`, "_").Replace(s))
}

// samplerKey is a sampler or scheduler name reduced to lower-case letters
// and digits, "++" read as "pp" and "ancestral" as "a" ("DPM++ 2M" and
// "dpmpp_2m" meet).
func samplerKey(s string) string {
	s = strings.ToLower(s)
	s = strings.ReplaceAll(s, "++", "pp")
	s = strings.ReplaceAll(s, "ancestral", "a")
	var b strings.Builder
	for _, r := range s {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			b.WriteRune(r)
		}
	}
	return b.String()
}
