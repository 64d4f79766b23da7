// Package scheduler is Easel's fair, crash-safe job queue on Redis: the job
// record and its state machine, admission and enqueue, fair dispatch across
// tenants and their users, leases, retries, cancellation and the events API.
//
// # Overview
//
// Every state change is one Lua script (lua/*.lua, each headed by its KEYS,
// ARGV and reply; arguments built from one struct per script in scripts.go)
// that also appends the job's event to its own stream and to the shared
// events stream, so the record and its events never disagree. The scripts
// are one Redis Functions library, named by a hash of their text, where the
// server has FUNCTION (FCALL), and EVALSHA scripts otherwise (the embedded
// Redis). Every key shares the shard's hash tag and the first key names the
// shard, so each call runs on one Redis Cluster slot. "Now" is Redis's own
// clock (TIME) unless a test injects one. Jobs wait in per-user lists; users of a tenant
// and tenants themselves are ordered in sorted sets by virtual time (weighted
// fair queueing with start tags, FIFO among equal tags), so each dispatch costs
// O(log T) in the number T of tenants with pending work.
//
// Dispatch is late-bound: an idle worker slot offers itself (an offer that
// lasts one lease and is renewed while the slot waits, so a killed worker's
// slot drops out), and a job leaves its queue only for an offered slot. The
// dispatch delivers it to that slot — its work-stream entry goes into the
// slot's consumer's pending list, the job is running, and the slot hears of
// it on its pub/sub channel or in the reply of its own script. Workers hold
// a lease on their entry (renewed with XCLAIM); entries idle past the lease
// are reclaimed with XAUTOCLAIM (following its cursor) and retried through
// the delayed set, so retries are fair too.
// Every dispatch increments the job's attempt number, and every write from a
// worker carries it: a stale attempt can change nothing.
package scheduler
