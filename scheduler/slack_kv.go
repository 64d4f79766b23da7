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

// spendScript is a generic cell rate algorithm on Redis's clock, so every
// process sharing the key shares one budget. KEYS[1] holds the theoretical
// arrival time in ms; ARGV[1] is the emission interval in ms, ARGV[2] the
// burst. Returns 1 when a token was taken.
var spendScript = rueidis.NewLuaScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local new = tat + interval
if new - now > burst * interval then return 0 end
redis.call('SET', KEYS[1], new, 'PX', math.ceil(new - now) + 1000)
return 1`)

// Spend takes one token of a budget of perMinute tokens a minute with bursts
// of burst (at least 1), shared by every process using the same key; it
// reports false when the budget is used up.
func (s *Scheduler) Spend(ctx context.Context, key string, perMinute float64, burst int) (bool, error) {
	if perMinute <= 0 {
		return false, nil
	}
	interval := 60000 / perMinute
	ok, err := spendScript.Exec(ctx, s.store.Client, []string{s.chatKey(key)},
		[]string{strconv.FormatFloat(interval, 'f', 3, 64), strconv.Itoa(max(burst, 1))}).AsInt64()
	if err != nil {
		return false, fmt.Errorf("spend: %w", err)
	}
	return ok == 1, nil
}
