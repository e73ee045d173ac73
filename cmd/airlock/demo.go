package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/airlock/airlock/certs"
	"github.com/airlock/airlock/cmd/internal/stack"
	"github.com/airlock/airlock/policy"
	"github.com/airlock/airlock/proxy"
	"github.com/airlock/airlock/vault"
)

// demoPolicy is the policy the demo runs with; {{API}} is the demo API.
const demoPolicy = `version: 1
egress:
  allow_networks: ["127.0.0.0/8"]   # the demo API runs on loopback
rules:
  - name: demo-api
    agents: [demo-bot]
    host: "{{API}}"
    methods: [GET]
    paths: ["/v1/**"]
    credential: demo/api-key
    inject: {type: bearer}
`

// demo is one narrated run; each step prints ✓ or ✗.
type demo struct {
	out      io.Writer
	failed   bool
	dir      string
	key      string
	api      *http.Server
	apiURL   string
	apiRoots *x509.CertPool
	srv      *proxy.Server
	appr     *stack.Approvals // the approval queue, as serve runs it
	addr     string
	logs     bytes.Buffer
	agent    *http.Client
}

func demoCmd(g *globals, fs *flagSet) runFunc {
	return func(args []string) error {
		d := &demo{out: Stdout}
		fmt.Fprintln(d.out, "airlock demo: an agent calls an API that needs a key, without ever holding the key")
		defer d.cleanup()
		steps := []func() error{d.setup, d.startAPI, d.startAirlock, d.callAllowed, d.callEcho, d.callDenied, d.checkLeaks}
		for _, step := range steps {
			if err := step(); err != nil {
				d.step(false, "%v", err)
				break
			}
		}
		d.printAudit()
		d.cleanup()
		if d.failed {
			return withHint(fmt.Errorf("demo failed"), "the ✗ line above says which step; please report it with the output")
		}
		fmt.Fprintln(d.out, "done. Next: `airlock init`, then README's \"Protect your first agent\".")
		return nil
	}
}

func (d *demo) step(ok bool, format string, a ...any) {
	mark := "✓"
	if !ok {
		mark, d.failed = "✗", true
	}
	fmt.Fprintf(d.out, "  %s %s\n", mark, fmt.Sprintf(format, a...))
}

// setup creates a throwaway home: vault (with the CA key sealed in it) and
// a random demo key.
func (d *demo) setup() error {
	dir, err := os.MkdirTemp("", "airlock-demo-")
	if err != nil {
		return fmt.Errorf("create temp home: %w", err)
	}
	d.dir = dir
	d.key = "sk-demo-" + randomHex(12)
	d.step(true, "created a throwaway home %s (encrypted vault, local CA)", dir)
	return nil
}

// startAPI runs a demo HTTPS API that answers 401 without the key.
func (d *demo) startAPI() error {
	apiCA, err := certs.NewCA("demo API", time.Now())
	if err != nil {
		return err
	}
	leaf, err := apiCA.Mint("127.0.0.1", time.Now())
	if err != nil {
		return err
	}
	l, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{*leaf}})
	if err != nil {
		return fmt.Errorf("start demo API: %w", err)
	}
	d.apiRoots = x509.NewCertPool()
	d.apiRoots.AddCert(apiCA.Cert)
	d.apiURL = "https://" + l.Addr().String()
	d.api = &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), []byte("Bearer "+d.key)) != 1 {
			w.WriteHeader(http.StatusUnauthorized)
			io.WriteString(w, `{"error":"missing or wrong API key"}`+"\n")
			return
		}
		if r.URL.Path == "/v1/whoami" { // a careless debug endpoint that echoes the key
			fmt.Fprintf(w, `{"you_sent":%q}`+"\n", r.Header.Get("Authorization"))
			return
		}
		io.WriteString(w, `{"models":["demo-1"],"authorized":true}`+"\n")
	})}
	go func(api *http.Server) { _ = api.Serve(l) }(d.api) // cleanup clears d.api
	d.step(true, "started a demo HTTPS API on %s that requires \"Authorization: Bearer <key>\"", l.Addr())
	return nil
}

// startAirlock seals the key, registers the agent and starts the proxy.
func (d *demo) startAirlock() error {
	v, err := vault.Create(filepath.Join(d.dir, "airlock.vault"), []byte(randomHex(16)), vault.CreateOptions{KDF: vault.FastKDF})
	if err != nil {
		return err
	}
	ca, err := certs.NewCA("demo", time.Now())
	if err != nil {
		return err
	}
	seed := make([]byte, ed25519.SeedSize)
	_, _ = rand.Read(seed)
	token := vault.ProxyToken(seed)
	now := time.Now()
	err = v.Update(func(data *vault.Data) error {
		data.Credentials["demo/api-key"] = &vault.Credential{Path: "demo/api-key", Kind: vault.KindStatic,
			Value: vault.NewSecret([]byte(d.key)), CreatedAt: now, UpdatedAt: now}
		a, _, err := vault.NewAgent("demo-bot", seed, now)
		if err != nil {
			return err
		}
		data.Agents["demo-bot"] = a
		return nil
	})
	if err != nil {
		return err
	}
	d.step(true, "sealed the key as demo/api-key in the vault and registered agent demo-bot")
	pol, err := policy.Parse("demo-policy.yaml", []byte(strings.ReplaceAll(demoPolicy, "{{API}}", strings.TrimPrefix(d.apiURL, "https://"))))
	if err != nil {
		return err
	}
	st, err := stack.New(stack.Options{Vault: v, CA: ca, Policy: pol, CertCache: 100,
		Log: newLogger("json", &d.logs), UpstreamRoots: d.apiRoots})
	if err != nil {
		return err
	}
	d.srv = st.Server
	// The approval queue, as serve starts it (no console: the demo has no
	// admin listener), so a rule with `approval: required` is held, not refused.
	if d.appr, err = stack.StartApprovals(d.srv, stack.ApprovalOptions{Home: d.dir,
		PolicyPath: filepath.Join(d.dir, "demo-policy.yaml"), Log: newLogger("json", &d.logs)}); err != nil {
		return fmt.Errorf("start the approval queue: %w", err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("start airlock: %w", err)
	}
	d.addr = l.Addr().String()
	go func(srv *proxy.Server) { _ = srv.Serve(l) }(d.srv) // cleanup clears d.srv
	d.agent = agentClient(ca, &url.URL{Scheme: "http", User: url.UserPassword("demo-bot", token), Host: d.addr})
	d.step(true, "airlock is listening on %s; the agent runs with HTTPS_PROXY=http://demo-bot:<token>@%s", d.addr, d.addr)
	return nil
}

// agentClient is the demo agent: a plain HTTP client with a proxy and
// airlock's CA, and no API key anywhere.
func agentClient(ca *certs.CA, proxyURL *url.URL) *http.Client {
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		Proxy: http.ProxyURL(proxyURL), TLSClientConfig: &tls.Config{RootCAs: pool},
	}}
}

func (d *demo) get(method, path string) (int, string, string, error) {
	req, _ := http.NewRequest(method, d.apiURL+path, nil)
	resp, err := d.agent.Do(req)
	if err != nil {
		return 0, "", "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get("X-Airlock-Error"), string(b), nil
}

func (d *demo) callAllowed() error {
	status, _, body, err := d.get("GET", "/v1/models")
	if err != nil {
		return fmt.Errorf("agent request failed: %w", err)
	}
	if status != http.StatusOK || !strings.Contains(body, `"authorized":true`) {
		return fmt.Errorf("GET /v1/models with no key → %d %s", status, strings.TrimSpace(body))
	}
	d.step(true, "agent GET /v1/models with no key → 200: the API received the key airlock injected")
	return nil
}

// callEcho asks an endpoint that echoes the key back: airlock scrubs it.
func (d *demo) callEcho() error {
	status, _, body, err := d.get("GET", "/v1/whoami")
	if err != nil {
		return fmt.Errorf("agent request failed: %w", err)
	}
	if status != http.StatusOK || strings.Contains(body, d.key) || !strings.Contains(body, "[REDACTED:demo/api-key]") {
		return fmt.Errorf("GET /v1/whoami → %d: the echo was not scrubbed", status)
	}
	d.step(true, "agent GET /v1/whoami, which echoes the key → the agent sees %s", strings.TrimSpace(body))
	return nil
}

func (d *demo) callDenied() error {
	status, code, _, err := d.get("DELETE", "/v1/models/demo-1")
	if err != nil {
		return fmt.Errorf("agent request failed: %w", err)
	}
	if status != http.StatusForbidden || code != "ACCESS_DENIED" {
		return fmt.Errorf("DELETE /v1/models/demo-1 → %d %s, want 403 ACCESS_DENIED", status, code)
	}
	d.step(true, "agent DELETE /v1/models/demo-1, which the policy does not allow → 403 ACCESS_DENIED")
	return nil
}

func (d *demo) checkLeaks() error {
	if strings.Contains(d.logs.String(), d.key) {
		return fmt.Errorf("the key appeared in airlock's logs")
	}
	d.step(true, "the key appeared nowhere: not in the agent's environment, responses, or airlock's logs")
	return nil
}

func (d *demo) printAudit() {
	fmt.Fprintln(d.out, "audit lines (one per decision):")
	for _, line := range strings.Split(strings.TrimSpace(d.logs.String()), "\n") {
		if strings.Contains(line, `"msg":"request"`) {
			fmt.Fprintln(d.out, "   ", line)
		}
	}
}

func (d *demo) cleanup() {
	defer func() { d.srv, d.appr, d.api, d.dir = nil, nil, nil, "" }()
	if d.srv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_ = d.srv.Shutdown(ctx)
		cancel()
	}
	if d.appr != nil {
		d.appr.Close()
	}
	if d.api != nil {
		d.api.Close()
	}
	if d.dir != "" {
		_ = os.RemoveAll(d.dir)
		d.step(true, "removed %s", d.dir)
	}
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
