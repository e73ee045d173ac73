package source

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/argon2"

	"github.com/airlock/airlock/vault"
)

// hsFake is a loopback HelvetiSafe written from its public description
// (helvetisafe-client 0.1.2) plus the assumptions in
// helvetisafe_assumptions.go: OAuth2 client credentials with expiring
// tokens, a portal API token, the org key wrapped with RSA-OAEP for the
// account's RSA key (and, for password mode, that key encrypted under
// Argon2id(password)), secrets in AES-256-GCM under the org key, expires_at,
// and the documented error codes.
type hsFake struct {
	t      testing.TB
	srv    *httptest.Server
	clock  *clock
	assume HelvetiSafeAssumptions

	clientID, clientSecret, apiToken, password string
	tokenTTL                                   time.Duration
	orgKey                                     []byte
	acct                                       *rsa.PrivateKey
	salt                                       []byte

	// mu guards everything below.
	mu                                             sync.Mutex
	expiryInList                                   bool // expires_at only in the list metadata
	tokens                                         map[string]time.Time
	secrets                                        map[string]hsSecret
	force                                          map[string]int // key -> status to answer
	tokenCalls, orgKeyCalls, secretCalls, rejected int
	issued                                         []string
}

type hsSecret struct {
	value   string
	expires time.Time
}

func loadRSA(t testing.TB, name string) (*rsa.PrivateKey, []byte) {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	k, err := parseRSAKey(b)
	if err != nil {
		t.Fatal(err)
	}
	return k, b
}

func newHSFake(t testing.TB, clk *clock) *hsFake {
	acct, _ := loadRSA(t, "test-rsa-a.pem")
	f := &hsFake{t: t, clock: clk, assume: testAssume(), clientID: "airlock-ci",
		clientSecret: "hs-client-secret-Zq81xw", apiToken: "hs-portal-token-Pp02kk", password: "correct horse battery",
		tokenTTL: 60 * time.Second, orgKey: randBytes(32), acct: acct, salt: randBytes(16),
		tokens: map[string]time.Time{}, secrets: map[string]hsSecret{}, force: map[string]int{}}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /oauth/token", f.token)
	mux.HandleFunc("GET /api/v1/credentials/org-key", f.orgKeyHandler)
	mux.HandleFunc("GET /api/v1/secrets/{key...}", f.secret)
	mux.HandleFunc("GET /api/v1/secrets", f.list)
	f.srv = httptest.NewTLSServer(mux)
	t.Cleanup(f.srv.Close)
	return f
}

// testAssume is the defaults with a cheap Argon2id (tests only).
func testAssume() HelvetiSafeAssumptions {
	a := DefaultHelvetiSafeAssumptions
	a.ArgonTime, a.ArgonMemoryKiB, a.ArgonThreads = 1, 1024, 1
	return a
}

func randBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b
}

func (f *hsFake) caPEM() string {
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: f.srv.Certificate().Raw}))
}

func (f *hsFake) set(key, value string, expires time.Time) {
	f.mu.Lock()
	f.secrets[key] = hsSecret{value: value, expires: expires}
	f.mu.Unlock()
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

func (f *hsFake) token(w http.ResponseWriter, r *http.Request) {
	var id, secret, grant string
	if f.assume.TokenBody == "json" {
		var m map[string]string
		_ = json.NewDecoder(r.Body).Decode(&m)
		id, secret, grant = m["client_id"], m["client_secret"], m["grant_type"]
	} else {
		_ = r.ParseForm()
		id, secret, grant = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret"), r.PostForm.Get("grant_type")
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.tokenCalls++
	if grant != "client_credentials" || id != f.clientID || secret != f.clientSecret {
		w.WriteHeader(http.StatusUnauthorized)
		writeJSON(w, map[string]string{"error": "invalid_client"})
		return
	}
	tok := "hs-at-" + base64.RawURLEncoding.EncodeToString(randBytes(18))
	f.tokens[tok] = f.clock.Now().Add(f.tokenTTL)
	f.issued = append(f.issued, tok)
	writeJSON(w, map[string]any{"access_token": tok, "token_type": "Bearer", "expires_in": int(f.tokenTTL.Seconds())})
}

// authorized checks the bearer token; callers hold mu.
func (f *hsFake) authorized(w http.ResponseWriter, r *http.Request) bool {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if exp, known := f.tokens[tok]; ok && (tok == f.apiToken || known && f.clock.Now().Before(exp)) {
		return true
	}
	f.rejected++
	w.WriteHeader(http.StatusUnauthorized)
	writeJSON(w, map[string]string{"error": "unauthorized"})
	return false
}

func (f *hsFake) orgKeyHandler(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.orgKeyCalls++
	if !f.authorized(w, r) {
		return
	}
	wrapped, err := rsa.EncryptOAEP(oaepHash(f.assume.OAEPHash), rand.Reader, &f.acct.PublicKey, f.orgKey, nil)
	if err != nil {
		f.t.Error(err)
	}
	der, _ := x509.MarshalPKCS8PrivateKey(f.acct)
	kek := argon2.IDKey([]byte(f.password), f.salt, f.assume.ArgonTime, f.assume.ArgonMemoryKiB, f.assume.ArgonThreads, 32)
	writeJSON(w, map[string]string{
		f.assume.WrappedKeyField: base64.StdEncoding.EncodeToString(wrapped),
		f.assume.EncKeyField:     base64.StdEncoding.EncodeToString(gcmSeal(kek, der, nil)),
		f.assume.SaltField:       base64.StdEncoding.EncodeToString(f.salt),
	})
}

// gcmSeal returns nonce||ciphertext||tag.
func gcmSeal(key, pt, aad []byte) []byte {
	block, _ := aes.NewCipher(key)
	g, _ := cipher.NewGCM(block)
	nonce := randBytes(g.NonceSize())
	return g.Seal(nonce, nonce, pt, aad)
}

func (f *hsFake) secret(w http.ResponseWriter, r *http.Request) {
	key := r.PathValue("key")
	f.mu.Lock()
	defer f.mu.Unlock()
	f.secretCalls++
	if code := f.force[key]; code != 0 {
		if code == http.StatusTooManyRequests {
			w.Header().Set("Retry-After", "7")
		}
		w.WriteHeader(code)
		writeJSON(w, map[string]string{"error": http.StatusText(code)})
		return
	}
	if !f.authorized(w, r) {
		return
	}
	s, ok := f.secrets[key]
	if !ok {
		w.WriteHeader(http.StatusNotFound)
		writeJSON(w, map[string]string{"error": "not found"})
		return
	}
	pt := []byte(s.value)
	if v, ok := strings.CutPrefix(f.assume.ValueFormat, "json:"); ok {
		pt, _ = json.Marshal(map[string]string{v: s.value})
	}
	var aad []byte
	if f.assume.AAD == "key" {
		aad = []byte(key)
	}
	sealed := gcmSeal(f.orgKey, pt, aad)
	resp := map[string]any{"key": key, f.assume.ExpiresField: nil}
	if !s.expires.IsZero() && !f.expiryInList {
		resp[f.assume.ExpiresField] = s.expires.UTC().Format(time.RFC3339)
	}
	if f.assume.NonceLayout == "field" {
		resp[f.assume.NonceField] = base64.StdEncoding.EncodeToString(sealed[:12])
		resp[f.assume.CiphertextField] = base64.StdEncoding.EncodeToString(sealed[12:])
	} else {
		resp[f.assume.CiphertextField] = base64.StdEncoding.EncodeToString(sealed)
	}
	writeJSON(w, resp)
}

// list is the secret list: metadata only, with expires_at.
func (f *hsFake) list(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.authorized(w, r) {
		return
	}
	entries := []map[string]any{}
	for k, s := range f.secrets {
		e := map[string]any{"key": k, "expires_at": nil}
		if !s.expires.IsZero() {
			e["expires_at"] = s.expires.UTC().Format(time.RFC3339)
		}
		entries = append(entries, e)
	}
	writeJSON(w, map[string]any{"secrets": entries})
}

func (f *hsFake) counts() (tokens, orgKeys, secrets, rejected int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.tokenCalls, f.orgKeyCalls, f.secretCalls, f.rejected
}

// def returns a source definition for this fake in the given modes.
func (f *hsFake) def(t testing.TB, auth, keyMode string) *vault.SourceDef {
	_, pemA := loadRSA(t, "test-rsa-a.pem")
	d := &vault.SourceDef{Name: "hs-" + auth + "-" + keyMode, Type: TypeHelvetiSafe, Secrets: map[string]vault.Secret{},
		Config: map[string]string{"base_url": f.srv.URL, "auth": auth, "key_mode": keyMode, "ca_pem": f.caPEM(),
			"assume.argon2_time": "1", "assume.argon2_memory_kib": "1024", "assume.argon2_threads": "1"}}
	if auth == HSAuthOAuth2 {
		d.Config["client_id"] = f.clientID
		d.Config["scopes"] = "secrets:read"
		d.Secrets["client_secret"] = vault.NewSecret([]byte(f.clientSecret))
	} else {
		d.Secrets["api_token"] = vault.NewSecret([]byte(f.apiToken))
	}
	if keyMode == HSKeyPEM {
		d.Secrets["rsa_key_pem"] = vault.NewSecret(pemA)
	} else {
		d.Secrets["password"] = vault.NewSecret([]byte(f.password))
	}
	return d
}

// fakeSecrets is every secret of the fake, for leak greps.
func (f *hsFake) fakeSecrets(t testing.TB) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	_, pemA := loadRSA(t, "test-rsa-a.pem")
	der, _ := x509.MarshalPKCS8PrivateKey(f.acct)
	out := []string{f.clientSecret, f.apiToken, f.password, string(f.orgKey), string(pemA), string(der)}
	// The base64 body lines of the PEM.
	for _, l := range strings.Split(string(pemA), "\n") {
		if len(l) > 40 && !strings.HasPrefix(l, "-----") {
			out = append(out, l)
		}
	}
	out = append(out, f.issued...)
	for _, s := range f.secrets {
		out = append(out, s.value)
	}
	return out
}
