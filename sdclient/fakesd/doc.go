// Package fakesd is an AUTOMATIC1111-compatible Stable Diffusion server that
// needs no GPU: it renders deterministic images from the seed and prompt,
// takes a configurable time per sampling step, reports progress with the
// real formula, serves previews, honours interrupt, and answers errors in
// the real shapes. Tests, benchmarks and the zero-setup demo run against it,
// over real HTTP, through the real a1111 client.
package fakesd
