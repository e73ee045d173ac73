package proxy

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/airlock/airlock/certs"
	"github.com/airlock/airlock/policy"
	"github.com/airlock/airlock/proxy/door"
	"github.com/airlock/airlock/proxy/rpc"
	"github.com/airlock/airlock/proxy/rpc/rpctest"
	"github.com/airlock/airlock/proxy/source"
	"github.com/airlock/airlock/vault"
)

const refValue = "rv-file-ref-0a9b8c7d6e5f"

// refServer is a Server whose vault holds api/ref, a reference to a file
// source, with (sources true) or without a source registry.
func refServer(t *testing.T, sources bool) (*Server, string, ed25519.PrivateKey, string) {
	t.Helper()
	dir := t.TempDir()
	files := filepath.Join(dir, "files")
	_ = os.Mkdir(files, 0o700)
	if err := os.WriteFile(filepath.Join(files, "k"), []byte(refValue), 0o600); err != nil {
		t.Fatal(err)
	}
	v, err := vault.Create(filepath.Join(dir, "vault"), []byte("pw"), vault.CreateOptions{KDF: vault.FastKDF})
	if err != nil {
		t.Fatal(err)
	}
	seed := make([]byte, ed25519.SeedSize)
	seed[0] = 9
	agent, _, _ := vault.NewAgent("bot", seed, time.Now())
	err = v.Update(func(d *vault.Data) error {
		d.SetSource(&vault.SourceDef{Name: "files", Type: source.TypeFile, Config: map[string]string{"dir": files}})
		d.SetCredential(vault.NewRefCredential("api/ref", vault.Ref{Source: "files", Key: "k"}))
		d.SetAgent(agent)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	pol, err := policy.Parse("ref.yaml", []byte(`version: 1
egress:
  allow_networks: ["127.0.0.0/8"]
rules:
  - name: ref
    host: "127.0.0.1"
    credential: api/ref
grants:
  - agents: [bot]
    credentials: ["api/*"]
    actions: [http_header, retrieve]
`))
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := certs.NewCA("ref", time.Now())
	cfg := Config{Vault: v, Policy: pol, Certs: certs.NewCache(ca, 10), Log: zap.NewNop(),
		RPC: func(s *Server) ConnHandler {
			return rpc.New(s, rpc.Options{Registerer: prometheus.NewRegistry()}).ServeConn
		}}
	if sources {
		reg := source.NewRegistry(nil, nil)
		t.Cleanup(reg.Close)
		cfg.Sources = reg
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = s.Serve(l) }()
	t.Cleanup(func() { shutdownQuietly(s) })
	return s, l.Addr().String(), ed25519.NewKeyFromSeed(seed), vault.ProxyToken(seed)
}

// The RPC door resolves a reference like the proxy door: http_header
// hands out the fetched value; without a registry a reference is refused
// (503), never handed out or injected empty.
func TestReferenceCredentialBothDoors(t *testing.T) {
	for _, withSources := range []bool{true, false} {
		s, addr, key, _ := refServer(t, withSources)
		cl := rpctest.Dial(t, addr)
		cl.Login("bot", key)
		res, code := cl.Call("use", map[string]any{"path": "api/ref", "operation": "http_header"})
		dec, err := s.Judge(context.Background(), door.Request{Door: door.Proxy, Operation: door.OpProxy, Agent: "bot",
			Method: "GET", URL: mustURL(t, "https://127.0.0.1/x")})
		if withSources {
			var h map[string]any
			_ = json.Unmarshal(res, &h)
			if code != "" || !strings.Contains(string(res), refValue) {
				t.Fatalf("http_header with sources: %q %s", code, res)
			}
			if err != nil || dec.Credential == nil || string(dec.Credential.Value.Bytes()) != refValue || dec.Credential.Kind == vault.KindRef {
				t.Fatalf("proxy judge: %v", err)
			}
			dec.Done(door.Outcome{Status: 200})
			continue
		}
		if code != "CREDENTIAL_SOURCE_UNAVAILABLE" || strings.Contains(string(res), "Bearer") {
			t.Fatalf("http_header without sources: %q %s", code, res)
		}
		if e := asError(err); e == nil || e.Code != "CREDENTIAL_SOURCE_UNAVAILABLE" || e.Status != 503 {
			t.Fatalf("proxy judge without sources: %v", err)
		}
	}
}
