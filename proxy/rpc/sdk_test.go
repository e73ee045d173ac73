package rpc

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/airlock/airlock/proxy/rpc/rpctest"
)

func TestPythonSDK(t *testing.T) {
	h := newHarness(t, Options{})
	keyPath := filepath.Join(t.TempDir(), "bot.key")
	if err := os.WriteFile(keyPath, []byte(hex.EncodeToString(h.keys["bot"].Seed())+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	host, portStr, _ := net.SplitHostPort(h.addr)
	port, _ := strconv.Atoi(portStr)
	out := rpctest.RunSDKClient(t, rpctest.SDKConfig{
		Host: host, Port: port, Agent: "bot", KeyPath: keyPath,
		RetrievePath: "db/password", TTL: 30,
		HTTPPath: "api/token", URL: h.upstream.URL + "/v1/echo",
		SignPath: "signing/key", CryptPath: "signing/key", DeniedPath: "secret/other",
	})
	mac := hmac.New(sha256.New, []byte(signSecret))
	mac.Write([]byte("sign me"))
	sum := sha256.Sum256([]byte(dbSecret))
	checks := map[string]struct{ got, want string }{
		"list":            {strings.Join(out.List, " "), "api/custom api/token db/password old/key signing/key"},
		"retrieve value":  {out.Retrieve.ValueSHA256, hex.EncodeToString(sum[:])},
		"retrieve ttl":    {strconv.Itoa(out.Retrieve.TTL), "30"},
		"expires_at":      {strconv.FormatBool(out.Retrieve.HasExpiresAt), "true"},
		"unknown lease":   {out.UnknownLease, "LeaseExpired"},
		"http status":     {strconv.Itoa(out.HTTPRequest.Status), "418"},
		"http header":     {out.HTTPRequest.Headers["X-Upstream"], "yes"},
		"signature":       {out.Signature, base64.StdEncoding.EncodeToString(mac.Sum(nil))},
		"decrypted":       {out.Decrypted, "round trip ✓"},
		"denied":          {out.Denied, "AccessDenied:ACCESS_DENIED"},
		"retrieve denied": {out.RetrieveDenied, "AccessDenied:ACCESS_DENIED"},
	}
	for name, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %q, want %q", name, c.got, c.want)
		}
	}
	if !strings.HasPrefix(out.HTTPRequest.Body, "method=POST path=/v1/echo body=from-sdk auth=") {
		t.Errorf("http_request body %q", out.HTTPRequest.Body)
	}
	if seen := <-h.seen; seen.Get("Authorization") != "Bearer "+tokenSecret || seen.Get("X-Test") != "1" {
		t.Errorf("upstream saw %v", seen)
	}
	if strings.Contains(out.Raw, tokenSecret) {
		t.Error("the SDK saw the injected secret")
	}
}
