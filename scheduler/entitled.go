package scheduler

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/redis/rueidis"
)

// maxEntitledLanes bounds how many backlogged tenants Entitled reads (a
// dashboard call, not the dispatch path); beyond it the shares are of the
// first ones only.
const maxEntitledLanes = 10000

// Entitlement is the share fair dispatch entitles each backlogged tenant
// to, and each backlogged user of one tenant within it: a weight over the
// sum of the weights of the backlogged ones (tenants with queued work in
// their normal lane, parked ones included; relax lanes are served only when
// no normal lane waits and count for nothing).
type Entitlement struct {
	// Tenants maps each backlogged tenant to its share of the GPUs, 0..1.
	Tenants map[string]float64
	// Users maps each backlogged user of the tenant asked about to their
	// share of the tenant's, 0..1.
	Users map[string]float64
}

// Entitled computes the entitled shares now, for tenant's users too.
func (s *Scheduler) Entitled(ctx context.Context, tenant string) (Entitlement, error) {
	cl := s.client
	var cmds rueidis.Commands
	for _, sh := range s.shards {
		cmds = append(cmds,
			cl.B().Zrange().Key(sh.keys.Ready()).Min("0").Max(strconv.Itoa(maxEntitledLanes-1)).Build(),
			cl.B().Zrange().Key(sh.keys.Blocked()).Min("0").Max(strconv.Itoa(maxEntitledLanes-1)).Build())
	}
	home := s.shardOfTenant(tenant).keys
	cmds = append(cmds, cl.B().Zrange().Key(home.TenantUsers(tenant)).Min("0").Max(strconv.Itoa(maxEntitledLanes-1)).Build())
	replies := cl.DoMulti(ctx, cmds...)
	lanes := map[string]bool{}
	for i, r := range replies[:len(replies)-1] {
		members, err := r.AsStrSlice()
		if err != nil {
			return Entitlement{}, fmt.Errorf("entitled: %w", err)
		}
		for _, m := range members {
			if i%2 == 0 { // ready members are "<seq>|<lane>"
				_, m, _ = strings.Cut(m, "|")
			}
			if m != "" && !strings.HasSuffix(m, "~relax") {
				lanes[m] = true
			}
		}
	}
	users, err := replies[len(replies)-1].AsStrSlice()
	if err != nil {
		return Entitlement{}, fmt.Errorf("entitled: %w", err)
	}
	names := make([]string, 0, len(lanes))
	cmds = cmds[:0]
	for t := range lanes {
		names = append(names, t)
		cmds = append(cmds, cl.B().Hget().Key(s.shardOfTenant(t).keys.Tenant(t)).Field("w").Build())
	}
	for i, u := range users {
		_, u, _ = strings.Cut(u, "|")
		users[i] = u
		cmds = append(cmds, cl.B().Hget().Key(home.Tenant(tenant)).Field("uw:"+u).Build())
	}
	weights := make([]float64, len(cmds))
	for i, r := range cl.DoMulti(ctx, cmds...) {
		v, err := r.ToString()
		if err != nil && !rueidis.IsRedisNil(err) {
			return Entitlement{}, fmt.Errorf("entitled: %w", err)
		}
		// A missing or bad weight is the default, 1 (as dispatch reads it).
		if w, perr := strconv.ParseFloat(v, 64); perr == nil && w > 0 {
			weights[i] = w
		} else {
			weights[i] = 1
		}
	}
	return Entitlement{Tenants: shares(names, weights[:len(names)]), Users: shares(users, weights[len(names):])}, nil
}

// shares is each name's weight over the sum of the weights.
func shares(names []string, weights []float64) map[string]float64 {
	out := make(map[string]float64, len(names))
	var sum float64
	for _, w := range weights {
		sum += w
	}
	for i, n := range names {
		out[n] = weights[i] / sum
	}
	return out
}
