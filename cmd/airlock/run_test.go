package main

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// standInProxy listens on a loopback port, accepting and closing
// connections, and points e's AIRLOCK_LISTEN at it: `airlock run` finds a
// proxy up without a whole `airlock serve`. It returns the address.
func (e *tenv) standInProxy(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	e.env["AIRLOCK_LISTEN"] = l.Addr().String()
	return l.Addr().String()
}

// TestRunChildGetsNoAirlockSecrets plays the agent started the documented
// way: it dumps its environment and tries to read the vault. Neither the
// passphrase, the key file, the home, nor any AIRLOCK_* variable may reach
// it; the proxy and CA variables must.
func TestRunChildGetsNoAirlockSecrets(t *testing.T) {
	t.Parallel()
	e := initEnv(t)
	e.ok("the-secret-value\n", "vault", "set", "a/b")
	e.ok("", "agent", "add", "bot")
	e.standInProxy(t)
	keyFile := filepath.Join(t.TempDir(), "unlock.key")
	writeFile(t, keyFile, strings.Repeat("ab", 32))
	e.env["AIRLOCK_KEY_FILE"] = keyFile
	e.env["AIRLOCK_SOMETHING_ELSE"] = "x"
	e.env["PATH"] = filepath.Dir(airlockBin) + string(os.PathListSeparator) + os.Getenv("PATH")
	cases := map[string]struct {
		script string
		check  func(t *testing.T, r result)
	}{
		"env": {script: "env", check: func(t *testing.T, r result) {
			for _, bad := range []string{testPassphrase, "AIRLOCK_", keyFile, e.home + "\n"} {
				if strings.Contains(r.stdout, bad) {
					t.Errorf("the agent's environment holds %q:\n%s", bad, r.stdout)
				}
			}
			for _, want := range []string{"HTTPS_PROXY=http://bot:", "SSL_CERT_FILE=" + filepath.Join(e.home, "ca-bundle.pem"),
				"NODE_EXTRA_CA_CERTS=", "NODE_USE_ENV_PROXY=1", "WGETRC=", "REQUESTS_CA_BUNDLE="} {
				if !strings.Contains(r.stdout, want) {
					t.Errorf("the agent's environment lacks %q:\n%s", want, r.stdout)
				}
			}
		}},
		"vault get": {script: "airlock --home " + e.home + " vault get a/b; echo exit=$?", check: func(t *testing.T, r result) {
			if strings.Contains(r.stdout+r.stderr, "the-secret-value") || !strings.Contains(r.stdout, "exit=1") {
				t.Errorf("the agent read the vault:\n%s", r)
			}
		}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			r := e.run("", "run", "--", "sh", "-c", tc.script)
			if r.code != 0 {
				t.Fatalf("run failed\n%s", r)
			}
			tc.check(t, r)
		})
	}
}

// TestRunStartFailures: nothing listening on the proxy port stops `run`
// before CMD starts; a missing command exits 127, a non-executable one
// 126, as shells do.
func TestRunStartFailures(t *testing.T) {
	t.Parallel()
	e := initEnv(t)
	e.ok("", "agent", "add", "bot")
	dir := t.TempDir()
	marker := filepath.Join(dir, "ran")
	notExec := filepath.Join(dir, "script.sh")
	writeFile(t, notExec, "#!/bin/sh\ntouch "+marker+"\n")
	cases := map[string]struct {
		proxyUp bool
		argv    []string
		code    int
		msg     string
		hint    string
	}{
		"no proxy":       {argv: []string{"sh", "-c", "touch " + marker}, code: exitFailure, msg: "nothing is listening on the proxy address", hint: "start `airlock serve`"},
		"not found":      {proxyUp: true, argv: []string{"no-such-command-airlock"}, code: exitNotFound, msg: "command not found"},
		"not found path": {proxyUp: true, argv: []string{filepath.Join(dir, "nope")}, code: exitNotFound, msg: "command not found"},
		"not executable": {proxyUp: true, argv: []string{notExec}, code: exitNotExecutable, msg: "permission denied"},
		"a directory":    {proxyUp: true, argv: []string{dir}, code: exitNotExecutable, msg: "not an executable file"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			env := &tenv{t: t, home: e.home, env: map[string]string{}}
			for k, v := range e.env {
				env.env[k] = v
			}
			env.env["AIRLOCK_LISTEN"] = freeAddr(t)
			if tc.proxyUp {
				env.standInProxy(t)
			}
			r := env.run("", append([]string{"run", "--"}, tc.argv...)...)
			wantError(t, r, tc.code, tc.msg)
			if !strings.Contains(r.stderr, tc.hint) {
				t.Errorf("hint lacks %q\n%s", tc.hint, r)
			}
			if _, err := os.Stat(marker); err == nil {
				t.Fatalf("the command ran\n%s", r)
			}
		})
	}
}

func TestNodeHonoursEnvProxy(t *testing.T) {
	cases := map[string]bool{
		"v20.20.2": false, "v22.20.0": false, "v18.0.0": false, "v22.21.0": true, "v22.21.1": true,
		"v24.0.0": false, "v24.5.0": true, "v25.1.0": true, "v23.0.0": false, "garbage": true, "": true,
	}
	for v, want := range cases {
		if got := nodeHonoursEnvProxy(v); got != want {
			t.Errorf("%q: %v, want %v", v, got, want)
		}
	}
}

// TestRunWarnsOldNode runs the machine's real node: one warning line when
// it is older than 22.21, none otherwise, and NODE_USE_ENV_PROXY=1 set.
func TestRunWarnsOldNode(t *testing.T) {
	t.Parallel()
	node, err := execLookPath("node")
	if err != nil {
		t.Skip("node is not installed")
	}
	out, err := execOutput(node, "--version")
	must(t, err)
	e := initEnv(t)
	e.ok("", "agent", "add", "bot")
	e.standInProxy(t)
	r := e.ok("", "run", "--", "node", "-e", "console.log(process.env.NODE_USE_ENV_PROXY)")
	if r.stdout != "1\n" {
		t.Errorf("NODE_USE_ENV_PROXY in node: %q", r.stdout)
	}
	n := strings.Count(r.stderr, "airlock: warning: Node")
	want := 0
	if !nodeHonoursEnvProxy(strings.TrimSpace(out)) {
		want = 1
	}
	if n != want || (want == 1 && !strings.Contains(r.stderr, "--isolate")) {
		t.Fatalf("node %s: %d warning lines, want %d (suggesting --isolate)\n%s", strings.TrimSpace(out), n, want, r)
	}
	if r := e.ok("", "run", "--", "sh", "-c", "true"); strings.Contains(r.stderr, "warning") {
		t.Errorf("warning for a non-Node command\n%s", r)
	}
}

// TestServeHidesPassphrase plays a same-user agent reading
// /proc/<serve pid>/environ: serve was started with AIRLOCK_PASSPHRASE,
// and must not keep it there (it re-executes itself without it).
func TestServeHidesPassphrase(t *testing.T) {
	t.Parallel()
	if _, err := os.Stat("/proc/self/environ"); err != nil {
		t.Skip("no /proc")
	}
	e := initEnv(t)
	api := newTestAPI(t)
	writeFile(t, filepath.Join(e.home, "policy.yaml"), apiPolicy(api, "a/b"))
	e.ok("sk-hidden\n", "vault", "set", "a/b")
	e.ok("", "agent", "add", "bot")
	s := e.serve(t, api)
	environ, err := os.ReadFile("/proc/" + itoa(s.pid) + "/environ")
	must(t, err)
	if strings.Contains(string(environ), testPassphrase) || strings.Contains(string(environ), "AIRLOCK_PASSPHRASE=") {
		t.Fatalf("/proc/%d/environ of serve holds the passphrase", s.pid)
	}
	if !strings.Contains(string(environ), "AIRLOCK_HOME=") {
		t.Fatalf("environ read is not serve's (no AIRLOCK_HOME): %q", environ)
	}
	// Still serving, with the vault it unlocked.
	r := e.run("", "run", "--", "curl", "-sS", "--fail", api.url+"/v1/x")
	if r.code != 0 || !strings.Contains(r.stdout, digestHex("Bearer sk-hidden")) {
		t.Fatalf("serve does not inject after the re-exec\n%s\n%s", r, s.logs.String())
	}
}

// TestSecondServeNamesProxyPort: a second serve on the same addresses
// fails naming the proxy port, not the admin port.
func TestSecondServeNamesProxyPort(t *testing.T) {
	t.Parallel()
	e := initEnv(t)
	api := newTestAPI(t)
	admin := freeAddr(t)
	s := e.serve(t, api, "--admin", admin)
	waitUntil(t, 10*time.Second, "admin port open", func() bool {
		c, err := net.Dial("tcp", admin)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	r := e.run("", "serve", "--listen", s.addr, "--admin", admin)
	wantError(t, r, exitFailure, "proxy listener "+s.addr)
	if !strings.Contains(r.stderr, "another `airlock serve`") || strings.Contains(r.stderr, "admin listener") {
		t.Fatalf("second serve does not name the proxy port first\n%s", r)
	}
}

// TestServeLogFormat: JSON when stderr is not a terminal (the console
// format on a terminal is checked by TestReadmeQuickstartInPTY), and a
// bad --log-format is a usage error.
func TestServeLogFormat(t *testing.T) {
	t.Parallel()
	e := initEnv(t)
	api := newTestAPI(t)
	s := e.serve(t, api)
	first := strings.SplitN(s.logs.String(), "\n", 2)[0]
	if !strings.HasPrefix(first, `{"level":"info"`) {
		t.Errorf("serve with stderr on a pipe logs %q, want JSON", first)
	}
	wantError(t, e.run("", "serve", "--log-format", "xml"), exitUsage, "--log-format")
}

func itoa(n int) string { return strconv.Itoa(n) }

var execLookPath = exec.LookPath

func execOutput(name string, args ...string) (string, error) {
	b, err := exec.Command(name, args...).Output()
	return string(b), err
}
