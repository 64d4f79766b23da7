package scheduler

import (
	"context"
	"fmt"

	"github.com/redis/rueidis"
)

// Small persistent records for the command layer (server and channel
// defaults, per-server chat options such as spoilers and NSFW channels), so
// it needs no raw Redis access. Keys live under "<prefix>:rec:" outside the
// scheduler slot and never expire.

func (s *Scheduler) recordKey(key string) string { return s.store.Keys.Record(key) }

// LoadRecord returns the record under key and whether it exists.
func (s *Scheduler) LoadRecord(ctx context.Context, key string) (string, bool, error) {
	c := s.store.Client
	v, err := c.Do(ctx, c.B().Get().Key(s.recordKey(key)).Build()).ToString()
	if rueidis.IsRedisNil(err) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("load record: %w", err)
	}
	return v, true, nil
}

// SaveRecord stores value under key without expiry; "" deletes the record.
func (s *Scheduler) SaveRecord(ctx context.Context, key, value string) error {
	c := s.store.Client
	cmd := c.B().Set().Key(s.recordKey(key)).Value(value).Build()
	if value == "" {
		cmd = c.B().Del().Key(s.recordKey(key)).Build()
	}
	if err := c.Do(ctx, cmd).Error(); err != nil {
		return fmt.Errorf("save record: %w", err)
	}
	return nil
}
