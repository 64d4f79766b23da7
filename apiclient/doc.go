// Package apiclient is the Go client of Easel's HTTP API — jobs, images,
// cancel and a resuming Server-Sent Events reader — and the `easel imagine`
// command built on it.
package apiclient
