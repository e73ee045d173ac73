package proxy_test

import (
	"bufio"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestFleetRevocationE2E: `agent rm` applied to one replica's vault ends
// the agent's open streams on the other two replicas (whose vault copies
// did not change: only the fleet's revocation stream tells them) within
// 1 s.
func TestFleetRevocationE2E(t *testing.T) {
	r := startRedisE2E(t)
	up := newUpstream(t, http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		for i := 0; ; i++ {
			fmt.Fprintf(w, "data: %d\n\n", i)
			w.(http.Flusher).Flush()
			select {
			case <-req.Context().Done():
				return
			case <-time.After(50 * time.Millisecond):
			}
		}
	}))
	base, agent := newFleetBase(t, up, "60/m", 5)
	f := newFleet(t, base, r, 3)
	f.serveAll()
	ended := make([]chan time.Time, 3)
	started := make(chan struct{}, 3)
	for i := 1; i < 3; i++ {
		ended[i] = make(chan time.Time, 1)
		c := f.replicas[i].client(agent)
		c.Timeout = 0
		go func() {
			resp, err := c.Get(up.URL + "/x/stream")
			if err != nil {
				t.Errorf("r%d stream: %v", i, err)
				started <- struct{}{}
				ended[i] <- time.Now()
				return
			}
			defer resp.Body.Close()
			sc := bufio.NewScanner(resp.Body)
			first := true
			for sc.Scan() {
				if first && strings.HasPrefix(sc.Text(), "data: ") {
					first = false
					started <- struct{}{}
				}
			}
			ended[i] <- time.Now()
		}()
	}
	for range 2 {
		<-started
	}
	f.replicas[0].mustRun("", "agent", "rm", "bot")
	t0 := time.Now()
	for i := 1; i < 3; i++ {
		select {
		case at := <-ended[i]:
			took := at.Sub(t0)
			t.Logf("r%d: stream ended %v after agent rm on r0", i, took)
			if took > revokeWithin {
				t.Errorf("r%d: stream ended %v after agent rm on r0, want within %v", i, took, revokeWithin)
			}
		case <-time.After(revokeWithin + 3*time.Second):
			t.Fatalf("r%d: stream still open %v after agent rm on r0\nr0 logs:\n%s", i, time.Since(t0), grepLines(f.replicas[0].logs.String(), "revok"))
		}
	}
	waitFor(t, 2*time.Second, func() error {
		for i := 1; i < 3; i++ {
			if !strings.Contains(f.replicas[i].logs.String(), "agent revoked by another replica") {
				return fmt.Errorf("r%d does not log the revocation it heard", i)
			}
		}
		return nil
	})
}
