package commands

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/easelbot/easel/scheduler"
)

// Catalog is what the healthy backends offer, merged: a backend appears
// while its worker's advertisement is fresh (workers refresh it every few
// minutes and it expires 15 minutes after the last refresh) and its
// worker's health checks pass (one marked down is left out until it
// answers again).
type Catalog struct {
	// Models lists every checkpoint with the backends that have it and
	// those that have it loaded now.
	Models     []CatalogModel `json:"models"`
	Samplers   []string       `json:"samplers"`
	Schedulers []string       `json:"schedulers"`
	LoRAs      []string       `json:"loras"`
	Upscalers  []string       `json:"upscalers"`
	// Backends names the backends that advertised.
	Backends []string `json:"backends"`
}

// CatalogModel is one checkpoint and where it is.
type CatalogModel struct {
	Name     string   `json:"name"`
	Backends []string `json:"backends"`
	LoadedOn []string `json:"loaded_on"`
}

// ModelNames lists the models' names.
func (c Catalog) ModelNames() []string {
	out := make([]string, len(c.Models))
	for i, m := range c.Models {
		out[i] = m.Name
	}
	return out
}

// advertised is one backend's advertisement as workers write it
// (worker.Advertised).
type advertised struct {
	Models     []string `json:"models"`
	Loaded     string   `json:"loaded,omitempty"`
	Samplers   []string `json:"samplers"`
	Schedulers []string `json:"schedulers,omitempty"`
	LoRAs      []string `json:"loras,omitempty"`
	Upscalers  []string `json:"upscalers,omitempty"`
}

// catalogTTL is how long a submit trusts the catalog it read; an unknown
// name reads it again when the copy is older than catalogRefetch (an owner
// may just have added a model).
const (
	catalogTTL     = 10 * time.Second
	catalogRefetch = time.Second
)

// catalogCache keeps the last catalogs read.
type catalogCache struct {
	mu  sync.Mutex
	cat *catalogPair
	at  time.Time
}

// catalogPair is one read of the advertised backends, merged twice.
type catalogPair struct {
	// healthy leaves out the backends marked down: what GET /v1/models,
	// autocomplete and chat's /models list.
	healthy Catalog
	// known also has the backends marked down whose advertisement has not
	// expired: what a submit is checked against, so a name whose only
	// backend restarts queues (the job waits for a GPU backend) instead of
	// being refused.
	known Catalog
}

// Models returns the catalog across healthy backends, read at most
// catalogTTL ago (autocomplete asks on every keystroke).
func (s *Service) Models(ctx context.Context) (Catalog, error) {
	cats, err := s.cachedCatalog(ctx, catalogTTL)
	if err != nil {
		return Catalog{}, err
	}
	return cats.healthy, nil
}

// refreshCatalog reads the catalogs now and caches them.
func (s *Service) refreshCatalog(ctx context.Context) (catalogPair, error) {
	cats, err := s.readCatalog(ctx)
	if err != nil {
		return catalogPair{}, err
	}
	s.cat.mu.Lock()
	s.cat.cat, s.cat.at = &cats, time.Now()
	s.cat.mu.Unlock()
	return cats, nil
}

// cachedCatalog returns the catalogs at most maxAge old. An empty read is not
// kept: right after start-up the first advertisement counts at once.
func (s *Service) cachedCatalog(ctx context.Context, maxAge time.Duration) (catalogPair, error) {
	s.cat.mu.Lock()
	cats, at := s.cat.cat, s.cat.at
	s.cat.mu.Unlock()
	if cats != nil && len(cats.known.Backends) > 0 && time.Since(at) <= maxAge {
		return *cats, nil
	}
	return s.refreshCatalog(ctx)
}

func (s *Service) readCatalog(ctx context.Context) (catalogPair, error) {
	raw, err := s.sched.BackendAds(ctx)
	if err != nil {
		return catalogPair{}, fmt.Errorf("models: %w", err)
	}
	all := make(map[string]advertised, len(raw))
	up := make(map[string]advertised, len(raw))
	for name, r := range raw {
		var ad advertised
		if json.Unmarshal(r.Catalog, &ad) != nil {
			continue
		}
		all[name] = ad
		if !r.Down {
			up[name] = ad
		}
	}
	return catalogPair{healthy: mergeCatalog(up), known: mergeCatalog(all)}, nil
}

// mergeCatalog unions the backends' advertisements, sorted.
func mergeCatalog(ads map[string]advertised) Catalog {
	cat := Catalog{Models: []CatalogModel{}}
	models := map[string]*CatalogModel{}
	sets := [4]map[string]bool{{}, {}, {}, {}}
	for name, ad := range ads {
		cat.Backends = append(cat.Backends, name)
		for _, m := range ad.Models {
			cm := models[m]
			if cm == nil {
				cm = &CatalogModel{Name: m, Backends: []string{}, LoadedOn: []string{}}
				models[m] = cm
			}
			cm.Backends = append(cm.Backends, name)
			if ad.Loaded != "" && modelKey(ad.Loaded) == modelKey(m) {
				cm.LoadedOn = append(cm.LoadedOn, name)
			}
		}
		for i, l := range [4][]string{ad.Samplers, ad.Schedulers, ad.LoRAs, ad.Upscalers} {
			for _, v := range l {
				sets[i][v] = true
			}
		}
	}
	for _, m := range models {
		sort.Strings(m.Backends)
		sort.Strings(m.LoadedOn)
		cat.Models = append(cat.Models, *m)
	}
	slices.SortFunc(cat.Models, func(a, b CatalogModel) int { return strings.Compare(a.Name, b.Name) })
	sort.Strings(cat.Backends)
	if cat.Backends == nil {
		cat.Backends = []string{}
	}
	cat.Samplers, cat.Schedulers, cat.LoRAs, cat.Upscalers = keys(sets[0]), keys(sets[1]), keys(sets[2]), keys(sets[3])
	return cat
}

func keys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// maxChoices caps the valid names an error lists.
const maxChoices = 15

// unknown is the error for a name no backend has: it names the field and
// lists (up to maxChoices of) the valid choices. what is "model",
// "sampler", "scheduler" or "lora" (a catalog key's suffix).
func unknown(field, what, got string, choices []string) error {
	var list any = strings.Join(choices, ", ")
	if len(choices) > maxChoices {
		list = Msg{Key: "v_choices_more", Args: []any{strings.Join(choices[:maxChoices], ", "), len(choices) - maxChoices}}
	}
	return Invalid(field, "v_unknown_"+what, clipText(got, 100), list)
}

// checkCatalog checks im's model, sampler, scheduler and LoRAs against the
// catalog. A list no backend advertised (none has started yet, or the
// backend kind has no such list) checks nothing: the backend still
// validates when the job runs. Names match leniently (see modelKey and
// samplerKey), since each backend kind accepts more spellings than it
// lists; the request keeps the name as given.
func (cat Catalog) checkCatalog(im *Imagine) error {
	if im.Model != "" && len(cat.Models) > 0 {
		names := cat.ModelNames()
		if !matches(names, im.Model, modelKey) {
			return unknown("model", "model", im.Model, names)
		}
	}
	if im.Sampler != "" && len(cat.Samplers) > 0 && !cat.samplerKnown(im.Sampler) {
		return unknown("sampler", "sampler", im.Sampler, cat.Samplers)
	}
	if im.Scheduler != "" && len(cat.Schedulers) > 0 && !matches(cat.Schedulers, im.Scheduler, samplerKey) {
		return unknown("scheduler", "scheduler", im.Scheduler, cat.Schedulers)
	}
	if len(cat.LoRAs) > 0 {
		for _, l := range im.LoRAs {
			if !matches(cat.LoRAs, l.Name, modelKey) {
				return unknown("loras", "lora", l.Name, cat.LoRAs)
			}
		}
	}
	return nil
}

func matches(list []string, name string, key func(string) string) bool {
	k := key(name)
	for _, v := range list {
		if v == name || k != "" && key(v) == k {
			return true
		}
	}
	return false
}

// samplerKnown accepts a listed sampler, or a legacy A1111 name made of a
// listed sampler and a listed scheduler ("DPM++ 2M Karras").
func (cat Catalog) samplerKnown(name string) bool {
	if matches(cat.Samplers, name, samplerKey) {
		return true
	}
	words := strings.Fields(name)
	for i := len(words) - 1; i > 0; i-- {
		if matches(cat.Samplers, strings.Join(words[:i], " "), samplerKey) &&
			matches(cat.Schedulers, strings.Join(words[i:], " "), samplerKey) {
			return true
		}
	}
	return false
}

// modelKey is the spelling-insensitive key of a checkpoint or LoRA name:
// A1111 lists "sub_name" where ComfyUI lists "sub/name.safetensors", and
// A1111 also accepts a title ("name.safetensors [hash]"). It is the key
// dispatch routes jobs on, so a name accepted here finds its backend.
func modelKey(s string) string { return scheduler.ModelKey(s) }

// samplerKey is the spelling-insensitive key of a sampler or scheduler
// name: A1111 says "DPM++ 2M" and "Euler a", ComfyUI "dpmpp_2m" and
// "euler_ancestral".
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
