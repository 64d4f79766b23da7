// Package commands is Easel's platform-neutral command layer: the imagine
// request and its validation against the tenant's policy (errors name the
// field and the limit), and the handlers every adapter calls — submit, look
// up, cancel, list the queue, usage, and the admin commands (view and set
// policy, reset usage, block users, usage report) — with ownership checks.
package commands
