package vault

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"
)

// payload is the decrypted content. It uses plain []byte for values:
// Secret's MarshalJSON redacts and must never be used for storage.
type payload struct {
	Credentials []credRecord      `json:"credentials"`
	Agents      []agentRecord     `json:"agents"`
	System      map[string][]byte `json:"system"`
	Sources     []sourceRecord    `json:"sources,omitempty"`    // source.go
	Generation  uint64            `json:"generation,omitempty"` // generation.go; absent in older files: 0
}

type credRecord struct {
	Path      string            `json:"path"`
	Kind      string            `json:"kind"`
	Value     []byte            `json:"value"`
	Username  string            `json:"username,omitempty"`
	Metadata  map[string]string `json:"metadata,omitempty"`
	CreatedAt time.Time         `json:"created_at"`
	UpdatedAt time.Time         `json:"updated_at"`
	ExpiresAt time.Time         `json:"expires_at,omitzero"`
}

type agentRecord struct {
	Name      string    `json:"name"`
	PublicKey []byte    `json:"public_key,omitempty"`
	TokenHash []byte    `json:"token_hash"`
	CreatedAt time.Time `json:"created_at"`
	Disabled  bool      `json:"disabled,omitempty"`
}

// encodePayload validates d and serializes it in a canonical order.
func encodePayload(d *Data) ([]byte, error) { return encodePayloadGen(d, 0) }

// encodePayloadGen is encodePayload with the file's generation.
func encodePayloadGen(d *Data, gen uint64) ([]byte, error) {
	p := payload{System: map[string][]byte{}, Generation: gen}
	for _, path := range d.CredentialPaths() {
		c := d.Credentials[path]
		if err := checkCredential(path, c); err != nil {
			return nil, err
		}
		kind := c.Kind
		if kind == "" {
			kind = KindStatic
		}
		p.Credentials = append(p.Credentials, credRecord{Path: path, Kind: kind, Value: c.Value.Bytes(),
			Username: c.Username, Metadata: c.Metadata, CreatedAt: c.CreatedAt, UpdatedAt: c.UpdatedAt, ExpiresAt: c.ExpiresAt})
	}
	for _, name := range d.AgentNames() {
		a := d.Agents[name]
		if err := checkAgent(name, a); err != nil {
			return nil, err
		}
		p.Agents = append(p.Agents, agentRecord{Name: name, PublicKey: a.PublicKey, TokenHash: a.TokenHash,
			CreatedAt: a.CreatedAt, Disabled: a.Disabled})
	}
	for k, s := range d.System {
		p.System[k] = s.Bytes()
	}
	var err error
	if p.Sources, err = encodeSources(d); err != nil {
		return nil, err
	}
	b, err := json.Marshal(&p)
	if err != nil {
		return nil, fmt.Errorf("encode payload: %w", err)
	}
	return b, nil
}

func checkCredential(key string, c *Credential) error {
	switch {
	case key == "":
		return errors.New("credential with an empty path")
	case c == nil:
		return fmt.Errorf("credential %q is nil", key)
	case c.Path != "" && c.Path != key:
		return fmt.Errorf("credential stored under %q has path %q", key, c.Path)
	}
	return nil
}

func checkAgent(key string, a *Agent) error {
	switch {
	case key == "":
		return errors.New("agent with an empty name")
	case a == nil:
		return fmt.Errorf("agent %q is nil", key)
	case a.Name != "" && a.Name != key:
		return fmt.Errorf("agent stored under %q has name %q", key, a.Name)
	case len(a.PublicKey) != 0 && len(a.PublicKey) != ed25519.PublicKeySize:
		return fmt.Errorf("agent %q: public key is %d bytes, want %d", key, len(a.PublicKey), ed25519.PublicKeySize)
	}
	return nil
}

// decodePayload parses authenticated plaintext into a fresh Data. It is
// strict anyway: duplicates, unknown fields and trailing data are errors.
func decodePayload(b []byte) (*Data, error) {
	d, _, err := decodePayloadGen(b)
	return d, err
}

// decodePayloadGen is decodePayload that also returns the generation.
func decodePayloadGen(b []byte) (*Data, uint64, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var p payload
	if err := dec.Decode(&p); err != nil {
		return nil, 0, fmt.Errorf("payload: malformed: %w", ErrCorrupt)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, 0, fmt.Errorf("payload: trailing data: %w", ErrCorrupt)
	}
	d := newData()
	for _, r := range p.Credentials {
		if _, dup := d.Credentials[r.Path]; dup || r.Path == "" {
			return nil, 0, fmt.Errorf("payload: empty or duplicate credential path %q: %w", r.Path, ErrCorrupt)
		}
		if r.Kind == "" {
			r.Kind = KindStatic
		}
		d.Credentials[r.Path] = &Credential{Path: r.Path, Kind: r.Kind, Value: NewSecret(r.Value), Username: r.Username,
			Metadata: r.Metadata, CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt, ExpiresAt: r.ExpiresAt}
	}
	for _, r := range p.Agents {
		if _, dup := d.Agents[r.Name]; dup || r.Name == "" {
			return nil, 0, fmt.Errorf("payload: empty or duplicate agent name %q: %w", r.Name, ErrCorrupt)
		}
		if err := checkAgent(r.Name, &Agent{PublicKey: r.PublicKey}); err != nil {
			return nil, 0, fmt.Errorf("payload: %v: %w", err, ErrCorrupt)
		}
		d.Agents[r.Name] = &Agent{Name: r.Name, PublicKey: ed25519.PublicKey(r.PublicKey), TokenHash: r.TokenHash,
			CreatedAt: r.CreatedAt, Disabled: r.Disabled}
	}
	for k, v := range p.System {
		d.System[k] = NewSecret(v)
	}
	if err := decodeSources(d, p.Sources); err != nil {
		return nil, 0, err
	}
	return d, p.Generation, nil
}

// sortedKeys returns the keys of m in order.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
