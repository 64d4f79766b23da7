// Package redisproc starts and stops redis-server child processes on free
// loopback ports, for tests and benchmarks that need a real Redis.
package redisproc

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/redis/rueidis"
)

// Server is a redis-server child process.
type Server struct {
	URL  string
	Addr string
	Dir  string
	cmd  *exec.Cmd
	done chan struct{}
}

// StartServer starts redis-server on a free loopback port with its data in a
// new directory under dir; extra are more config arguments ("--appendonly",
// "yes"). It returns once the server answers PING.
func StartServer(dir string, extra []string) (*Server, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	data, err := os.MkdirTemp(dir, "redis-")
	if err != nil {
		return nil, err
	}
	return startOn(port, data, extra)
}

// Restart starts the server again on the same port and data directory
// (after Kill), for durability tests.
func (s *Server) Restart(extra []string) (*Server, error) {
	_, p, _ := net.SplitHostPort(s.Addr)
	port, _ := strconv.Atoi(p)
	return startOn(port, s.Dir, extra)
}

func startOn(port int, data string, extra []string) (*Server, error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, fmt.Errorf("redis-server not found (apt-get install redis-server): %w", err)
	}
	args := append([]string{"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--dir", data,
		"--save", "", "--appendonly", "no", "--protected-mode", "yes"}, extra...)
	cmd := exec.Command(bin, args...)
	cmd.Stdout = nil
	logf, err := os.Create(filepath.Join(data, "redis.log"))
	if err == nil {
		cmd.Stdout = logf
		cmd.Stderr = logf
	}
	setPdeathsig(cmd)
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start redis-server: %w", err)
	}
	s := &Server{Addr: "127.0.0.1:" + strconv.Itoa(port), Dir: data, cmd: cmd, done: make(chan struct{})}
	s.URL = "redis://" + s.Addr
	go func() { _ = cmd.Wait(); close(s.done) }()
	client, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{s.Addr}, DisableCache: true,
		DisableRetry: true})
	for i := 0; err != nil && i < 200; i++ {
		select {
		case <-s.done:
			return nil, fmt.Errorf("redis-server exited at start; see %s/redis.log", data)
		case <-time.After(25 * time.Millisecond): // startup wait for an external process
		}
		client, err = rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{s.Addr}, DisableCache: true,
			DisableRetry: true})
	}
	if err != nil {
		s.Kill()
		return nil, fmt.Errorf("redis-server did not answer: %w", err)
	}
	defer client.Close()
	for i := 0; i < 200; i++ {
		err = client.Do(context.Background(), client.B().Ping().Build()).Error()
		if err == nil || !strings.Contains(err.Error(), "LOADING") {
			break
		}
		time.Sleep(25 * time.Millisecond) // loading the AOF after a restart
	}
	return s, err
}

// Kill stops the server with SIGKILL and waits for it to exit.
func (s *Server) Kill() {
	_ = s.cmd.Process.Kill()
	<-s.done
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
