package redisproc

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/redis/rueidis"
)

// Cluster is a Redis Cluster of masters started by StartCluster.
type Cluster struct {
	// URL names every master ("redis://a?addr=b&addr=c"), the form
	// redis.url takes for a cluster.
	URL     string
	servers []*Server
}

// Kill stops every node.
func (c *Cluster) Kill() {
	for _, s := range c.servers {
		s.Kill()
	}
}

// StartCluster starts n cluster-enabled redis-servers on loopback ports
// (data under dir), splits the 16384 slots evenly between them, introduces
// them (CLUSTER MEET) and returns once every node reports the cluster ok
// (within a minute).
func StartCluster(dir string, n int) (*Cluster, error) {
	cl := &Cluster{}
	addrs := make([]string, n)
	buses := make([]int, n)
	for i := range n {
		bus, err := freePort()
		if err != nil {
			cl.Kill()
			return nil, err
		}
		srv, err := StartServer(dir, []string{"--cluster-enabled", "yes",
			"--cluster-port", strconv.Itoa(bus), "--cluster-node-timeout", "5000"})
		if err != nil {
			cl.Kill()
			return nil, fmt.Errorf("start node %d: %w", i, err)
		}
		cl.servers = append(cl.servers, srv)
		addrs[i], buses[i] = srv.Addr, bus
	}
	if err := meet(addrs, buses); err != nil {
		cl.Kill()
		return nil, err
	}
	cl.URL = "redis://" + addrs[0] + "?addr=" + strings.Join(addrs[1:], "&addr=")
	return cl, nil
}

func meet(addrs []string, buses []int) error {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	n := len(addrs)
	nodes := make([]rueidis.Client, n)
	for i, a := range addrs {
		c, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{a}, ForceSingleClient: true, DisableCache: true})
		if err != nil {
			return fmt.Errorf("connect node %s: %w", a, err)
		}
		defer c.Close()
		nodes[i] = c
		lo, hi := i*16384/n, (i+1)*16384/n-1
		if err := c.Do(ctx, c.B().Arbitrary("CLUSTER", "ADDSLOTSRANGE").Args(strconv.Itoa(lo), strconv.Itoa(hi)).Build()).Error(); err != nil {
			return fmt.Errorf("add slots on %s: %w", a, err)
		}
	}
	host, port, _ := net.SplitHostPort(addrs[0])
	for i := 1; i < n; i++ {
		if err := nodes[i].Do(ctx, nodes[i].B().Arbitrary("CLUSTER", "MEET").Args(host, port, strconv.Itoa(buses[0])).Build()).Error(); err != nil {
			return fmt.Errorf("meet: %w", err)
		}
	}
	// The nodes gossip until each knows every slot; this waits on external
	// processes' state, so it asks again until it is ok.
	for _, c := range nodes {
		for {
			info, err := c.Do(ctx, c.B().ClusterInfo().Build()).ToString()
			if err != nil {
				return fmt.Errorf("cluster info: %w", err)
			}
			if strings.Contains(info, "cluster_state:ok") && strings.Contains(info, "cluster_known_nodes:"+strconv.Itoa(n)) {
				break
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("cluster did not become ok: %s", info)
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
	return nil
}
