package bench

import (
	"bytes"
	"context"
	"fmt"
	"net/url"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

// BuildAsynq builds the asynq anchor (bench/asynqcmp, a module of its own so
// asynq is never a dependency of Easel) in dir into outDir and returns the
// binary's path. Building once, rather than `go run` per round, keeps
// compiling out of every round and out of the machine while rounds run.
func BuildAsynq(ctx context.Context, dir, outDir string) (string, error) {
	bin := filepath.Join(outDir, "asynqcmp")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, ".")
	cmd.Dir = dir
	var errb bytes.Buffer
	cmd.Stderr = &errb
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("asynq anchor: go build in %s: %w: %s", dir, err, strings.TrimSpace(errb.String()))
	}
	return bin, nil
}

// AsynqResult is one run of the asynq anchor.
type AsynqResult struct {
	JobsPerSec float64
	// RedisCPUPerJob, ClientCPUPerJob and CommandsPerJob are as in
	// ThroughputResult, over the anchor's first enqueue → last handler
	// return; client CPU is the anchor process's own (asynq's client and
	// server).
	RedisCPUPerJob, ClientCPUPerJob, CommandsPerJob float64
	// FirstHandler is when the first handler ran, from the first enqueue:
	// asynq's processor sleeps 0.5–1.5× TaskCheckInterval when it finds its
	// queues empty, as they are when the run starts (the anchor sets 1 ms;
	// asynq's default, 1 s, would add up to 1.5 s to its run).
	FirstHandler time.Duration
}

// AsynqThroughput runs the built asynq anchor bin against the Redis at
// redisURL and returns what it measured.
func AsynqThroughput(ctx context.Context, bin, redisURL string, n, slots int) (AsynqResult, error) {
	u, err := url.Parse(redisURL)
	if err != nil {
		return AsynqResult{}, fmt.Errorf("asynq anchor: redis url: %w", err)
	}
	cmd := exec.CommandContext(ctx, bin, "-redis", u.Host, "-n", strconv.Itoa(n), "-concurrency", strconv.Itoa(slots))
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return AsynqResult{}, fmt.Errorf("asynq anchor: %w: %s", err, strings.TrimSpace(errb.String()))
	}
	return parseAsynq(out.String(), n)
}

var (
	asynqRate = regexp.MustCompile(`asynq: ([0-9.]+) jobs/s`)
	asynqCost = regexp.MustCompile(`asynq cost: redis_cpu_us=([0-9]+) client_cpu_us=([0-9]+) commands=(-?[0-9]+) first_handler_ms=([0-9.]+)`)
)

// parseAsynq reads the anchor's two lines: jobs/s and the run's cost,
// divided over n jobs. Either missing is an error.
func parseAsynq(out string, n int) (AsynqResult, error) {
	rate, cost := asynqRate.FindStringSubmatch(out), asynqCost.FindStringSubmatch(out)
	if rate == nil || cost == nil {
		return AsynqResult{}, fmt.Errorf("asynq anchor: want a jobs/s and a cost line, got %q", out)
	}
	var res AsynqResult
	var err error
	if res.JobsPerSec, err = strconv.ParseFloat(rate[1], 64); err != nil {
		return AsynqResult{}, fmt.Errorf("asynq anchor: jobs/s: %w", err)
	}
	var v [4]float64
	for i := range v {
		if v[i], err = strconv.ParseFloat(cost[i+1], 64); err != nil {
			return AsynqResult{}, fmt.Errorf("asynq anchor: cost: %w", err)
		}
	}
	res.RedisCPUPerJob, res.ClientCPUPerJob, res.CommandsPerJob = v[0]/float64(n), v[1]/float64(n), v[2]/float64(n)
	res.FirstHandler = time.Duration(v[3] * float64(time.Millisecond))
	return res, nil
}

func median(x []float64) float64 {
	s := append([]float64(nil), x...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
