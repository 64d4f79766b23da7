// Command asynqcmp measures asynq's end-to-end throughput with a no-op
// handler on a given Redis, the anchor for Easel's throughput budget (at
// least 2× asynq on the same Redis, same machine, same run). It is a module
// of its own so asynq is never a dependency of Easel.
//
// Besides jobs/s it reports what the run cost, from the first enqueue to
// the last handler return: the Redis server's CPU (INFO cpu used_cpu_sys +
// used_cpu_user; server-wide, so nothing else should run on that Redis),
// this process's own CPU (getrusage: asynq's client and server together)
// and Redis commands (INFO commandstats, less the reading's own INFO calls).
// `easel bench` builds it once and runs the binary, so no compiling is
// counted.
//
//	go run . -redis 127.0.0.1:6379 -n 20000 -concurrency 8 [-check-interval 1s]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
)

func main() {
	addr := flag.String("redis", "127.0.0.1:6379", "Redis address")
	n := flag.Int("n", 20000, "tasks")
	conc := flag.Int("concurrency", 8, "handler slots (as Easel's backend slots)")
	// asynq's processors poll: when every queue is empty a processor sleeps
	// half to one and a half of this interval (processor.go, exec). With
	// asynq's default of 1 s, the first task of a run waits 0.5–1.5 s and
	// so does any task that arrives after a processor found the queue empty
	// mid-run (enqueuers slower than handlers). The anchor runs asynq at its
	// fastest by default (1 ms: handlers never idle behind work), the
	// stricter anchor for Easel's budget.
	check := flag.Duration("check-interval", time.Millisecond, "asynq Config.TaskCheckInterval (asynq's default is 1s)")
	flag.Parse()
	if err := run(*addr, *n, *conc, *check); err != nil {
		fmt.Fprintln(os.Stderr, "asynqcmp:", err)
		os.Exit(1)
	}
}

func run(addr string, n, conc int, check time.Duration) error {
	ctx := context.Background()
	opt := asynq.RedisClientOpt{Addr: addr, DB: 3}
	client := asynq.NewClient(opt)
	defer client.Close()
	// The stats connection (DB 0; INFO is server-wide) is not asynq's.
	stats := redis.NewClient(&redis.Options{Addr: addr})
	defer stats.Close()
	var done atomic.Int64
	var first atomic.Int64 // when the first handler ran, ns since t0
	var t0 time.Time
	all := make(chan struct{})
	srv := asynq.NewServer(opt, asynq.Config{Concurrency: conc, LogLevel: asynq.ErrorLevel,
		Queues: map[string]int{"default": 1}, TaskCheckInterval: check})
	mux := asynq.NewServeMux()
	mux.HandleFunc("bench", func(context.Context, *asynq.Task) error {
		first.CompareAndSwap(0, int64(time.Since(t0)))
		if done.Add(1) == int64(n) {
			close(all)
		}
		return nil
	})
	if err := srv.Start(mux); err != nil {
		return err
	}
	before, err := open(ctx, stats)
	if err != nil {
		return err
	}
	t0 = time.Now()
	var wg sync.WaitGroup
	errc := make(chan error, 16)
	for g := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := g; i < n; i += 16 {
				payload := []byte(`{"prompt":"bench","width":64,"height":64,"steps":1,"count":1,"tenant":"api:t` + strconv.Itoa(i%100) + `"}`)
				if _, err := client.Enqueue(asynq.NewTask("bench", payload)); err != nil {
					errc <- err
					return
				}
			}
		}()
	}
	select {
	case <-all:
	case err := <-errc:
		return fmt.Errorf("enqueue: %w", err)
	}
	el := time.Since(t0)
	cost, err := before.close(ctx, stats)
	if err != nil {
		return err
	}
	wg.Wait()
	srv.Shutdown()
	fmt.Printf("asynq: %.0f jobs/s (%d jobs in %s, concurrency %d)\n", float64(n)/el.Seconds(), n, el.Round(time.Millisecond), conc)
	// asynq's processor polls: with its queues empty it sleeps 0.5–1.5× the
	// check interval, so the first task may wait for that.
	fmt.Printf("asynq cost: redis_cpu_us=%d client_cpu_us=%d commands=%d first_handler_ms=%.1f (first enqueue → last handler return)\n",
		cost.redis.Microseconds(), cost.process.Microseconds(), cost.calls, float64(first.Load())/1e6)
	return nil
}

// reading is the server's command count and CPU and this process's CPU.
type reading struct {
	calls          int64
	redis, process time.Duration
}

// ownCalls are the INFO calls between the two commandstats readings: the
// opening commandstats (a command is not in its own reply) and the two
// INFO cpu.
const ownCalls = 3

// open reads commandstats, then server CPU, then this process's CPU (the
// reading closest to the run last).
func open(ctx context.Context, c *redis.Client) (reading, error) {
	var r reading
	var err error
	if r.calls, err = calls(ctx, c); err != nil {
		return r, err
	}
	if r.redis, err = serverCPU(ctx, c); err != nil {
		return r, err
	}
	r.process, err = processCPU()
	return r, err
}

// close reads in the opposite order and returns the deltas.
func (r reading) close(ctx context.Context, c *redis.Client) (reading, error) {
	process, err := processCPU()
	if err != nil {
		return reading{}, err
	}
	cpu, err := serverCPU(ctx, c)
	if err != nil {
		return reading{}, err
	}
	n, err := calls(ctx, c)
	if err != nil {
		return reading{}, err
	}
	return reading{calls: n - r.calls - ownCalls, redis: cpu - r.redis, process: process - r.process}, nil
}

// calls sums calls= over INFO commandstats lines
// ("cmdstat_get:calls=3,usec=…").
func calls(ctx context.Context, c *redis.Client) (int64, error) {
	info, err := c.Info(ctx, "commandstats").Result()
	if err != nil {
		return 0, fmt.Errorf("info commandstats: %w", err)
	}
	var total int64
	for _, line := range strings.Split(info, "\n") {
		_, fields, ok := strings.Cut(line, ":calls=")
		if !ok || !strings.HasPrefix(line, "cmdstat_") {
			continue
		}
		v, _, _ := strings.Cut(fields, ",")
		k, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("info commandstats: %q: %w", line, err)
		}
		total += k
	}
	return total, nil
}

// serverCPU is used_cpu_sys + used_cpu_user from INFO cpu.
func serverCPU(ctx context.Context, c *redis.Client) (time.Duration, error) {
	info, err := c.Info(ctx, "cpu").Result()
	if err != nil {
		return 0, fmt.Errorf("info cpu: %w", err)
	}
	var total time.Duration
	seen := 0
	for _, line := range strings.Split(info, "\n") {
		name, v, ok := strings.Cut(strings.TrimSpace(line), ":")
		if !ok || (name != "used_cpu_sys" && name != "used_cpu_user") {
			continue
		}
		sec, err := strconv.ParseFloat(v, 64)
		if err != nil {
			return 0, fmt.Errorf("info cpu: %s: %w", name, err)
		}
		total += time.Duration(sec * float64(time.Second))
		seen++
	}
	if seen != 2 {
		return 0, errors.New("info cpu: used_cpu_sys or used_cpu_user missing")
	}
	return total, nil
}
