package bench

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/rueidis"

	"github.com/easelbot/easel/storage"
)

// Cost is what one measured run cost, from a window opened right before its
// first command and closed right after its last outcome.
type Cost struct {
	// RedisCPU is the server's used_cpu_sys + used_cpu_user delta (INFO
	// cpu): every thread of the server, whatever client caused it. Nothing
	// else runs on the bench's Redis, so it is the run's.
	RedisCPU time.Duration
	// ClientCPU is this process's user + system CPU delta (getrusage
	// RUSAGE_SELF): submitters, scheduler client and worker together.
	ClientCPU time.Duration
	// Commands is the INFO commandstats delta (commands inside scripts
	// included), less the window's own INFO calls.
	Commands int64
}

// PerJob is the cost divided over n jobs: Redis CPU and client CPU in µs,
// and commands.
func (c Cost) PerJob(n int) (redisUS, clientUS, commands float64) {
	f := float64(n)
	return float64(c.RedisCPU.Microseconds()) / f, float64(c.ClientCPU.Microseconds()) / f, float64(c.Commands) / f
}

// costWindow is an open measurement: the readings at its start.
type costWindow struct {
	client         rueidis.Client
	calls          int64
	redis, process time.Duration
}

// windowOwnCalls are the INFO calls a window makes that land between its
// two commandstats readings: the opening commandstats (a command is not
// in its own reply), the opening INFO cpu and the closing INFO cpu.
const windowOwnCalls = 3

// openCost opens a window; the readings closest to the measured run (this
// process's CPU) are taken last.
func openCost(ctx context.Context, c rueidis.Client) (*costWindow, error) {
	w := &costWindow{client: c}
	var err error
	if w.calls, err = totalCalls(ctx, c); err != nil {
		return nil, err
	}
	if w.redis, err = serverCPU(ctx, c); err != nil {
		return nil, err
	}
	if w.process, err = processCPU(); err != nil {
		return nil, err
	}
	return w, nil
}

// close closes the window, reading in the opposite order to openCost.
func (w *costWindow) close(ctx context.Context) (Cost, error) {
	process, err := processCPU()
	if err != nil {
		return Cost{}, err
	}
	redis, err := serverCPU(ctx, w.client)
	if err != nil {
		return Cost{}, err
	}
	calls, err := totalCalls(ctx, w.client)
	if err != nil {
		return Cost{}, err
	}
	return Cost{RedisCPU: redis - w.redis, ClientCPU: process - w.process, Commands: calls - w.calls - windowOwnCalls}, nil
}

func totalCalls(ctx context.Context, c rueidis.Client) (int64, error) {
	info, err := c.Do(ctx, c.B().Info().Section("commandstats").Build()).ToString()
	if err != nil {
		return 0, fmt.Errorf("commandstats: %w", err)
	}
	calls, err := storage.ParseCommandStats(info)
	if err != nil {
		return 0, err
	}
	return storage.TotalCalls(calls), nil
}

func serverCPU(ctx context.Context, c rueidis.Client) (time.Duration, error) {
	info, err := c.Do(ctx, c.B().Info().Section("cpu").Build()).ToString()
	if err != nil {
		return 0, fmt.Errorf("info cpu: %w", err)
	}
	return parseServerCPU(info)
}

// parseServerCPU reads used_cpu_sys and used_cpu_user (seconds, as
// "used_cpu_sys:1.234567") from an INFO cpu reply and returns their sum;
// either missing is an error, so a run never reports zero CPU by accident.
func parseServerCPU(info string) (time.Duration, error) {
	var total time.Duration
	seen := map[string]bool{}
	for _, line := range strings.Split(info, "\n") {
		name, value, ok := strings.Cut(strings.TrimSpace(line), ":")
		if !ok || (name != "used_cpu_sys" && name != "used_cpu_user") {
			continue
		}
		if seen[name] {
			return 0, fmt.Errorf("info cpu: %s twice", name)
		}
		sec, err := strconv.ParseFloat(value, 64)
		if err != nil || !(sec >= 0 && sec <= 1e9) { // NaN fails too
			return 0, fmt.Errorf("info cpu: %s: %q is not a number of seconds", name, value)
		}
		total += time.Duration(sec * float64(time.Second))
		seen[name] = true
	}
	if !seen["used_cpu_sys"] || !seen["used_cpu_user"] {
		return 0, fmt.Errorf("info cpu: used_cpu_sys or used_cpu_user missing from %q", info)
	}
	return total, nil
}
