package main

// The per-run identity of `airlock run --isolate`: a fresh token for the
// run's agent, written to the vault with the run's TTL (vault.Vault.IssueRunToken)
// so the running serve's vault reload accepts it, and deleted when CMD
// exits. serve refuses it once deleted or past --ttl.

import (
	"bufio"
	"context"
	"encoding/base64"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/airlock/airlock/cmd/internal/isolate"
	"github.com/airlock/airlock/vault"
)

// runCredWait bounds how long Issue waits for serve to load the new token
// and Revoke for serve to drop it (serve polls the vault every 500ms).
const runCredWait = 5 * time.Second

// runCredProbe is the CONNECT target of the acceptance probe: port 0 is
// always refused as a bad target, after authentication (407 before).
const runCredProbe = "run-credential.airlock.invalid:0"

// vaultRunCredential issues run tokens through the vault in h and checks
// them against the proxy at proxyAddr.
type vaultRunCredential struct {
	h         home
	proxyAddr string
}

// issuedRun is what Revoke needs of an issued token.
type issuedRun struct {
	v  *vault.Vault
	id string
}

// runTokens remembers the tokens this process issued (one run per
// process; only runIsolated's goroutine touches it).
var runTokens = map[string]issuedRun{}

func (r vaultRunCredential) Issue(ctx context.Context, agent string, ttl time.Duration) (isolate.Credential, error) {
	if ttl <= 0 {
		return isolate.Credential{}, withHint(usageErrorf("--ttl %v: must be positive", ttl), "for example --ttl 30m")
	}
	v, err := openVault(r.h)
	if err != nil {
		return isolate.Credential{}, err
	}
	token, id, exp, err := v.IssueRunToken(agent, ttl)
	if err != nil {
		return isolate.Credential{}, err
	}
	runTokens[token] = issuedRun{v: v, id: id}
	c := isolate.Credential{Agent: agent, Token: token, ExpiresAt: exp}
	if err := waitProbe(ctx, r.proxyAddr, c, true); err != nil {
		_ = v.RevokeRunToken(id)
		return isolate.Credential{}, withHint(fmt.Errorf("the proxy at %s did not accept the run credential: %w", r.proxyAddr, err),
			"is `airlock serve` running on this home's vault? (AIRLOCK_LISTEN names where it listens)")
	}
	return c, nil
}

func (r vaultRunCredential) Revoke(ctx context.Context, c isolate.Credential) error {
	run, ok := runTokens[c.Token]
	if !ok {
		return nil
	}
	if err := run.v.RevokeRunToken(run.id); err != nil {
		return err
	}
	delete(runTokens, c.Token)
	return waitProbe(ctx, r.proxyAddr, c, false)
}

// waitProbe polls the proxy until it accepts (or refuses) c.
func waitProbe(ctx context.Context, addr string, c isolate.Credential, accepted bool) error {
	deadline := time.Now().Add(runCredWait)
	for {
		ok, err := probeCredential(ctx, addr, c)
		if err == nil && ok == accepted {
			return nil
		}
		if time.Now().After(deadline) {
			if err == nil {
				err = fmt.Errorf("still %s after %v", map[bool]string{true: "accepted", false: "refused"}[ok], runCredWait)
			}
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// probeCredential sends one CONNECT with c: 407 means refused.
func probeCredential(ctx context.Context, addr string, c isolate.Credential) (bool, error) {
	d := net.Dialer{Timeout: 2 * time.Second}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return false, err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(2 * time.Second))
	auth := base64.StdEncoding.EncodeToString([]byte(c.Agent + ":" + c.Token))
	fmt.Fprintf(conn, "CONNECT %s HTTP/1.1\r\nHost: %s\r\nProxy-Authorization: Basic %s\r\n\r\n", runCredProbe, runCredProbe, auth)
	resp, err := http.ReadResponse(bufio.NewReader(conn), &http.Request{Method: http.MethodConnect})
	if err != nil {
		return false, fmt.Errorf("probe the proxy: %w", err)
	}
	resp.Body.Close()
	return resp.StatusCode != http.StatusProxyAuthRequired, nil
}
