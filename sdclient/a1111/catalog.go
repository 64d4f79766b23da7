package a1111

import (
	"context"
	"errors"
	"fmt"
	"math"
	"path"
	"strings"
	"sync"
	"time"

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

// named is an entry of the samplers, schedulers, LoRAs and upscalers lists:
// a name and the other names the server accepts for it.
type named struct {
	Name    string   `json:"name"`
	Label   string   `json:"label"`   // schedulers
	Alias   string   `json:"alias"`   // LoRAs
	Aliases []string `json:"aliases"` // samplers, schedulers
}

func (n named) names() []string {
	return append([]string{n.Name, n.Label, n.Alias}, n.Aliases...)
}

// catalog is the server's lists as fetched, with what validation needs
// beyond sdclient.Catalog.
type catalog struct {
	pub        sdclient.Catalog
	models     []sdModel
	samplers   []named
	schedulers []named // nil when the server has no scheduler list (before 1.9)
	loras      []named // nil when the Lora extension is off
	upscalers  []named
}

// catalogCache keeps the last catalog for validation.
type catalogCache struct {
	mu  sync.Mutex
	cat *catalog
	at  time.Time
}

// Catalog lists the server's checkpoints (GET /sdapi/v1/sd-models),
// samplers, schedulers (A1111 1.9+; none before), LoRAs (the built-in Lora
// extension's /sdapi/v1/loras; none when it is off), upscalers and the
// loaded checkpoint (options.sd_model_checkpoint, reported by its short
// name). Model names are A1111's model_name; Title ("name.safetensors
// [hash]"), the file name and the short hash are accepted as
// Request.Model too.
func (c *Client) Catalog(ctx context.Context) (*sdclient.Catalog, error) {
	cat, err := c.fetchCatalog(ctx)
	if err != nil {
		return nil, err
	}
	pub := cat.pub
	return &pub, nil
}

func (c *Client) fetchCatalog(ctx context.Context) (*catalog, error) {
	cat := &catalog{}
	if err := c.getJSON(ctx, pathModels, &cat.models); err != nil {
		return nil, err
	}
	if err := c.getJSON(ctx, pathSamplers, &cat.samplers); err != nil {
		return nil, err
	}
	if err := c.getJSON(ctx, pathUpscalers, &cat.upscalers); err != nil {
		return nil, err
	}
	// Older servers lack these two routes: the lists are then unknown.
	if err := c.getJSON(ctx, pathSchedulers, &cat.schedulers); err != nil && !errors.Is(err, ErrNoAPI) {
		return nil, err
	}
	if err := c.getJSON(ctx, pathLoRAs, &cat.loras); err != nil && !errors.Is(err, ErrNoAPI) {
		return nil, err
	}
	var opts struct {
		Checkpoint string `json:"sd_model_checkpoint"`
	}
	if err := c.getJSON(ctx, pathOptions, &opts); err != nil {
		return nil, err
	}
	pub := &cat.pub
	pub.Models = make([]sdclient.Model, len(cat.models))
	for i, m := range cat.models {
		pub.Models[i] = sdclient.Model{Name: m.ModelName, Title: m.Title}
		if m.Hash != nil {
			pub.Models[i].Hash = *m.Hash
		}
	}
	pub.Loaded = opts.Checkpoint
	if m, ok := cat.model(opts.Checkpoint); ok {
		pub.Loaded = m.ModelName
	}
	pub.Samplers = nameList(cat.samplers)
	pub.Schedulers = nameList(cat.schedulers)
	pub.LoRAs = nameList(cat.loras)
	pub.Upscalers = nameList(cat.upscalers)

	c.catalog.mu.Lock()
	c.catalog.cat, c.catalog.at = cat, time.Now()
	c.catalog.mu.Unlock()
	return cat, nil
}

func nameList(l []named) []string {
	if l == nil {
		return nil
	}
	out := make([]string, len(l))
	for i, n := range l {
		out[i] = n.Name
	}
	return out
}

// cachedCatalog returns a catalog at most maxAge old, fetching one if
// needed.
func (c *Client) cachedCatalog(ctx context.Context, maxAge time.Duration) (*catalog, time.Time, error) {
	c.catalog.mu.Lock()
	cat, at := c.catalog.cat, c.catalog.at
	c.catalog.mu.Unlock()
	if cat != nil && time.Since(at) <= maxAge {
		return cat, at, nil
	}
	cat, err := c.fetchCatalog(ctx)
	return cat, time.Now(), err
}

// How long validation trusts the catalog, and how old it must be before an
// unknown name makes validation fetch it again (the owner may just have
// added a model).
const (
	catalogMaxAge  = time.Minute
	catalogRefetch = 5 * time.Second
)

// model finds a checkpoint by any name A1111's checkpoint_aliases knows:
// title, short name, file name (with or without extension), short hash;
// exact first, then ignoring case.
func (cat *catalog) model(name string) (sdModel, bool) {
	if name == "" {
		return sdModel{}, false
	}
	for _, fold := range []bool{false, true} {
		for _, m := range cat.models {
			base := path.Base(strings.ReplaceAll(m.Filename, `\`, "/"))
			cands := []string{m.Title, m.ModelName, base, strings.TrimSuffix(base, path.Ext(base))}
			if m.Hash != nil {
				cands = append(cands, *m.Hash)
			}
			for _, cand := range cands {
				if cand != "" && (cand == name || fold && strings.EqualFold(cand, name)) {
					return m, true
				}
			}
		}
	}
	return sdModel{}, false
}

// find resolves name in l (any of an entry's names, ignoring case) to the
// entry's name.
func find(l []named, name string) (string, bool) {
	for _, fold := range []bool{false, true} {
		for _, n := range l {
			for _, cand := range n.names() {
				if cand != "" && (cand == name || fold && strings.EqualFold(cand, name)) {
					return n.Name, true
				}
			}
		}
	}
	return "", false
}

// resolved is a request's names as the server knows them.
type resolved struct {
	modelTitle string
	sampler    string
	scheduler  string
	loras      []string
}

// resolve checks req's model, sampler, scheduler and LoRAs against cat. A
// legacy sampler name with a scheduler suffix ("DPM++ 2M Karras") is split
// as A1111's sd_samplers.get_sampler_and_scheduler does.
func (cat *catalog) resolve(req sdclient.Request) (resolved, error) {
	var r resolved
	if req.Model != "" {
		m, ok := cat.model(req.Model)
		if !ok {
			return r, unknownName("model", req.Model, cat.pub.Models, func(m sdclient.Model) string { return m.Name })
		}
		r.modelTitle = m.Title
	}
	if req.Sampler != "" {
		if name, ok := find(cat.samplers, req.Sampler); ok {
			r.sampler = name
		} else if s, sched, ok := cat.legacySampler(req.Sampler); ok {
			r.sampler, r.scheduler = s, sched
		} else {
			return r, unknownName("sampler", req.Sampler, cat.pub.Samplers, nil)
		}
	}
	if req.Scheduler != "" {
		if cat.schedulers == nil {
			return r, &sdclient.PermanentError{Reason: fmt.Sprintf(
				"scheduler: this backend has no scheduler list (A1111 before 1.9); leave scheduler empty or name it in the sampler (got %q)", req.Scheduler)}
		}
		name, ok := find(cat.schedulers, req.Scheduler)
		if !ok {
			return r, unknownName("scheduler", req.Scheduler, cat.pub.Schedulers, nil)
		}
		r.scheduler = name
	}
	for i, l := range req.LoRAs {
		field := fmt.Sprintf("loras[%d]", i)
		if cat.loras == nil {
			return r, &sdclient.PermanentError{Reason: field + ": this backend lists no LoRAs (is its Lora extension enabled?)"}
		}
		name, ok := find(cat.loras, l.Name)
		if !ok {
			return r, unknownName(field+".name", l.Name, cat.pub.LoRAs, nil)
		}
		if math.IsNaN(l.Weight) || math.IsInf(l.Weight, 0) {
			return r, &sdclient.PermanentError{Reason: field + ".weight must be a finite number"}
		}
		r.loras = append(r.loras, name)
	}
	return r, nil
}

// legacySampler splits "<sampler> <scheduler label or name>".
func (cat *catalog) legacySampler(name string) (sampler, scheduler string, ok bool) {
	for _, sc := range cat.schedulers {
		for _, opt := range sc.names() {
			if opt == "" || len(name) <= len(opt)+1 || !strings.EqualFold(name[len(name)-len(opt)-1:], " "+opt) {
				continue
			}
			if s, found := find(cat.samplers, name[:len(name)-len(opt)-1]); found {
				return s, sc.Name, true
			}
		}
	}
	return "", "", false
}

// maxChoices caps the valid names an error lists.
const maxChoices = 20

// unknownName is the error for a name the backend does not have, naming
// the field and the valid choices.
func unknownName[T any](field, got string, choices []T, name func(T) string) error {
	names := make([]string, 0, min(len(choices), maxChoices))
	for i, ch := range choices {
		if i == maxChoices {
			names = append(names, fmt.Sprintf("… (%d more)", len(choices)-maxChoices))
			break
		}
		if name != nil {
			names = append(names, name(ch))
		} else {
			names = append(names, any(ch).(string))
		}
	}
	valid := "none"
	if len(names) > 0 {
		valid = strings.Join(names, ", ")
	}
	return &sdclient.PermanentError{Reason: fmt.Sprintf("%s: %q is not on this backend; valid: %s", field, got, valid)}
}

// validate resolves req against the catalog, fetching the catalog again
// once when a name is unknown and the catalog is not fresh.
func (c *Client) validate(ctx context.Context, req sdclient.Request) (resolved, error) {
	cat, at, err := c.cachedCatalog(ctx, catalogMaxAge)
	if err != nil {
		return resolved{}, fmt.Errorf("a1111: catalog: %w", err)
	}
	r, err := cat.resolve(req)
	if err != nil && time.Since(at) > catalogRefetch {
		if cat, err = c.fetchCatalog(ctx); err != nil {
			return resolved{}, fmt.Errorf("a1111: catalog: %w", err)
		}
		r, err = cat.resolve(req)
	}
	return r, err
}
