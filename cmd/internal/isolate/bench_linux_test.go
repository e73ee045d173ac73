package isolate

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/airlock/airlock/proxy/testkit"
)

// benchResult is what the bench child prints.
type benchResult struct {
	NsPerOp float64
	P50Ns   float64
	CPUNs   float64 // the child's own user+system time
	Errors  int
}

// benchChild makes BENCH_N HTTPS requests at BENCH_C concurrency to
// https://api.example.test/, one new connection each (the transparent
// door's cost is per connection), and prints a benchResult.
func benchChild() int {
	n, _ := strconv.Atoi(os.Getenv("BENCH_N"))
	c, _ := strconv.Atoi(os.Getenv("BENCH_C"))
	pool := x509.NewCertPool()
	pem, _ := os.ReadFile(os.Getenv("TEST_CA"))
	pool.AppendCertsFromPEM(pem)
	tr := &http.Transport{Proxy: http.ProxyFromEnvironment, DisableKeepAlives: true, TLSClientConfig: &tls.Config{RootCAs: pool}}
	client := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	lat := make([]time.Duration, n)
	var errs int
	var mu sync.Mutex // guards errs
	work := make(chan int)
	var wg sync.WaitGroup
	start := time.Now()
	for range c {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				t0 := time.Now()
				resp, err := client.Get("https://api.example.test/")
				if err == nil {
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
				if err != nil || resp.StatusCode != 200 {
					mu.Lock()
					errs++
					mu.Unlock()
				}
				lat[i] = time.Since(t0)
			}
		}()
	}
	for i := range n {
		work <- i
	}
	close(work)
	wg.Wait()
	total := time.Since(start)
	slices.Sort(lat)
	_ = json.NewEncoder(os.Stdout).Encode(benchResult{NsPerOp: float64(total.Nanoseconds()) / float64(n), P50Ns: float64(lat[n/2].Nanoseconds()),
		CPUNs: float64(selfCPU().Nanoseconds()), Errors: errs})
	return 0
}

// selfCPU is this process's user+system time so far.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkIsolated compares requests through HTTPS_PROXY without
// isolation ("explicit"), through --isolate with the proxy variables
// honoured ("isolated-explicit": spliced from the veth to the proxy), and
// through --isolate with no proxy configuration ("isolated-transparent":
// redirect + SNI peek + CONNECT hand-off), at c=1 and c=50. The proxy is a
// MITM stand-in for `airlock serve` on loopback. The child measures: see
// the child-ns/op and p50-ns metrics (ns/op includes process start-up).
// On a shared machine compare CPU time: client-cpu-ns/op is the child's,
// proxy-cpu-ns/op this process's (the stand-in proxy, and for the
// isolated modes the doors and the splice to the proxy).
//
//	sudo go test -run '^$' -bench Isolated -benchtime 2000x ./cmd/internal/isolate/
func BenchmarkIsolated(b *testing.B) {
	skipUnlessRoot(b)
	ca := newTestCA(b)
	dir := b.TempDir()
	caFile := dir + "/ca.pem"
	os.WriteFile(caFile, ca.pem, 0o644)
	proxyAddr := benchProxy(b, ca)
	_, portStr, _ := net.SplitHostPort(proxyAddr)
	port, _ := strconv.Atoi(portStr)
	cred := Credential{Agent: "bench", Token: "t"}
	for _, mode := range []string{"explicit", "isolated-explicit", "isolated-transparent"} {
		for _, c := range []int{1, 50} {
			b.Run(fmt.Sprintf("%s/c=%d", mode, c), func(b *testing.B) {
				env := []string{"ISOLATE_TEST_CHILD=bench", "TEST_CA=" + caFile, "BENCH_N=" + strconv.Itoa(b.N), "BENCH_C=" + strconv.Itoa(c), testkit.GORACE()}
				var out []byte
				var err error
				cpu0 := selfCPU()
				switch mode {
				case "explicit":
					cmd := exec.Command(os.Args[0], "-test.run=^$")
					cmd.Env = append(env, "HTTPS_PROXY=http://bench:t@"+proxyAddr)
					out, err = cmd.Output()
				default:
					out, err = benchIsolated(b, Options{Argv: []string{os.Args[0], "-test.run=^$"},
						Handler: ForwardCONNECT(proxyAddr, cred, nil), ProxyAddr: proxyAddr, ProxyPort: uint16(port), Agent: "bench",
						Env: func(n Network) []string {
							if mode == "isolated-explicit" {
								return append(env, "HTTPS_PROXY=http://bench:t@"+net.JoinHostPort(n.Host.String(), portStr))
							}
							return env
						}})
				}
				cpu := selfCPU() - cpu0
				var r benchResult
				if err != nil || json.Unmarshal(out, &r) != nil || r.Errors > 0 {
					b.Fatalf("child: %v, %q", err, out)
				}
				b.ReportMetric(r.NsPerOp, "child-ns/op")
				b.ReportMetric(r.P50Ns, "p50-ns")
				b.ReportMetric(r.CPUNs/float64(b.N), "client-cpu-ns/op")
				b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "proxy-cpu-ns/op")
			})
		}
	}
}

func benchIsolated(b *testing.B, o Options) ([]byte, error) {
	outR, outW, _ := os.Pipe()
	var out []byte
	done := make(chan struct{})
	go func() { out, _ = io.ReadAll(outR); close(done) }()
	o.Stdout = outW
	code, err := Run(context.Background(), o)
	outW.Close()
	<-done
	if err == nil && code != 0 {
		err = fmt.Errorf("exit %d", code)
	}
	return out, err
}

// benchProxy is a MITM CONNECT proxy standing in for airlock: it
// terminates TLS with a leaf for the CONNECT host and answers every
// request itself.
func benchProxy(b *testing.B, ca *testCA) string {
	leaf, err := ca.leaf("api.example.test")
	if err != nil {
		b.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { ln.Close() })
	handler := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok") })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				req, err := http.ReadRequest(br)
				if err != nil || req.Method != http.MethodConnect || !strings.HasPrefix(req.Header.Get("Proxy-Authorization"), "Basic ") {
					return
				}
				io.WriteString(c, "HTTP/1.1 200 OK\r\n\r\n")
				tc := tls.Server(&readerConn{Conn: c, r: br}, &tls.Config{Certificates: []tls.Certificate{*leaf}})
				srv := &http.Server{Handler: handler}
				_ = srv.Serve(&singleListener{c: tc})
			}()
		}
	}()
	return ln.Addr().String()
}

type readerConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *readerConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// singleListener yields one connection, then reports closed once it ends.
type singleListener struct {
	c    net.Conn
	once sync.Once
	gone chan struct{}
}

func (l *singleListener) Accept() (net.Conn, error) {
	var c net.Conn
	l.once.Do(func() {
		l.gone = make(chan struct{})
		c = &notifyConn{Conn: l.c, gone: l.gone}
	})
	if c != nil {
		return c, nil
	}
	<-l.gone
	return nil, net.ErrClosed
}
func (l *singleListener) Close() error   { return nil }
func (l *singleListener) Addr() net.Addr { return l.c.LocalAddr() }

type notifyConn struct {
	net.Conn
	gone chan struct{}
	once sync.Once
}

func (c *notifyConn) Close() error {
	c.once.Do(func() { close(c.gone) })
	return c.Conn.Close()
}
