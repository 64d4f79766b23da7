package redistest

import (
	"context"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/rueidis"
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

// startCluster starts n cluster-enabled redis-servers, splits the 16384
// slots between them, introduces them (CLUSTER MEET) and waits until every
// node reports the cluster ok.
func startCluster(n int) (string, error) {
	addrs := make([]string, n)
	buses := make([]int, n)
	for i := range n {
		bus, err := freePort()
		if err != nil {
			return "", err
		}
		srv, err := redisproc.StartServer(os.TempDir(), []string{"--cluster-enabled", "yes",
			"--cluster-port", strconv.Itoa(bus), "--cluster-node-timeout", "5000"})
		if err != nil {
			return "", fmt.Errorf("start node %d: %w", i, err)
		}
		addrs[i], buses[i] = srv.Addr, bus
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	nodes := make([]rueidis.Client, n)
	for i, a := range addrs {
		c, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{a}, ForceSingleClient: true, DisableCache: true})
		if err != nil {
			return "", fmt.Errorf("connect node %s: %w", a, err)
		}
		defer c.Close()
		nodes[i] = c
		lo, hi := i*16384/n, (i+1)*16384/n-1
		if err := c.Do(ctx, c.B().Arbitrary("CLUSTER", "ADDSLOTSRANGE").Args(strconv.Itoa(lo), strconv.Itoa(hi)).Build()).Error(); err != nil {
			return "", fmt.Errorf("add slots on %s: %w", a, err)
		}
	}
	host, port, _ := net.SplitHostPort(addrs[0])
	for i := 1; i < n; i++ {
		if err := nodes[i].Do(ctx, nodes[i].B().Arbitrary("CLUSTER", "MEET").Args(host, port, strconv.Itoa(buses[0])).Build()).Error(); err != nil {
			return "", fmt.Errorf("meet: %w", err)
		}
	}
	// The nodes gossip until each knows every slot; this waits on an
	// external process's state, so it asks again until it is ok.
	for _, c := range nodes {
		for {
			info, err := c.Do(ctx, c.B().ClusterInfo().Build()).ToString()
			if err != nil {
				return "", fmt.Errorf("cluster info: %w", err)
			}
			if strings.Contains(info, "cluster_state:ok") && strings.Contains(info, "cluster_known_nodes:"+strconv.Itoa(n)) {
				break
			}
			select {
			case <-ctx.Done():
				return "", fmt.Errorf("cluster did not become ok: %s", info)
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
	u := "redis://" + addrs[0] + "?addr=" + strings.Join(addrs[1:], "&addr=")
	return u, nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
