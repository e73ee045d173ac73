package source

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/airlock/airlock/vault"
)

// TestRegistryNoLeaks drives every source through the registry (success
// and failure), then greps logs, metrics, the status file, the vault-list
// text and JSON, doctor results and every error text for every form of
// every secret: source secrets, tokens the fakes issued, fetched values.
func TestRegistryNoLeaks(t *testing.T) {
	clk := newClock()
	hs := newHSFake(t, clk)
	hs.set("prod/openai", "sk-hs-REGISTRY-value-1", time.Time{})
	kv := newKVFake(t, clk)
	kv.put("apps/db", map[string]string{"password": "kv-REGISTRY-value-2"})
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "gh"), []byte("file-REGISTRY-value-3\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	d := &vault.Data{Credentials: map[string]*vault.Credential{}, Sources: map[string]*vault.SourceDef{}}
	for _, def := range []*vault.SourceDef{hs.def(t, HSAuthOAuth2, HSKeyPass), kv.def(KVAuthAppRole),
		{Name: "files", Type: TypeFile, Config: map[string]string{"dir": dir}}} {
		d.SetSource(def)
	}
	refs := map[string]vault.Ref{
		"openai/api-key": {Source: "hs-oauth2-password", Key: "prod/openai"},
		"db/password":    {Source: "kv-approle", Key: "apps/db", Field: "password", TTL: time.Minute},
		"github/token":   {Source: "files", Key: "gh"},
		"broken/missing": {Source: "kv-approle", Key: "apps/none", Field: "x"},
		"broken/nosrc":   {Source: "nowhere", Key: "x"},
	}
	for path, r := range refs {
		d.SetCredential(vault.NewRefCredential(path, r))
	}
	d.SetCredential(&vault.Credential{Path: "static/one", Kind: vault.KindStatic, Value: vault.NewSecret([]byte("static-REGISTRY-value-4"))})
	o := newObserved(t)
	reg := NewRegistry(o.m, o.log)
	defer reg.Close()
	if err := reg.Load(d); err != nil {
		t.Fatal(err)
	}
	// The fakes share the clock; the registry's caches use real time.
	hsSrc, _ := reg.Cache("hs-oauth2-password")
	hsSrc.Source().(*HelvetiSafe).cfg.Now = clk.Now
	kvSrc, _ := reg.Cache("kv-approle")
	kvSrc.Source().(*KV).cfg.Now = clk.Now

	ctx := context.Background()
	want := map[string]string{"openai/api-key": "sk-hs-REGISTRY-value-1", "db/password": "kv-REGISTRY-value-2",
		"github/token": "file-REGISTRY-value-3", "static/one": "static-REGISTRY-value-4"}
	var texts []string
	for _, path := range d.CredentialPaths() {
		v, err := reg.Resolve(ctx, d.Credentials[path], time.Now())
		if w, ok := want[path]; ok {
			if err != nil || string(v.Secret.Bytes()) != w {
				t.Fatalf("%s: %q %v", path, v.Secret.Bytes(), err)
			}
			continue
		}
		if err == nil {
			t.Fatalf("%s resolved", path)
		}
		texts = append(texts, err.Error(), fmt.Sprintf("%+v %#v", err, err))
	}
	if _, err := reg.Resolve(ctx, d.Credentials["broken/missing"], time.Now()); Code(err) != "CREDENTIAL_NOT_FOUND" {
		t.Fatalf("missing key: %v", err)
	}
	if _, err := reg.Resolve(ctx, d.Credentials["broken/nosrc"], time.Now()); Code(err) != "CREDENTIAL_SOURCE_UNAVAILABLE" ||
		!strings.Contains(err.Error(), `"nowhere"`) {
		t.Fatalf("undefined source: %v", err)
	}
	rc, err := reg.ResolveCredential(ctx, d.Credentials["github/token"], time.Now())
	if err != nil || rc.Kind != vault.KindStatic || string(rc.Value.Bytes()) != "file-REGISTRY-value-3" || rc.Metadata["source"] != "files" ||
		!d.Credentials["github/token"].Value.IsZero() {
		t.Fatalf("ResolveCredential: %+v %v (the vault's own credential must stay untouched)", rc, err)
	}
	if sc, err := reg.ResolveCredential(ctx, d.Credentials["static/one"], time.Now()); err != nil || sc != d.Credentials["static/one"] {
		t.Fatalf("stored credential: %v", err)
	}
	expired := vault.NewRefCredential("x", refs["github/token"])
	expired.ExpiresAt = time.Now().Add(-time.Second)
	if _, err := reg.Resolve(ctx, expired, time.Now()); !errors.Is(err, ErrExpired) {
		t.Fatalf("credential's own expiry: %v", err)
	}

	statusPath := filepath.Join(t.TempDir(), "sources.status.json")
	if err := reg.WriteStatus(statusPath); err != nil {
		t.Fatal(err)
	}
	st, err := ReadStatus(statusPath)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(statusPath)
	texts = append(texts, string(raw))
	for _, path := range d.CredentialPaths() {
		info, ok := DescribeRef(d.Credentials[path], st)
		if !ok {
			continue
		}
		j, _ := json.Marshal(info)
		texts = append(texts, info.String(), string(j))
		if path == "db/password" && (info.LastFetch == nil || info.LastResult != ResultOK ||
			!strings.HasPrefix(info.String(), "kv-approle:apps/db#password (fetched ")) {
			t.Fatalf("db/password list entry: %s", info)
		}
		if path == "broken/nosrc" && !strings.HasSuffix(info.String(), "(never fetched)") {
			t.Fatalf("never fetched: %s", info)
		}
	}
	for _, r := range reg.Check(ctx) {
		if r.Err != nil {
			t.Fatalf("doctor %s: %v", r.Source, r.Err)
		}
	}
	// Fail every source and collect what the failures print.
	hs.mu.Lock()
	hs.force["prod/openai"] = 401
	hs.mu.Unlock()
	kv.srv.Close()
	if err := os.Remove(filepath.Join(dir, "gh")); err != nil {
		t.Fatal(err)
	}
	for _, r := range reg.Check(ctx) {
		if r.Err != nil {
			texts = append(texts, r.Err.Error())
		}
	}
	for _, name := range []string{"hs-oauth2-password", "kv-approle", "files"} {
		c, _ := reg.Cache(name)
		c.invalidate("")
	}
	for _, path := range []string{"openai/api-key", "db/password", "github/token"} {
		_, err := reg.Resolve(ctx, d.Credentials[path], time.Now())
		if err == nil {
			t.Fatalf("%s resolved with its source down", path)
		}
		texts = append(texts, err.Error())
	}
	secrets := append(append(hs.fakeSecrets(t), kv.fakeSecrets()...), "file-REGISTRY-value-3", "static-REGISTRY-value-4")
	assertNoLeak(t, "logs", o.logs(), secrets...)
	assertNoLeak(t, "metrics", o.metrics(), secrets...)
	assertNoLeak(t, "status, list, doctor and error texts", strings.Join(texts, "\n"), secrets...)
	for _, m := range []string{"airlock_source_fetches_total", "airlock_source_fetch_duration_seconds", "airlock_source_cache_age_seconds"} {
		if !strings.Contains(o.metrics(), m) {
			t.Fatalf("metric %s missing", m)
		}
	}
}

// TestRegistryReload: an unchanged definition keeps its cache (no new
// fetch), a changed one gets a new cache, a removed one is gone, a bad one
// is reported and answers unavailable.
func TestRegistryReload(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "k"), []byte("reload-value"), 0o600); err != nil {
		t.Fatal(err)
	}
	d := &vault.Data{Sources: map[string]*vault.SourceDef{}}
	d.SetSource(&vault.SourceDef{Name: "a", Type: TypeFile, Config: map[string]string{"dir": dir}})
	d.SetSource(&vault.SourceDef{Name: "b", Type: TypeFile, Config: map[string]string{"dir": dir}})
	reg := NewRegistry(nil, nil)
	defer reg.Close()
	if err := reg.Load(d); err != nil {
		t.Fatal(err)
	}
	a1, _ := reg.Cache("a")
	b1, _ := reg.Cache("b")
	d2 := d.Clone()
	d2.Sources["b"].Config["ttl"] = "1m"
	d2.SetSource(&vault.SourceDef{Name: "bad", Type: TypeVaultKV, Config: map[string]string{"address": "ftp://x"}})
	err := reg.Load(d2)
	if err == nil || !strings.Contains(err.Error(), `"bad"`) {
		t.Fatalf("bad definition: %v", err)
	}
	a2, _ := reg.Cache("a")
	b2, _ := reg.Cache("b")
	if a1 != a2 || b1 == b2 {
		t.Fatal("unchanged must keep its cache, changed must get a new one")
	}
	if _, err := reg.Fetch(context.Background(), vault.Ref{Source: "bad", Key: "k"}); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("bad source: %v", err)
	}
	delete(d2.Sources, "a")
	_ = reg.Load(d2)
	if _, err := reg.Cache("a"); err == nil {
		t.Fatal("removed source still there")
	}
}

// TestRunStatusWriter writes the status file on its tick and at the end.
func TestRunStatusWriter(t *testing.T) {
	reg := NewRegistry(nil, nil)
	defer reg.Close()
	path := filepath.Join(t.TempDir(), "status.json")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { reg.RunStatusWriter(ctx, path, 10*time.Millisecond); close(done) }()
	waitFor(t, 2*time.Second, func() error { _, err := os.Stat(path); return err })
	cancel()
	<-done
	if st, err := ReadStatus(path); err != nil || st.Written.IsZero() {
		t.Fatalf("%+v %v", st, err)
	}
}
