package scheduler

import (
	"context"
	"time"
)

// TrimEventsAt runs the maintainer's trim of the shared events stream
// (eventtrim.go) with now as the clock.
func (s *Scheduler) TrimEventsAt(ctx context.Context, now time.Time) (int64, error) {
	return s.trimEventsAt(ctx, now)
}

// EventKeys are the shared events streams' keys, one a shard.
func (s *Scheduler) EventKeys() []string {
	keys := make([]string, len(s.shards))
	for i, sh := range s.shards {
		keys[i] = sh.keys.Events()
	}
	return keys
}

// Passes is signalled after each maintenance pass.
func (m *Maintainer) Passes() <-chan struct{} { return m.passes }
