package scheduler

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/redis/rueidis"

	"github.com/easelbot/easel/storage/blob"
)

// TenantStateSize is the number of fields of a tenant's hash and of members
// of its lane's idle-user set (tests).
func (s *Scheduler) TenantStateSize(ctx context.Context, tenant string) (fields, idle int) {
	c := s.client
	f, _ := c.Do(ctx, c.B().Hlen().Key(s.kt(tenant).Tenant(tenant)).Build()).AsInt64()
	i, _ := c.Do(ctx, c.B().Zcard().Key(s.kt(tenant).TenantIdle(tenant)).Build()).AsInt64()
	return int(f), int(i)
}

// BlobCount counts the result images stored for attempt 1 of a job (tests).
func (s *Scheduler) BlobCount(ctx context.Context, id string) (int, error) {
	o, err := s.store.Blobs.Open(ctx, blob.Ref{Job: id, Attempt: 1, Name: "0"})
	if errors.Is(err, blob.ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	return 1, o.Close()
}

// KickPositions runs the maintainer's positions pass now instead of after
// the interval, and waits for it (tests).
func (m *Maintainer) KickPositions(ctx context.Context) error {
	select {
	case <-m.posPasses: // an earlier pass's
	default:
	}
	select {
	case m.kick <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-m.posPasses:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// CountDrift compares, on every shard, the global hash's counts of the
// ready, relax and slots sets' members with the sets themselves, and
// describes the first that differs ("" when none; a count not kept yet
// is no drift) (tests).
func (s *Scheduler) CountDrift(ctx context.Context) (string, error) {
	c := s.client
	for _, sh := range s.shards {
		k := sh.keys
		for _, p := range []struct{ field, set string }{{"nready", k.Ready()}, {"nrelax", k.Relax()}, {"offers", k.Slots()}} {
			res := c.DoMulti(ctx, c.B().Hget().Key(k.Global()).Field(p.field).Build(), c.B().Zcard().Key(p.set).Build())
			v, err := res[0].ToString()
			if rueidis.IsRedisNil(err) {
				continue
			}
			if err != nil {
				return "", err
			}
			n, err := res[1].AsInt64()
			if err != nil {
				return "", err
			}
			if v != strconv.FormatInt(n, 10) {
				return fmt.Sprintf("shard %d: %s is %s, the set has %d", sh.i, p.field, v, n), nil
			}
		}
	}
	return "", nil
}
