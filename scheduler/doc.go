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
// Dispatch is late-bound: workers offer free slots as credits, and a job moves
// onto the work stream only when a credit is available. Workers hold a lease on
// their entry (renewed with XCLAIM); entries idle past the lease are reclaimed
// with XAUTOCLAIM and retried through the delayed set, so retries are fair too.
// Every dispatch increments the job's attempt number, and every write from a
// worker carries it: a stale attempt can change nothing.
package scheduler
