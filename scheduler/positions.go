package scheduler

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/rueidis"
	"go.uber.org/zap"
)

// Live queue positions. Dispatch does no per-queued-job work: a job's place
// in line is estimated when someone asks (Position) and, for the events,
// by a positions pass that each maintainer runs off the dispatch path:
//
//   - a reader blocks on the shared events stream and on the backend-health
//     stream (XREAD BLOCK), and marks the positions dirty on every queued,
//     started, retrying or canceled event (a job joined or left a queue) and
//     on every backend reported down or up; the maintainer marks them dirty
//     after promoting retries too;
//   - the pass waits PositionInterval after the first mark (so a burst of
//     dispatches is one pass), then walks the lanes with work in pages of
//     positionLanes lanes per script call, looking at the first
//     PositionsPerLane queued jobs of each lane (the least recently served
//     users' first): a job whose estimate or reason to wait changed gets one
//     position event. Jobs past the cap get theirs once they come within it.
//
// The ETA of a job at position p is ceil(p / slots) × the moving average run
// time (the last runs weigh most), slots being every worker slot busy or
// offered: the rounds of the whole fleet before its turn. None until a job
// has finished.

// PositionsPerLane is how many queued jobs of each lane the positions pass
// looks at.
const PositionsPerLane = 100

const positionLanes = 32

// downReportTTL is how long a backend's down report counts without being
// repeated: a worker repeats it with every failed health check (at most
// every 30s), so a worker that died meanwhile leaves no stale report.
const downReportTTL = 2 * time.Minute

// BackendDown records that backend (a worker's name for it) is unreachable
// since since, and wakes the positions pass, so queued jobs say why they
// wait while no backend is up. A worker repeats it while the backend stays
// down (a report counts for 2 minutes).
func (s *Scheduler) BackendDown(ctx context.Context, backend string, since time.Time) error {
	if len(s.shards) > 1 {
		// Every shard's positions pass reads its own copy.
		for _, sh := range s.shards {
			if err := sh.view.BackendDown(ctx, backend, since); err != nil {
				return err
			}
		}
		return nil
	}
	// seen is by Redis's clock, as the positions script and WaitingFor
	// compare it (the worker's clock may disagree with both).
	seen, err := s.redisNow(ctx)
	if err != nil {
		return fmt.Errorf("backend down: %w", err)
	}
	c := s.client
	v := strconv.FormatInt(since.UnixMilli(), 10) + "\t" + strconv.FormatInt(seen.UnixMilli(), 10)
	for _, r := range c.DoMulti(ctx,
		c.B().Hset().Key(s.keys.BackendsDown()).FieldValue().FieldValue(backend, v).Build(),
		c.B().Xadd().Key(s.keys.BackendHealth()).Maxlen().Almost().Threshold("100").Id("*").FieldValue().
			FieldValue("down", backend).Build()) {
		if err := r.Error(); err != nil {
			return fmt.Errorf("backend down: %w", err)
		}
	}
	return nil
}

// BackendUp clears backend's down report.
func (s *Scheduler) BackendUp(ctx context.Context, backend string) error {
	if len(s.shards) > 1 {
		for _, sh := range s.shards {
			if err := sh.view.BackendUp(ctx, backend); err != nil {
				return err
			}
		}
		return nil
	}
	c := s.client
	n, err := c.Do(ctx, c.B().Hdel().Key(s.keys.BackendsDown()).Field(backend).Build()).AsInt64()
	if err != nil {
		return fmt.Errorf("backend up: %w", err)
	}
	if n == 0 {
		return nil
	}
	err = c.Do(ctx, c.B().Xadd().Key(s.keys.BackendHealth()).Maxlen().Almost().Threshold("100").Id("*").
		FieldValue().FieldValue("up", backend).Build()).Error()
	if err != nil {
		return fmt.Errorf("backend up: %w", err)
	}
	return nil
}

// WaitingFor says why queued jobs wait, as the position events do: nil
// unless no worker slot is offered, none runs a job, and backends are
// reported down.
func (s *Scheduler) WaitingFor(ctx context.Context) (*Waiting, error) {
	if len(s.shards) > 1 {
		// Jobs running on any shard, or a slot offered: not waiting.
		_, running, idle, err := s.etaSharded(ctx)
		if err != nil {
			return nil, fmt.Errorf("waiting: %w", err)
		}
		if idle > 0 || running > 0 {
			return nil, nil
		}
	}
	c := s.client
	now, err := s.redisNow(ctx)
	if err != nil {
		return nil, fmt.Errorf("waiting: %w", err)
	}
	res := c.DoMulti(ctx,
		c.B().Zcount().Key(s.keys.Slots()).Min(strconv.FormatInt(now.UnixMilli(), 10)).Max("+inf").Build(),
		c.B().Hget().Key(s.keys.Global()).Field("running").Build(),
		c.B().Hgetall().Key(s.keys.BackendsDown()).Build())
	idle, err := res[0].AsInt64()
	if err != nil {
		return nil, fmt.Errorf("waiting: %w", err)
	}
	running, err := res[1].AsInt64()
	if err != nil && !rueidis.IsRedisNil(err) {
		return nil, fmt.Errorf("waiting: %w", err)
	}
	down, err := res[2].AsStrMap()
	if err != nil {
		return nil, fmt.Errorf("waiting: %w", err)
	}
	if idle > 0 || running > 0 {
		return nil, nil
	}
	var w Waiting
	for name, v := range down {
		sinceS, seenS, ok := strings.Cut(v, "\t")
		since, err1 := strconv.ParseInt(sinceS, 10, 64)
		seen, err2 := strconv.ParseInt(seenS, 10, 64)
		if !ok || err1 != nil || err2 != nil || now.Sub(time.UnixMilli(seen)) > downReportTTL {
			continue
		}
		w.Backends = append(w.Backends, DownBackend{Name: name, Since: time.UnixMilli(since).UTC()})
	}
	if len(w.Backends) == 0 {
		return nil, nil
	}
	slices.SortFunc(w.Backends, func(a, b DownBackend) int { return strings.Compare(a.Name, b.Name) })
	w.Message = w.text()
	return &w, nil
}

func (w *Waiting) text() string {
	parts := make([]string, len(w.Backends))
	for i, b := range w.Backends {
		parts[i] = b.Name + " unreachable since " + b.Since.UTC().Format(time.TimeOnly) + " UTC"
	}
	return "waiting for a GPU backend (" + strings.Join(parts, ", ") + ")"
}

// Positions runs one positions pass now: every queued job within the cap
// whose place in line or reason to wait changed gets a position event. It
// returns the number of events.
func (s *Scheduler) Positions(ctx context.Context) (int, error) {
	if len(s.shards) > 1 {
		total := 0
		for _, sh := range s.shards {
			n, err := sh.view.Positions(ctx)
			total += n
			if err != nil {
				return total, err
			}
		}
		return total, nil
	}
	cursor, total := "0", 0
	for {
		res, err := s.exec(ctx, positionsCall{Cursor: cursor, Lanes: positionLanes, Jobs: PositionsPerLane,
			StaleReports: downReportTTL}).ToArray()
		if err != nil {
			return total, fmt.Errorf("positions: %w", err)
		}
		if len(res) != 2 {
			return total, fmt.Errorf("positions: reply of %d elements", len(res))
		}
		n, _ := res[1].AsInt64()
		total += int(n)
		if cursor, err = res[0].ToString(); err != nil {
			return total, fmt.Errorf("positions: cursor: %w", err)
		}
		if cursor == "" {
			return total, nil
		}
	}
}

// markPositions asks for a positions pass (non-blocking; marks coalesce).
func (m *Maintainer) markPositions() {
	select {
	case m.dirty <- struct{}{}:
	default:
	}
}

// positions runs the positions pass whenever marked, PositionInterval after
// the first mark, so a burst of dispatches costs one pass.
func (m *Maintainer) positions(ctx context.Context) {
	interval := m.s.cfg.PositionInterval
	for {
		kicked := false
		select {
		case <-ctx.Done():
			return
		case <-m.dirty:
		case <-m.kick:
			kicked = true
		}
		if !kicked {
			t := time.NewTimer(interval)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			case <-m.kick:
				t.Stop()
			}
		}
		select {
		case <-m.dirty: // what marked it meanwhile is seen by this pass
		default:
		}
		if _, err := m.s.Positions(ctx); err != nil && ctx.Err() == nil {
			m.log.Warn("queue positions", zap.Error(err))
		}
		select {
		case m.posPasses <- struct{}{}:
		default:
		}
	}
}

// watchQueue blocks on the events and backend-health streams and marks the
// positions dirty when a job joined or left a queue or a backend went down
// or came back.
func (m *Maintainer) watchQueue(ctx context.Context) {
	s := m.s
	c := s.client
	events, health := s.keys.Events(), s.keys.BackendHealth()
	ids := map[string]string{}
	for _, k := range []string{events, health} {
		ids[k] = "0-0"
		last, err := c.Do(ctx, c.B().Xrevrange().Key(k).End("+").Start("-").Count(1).Build()).AsXRange()
		if err == nil && len(last) > 0 {
			ids[k] = last[0].ID
		}
	}
	m.markPositions()
	for ctx.Err() == nil {
		res, err := c.Do(ctx, c.B().Xread().Count(1000).Block(5000).Streams().Key(events, health).
			Id(ids[events], ids[health]).Build()).AsXRead()
		if rueidis.IsRedisNil(err) {
			continue
		}
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			m.log.Warn("queue positions: read events", zap.Error(err))
			m.pause(ctx, time.Second)
			continue
		}
		mark := false
		for k, entries := range res {
			for _, e := range entries {
				ids[k] = e.ID
				if k == health || queueMoved(e.FieldValues["e"]) {
					mark = true
				}
			}
		}
		if mark {
			m.markPositions()
		}
	}
}

// queueMoved reports whether a stored event is one that changes queues
// (emit writes the type first).
func queueMoved(raw string) bool {
	for _, t := range []EventType{EventQueued, EventStarted, EventRetrying, EventCanceled} {
		if strings.HasPrefix(raw, `{"type":"`+string(t)+`"`) {
			return true
		}
	}
	return false
}

func (m *Maintainer) pause(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
