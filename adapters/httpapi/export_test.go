package httpapi

import "context"

// WaitInFlight blocks until who holds at least n in-flight requests: who is
// "a:" and a client address, or "k:" and an API key. Tests use it to know a
// slow request holds its slot before they probe the limit.
func (s *Server) WaitInFlight(ctx context.Context, who string, n int) error {
	return s.inFlight.count.wait(ctx, who, n)
}
