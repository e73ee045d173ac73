package vault

import (
	"bytes"
	"fmt"
	"maps"
)

// Data is the decrypted payload. A *Data from [Vault.Snapshot] is shared
// and immutable: do not modify it. Inside [Vault.Update] the function gets
// a private deep copy it may change freely, directly or with the Set and
// Delete helpers; its maps are never nil.
type Data struct {
	Credentials map[string]*Credential
	Agents      map[string]*Agent
	System      map[string]Secret     // airlock's own keys: "ca.key" (PEM), "audit.hmac"
	Sources     map[string]*SourceDef // external credential sources (source.go); nil when none
}

func newData() *Data {
	return &Data{Credentials: map[string]*Credential{}, Agents: map[string]*Agent{}, System: map[string]Secret{}}
}

// Credential returns the credential at path or an error wrapping ErrNotFound.
func (d *Data) Credential(path string) (*Credential, error) {
	c, ok := d.Credentials[path]
	if !ok || c == nil {
		return nil, fmt.Errorf("credential %q: %w", path, ErrNotFound)
	}
	return c, nil
}

// Agent returns the agent or an error wrapping ErrNotFound.
func (d *Data) Agent(name string) (*Agent, error) {
	a, ok := d.Agents[name]
	if !ok || a == nil {
		return nil, fmt.Errorf("agent %q: %w", name, ErrNotFound)
	}
	return a, nil
}

// CredentialPaths returns the credential paths, sorted.
func (d *Data) CredentialPaths() []string { return sortedKeys(d.Credentials) }

// AgentNames returns the agent names, sorted.
func (d *Data) AgentNames() []string { return sortedKeys(d.Agents) }

// SetCredential stores c under c.Path, replacing any credential there. For
// use inside Update.
func (d *Data) SetCredential(c *Credential) {
	if d.Credentials == nil {
		d.Credentials = map[string]*Credential{}
	}
	d.Credentials[c.Path] = c
}

// DeleteCredential removes the credential at path, or returns an error
// wrapping ErrNotFound. For use inside Update.
func (d *Data) DeleteCredential(path string) error {
	if _, err := d.Credential(path); err != nil {
		return err
	}
	delete(d.Credentials, path)
	return nil
}

// SetAgent stores a under a.Name, replacing any agent there. For use inside
// Update.
func (d *Data) SetAgent(a *Agent) {
	if d.Agents == nil {
		d.Agents = map[string]*Agent{}
	}
	d.Agents[a.Name] = a
}

// DeleteAgent removes the agent, or returns an error wrapping ErrNotFound.
// For use inside Update.
func (d *Data) DeleteAgent(name string) error {
	if _, err := d.Agent(name); err != nil {
		return err
	}
	delete(d.Agents, name)
	return nil
}

// Clone returns a deep copy of d: no byte slice or map is shared. Its maps
// are never nil.
func (d *Data) Clone() *Data {
	c := newData()
	for k, v := range d.Credentials {
		if v == nil {
			continue
		}
		cc := *v
		cc.Value = NewSecret(bytes.Clone(v.Value.Bytes()))
		cc.Metadata = maps.Clone(v.Metadata)
		c.Credentials[k] = &cc
	}
	for k, v := range d.Agents {
		if v == nil {
			continue
		}
		a := *v
		a.PublicKey = bytes.Clone(v.PublicKey)
		a.TokenHash = bytes.Clone(v.TokenHash)
		c.Agents[k] = &a
	}
	for k, v := range d.System {
		c.System[k] = NewSecret(bytes.Clone(v.Bytes()))
	}
	cloneSources(c, d)
	return c
}
