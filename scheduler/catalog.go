package scheduler

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/rueidis"
)

// Worker-published and per-user records that are not jobs, kept behind the
// scheduler so no other package talks to Redis.

// AdvertiseBackend records a backend's catalog (JSON, as its worker
// publishes it) for ttl; it disappears if not advertised again by then.
func (s *Scheduler) AdvertiseBackend(ctx context.Context, name string, catalog []byte, ttl time.Duration) error {
	return s.advertise(ctx, name, catalog, ttl, false)
}

// AdvertiseBackendDown records a backend's catalog for ttl, marked down:
// its worker's health checks fail. BackendAds reports it with Down set, so
// listings can leave it out while submits still accept its names (a job
// waits for it rather than being refused while it restarts).
func (s *Scheduler) AdvertiseBackendDown(ctx context.Context, name string, catalog []byte, ttl time.Duration) error {
	return s.advertise(ctx, name, catalog, ttl, true)
}

// downMark starts a down backend's catalog after its expiry (the JSON of
// an up one starts with '{').
const downMark = "down:"

func (s *Scheduler) advertise(ctx context.Context, name string, catalog []byte, ttl time.Duration, down bool) error {
	v := strconv.FormatInt(time.Now().Add(ttl).UnixMilli(), 10) + ":"
	if down {
		v += downMark
	}
	v += string(catalog)
	if err := s.client.Do(ctx, s.client.B().Hset().Key(s.keys.Backends()).FieldValue().FieldValue(name, v).Build()).Error(); err != nil {
		return fmt.Errorf("advertise backend: %w", err)
	}
	return nil
}

// BackendAd is one backend's live catalog as its worker published it.
type BackendAd struct {
	// Catalog is the worker's JSON (worker.Advertised).
	Catalog []byte
	// Down is set while the worker's health checks find the backend
	// unreachable (AdvertiseBackendDown).
	Down bool
}

// BackendAds returns the live catalogs by backend name, each saying
// whether the backend is down; expired ones are dropped.
func (s *Scheduler) BackendAds(ctx context.Context) (map[string]BackendAd, error) {
	m, err := s.client.Do(ctx, s.client.B().Hgetall().Key(s.keys.Backends()).Build()).AsStrMap()
	if err != nil {
		return nil, fmt.Errorf("backends: %w", err)
	}
	now := time.Now().UnixMilli()
	out := make(map[string]BackendAd, len(m))
	var expired []string
	for name, v := range m {
		exp, raw, ok := strings.Cut(v, ":")
		ms, err := strconv.ParseInt(exp, 10, 64)
		if !ok || err != nil || ms < now {
			expired = append(expired, name)
			continue
		}
		rest, down := strings.CutPrefix(raw, downMark)
		out[name] = BackendAd{Catalog: []byte(rest), Down: down}
	}
	if len(expired) > 0 {
		_ = s.client.Do(ctx, s.client.B().Hdel().Key(s.keys.Backends()).Field(expired...).Build()).Error()
	}
	return out, nil
}

// UserSettings returns a user's saved defaults in a tenant (JSON), or nil
// when none are saved.
func (s *Scheduler) UserSettings(ctx context.Context, tenant, user string) ([]byte, error) {
	raw, err := s.client.Do(ctx, s.client.B().Get().Key(s.keys.Settings(tenant, user)).Build()).AsBytes()
	if rueidis.IsRedisNil(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("settings: %w", err)
	}
	return raw, nil
}

// SetUserSettings saves a user's defaults in a tenant (JSON).
func (s *Scheduler) SetUserSettings(ctx context.Context, tenant, user string, settings []byte) error {
	if err := s.client.Do(ctx, s.client.B().Set().Key(s.keys.Settings(tenant, user)).Value(string(settings)).Build()).Error(); err != nil {
		return fmt.Errorf("settings: %w", err)
	}
	return nil
}
