package scheduler

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/rueidis"
)

// The relays' side of the events stream: a consumer group (RelayGroup) whose
// members render events to chat, and the final-delivery records that make a
// job's final message go out once.

// RelayEntry is one entry of the events stream: its stream id and the event
// as stored (DecodeEvent reads it).
type RelayEntry struct {
	ID  string
	Raw string
}

func relayEntries(es []rueidis.XRangeEntry) []RelayEntry {
	out := make([]RelayEntry, 0, len(es))
	for _, e := range es {
		out = append(out, RelayEntry{ID: e.ID, Raw: e.FieldValues["e"]})
	}
	return out
}

// RelayRead reads up to count entries for consumer in the relay group,
// after id: "0" for the entries it read before and did not acknowledge (a
// restart), ">" for new ones, blocking up to block. None is (nil, nil).
func (s *Scheduler) RelayRead(ctx context.Context, consumer, id string, count int64, block time.Duration) ([]RelayEntry, error) {
	if len(s.shards) > 1 {
		es, err := s.groupReadSharded(ctx, RelayGroup, consumer, id, count, block)
		if err != nil {
			return nil, fmt.Errorf("relay read: %w", err)
		}
		return es, nil
	}
	cmd := s.client.B().Xreadgroup().Group(RelayGroup, consumer).Count(count).Block(block.Milliseconds()).
		Streams().Key(s.keys.Events()).Id(id).Build()
	res, err := s.client.Do(ctx, cmd).AsXRead()
	if rueidis.IsRedisNil(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("relay read: %w", err)
	}
	return relayEntries(res[s.keys.Events()]), nil
}

// RelayTakeOver hands consumer the entries other relays read and left
// unacknowledged for minIdle (they died), following XAUTOCLAIM's cursor for
// up to pages pages of count.
func (s *Scheduler) RelayTakeOver(ctx context.Context, consumer string, minIdle time.Duration, count int64, pages int) ([]RelayEntry, error) {
	if len(s.shards) > 1 {
		es, err := s.claimSharded(ctx, RelayGroup, consumer, minIdle, count, pages)
		if err != nil {
			return es, fmt.Errorf("relay take over: %w", err)
		}
		return es, nil
	}
	var out []RelayEntry
	cursor := "0-0"
	for range pages {
		res, err := s.client.Do(ctx, s.client.B().Xautoclaim().Key(s.keys.Events()).Group(RelayGroup).Consumer(consumer).
			MinIdleTime(strconv.FormatInt(minIdle.Milliseconds(), 10)).Start(cursor).Count(count).Build()).ToArray()
		if err != nil {
			return out, fmt.Errorf("relay take over: %w", err)
		}
		if len(res) < 2 {
			return out, fmt.Errorf("relay take over: reply of %d items", len(res))
		}
		es, err := res[1].AsXRange()
		if err != nil {
			return out, fmt.Errorf("relay take over: %w", err)
		}
		out = append(out, relayEntries(es)...)
		if cursor, err = res[0].ToString(); err != nil || cursor == "0-0" {
			break
		}
	}
	return out, nil
}

// RelayAck acknowledges an entry of the events stream for the relay group.
func (s *Scheduler) RelayAck(ctx context.Context, id string) error {
	if len(s.shards) > 1 {
		if err := s.ackSharded(ctx, RelayGroup, id); err != nil {
			return fmt.Errorf("relay ack: %w", err)
		}
		return nil
	}
	if err := s.client.Do(ctx, s.client.B().Xack().Key(s.keys.Events()).Group(RelayGroup).Id(id).Build()).Error(); err != nil {
		return fmt.Errorf("relay ack: %w", err)
	}
	return nil
}

// ClaimDelivery claims the final delivery of a job for consumer, for ttl.
// It reports whether this call claimed it, and otherwise whether the final
// was delivered already (false: another relay holds the claim).
func (s *Scheduler) ClaimDelivery(ctx context.Context, jobID, consumer string, ttl time.Duration) (claimed, delivered bool, err error) {
	key := s.kid(jobID).Delivery(jobID)
	ok, err := s.client.Do(ctx, s.client.B().Set().Key(key).Value("claimed:"+consumer).Nx().Px(ttl).Build()).AsBool()
	if err != nil && !rueidis.IsRedisNil(err) {
		return false, false, fmt.Errorf("claim delivery: %w", err)
	}
	if ok {
		return true, false, nil
	}
	v, err := s.client.Do(ctx, s.client.B().Get().Key(key).Build()).ToString()
	if err != nil && !rueidis.IsRedisNil(err) {
		return false, false, fmt.Errorf("claim delivery: %w", err)
	}
	return false, strings.HasPrefix(v, "done:"), nil
}

// DeliveryDone records that a job's final event seq was delivered (kept
// 48 h, past any retry or sweep).
func (s *Scheduler) DeliveryDone(ctx context.Context, jobID string, seq int64) error {
	err := s.client.Do(ctx, s.client.B().Set().Key(s.kid(jobID).Delivery(jobID)).Value("done:"+strconv.FormatInt(seq, 10)).Ex(48*time.Hour).Build()).Error()
	if err != nil {
		return fmt.Errorf("delivery done: %w", err)
	}
	return nil
}

// ReleaseDelivery drops a claim after a failed delivery, so a retry (here
// or by another relay) can claim it again.
func (s *Scheduler) ReleaseDelivery(ctx context.Context, jobID string) error {
	if err := s.client.Do(ctx, s.client.B().Del().Key(s.kid(jobID).Delivery(jobID)).Build()).Error(); err != nil {
		return fmt.Errorf("release delivery: %w", err)
	}
	return nil
}
