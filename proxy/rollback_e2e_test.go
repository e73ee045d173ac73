package proxy_test

import (
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestHostileVaultRollback plays an agent running as the serve user
// (issue 16, item 8): it saves airlock.vault while its token is valid and,
// after the operator's `agent rotate bot`, copies that file back. The
// running serve must refuse the reload (logged), and the revoked token
// must stay refused while the rotated one keeps working.
func TestHostileVaultRollback(t *testing.T) {
	t.Parallel() // own home, own ports
	up := newUpstream(t, nil)
	e := newEnv(t)
	e.upCAFile = up.caFile(t)
	e.setSecret("test/bearer", secrets["test/bearer"])
	oldAgent := e.addAgent("bot")
	e.writePolicy("version: 1\negress:\n  allow_networks: [\"127.0.0.0/8\"]\nrules:\n  - name: up\n    host: \"" +
		up.hostPort() + "\"\n    credential: test/bearer\n")
	e.serve()
	vaultPath := filepath.Join(e.home, "airlock.vault")
	saved, err := os.ReadFile(vaultPath)
	if err != nil {
		t.Fatal(err)
	}
	connect := func(agent *url.URL) int {
		resp, c, _ := rawConnect(t, e.proxyAddr, up.hostPort(), agentAuth(agent))
		c.Close() // a 200 is followed by the MITM handshake, not a body
		return resp.StatusCode
	}
	if got := connect(oldAgent); got != 200 {
		t.Fatalf("CONNECT with bot's first token: %d, want 200", got)
	}

	newAgent, err := url.Parse(strings.TrimSpace(e.mustRun("", "agent", "rotate", "bot")))
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, func() error {
		if got := connect(oldAgent); got != 407 {
			return fmt.Errorf("revoked token: CONNECT %d, want 407", got)
		}
		return nil
	})

	if err := os.WriteFile(vaultPath, saved, 0o600); err != nil { // the rollback
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, func() error {
		if !strings.Contains(e.logs.String(), "vault reload refused") || !strings.Contains(e.logs.String(), "generation") {
			return fmt.Errorf("serve did not log a refused reload of the old vault\n%s", e.logs.String())
		}
		return nil
	})
	e.waitMetric("airlock_vault_reloads_total", map[string]string{"result": "error"}, 1)
	if got := connect(oldAgent); got != 407 {
		t.Errorf("after the rollback the revoked token gets CONNECT %d, want 407", got)
	}
	status, seen, _, body := getJSON(t, e.client(e.proxyURL(newAgent)), up.URL+"/after-rollback", nil)
	if status != 200 || seen.Auth != digest("Bearer "+secrets["test/bearer"]) {
		t.Errorf("rotated token after the rollback: %d %s", status, body)
	}
	assertNoSecrets(t, "airlock logs", e.logs.String())
}
