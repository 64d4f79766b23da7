// Package adapters holds what every chat adapter shares: the relay, which
// reads the scheduler's events stream with a consumer group and hands each
// job's events to the renderer of the platform its job came from —
// coalescing progress per message (latest state wins, at most one render in
// flight, a minimum interval between renders) and delivering the final state
// exactly once, guarded by a delivery record in Redis.
package adapters
