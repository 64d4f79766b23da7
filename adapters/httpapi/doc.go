// Package httpapi is Easel's HTTP adapter: the JSON API of DESIGN.md §7
// (jobs, Server-Sent Events, cancel, images, queue, usage, admin policy),
// health and readiness, signed webhooks, and the playground page.
//
// # Overview
//
// Each API key maps to a tenant ("api:<name>"); admin keys also unlock
// /v1/admin. With no keys configured the API answers only to loopback
// clients, as tenant api:local with admin rights (the zero-setup demo);
// requests carrying any proxy header (Forwarded, X-Forwarded-*, X-Real-Ip,
// X-Client-IP, True-Client-IP, CF-Connecting-IP, Via), even empty, are
// refused then, since a local reverse proxy would make every client look
// local. A key acts for every user of its tenant: the body's "user"
// labels whom a job is for (fairness, quotas), and the key holder may read,
// list and cancel all its tenant's jobs.
// Request bodies are decoded strictly: unknown fields, bad JSON, invalid
// UTF-8, trailing data and oversize bodies are refused with a 400/413 that
// names the field and the limit, and nothing is enqueued.
//
// # Event fan-out
//
// Event streams do not read Redis each: one feed
// per Server (fanout.go) holds the one blocking read of the shared events
// stream and hands each event, encoded once, to its job's subscribers
// through bounded buffers. A subscriber first reads its job's history
// (scheduler.History), then takes live events; one that falls behind
// its buffer, or sees a gap in the sequence, re-reads the history, so it
// never misses an event. An idle stream costs under 32 KB (BENCHMARKS.md).
//
// # Webhooks
//
// Webhook deliveries are read through the events stream's consumer group
// "webhooks" (webhooks.go), like the chat relay's: a terminal event stays
// pending until its delivery succeeds or is given up, so a stopped or
// killed instance's deliveries are claimed by another one.
//
// # Limits
//
// The http.Server bounds headers, whole requests, writes and idle
// connections; event streams clear their read deadline and bound each
// event's write instead. Requests in progress and open streams are
// counted per API key and per client address (limits.go), 429 with
// Retry-After beyond. Every ordinary request's Redis calls share a
// deadline (Config.RedisTimeout); a deadline or connection error answers
// 503 unavailable, never 500.
package httpapi
