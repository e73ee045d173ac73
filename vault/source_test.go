package vault

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestOpenBeforeSources opens a vault written before credential sources
// existed (a byte copy of the fixture as of that commit): it must open and
// hold the same data, with no sources.
func TestOpenBeforeSources(t *testing.T) {
	v, err := Open("testdata/before-sources.vault", Unlock{Passphrase: []byte(fixturePass)})
	if err != nil {
		t.Fatal(err)
	}
	assertData(t, v.Snapshot(), fixtureData())
	if n := len(v.Snapshot().Sources); n != 0 {
		t.Fatalf("%d sources in a vault that has none", n)
	}
	// Saving it unchanged writes no "sources" key, so older builds (whose
	// decoder refuses unknown fields) still open it.
	pt, err := encodePayload(v.Snapshot())
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(pt, []byte(`"sources"`)) {
		t.Fatal(`a vault without sources encodes a "sources" key`)
	}
}

func TestSourcesRoundTrip(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "v.vault")
	v, err := Create(path, []byte("pw"), CreateOptions{KDF: FastKDF})
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	const secret = "hs-client-secret-0123456789"
	err = v.Update(func(d *Data) error {
		d.SetSource(&SourceDef{Name: "hs", Type: "helvetisafe", Config: map[string]string{"base_url": "https://x"},
			Secrets: map[string]Secret{"client_secret": NewSecret([]byte(secret))}, CreatedAt: t0, UpdatedAt: t0})
		c := NewRefCredential("db/password", Ref{Source: "hs", Key: "prod/db", Field: "password", Version: 3, TTL: time.Minute})
		c.CreatedAt, c.UpdatedAt = t0, t0
		d.SetCredential(c)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(raw, []byte(secret)) {
		t.Fatal("source secret in clear in the vault file")
	}
	v2, err := Open(path, Unlock{Passphrase: []byte("pw")})
	if err != nil {
		t.Fatal(err)
	}
	d := v2.Snapshot()
	s, err := d.Source("hs")
	if err != nil {
		t.Fatal(err)
	}
	if s.Type != "helvetisafe" || s.Config["base_url"] != "https://x" || !s.Secrets["client_secret"].Equal([]byte(secret)) || !s.CreatedAt.Equal(t0) {
		t.Fatalf("source differs: %+v", s)
	}
	r, ok := d.Credentials["db/password"].Ref()
	if want := (Ref{Source: "hs", Key: "prod/db", Field: "password", Version: 3, TTL: time.Minute}); !ok || r != want {
		t.Fatalf("ref = %+v %v, want %+v", r, ok, want)
	}
	// Clone is deep: changing the copy's secret leaves the snapshot alone.
	c := d.Clone()
	c.Sources["hs"].Secrets["client_secret"].Bytes()[0] = 'X'
	c.Sources["hs"].Config["base_url"] = "changed"
	if !s.Secrets["client_secret"].Equal([]byte(secret)) || s.Config["base_url"] != "https://x" {
		t.Fatal("Clone shares source maps or bytes")
	}
	if err := v2.Update(func(d *Data) error { return d.DeleteSource("hs") }); err != nil {
		t.Fatal(err)
	}
	if _, err := v2.Snapshot().Source("hs"); err == nil {
		t.Fatal("source still there after DeleteSource")
	}
}

func TestRefMalformed(t *testing.T) {
	cases := map[string]*Credential{
		"static":      {Kind: KindStatic, Metadata: map[string]string{"source": "a", "key": "b"}},
		"no source":   {Kind: KindRef, Metadata: map[string]string{"key": "b"}},
		"no key":      {Kind: KindRef, Metadata: map[string]string{"source": "a"}},
		"bad version": {Kind: KindRef, Metadata: map[string]string{"source": "a", "key": "b", "version": "x"}},
		"bad ttl":     {Kind: KindRef, Metadata: map[string]string{"source": "a", "key": "b", "ttl": "-1s"}},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			if r, ok := c.Ref(); ok {
				t.Fatalf("Ref() = %+v, true", r)
			}
		})
	}
}
