// Package worker runs scheduled jobs on Stable Diffusion backends: one slot
// per backend, each offering itself to the scheduler when free, blocking on
// the work stream, renewing its lease while the backend runs, publishing
// progress and storing the results.
//
// # Overview
//
// A slot offers one credit, then blocks in XREADGROUP until the dispatcher
// hands it a job (late binding: jobs leave their fair queues only for free
// slots). While the job runs, the slot renews its lease every Lease/3 and
// stops the backend when the job is canceled or the lease is lost. A backend
// that fails is taken out of rotation until its health check passes again.
// Stop stops taking jobs, lets running ones finish within the grace period
// and then interrupts them and hands them back to the queue.
package worker
