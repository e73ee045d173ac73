package main

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/airlock/airlock/certs"
	"github.com/airlock/airlock/cmd/internal/stack"
	"github.com/airlock/airlock/policy"
	"github.com/airlock/airlock/proxy"
	"github.com/airlock/airlock/proxy/audit"
	"github.com/airlock/airlock/vault"
)

const (
	benchAgent      = "bench"
	benchCredential = "bench/token"
)

// startAirlock builds airlock the way `airlock serve` does: an unlocked
// vault holding a credential and the agent, a local CA with a leaf cache,
// a policy injecting a bearer token for every upstream host, metrics on,
// and zap lines for every request written to a log file through the same
// encoder settings and the same asynchronous writer serve uses.
func startAirlock(o childOptions) (childHello, func(), error) {
	home := filepath.Join(o.dir, "airlock-home")
	if err := os.MkdirAll(home, 0o700); err != nil {
		return childHello{}, nil, err
	}
	v, token, err := benchVault(home)
	if err != nil {
		return childHello{}, nil, err
	}
	ca, err := certs.NewCA("airlock-bench", time.Now())
	if err != nil {
		return childHello{}, nil, err
	}
	pol, err := policy.Parse("bench-policy.yaml", []byte(benchPolicy(strings.Split(o.hosts, ","))))
	if err != nil {
		return childHello{}, nil, err
	}
	roots, err := loadRoots(o.upstreamCA)
	if err != nil {
		return childHello{}, nil, err
	}
	logFile, err := os.OpenFile(filepath.Join(o.dir, "airlock.log"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return childHello{}, nil, fmt.Errorf("open log file: %w", err)
	}
	aw := audit.NewAsyncWriter(logFile, 0)
	log := stack.JSONLogger(aw)
	var alog *audit.Log
	if o.auditChain {
		alog, err = audit.Open(audit.Options{Path: filepath.Join(o.dir, "audit.log"), Key: randomBytes(32), Log: log})
		if err != nil {
			return childHello{}, nil, err
		}
	}
	st, err := stack.New(stack.Options{Vault: v, CA: ca, Policy: pol, Log: log, UpstreamRoots: roots, AuditLog: alog,
		Tune: func(c *proxy.Config) { c.InnerNetHTTP = o.netHTTP }})
	if err != nil {
		return childHello{}, nil, err
	}
	srv := st.Server
	aw.OnDrop(srv.Metrics().LogDropped.Inc)
	l, err := listenLoopback()
	if err != nil {
		return childHello{}, nil, err
	}
	go func() { _ = srv.Serve(l) }()
	proxyURL := &url.URL{Scheme: "http", User: url.UserPassword(benchAgent, token), Host: l.Addr().String()}
	stop := func() {
		shutdown(srv.Shutdown)
		if alog != nil {
			_ = alog.Close()
		}
		_ = aw.Close()
		_ = logFile.Close()
	}
	return childHello{Addr: l.Addr().String(), ProxyURL: proxyURL.String(), CAPEM: string(ca.CertPEM)}, stop, nil
}

// benchVault creates a vault (fast KDF: unlocking speed is not measured)
// with the bearer credential and the bench agent; it returns the agent's
// proxy token.
func benchVault(home string) (*vault.Vault, string, error) {
	v, err := vault.Create(filepath.Join(home, "airlock.vault"), []byte(hex.EncodeToString(randomBytes(16))),
		vault.CreateOptions{KDF: vault.FastKDF})
	if err != nil {
		return nil, "", err
	}
	seed := randomBytes(ed25519.SeedSize)
	token := vault.ProxyToken(seed)
	now := time.Now()
	err = v.Update(func(d *vault.Data) error {
		d.SetCredential(&vault.Credential{Path: benchCredential, Kind: vault.KindStatic,
			Value: vault.NewSecret([]byte("sk-bench-" + hex.EncodeToString(randomBytes(16)))), CreatedAt: now, UpdatedAt: now})
		a, _, err := vault.NewAgent(benchAgent, seed, now)
		if err != nil {
			return err
		}
		d.SetAgent(a)
		return nil
	})
	if err != nil {
		return nil, "", err
	}
	return v, token, nil
}

// benchPolicy injects the bench credential as a bearer token for the bench
// agent on every upstream host, for paths under /v1/ (one rule per host, as a real policy has
// one rule per API) and lets airlock dial loopback.
func benchPolicy(hosts []string) string {
	var b strings.Builder
	b.WriteString("version: 1\negress:\n  unmatched: deny\n  allow_networks: [\"127.0.0.0/8\"]\nrules:\n")
	for i, h := range hosts {
		fmt.Fprintf(&b, "  - name: bench-%d\n    agents: [%s]\n    host: %q\n    paths: [\"/v1/**\"]\n    credential: %s\n", i, benchAgent, h, benchCredential)
	}
	return b.String()
}

func loadRoots(path string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read upstream CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("upstream CA %s: no certificate", path)
	}
	return pool, nil
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b
}

func hexString(b []byte) string { return hex.EncodeToString(b) }
