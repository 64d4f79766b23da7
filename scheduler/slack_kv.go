package scheduler

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/rueidis"
)

// Small key-value helpers for chat adapters (the Slack adapter's replay
// dedupe, upload records and shared update budget), so adapters need no raw
// Redis access. Keys live under "<prefix>:chat:" outside the scheduler slot.

func (s *Scheduler) chatKey(key string) string { return s.store.Keys.Chat(key) }

// Claim sets key to value unless it exists, expiring after ttl; it reports
// whether this call set it (false: someone claimed it first).
func (s *Scheduler) Claim(ctx context.Context, key, value string, ttl time.Duration) (bool, error) {
	c := s.store.Client
	err := c.Do(ctx, c.B().Set().Key(s.chatKey(key)).Value(value).Nx().Px(ttl).Build()).Error()
	if rueidis.IsRedisNil(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("claim: %w", err)
	}
	return true, nil
}

// Remember sets key to value for ttl.
func (s *Scheduler) Remember(ctx context.Context, key, value string, ttl time.Duration) error {
	c := s.store.Client
	if err := c.Do(ctx, c.B().Set().Key(s.chatKey(key)).Value(value).Px(ttl).Build()).Error(); err != nil {
		return fmt.Errorf("remember: %w", err)
	}
	return nil
}

// Recall returns the value of key and whether it exists.
func (s *Scheduler) Recall(ctx context.Context, key string) (string, bool, error) {
	c := s.store.Client
	v, err := c.Do(ctx, c.B().Get().Key(s.chatKey(key)).Build()).ToString()
	if rueidis.IsRedisNil(err) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("recall: %w", err)
	}
	return v, true, nil
}

// Spend takes one token of a budget of perMinute tokens a minute with bursts
// of burst (at least 1), shared by every process using the same key; it
// reports false when the budget is used up.
func (s *Scheduler) Spend(ctx context.Context, key string, perMinute float64, burst int) (bool, error) {
	if perMinute <= 0 {
		return false, nil
	}
	c := spendCall{Key: s.chatKey(key), Interval: time.Duration(float64(time.Minute) / perMinute), Burst: max(burst, 1)}
	ok, err := s.runner.call(ctx, scriptSpend, c.keys(), c.argv()).AsInt64()
	if err != nil {
		return false, fmt.Errorf("spend: %w", err)
	}
	return ok == 1, nil
}

// spendCall is lua/spend.lua's arguments.
type spendCall struct {
	Key      string
	Interval time.Duration // between tokens
	Burst    int
}

func (c spendCall) keys() []string { return []string{c.Key} }
func (c spendCall) argv() []string {
	return []string{strconv.FormatFloat(float64(c.Interval)/float64(time.Millisecond), 'f', 3, 64), strconv.Itoa(c.Burst)}
}
