package bench

import (
	"bytes"
	"context"
	"fmt"
	"net/url"
	"os/exec"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/easelbot/easel/storage"
)

// AsynqThroughput runs the asynq anchor (bench/asynqcmp, a module of its own
// so asynq is never a dependency of Easel) with `go run` against the Redis at
// redisURL and returns its jobs/s.
func AsynqThroughput(ctx context.Context, dir, redisURL string, n, slots int) (float64, error) {
	u, err := url.Parse(redisURL)
	if err != nil {
		return 0, fmt.Errorf("asynq anchor: redis url: %w", err)
	}
	cmd := exec.CommandContext(ctx, "go", "run", ".", "-redis", u.Host, "-n", strconv.Itoa(n), "-concurrency", strconv.Itoa(slots))
	cmd.Dir = dir
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return 0, fmt.Errorf("asynq anchor (go run in %s): %w: %s", dir, err, strings.TrimSpace(errb.String()))
	}
	m := asynqRate.FindStringSubmatch(out.String())
	if m == nil {
		return 0, fmt.Errorf("asynq anchor: unexpected output %q", out.String())
	}
	return strconv.ParseFloat(m[1], 64)
}

var asynqRate = regexp.MustCompile(`asynq: ([0-9.]+) jobs/s`)

// commandCalls is the total of INFO commandstats calls: every command the
// server ran, those run inside scripts and functions included.
func commandCalls(ctx context.Context, r *rig) (int64, error) {
	calls, err := r.store.CommandCalls(ctx)
	if err != nil {
		return 0, err
	}
	return storage.TotalCalls(calls), nil
}

func median(x []float64) float64 {
	s := append([]float64(nil), x...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
