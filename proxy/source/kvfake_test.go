package source

import (
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/airlock/airlock/vault"
)

// kvFake is a loopback HashiCorp Vault / OpenBao written from the
// documented HTTP API: KV v2 reads (GET /v1/{mount}/data/{path}[?version]),
// token lookup-self and renew-self, AppRole login, X-Vault-Namespace, and
// {"errors": [...]} bodies with 403/404. No real server can run here.
type kvFake struct {
	srv   *httptest.Server
	clock *clock

	roleID, secretID, rootToken, namespace string
	leaseTTL                               time.Duration
	renewable                              bool

	// mu guards everything below.
	mu                              sync.Mutex
	tokens                          map[string]time.Time // token -> expiry (zero: none)
	data                            map[string][]map[string]string
	logins, renewals, reads, denied int
	issued                          []string
}

func newKVFake(t testing.TB, clk *clock) *kvFake {
	f := &kvFake{clock: clk, roleID: "role-airlock", secretID: "kv-secret-id-Hn55q", rootToken: "hvs.kv-root-token-Tt90",
		namespace: "team-a", leaseTTL: 30 * time.Second, renewable: true,
		tokens: map[string]time.Time{}, data: map[string][]map[string]string{}}
	f.tokens[f.rootToken] = time.Time{}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/auth/approle/login", f.login)
	mux.HandleFunc("GET /v1/auth/token/lookup-self", f.lookup)
	mux.HandleFunc("POST /v1/auth/token/renew-self", f.renew)
	mux.HandleFunc("GET /v1/secret/data/{path...}", f.read)
	f.srv = httptest.NewTLSServer(f.namespaced(mux))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *kvFake) namespaced(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Vault-Namespace") != f.namespace {
			vaultErr(w, http.StatusForbidden, "permission denied") // wrong namespace: unknown token
			return
		}
		h.ServeHTTP(w, r)
	})
}

func vaultErr(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(map[string][]string{"errors": {msg}})
}

// put writes a new version of path.
func (f *kvFake) put(path string, data map[string]string) {
	f.mu.Lock()
	f.data[path] = append(f.data[path], data)
	f.mu.Unlock()
}

func (f *kvFake) newToken() string {
	tok := "hvs." + base64.RawURLEncoding.EncodeToString(randBytes(18))
	f.tokens[tok] = f.clock.Now().Add(f.leaseTTL)
	f.issued = append(f.issued, tok)
	return tok
}

// valid checks X-Vault-Token; callers hold mu.
func (f *kvFake) valid(r *http.Request) (string, bool) {
	tok := r.Header.Get("X-Vault-Token")
	exp, ok := f.tokens[tok]
	if !ok || !exp.IsZero() && !f.clock.Now().Before(exp) {
		f.denied++
		return "", false
	}
	return tok, true
}

func (f *kvFake) login(w http.ResponseWriter, r *http.Request) {
	var body map[string]string
	_ = json.NewDecoder(r.Body).Decode(&body)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.logins++
	if body["role_id"] != f.roleID || body["secret_id"] != f.secretID {
		vaultErr(w, http.StatusBadRequest, "invalid role or secret ID")
		return
	}
	writeJSON(w, map[string]any{"auth": map[string]any{"client_token": f.newToken(),
		"lease_duration": int(f.leaseTTL.Seconds()), "renewable": f.renewable}})
}

func (f *kvFake) lookup(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	tok, ok := f.valid(r)
	if !ok {
		vaultErr(w, http.StatusForbidden, "permission denied")
		return
	}
	ttl := 0
	if exp := f.tokens[tok]; !exp.IsZero() {
		ttl = int(exp.Sub(f.clock.Now()).Seconds())
	}
	writeJSON(w, map[string]any{"data": map[string]any{"ttl": ttl, "renewable": f.renewable && ttl > 0}})
}

func (f *kvFake) renew(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	tok, ok := f.valid(r)
	if !ok || !f.renewable {
		vaultErr(w, http.StatusForbidden, "permission denied")
		return
	}
	f.renewals++
	f.tokens[tok] = f.clock.Now().Add(f.leaseTTL)
	writeJSON(w, map[string]any{"auth": map[string]any{"client_token": tok,
		"lease_duration": int(f.leaseTTL.Seconds()), "renewable": true}})
}

func (f *kvFake) read(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reads++
	if _, ok := f.valid(r); !ok {
		vaultErr(w, http.StatusForbidden, "permission denied")
		return
	}
	versions := f.data[r.PathValue("path")]
	n := len(versions)
	if s := r.URL.Query().Get("version"); s != "" {
		n, _ = strconv.Atoi(s)
	}
	if n < 1 || n > len(versions) {
		vaultErr(w, http.StatusNotFound, "")
		return
	}
	writeJSON(w, map[string]any{"request_id": "x", "lease_duration": 0, "data": map[string]any{
		"data":     versions[n-1],
		"metadata": map[string]any{"version": n, "deletion_time": "", "destroyed": false, "created_time": "2026-01-01T00:00:00Z"}}})
}

func (f *kvFake) def(auth string) *vault.SourceDef {
	ca := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: f.srv.Certificate().Raw}))
	d := &vault.SourceDef{Name: "kv-" + auth, Type: TypeVaultKV, Secrets: map[string]vault.Secret{},
		Config: map[string]string{"address": f.srv.URL, "auth": auth, "namespace": f.namespace, "ca_pem": ca}}
	if auth == KVAuthAppRole {
		d.Config["role_id"] = f.roleID
		d.Secrets["secret_id"] = vault.NewSecret([]byte(f.secretID))
	} else {
		d.Secrets["token"] = vault.NewSecret([]byte(f.rootToken))
	}
	return d
}

func (f *kvFake) fakeSecrets() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := append([]string{f.secretID, f.rootToken}, f.issued...)
	for _, vs := range f.data {
		for _, v := range vs {
			for _, s := range v {
				out = append(out, s)
			}
		}
	}
	return out
}

func (f *kvFake) stats() (logins, renewals, reads, denied int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.logins, f.renewals, f.reads, f.denied
}
