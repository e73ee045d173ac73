package main

import (
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// transparentDoorPolicy: api.example.test is injected, api.anthropic.com
// denied by a rule, any other host held for a person (egress.unmatched:
// ask); api.openai.com is mapped to the fake by serve's /etc/hosts.
const transparentDoorPolicy = `version: 1
egress:
  unmatched: ask
  allow_networks: ["127.0.0.0/8"]
approvals:
  timeout: 60s
rules:
  - name: example
    host: api.example.test
    credential: test/openai
  - name: blocked
    host: api.anthropic.com
    action: deny
`

// TestServeTransparentDoorDecisions: `serve --transparent` behind a host
// redirect rule, a client with no proxy settings in a test namespace.
// A denied host gets the ACCESS_DENIED JSON inside TLS (as a denied
// CONNECT does); a host no rule names is held until `airlock approvals
// approve` and then tunnelled; the injected request inside the MITM'd
// connection is counted on door="transparent".
func TestServeTransparentDoorDecisions(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: network namespace, veth and nftables")
	}
	if _, err := exec.LookPath("unshare"); err != nil {
		t.Skip("unshare (util-linux) is not installed")
	}
	n := newRedirectNetns(t)
	port := freePort(t, n.hostIP)
	n.redirect(t, port)
	e := initEnv(t)
	ie := &isoEnv{e: e, openai: randomSecret(t, "sk-proj-"), anthropic: randomSecret(t, "sk-ant-")} // leaks checks both
	e.ok(ie.openai+"\n", "vault", "set", "test/openai")
	e.ok("", "agent", "add", "bot")
	writeFile(t, filepath.Join(e.home, "policy.yaml"), transparentDoorPolicy)
	ie.api = newFakeLLM(t)
	ie.s = e.serveWithHosts(t, ie.api, "--transparent", net.JoinHostPort(n.hostIP, strconv.Itoa(port)),
		"--transparent-source", n.nsIP+"/32=bot")
	waitUntil(t, 10*time.Second, "the transparent door listening", func() bool {
		return strings.Contains(ie.s.logs.String(), "transparent door listening")
	})
	curl := func(ca string, args ...string) *exec.Cmd {
		return exec.Command("ip", append([]string{"netns", "exec", n.name, "env", "-u", "HTTPS_PROXY", "-u", "https_proxy",
			"-u", "HTTP_PROXY", "-u", "http_proxy", "curl", "-sS", "--max-time", "30", "--cacert", ca}, args...)...)
	}
	ca := filepath.Join(e.home, "ca.pem")

	// Injected, counted on the transparent door.
	out, err := curl(ca, "--fail", "--resolve", "api.example.test:443:203.0.113.7", "https://api.example.test/door").CombinedOutput()
	if err != nil || !strings.Contains(string(out), digestHex("Bearer "+ie.openai)) {
		t.Fatalf("redirected client not injected: %v\n%s\n%s", err, out, tail(ie.s.logs.String(), 3000))
	}
	waitUntil(t, 5*time.Second, "the injected request on door=transparent", func() bool {
		return ie.s.metric(t, `door="transparent"`, `rule="example"`, `decision="inject"`, `code="OK"`) >= 1
	})

	// Denied: the JSON refusal inside TLS, with airlock's leaf.
	out, err = curl(ca, "-i", "--resolve", "api.anthropic.com:443:203.0.113.7", "https://api.anthropic.com/v1/messages").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "403") || !strings.Contains(string(out), `"code":"ACCESS_DENIED"`) {
		time.Sleep(time.Second)
		t.Fatalf("denied host through the transparent door: %v\n%s\n%s", err, out, tail(ie.s.logs.String(), 3000))
	}

	// Held for a person, released by `airlock approvals approve`.
	held := curl(ie.api.caFile, "--fail", "--resolve", "api.openai.com:443:203.0.113.7", "https://api.openai.com/v1/held")
	var heldOut strings.Builder
	held.Stdout, held.Stderr = &heldOut, &heldOut
	if err := held.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- held.Wait() }()
	var id string
	waitUntil(t, 20*time.Second, "the transparent connection held", func() bool {
		r := e.run("", "approvals", "--json", "--admin", ie.s.admin)
		var doc struct {
			Pending []struct {
				ID, Host, Method string
			} `json:"pending"`
		}
		if json.Unmarshal([]byte(r.stdout), &doc) != nil || len(doc.Pending) != 1 {
			return false
		}
		p := doc.Pending[0]
		id = p.ID
		return p.Host == "api.openai.com:443" && p.Method == "CONNECT"
	})
	select {
	case err := <-done:
		t.Fatalf("the held connection ended before the approval: %v\n%s", err, heldOut.String())
	case <-time.After(300 * time.Millisecond):
	}
	e.ok("", "approvals", "approve", id, "--once", "--admin", ie.s.admin)
	select {
	case err := <-done:
		if err != nil || !strings.Contains(heldOut.String(), `"path":"/v1/held"`) {
			t.Fatalf("released connection: %v\n%s", err, heldOut.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the approval did not release the held connection")
	}
	ie.leaks(t, "serve's logs", ie.s.logs.String())
}
