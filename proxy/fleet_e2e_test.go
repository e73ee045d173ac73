package proxy_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

const fleetSecret = "sk-fleet-7d2e91c04b6a3f"

const fleetPolicy = `version: 1
egress:
  allow_networks: ["127.0.0.0/8"]
rules:
  - name: limited
    host: "{{UP}}"
    paths: ["/limited/**"]
    credential: test/bearer
    rate_limit: {{RATE}}
    burst: {{BURST}}
  - name: open
    host: "{{UP}}"
    paths: ["/x/**"]
    credential: test/bearer
`

// newFleetBase prepares one home (secret, agent "bot", policy) for
// newFleet.
func newFleetBase(t *testing.T, up *upstream, rate string, burst int) (*env, *url.URL) {
	t.Helper()
	base := newEnv(t)
	base.upCAFile = up.caFile(t)
	base.setSecret("test/bearer", fleetSecret)
	agent := base.addAgent("bot")
	pol := strings.NewReplacer("{{UP}}", up.hostPort(), "{{RATE}}", rate, "{{BURST}}", fmt.Sprint(burst)).Replace(fleetPolicy)
	base.writePolicy(pol)
	return base, agent
}

// statusOf reads /v1/status of replica e.
func statusOf(t *testing.T, e *env) map[string]any {
	t.Helper()
	resp, err := e.admin("GET", "/v1/status") // behind the admin token
	if err != nil {
		t.Fatalf("status: %v", err)
	}
	defer resp.Body.Close()
	var st map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatalf("status: %v", err)
	}
	return st
}

func fleetIDs(st map[string]any) []string {
	f, _ := st["fleet"].(map[string]any)
	rs, _ := f["replicas"].([]any)
	var ids []string
	for _, r := range rs {
		if m, ok := r.(map[string]any); ok {
			ids = append(ids, fmt.Sprint(m["id"]))
		}
	}
	return ids
}

// TestFleetRateLimitE2E hammers one 60/m burst-5 rule through three
// replicas: the fleet admits what one bucket admits (burst + one a
// second), not three times that, and every refusal carries the shared
// bucket's Retry-After. /v1/status lists the fleet.
func TestFleetRateLimitE2E(t *testing.T) {
	r := startRedisE2E(t)
	up := newUpstream(t, nil)
	base, agent := newFleetBase(t, up, "60/m", 5)
	f := newFleet(t, base, r, 3)
	f.serveAll()
	waitFor(t, 10*time.Second, func() error {
		if ids := fleetIDs(statusOf(t, f.replicas[0])); !slices.Equal(ids, []string{"r0", "r1", "r2"}) {
			return fmt.Errorf("fleet lists %v, want r0 r1 r2", ids)
		}
		return nil
	})

	var admitted, refused atomic.Int32
	var mu sync.Mutex // guards badRefusals, firstOK
	badRefusals := []string{}
	var firstOK time.Time
	const hammer = 4 * time.Second
	start := time.Now()
	var wg sync.WaitGroup
	for _, e := range f.replicas {
		c := e.client(agent)
		for range 3 {
			wg.Go(func() {
				for time.Since(start) < hammer {
					status, hdr, body := agentCall(t, c, "GET", up.URL+"/limited/a", "")
					switch status {
					case 200:
						if admitted.Add(1) == 1 {
							mu.Lock()
							firstOK = time.Now()
							mu.Unlock()
						}
					case http.StatusTooManyRequests:
						refused.Add(1)
						if hdr.Get("Retry-After") != "1" || hdr.Get("X-Airlock-Error") != "RATE_LIMITED" {
							mu.Lock()
							badRefusals = append(badRefusals, fmt.Sprintf("Retry-After %q code %q", hdr.Get("Retry-After"), hdr.Get("X-Airlock-Error")))
							mu.Unlock()
						}
					default:
						t.Errorf("status %d: %s", status, body)
						return
					}
				}
			})
		}
	}
	wg.Wait()
	// One GCRA bucket of 1/s, burst 5, admits 5 + floor(t) over t seconds
	// from its first admission (+-1 at the boundaries: the last requests
	// were judged up to one round trip before they returned); three local
	// buckets would admit at least 15.
	elapsed := time.Since(firstOK)
	most := 5 + int(math.Floor(elapsed.Seconds())) + 1
	least := 5 + int(math.Floor(elapsed.Seconds())) - 1
	got := int(admitted.Load())
	t.Logf("%v: %d admitted, %d refused through 3 replicas (bound %d..%d)", elapsed.Round(time.Millisecond), got, refused.Load(), least, most)
	if got > most || got < least {
		t.Errorf("admitted %d in %v, want %d..%d", got, elapsed, least, most)
	}
	if refused.Load() == 0 {
		t.Error("nothing refused: the hammer did not reach the limit")
	}
	if len(badRefusals) > 0 {
		t.Errorf("%d refusals without Retry-After 1 / RATE_LIMITED, e.g. %s", len(badRefusals), badRefusals[0])
	}
	assertAbsent(t, "replica logs", f.logs(), fleetSecretForms(fleetSecret))
	assertAbsent(t, "redis", redisDump(t, r.client()), fleetSecretForms(fleetSecret))
}

// TestFleetRedisOutageE2E kills Redis under three replicas: the rate limit
// fails open (default), which is logged, counted and shown in /readyz
// detail while the replicas stay ready; Redis back, the shared limit holds
// again without restarting any replica.
func TestFleetRedisOutageE2E(t *testing.T) {
	r := startRedisE2E(t)
	up := newUpstream(t, nil)
	base, agent := newFleetBase(t, up, "6/m", 2) // one every 10 s
	f := newFleet(t, base, r, 3)
	f.serveAll()
	exhaust := func(phase string) {
		t.Helper()
		for i, e := range []*env{f.replicas[0], f.replicas[1]} {
			if status, _, body := agentCall(t, e.client(agent), "GET", up.URL+"/limited/a", ""); status != 200 {
				t.Fatalf("%s: request %d: %d %s", phase, i, status, body)
			}
		}
		status, hdr, _ := agentCall(t, f.replicas[2].client(agent), "GET", up.URL+"/limited/a", "")
		if status != http.StatusTooManyRequests || hdr.Get("Retry-After") == "" {
			t.Fatalf("%s: third request through r2: %d Retry-After %q, want 429 from the shared bucket", phase, status, hdr.Get("Retry-After"))
		}
	}
	exhaust("before the outage")

	r.kill()
	for i, e := range f.replicas {
		for j := range 2 {
			if status, _, body := agentCall(t, e.client(agent), "GET", up.URL+"/limited/a", ""); status != 200 {
				t.Errorf("redis down, r%d request %d: %d %s (want fail_open)", i, j, status, body)
			}
		}
	}
	for i, e := range f.replicas {
		resp, err := http.Get("http://" + e.adminAddr + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(body), "degraded") || !strings.Contains(string(body), `"ok":false`) {
			t.Errorf("r%d /readyz with redis down: %d %s", i, resp.StatusCode, body)
		}
		if m := grepLines(adminGet(t, e, "/metrics"), "airlock_state_errors_total{"); !strings.Contains(m, `op="ratelimit`) {
			t.Errorf("r%d metrics do not count the rate-limit fallback:\n%s", i, m)
		}
	}
	if !strings.Contains(f.logs(), "rate limit state unavailable") {
		t.Error("the fail-open fallback is not logged")
	}

	r.start() // empty: no persistence
	for i, e := range f.replicas {
		waitFor(t, 15*time.Second, func() error {
			if b := adminGet(t, e, "/readyz"); strings.Contains(b, "degraded") {
				return fmt.Errorf("r%d still degraded: %s", i, b)
			}
			return nil
		})
	}
	exhaust("after redis came back")
}

// TestFleetReplicaKilledMidStreamE2E streams through three replicas and
// kills one (SIGKILL) mid-stream: the other two streams arrive whole.
func TestFleetReplicaKilledMidStreamE2E(t *testing.T) {
	r := startRedisE2E(t)
	const chunks = 8
	up := newUpstream(t, http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		for i := range chunks {
			fmt.Fprintf(w, "data: %d\n\n", i)
			w.(http.Flusher).Flush()
			select {
			case <-req.Context().Done():
				return
			case <-time.After(150 * time.Millisecond):
			}
		}
	}))
	base, agent := newFleetBase(t, up, "60/m", 5)
	f := newFleet(t, base, r, 3)
	f.serveAll()
	type result struct {
		events int
		err    error
	}
	results := make([]chan result, 3)
	firsts := make(chan struct{}, 3)
	for i, e := range f.replicas {
		results[i] = make(chan result, 1)
		c := e.client(agent)
		go func() {
			resp, err := c.Get(up.URL + "/x/stream")
			if err != nil {
				results[i] <- result{err: err}
				firsts <- struct{}{}
				return
			}
			defer resp.Body.Close()
			sc := bufio.NewScanner(resp.Body)
			n, first := 0, true
			for sc.Scan() {
				if strings.HasPrefix(sc.Text(), "data: ") {
					n++
					if first {
						first = false
						firsts <- struct{}{}
					}
				}
			}
			results[i] <- result{events: n, err: sc.Err()}
		}()
	}
	for range 3 {
		<-firsts
	}
	if err := f.replicas[0].cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	f.replicas[0].cmd = nil
	for i := 1; i < 3; i++ {
		if res := <-results[i]; res.events != chunks || res.err != nil {
			t.Errorf("stream through r%d: %d of %d events, err %v", i, res.events, chunks, res.err)
		}
	}
	if res := <-results[0]; res.events == chunks {
		t.Errorf("the stream through the killed replica arrived whole: the kill came too late to test anything")
	}
}
