package httpapi

import "context"

// WaitInFlight blocks until who holds at least n in-flight requests: who is
// "a:" and a client address, or "k:" and an API key. Tests use it to know a
// slow request holds its slot before they probe the limit.
func (s *Server) WaitInFlight(ctx context.Context, who string, n int) error {
	return s.inFlight.count.wait(ctx, who, func(held int) bool { return held >= n })
}

// WaitStreams blocks until who holds exactly n event streams (who as for
// WaitInFlight). A stream's slot is released when its handler returns,
// after the client has gone: tests use it to know a closed stream's slot
// is free again.
func (s *Server) WaitStreams(ctx context.Context, who string, n int) error {
	return s.streamsLim.count.wait(ctx, who, func(held int) bool { return held == n })
}
