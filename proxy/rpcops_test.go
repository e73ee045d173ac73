package proxy

import (
	"bufio"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/airlock/airlock/certs"
	"github.com/airlock/airlock/policy"
	"github.com/airlock/airlock/proxy/audit"
	"github.com/airlock/airlock/proxy/rpc"
	"github.com/airlock/airlock/proxy/rpc/rpctest"
	"github.com/airlock/airlock/vault"
)

const rpcOpsSecret = "sk-rpcops-7d1c0b9a8f6e5d4c"

var rpcOpsKey = []byte("rpcops audit key of 32 bytes....")

// rpcEnv is an in-process Server with the RPC door and the audit file.
type rpcEnv struct {
	s     *Server
	addr  string
	audit string
	key   ed25519.PrivateKey
	token string
	alog  *audit.Log
}

func newRPCEnv(t *testing.T, mode string) *rpcEnv {
	t.Helper()
	dir := t.TempDir()
	v, err := vault.Create(filepath.Join(dir, "vault"), []byte("pw"), vault.CreateOptions{KDF: vault.FastKDF})
	if err != nil {
		t.Fatal(err)
	}
	seed := make([]byte, ed25519.SeedSize)
	seed[0] = 7
	agent, _, err := vault.NewAgent("bot", seed, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	err = v.Update(func(d *vault.Data) error {
		d.SetCredential(&vault.Credential{Path: "api/key", Value: vault.NewSecret([]byte(rpcOpsSecret))})
		d.SetCredential(&vault.Credential{Path: "api/free", Value: vault.NewSecret([]byte(rpcOpsSecret + "-free"))})
		d.SetAgent(agent)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	pol, err := policy.Parse("rpcops.yaml", []byte(`version: 1
egress:
  mode: `+mode+`
  allow_networks: ["127.0.0.0/8"]
rules:
  - name: bound
    agents: [bot]
    host: "127.0.0.1"
    paths: ["/v1/**"]
    credential: api/key
    rate_limit: 2/h
grants:
  - agents: [bot]
    credentials: ["api/*"]
    actions: [retrieve, sign, encrypt, decrypt, http_header, use]
`))
	if err != nil {
		t.Fatal(err)
	}
	ca, err := certs.NewCA("rpcops", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	alog, err := audit.Open(audit.Options{Path: filepath.Join(dir, "audit.log"), Key: rpcOpsKey})
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(Config{Vault: v, Policy: pol, Certs: certs.NewCache(ca, 10), Log: zap.NewNop(), AuditLog: alog,
		RPC: func(s *Server) ConnHandler {
			return rpc.New(s, rpc.Options{Registerer: prometheus.NewRegistry()}).ServeConn
		}})
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = s.Serve(l) }()
	t.Cleanup(func() { shutdownQuietly(s); _ = alog.Close() })
	return &rpcEnv{s: s, addr: l.Addr().String(), audit: filepath.Join(dir, "audit.log"),
		key: ed25519.NewKeyFromSeed(seed), token: vault.ProxyToken(seed), alog: alog}
}

// lines closes the audit log (flushing it), verifies the chain and returns
// the lines.
func (e *rpcEnv) lines(t *testing.T) []audit.Line {
	t.Helper()
	shutdownQuietly(e.s)
	if err := e.alog.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := audit.Verify(rpcOpsKey, e.audit); err != nil {
		t.Fatalf("audit chain: %v", err)
	}
	f, err := os.Open(e.audit)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []audit.Line
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var l audit.Line
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatal(err)
		}
		out = append(out, l)
	}
	return out
}

func (e *rpcEnv) count(t *testing.T, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := e.s.Metrics().Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			n := 0
			for _, l := range m.GetLabel() {
				if v, ok := labels[l.GetName()]; ok && v == l.GetValue() {
					n++
				}
			}
			if n == len(labels) {
				sum += m.GetCounter().GetValue()
			}
		}
	}
	return sum
}

// rpcOps are the credential operations of the RPC door and their params.
var rpcOps = map[string]struct {
	method   string
	params   map[string]any
	decision string
}{
	"http_header": {"use", map[string]any{"path": "api/key", "operation": "http_header"}, decisionHandOut},
	"retrieve":    {"retrieve", map[string]any{"path": "api/key", "ttl": 60}, decisionHandOut},
	"sign":        {"use", map[string]any{"path": "api/key", "operation": "sign", "params": map[string]any{"data": "x"}}, decisionUse},
	"encrypt":     {"use", map[string]any{"path": "api/key", "operation": "encrypt", "params": map[string]any{"data": "x"}}, decisionUse},
	"decrypt": {"use", map[string]any{"path": "api/key", "operation": "decrypt", "params": map[string]any{
		"data": base64.StdEncoding.EncodeToString(make([]byte, 40))}}, decisionUse},
}

// Every RPC credential operation goes through the pipeline: a hash-chained
// audit line, the requests and credential-uses counters with door and
// operation, and the bound rule's rate_limit (2/h, shared with proxied
// traffic: per agent × rule).
func TestRPCOperationsAuditedCountedLimited(t *testing.T) {
	for _, mode := range []string{"enforce", "report"} {
		for op, tc := range rpcOps {
			t.Run(mode+"/"+op, func(t *testing.T) {
				e := newRPCEnv(t, mode)
				cl := rpctest.Dial(t, e.addr)
				cl.Login("bot", e.key)
				wantCode := "OK"
				if op == "decrypt" {
					wantCode = rpc.CodeInvalidRequest // zero bytes do not open: the operation ran and failed
				}
				for i := range 3 {
					_, code := cl.Call(tc.method, tc.params)
					want := map[bool]string{true: "", false: rpc.CodeRateLimited}[i < 2]
					if i < 2 && op == "decrypt" {
						want = rpc.CodeInvalidRequest
					}
					if code != want {
						t.Fatalf("call %d: code %q, want %q", i+1, code, want)
					}
				}
				// The grant is checked by the pipeline too, in report mode as well:
				// report mode never hands out a credential the policy refuses.
				if _, code := cl.Call("retrieve", map[string]any{"path": "other/key"}); code != rpc.CodeAccessDenied {
					t.Fatalf("ungranted retrieve: %q", code)
				}
				lines := e.lines(t)
				var ok, limited, denied int
				for _, l := range lines {
					switch {
					case l.Door != "rpc":
						t.Errorf("line of door %q: %+v", l.Door, l)
					case l.Operation == op && l.Code == wantCode && l.Decision == tc.decision && l.Rule == "bound" && l.Credential == "api/key":
						ok++
					case l.Operation == op && l.Code == CodeRateLimited:
						limited++
					case l.Operation == "retrieve" && l.Credential == "other/key" && l.Code == CodeAccessDenied && l.Decision == decisionDeny:
						denied++
					default:
						t.Errorf("unexpected line %+v", l)
					}
				}
				if ok != 2 || limited != 1 || denied != 1 {
					t.Fatalf("audit lines: %d ok, %d rate limited, %d denied; want 2, 1, 1: %+v", ok, limited, denied, lines)
				}
				labels := map[string]string{"door": "rpc", "operation": op, "rule": "bound", "agent": "bot"}
				if n := e.count(t, "airlock_requests_total", labels); n != 3 {
					t.Errorf("airlock_requests_total%v = %v, want 3", labels, n)
				}
				uses := 2.0
				if op == "decrypt" {
					uses = 0 // failed operations are not uses
				}
				if n := e.count(t, "airlock_credential_uses_total", labels); n != uses {
					t.Errorf("airlock_credential_uses_total%v = %v, want %v", labels, n, uses)
				}
				for _, l := range lines {
					raw, _ := json.Marshal(l)
					if strings.Contains(string(raw), rpcOpsSecret) {
						t.Fatalf("secret in audit line %s", raw)
					}
				}
			})
		}
	}
}

// Refused paths are refused by the pipeline on both doors (policy.Judge
// on the request-target), with the same code in the audit file: the RPC
// door no longer matches rules itself.
func TestRPCDotSegmentsRefusedLikeProxy(t *testing.T) {
	// The plain request goes to port 1, which no rule names: only the
	// always-refused dot segments are a BAD_PATH there; an encoded slash
	// or ";" is refused on a rule with paths (the RPC request's).
	for p, proxyCode := range map[string]string{"/v1/a/../b": "BAD_PATH", "/v1/a%2Fb": CodeAccessDenied, "/v1/a;x/b": CodeAccessDenied} {
		t.Run(p, func(t *testing.T) {
			e := newRPCEnv(t, "enforce")
			c, err := net.Dial("tcp", e.addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			auth := base64.StdEncoding.EncodeToString([]byte("bot:" + e.token))
			_, _ = c.Write([]byte("GET http://127.0.0.1:1" + p + " HTTP/1.1\r\nHost: 127.0.0.1:1\r\nProxy-Authorization: Basic " + auth + "\r\n\r\n"))
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.Header.Get("X-Airlock-Error") != proxyCode {
				t.Fatalf("proxy: %d %s", resp.StatusCode, resp.Header.Get("X-Airlock-Error"))
			}
			cl := rpctest.Dial(t, e.addr)
			cl.Login("bot", e.key)
			_, code := cl.Call("use", map[string]any{"path": "api/key", "operation": "http_request",
				"params": map[string]any{"url": "https://127.0.0.1" + p}})
			if code != "BAD_PATH" {
				t.Fatalf("rpc http_request to %s: %q, want BAD_PATH", p, code)
			}
			var doors []string
			for i, l := range e.lines(t) {
				if want := []string{proxyCode, "BAD_PATH"}[min(i, 1)]; l.Code != want || want == "BAD_PATH" && l.Path != "" {
					t.Errorf("line %+v, want %s", l, want)
				}
				doors = append(doors, l.Door+"/"+l.Operation)
			}
			if strings.Join(doors, ",") != "proxy/,rpc/http_request" {
				t.Fatalf("lines of %v", doors)
			}
		})
	}
}
