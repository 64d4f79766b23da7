package redistest

import (
	"context"
	"fmt"
	"os"
	"sync"
	"testing"

	"go.uber.org/zap"

	"github.com/easelbot/easel/internal/redisproc"
	"github.com/easelbot/easel/storage"
)

var (
	clusterOnce sync.Once
	clusterURL  string
	clusterErr  error
)

// ClusterMasters is the number of masters of the test cluster.
const ClusterMasters = 3

// ClusterURL returns the URL of a Redis Cluster of three masters on loopback
// ports, started from redis-server (cluster-enabled) on first use and shared
// by the test binary. The URL names every master ("redis://a?addr=b&addr=c"),
// the form redis.url takes for a cluster.
//
// EASEL_TEST_REDIS_CLUSTER_URL points tests at a running cluster instead.
func ClusterURL(t testing.TB) string {
	t.Helper()
	clusterOnce.Do(func() {
		if u := os.Getenv("EASEL_TEST_REDIS_CLUSTER_URL"); u != "" {
			clusterURL = u
			return
		}
		clusterURL, clusterErr = startCluster(ClusterMasters)
	})
	if clusterErr != nil {
		t.Fatalf("redistest: cluster: %v", clusterErr)
	}
	return clusterURL
}

// ClusterConfig returns a storage config on the test cluster with a key
// prefix unique to this test.
func ClusterConfig(t testing.TB) storage.Config {
	t.Helper()
	return storage.Config{URL: ClusterURL(t), Prefix: fmt.Sprintf("c%d-%d", os.Getpid(), counter.Add(1))}
}

// ClusterStore opens a store on the test cluster with a unique key prefix
// and closes it when the test ends.
func ClusterStore(t testing.TB) *storage.Store {
	t.Helper()
	s, err := storage.Open(context.Background(), ClusterConfig(t), zap.NewNop())
	if err != nil {
		t.Fatalf("redistest: cluster: %v", err)
	}
	t.Cleanup(s.Close)
	return s
}

// startCluster starts the shared test cluster (redisproc.StartCluster); its
// nodes live as long as the test binary.
func startCluster(n int) (string, error) {
	cl, err := redisproc.StartCluster(os.TempDir(), n)
	if err != nil {
		return "", err
	}
	return cl.URL, nil
}
