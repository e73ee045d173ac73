package proxy_test

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestExpiredCredentialAndSealedVault(t *testing.T) {
	t.Parallel() // own home, own ports
	up := newUpstream(t, nil)
	e := newEnv(t)
	e.upCAFile = up.caFile(t)
	e.setSecret("test/bearer", secrets["test/bearer"], "--expires", "2s")
	e.setSecret("test/apikey", secrets["test/apikey"])
	agent := e.addAgent("bot")
	e.writePolicy("version: 1\negress:\n  allow_networks: [\"127.0.0.0/8\"]\nrules:\n" +
		"  - name: short\n    host: \"" + up.hostPort() + "\"\n    paths: [\"/short/**\"]\n    credential: test/bearer\n" +
		"  - name: long\n    host: \"" + up.hostPort() + "\"\n    paths: [\"/long/**\"]\n    credential: test/apikey\n    inject: {type: api_key}\n")
	e.serve()
	c := e.client(agent)
	t.Cleanup(func() { assertNoSecrets(t, "airlock logs", e.logs.String()) })

	t.Run("expired", func(t *testing.T) {
		waitFor(t, 10*time.Second, func() error {
			status, _, hdr, body := getJSON(t, c, up.URL+"/short/x", nil)
			if status == 403 && hdr.Get("X-Airlock-Error") == "CREDENTIAL_EXPIRED" {
				expectError(t, status, hdr, body, 403, "CREDENTIAL_EXPIRED")
				return nil
			}
			return fmt.Errorf("still %d %s", status, hdr.Get("X-Airlock-Error"))
		})
	})
	t.Run("sealed", func(t *testing.T) {
		if status, _, _, body := getJSON(t, c, up.URL+"/long/x", nil); status != 200 {
			t.Fatalf("before seal: %d %s", status, body)
		}
		resp, err := e.admin("POST", "/v1/seal") // admin_e2e_test.go
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		status, _, hdr, body := getJSON(t, c, up.URL+"/long/x", nil)
		expectError(t, status, hdr, body, 503, "VAULT_LOCKED")
		resp, err = http.Get("http://" + e.adminAddr + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 503 || !strings.Contains(string(b), "sealed") {
			t.Errorf("readyz after seal: %d %s", resp.StatusCode, b)
		}
	})
}
