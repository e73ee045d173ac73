package transparent

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// testNetns is a network namespace the test created, with a dummy default
// route and an nftables OUTPUT redirect of TCP 443 to local ports, as the
// Kubernetes init container installs for the sidecar.
type testNetns struct {
	name string
	fd   int
}

func newTestNetns(t *testing.T) *testNetns {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to create a network namespace")
	}
	for _, tool := range []string{"ip", "nft"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed", tool)
		}
	}
	n := &testNetns{name: fmt.Sprintf("airlock-tt-%d", os.Getpid())}
	run(t, "ip", "netns", "add", n.name)
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", n.name).Run() })
	run(t, "ip", "-n", n.name, "-batch", "-", `link set lo up
link add d0 type veth peer name d1
link set d1 up
link set d0 up
addr add 192.0.2.1/24 dev d0
addr add 2001:db8:1::1/64 dev d0 nodad
route add default dev d0
route add ::/0 dev d0
`)
	fd, err := unix.Open(filepath.Join("/run/netns", n.name), unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	n.fd = fd
	t.Cleanup(func() { unix.Close(fd) })
	return n
}

func run(t *testing.T, argv ...string) {
	t.Helper()
	var stdin string
	if len(argv) > 0 && argv[len(argv)-2] == "-" {
		stdin, argv = argv[len(argv)-1], argv[:len(argv)-1]
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdin = strings.NewReader(stdin)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%v: %v\n%s", argv, err, out)
	}
}

// do runs f on an OS thread inside the namespace; sockets f creates stay
// in it. The thread is discarded afterwards.
func (n *testNetns) do(f func()) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread dies with the goroutine
		if err := unix.Setns(n.fd, unix.CLONE_NEWNET); err != nil {
			errc <- err
			return
		}
		f()
		errc <- nil
	}()
	return <-errc
}

// TestRedirectedClients: inside a namespace with a REDIRECT rule, curl and
// a Go client with Proxy: nil connect to api.example.test:443 (IPv4 and
// IPv6); the listener recovers the original destination with
// SO_ORIGINAL_DST / IP6T_SO_ORIGINAL_DST and the SNI, and a stub answers
// over TLS with a CA the clients trust.
func TestRedirectedClients(t *testing.T) {
	n := newTestNetns(t)
	ca := newTestCA(t)
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	os.WriteFile(caFile, ca.pem, 0o644)
	seen := make(chan *Conn, 8)
	ports := map[string]int{}
	for _, fam := range []struct{ net, addr string }{{"tcp4", "127.0.0.1:0"}, {"tcp6", "[::1]:0"}} {
		var ln net.Listener
		var lerr error
		if err := n.do(func() { ln, lerr = net.Listen(fam.net, fam.addr) }); err != nil || lerr != nil {
			t.Fatal(err, lerr)
		}
		ports[fam.net] = ln.Addr().(*net.TCPAddr).Port
		l, err := New(ln, Config{Agent: "pod-agent"}, func(_ context.Context, c *Conn) { seen <- c; serveStubTLS(c, ca) })
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- l.Serve(ctx) }()
		t.Cleanup(func() { cancel(); <-done })
	}
	run(t, "ip", "netns", "exec", n.name, "nft", "-f", "-", fmt.Sprintf(`table inet airlock_test {
	chain out {
		type nat hook output priority -100; policy accept;
		meta nfproto ipv4 tcp dport 443 redirect to :%d
		meta nfproto ipv6 tcp dport 443 redirect to :%d
	}
}
`, ports["tcp4"], ports["tcp6"]))
	cases := map[string]struct {
		dst    string
		client func(dst string) (string, error)
	}{
		"curl ipv4":      {dst: "203.0.113.7:443", client: func(d string) (string, error) { return curlIn(n, caFile, d) }},
		"curl ipv6":      {dst: "[2001:db8::7]:443", client: func(d string) (string, error) { return curlIn(n, caFile, d) }},
		"go client ipv4": {dst: "203.0.113.7:443", client: func(d string) (string, error) { return goClientIn(n, ca, d) }},
		"go client ipv6": {dst: "[2001:db8::7]:443", client: func(d string) (string, error) { return goClientIn(n, ca, d) }},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			if strings.HasPrefix(name, "curl") {
				if _, err := exec.LookPath("curl"); err != nil {
					t.Skip("curl not installed")
				}
			}
			body, err := tc.client(tc.dst)
			if err != nil {
				t.Fatal(err)
			}
			if body != "stub api.example.test /x" {
				t.Fatalf("body %q", body)
			}
			c := <-seen
			if c.OrigDst != netip.MustParseAddrPort(tc.dst) || c.ServerName != "api.example.test" || c.Agent != "pod-agent" {
				t.Fatalf("handed dst %v name %q agent %q, want %s", c.OrigDst, c.ServerName, c.Agent, tc.dst)
			}
		})
	}
}

// curlIn runs curl in the namespace, no proxy, api.example.test pinned to dst.
func curlIn(n *testNetns, caFile, dst string) (string, error) {
	host, port, _ := net.SplitHostPort(dst)
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	cmd := exec.Command("ip", "netns", "exec", n.name, "curl", "-sS", "--max-time", "10", "--noproxy", "*",
		"--cacert", caFile, "--resolve", "api.example.test:"+port+":"+host, "https://api.example.test/x")
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("curl: %v: %s", err, out)
	}
	return string(out), nil
}

// goClientIn makes a request with Proxy: nil whose socket lives in the
// namespace; api.example.test is pinned to dst as /etc/hosts would.
func goClientIn(n *testNetns, ca *testCA, dst string) (string, error) {
	tr := &http.Transport{Proxy: nil, TLSClientConfig: &tls.Config{RootCAs: ca.pool},
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var c net.Conn
			var err error
			if nerr := n.do(func() { c, err = (&net.Dialer{}).DialContext(ctx, network, dst) }); nerr != nil {
				return nil, nerr
			}
			return c, err
		}}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Get("https://api.example.test/x")
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}
