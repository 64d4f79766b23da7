package storage

import "strconv"

// Keys builds every Redis key Easel uses. Scheduler keys share the hash tag
// Tag, so each Lua script touches a single Cluster slot; blobs live outside it.
type Keys struct {
	// Prefix starts every key; default "easel".
	Prefix string
	// Tag is the scheduler hash tag without braces; default "s". Sharding
	// tenants over several tags ("s0".."sN") only changes this value.
	Tag string
}

// DefaultKeys is the key builder for prefix "easel" and hash tag "s".
func DefaultKeys() Keys { return Keys{Prefix: "easel", Tag: "s"} }

func (k Keys) s() string { return k.Prefix + ":{" + k.Tag + "}:" }

// Job is the job record hash.
func (k Keys) Job(id string) string { return k.s() + "job:" + id }

// JobPrefix is the prefix of Job keys; scripts append the id.
func (k Keys) JobPrefix() string { return k.s() + "job:" }

// JobRequest is a job's request and origin (a string of its own, so the
// record stays in Redis's compact hash encoding).
func (k Keys) JobRequest(id string) string { return k.s() + "job:" + id + ":req" }

// ShardPrefix is the prefix of every key of the scheduler shard, hash tag
// included ("easel:{s}:").
func (k Keys) ShardPrefix() string { return k.s() }

// JobEvents is one job's event stream (kept in the scheduler slot so the
// state change and its event are written by one script).
func (k Keys) JobEvents(id string) string { return k.s() + "job:" + id + ":ev" }

// Tenant is the tenant's bookkeeping hash (virtual time, counters).
func (k Keys) Tenant(tenant string) string { return k.s() + "t:" + tenant }

// TenantPrefix is the prefix of Tenant keys; scripts append the tenant.
func (k Keys) TenantPrefix() string { return k.s() + "t:" }

// UserQueue is a user's list of pending job ids.
func (k Keys) UserQueue(tenant, user string) string {
	return k.s() + "t:" + tenant + ":u:" + user + ":q"
}

// TenantUsers is the zset of users of a tenant with pending work.
func (k Keys) TenantUsers(tenant string) string { return k.s() + "t:" + tenant + ":users" }

// TenantActive is a sorted set of a tenant's queued and running jobs, all
// scored 0 so they sort by id (ids start with their creation time: by age).
func (k Keys) TenantActive(tenant string) string { return k.s() + "t:" + tenant + ":jobs" }

// TenantIdle is the sorted set of a lane's users without work waiting,
// kept briefly so a returning user keeps their place (lua/lib.lua).
func (k Keys) TenantIdle(tenant string) string { return k.s() + "t:" + tenant + ":idle" }

// TenantHistory is the sorted set of a tenant's finished jobs by finish
// time (ms), or of one user's when user is set (scheduler/history.go).
func (k Keys) TenantHistory(tenant, user string) string {
	if user == "" {
		return k.s() + "t:" + tenant + ":hist"
	}
	return k.s() + "t:" + tenant + ":hist:u:" + user
}

// TenantRefusals is the hash of a tenant's refused submits by reason and
// minute (scheduler/refusals.go).
func (k Keys) TenantRefusals(tenant string) string { return k.s() + "t:" + tenant + ":refusals" }

// RefusalChannel is the pub/sub channel a counted refusal is announced on.
func (k Keys) RefusalChannel() string { return k.s() + "refusals" }

// Relax is the zset of relax lanes (over-quota work), by virtual time.
func (k Keys) Relax() string { return k.s() + "relax" }

// Ready is the zset of tenants with dispatchable work, by virtual time.
func (k Keys) Ready() string { return k.s() + "ready" }

// Blocked is the zset of tenants parked by a dispatch-time limit.
func (k Keys) Blocked() string { return k.s() + "blocked" }

// Work is the stream of dispatched jobs read by the workers group.
func (k Keys) Work() string { return k.s() + "work" }

// Delayed is the zset of jobs waiting for a retry, by due time in ms.
func (k Keys) Delayed() string { return k.s() + "delayed" }

// Dead is the stream of jobs that exhausted their attempts.
func (k Keys) Dead() string { return k.s() + "dead" }

// Events is the stream of all job events, read by the relays.
func (k Keys) Events() string { return k.s() + "events" }

// Global is the scheduler's own hash: virtual times, sequence counters, counts.
func (k Keys) Global() string { return k.s() + "global" }

// Slots is the zset of idle worker slots ("<consumer>\t<backend>"), scored
// by the time (unix ms) their offer expires.
func (k Keys) Slots() string { return k.s() + "slots" }

// SlotCaps is the hash of worker slots' capabilities for routing: field
// "<consumer>\t<backend>", value "<expires ms>\t<loaded model key>\n" then
// each model key followed by "\n" (see scheduler/lua/lib.lua).
func (k Keys) SlotCaps() string { return k.s() + "slotcaps" }

// SlotChannel is the pub/sub channel on which a worker slot hears of the
// jobs dispatched to it (a channel, not a key: any node of a cluster).
func (k Keys) SlotChannel(consumer string) string { return k.s() + "c:" + consumer }

// BackendsDown is the hash of backends workers found unreachable: field the
// backend's name, value "<since ms>\t<last reported ms>".
func (k Keys) BackendsDown() string { return k.s() + "backends:down" }

// BackendHealth is the short stream of backends reported down or up; the
// positions pass blocks on it (scheduler/positions.go).
func (k Keys) BackendHealth() string { return k.s() + "backends:health" }

// Wake is the list the maintenance loop blocks on.
func (k Keys) Wake() string { return k.s() + "wake" }

// Idempotency maps a tenant's Idempotency-Key to the job it created.
func (k Keys) Idempotency(tenant, key string) string { return k.s() + "idem:" + tenant + ":" + key }

// CancelChannel is the pub/sub channel that tells workers to stop a running job.
func (k Keys) CancelChannel() string { return k.s() + "cancel" }

// Delivery records that a job's final result was delivered to its origin.
func (k Keys) Delivery(id string) string { return k.s() + "delivered:" + id }

// Blob is result or preview image n of one attempt of a job.
func (k Keys) Blob(job string, attempt int, name string) string {
	return k.Prefix + ":blob:" + job + ":" + strconv.Itoa(attempt) + ":" + name
}

// Policy is a tenant's admin policy layer, or a user's layer when user is set.
func (k Keys) Policy(tenant, user string) string {
	if user == "" {
		return k.s() + "t:" + tenant + ":policy"
	}
	return k.s() + "t:" + tenant + ":policy:u:" + user
}

// Quota counts images admitted today by a tenant and by each of its users:
// a hash {d: UTC day (days since the epoch), n: tenant images, u:<user>:
// user images}, started again on a new day.
func (k Keys) Quota(tenant string) string { return k.s() + "q:" + tenant }

// RateLimit holds the GCRA state of a tenant, or of one of its users.
func (k Keys) RateLimit(tenant, user string) string {
	key := k.s() + "rl:" + tenant
	if user != "" {
		key += ":u:" + user
	}
	return key
}

// ServedMarks holds, for each tenant served in one minute (minutes since
// the epoch), its running total of weight-normalised GPU cost served (the
// tenant hash's sv field) before its first dispatch in that minute: the
// cost served since is the total now less the mark.
func (k Keys) ServedMarks(minute int64) string {
	return k.s() + "smark:" + strconv.FormatInt(minute, 10)
}

// Settings holds a user's saved defaults in a tenant (small JSON record).
func (k Keys) Settings(tenant, user string) string {
	return k.Prefix + ":settings:" + tenant + ":" + user
}

// Chat is a chat adapter's small key-value entry name (a replay marker,
// a message id, an upload record, a shared update budget), outside the
// scheduler slot; the adapter names the entry, e.g. "discord:msg:<job>".
func (k Keys) Chat(name string) string { return k.Prefix + ":chat:" + name }

// Record is a small persistent record of the command layer (server and
// channel defaults, chat options), outside the scheduler slot, no expiry.
func (k Keys) Record(name string) string { return k.Prefix + ":rec:" + name }

// Backends is the hash of backends' advertised catalogs: field = backend
// name, a tab and the advertising worker's name (each worker advertises its
// own), value = "<expiry unix ms>:<JSON>", or "<expiry unix ms>:down:<JSON>"
// while that worker finds it unreachable (one key, so a Cluster needs no
// scan to list them).
func (k Keys) Backends() string { return k.Prefix + ":backends" }
