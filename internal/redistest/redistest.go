// Package redistest gives tests a real Redis: a redis-server started on a
// free loopback port for the test binary (shared by its tests), with a fresh
// key prefix per test so tests can run in parallel without flushing; and a
// real three-master Redis Cluster on loopback (ClusterStore).
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
// instead, to check the scripts run there too; with EASEL_TEST_REDIS=cluster
// it is the three-master test cluster (ClusterStore).
func Store(t testing.TB) *storage.Store {
	t.Helper()
	var cfg storage.Config
	switch os.Getenv("EASEL_TEST_REDIS") {
	case "embedded":
	case "cluster":
		cfg = ClusterConfig(t)
	default:
		cfg = Config(t)
	}
	s, err := storage.Open(context.Background(), cfg, zap.NewNop())
	if err != nil {
		t.Fatalf("redistest: %v", err)
	}
	t.Cleanup(s.Close)
	return s
}

// Server is a redis-server of one test's own, which the test may stop and
// start again (on the same port, keeping its data: appendonly with fsync
// on every write), for outage tests.
type Server struct {
	t   testing.TB
	mu  sync.Mutex
	srv *redisproc.Server
	// URL stays the same across restarts.
	URL string
}

// NewServer starts a private redis-server, killed when the test ends.
func NewServer(t testing.TB) *Server {
	t.Helper()
	srv, err := redisproc.StartServer(t.TempDir(), durable)
	if err != nil {
		t.Fatalf("redistest: %v", err)
	}
	s := &Server{t: t, srv: srv, URL: srv.URL}
	t.Cleanup(func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.srv != nil {
			s.srv.Kill()
		}
	})
	return s
}

var durable = []string{"--appendonly", "yes", "--appendfsync", "always"}

// Stop kills the server (SIGKILL: an outage, not a shutdown).
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.srv != nil {
		s.srv.Kill()
	}
}

// Start starts the stopped server again with its data.
func (s *Server) Start() {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	srv, err := s.srv.Restart(durable)
	if err != nil {
		s.t.Fatalf("redistest: restart: %v", err)
	}
	s.srv = srv
}

// Config returns a storage config on this server with a fresh key prefix.
func (s *Server) Config() storage.Config {
	return storage.Config{URL: s.URL, Prefix: fmt.Sprintf("t%d-%d", os.Getpid(), counter.Add(1))}
}
