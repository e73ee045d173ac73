package proxy

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/airlock/airlock/proxy/approval"
	"github.com/airlock/airlock/vault"
)

// countingSource counts credential reads (the Source seam is the pipeline's
// only way to a credential).
type countingSource struct {
	s     *Server
	reads atomic.Int64
}

func (c *countingSource) Fetch(ctx context.Context, path string) (*vault.Credential, error) {
	c.reads.Add(1)
	return VaultSource{c.s}.Fetch(ctx, path)
}

// approvalRig is an in-process server with an approval queue, a counting
// source and a TLS upstream that counts hits.
type approvalRig struct {
	s      *Server
	q      *approval.Queue
	src    *countingSource
	hits   atomic.Int64
	up     *httptest.Server
	client *http.Client
	addr   string
}

func newApprovalRig(t *testing.T, policyTail string, timeout time.Duration) *approvalRig {
	t.Helper()
	rig := &approvalRig{}
	rig.up = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rig.hits.Add(1)
		fmt.Fprintf(w, "auth=%d", len(r.Header.Get("Authorization")))
	}))
	t.Cleanup(rig.up.Close)
	host := strings.TrimPrefix(rig.up.URL, "https://")
	upRoots := x509.NewCertPool()
	upRoots.AddCert(rig.up.Certificate())
	rig.src = &countingSource{}
	s, l, ca := inprocServer(t, "held/key", inprocSecret, "tok", fmt.Sprintf("version: 1\negress:\n  allow_networks: [\"127.0.0.0/8\"]\n%srules:\n"+
		"  - name: held\n    host: %q\n    credential: held/key\n    approval: required\n", policyTail, host),
		Config{Log: zap.NewNop(), UpstreamRoots: upRoots, Source: rig.src})
	rig.src.s = s
	store, err := approval.NewLocalStore(filepath.Join(t.TempDir(), "approvals.json"))
	if err != nil {
		t.Fatal(err)
	}
	q, err := approval.New(approval.Config{Store: store, Timeout: timeout, OnOutcome: s.ApprovalOutcome})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(q.Close)
	s.SetApprovals(q)
	rig.s, rig.q, rig.addr = s, q, l.Addr().String()
	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)
	rig.client = benchClient(roots, http.ProxyURL(mustURL(t, "http://bot:tok@"+rig.addr)), 4)
	rig.client.Timeout = 20 * time.Second
	return rig
}

// pendingOne waits for exactly one pending entry and returns it.
func (rig *approvalRig) pendingOne(t *testing.T) approval.Pending {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ps, err := rig.q.Pending(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if len(ps) == 1 {
			return ps[0]
		}
		if time.Now().After(deadline) {
			t.Fatalf("pending entries: %d", len(ps))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

type result struct {
	status int
	code   string
	body   string
	err    error
}

func (rig *approvalRig) get(url string) <-chan result {
	ch := make(chan result, 1)
	go func() {
		resp, err := rig.client.Get(url)
		if err != nil {
			ch <- result{err: err}
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		ch <- result{status: resp.StatusCode, code: resp.Header.Get("X-Airlock-Error"), body: string(b)}
	}()
	return ch
}

// TestApprovalHoldsBeforeCredential: a held request reads no credential
// and reaches no upstream until approved; timeout and deny refuse it with
// the approval codes and still read nothing.
func TestApprovalHoldsBeforeCredential(t *testing.T) {
	cases := map[string]struct {
		decide     func(q *approval.Queue, id string)
		wantStatus int
		wantCode   string
		wantReads  int64
	}{
		"approve": {func(q *approval.Queue, id string) {
			_, _ = q.Decide(context.Background(), id, approval.Verdict{Approve: true, Remember: "once", Approver: "test"})
		}, 200, "", 1},
		"deny": {func(q *approval.Queue, id string) {
			_, _ = q.Decide(context.Background(), id, approval.Verdict{Approver: "test", Reason: "no"})
		}, 403, approval.CodeDenied, 0},
		"timeout": {nil, 403, approval.CodeTimeout, 0},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			rig := newApprovalRig(t, "", 700*time.Millisecond)
			if tc.decide != nil {
				rig.q.Reconfigure(30*time.Second, "", nil)
			}
			res := rig.get(rig.up.URL + "/v1/x")
			p := rig.pendingOne(t)
			if n := rig.src.reads.Load(); n != 0 {
				t.Fatalf("credential read %d times while held", n)
			}
			if rig.hits.Load() != 0 {
				t.Fatal("upstream reached while held")
			}
			if tc.decide != nil {
				tc.decide(rig.q, p.ID)
			}
			r := <-res
			if r.err != nil {
				t.Fatal(r.err)
			}
			if r.status != tc.wantStatus || r.code != tc.wantCode {
				t.Fatalf("got %d %q %s", r.status, r.code, r.body)
			}
			if n := rig.src.reads.Load(); n != tc.wantReads {
				t.Fatalf("credential reads %d, want %d", n, tc.wantReads)
			}
			if tc.wantCode != "" {
				var body map[string]any
				if json.Unmarshal([]byte(r.body), &body) != nil || !strings.Contains(r.body, p.ID) {
					t.Fatalf("refusal is not JSON naming %s: %s", p.ID, r.body)
				}
				if rig.hits.Load() != 0 {
					t.Fatal("refused request reached the upstream")
				}
			} else if r.body != fmt.Sprintf("auth=%d", len("Bearer "+inprocSecret)) {
				t.Fatalf("upstream saw %q", r.body)
			}
		})
	}
}

// TestApprovalAgentGivesUp: the agent hanging up cancels the entry.
func TestApprovalAgentGivesUp(t *testing.T) {
	rig := newApprovalRig(t, "", 30*time.Second)
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", rig.up.URL+"/v1/x", nil)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if resp, err := rig.client.Do(req); err == nil {
			resp.Body.Close()
		}
	}()
	rig.pendingOne(t)
	cancel()
	<-done
	waitUntil(t, 5*time.Second, func() bool {
		ps, _ := rig.q.Pending(context.Background())
		return len(ps) == 0
	})
	if rig.src.reads.Load() != 0 || rig.hits.Load() != 0 {
		t.Fatal("a cancelled hold read the credential or reached the upstream")
	}
}

// TestApprovalConnectAsk: egress.unmatched: ask holds the CONNECT of a host
// no rule names (Method CONNECT); approve tunnels it, deny refuses it 403.
func TestApprovalConnectAsk(t *testing.T) {
	rig := newApprovalRig(t, "  unmatched: ask\n", 30*time.Second)
	other := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "other") }))
	t.Cleanup(other.Close)
	target := strings.TrimPrefix(other.URL, "https://")
	connect := func() <-chan string {
		ch := make(chan string, 1)
		go func() {
			c, err := net.Dial("tcp", rig.addr)
			if err != nil {
				ch <- err.Error()
				return
			}
			defer c.Close()
			fmt.Fprintf(c, "CONNECT %s HTTP/1.1\r\nHost: %s\r\nProxy-Authorization: Basic Ym90OnRvaw==\r\n\r\n", target, target)
			line := make([]byte, 12)
			_, _ = io.ReadFull(c, line)
			ch <- string(line)
		}()
		return ch
	}
	res := connect()
	p := rig.pendingOne(t)
	if p.Method != http.MethodConnect || !p.Unmatched || p.Path != "" {
		t.Fatalf("pending %+v", p)
	}
	if _, err := rig.q.Decide(context.Background(), p.ID, approval.Verdict{Approve: true, Remember: "once", Approver: "t"}); err != nil {
		t.Fatal(err)
	}
	if got := <-res; got != "HTTP/1.1 200" {
		t.Fatalf("approved CONNECT answered %q", got)
	}
	// Denied: the CONNECT completes and the request inside gets the JSON
	// refusal (an HTTPS client shows only the status line of a CONNECT).
	c := rig.client
	c.Transport.(*http.Transport).TLSClientConfig.ServerName = ""
	res2 := rig.get("https://" + target + "/inside")
	p = rig.pendingOne(t)
	if _, err := rig.q.Decide(context.Background(), p.ID, approval.Verdict{Approver: "t", Reason: "no"}); err != nil {
		t.Fatal(err)
	}
	r := <-res2
	if r.err != nil || r.status != http.StatusForbidden || r.code != approval.CodeDenied || !strings.Contains(r.body, p.ID) {
		t.Fatalf("denied CONNECT: request inside answered %d %q %s %v", r.status, r.code, r.body, r.err)
	}
	var doc map[string]any
	if err := json.Unmarshal([]byte(r.body), &doc); err != nil {
		t.Fatalf("refusal inside the tunnel is not JSON: %s", r.body)
	}
	// The tunnel ended with that answer: a retry is a new CONNECT, held again.
	res3 := rig.get("https://" + target + "/retry")
	p3 := rig.pendingOne(t)
	if p3.ID == p.ID {
		t.Fatal("retry reused the refused entry")
	}
	_, _ = rig.q.Decide(context.Background(), p3.ID, approval.Verdict{Approver: "t"})
	<-res3
}

func waitUntil(t *testing.T, d time.Duration, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("not true after %v", d)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestApprovalConnectGivesUp: an agent that closes its connection while
// its CONNECT is held cancels the entry.
func TestApprovalConnectGivesUp(t *testing.T) {
	rig := newApprovalRig(t, "  unmatched: ask\n", 30*time.Second)
	c, err := net.Dial("tcp", rig.addr)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(c, "CONNECT localhost:9 HTTP/1.1\r\nHost: localhost:9\r\nProxy-Authorization: Basic Ym90OnRvaw==\r\n\r\n")
	p := rig.pendingOne(t)
	if p.Host != "localhost:9" || p.Method != http.MethodConnect {
		t.Fatalf("pending %+v", p)
	}
	c.Close()
	waitUntil(t, 5*time.Second, func() bool {
		ps, _ := rig.q.Pending(context.Background())
		return len(ps) == 0
	})
}
