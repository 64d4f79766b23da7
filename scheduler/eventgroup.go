package scheduler

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/rueidis"
)

// WebhooksGroup is the events stream's consumer group of the HTTP API's
// webhook deliveries.
const WebhooksGroup = "webhooks"

// GroupEvent is an event read through a consumer group: it stays pending
// for its consumer until acknowledged, and another consumer may claim it
// once it has sat unacknowledged long enough.
type GroupEvent struct {
	// EntryID acknowledges it (AckEvents).
	EntryID string
	Event   Event
}

// JoinEventGroup creates group on the events stream if it does not exist,
// starting at the stream's end (a new group does not replay the history).
func (s *Scheduler) JoinEventGroup(ctx context.Context, group string) error {
	for _, sh := range s.shards {
		err := s.client.Do(ctx, s.client.B().XgroupCreate().Key(sh.keys.Events()).Group(group).Id("$").Mkstream().Build()).Error()
		if err != nil && !isBusyGroup(err) {
			return fmt.Errorf("event group %s: %w", group, err)
		}
	}
	return nil
}

func isBusyGroup(err error) bool {
	re, ok := rueidis.IsRedisErr(err)
	return ok && re.IsBusyGroup()
}

// ReadEventGroup reads up to count events for consumer of group: with
// pending true, those it read before and has not acknowledged (no wait);
// otherwise new ones, waiting up to block.
func (s *Scheduler) ReadEventGroup(ctx context.Context, group, consumer string, pending bool, count int, block time.Duration) ([]GroupEvent, error) {
	if len(s.shards) > 1 {
		id := ">"
		if pending {
			id = "0"
		}
		es, err := s.groupReadSharded(ctx, group, consumer, id, int64(count), block)
		if err != nil {
			return nil, fmt.Errorf("read event group: %w", err)
		}
		return toGroupEvents(es), nil
	}
	b := s.client.B().Xreadgroup().Group(group, consumer).Count(int64(count))
	var cmd rueidis.Completed
	if pending {
		cmd = b.Streams().Key(s.keys.Events()).Id("0").Build()
	} else {
		cmd = b.Block(max(block.Milliseconds(), 1)).Streams().Key(s.keys.Events()).Id(">").Build()
	}
	res, err := s.client.Do(ctx, cmd).AsXRead()
	if rueidis.IsRedisNil(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read event group: %w", err)
	}
	return groupEvents(res[s.keys.Events()]), nil
}

// ClaimEvents takes over up to count events of group that have sat
// unacknowledged for at least minIdle (their consumer stopped or died),
// for consumer. Claiming an event it already holds resets its idle time.
func (s *Scheduler) ClaimEvents(ctx context.Context, group, consumer string, minIdle time.Duration, count int) ([]GroupEvent, error) {
	if len(s.shards) > 1 {
		es, err := s.claimSharded(ctx, group, consumer, minIdle, int64(count), 1)
		if err != nil {
			return nil, fmt.Errorf("claim events: %w", err)
		}
		return toGroupEvents(es), nil
	}
	res, err := s.client.Do(ctx, s.client.B().Xautoclaim().Key(s.keys.Events()).Group(group).Consumer(consumer).
		MinIdleTime(strconv.FormatInt(minIdle.Milliseconds(), 10)).Start("0-0").Count(int64(count)).Build()).ToArray()
	if err != nil {
		return nil, fmt.Errorf("claim events: %w", err)
	}
	if len(res) < 2 {
		return nil, nil
	}
	entries, err := res[1].AsXRange()
	if err != nil {
		return nil, fmt.Errorf("claim events: %w", err)
	}
	return groupEvents(entries), nil
}

// HoldEvent resets the idle time of an event consumer still works on, so
// no other consumer claims it meanwhile.
func (s *Scheduler) HoldEvent(ctx context.Context, group, consumer, entryID string) error {
	key := s.keys.Events()
	if len(s.shards) > 1 {
		sh, id, ok := s.parseShardEntry(entryID)
		if !ok {
			return &InvalidError{"entry", "must be an entry id read from this scheduler"}
		}
		key, entryID = sh.keys.Events(), id
	}
	err := s.client.Do(ctx, s.client.B().Xclaim().Key(key).Group(group).Consumer(consumer).
		MinIdleTime("0").Id(entryID).Justid().Build()).Error()
	if err != nil {
		return fmt.Errorf("hold event: %w", err)
	}
	return nil
}

// AckEvents acknowledges events of group: they are done.
func (s *Scheduler) AckEvents(ctx context.Context, group string, entryIDs ...string) error {
	if len(entryIDs) == 0 {
		return nil
	}
	if len(s.shards) > 1 {
		if err := s.ackSharded(ctx, group, entryIDs...); err != nil {
			return fmt.Errorf("ack events: %w", err)
		}
		return nil
	}
	if err := s.client.Do(ctx, s.client.B().Xack().Key(s.keys.Events()).Group(group).Id(entryIDs...).Build()).Error(); err != nil {
		return fmt.Errorf("ack events: %w", err)
	}
	return nil
}

func groupEvents(entries []rueidis.XRangeEntry) []GroupEvent {
	out := make([]GroupEvent, 0, len(entries))
	for _, e := range entries {
		// An entry trimmed away while pending comes back without fields;
		// a malformed one is kept with a zero event, for the caller to ack.
		ev, _ := DecodeEvent(e.FieldValues["e"])
		out = append(out, GroupEvent{EntryID: e.ID, Event: ev})
	}
	return out
}
