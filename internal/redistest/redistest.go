// Package redistest gives tests a real Redis: a redis-server started on a
// free loopback port for the test binary (shared by its tests), with a fresh
// key prefix per test so tests can run in parallel without flushing.
//
// EASEL_TEST_REDIS_URL points tests at an already running server instead.
package redistest

import (
	"context"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"testing"

	"go.uber.org/zap"

	"github.com/easelbot/easel/internal/redisproc"
	"github.com/easelbot/easel/storage"
)

var (
	once    sync.Once
	url     string
	initErr error
	counter atomic.Int64
)

// URL returns the URL of the shared test Redis, starting it on first use.
func URL(t testing.TB) string {
	t.Helper()
	once.Do(func() {
		if u := os.Getenv("EASEL_TEST_REDIS_URL"); u != "" {
			url = u
			return
		}
		srv, err := redisproc.StartServer(os.TempDir(), nil)
		if err != nil {
			initErr = err
			return
		}
		// The server lives as long as the test binary (Pdeathsig kills it).
		url = srv.URL
	})
	if initErr != nil {
		t.Fatalf("redistest: %v", initErr)
	}
	return url
}

// Config returns a storage config on the shared test Redis with a key prefix
// unique to this test.
func Config(t testing.TB) storage.Config {
	t.Helper()
	return storage.Config{URL: URL(t), Prefix: fmt.Sprintf("t%d-%d", os.Getpid(), counter.Add(1))}
}

// Store opens a store on the shared test Redis with a unique key prefix and
// closes it when the test ends.
//
// With EASEL_TEST_REDIS=embedded the store is the embedded in-process Redis
// instead, to check the scripts run there too.
func Store(t testing.TB) *storage.Store {
	t.Helper()
	cfg := storage.Config{}
	if os.Getenv("EASEL_TEST_REDIS") != "embedded" {
		cfg = Config(t)
	}
	s, err := storage.Open(context.Background(), cfg, zap.NewNop())
	if err != nil {
		t.Fatalf("redistest: %v", err)
	}
	t.Cleanup(s.Close)
	return s
}
