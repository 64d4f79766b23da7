package httpapi

import (
	"context"
	"fmt"
)

// WaitInFlight blocks until who holds at least n in-flight requests: who is
// "a:" and a client address, or "k:" and an API key. Tests use it to know a
// slow request holds its slot before they probe the limit.
func (s *Server) WaitInFlight(ctx context.Context, who string, n int) error {
	return s.inFlight.count.wait(ctx, who, n)
}

// WaitStreams blocks until who holds exactly n event streams (who as for
// WaitInFlight). A stream's slot is released when its handler returns,
// after the client has gone: tests use it to know a closed stream's slot
// is free again.
func (s *Server) WaitStreams(ctx context.Context, who string, n int) error {
	c := s.streamsLim.count
	for {
		c.mu.Lock()
		held := c.n[who]
		if held == n {
			c.mu.Unlock()
			return nil
		}
		if c.changed == nil {
			c.changed = make(chan struct{})
		}
		ch := c.changed
		c.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("httpapi: %s holds %d streams, not %d: %w", who, held, n, ctx.Err())
		}
	}
}
