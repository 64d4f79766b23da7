package scheduler

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/rueidis"
)

// Trimming the shared events stream by age. Every event of every job goes
// to the shared stream (about 23 entries of ~260 B per finished job), which
// EventsMaxLen caps by count only. The maintainer also trims it by age:
// entries older than EventsGrace go, except those some consumer group still
// needs. The trim point of a shard's stream is the least of
//   - now - EventsGrace by Redis's clock (TIME: entry ids are Redis's
//     clock in ms), never the maintainer's own;
//   - for every consumer group on the stream (XINFO GROUPS: the relays',
//     the webhooks', any other), its last-delivered-id (what it has not
//     read yet stays) and its oldest pending entry (XPENDING: what it read
//     and has not acknowledged stays, so a dead consumer's entries can
//     still be claimed).
//
// XTRIM MINID ~ removes only whole stream nodes below that id, so it keeps
// at most a node more than asked. The groups only move forward, so a
// group's position read before the XTRIM is still safe when it runs.
//
// The other readers need nothing older than the grace: ReadEvents (the
// HTTP API's fan-out, the admin overview, Follow) starts at the stream's
// end and reads on from its own cursor within seconds; an XREAD from an id
// older than the trim point returns the entries after it. A job's history
// is read from its record and its own stream (History), never from the
// shared stream.

// trimEvents trims every shard's shared events stream by age as above, with
// Redis's clock (redisNow) as now: entry ids are Redis's clock, and the
// maintainer's own clock, if ahead, would trim entries younger than the
// grace (behind, it would keep old ones). It returns how many entries it
// removed.
func (s *Scheduler) trimEvents(ctx context.Context) (int64, error) {
	now, err := s.redisNow(ctx)
	if err != nil {
		return 0, fmt.Errorf("trim events: %w", err)
	}
	return s.trimEventsAt(ctx, now)
}

// trimEventsAt is trimEvents with now as the clock.
func (s *Scheduler) trimEventsAt(ctx context.Context, now time.Time) (int64, error) {
	cutoff := now.Add(-s.cfg.EventsGrace).UnixMilli()
	if cutoff <= 0 {
		return 0, nil
	}
	var total int64
	for _, sh := range s.shards {
		n, err := s.trimEventStream(ctx, sh.keys.Events(), streamID{ms: uint64(cutoff)})
		total += n
		if err != nil {
			return total, fmt.Errorf("trim events: %w", err)
		}
	}
	return total, nil
}

func (s *Scheduler) trimEventStream(ctx context.Context, key string, minID streamID) (int64, error) {
	c := s.client
	groups, err := c.Do(ctx, c.B().XinfoGroups().Key(key).Build()).ToArray()
	if err != nil {
		if re, ok := rueidis.IsRedisErr(err); ok && strings.Contains(re.Error(), "no such key") {
			return 0, nil
		}
		return 0, fmt.Errorf("groups: %w", err)
	}
	var pending []rueidis.Completed
	for _, g := range groups {
		m, err := g.AsMap()
		if err != nil {
			return 0, fmt.Errorf("groups: %w", err)
		}
		nm, lm, pm := m["name"], m["last-delivered-id"], m["pending"]
		name, err := nm.ToString()
		if err != nil {
			return 0, fmt.Errorf("groups: name: %w", err)
		}
		last, err := lm.ToString()
		if err != nil {
			return 0, fmt.Errorf("group %s: last-delivered-id: %w", name, err)
		}
		id, ok := parseStreamID(last)
		if !ok {
			return 0, fmt.Errorf("group %s: last-delivered-id %q", name, last)
		}
		npending, _ := pm.AsInt64()
		if name == RelayGroup && npending == 0 {
			// The scheduler makes the relay group at start; a relay becomes
			// its consumer with its first read. With no consumer, no relay
			// has ever run (no chat platform is configured): nothing will
			// read these entries, and they must not hold the trim back. A
			// relay started later renders only jobs from chat, which did
			// not exist before it.
			cm := m["consumers"]
			if n, err := cm.AsInt64(); err == nil && n == 0 {
				continue
			}
		}
		minID = minID.min(id)
		if npending > 0 {
			pending = append(pending, c.B().Xpending().Key(key).Group(name).Build())
		}
	}
	for _, r := range c.DoMulti(ctx, pending...) {
		sum, err := r.ToArray()
		if err != nil {
			return 0, fmt.Errorf("pending: %w", err)
		}
		if len(sum) < 2 || sum[1].IsNil() {
			continue // acknowledged meanwhile
		}
		oldest, err := sum[1].ToString()
		if err != nil {
			return 0, fmt.Errorf("pending: oldest: %w", err)
		}
		id, ok := parseStreamID(oldest)
		if !ok {
			return 0, fmt.Errorf("pending: oldest %q", oldest)
		}
		minID = minID.min(id)
	}
	if minID == (streamID{}) {
		return 0, nil
	}
	n, err := c.Do(ctx, c.B().Xtrim().Key(key).Minid().Almost().Threshold(minID.String()).Build()).AsInt64()
	if err != nil {
		return 0, fmt.Errorf("xtrim: %w", err)
	}
	return n, nil
}

// streamID is a stream entry id; the zero value is 0-0.
type streamID struct{ ms, seq uint64 }

// min is the lesser of id and o.
func (id streamID) min(o streamID) streamID {
	if o.ms < id.ms || (o.ms == id.ms && o.seq < id.seq) {
		return o
	}
	return id
}

func (id streamID) String() string {
	return strconv.FormatUint(id.ms, 10) + "-" + strconv.FormatUint(id.seq, 10)
}

// A bare number is an id with sequence 0, as Redis reads it (the embedded
// Redis reports a new group's last-delivered-id as "0").
func parseStreamID(s string) (streamID, bool) {
	a, b, ok := strings.Cut(s, "-")
	if !ok {
		b = "0"
	}
	ms, err1 := strconv.ParseUint(a, 10, 64)
	seq, err2 := strconv.ParseUint(b, 10, 64)
	return streamID{ms, seq}, err1 == nil && err2 == nil
}

// TrimEvents trims every shard's shared events stream by age now, as the
// maintainer does after each reclaim pass, and returns how many entries it
// removed (`easel bench` uses it).
func (s *Scheduler) TrimEvents(ctx context.Context) (int64, error) {
	return s.trimEvents(ctx)
}
