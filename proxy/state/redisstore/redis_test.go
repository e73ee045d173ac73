package redisstore

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/airlock/airlock/proxy/testkit"
)

// redisServer is a real redis-server on a free loopback port, in a temp
// dir, without persistence, killed at cleanup. It can be killed and
// started again on the same port to play an outage.
type redisServer struct {
	tb   testing.TB
	dir  string
	port int

	mu  sync.Mutex // guards cmd
	cmd *exec.Cmd
}

func startRedis(tb testing.TB) *redisServer {
	tb.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		tb.Skip("redis-server not installed (Debian package redis-server; .ci/run installs it): skipping the real-Redis tests")
	}
	r := &redisServer{tb: tb, dir: tb.TempDir()}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	r.port = l.Addr().(*net.TCPAddr).Port
	l.Close()
	r.start()
	tb.Cleanup(r.kill)
	return r
}

func (r *redisServer) url() string { return "redis://127.0.0.1:" + strconv.Itoa(r.port) + "/0" }

// start runs redis-server and waits until it answers PING.
func (r *redisServer) start() {
	r.tb.Helper()
	cmd := exec.Command("redis-server", "--port", strconv.Itoa(r.port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", r.dir, "--protected-mode", "no", "--loglevel", "warning")
	if err := cmd.Start(); err != nil {
		r.tb.Fatalf("start redis-server: %v", err)
	}
	r.mu.Lock()
	r.cmd = cmd
	r.mu.Unlock()
	c := redis.NewClient(&redis.Options{Addr: "127.0.0.1:" + strconv.Itoa(r.port), MaxRetries: -1})
	defer c.Close()
	deadline := time.Now().Add(10 * time.Second)
	for c.Ping(context.Background()).Err() != nil {
		if time.Now().After(deadline) {
			r.tb.Fatalf("redis-server on port %d did not answer within 10s", r.port)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// kill stops redis-server at once (SIGKILL: no shutdown, like a crash).
func (r *redisServer) kill() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cmd != nil {
		_ = r.cmd.Process.Kill()
		_ = r.cmd.Wait()
		r.cmd = nil
	}
}

// client is a plain go-redis client for inspecting what the store wrote.
func (r *redisServer) client() *redis.Client {
	c := redis.NewClient(&redis.Options{Addr: "127.0.0.1:" + strconv.Itoa(r.port)})
	r.tb.Cleanup(func() { c.Close() })
	return c
}

var testTokenKey = []byte("0123456789abcdef0123456789abcdef")

// newStores opens n stores (n "replicas", each its own pool) on r.
func newStores(tb testing.TB, r *redisServer, n int, opts Options) []*Store {
	tb.Helper()
	out := make([]*Store, n)
	for i := range out {
		o := opts
		o.ReplicaID = fmt.Sprintf("replica-%d", i)
		if o.TokenKey == nil {
			o.TokenKey = testTokenKey
		}
		if o.Registerer == nil {
			o.Registerer = prometheus.NewRegistry()
		}
		s, err := Open(context.Background(), r.url(), o)
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() { s.Close() })
		out[i] = s
	}
	return out
}

// waitFor is testkit.WaitFor with what the test waits for in the message.
func waitFor(tb testing.TB, d time.Duration, what string, fn func() error) {
	tb.Helper()
	testkit.WaitFor(tb, d, func() error {
		if err := fn(); err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		return nil
	})
}
