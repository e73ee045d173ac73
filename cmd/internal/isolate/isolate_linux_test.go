package isolate

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/airlock/airlock/proxy/testkit"
	"github.com/airlock/airlock/proxy/transparent"
)

func TestMain(m *testing.M) {
	MaybeInit()
	if mode := os.Getenv("ISOLATE_TEST_CHILD"); mode != "" {
		os.Exit(childMain(mode))
	}
	os.Exit(m.Run())
}

// childMain runs inside the namespaces as CMD.
func childMain(mode string) int {
	switch mode {
	case "goclient":
		// No proxy configuration at all: Proxy nil, default dialer and resolver.
		pool := x509.NewCertPool()
		pem, _ := os.ReadFile(os.Getenv("TEST_CA"))
		pool.AppendCertsFromPEM(pem)
		c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{Proxy: nil, TLSClientConfig: &tls.Config{RootCAs: pool}}}
		resp, err := c.Get("https://api.example.test/go")
		if err != nil {
			fmt.Println("error:", err)
			return 3
		}
		b, _ := io.ReadAll(resp.Body)
		fmt.Println(string(b))
		return 0
	case "bench":
		return benchChild()
	case "userparent":
		return userParent()
	case "ttyparent":
		// airlock's side under a terminal: CMD must see the TTY on stdin and
		// get the terminal's Ctrl-C exactly once.
		script := `[ -t 0 ] && echo STDIN-TTY
n=0
trap 'n=$((n+1))' INT
echo READY
while [ $n -eq 0 ]; do sleep 0.05; done
sleep 0.3
echo "INTS=$n"
exit 9`
		code, err := Run(context.Background(), Options{Argv: []string{"sh", "-c", script},
			Handler: func(_ context.Context, c *transparent.Conn) { c.Close() },
			Env:     func(Network) []string { return []string{"PATH=" + os.Getenv("PATH")} }})
		fmt.Printf("run: code=%d err=%v\n", code, err)
		return 0
	case "udp":
		// UDP anywhere but the DNS responder, then a DNS lookup that must work.
		for _, dst := range strings.Split(os.Getenv("UDP_TARGETS"), ",") {
			if c, err := net.Dial("udp4", dst); err == nil {
				_, _ = c.Write([]byte("escape"))
				c.Close()
			}
		}
		addrs, err := net.DefaultResolver.LookupHost(context.Background(), "some.name.test")
		fmt.Println("dns:", addrs, err)
		return 0
	}
	return 2
}

// skipUnlessRoot skips with the reason when root mode cannot run.
func skipUnlessRoot(t testing.TB) {
	t.Helper()
	if err := Supported(); err != nil {
		t.Skipf("root isolation unavailable: %v", err)
	}
}

type isoResult struct {
	code   int
	stdout string
	stderr string
	net    Network
}

// runIso runs argv isolated with h as the transparent handler.
func runIso(t *testing.T, o Options) isoResult {
	t.Helper()
	outR, outW, _ := os.Pipe()
	errR, errW, _ := os.Pipe()
	var out, errb bytes.Buffer
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); io.Copy(&out, outR) }()
	go func() { defer wg.Done(); io.Copy(&errb, errR) }()
	o.Stdin, o.Stdout, o.Stderr = nil, outW, errW
	if o.Agent == "" {
		o.Agent = "bot"
	}
	var n Network
	ready := o.Ready
	o.Ready = func(nw Network) {
		n = nw
		if ready != nil {
			ready(nw)
		}
	}
	if o.Handler == nil {
		o.Handler = func(_ context.Context, c *transparent.Conn) { c.Close() }
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	code, err := Run(ctx, o)
	outW.Close()
	errW.Close()
	wg.Wait()
	if err != nil {
		t.Fatalf("Run: %v (stderr %q)", err, errb.String())
	}
	return isoResult{code: code, stdout: out.String(), stderr: errb.String(), net: n}
}

// stubTLS answers one request over TLS with "stub SNI PATH agent orig".
func stubTLS(ca *testCA, seen chan<- *transparent.Conn) transparent.Handler {
	return func(_ context.Context, c *transparent.Conn) {
		defer c.Close()
		if seen != nil {
			seen <- c
		}
		tc := tls.Server(c, &tls.Config{GetCertificate: func(h *tls.ClientHelloInfo) (*tls.Certificate, error) {
			return ca.leaf(h.ServerName)
		}})
		if err := tc.Handshake(); err != nil {
			return
		}
		req, err := http.ReadRequest(bufio.NewReader(tc))
		if err != nil {
			return
		}
		body := fmt.Sprintf("stub %s %s agent=%s orig-port=%d", c.ServerName, req.URL.Path, c.Agent, c.OrigDst.Port())
		fmt.Fprintf(tc, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s", len(body), body)
	}
}

// TestIsolatedClientsReachStub: curl and a Go client, neither configured
// with any proxy, connect to api.example.test:443 from inside; DNS gives a
// synthetic address, the host-side rule redirects the connection to the
// transparent listener, which recovers the original destination and SNI,
// and the stub answers over TLS with a CA the clients trust.
func TestIsolatedClientsReachStub(t *testing.T) {
	skipUnlessRoot(t)
	ca := newTestCA(t)
	caPath := filepath.Join(t.TempDir(), "ca.pem")
	cases := map[string][]string{
		"curl":     {"curl", "-sS", "--max-time", "10", "https://api.example.test/curl"},
		"goclient": {os.Args[0], "-test.run=^$"},
	}
	for _, mode := range []Mode{ModeRoot, ModeUser} {
		for name, argv := range cases {
			t.Run(mode.String()+"/"+name, func(t *testing.T) { clientReachesStub(t, mode, name, argv, ca, caPath) })
		}
	}
}

func clientReachesStub(t *testing.T, mode Mode, name string, argv []string, ca *testCA, caPath string) {
	{
		{
			if _, err := exec.LookPath(argv[0]); err != nil {
				t.Skipf("%s not installed", argv[0])
			}
			seen := make(chan *transparent.Conn, 4)
			r := runIso(t, Options{Mode: mode, Argv: argv, Handler: stubTLS(ca, seen),
				Hide: []string{filepath.Dir(caPath)}, Files: map[string][]byte{caPath: ca.pem},
				Env: func(Network) []string {
					return []string{"PATH=" + os.Getenv("PATH"), "SSL_CERT_FILE=" + caPath, "CURL_CA_BUNDLE=" + caPath,
						"TEST_CA=" + caPath, "ISOLATE_TEST_CHILD=" + name, testkit.GORACE()}
				}})
			path := "/" + name
			if name == "goclient" {
				path = "/go"
			}
			want := "stub api.example.test " + path + " agent=bot orig-port=443"
			if r.code != 0 || strings.TrimSpace(r.stdout) != want {
				t.Fatalf("code %d stdout %q stderr %q, want %q", r.code, r.stdout, r.stderr, want)
			}
			c := <-seen
			if !SyntheticPool.Contains(c.OrigDst.Addr()) || !c.TLS {
				t.Fatalf("original destination %v (tls %v), want a synthetic DNS address", c.OrigDst, c.TLS)
			}
		}
	}
}

// TestIsolatedUDPDropped: UDP to the host end (where a listener waits) and
// to an outside address is dropped, while DNS to the responder answers.
func TestIsolatedUDPDropped(t *testing.T) {
	skipUnlessRoot(t)
	pc, err := net.ListenPacket("udp4", "0.0.0.0:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	port := pc.LocalAddr().(*net.UDPAddr).Port
	// The Env hook runs once the host address is known.
	r := runIso(t, Options{Argv: []string{os.Args[0], "-test.run=^$"},
		Env: func(n Network) []string {
			return []string{"ISOLATE_TEST_CHILD=udp", fmt.Sprintf("UDP_TARGETS=%s:%d,203.0.113.9:%d,%s:53", n.Host, port, port, "127.0.0.1"), testkit.GORACE()}
		}})
	if r.code != 0 || !strings.Contains(r.stdout, "dns: [198.18.") {
		t.Fatalf("code %d stdout %q stderr %q", r.code, r.stdout, r.stderr)
	}
	_ = pc.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	if n, from, err := pc.ReadFrom(make([]byte, 64)); err == nil {
		t.Fatalf("host listener received %d bytes from %v: UDP escaped the namespace", n, from)
	}
}

// TestIsolatedHostUnreachable: a host service on 127.0.0.1 (like the admin
// port) is unreachable from the child, and a service on every host address
// never sees the child's connection: the door refuses connections to the
// host end (other than the proxy port) before any handler.
func TestIsolatedHostUnreachable(t *testing.T) {
	skipUnlessRoot(t)
	lo, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer lo.Close()
	any, err := net.Listen("tcp4", "0.0.0.0:0")
	if err != nil {
		t.Fatal(err)
	}
	defer any.Close()
	var accepted sync.WaitGroup
	hits := make(chan string, 4)
	for _, l := range []net.Listener{lo, any} {
		accepted.Add(1)
		go func() {
			defer accepted.Done()
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				hits <- c.RemoteAddr().String()
				c.Close()
			}
		}()
	}
	loPort, anyPort := lo.Addr().(*net.TCPAddr).Port, any.Addr().(*net.TCPAddr).Port
	seen := make(chan netip.AddrPort, 4)
	script := fmt.Sprintf(`curl -s --max-time 3 http://127.0.0.1:%d/ && echo LOOPBACK-REACHED
curl -s --max-time 3 http://$HOST:%d/ && echo HOST-REACHED
exit 0`, loPort, anyPort)
	r := runIso(t, Options{Argv: []string{"sh", "-c", script},
		Handler: func(_ context.Context, c *transparent.Conn) { seen <- c.OrigDst; c.Close() },
		Env: func(n Network) []string {
			return []string{"PATH=" + os.Getenv("PATH"), "HOST=" + n.Host.String()}
		}})
	lo.Close()
	any.Close()
	accepted.Wait()
	if strings.Contains(r.stdout, "REACHED") || len(hits) > 0 {
		t.Fatalf("host service reached: stdout %q, accepted from %d clients", r.stdout, len(hits))
	}
	select {
	case got := <-seen:
		t.Fatalf("a connection to the host end (%v) reached the handler", got)
	default:
	}
}

// TestIsolatedFilesAndProcs: the home is empty but for the written-back CA,
// host processes and their environ are invisible, and CMD (root) holds no
// capability, so it cannot unmount the cover or change the rules.
func TestIsolatedFilesAndProcs(t *testing.T) {
	skipUnlessRoot(t)
	for _, mode := range []Mode{ModeRoot, ModeUser} {
		t.Run(mode.String(), func(t *testing.T) { filesAndProcs(t, mode) })
	}
}

func filesAndProcs(t *testing.T, mode Mode) {
	home := t.TempDir()
	os.MkdirAll(filepath.Join(home, "keys"), 0o700)
	os.WriteFile(filepath.Join(home, "keys", "bot.key"), []byte("SEED-SECRET"), 0o600)
	ca := filepath.Join(home, "ca.pem")
	script := fmt.Sprintf(`cat %[1]s/keys/bot.key && echo KEY-READ
cat /proc/%[2]d/environ && echo ENVIRON-READ
ls -A %[1]s
grep CapEff /proc/self/status
umount %[1]s 2>/dev/null && echo UMOUNTED
nft flush ruleset 2>/dev/null && echo NFT-FLUSHED
cat /proc/1/cmdline | tr '\0' ' '; echo
exit 0`, home, os.Getpid())
	r := runIso(t, Options{Mode: mode, Argv: []string{"sh", "-c", script}, Hide: []string{home}, Files: map[string][]byte{ca: []byte("CA")},
		Env: func(Network) []string { return []string{"PATH=" + os.Getenv("PATH")} }})
	for _, bad := range []string{"SEED-SECRET", "KEY-READ", "ENVIRON-READ", "UMOUNTED", "NFT-FLUSHED", "keys"} {
		if strings.Contains(r.stdout, bad) {
			t.Errorf("child output holds %q:\n%s", bad, r.stdout)
		}
	}
	if !strings.Contains(r.stdout, "ca.pem") || !strings.Contains(r.stdout, "CapEff:\t0000000000000000") {
		t.Errorf("want the CA written back and no effective capability:\n%s", r.stdout)
	}
	if strings.Contains(r.stdout, "systemd") || strings.Contains(r.stdout, "init ") && !strings.Contains(r.stdout, os.Args[0]) {
		t.Errorf("PID 1 inside is not airlock's init:\n%s", r.stdout)
	}
}

// TestIsolatedExitAndSignals: exit codes pass through, and a signal sent to
// airlock reaches CMD (a trap turns it into a code; without one CMD dies of
// it: 128+15).
func TestIsolatedExitAndSignals(t *testing.T) {
	skipUnlessRoot(t)
	env := func(Network) []string { return []string{"PATH=" + os.Getenv("PATH")} }
	if r := runIso(t, Options{Argv: []string{"sh", "-c", "exit 7"}, Env: env}); r.code != 7 {
		t.Fatalf("exit code %d, want 7 (stderr %q)", r.code, r.stderr)
	}
	if r := runIso(t, Options{Argv: []string{"no-such-command-xyz"}, Env: env}); r.code != 127 || !strings.Contains(r.stderr, "not found") {
		t.Fatalf("missing command: code %d stderr %q", r.code, r.stderr)
	}
	cases := map[string]struct {
		script string
		want   int
	}{
		"trapped":   {script: `trap 'exit 42' TERM; touch "$MARK"; while :; do sleep 0.05; done`, want: 42},
		"untrapped": {script: `touch "$MARK"; exec sleep 30`, want: 128 + int(syscall.SIGTERM)},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			mark := filepath.Join(t.TempDir(), "started")
			r := runIso(t, Options{Argv: []string{"sh", "-c", tc.script},
				Env: func(Network) []string { return []string{"PATH=" + os.Getenv("PATH"), "MARK=" + mark} },
				Ready: func(Network) {
					go func() {
						for _, err := os.Stat(mark); err != nil; _, err = os.Stat(mark) {
							time.Sleep(10 * time.Millisecond)
						}
						time.Sleep(50 * time.Millisecond) // let exec sleep replace sh
						_ = syscall.Kill(os.Getpid(), syscall.SIGTERM)
					}()
				}})
			if r.code != tc.want {
				t.Fatalf("code %d, want %d (stderr %q)", r.code, tc.want, r.stderr)
			}
		})
	}
}

// TestCleanup: after a run, no table and no veth of it remain.
func TestCleanup(t *testing.T) {
	skipUnlessRoot(t)
	var n Network
	runIso(t, Options{Argv: []string{"true"}, Ready: func(nw Network) { n = nw },
		Env: func(Network) []string { return []string{"PATH=" + os.Getenv("PATH")} }})
	out, _ := exec.Command("nft", "list", "tables").Output()
	if bytes.Contains(out, []byte(tablePrefix+fmt.Sprint(os.Getpid()))) {
		t.Fatalf("table left behind:\n%s", out)
	}
	addrs, _ := net.InterfaceAddrs()
	for _, a := range addrs {
		if strings.HasPrefix(a.String(), n.Host.String()+"/") {
			t.Fatalf("veth address %v left behind", a)
		}
	}
}

// testCA is a throwaway CA the child trusts.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func newTestCA(t testing.TB) *testCA {
	t.Helper()
	ca, err := makeCA()
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

func makeCA() (*testCA, error) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "isolate test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	cert, _ := x509.ParseCertificate(der)
	return &testCA{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}, nil
}

func (ca *testCA) leaf(name string) (*tls.Certificate, error) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: name},
		DNSNames: []string{name}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		return nil, err
	}
	return &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}

// userParent runs as an ordinary user: airlock's side of unprivileged mode.
func userParent() int {
	ca, err := makeCA()
	if err != nil {
		fmt.Println("ca:", err)
		return 2
	}
	dir, _ := os.MkdirTemp("", "isolate-user-")
	defer os.RemoveAll(dir)
	caFile := filepath.Join(dir, "ca.pem")
	os.WriteFile(caFile, ca.pem, 0o644)
	script := `curl -sS --max-time 10 https://api.example.test/user; echo
grep CapEff /proc/self/status
id -u
cat /proc/` + strconv.Itoa(os.Getppid()) + `/environ >/dev/null 2>&1 && echo ENVIRON-READ
exit 5`
	code, err := Run(context.Background(), Options{Mode: ModeUser, Argv: []string{"sh", "-c", script}, Agent: "bot",
		Handler: stubTLS(ca, nil),
		Env:     func(Network) []string { return []string{"PATH=" + os.Getenv("PATH"), "SSL_CERT_FILE=" + caFile} }})
	fmt.Printf("run: code=%d err=%v uid=%d\n", code, err, os.Getuid())
	return 0
}

// TestUserModeAsOrdinaryUser: an ordinary user (nobody) runs unprivileged
// mode; curl with no proxy configuration reaches the stub through the
// doors handed out of the namespace, CMD holds no capability, and its exit
// status comes back.
func TestUserModeAsOrdinaryUser(t *testing.T) {
	skipUnlessRoot(t)
	if err := UserSupported(); err != nil {
		t.Skipf("unprivileged mode unavailable: %v", err)
	}
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skip("curl not installed")
	}
	dir, err := os.MkdirTemp("", "isolate-bin-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	os.Chmod(dir, 0o755)
	bin := filepath.Join(dir, "isolate.test")
	src, _ := os.ReadFile(os.Args[0])
	if err := os.WriteFile(bin, src, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-test.run=^$")
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "ISOLATE_TEST_CHILD=userparent", "TMPDIR=/tmp", testkit.GORACE()}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	s := string(out)
	for _, want := range []string{"stub api.example.test /user agent=bot orig-port=443", "CapEff:\t0000000000000000", "run: code=5 err=<nil> uid=65534"} {
		if !strings.Contains(s, want) {
			t.Errorf("output lacks %q:\n%s", want, s)
		}
	}
	if strings.Contains(s, "ENVIRON-READ") {
		t.Errorf("child read airlock's environ:\n%s", s)
	}
}

// TestIsolatedTTYCtrlC: under a terminal (script(1) gives one), CMD sees a
// TTY on stdin and the terminal's Ctrl-C reaches it exactly once (CMD holds
// the foreground process group; airlock and the init do not relay it a
// second time).
func TestIsolatedTTYCtrlC(t *testing.T) {
	skipUnlessRoot(t)
	if _, err := exec.LookPath("script"); err != nil {
		t.Skip("script(1) not installed")
	}
	cmd := exec.Command("script", "-qefc", os.Args[0]+" -test.run=^$", "/dev/null")
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "ISOLATE_TEST_CHILD=ttyparent", testkit.GORACE()}
	stdin, _ := cmd.StdinPipe()
	defer stdin.Close()
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	var out strings.Builder
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		line := sc.Text()
		out.WriteString(line + "\n")
		if strings.Contains(line, "READY") {
			stdin.Write([]byte{0x03}) // the terminal's interrupt character
		}
		if strings.Contains(line, "run: ") {
			break
		}
	}
	s := out.String()
	for _, want := range []string{"STDIN-TTY", "INTS=1", "run: code=9 err=<nil>"} {
		if !strings.Contains(s, want) {
			t.Errorf("output lacks %q:\n%s", want, s)
		}
	}
}
