package rpc

import (
	"context"
	"crypto/ed25519"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/airlock/airlock/policy"
	"github.com/airlock/airlock/proxy/door"
	"github.com/airlock/airlock/proxy/testkit"
	"github.com/airlock/airlock/vault"
)

// Test secrets: distinctive so leaks are easy to spot.
const (
	tokenSecret  = "tok-SECRET-0123456789"
	customSecret = "custom-SECRET-abcdef"
	signSecret   = "sign-SECRET-key"
	dbSecret     = "db-SECRET-password"
	oldSecret    = "old-SECRET-expired"
)

var allSecrets = []string{tokenSecret, customSecret, signSecret, dbSecret, oldSecret}

// clock is an injectable time source.
type clock struct {
	mu sync.Mutex // guards t
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// codedError is how the fake pipeline refuses, as proxy.Error does.
type codedError struct{ code, msg string }

func (e *codedError) Error() string     { return e.code + ": " + e.msg }
func (e *codedError) ErrorCode() string { return e.code }

// fakeBackend stands in for proxy.Server: its Judge decides by the real
// policy, Forward injects per the rule and sends to a loopback TLS server.
type fakeBackend struct {
	data   atomic.Pointer[vault.Data]
	pol    atomic.Pointer[policy.Policy]
	client *http.Client
	clock  *clock
}

func (b *fakeBackend) Snapshot() *vault.Data  { return b.data.Load() }
func (b *fakeBackend) Policy() *policy.Policy { return b.pol.Load() }

// Judge is the fake pipeline: the grant, the credential from the vault data, and for
// http_request the rule matching the URL (which must bind it), for
// http_header the rule naming it.
func (b *fakeBackend) Judge(_ context.Context, r door.Request) (*door.Decision, error) {
	var grant *policy.Grant
	for _, a := range r.Actions {
		if g, ok := b.Policy().Allowed(r.Agent, r.Credential, a); ok {
			grant = g
			break
		}
	}
	if grant == nil && len(r.Actions) > 0 {
		return nil, &codedError{"ACCESS_DENIED", "agent " + r.Agent + " may not " + r.Actions[0] + " " + r.Credential}
	}
	cred := b.Snapshot().Credentials[r.Credential]
	if cred == nil {
		return nil, &codedError{"CREDENTIAL_NOT_FOUND", "no credential " + r.Credential}
	}
	if cred.Expired(b.clock.Now()) {
		return nil, &codedError{"CREDENTIAL_EXPIRED", "credential " + r.Credential + " has expired"}
	}
	dec := &door.Decision{Agent: r.Agent, Credential: cred, Grant: grant}
	switch r.Operation {
	case door.OpHTTPRequest:
		port, _ := strconv.Atoi(r.URL.Port())
		rule := b.Policy().Match(r.Agent, r.Method, r.URL.Hostname(), port, policy.CleanPath(r.URL.Path))
		if rule == nil || rule.Credential != r.Credential {
			return nil, &codedError{"ACCESS_DENIED", "no rule binds " + r.Credential + " to " + r.URL.Host}
		}
		dec.Rule = rule
	case door.OpHTTPHeader:
		for _, rule := range b.Policy().Rules {
			if rule.Credential == r.Credential && rule.AppliesTo(r.Agent) {
				dec.Rule = rule
				break
			}
		}
		if dec.Rule == nil {
			return nil, &codedError{"ACCESS_DENIED", "no rule injects " + r.Credential}
		}
	}
	return dec, nil
}

// Forward injects per the decision's rule and sends to the loopback upstream.
func (b *fakeBackend) Forward(ctx context.Context, dec *door.Decision, req *http.Request) (*http.Response, error) {
	name, value := headerFor(dec.Rule, dec.Credential)
	out := req.Clone(ctx)
	out.Header.Set(name, value)
	return b.client.Do(out)
}

func (b *fakeBackend) Header(dec *door.Decision) (string, string, error) {
	name, value := headerFor(dec.Rule, dec.Credential)
	return name, value, nil
}

func headerFor(r *policy.Rule, cred *vault.Credential) (string, string) {
	v := string(cred.Value.Bytes())
	if r.Inject.Type == policy.InjectBearer {
		return "Authorization", "Bearer " + v
	}
	return r.Inject.Header, v
}

// harness is a server with its upstream, vault data, policy and logs.
type harness struct {
	t        *testing.T
	srv      *Server
	b        *fakeBackend
	clock    *clock
	logs     *observer.ObservedLogs
	reg      *prometheus.Registry
	upstream *httptest.Server
	seen     chan http.Header // headers the upstream received
	keys     map[string]ed25519.PrivateKey
	addr     string
}

func newHarness(t *testing.T, opts Options) *harness {
	t.Helper()
	h := &harness{t: t, clock: &clock{t: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)},
		seen: make(chan http.Header, 16), keys: map[string]ed25519.PrivateKey{}}
	h.upstream = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case h.seen <- r.Header.Clone():
		default:
		}
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("X-Upstream", "yes")
		w.Header().Set("X-Echo", r.Header.Get("Authorization"))
		w.WriteHeader(http.StatusTeapot)
		w.Write([]byte("method=" + r.Method + " path=" + r.URL.Path + " body=" + string(body) +
			" auth=" + r.Header.Get("Authorization")))
	}))
	t.Cleanup(h.upstream.Close)
	h.b = &fakeBackend{client: h.upstream.Client(), clock: h.clock}
	h.b.data.Store(h.vaultData())
	h.b.pol.Store(h.policy())
	core, logs := observer.New(zap.DebugLevel)
	h.logs, h.reg = logs, prometheus.NewRegistry()
	opts.Logger, opts.Registerer, opts.Now = zap.New(core), h.reg, h.clock.Now
	h.srv = New(h.b, opts)
	h.addr = h.serveTCP()
	return h
}

func (h *harness) policy() *policy.Policy {
	h.t.Helper()
	tmpl, err := os.ReadFile("testdata/policy.yaml.tmpl")
	if err != nil {
		h.t.Fatal(err)
	}
	port := h.upstream.Listener.Addr().(*net.TCPAddr).Port
	p, err := policy.Parse("policy.yaml", []byte(strings.ReplaceAll(string(tmpl), "{{PORT}}", strconv.Itoa(port))))
	if err != nil {
		h.t.Fatalf("parse test policy: %v", err)
	}
	return p
}

func (h *harness) vaultData() *vault.Data {
	now := h.clock.Now()
	d := &vault.Data{Credentials: map[string]*vault.Credential{}, Agents: map[string]*vault.Agent{}}
	add := func(path, value string, expires time.Time, meta map[string]string) {
		d.Credentials[path] = &vault.Credential{Path: path, Value: vault.NewSecret([]byte(value)),
			Metadata: meta, CreatedAt: now.Add(-time.Hour), UpdatedAt: now, ExpiresAt: expires}
	}
	add("api/token", tokenSecret, time.Time{}, map[string]string{"tags": "prod, llm", "client_id": "hidden"})
	add("api/custom", customSecret, time.Time{}, nil)
	add("signing/key", signSecret, time.Time{}, nil)
	add("db/password", dbSecret, now.Add(time.Hour), nil)
	add("old/key", oldSecret, now.Add(-time.Minute), nil)
	add("secret/other", "unlisted-SECRET", time.Time{}, nil)
	for i, name := range []string{"bot", "other", "off"} {
		seed := make([]byte, ed25519.SeedSize)
		seed[0] = byte(i + 1)
		key := ed25519.NewKeyFromSeed(seed)
		h.keys[name] = key
		d.Agents[name] = &vault.Agent{Name: name, PublicKey: key.Public().(ed25519.PublicKey), Disabled: name == "off"}
	}
	return d
}

// serveTCP serves the door on a loopback listener, as the proxy would after
// peeking the first byte.
func (h *harness) serveTCP() string {
	h.t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		h.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		var wg sync.WaitGroup
		defer wg.Wait()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			wg.Go(func() { h.srv.ServeConn(ctx, c) })
		}
	}()
	h.t.Cleanup(func() { cancel(); l.Close(); <-done })
	return l.Addr().String()
}

func (h *harness) dial() *frameClient { return dialClient(h.t, "tcp", h.addr) }

// bot returns a client logged in as the agent "bot".
func (h *harness) bot() *frameClient {
	fc := h.dial()
	fc.login("bot", h.keys["bot"])
	return fc
}

// assertNoSecretsLogged fails if any log line carries a secret value.
func (h *harness) assertNoSecretsLogged() {
	h.t.Helper()
	for _, e := range h.logs.All() {
		line := e.Message
		for k, v := range e.ContextMap() {
			line += " " + k + "=" + toString(v)
		}
		for _, s := range allSecrets {
			if strings.Contains(line, s) {
				h.t.Fatalf("secret in log line: %s", line)
			}
		}
	}
}

func toString(v any) string {
	if s, ok := v.(string); ok {
		return s
	}
	if e, ok := v.(error); ok {
		return e.Error()
	}
	return ""
}

// waitFor is the module's one poll-to-a-deadline helper.
var waitFor = testkit.WaitFor

func fieldString(k, v string) zap.Field { return zap.String(k, v) }
