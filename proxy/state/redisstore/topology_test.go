package redisstore

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// freePort is a loopback port nothing listens on (for a moment).
func freePort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// runRedis starts redis-server with args, killed at cleanup.
func runRedis(t *testing.T, args ...string) {
	cmd := exec.Command("redis-server", args...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
}

// exerciseAll runs every concern once through stores opened on url.
func exerciseAll(t *testing.T, url string) {
	t.Helper()
	ctx := context.Background()
	var s [2]*Store
	for i := range s {
		st, err := Open(ctx, url, Options{ReplicaID: fmt.Sprintf("r%d", i), TokenKey: testTokenKey})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		s[i] = st
	}
	if ok, _, err := s[0].Allow(ctx, "bot/rule", 1, 1); !ok || err != nil {
		t.Fatalf("allow: %v %v", ok, err)
	}
	if ok, _, err := s[1].Allow(ctx, "bot/rule", 1, 1); ok || err != nil {
		t.Fatalf("second allow: %v %v, want refused", ok, err)
	}
	res, err := s[0].Reserve(ctx, "budget", month, 5, 5)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s[1].Reserve(ctx, "budget", month, 1, 5); !errors.Is(err, ErrExceeded) {
		t.Fatalf("over budget: %v", err)
	}
	if _, err := s[1].Commit(ctx, res, 3); err != nil {
		t.Fatal(err)
	}
	id, _, err := s[0].Pend(ctx, "bot/rule", []byte("{}"), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	go func() { time.Sleep(50 * time.Millisecond); _ = s[1].Decide(ctx, id, Decision{Approved: true}) }()
	wctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if d, err := s[0].Wait(wctx, id); err != nil || !d.Approved {
		t.Fatalf("wait: %+v %v", d, err)
	}
	tok, err := s[1].Token(ctx, "cred", time.Minute, func(context.Context, Token) (Token, error) {
		return Token{AccessToken: "at", RefreshToken: "rt", Expiry: time.Now().Add(time.Hour)}, nil
	})
	if err != nil || tok.AccessToken != "at" {
		t.Fatalf("token: %v %v", tok, err)
	}
	rctx, rcancel := context.WithCancel(ctx)
	defer rcancel()
	evs := s[0].Revocations(rctx)
	if err := s[1].PublishRevocation(ctx, Revocation{Kind: AgentRemoved, Agent: "bot"}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-evs:
	case <-time.After(2 * time.Second):
		t.Fatal("no revocation")
	}
	if err := s[0].Beat(ctx, Replica{}, time.Minute); err != nil {
		t.Fatal(err)
	}
	if l, err := s[1].Replicas(ctx); err != nil || len(l) != 1 {
		t.Fatalf("replicas: %v %v", l, err)
	}
}

// TestSentinelURL: redis+sentinel:// finds the primary through a real
// sentinel and every concern works through it.
func TestSentinelURL(t *testing.T) {
	r := startRedis(t)
	port := freePort(t)
	conf := filepath.Join(t.TempDir(), "sentinel.conf")
	body := fmt.Sprintf("port %d\nbind 127.0.0.1\nsentinel monitor mymaster 127.0.0.1 %d 1\n", port, r.port)
	if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	runRedis(t, conf, "--sentinel")
	c := redis.NewSentinelClient(&redis.Options{Addr: "127.0.0.1:" + strconv.Itoa(port)})
	defer c.Close()
	waitFor(t, 10*time.Second, "sentinel knows the primary", func() error {
		return c.GetMasterAddrByName(context.Background(), "mymaster").Err()
	})
	exerciseAll(t, fmt.Sprintf("redis+sentinel://127.0.0.1:%d/0?master_name=mymaster", port))
}

// TestClusterURL: on a real 3-node Redis Cluster every script finds its
// keys in one slot (hash tags) and every concern works.
func TestClusterURL(t *testing.T) {
	startRedis(t) // skips when redis-server is absent
	if _, err := exec.LookPath("redis-cli"); err != nil {
		t.Skip("redis-cli not installed: cannot create a cluster")
	}
	var addrs []string
	for range 3 {
		p := freePort(t)
		dir := t.TempDir()
		runRedis(t, "--port", strconv.Itoa(p), "--bind", "127.0.0.1", "--cluster-enabled", "yes",
			"--cluster-config-file", filepath.Join(dir, "nodes.conf"), "--dir", dir,
			"--save", "", "--appendonly", "no", "--protected-mode", "no")
		addrs = append(addrs, "127.0.0.1:"+strconv.Itoa(p))
	}
	for _, a := range addrs {
		c := redis.NewClient(&redis.Options{Addr: a})
		waitFor(t, 10*time.Second, "cluster node up", func() error { return c.Ping(context.Background()).Err() })
		c.Close()
	}
	out, err := exec.Command("redis-cli", append([]string{"--cluster", "create"}, append(addrs, "--cluster-yes")...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("redis-cli --cluster create: %v\n%s", err, out)
	}
	cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs})
	defer cc.Close()
	waitFor(t, 20*time.Second, "cluster state ok", func() error {
		for _, a := range addrs {
			c := redis.NewClient(&redis.Options{Addr: a})
			info, err := c.ClusterInfo(context.Background()).Result()
			c.Close()
			if err != nil || !strings.Contains(info, "cluster_state:ok") {
				return errNotYet
			}
		}
		return cc.ForEachShard(context.Background(), func(ctx context.Context, c *redis.Client) error { return c.Ping(ctx).Err() })
	})
	exerciseAll(t, "redis+cluster://"+addrs[0]+"?addr="+addrs[1]+"&addr="+addrs[2])
}
