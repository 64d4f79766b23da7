package scheduler

import (
	"context"
	"fmt"
	"strconv"

	"go.uber.org/zap"
)

// refusalsKey is the hash of tenant's refused submits by reason (every
// instance counts into it).
func (s *Scheduler) refusalsKey(tenant string) string {
	return s.shardOfTenant(tenant).keys.TenantRefusals(tenant)
}

// refusalChannel is the Pub/Sub channel a counted refusal is announced on
// (the message is the tenant).
func (s *Scheduler) refusalChannel() string { return s.keys.RefusalChannel() }

// countRefusal counts a refused submit: in this instance's
// easel_refusals_total, and in Redis for the dashboard (shared by every
// instance), announced to RefusalNotices. Redis counting is best effort:
// the submit is refused whatever happens to it.
func (s *Scheduler) countRefusal(ctx context.Context, tenant, reason string) {
	s.refusals.WithLabelValues(reason).Inc()
	cl := s.client
	for _, r := range cl.DoMulti(ctx,
		cl.B().Hincrby().Key(s.refusalsKey(tenant)).Field(reason).Increment(1).Build(),
		cl.B().Publish().Channel(s.refusalChannel()).Message(tenant).Build()) {
		if err := r.Error(); err != nil {
			s.log.Debug("counting a refusal", zap.String("tenant", tenant), zap.Error(err))
			return
		}
	}
}

// Refusals counts tenant's refused submits by reason (one of the Refused*
// constants), over every instance, since the tenant's first.
func (s *Scheduler) Refusals(ctx context.Context, tenant string) (map[string]int64, error) {
	m, err := s.client.Do(ctx, s.client.B().Hgetall().Key(s.refusalsKey(tenant)).Build()).AsStrMap()
	if err != nil {
		return nil, fmt.Errorf("refusals: %w", err)
	}
	out := make(map[string]int64, len(m))
	for reason, v := range m {
		if n, err := strconv.ParseInt(v, 10, 64); err == nil {
			out[reason] = n
		}
	}
	return out, nil
}

// RefusalNotices calls fn with the tenant of each refusal counted by any
// instance from when it is subscribed (ready is called then) until ctx ends
// or the connection fails. fn runs on the subscription's goroutine: it
// must not block.
func (s *Scheduler) RefusalNotices(ctx context.Context, ready func(), fn func(tenant string)) error {
	return s.notices(ctx, s.refusalChannel(), "refusal notices", ready, fn)
}
