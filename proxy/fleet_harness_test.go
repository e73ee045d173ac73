package proxy_test

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net"
	"net/url"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Fleet end-to-end tests (issue 20): a real redis-server on a free
// loopback port and several real `airlock serve` replicas sharing it with
// --state (through AIRLOCK_STATE).

// redisProc is a real redis-server without persistence, killable and
// restartable on the same port to play an outage.
type redisProc struct {
	t    *testing.T
	dir  string
	port int

	mu  sync.Mutex // guards cmd
	cmd *exec.Cmd
}

func startRedisE2E(t *testing.T) *redisProc {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Skip("redis-server not installed (Debian package redis-server; .ci/run installs it): skipping the fleet tests")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &redisProc{t: t, dir: t.TempDir(), port: l.Addr().(*net.TCPAddr).Port}
	l.Close()
	r.start()
	t.Cleanup(r.kill)
	return r
}

func (r *redisProc) addr() string { return "127.0.0.1:" + strconv.Itoa(r.port) }
func (r *redisProc) url() string  { return "redis://" + r.addr() + "/0" }

func (r *redisProc) start() {
	r.t.Helper()
	cmd := exec.Command("redis-server", "--port", strconv.Itoa(r.port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", r.dir, "--protected-mode", "no", "--loglevel", "warning")
	if err := cmd.Start(); err != nil {
		r.t.Fatalf("start redis-server: %v", err)
	}
	r.mu.Lock()
	r.cmd = cmd
	r.mu.Unlock()
	c := redis.NewClient(&redis.Options{Addr: r.addr(), MaxRetries: -1})
	defer c.Close()
	waitFor(r.t, 10*time.Second, func() error { return c.Ping(context.Background()).Err() })
}

// kill stops redis-server at once (SIGKILL, like a crash).
func (r *redisProc) kill() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cmd != nil {
		_ = r.cmd.Process.Kill()
		_ = r.cmd.Wait()
		r.cmd = nil
	}
}

func (r *redisProc) client() *redis.Client {
	c := redis.NewClient(&redis.Options{Addr: r.addr()})
	r.t.Cleanup(func() { c.Close() })
	return c
}

// fleet is n replicas, each its own copy of one prepared home (same vault
// data key, CA and agents; own vault file, own audit file), sharing redis.
type fleet struct {
	redis    *redisProc
	replicas []*env
}

// newFleet copies base's home n times and points every copy at r. base is
// set up (secrets, agents, policy) and never served itself.
func newFleet(t *testing.T, base *env, r *redisProc, n int) *fleet {
	t.Helper()
	f := &fleet{redis: r}
	for i := range n {
		home := filepath.Join(t.TempDir(), "replica")
		if out, err := exec.Command("cp", "-a", base.home, home).CombinedOutput(); err != nil {
			t.Fatalf("copy home: %v %s", err, out)
		}
		e := &env{t: t, home: home, upCAFile: base.upCAFile}
		e.extraEnv = append(append([]string{}, base.extraEnv...),
			"AIRLOCK_STATE="+r.url(), "AIRLOCK_REPLICA_ID=r"+strconv.Itoa(i))
		f.replicas = append(f.replicas, e)
	}
	return f
}

func (f *fleet) serveAll(extra ...string) {
	var wg sync.WaitGroup
	for _, e := range f.replicas {
		wg.Go(func() { e.serve(extra...) })
	}
	wg.Wait()
}

func (f *fleet) stopAll() {
	for _, e := range f.replicas {
		e.stop()
	}
	for _, e := range f.replicas { // wait until each is gone (its port closes)
		addr := e.proxyAddr
		waitFor(f.redis.t, 30*time.Second, func() error {
			c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
			if err == nil {
				c.Close()
				return fmt.Errorf("replica %s still listening", addr)
			}
			return nil
		})
	}
}

// logs joins every replica's log.
func (f *fleet) logs() string {
	var b strings.Builder
	for _, e := range f.replicas {
		if e.logs != nil {
			b.WriteString(e.logs.String())
		}
	}
	return b.String()
}

// fleetSecretForms lists s raw, base64 (std, url, raw), hex and URL-encoded.
func fleetSecretForms(s string) []string {
	return []string{s, base64.StdEncoding.EncodeToString([]byte(s)), base64.RawStdEncoding.EncodeToString([]byte(s)),
		base64.URLEncoding.EncodeToString([]byte(s)), hex.EncodeToString([]byte(s)), url.QueryEscape(s), url.PathEscape(s)}
}

// redisDump is everything redis holds: every key's name, its DUMP and its
// values read by type.
func redisDump(t *testing.T, c *redis.Client) string {
	t.Helper()
	ctx := context.Background()
	keys, err := c.Keys(ctx, "*").Result()
	if err != nil {
		t.Fatalf("redis KEYS: %v", err)
	}
	var b strings.Builder
	for _, k := range keys {
		b.WriteString(k + "\n")
		d, _ := c.Dump(ctx, k).Result()
		b.WriteString(d + "\n")
		switch typ, _ := c.Type(ctx, k).Result(); typ {
		case "string":
			v, _ := c.Get(ctx, k).Result()
			b.WriteString(v)
		case "hash":
			m, _ := c.HGetAll(ctx, k).Result()
			b.WriteString(fmt.Sprint(m))
		case "zset":
			z, _ := c.ZRangeWithScores(ctx, k, 0, -1).Result()
			b.WriteString(fmt.Sprint(z))
		case "stream":
			s, _ := c.XRange(ctx, k, "-", "+").Result()
			b.WriteString(fmt.Sprint(s))
		case "list":
			l, _ := c.LRange(ctx, k, 0, -1).Result()
			b.WriteString(fmt.Sprint(l))
		case "set":
			s, _ := c.SMembers(ctx, k).Result()
			b.WriteString(fmt.Sprint(s))
		}
		b.WriteString("\n")
	}
	return b.String()
}
