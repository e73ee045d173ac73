package rpc

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/airlock/airlock/proxy/rpc/rpctest"
)

// TestNodeSDK drives the door with the unmodified Node/TypeScript SDK
// (built with npm ci && npx tsc in a temporary copy) over TCP and the Unix
// socket. Its README's encrypt {plaintext} form is refused, naming the
// parameter (needs the checkOperation call in useHandler).
func TestNodeSDK(t *testing.T) {
	sdk := rpctest.BuildNodeSDK(t)
	h := newHarness(t, Options{})
	keyPath := filepath.Join(t.TempDir(), "bot.key")
	if err := os.WriteFile(keyPath, []byte(hex.EncodeToString(h.keys["bot"].Seed())+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	sockDir, err := os.MkdirTemp("", "ns")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(sockDir) })
	sock := filepath.Join(sockDir, "s.sock")
	l, err := ListenUnix(sock)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { h.srv.ServeListener(ctx, l) })
	t.Cleanup(func() { cancel(); wg.Wait() })

	host, portStr, _ := net.SplitHostPort(h.addr)
	port, _ := strconv.Atoi(portStr)
	mac := hmac.New(sha256.New, []byte(signSecret))
	mac.Write([]byte("sign me"))
	sum := sha256.Sum256([]byte(dbSecret))
	for name, target := range map[string]rpctest.NodeConfig{"tcp": {Host: host, Port: port}, "unix": {Socket: sock}} {
		t.Run(name, func(t *testing.T) {
			cfg := target
			cfg.Agent, cfg.KeyPath = "bot", keyPath
			cfg.RetrievePath, cfg.TTL = "db/password", 30
			cfg.HTTPPath, cfg.URL = "api/token", h.upstream.URL+"/v1/echo"
			cfg.SignPath, cfg.CryptPath, cfg.DeniedPath = "signing/key", "signing/key", "secret/other"
			out := rpctest.RunNodeClient(t, sdk, cfg)
			checks := map[string]struct{ got, want string }{
				"list":           {strings.Join(out.List, " "), "api/custom api/token db/password old/key signing/key"},
				"retrieve value": {out.ValueSHA256, hex.EncodeToString(sum[:])},
				"unknown lease":  {out.UnknownLease, "LeaseExpired:LEASE_EXPIRED"},
				"http status":    {strconv.Itoa(out.HTTPStatus), "418"},
				"signature":      {out.Signature, base64.StdEncoding.EncodeToString(mac.Sum(nil))},
				"decrypted":      {out.Decrypted, "round trip ✓"},
				"readme encrypt": {out.ReadmeEncrypt, "VaultError:INVALID_REQUEST:encrypt: unknown parameter params.plaintext (want data)"},
				"denied":         {out.Denied, "AccessDenied:ACCESS_DENIED"},
			}
			for name, c := range checks {
				if c.got != c.want {
					t.Errorf("%s = %q, want %q", name, c.got, c.want)
				}
			}
			if !strings.HasPrefix(out.HTTPBody, "method=POST path=/v1/echo body=from-node") {
				t.Errorf("http body %q", out.HTTPBody)
			}
			if seen := <-h.seen; seen.Get("Authorization") != "Bearer "+tokenSecret || seen.Get("X-Test") != "1" {
				t.Errorf("upstream saw %v", seen)
			}
			if strings.Contains(out.Raw, tokenSecret) || strings.Contains(out.Raw, dbSecret) {
				t.Error("the SDK output holds a secret")
			}
		})
	}
	h.assertNoSecretsLogged()
}
