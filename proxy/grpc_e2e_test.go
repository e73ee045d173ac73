package proxy_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// gRPC through airlock: a real grpc-go server (its own HTTP/2 transport,
// TLS, a bearer-token interceptor) behind `airlock serve`, and a real
// grpc-go client that reaches it through a CONNECT tunnel and airlock's
// MITM with ALPN h2. No generated code: the service is a hand-written
// ServiceDesc over a bytes codec.

// rawCodec passes messages as *[]byte.
type rawCodec struct{}

func (rawCodec) Marshal(v any) ([]byte, error) {
	b, ok := v.(*[]byte)
	if !ok {
		return nil, fmt.Errorf("rawCodec: %T", v)
	}
	return *b, nil
}

func (rawCodec) Unmarshal(data []byte, v any) error {
	b, ok := v.(*[]byte)
	if !ok {
		return fmt.Errorf("rawCodec: %T", v)
	}
	*b = append((*b)[:0], data...)
	return nil
}

func (rawCodec) Name() string { return "raw" }

// echoServer is the service test.Echo; calls counts the calls that
// reached a method (past the token check).
type echoServer struct{ calls atomic.Int64 }

func (s *echoServer) desc() *grpc.ServiceDesc {
	unary := func(name string, fn func(ctx context.Context, in []byte) ([]byte, error)) grpc.MethodDesc {
		return grpc.MethodDesc{MethodName: name, Handler: func(_ any, ctx context.Context, dec func(any) error, _ grpc.UnaryServerInterceptor) (any, error) {
			var in []byte
			if err := dec(&in); err != nil {
				return nil, err
			}
			if err := checkToken(ctx); err != nil {
				return nil, err
			}
			s.calls.Add(1)
			out, err := fn(ctx, in)
			if err != nil {
				return nil, err
			}
			return &out, nil
		}}
	}
	stream := func(name string, server, client bool, fn func(grpc.ServerStream) error) grpc.StreamDesc {
		return grpc.StreamDesc{StreamName: name, ServerStreams: server, ClientStreams: client, Handler: func(_ any, ss grpc.ServerStream) error {
			if err := checkToken(ss.Context()); err != nil {
				return err
			}
			s.calls.Add(1)
			return fn(ss)
		}}
	}
	return &grpc.ServiceDesc{
		ServiceName: "test.Echo",
		HandlerType: (*any)(nil),
		Methods: []grpc.MethodDesc{
			unary("Unary", func(ctx context.Context, in []byte) ([]byte, error) {
				_ = grpc.SetHeader(ctx, metadata.Pairs("x-head", "h-unary"))
				_ = grpc.SetTrailer(ctx, metadata.Pairs("x-trailer", "t-unary"))
				return append([]byte("echo:"), in...), nil
			}),
			unary("Fail", func(ctx context.Context, _ []byte) ([]byte, error) {
				_ = grpc.SetTrailer(ctx, metadata.Pairs("x-trailer", "t-fail"))
				return nil, status.Error(codes.FailedPrecondition, "upstream says no: 100% über")
			}),
			unary("Secret", func(context.Context, []byte) ([]byte, error) { return []byte("leaked"), nil }),
			unary("Whoami", func(ctx context.Context, _ []byte) ([]byte, error) {
				md, _ := metadata.FromIncomingContext(ctx)
				auth := md.Get("authorization")[0]
				_ = grpc.SetTrailer(ctx, metadata.Pairs("x-echo", auth))
				return []byte("you sent " + auth + " ok"), nil // an echo of the secret
			}),
		},
		Streams: []grpc.StreamDesc{
			stream("Server", true, false, func(ss grpc.ServerStream) error {
				var in []byte
				if err := ss.RecvMsg(&in); err != nil {
					return err
				}
				for i := range 3 {
					out := []byte(fmt.Sprintf("%s-%d", in, i))
					if err := ss.SendMsg(&out); err != nil {
						return err
					}
				}
				ss.SetTrailer(metadata.Pairs("x-trailer", "t-server"))
				return nil
			}),
			stream("Client", false, true, func(ss grpc.ServerStream) error {
				var all []string
				for {
					var in []byte
					err := ss.RecvMsg(&in)
					if errors.Is(err, io.EOF) {
						break
					}
					if err != nil {
						return err
					}
					all = append(all, string(in))
				}
				ss.SetTrailer(metadata.Pairs("x-trailer", "t-client"))
				out := []byte(strings.Join(all, "+"))
				return ss.SendMsg(&out)
			}),
			stream("Bidi", true, true, func(ss grpc.ServerStream) error {
				for {
					var in []byte
					err := ss.RecvMsg(&in)
					if errors.Is(err, io.EOF) {
						ss.SetTrailer(metadata.Pairs("x-trailer", "t-bidi"))
						return nil
					}
					if err != nil {
						return err
					}
					out := append([]byte("re:"), in...)
					if err := ss.SendMsg(&out); err != nil {
						return err
					}
				}
			}),
		},
	}
}

// checkToken is the server's bearer-token check: only airlock knows it.
func checkToken(ctx context.Context) error {
	md, _ := metadata.FromIncomingContext(ctx)
	if got := md.Get("authorization"); len(got) != 1 || got[0] != "Bearer "+secrets["test/bearer"] {
		return status.Error(codes.Unauthenticated, "missing or wrong bearer token")
	}
	return nil
}

// grpcUpstream starts a TLS gRPC server on 127.0.0.1 with httptest's
// certificate and returns it, its host:port and a CA file for airlock.
func grpcUpstream(t *testing.T) (*echoServer, string, string) {
	t.Helper()
	ts := httptest.NewTLSServer(http.NotFoundHandler()) // only for its certificate
	cert, ca := ts.TLS.Certificates[0], ts.Certificate()
	ts.Close()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(grpc.Creds(credentials.NewTLS(&tls.Config{Certificates: []tls.Certificate{cert}})),
		grpc.ForceServerCodec(rawCodec{}))
	es := &echoServer{}
	srv.RegisterService(es.desc(), nil)
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(srv.Stop)
	return es, l.Addr().String(), writeCAFile(t, ca)
}

func writeCAFile(t *testing.T, certs ...*x509.Certificate) string {
	t.Helper()
	var b strings.Builder
	for _, c := range certs {
		b.WriteString("-----BEGIN CERTIFICATE-----\n")
		enc := base64.StdEncoding.EncodeToString(c.Raw)
		for len(enc) > 64 {
			b.WriteString(enc[:64] + "\n")
			enc = enc[64:]
		}
		b.WriteString(enc + "\n-----END CERTIFICATE-----\n")
	}
	p := t.TempDir() + "/up-ca.pem"
	if err := os.WriteFile(p, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// connectTunnel opens a CONNECT tunnel to target through the proxy at
// proxyAddr with the agent's credentials.
func connectTunnel(ctx context.Context, proxyAddr string, agent *url.URL, target string) (net.Conn, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", proxyAddr)
	if err != nil {
		return nil, err
	}
	pw, _ := agent.User.Password()
	auth := base64.StdEncoding.EncodeToString([]byte(agent.User.Username() + ":" + pw))
	fmt.Fprintf(c, "CONNECT %s HTTP/1.1\r\nHost: %s\r\nProxy-Authorization: Basic %s\r\n\r\n", target, target, auth)
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		c.Close()
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		c.Close()
		return nil, fmt.Errorf("CONNECT %s: %s (%s)", target, resp.Status, resp.Header.Get("X-Airlock-Error"))
	}
	if br.Buffered() > 0 {
		c.Close()
		return nil, errors.New("CONNECT: bytes after the response")
	}
	return c, nil
}

// airlockRoots is a pool with airlock's CA.
func (e *env) airlockRoots() *x509.CertPool {
	pool := x509.NewCertPool()
	pem, err := os.ReadFile(e.caFile())
	if err != nil {
		e.t.Fatal(err)
	}
	pool.AppendCertsFromPEM(pem)
	return pool
}

// grpcClient is a grpc-go client to target through airlock.
func (e *env) grpcClient(agent *url.URL, target string) *grpc.ClientConn {
	e.t.Helper()
	cc, err := grpc.NewClient("passthrough:///"+target,
		grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{RootCAs: e.airlockRoots()})),
		grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) {
			return connectTunnel(ctx, e.proxyAddr, agent, addr)
		}),
		grpc.WithDefaultCallOptions(grpc.ForceCodec(rawCodec{})))
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { cc.Close() })
	return cc
}

const grpcPolicy = `version: 1
egress:
  allow_networks: ["127.0.0.0/8"]
rules:
  - name: grpc-secret
    host: "{{GRPC}}"
    paths: ["/test.Echo/Secret"]
    action: deny
  - name: grpc
    host: "{{GRPC}}"
    paths: ["/test.Echo/**"]
    credential: test/bearer
`

func startGRPCEnv(t *testing.T) (*env, *echoServer, string, *url.URL) {
	es, target, caFile := grpcUpstream(t)
	e := newEnv(t)
	e.upCAFile = caFile
	e.setSecret("test/bearer", secrets["test/bearer"])
	agent := e.addAgent("bot")
	e.writePolicy(strings.ReplaceAll(grpcPolicy, "{{GRPC}}", target))
	e.serve()
	t.Cleanup(func() { assertNoSecrets(t, "airlock logs", e.logs.String()) })
	return e, es, target, agent
}

func TestGRPCCallKindsThroughAirlock(t *testing.T) {
	t.Parallel()
	e, es, target, agent := startGRPCEnv(t)
	cc := e.grpcClient(agent, target)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	t.Run("unary", func(t *testing.T) {
		in, out := []byte("hi"), []byte(nil)
		var head, trail metadata.MD
		if err := cc.Invoke(ctx, "/test.Echo/Unary", &in, &out, grpc.Header(&head), grpc.Trailer(&trail)); err != nil {
			t.Fatalf("Unary: %v", err)
		}
		if string(out) != "echo:hi" || first(head, "x-head") != "h-unary" || first(trail, "x-trailer") != "t-unary" {
			t.Errorf("Unary = %q, header %v, trailer %v", out, head, trail)
		}
	})
	t.Run("upstream status and trailers intact", func(t *testing.T) {
		in, out := []byte("x"), []byte(nil)
		var trail metadata.MD
		err := cc.Invoke(ctx, "/test.Echo/Fail", &in, &out, grpc.Trailer(&trail))
		st, _ := status.FromError(err)
		if st.Code() != codes.FailedPrecondition || st.Message() != "upstream says no: 100% über" || first(trail, "x-trailer") != "t-fail" {
			t.Errorf("Fail = %v %q, trailer %v", st.Code(), st.Message(), trail)
		}
	})
	t.Run("server streaming", func(t *testing.T) {
		cs, err := cc.NewStream(ctx, &grpc.StreamDesc{ServerStreams: true}, "/test.Echo/Server")
		if err != nil {
			t.Fatal(err)
		}
		in := []byte("s")
		if err := cs.SendMsg(&in); err != nil {
			t.Fatal(err)
		}
		_ = cs.CloseSend()
		var got []string
		for {
			var m []byte
			if err := cs.RecvMsg(&m); err != nil {
				if !errors.Is(err, io.EOF) {
					t.Fatalf("RecvMsg: %v", err)
				}
				break
			}
			got = append(got, string(m))
		}
		if strings.Join(got, ",") != "s-0,s-1,s-2" || first(cs.Trailer(), "x-trailer") != "t-server" {
			t.Errorf("Server stream = %v, trailer %v", got, cs.Trailer())
		}
	})
	t.Run("client streaming", func(t *testing.T) {
		cs, err := cc.NewStream(ctx, &grpc.StreamDesc{ClientStreams: true}, "/test.Echo/Client")
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range []string{"a", "b", "c"} {
			b := []byte(m)
			if err := cs.SendMsg(&b); err != nil {
				t.Fatal(err)
			}
		}
		_ = cs.CloseSend()
		var out []byte
		if err := cs.RecvMsg(&out); err != nil {
			t.Fatal(err)
		}
		if string(out) != "a+b+c" || first(cs.Trailer(), "x-trailer") != "t-client" {
			t.Errorf("Client stream = %q, trailer %v", out, cs.Trailer())
		}
	})
	t.Run("bidi full duplex", func(t *testing.T) {
		cs, err := cc.NewStream(ctx, &grpc.StreamDesc{ClientStreams: true, ServerStreams: true}, "/test.Echo/Bidi")
		if err != nil {
			t.Fatal(err)
		}
		// Each answer is read before the next message is sent: only a
		// relay that streams the request body both ways passes.
		for _, m := range []string{"1", "2", "3"} {
			b := []byte(m)
			if err := cs.SendMsg(&b); err != nil {
				t.Fatal(err)
			}
			var out []byte
			if err := cs.RecvMsg(&out); err != nil {
				t.Fatalf("RecvMsg after %s: %v", m, err)
			}
			if string(out) != "re:"+m {
				t.Errorf("bidi answer %q, want re:%s", out, m)
			}
		}
		_ = cs.CloseSend()
		var out []byte
		if err := cs.RecvMsg(&out); !errors.Is(err, io.EOF) {
			t.Errorf("end of bidi: %v", err)
		}
		if first(cs.Trailer(), "x-trailer") != "t-bidi" {
			t.Errorf("bidi trailer %v", cs.Trailer())
		}
	})
	if n := es.calls.Load(); n != 5 {
		t.Errorf("upstream served %d calls with the right token, want 5", n)
	}
	waitFor(t, 5*time.Second, func() error {
		if n := strings.Count(e.logs.String(), `"rule":"grpc"`); n < 5 {
			return fmt.Errorf("%d audit lines for rule grpc, want 5 (one per call)", n)
		}
		return nil
	})
}

func TestGRPCDeniedMethodIsPermissionDenied(t *testing.T) {
	t.Parallel()
	e, es, target, agent := startGRPCEnv(t)
	cc := e.grpcClient(agent, target)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	in, out := []byte("x"), []byte(nil)
	var head metadata.MD
	err := cc.Invoke(ctx, "/test.Echo/Secret", &in, &out, grpc.Header(&head))
	st, ok := status.FromError(err)
	if !ok || st.Code() != codes.PermissionDenied {
		t.Fatalf("Secret: %v, want PermissionDenied", err)
	}
	if !strings.HasPrefix(st.Message(), "ACCESS_DENIED: rule grpc-secret denies") {
		t.Errorf("message %q lacks the airlock code", st.Message())
	}
	if es.calls.Load() != 0 || len(out) != 0 {
		t.Errorf("the denied call reached the upstream (%d calls, %q)", es.calls.Load(), out)
	}
	// The connection serves the next call.
	if err := cc.Invoke(ctx, "/test.Echo/Unary", &in, &out); err != nil || string(out) != "echo:x" {
		t.Errorf("Unary after a denial: %q, %v", out, err)
	}
}

func first(md metadata.MD, k string) string {
	if v := md.Get(k); len(v) > 0 {
		return v[0]
	}
	return ""
}

func TestGRPCEchoOfTheSecretIsScrubbed(t *testing.T) {
	t.Parallel()
	e, _, target, agent := startGRPCEnv(t)
	cc := e.grpcClient(agent, target)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	in, out := []byte("x"), []byte(nil)
	var trail metadata.MD
	if err := cc.Invoke(ctx, "/test.Echo/Whoami", &in, &out, grpc.Trailer(&trail)); err != nil {
		t.Fatalf("Whoami: %v (a scrubbed message must still be a well-framed gRPC message)", err)
	}
	if string(out) != "you sent Bearer [REDACTED:test/bearer] ok" {
		t.Errorf("message = %q", out)
	}
	if got := first(trail, "x-echo"); got != "Bearer [REDACTED:test/bearer]" {
		t.Errorf("trailer x-echo = %q", got)
	}
	assertNoSecrets(t, "the agent's gRPC message", string(out))
	assertNoSecrets(t, "the agent's gRPC trailers", fmt.Sprint(trail))
}
