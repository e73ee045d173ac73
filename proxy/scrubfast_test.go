package proxy

import (
	"bytes"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/airlock/airlock/policy"
	"github.com/airlock/airlock/proxy/internal/readmap"
	"github.com/airlock/airlock/proxy/internal/scrub"
	"github.com/airlock/airlock/vault"
)

func TestScrubWholeLength(t *testing.T) {
	long := []byte(strings.Repeat("a", scrub.MaxWhole+1))
	cases := map[string]struct {
		ctype   string
		body    []byte
		wantLen int64 // -1: streamed, no Content-Length
	}{
		"short body keeps its length":     {ctype: "application/json", body: []byte(`{"ok":true}`), wantLen: 11},
		"empty body keeps its length":     {ctype: "application/json", body: []byte{}, wantLen: 0},
		"echo drops the length":           {ctype: "text/plain", body: []byte("key " + testSecret), wantLen: -1},
		"long body streams":               {ctype: "application/octet-stream", body: long, wantLen: -1},
		"event stream streams":            {ctype: "text/event-stream", body: []byte("data: 1\n\n"), wantLen: -1},
		"long body with echo is scrubbed": {ctype: "text/plain", body: append(bytes.Clone(long), testSecret...), wantLen: -1},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			resp, err := scrubbedResponse(t, testServer(), "GET", http.Header{"Content-Type": {tc.ctype}}, tc.body)
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(resp.Body)
			if err != nil {
				t.Fatal(err)
			}
			_ = resp.Body.Close()
			if bytes.Contains(got, []byte(testSecret)) {
				t.Fatal("secret echo left in the body")
			}
			if resp.ContentLength != tc.wantLen {
				t.Fatalf("ContentLength = %d, want %d", resp.ContentLength, tc.wantLen)
			}
			wantHdr := ""
			if tc.wantLen >= 0 {
				wantHdr = strconv.FormatInt(tc.wantLen, 10)
				if int64(len(got)) != tc.wantLen {
					t.Fatalf("body is %d bytes, Content-Length says %d", len(got), tc.wantLen)
				}
			}
			if h := resp.Header.Get("Content-Length"); h != wantHdr {
				t.Fatalf("Content-Length header %q, want %q", h, wantHdr)
			}
		})
	}
}

func TestCachedReplacer(t *testing.T) {
	s := testServer()
	rule := &policy.Rule{Name: "r", Inject: policy.Inject{Type: policy.InjectBearer}}
	static := &vault.Credential{Path: "a", Value: vault.NewSecret([]byte("sk-static-123456"))}
	other := &vault.Credential{Path: "b", Value: vault.NewSecret([]byte("sk-other-1234567"))}
	tooShort := &vault.Credential{Path: "c", Value: vault.NewSecret([]byte("abc"))}
	r1 := s.cachedReplacer(&decision{rule: rule, cred: static})
	if r1 == nil || s.cachedReplacer(&decision{rule: rule, cred: static}) != r1 {
		t.Fatal("a static credential's scrub.Replacer was not reused")
	}
	r2 := s.cachedReplacer(&decision{rule: rule, cred: other})
	if r2 == nil || r2 == r1 {
		t.Fatal("two credentials share a scrub.Replacer")
	}
	if out, n := r2.ReplaceString("x sk-other-1234567 y"); n != 1 || strings.Contains(out, "sk-other") {
		t.Fatalf("scrub.Replacer of b gave %q (%d)", out, n)
	}
	if s.cachedReplacer(&decision{rule: rule, cred: tooShort}) != nil {
		t.Fatal("a secret too short to scrub got a scrub.Replacer")
	}
	// Rules injecting one credential the same way share its replacer (a
	// policy of one rule per host built one per host); a Basic rule adds
	// its own form (the rule's username with the secret), so it has its own.
	again := &policy.Rule{Name: "r2", Inject: policy.Inject{Type: policy.InjectAPIKey}}
	if s.cachedReplacer(&decision{rule: again, cred: static}) != r1 {
		t.Error("two rules injecting one credential built two replacers")
	}
	basic := &policy.Rule{Name: "b", Inject: policy.Inject{Type: policy.InjectBasic, Username: "svc-user"}}
	rb := s.cachedReplacer(&decision{rule: basic, cred: static})
	encoded := basicValue(basic, static)[len("Basic "):]
	if rb == r1 {
		t.Fatal("a Basic rule shares the replacer of a bearer rule")
	}
	if _, n := rb.ReplaceString("x " + encoded + " y"); n != 1 {
		t.Errorf("the Basic rule's replacer misses its user:secret form %q", encoded)
	}
	for i := range readmap.DefaultMax + 1 { // the cache stays bounded
		c := &vault.Credential{Path: "p", Value: vault.NewSecret([]byte("sk-many-" + strconv.Itoa(1000000+i)))}
		s.cachedReplacer(&decision{rule: rule, cred: c})
	}
	if n := s.replacers.Len(); n > readmap.DefaultMax {
		t.Fatalf("cache holds %d replacers, bound is %d", n, readmap.DefaultMax)
	}
}

func TestScrubReaderRelease(t *testing.T) {
	sr := scrub.NewReader(strings.NewReader("hello "+testSecret), testReplacer(testSecret), nil)
	got, err := io.ReadAll(sr)
	if err != nil || string(got) != "hello [REDACTED:p]" {
		t.Fatalf("read %q, %v", got, err)
	}
	sr.Release()
	sr.Release() // twice is harmless
	if n, err := sr.Read(make([]byte, 8)); n != 0 || err == nil {
		t.Fatalf("Read after release = %d, %v; want an error", n, err)
	}
}

// TestReloadDropsStaleCaches: a policy swap empties the caches keyed by
// the old rules and credentials (they would keep old secrets in memory).
func TestReloadDropsStaleCaches(t *testing.T) {
	s := testServer()
	rule := &policy.Rule{Name: "r", Inject: policy.Inject{Type: policy.InjectBearer}}
	cred := &vault.Credential{Path: "a", Value: vault.NewSecret([]byte("sk-static-123456"))}
	s.cachedReplacer(&decision{rule: rule, cred: cred})
	if _, err := injectedHeader(rule, cred); err != nil {
		t.Fatal(err)
	}
	s.SetPolicy(s.Policy())
	cachedHeaders := headers.Len()
	if n := s.replacers.Len(); n != 0 || cachedHeaders != 0 {
		t.Fatalf("after a policy swap: %d replacers and %d headers cached, want 0", n, cachedHeaders)
	}
}
