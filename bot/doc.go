// Package bot assembles Easel: configuration loading (YAML file, EASEL_*
// environment overrides, validation naming the field), and the fx
// applications for each role — serve (HTTP API, scheduler maintenance,
// workers for configured backends, embedded Redis and fake backend for the
// zero-setup demo) and worker (workers only).
package bot
