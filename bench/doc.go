// Package bench is `easel bench`: the benchmark suite that measures the
// budgets of DESIGN.md section 9 against a real redis-server, with the real
// scheduler and workers and a no-op backend, and prints a Markdown table for
// BENCHMARKS.md.
package bench
