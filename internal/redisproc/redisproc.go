// Package redisproc starts and stops redis-server child processes on free
// loopback ports: for tests and benchmarks that need a real Redis, and for
// `easel serve`'s durable single-machine default (StartDurable).
package redisproc

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
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
	// password is the requirepass of a durable server ("" for tests').
	password string
	lock     *os.File // the data dir's lock of a durable server
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
	return startOn(port, data, "", extra)
}

// Restart starts the server again on the same port and data directory
// (after Kill), for durability tests.
func (s *Server) Restart(extra []string) (*Server, error) {
	_, p, _ := net.SplitHostPort(s.Addr)
	port, _ := strconv.Atoi(p)
	return startOn(port, s.Dir, s.password, extra)
}

// Available reports whether redis-server is on PATH.
func Available() bool {
	_, err := exec.LookPath("redis-server")
	return err == nil
}

// StartDurable starts redis-server with its data in dir (created 0700 when
// missing) and an append-only file fsynced every second, on a free
// loopback port, with a new random password (written to a config file in
// dir readable by the owner only, never on the command line). It returns
// once the server answers PING, after loading the data of earlier runs.
// Stop it with Stop, which lets it flush the AOF.
func StartDurable(dir string) (*Server, error) {
	// redis-server changes into --dir before it reads --include, so a
	// relative path (the default ./easel-data) must be made absolute.
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("redis data dir: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("redis data dir: %w", err)
	}
	lock, err := lockDir(dir)
	if err != nil {
		return nil, err
	}
	unlock := func() {
		if lock != nil {
			_ = lock.Close()
		}
	}
	port, err := freePort()
	if err != nil {
		unlock()
		return nil, err
	}
	secret := make([]byte, 24)
	if _, err := rand.Read(secret); err != nil {
		unlock()
		return nil, err
	}
	password := hex.EncodeToString(secret)
	conf := filepath.Join(dir, "redis-auth.conf")
	if err := os.WriteFile(conf, []byte("requirepass "+password+"\n"), 0o600); err != nil {
		unlock()
		return nil, fmt.Errorf("redis config: %w", err)
	}
	s, err := startOn(port, dir, password, []string{"--appendonly", "yes", "--appendfsync", "everysec",
		"--include", conf})
	if err != nil {
		unlock()
		return nil, err
	}
	s.lock = lock
	return s, nil
}

// Stop asks the server to shut down (SIGTERM: it flushes the AOF) and
// waits up to timeout before killing it.
func (s *Server) Stop(timeout time.Duration) error {
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	t := time.NewTimer(timeout)
	defer t.Stop()
	defer func() {
		if s.lock != nil {
			_ = s.lock.Close()
		}
	}()
	select {
	case <-s.done:
		return nil
	case <-t.C:
		s.Kill()
		return fmt.Errorf("redis-server did not stop within %s; killed", timeout)
	}
}

func startOn(port int, data, password string, extra []string) (*Server, error) {
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
	s := &Server{Addr: "127.0.0.1:" + strconv.Itoa(port), Dir: data, cmd: cmd, done: make(chan struct{}), password: password}
	s.URL = "redis://" + s.Addr
	if password != "" {
		s.URL = "redis://:" + password + "@" + s.Addr
	}
	go func() { _ = cmd.Wait(); close(s.done) }()
	client, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{s.Addr}, DisableCache: true,
		DisableRetry: true, Password: password})
	for i := 0; err != nil && i < 200; i++ {
		select {
		case <-s.done:
			return nil, fmt.Errorf("redis-server exited at start; see %s/redis.log", data)
		case <-time.After(25 * time.Millisecond): // startup wait for an external process
		}
		client, err = rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{s.Addr}, DisableCache: true,
			DisableRetry: true, Password: password})
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
