package proxy_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/airlock/airlock/proxy/rpc/rpctest"
)

// TestSanctumSDKThroughServe drives the unmodified public SanctumAI Python
// SDK against a real `airlock serve`, on the same port HTTP agents use:
// its http_request goes through the egress pipeline (policy, injection,
// dial guard) to a real TLS upstream.
func TestSanctumSDKThroughServe(t *testing.T) {
	t.Parallel() // own home, own ports
	up := newUpstream(t, nil)
	e := newEnv(t)
	e.upCAFile = up.caFile(t)
	vals := map[string]string{
		"api/token":   "tok-sdk-5d1e9a0b7c3f",
		"db/password": "pw-db-8c2f4e6a1b3d",
		"signing/key": "hmac-key-0a9b8c7d6e5f",
		"other/thing": "other-1f2e3d4c5b6a",
	}
	for p, v := range vals {
		e.setSecret(p, v)
	}
	agent := e.addAgent("bot")
	e.writePolicy(`version: 1
egress:
  allow_networks: ["127.0.0.0/8"]
rules:
  - name: api
    agents: [bot]
    host: "` + up.hostPort() + `"
    paths: ["/v1/**"]
    credential: api/token
grants:
  - agents: [bot]
    credentials: ["api/*"]
    actions: [list, use]
  - agents: [bot]
    credentials: ["db/*"]
    actions: [list, retrieve]
    max_ttl: 60
  - agents: [bot]
    credentials: ["signing/*"]
    actions: [list, sign, encrypt, decrypt]
`)
	e.serve("--socket", filepath.Join(t.TempDir(), "airlock.sock"))
	host, port, _ := net.SplitHostPort(e.proxyAddr)
	p, _ := strconv.Atoi(port)
	res := rpctest.RunSDKClient(t, rpctest.SDKConfig{
		Host: host, Port: p, Agent: "bot", KeyPath: filepath.Join(e.home, "keys", "bot.key"),
		RetrievePath: "db/password", TTL: 600,
		HTTPPath: "api/token", URL: up.URL + "/v1/chat",
		SignPath: "signing/key", CryptPath: "signing/key", DeniedPath: "other/thing",
	})
	if got := strings.Join(res.List, ","); got != "api/token,db/password,signing/key" {
		t.Errorf("list = %s", got)
	}
	sum := sha256.Sum256([]byte(vals["db/password"]))
	if res.Retrieve.ValueSHA256 != hex.EncodeToString(sum[:]) || res.Retrieve.TTL != 60 || !res.Retrieve.HasExpiresAt {
		t.Errorf("retrieve = %+v, want the value with ttl capped at 60", res.Retrieve)
	}
	if res.UnknownLease != "LeaseExpired" {
		t.Errorf("unknown lease: %s", res.UnknownLease)
	}
	if res.HTTPRequest.Status != 200 || !strings.Contains(res.HTTPRequest.Body, digest("Bearer "+vals["api/token"])) {
		t.Errorf("http_request = %+v, want 200 with the injected bearer", res.HTTPRequest)
	}
	mac := hmac.New(sha256.New, []byte(vals["signing/key"]))
	mac.Write([]byte("sign me"))
	if res.Signature != base64.StdEncoding.EncodeToString(mac.Sum(nil)) {
		t.Errorf("signature %s", res.Signature)
	}
	if res.Decrypted != "round trip ✓" || res.Denied != "AccessDenied:ACCESS_DENIED" || res.RetrieveDenied != "AccessDenied:ACCESS_DENIED" {
		t.Errorf("decrypted %q, denied %q, retrieve denied %q", res.Decrypted, res.Denied, res.RetrieveDenied)
	}
	// The same port still serves HTTP proxy clients.
	code, seen, _, body := getJSON(t, e.client(agent), up.URL+"/v1/models", nil)
	if code != 200 || seen.Auth != digest("Bearer "+vals["api/token"]) {
		t.Errorf("HTTP proxy on the RPC port: %d %s", code, body)
	}
	logs := e.logs.String()
	for p, v := range vals {
		if strings.Contains(logs, v) {
			t.Errorf("logs contain the value of %s", p)
		}
	}
}
