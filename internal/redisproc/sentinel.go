package redisproc

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"

	"github.com/redis/rueidis"
)

// StartSentinel starts a Redis Sentinel (redis-server --sentinel) on a free
// loopback port, watching the master at masterAddr under the name master
// (quorum 1), with its config file in a new directory under dir. It
// returns once the sentinel names the master's address.
func StartSentinel(dir, master, masterAddr string) (*Server, error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, fmt.Errorf("redis-server not found (apt-get install redis-server): %w", err)
	}
	host, port, err := splitAddr(masterAddr)
	if err != nil {
		return nil, err
	}
	sport, err := freePort()
	if err != nil {
		return nil, err
	}
	data, err := os.MkdirTemp(dir, "sentinel-")
	if err != nil {
		return nil, err
	}
	// A sentinel rewrites its config file, so it needs one of its own.
	conf := filepath.Join(data, "sentinel.conf")
	body := fmt.Sprintf("port %d\nbind 127.0.0.1\ndir %s\nsentinel monitor %s %s %d 1\n"+
		"sentinel down-after-milliseconds %s 60000\n", sport, data, master, host, port, master)
	if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, conf, "--sentinel")
	if logf, err := os.Create(filepath.Join(data, "sentinel.log")); err == nil {
		cmd.Stdout, cmd.Stderr = logf, logf
	}
	setPdeathsig(cmd)
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start redis sentinel: %w", err)
	}
	s := &Server{Addr: "127.0.0.1:" + strconv.Itoa(sport), Dir: data, cmd: cmd, done: make(chan struct{})}
	s.URL = "redis://" + s.Addr
	go func() { _ = cmd.Wait(); close(s.done) }()
	for i := 0; ; i++ {
		if ok, err := s.namesMaster(master); ok {
			return s, nil
		} else if i == 200 {
			s.Kill()
			return nil, fmt.Errorf("redis sentinel did not name master %s: %w; see %s/sentinel.log", master, err, data)
		}
		select {
		case <-s.done:
			return nil, fmt.Errorf("redis sentinel exited at start; see %s/sentinel.log", data)
		case <-time.After(25 * time.Millisecond): // startup wait for an external process
		}
	}
}

// namesMaster reports whether the sentinel answers master's address.
func (s *Server) namesMaster(master string) (bool, error) {
	client, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{s.Addr}, DisableCache: true,
		DisableRetry: true, ForceSingleClient: true})
	if err != nil {
		return false, err
	}
	defer client.Close()
	addr, err := client.Do(context.Background(), client.B().Arbitrary("SENTINEL", "GET-MASTER-ADDR-BY-NAME").Args(master).Build()).AsStrSlice()
	return err == nil && len(addr) == 2, err
}

func splitAddr(addr string) (string, int, error) {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, fmt.Errorf("redisproc: address %q: %w", addr, err)
	}
	port, err := strconv.Atoi(p)
	if err != nil {
		return "", 0, fmt.Errorf("redisproc: address %q: %w", addr, err)
	}
	return host, port, nil
}
