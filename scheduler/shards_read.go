package scheduler

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/rueidis"
)

// Readers across tenants with shards (shards.go): every shard has its own
// events and dead-letter streams, so these read all of them. Entry ids a
// caller hands back (acks) carry their shard: "<shard>/<entry id>"; a
// ReadEvents cursor is the shards' cursors joined by ",". With one shard
// nothing of this is used and ids and cursors are as before.

// DoubleDeliveries counts the jobs this scheduler's slots handed back
// because two shards dispatched to the same waiting slot at once.
func (s *Scheduler) DoubleDeliveries() int64 { return s.doubles.Load() }

// shardEntry is "<shard>/<entry id>".
func shardEntry(i int, id string) string { return strconv.Itoa(i) + "/" + id }

// parseShardEntry splits a shardEntry; ok false when it names no shard.
func (s *Scheduler) parseShardEntry(e string) (*shard, string, bool) {
	n, id, ok := strings.Cut(e, "/")
	i, err := strconv.Atoi(n)
	if !ok || err != nil || i < 0 || i >= len(s.shards) {
		return nil, "", false
	}
	return s.shards[i], id, true
}

// entryTime orders entries of different streams by their time part.
func entryTime(id string) uint64 {
	ms, _, _ := strings.Cut(id, "-")
	n, _ := strconv.ParseUint(ms, 10, 64)
	return n
}

// waitAny blocks until one of the shards' streams has an entry after
// after[i], up to block, with a plain XREAD per shard (nothing is consumed,
// so the reads that lose the race are simply canceled).
func (s *Scheduler) waitAny(ctx context.Context, stream func(*shard) string, after []string, block time.Duration) {
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	for i, sh := range s.shards {
		wg.Add(1)
		go func() {
			defer wg.Done()
			key := stream(sh)
			cmd := s.client.B().Xread().Count(1).Block(max(block.Milliseconds(), 1)).Streams().Key(key).Id(after[i]).Build().UnblockOnCancel()
			if err := s.client.Do(wctx, cmd).Error(); err == nil {
				cancel()
			}
		}()
	}
	wg.Wait()
}

// readEventsSharded is ReadEvents over every shard's events stream.
func (s *Scheduler) readEventsSharded(ctx context.Context, after string, block time.Duration) ([]Event, string, error) {
	n := len(s.shards)
	if after == "" {
		cmds := make(rueidis.Commands, n)
		for i, sh := range s.shards {
			cmds[i] = s.client.B().Xrevrange().Key(sh.keys.Events()).End("+").Start("-").Count(1).Build()
		}
		cur := make([]string, n)
		for i, r := range s.client.DoMulti(ctx, cmds...) {
			last, err := r.AsXRange()
			if err != nil {
				return nil, "", fmt.Errorf("read events: %w", err)
			}
			cur[i] = "0-0"
			if len(last) > 0 {
				cur[i] = last[0].ID
			}
		}
		return nil, strings.Join(cur, ","), nil
	}
	cur := strings.Split(after, ",")
	if len(cur) != n {
		return nil, after, &InvalidError{"after", fmt.Sprintf("a cursor of %d shards, not %d", len(cur), n)}
	}
	read := func() ([]Event, error) {
		cmds := make(rueidis.Commands, n)
		for i, sh := range s.shards {
			cmds[i] = s.client.B().Xread().Count(1000).Streams().Key(sh.keys.Events()).Id(cur[i]).Build()
		}
		type te struct {
			t  uint64
			ev Event
		}
		var all []te
		for i, r := range s.client.DoMulti(ctx, cmds...) {
			res, err := r.AsXRead()
			if rueidis.IsRedisNil(err) {
				continue
			}
			if err != nil {
				return nil, err
			}
			for _, e := range res[s.shards[i].keys.Events()] {
				cur[i] = e.ID
				if ev, err := DecodeEvent(e.FieldValues["e"]); err == nil {
					all = append(all, te{entryTime(e.ID), ev})
				}
			}
		}
		slices.SortStableFunc(all, func(a, b te) int { return cmp.Compare(a.t, b.t) })
		evs := make([]Event, len(all))
		for i := range all {
			evs[i] = all[i].ev
		}
		return evs, nil
	}
	evs, err := read()
	if err == nil && len(evs) == 0 && block > 0 {
		s.waitAny(ctx, func(sh *shard) string { return sh.keys.Events() }, cur, block)
		evs, err = read()
	}
	if err != nil {
		return nil, after, fmt.Errorf("read events: %w", err)
	}
	return evs, strings.Join(cur, ","), nil
}

// groupReadSharded reads up to count entries for consumer of group from
// every shard's events stream: id "0" its pending ones, ">" new ones,
// waiting up to block for any (a plain blocking XREAD, then a read of the
// group that does not block, so nothing is delivered to a read that lost
// the race). Entry ids name their shard.
func (s *Scheduler) groupReadSharded(ctx context.Context, group, consumer, id string, count int64, block time.Duration) ([]RelayEntry, error) {
	n := len(s.shards)
	read := func(tails bool) ([]RelayEntry, []string, error) {
		cmds := make(rueidis.Commands, 0, 2*n)
		for _, sh := range s.shards {
			if tails {
				// The tail first: an entry added after it wakes the wait.
				cmds = append(cmds, s.client.B().Xrevrange().Key(sh.keys.Events()).End("+").Start("-").Count(1).Build())
			}
			cmds = append(cmds, s.client.B().Xreadgroup().Group(group, consumer).Count(count).Streams().Key(sh.keys.Events()).Id(id).Build())
		}
		res := s.client.DoMulti(ctx, cmds...)
		var out []RelayEntry
		tail := make([]string, n)
		k := 0
		for i, sh := range s.shards {
			if tails {
				last, err := res[k].AsXRange()
				if err != nil {
					return nil, nil, err
				}
				tail[i] = "0-0"
				if len(last) > 0 {
					tail[i] = last[0].ID
				}
				k++
			}
			got, err := res[k].AsXRead()
			k++
			if rueidis.IsRedisNil(err) {
				continue
			}
			if err != nil {
				return nil, nil, err
			}
			for _, e := range relayEntries(got[sh.keys.Events()]) {
				e.ID = shardEntry(i, e.ID)
				out = append(out, e)
			}
		}
		return out, tail, nil
	}
	wait := id == ">" && block > 0
	out, tail, err := read(wait)
	if err == nil && len(out) == 0 && wait {
		s.waitAny(ctx, func(sh *shard) string { return sh.keys.Events() }, tail, block)
		out, _, err = read(false)
	}
	if err != nil {
		return nil, err
	}
	return out, nil
}

// claimSharded is XAUTOCLAIM on every shard's events stream for group,
// following each cursor for up to pages pages.
func (s *Scheduler) claimSharded(ctx context.Context, group, consumer string, minIdle time.Duration, count int64, pages int) ([]RelayEntry, error) {
	var out []RelayEntry
	for i, sh := range s.shards {
		cursor := "0-0"
		for range pages {
			res, err := s.client.Do(ctx, s.client.B().Xautoclaim().Key(sh.keys.Events()).Group(group).Consumer(consumer).
				MinIdleTime(strconv.FormatInt(minIdle.Milliseconds(), 10)).Start(cursor).Count(count).Build()).ToArray()
			if err != nil {
				return out, err
			}
			if len(res) < 2 {
				return out, fmt.Errorf("reply of %d items", len(res))
			}
			es, err := res[1].AsXRange()
			if err != nil {
				return out, err
			}
			for _, e := range relayEntries(es) {
				e.ID = shardEntry(i, e.ID)
				out = append(out, e)
			}
			if cursor, err = res[0].ToString(); err != nil || cursor == "0-0" {
				break
			}
		}
	}
	return out, nil
}

// ackSharded acknowledges entries (shardEntry ids) of group.
func (s *Scheduler) ackSharded(ctx context.Context, group string, entries ...string) error {
	by := map[*shard][]string{}
	for _, e := range entries {
		sh, id, ok := s.parseShardEntry(e)
		if !ok {
			return &InvalidError{"entry", "must be an entry id read from this scheduler"}
		}
		by[sh] = append(by[sh], id)
	}
	cmds := make(rueidis.Commands, 0, len(by))
	for sh, ids := range by {
		cmds = append(cmds, s.client.B().Xack().Key(sh.keys.Events()).Group(group).Id(ids...).Build())
	}
	for _, r := range s.client.DoMulti(ctx, cmds...) {
		if err := r.Error(); err != nil {
			return err
		}
	}
	return nil
}

func toGroupEvents(es []RelayEntry) []GroupEvent {
	out := make([]GroupEvent, 0, len(es))
	for _, e := range es {
		ev, _ := DecodeEvent(e.Raw)
		out = append(out, GroupEvent{EntryID: e.ID, Event: ev})
	}
	return out
}

// deadLettersSharded lists the newest n dead letters of every shard.
func (s *Scheduler) deadLettersSharded(ctx context.Context, n int) ([]DeadLetter, error) {
	cmds := make(rueidis.Commands, len(s.shards))
	for i, sh := range s.shards {
		cmds[i] = s.client.B().Xrevrange().Key(sh.keys.Dead()).End("+").Start("-").Count(int64(n)).Build()
	}
	var out []DeadLetter
	for _, r := range s.client.DoMulti(ctx, cmds...) {
		es, err := r.AsXRange()
		if err != nil {
			return nil, fmt.Errorf("dead letters: %w", err)
		}
		for _, e := range es {
			out = append(out, DeadLetter{Entry: e.ID, JobID: e.FieldValues["id"], Code: e.FieldValues["code"]})
		}
	}
	slices.SortStableFunc(out, func(a, b DeadLetter) int {
		if entryAfter(a.Entry, b.Entry) {
			return -1
		}
		if entryAfter(b.Entry, a.Entry) {
			return 1
		}
		return 0
	})
	if len(out) > n {
		out = out[:n]
	}
	ids := make([]string, len(out))
	for i := range out {
		ids[i] = out[i].JobID
	}
	if len(ids) == 0 {
		return out, nil
	}
	jobs, err := s.getMany(ctx, ids)
	if err != nil {
		return nil, fmt.Errorf("dead letters: %w", err)
	}
	for i := range out {
		out[i].Job = jobs[i]
	}
	return out, nil
}

// deadShard finds the shard whose dead-letter stream has entry (entry ids
// of different streams rarely collide; the first shard that has it wins).
func (s *Scheduler) deadShard(ctx context.Context, entry string) (*shard, error) {
	cmds := make(rueidis.Commands, len(s.shards))
	for i, sh := range s.shards {
		cmds[i] = s.client.B().Xrange().Key(sh.keys.Dead()).Start(entry).End(entry).Build()
	}
	for i, r := range s.client.DoMulti(ctx, cmds...) {
		es, err := r.AsXRange()
		if err != nil {
			return nil, err
		}
		if len(es) > 0 {
			return s.shards[i], nil
		}
	}
	return nil, nil
}

// etaSharded is ETA's read over every shard: running and idle slots summed
// (an idle slot is offered on every shard: counted once, as the most any
// shard sees), the average run time of the shards that have one.
func (s *Scheduler) etaSharded(ctx context.Context) (avg, running, idle int, err error) {
	// A slot's score is its offer's expiry by Redis's clock.
	at, err := s.redisNow(ctx)
	if err != nil {
		return 0, 0, 0, err
	}
	cmds := make(rueidis.Commands, 0, 2*len(s.shards))
	now := strconv.FormatInt(at.UnixMilli(), 10)
	for _, sh := range s.shards {
		cmds = append(cmds, s.client.B().Hmget().Key(sh.keys.Global()).Field("avg_ms", "running").Build(),
			s.client.B().Zcount().Key(sh.keys.Slots()).Min(now).Max("+inf").Build())
	}
	res := s.client.DoMulti(ctx, cmds...)
	var sum, with int
	for i := range s.shards {
		v, e := res[2*i].AsStrSlice()
		n, e2 := res[2*i+1].AsInt64()
		if err = errors.Join(e, e2); err != nil {
			return 0, 0, 0, err
		}
		a, _ := strconv.Atoi(v[0])
		r, _ := strconv.Atoi(v[1])
		if a > 0 {
			sum += a
			with++
		}
		running += r
		idle = max(idle, int(n))
	}
	if with > 0 {
		avg = sum / with
	}
	return avg, running, idle, nil
}

// Maintainer over shards: one loop per shard (each blocks on its shard's
// wake list), passes reported on the parent's channel.
func (m *Maintainer) shardSubs() {
	if len(m.s.shards) < 2 {
		return
	}
	for _, sh := range m.s.shards {
		c := NewMaintainer(sh.view, m.consumer, m.log)
		c.passes, c.posPasses = m.passes, m.posPasses
		m.subs = append(m.subs, c)
	}
}

func (m *Maintainer) startSubs(ctx context.Context) error {
	for _, c := range m.subs {
		if err := c.Start(ctx); err != nil {
			return err
		}
	}
	return nil
}

func (m *Maintainer) stopSubs(ctx context.Context) error {
	var errs []error
	for _, c := range m.subs {
		errs = append(errs, c.Stop(ctx))
	}
	return errors.Join(errs...)
}

func (m *Maintainer) promoteSubs(ctx context.Context) (int64, error) {
	next := int64(-1)
	for _, c := range m.subs {
		due, err := c.Promote(ctx)
		if err != nil {
			return 0, err
		}
		if due >= 0 && (next < 0 || due < next) {
			next = due
		}
	}
	return next, nil
}

func (m *Maintainer) reclaimSubs(ctx context.Context) (int, error) {
	total := 0
	for _, c := range m.subs {
		n, err := c.Reclaim(ctx)
		total += n
		if err != nil {
			return total, err
		}
	}
	return total, nil
}
