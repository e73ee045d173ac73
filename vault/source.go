package vault

import (
	"bytes"
	"fmt"
	"maps"
	"strconv"
	"time"
)

// KindRef is the kind of a credential that holds no value but names a
// credential source and a key there ([Credential.Ref]). The proxy resolves
// it through that source; its Value is empty.
const KindRef = "ref"

// Metadata keys of a KindRef credential.
const (
	refSource  = "source"
	refKey     = "key"
	refField   = "field"
	refVersion = "version"
	refTTL     = "ttl"
)

// Ref names a secret in an external credential source.
type Ref struct {
	Source  string        // name of a [SourceDef] in the same vault
	Key     string        // the secret's name in that source
	Field   string        // optional: one field of a structured secret
	Version int           // optional: pin a version (0: latest)
	TTL     time.Duration // optional: cache TTL for this credential (0: the source's)
}

// NewRefCredential returns a KindRef credential at path naming r. Callers
// set the times.
func NewRefCredential(path string, r Ref) *Credential {
	m := map[string]string{refSource: r.Source, refKey: r.Key}
	if r.Field != "" {
		m[refField] = r.Field
	}
	if r.Version != 0 {
		m[refVersion] = strconv.Itoa(r.Version)
	}
	if r.TTL != 0 {
		m[refTTL] = r.TTL.String()
	}
	return &Credential{Path: path, Kind: KindRef, Metadata: m}
}

// Ref returns the reference of a KindRef credential; ok is false for any
// other kind or a malformed reference.
func (c *Credential) Ref() (r Ref, ok bool) {
	if c == nil || c.Kind != KindRef || c.Metadata[refSource] == "" || c.Metadata[refKey] == "" {
		return Ref{}, false
	}
	r = Ref{Source: c.Metadata[refSource], Key: c.Metadata[refKey], Field: c.Metadata[refField]}
	if s := c.Metadata[refVersion]; s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			return Ref{}, false
		}
		r.Version = n
	}
	if s := c.Metadata[refTTL]; s != "" {
		d, err := time.ParseDuration(s)
		if err != nil || d < 0 {
			return Ref{}, false
		}
		r.TTL = d
	}
	return r, true
}

// SourceDef is one external credential source: its type (helvetisafe,
// vault-kv, exec, file), its non-secret settings (address, auth method,
// cache settings) and the secrets airlock needs to talk to it (client
// secret, tokens, RSA key PEM, account password). Secrets are stored only
// here, encrypted with the rest of the vault.
type SourceDef struct {
	Name      string
	Type      string
	Config    map[string]string // settings, interpreted by package proxy/source
	Secrets   map[string]Secret // never printed
	CreatedAt time.Time
	UpdatedAt time.Time
}

// Source returns the source definition or an error wrapping ErrNotFound.
func (d *Data) Source(name string) (*SourceDef, error) {
	s, ok := d.Sources[name]
	if !ok || s == nil {
		return nil, fmt.Errorf("credential source %q: %w", name, ErrNotFound)
	}
	return s, nil
}

// SourceNames returns the source names, sorted.
func (d *Data) SourceNames() []string { return sortedKeys(d.Sources) }

// SetSource stores s under s.Name, replacing any source there. For use
// inside Update.
func (d *Data) SetSource(s *SourceDef) {
	if d.Sources == nil {
		d.Sources = map[string]*SourceDef{}
	}
	d.Sources[s.Name] = s
}

// DeleteSource removes the source, or returns an error wrapping
// ErrNotFound. For use inside Update.
func (d *Data) DeleteSource(name string) error {
	if _, err := d.Source(name); err != nil {
		return err
	}
	delete(d.Sources, name)
	return nil
}

// sourceRecord is a SourceDef in the payload.
type sourceRecord struct {
	Name      string            `json:"name"`
	Type      string            `json:"type"`
	Config    map[string]string `json:"config,omitempty"`
	Secrets   map[string][]byte `json:"secrets,omitempty"`
	CreatedAt time.Time         `json:"created_at"`
	UpdatedAt time.Time         `json:"updated_at"`
}

// encodeSources returns the payload records in name order. A vault
// without sources encodes none, so older airlock builds still open it.
func encodeSources(d *Data) ([]sourceRecord, error) {
	var out []sourceRecord
	for _, name := range d.SourceNames() {
		s := d.Sources[name]
		switch {
		case s == nil:
			return nil, fmt.Errorf("credential source %q is nil", name)
		case s.Name != "" && s.Name != name:
			return nil, fmt.Errorf("credential source stored under %q has name %q", name, s.Name)
		case s.Type == "":
			return nil, fmt.Errorf("credential source %q has no type", name)
		}
		r := sourceRecord{Name: name, Type: s.Type, Config: s.Config, CreatedAt: s.CreatedAt, UpdatedAt: s.UpdatedAt}
		if len(s.Secrets) > 0 {
			r.Secrets = make(map[string][]byte, len(s.Secrets))
			for k, v := range s.Secrets {
				r.Secrets[k] = v.Bytes()
			}
		}
		out = append(out, r)
	}
	return out, nil
}

// decodeSources fills d.Sources from the payload records.
func decodeSources(d *Data, recs []sourceRecord) error {
	for _, r := range recs {
		if _, dup := d.Sources[r.Name]; dup || r.Name == "" || r.Type == "" {
			return fmt.Errorf("payload: empty, untyped or duplicate credential source %q: %w", r.Name, ErrCorrupt)
		}
		s := &SourceDef{Name: r.Name, Type: r.Type, Config: r.Config, CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt}
		if len(r.Secrets) > 0 {
			s.Secrets = make(map[string]Secret, len(r.Secrets))
			for k, v := range r.Secrets {
				s.Secrets[k] = NewSecret(v)
			}
		}
		d.SetSource(s)
	}
	return nil
}

// cloneSources deep-copies the sources of d into c.
func cloneSources(c, d *Data) {
	for _, v := range d.Sources {
		if v == nil {
			continue
		}
		s := *v
		s.Config = maps.Clone(v.Config)
		if v.Secrets != nil {
			s.Secrets = make(map[string]Secret, len(v.Secrets))
			for sk, sv := range v.Secrets {
				s.Secrets[sk] = NewSecret(bytes.Clone(sv.Bytes()))
			}
		}
		c.SetSource(&s)
	}
}
