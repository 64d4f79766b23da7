package bench

import (
	"context"
	"fmt"
	"strconv"
	"strings"
)

// MemoryPerJob queues n jobs with a short prompt and reports Redis
// used_memory growth per queued job.
func MemoryPerJob(ctx context.Context, url string, n int) (string, string, error) {
	r, err := newRig(ctx, url, 1, false)
	if err != nil {
		return "", "", err
	}
	defer r.close()
	before, err := usedMemory(ctx, r)
	if err != nil {
		return "", "", err
	}
	for i := range n {
		if _, err := r.submit(ctx, "api:t"+strconv.Itoa(i%10)); err != nil {
			return "", "", err
		}
	}
	after, err := usedMemory(ctx, r)
	if err != nil {
		return "", "", err
	}
	return fmt.Sprintf("%d bytes per queued job (n=%d)", (after-before)/int64(n), n), "< 1 KiB", nil
}

func usedMemory(ctx context.Context, r *rig) (int64, error) {
	c := r.store.Client
	info, err := c.Do(ctx, c.B().Info().Section("memory").Build()).ToString()
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "used_memory:"); ok {
			return strconv.ParseInt(v, 10, 64)
		}
	}
	return 0, fmt.Errorf("INFO memory has no used_memory")
}
