// Command asynqcmp measures asynq's end-to-end throughput with a no-op
// handler on a given Redis, the anchor for Easel's throughput budget (at
// least 2× asynq on the same Redis, same machine, same run). It is a module
// of its own so asynq is never a dependency of Easel.
//
//	go run . -redis 127.0.0.1:6379 -n 20000 -concurrency 8
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hibiken/asynq"
)

func main() {
	addr := flag.String("redis", "127.0.0.1:6379", "Redis address")
	n := flag.Int("n", 20000, "tasks")
	conc := flag.Int("concurrency", 8, "handler slots (as Easel's backend slots)")
	flag.Parse()
	opt := asynq.RedisClientOpt{Addr: *addr, DB: 3}
	client := asynq.NewClient(opt)
	defer client.Close()
	var done atomic.Int64
	all := make(chan struct{})
	srv := asynq.NewServer(opt, asynq.Config{Concurrency: *conc, LogLevel: asynq.ErrorLevel,
		Queues: map[string]int{"default": 1}})
	mux := asynq.NewServeMux()
	mux.HandleFunc("bench", func(context.Context, *asynq.Task) error {
		if done.Add(1) == int64(*n) {
			close(all)
		}
		return nil
	})
	if err := srv.Start(mux); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	t0 := time.Now()
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := g; i < *n; i += 16 {
				payload := []byte(`{"prompt":"bench","width":64,"height":64,"steps":1,"count":1,"tenant":"api:t` + strconv.Itoa(i%100) + `"}`)
				if _, err := client.Enqueue(asynq.NewTask("bench", payload)); err != nil {
					fmt.Fprintln(os.Stderr, err)
					os.Exit(1)
				}
			}
		}()
	}
	<-all
	el := time.Since(t0)
	wg.Wait()
	srv.Shutdown()
	fmt.Printf("asynq: %.0f jobs/s (%d jobs in %s, concurrency %d)\n", float64(*n)/el.Seconds(), *n, el.Round(time.Millisecond), *conc)
}
