package proxy_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestFleetThroughput measures (it asserts nothing beyond every request
// succeeding) what fleet mode costs: a rate-limited rule at concurrency 50
// through one replica with the local store, one with --state redis://,
// and three replicas sharing Redis (aggregate). It builds a non-race
// binary and runs only with AIRLOCK_FLEET_BENCH=1:
//
//	AIRLOCK_FLEET_BENCH=1 taskset -c 0,1 go test ./proxy -run TestFleetThroughput -v
func TestFleetThroughput(t *testing.T) {
	if os.Getenv("AIRLOCK_FLEET_BENCH") != "1" {
		t.Skip("a measurement, not a test: set AIRLOCK_FLEET_BENCH=1 (and pin with taskset)")
	}
	bin := filepath.Join(t.TempDir(), "airlock")
	if out, err := exec.Command("go", "build", "-o", bin, "../cmd/airlock").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	saved := airlockBin
	airlockBin = bin // this test runs alone (see above)
	defer func() { airlockBin = saved }()
	conc, _ := strconv.Atoi(envOrDefault("AIRLOCK_FLEET_BENCH_C", "50"))
	dur, _ := time.ParseDuration(envOrDefault("AIRLOCK_FLEET_BENCH_D", "8s"))

	r := startRedisE2E(t)
	up := newUpstream(t, nil)
	base, agent := newFleetBase(t, up, "1000000/s", 1000000)
	rc := r.client()
	redisCalls := func() int64 {
		info, _ := rc.Info(context.Background(), "stats").Result()
		for _, l := range strings.Split(info, "\n") {
			if v, ok := strings.CutPrefix(strings.TrimSpace(l), "total_commands_processed:"); ok {
				n, _ := strconv.ParseInt(v, 10, 64)
				return n
			}
		}
		return 0
	}
	measure := func(name string, replicas []*env) float64 {
		var n, refused atomic.Int64
		var wg sync.WaitGroup
		clients := make([]func() int, conc)
		for i := range clients {
			c := replicas[i%len(replicas)].client(agent)
			clients[i] = func() int { s, _, _ := agentCall(t, c, "GET", up.URL+"/limited/a", ""); return s }
		}
		for _, call := range clients { // warm: connections, leaf certs
			if s := call(); s != 200 && s != http.StatusTooManyRequests {
				t.Fatalf("%s: warm-up %d", name, s)
			}
		}
		calls0 := redisCalls()
		stop := time.Now().Add(dur)
		start := time.Now()
		for _, call := range clients {
			wg.Go(func() {
				for time.Now().Before(stop) {
					switch s := call(); s {
					case 200:
					case http.StatusTooManyRequests:
						refused.Add(1)
					default:
						t.Errorf("%s: %d", name, s)
						return
					}
					n.Add(1)
				}
			})
		}
		wg.Wait()
		rps := float64(n.Load()) / time.Since(start).Seconds()
		t.Logf("%-38s c=%d %6.0f req/s, %.3f redis commands (script calls included) per request, %d refused", name, conc, rps,
			float64(redisCalls()-calls0)/float64(n.Load()), refused.Load())
		return rps
	}
	local := newFleet(t, base, r, 1).replicas[0]
	local.extraEnv = []string{"AIRLOCK_REPLICA_ID=local"} // no AIRLOCK_STATE: local store
	local.serve()
	lrps := measure("1 replica, local store", []*env{local})
	local.stop()
	one := newFleet(t, base, r, 1)
	one.serveAll()
	orps := measure("1 replica, --state redis", one.replicas)
	one.stopAll()
	three := newFleet(t, base, r, 3)
	three.serveAll()
	trps := measure("3 replicas, --state redis (aggregate)", three.replicas)
	three.stopAll()
	// burst 39: never leased (leaseChunk 1), every request one batched
	// script call — what leasing saves. A batch of more than 39 requests
	// judged at one Redis clock reading refuses the rest: 429s count as
	// done (they took the same path).
	base2, _ := newFleetBase(t, up, "1000000/s", 39)
	exact := newFleet(t, base, r, 1) // base's agent and CA, base2's policy
	exact.replicas[0].writePolicy(readPolicy(t, base2))
	exact.serveAll()
	erps := measure("1 replica, --state redis, no leasing", exact.replicas)
	t.Logf("redis vs local: %.1f %% of local throughput (cost %.1f %%); without leasing %.1f %%; 3 replicas / 1: %.2f",
		100*orps/lrps, 100*(1-orps/lrps), 100*erps/lrps, trps/orps)
	fmt.Fprintln(os.Stderr) // keep -v output readable
}

func envOrDefault(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

func readPolicy(t *testing.T, e *env) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(e.home, "policy.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
