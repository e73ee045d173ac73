package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// nodeUndiciDir is where .ci/run installs undici for Node < 22.21, whose
// built-in fetch ignores HTTPS_PROXY.
func nodeUndiciDir(t *testing.T) string {
	out, err := exec.Command("go", "env", "GOPATH").Output()
	must(t, err)
	return filepath.Join(strings.TrimSpace(string(out)), "airlock-node", "node_modules")
}

// nodeAgent is a CommonJS script (so NODE_PATH finds undici) that GETs
// argv[1] through HTTPS_PROXY with undici's EnvHttpProxyAgent.
const nodeAgent = `const { fetch, EnvHttpProxyAgent } = require("undici");
fetch(process.argv[1], { dispatcher: new EnvHttpProxyAgent() })
  .then(async (r) => { console.log(r.status, await r.text()); process.exit(r.ok ? 0 : 1); })
  .catch((e) => { console.error(String(e.cause || e)); process.exit(1); });`

const pythonAgent = `import sys, urllib.request
print(urllib.request.urlopen(sys.argv[1], timeout=30).read().decode())`

// TestRealAgents runs curl, Python's urllib and Node through `airlock run`
// against a loopback TLS API and checks the API saw the injected
// credential while the agent never had it.
func TestRealAgents(t *testing.T) {
	t.Parallel()
	e := initEnv(t)
	secret := randomSecret(t, "sk-agent-")
	e.ok(secret+"\n", "vault", "set", "test/key")
	e.ok("", "agent", "add", "bot")
	api := newTestAPI(t)
	writeFile(t, filepath.Join(e.home, "policy.yaml"), apiPolicy(api, "test/key"))
	s := e.serve(t, api)
	want := digestHex("Bearer " + secret)
	url := api.url + "/v1/models"

	cases := map[string]struct {
		bin  string
		argv []string
		env  map[string]string
	}{
		"curl":          {bin: "curl", argv: []string{"curl", "-sS", "--fail", url}},
		"wget":          {bin: "wget", argv: []string{"wget", "-q", "-O", "-", url}}, // trusts the CA through WGETRC only
		"python urllib": {bin: "python3", argv: []string{"python3", "-c", pythonAgent, url}},
		"node undici": {bin: "node", argv: []string{"node", "-e", nodeAgent, url},
			env: map[string]string{"NODE_PATH": nodeUndiciDir(t)}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			if _, err := exec.LookPath(tc.bin); err != nil {
				t.Skipf("%s is not installed", tc.bin)
			}
			if tc.bin == "node" {
				if _, err := os.Stat(filepath.Join(tc.env["NODE_PATH"], "undici")); err != nil {
					t.Fatalf("undici is not installed in %s: run `bash .ci/run`, or `npm install --prefix \"$(go env GOPATH)/airlock-node\" undici@6`", tc.env["NODE_PATH"])
				}
			}
			for k, v := range tc.env {
				e.env[k] = v
			}
			r := e.run("", append([]string{"run", "--agent", "bot", "--"}, tc.argv...)...)
			if r.code != 0 || !strings.Contains(r.stdout, want) {
				t.Fatalf("the API did not see the injected credential\n%s\nairlock logs:\n%s", r, s.logs.String())
			}
			if strings.Contains(r.stdout+r.stderr, secret) {
				t.Errorf("the agent saw the secret")
			}
		})
	}
	waitUntil(t, 5*time.Second, "audit lines for the agents", func() bool {
		return strings.Count(s.logs.String(), `"action":"inject"`) >= 1
	})
	if strings.Contains(s.logs.String(), secret) {
		t.Errorf("airlock logs contain the secret")
	}
}
