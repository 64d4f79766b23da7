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
//
// # Model-aware routing
//
// A job may name a model (SubmitRequest.Model); slots advertise what their
// backend has (Slot.Advertise: the models and the loaded one, kept for a TTL
// in one hash passed to every script as its last KEY). The rule:
//   - a job that names a model is delivered only to a free slot whose backend
//     has it (names compared by ModelKey), one that has it loaded first, then
//     the caller's own, then the one idle longest; a slot that never
//     advertised, or whose advertisement ran out, takes only jobs without a
//     model;
//   - a job without a model goes to any free slot (the caller's own, else the
//     one idle longest): A1111 runs it on the loaded checkpoint, so no slot is
//     warmer than another (ComfyUI runs its configured default);
//   - dispatch looks at the head job (the least recently served user's first)
//     of up to 32 lanes in virtual-time order and serves the first that has a
//     slot; a skipped lane stays in the ready set with its virtual time, so it
//     is first when a matching slot frees up. Relax lanes are looked at only
//     when every normal lane was. Each dispatch is O(log T + 32) commands;
//     while no pending job names a model (a counter), it pops the fairest
//     lane as before without looking at its head;
//   - a job that succeeds makes its model the slot's loaded one; a job whose
//     model no live slot has waits, and gets one queued event with the reason.
//
// What fairness costs: virtual time orders tenants for every slot, but a
// tenant can only be served by slots with its model, so fairness holds
// among tenants that compete for the same slots. A tenant waiting for a
// scarce model falls behind its weighted share while others use the rest,
// keeps its low virtual time, and then goes first on its model's slots.
// Queues stay FIFO per user, so a user's job for a busy model holds back
// that user's later jobs (and the lane's, while it is the lane's head); and
// when more than 32 lanes at the front all wait, a free slot idles until
// one of them can run.
// # Shards
//
// With Config.Shards above 1, tenants are spread over that many hash tags
// by a stable hash, each a complete scheduler of its own; job ids name
// their shard; a free slot peeks every shard and takes from the one whose
// head has the least virtual time against the system's clock, and a slot
// offered on several shards hands back a second job delivered at the same
// moment. shards.go explains the choices.
//
// Every dispatch increments the job's attempt number, and every write from a
// worker carries it: a stale attempt can change nothing.
package scheduler
