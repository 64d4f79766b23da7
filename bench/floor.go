package bench

import (
	"context"
	_ "embed"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/redis/rueidis"
	"go.uber.org/zap"

	"github.com/easelbot/easel/storage"
)

//go:embed floor.lua
var floorLua string

// floorBatch is how many jobs one floor.lua call takes through their
// lifecycle.
const floorBatch = 8

// FloorResult is one run of the synthetic floor scenario.
type FloorResult struct {
	Jobs int
	// JobsPerSec is the floor run's own rate (one caller, one script call
	// per 8 jobs, each waiting for the last); it is not comparable with the
	// throughput scenario's.
	JobsPerSec float64
	// RedisCPUPerJob is the server's CPU (INFO cpu delta) in µs per job.
	RedisCPUPerJob float64
	// CommandsPerJob counts the EVALSHA and the commands inside it.
	CommandsPerJob float64
}

// Floor runs floor.lua, a bare fair-queue lifecycle with events (see its
// header), for n jobs from 100 tenants, 8 jobs per call, on a key prefix of
// its own that it deletes afterwards, and measures Redis CPU and commands
// per job: the lower bound of a durable fair queue on this Redis.
func Floor(ctx context.Context, url string, n int) (res FloorResult, err error) {
	if n < 1 {
		return FloorResult{}, fmt.Errorf("floor: floor-jobs is %d, must be at least 1", n)
	}
	prefix := "{easel-bench-floor-" + strconv.Itoa(os.Getpid()) + "}"
	store, err := storage.Open(ctx, storage.Config{URL: url, Prefix: prefix}, zap.NewNop())
	if err != nil {
		return FloorResult{}, err
	}
	defer store.Close()
	c := store.Client
	script := rueidis.NewLuaScript(floorLua)
	// Before the window: load the script, so no EVAL fallback is counted,
	// and touch the prefix's hash slot, so the client opens the connection
	// it sends that slot's commands on (a HELLO otherwise counted).
	if err := c.Do(ctx, c.B().ScriptLoad().Script(floorLua).Build()).Error(); err != nil {
		return FloorResult{}, fmt.Errorf("floor: script load: %w", err)
	}
	if err := c.Do(ctx, c.B().Exists().Key(prefix+":ready").Build()).Error(); err != nil {
		return FloorResult{}, fmt.Errorf("floor: %w", err)
	}
	defer func() {
		if cerr := deletePrefix(context.WithoutCancel(ctx), c, prefix); err == nil {
			err = cerr
		}
	}()
	w, err := openCost(ctx, c)
	if err != nil {
		return FloorResult{}, err
	}
	t0 := time.Now()
	for first := 0; first < n; first += floorBatch {
		if err := floorCall(ctx, c, script, prefix, first, min(first+floorBatch, n)); err != nil {
			return FloorResult{}, err
		}
	}
	el := time.Since(t0)
	cost, err := w.close(ctx)
	if err != nil {
		return FloorResult{}, err
	}
	res = FloorResult{Jobs: n, JobsPerSec: float64(n) / el.Seconds()}
	res.RedisCPUPerJob, _, res.CommandsPerJob = cost.PerJob(n)
	return res, nil
}

// floorCall takes jobs [first, last) through floor.lua.
func floorCall(ctx context.Context, c rueidis.Client, script *rueidis.Lua, prefix string, first, last int) error {
	keys := []string{prefix + ":ready", prefix + ":leases", prefix + ":events"}
	args := []string{string(payload), strconv.FormatInt(time.Now().UnixMilli(), 10)}
	for i := first; i < last; i++ {
		id, tenant := strconv.Itoa(i), "api:t"+strconv.Itoa(i%100)
		keys = append(keys, prefix+":job:"+id, prefix+":req:"+id, prefix+":q:"+tenant)
		args = append(args, id, tenant)
	}
	got, err := script.Exec(ctx, c, keys, args).AsInt64()
	if err != nil {
		return fmt.Errorf("floor: jobs %d–%d: %w", first, last-1, err)
	}
	if got != int64(last-first) {
		return fmt.Errorf("floor: jobs %d–%d: %d went through", first, last-1, got)
	}
	return nil
}

// deletePrefix unlinks every key starting with prefix.
func deletePrefix(ctx context.Context, c rueidis.Client, prefix string) error {
	var cursor uint64
	for {
		e, err := c.Do(ctx, c.B().Scan().Cursor(cursor).Match(prefix+"*").Count(1000).Build()).AsScanEntry()
		if err != nil {
			return fmt.Errorf("floor: clean up: %w", err)
		}
		if len(e.Elements) > 0 {
			if err := c.Do(ctx, c.B().Unlink().Key(e.Elements...).Build()).Error(); err != nil {
				return fmt.Errorf("floor: clean up: %w", err)
			}
		}
		if cursor = e.Cursor; cursor == 0 {
			return nil
		}
	}
}
