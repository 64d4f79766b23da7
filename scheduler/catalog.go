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

// AdvertiseBackend records backend name's catalog (JSON, as worker
// publishes it) for ttl: it disappears if not advertised again by then, or
// when the worker withdraws it (WithdrawBackends). Several workers may
// advertise one name (scaled workers sharing backend names); each has its
// own advertisement.
func (s *Scheduler) AdvertiseBackend(ctx context.Context, worker, name string, catalog []byte, ttl time.Duration) error {
	return s.advertise(ctx, worker, name, catalog, ttl, false)
}

// AdvertiseBackendDown records a backend's catalog for ttl, marked down:
// its worker's health checks fail. BackendAds reports it with Down set
// (unless another worker advertises the name up), so listings can leave it
// out while submits still accept its names (a job waits for it rather than
// being refused while it restarts).
func (s *Scheduler) AdvertiseBackendDown(ctx context.Context, worker, name string, catalog []byte, ttl time.Duration) error {
	return s.advertise(ctx, worker, name, catalog, ttl, true)
}

// WithdrawBackends removes worker's advertisements of the backends named (a
// worker stopping gracefully): a name stays listed while another worker
// still advertises it.
func (s *Scheduler) WithdrawBackends(ctx context.Context, worker string, names ...string) error {
	if len(names) == 0 {
		return nil
	}
	fields := make([]string, len(names))
	for i, name := range names {
		fields[i] = adField(worker, name)
	}
	if err := s.client.Do(ctx, s.client.B().Hdel().Key(s.keys.Backends()).Field(fields...).Build()).Error(); err != nil {
		return fmt.Errorf("withdraw backends: %w", err)
	}
	return nil
}

// downMark starts a down backend's catalog after its expiry (the JSON of
// an up one starts with '{').
const downMark = "down:"

// adField is the Backends hash field of worker's advertisement of backend
// name (storage.Keys.Backends). Neither has a tab (a slot's member is
// "consumer\tbackend" too).
func adField(worker, name string) string { return name + "\t" + worker }

// The expiry is by Redis's clock (redisNow), as readAds compares it: the
// advertising worker and the reading API may run on machines whose clocks
// disagree, and by their own clocks a fresh ad could read as expired (or
// an expired one as live) for as long as they disagree.
func (s *Scheduler) advertise(ctx context.Context, worker, name string, catalog []byte, ttl time.Duration, down bool) error {
	now, err := s.redisNow(ctx)
	if err != nil {
		return fmt.Errorf("advertise backend: %w", err)
	}
	v := strconv.FormatInt(now.Add(ttl).UnixMilli(), 10) + ":"
	if down {
		v += downMark
	}
	v += string(catalog)
	if err := s.client.Do(ctx, s.client.B().Hset().Key(s.keys.Backends()).FieldValue().FieldValue(adField(worker, name), v).Build()).Error(); err != nil {
		return fmt.Errorf("advertise backend: %w", err)
	}
	return nil
}

// BackendAd is one backend's live catalog as its worker published it.
type BackendAd struct {
	// Catalog is the worker's JSON (worker.Advertised).
	Catalog []byte
	// Down is set while the health checks of every worker advertising the
	// backend find it unreachable (AdvertiseBackendDown).
	Down bool
}

// BackendAds returns the live catalogs by backend name, each saying
// whether the backend is down; expired ones are dropped. Of a name several
// workers advertise, the catalog is the freshest of those up (of all when
// none is up).
func (s *Scheduler) BackendAds(ctx context.Context) (map[string]BackendAd, error) {
	out, expired, err := s.readAds(ctx)
	if err != nil {
		return nil, err
	}
	if len(expired) > 0 {
		// Best effort: the listing is right without it (expired ads are
		// skipped on every read), and the next read prunes again.
		_, _ = s.pruneAds(ctx, expired)
	}
	return out, nil
}

// readAds reads every advertisement: the live catalogs by backend name (as
// BackendAds returns them), and the expired ads' values by field, for
// pruneAds. Expiries are compared with Redis's clock (TIME, read in the
// same round trip), as advertise wrote them.
func (s *Scheduler) readAds(ctx context.Context) (map[string]BackendAd, map[string]string, error) {
	cmds := rueidis.Commands{s.client.B().Hgetall().Key(s.keys.Backends()).Build()}
	if !s.clock {
		cmds = append(cmds, s.timeCmd())
	}
	res := s.client.DoMulti(ctx, cmds...)
	m, err := res[0].AsStrMap()
	if err != nil {
		return nil, nil, fmt.Errorf("backends: %w", err)
	}
	at := s.cfg.Now()
	if !s.clock {
		if at, err = redisTime(res[1]); err != nil {
			return nil, nil, fmt.Errorf("backends: %w", err)
		}
	}
	now := at.UnixMilli()
	out := make(map[string]BackendAd, len(m))
	until := make(map[string]int64, len(m))
	expired := map[string]string{}
	for field, v := range m {
		exp, raw, ok := strings.Cut(v, ":")
		ms, err := strconv.ParseInt(exp, 10, 64)
		if !ok || err != nil || ms < now {
			expired[field] = v
			continue
		}
		name, _, _ := strings.Cut(field, "\t")
		rest, down := strings.CutPrefix(raw, downMark)
		prev, seen := out[name]
		// Up beats down; then the one advertised last (expiring last).
		if seen && (down && !prev.Down || down == prev.Down && ms <= until[name]) {
			continue
		}
		out[name], until[name] = BackendAd{Catalog: []byte(rest), Down: down}, ms
	}
	return out, expired, nil
}

// pruneAds deletes the expired ads readAds found, each only if its field
// still holds the value read (lua/pruneads.lua): a worker may have
// advertised again in between, and a plain HDEL would delete its fresh ad,
// hiding the backend until its next refresh. It returns how many it
// deleted.
func (s *Scheduler) pruneAds(ctx context.Context, expired map[string]string) (int, error) {
	c := pruneAdsCall{Key: s.keys.Backends(), Expired: expired}
	n, err := s.runner.call(ctx, scriptPruneAds, c.keys(), c.argv()).AsInt64()
	if err != nil {
		return 0, fmt.Errorf("prune backends: %w", err)
	}
	return int(n), nil
}

// pruneAdsCall is lua/pruneads.lua's arguments.
type pruneAdsCall struct {
	// Key is the backends hash (storage.Keys.Backends).
	Key string
	// Expired is each expired ad's value as read, by field.
	Expired map[string]string
}

func (c pruneAdsCall) keys() []string { return []string{c.Key} }
func (c pruneAdsCall) argv() []string {
	argv := make([]string, 0, 2*len(c.Expired))
	for field, v := range c.Expired {
		argv = append(argv, field, v)
	}
	return argv
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
