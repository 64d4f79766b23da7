package commands

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"

	"github.com/redis/rueidis"
)

// Catalogue is what the running backends offer.
type Catalogue struct {
	Models   []string `json:"models"`
	Samplers []string `json:"samplers"`
}

// Models lists the models and samplers the workers' backends advertise.
func (s *Service) Models(ctx context.Context) (Catalogue, error) {
	store := s.sched.Store()
	c := store.Client
	models, samplers := map[string]bool{}, map[string]bool{}
	var cursor uint64
	for {
		e, err := c.Do(ctx, c.B().Scan().Cursor(cursor).Match(store.Keys.BackendPrefix()+"*").Count(100).Build()).AsScanEntry()
		if err != nil {
			return Catalogue{}, fmt.Errorf("models: %w", err)
		}
		if len(e.Elements) > 0 {
			vals, err := c.Do(ctx, c.B().Mget().Key(e.Elements...).Build()).AsStrSlice()
			if err != nil && !rueidis.IsRedisNil(err) {
				return Catalogue{}, fmt.Errorf("models: %w", err)
			}
			for _, v := range vals {
				var ad Catalogue
				if json.Unmarshal([]byte(v), &ad) == nil {
					for _, m := range ad.Models {
						models[m] = true
					}
					for _, x := range ad.Samplers {
						samplers[x] = true
					}
				}
			}
		}
		if cursor = e.Cursor; cursor == 0 {
			break
		}
	}
	return Catalogue{Models: keys(models), Samplers: keys(samplers)}, nil
}

func keys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
