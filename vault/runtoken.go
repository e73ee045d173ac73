package vault

// Run tokens: the short-lived identity of one `airlock run --isolate`. The
// run writes a token entry to the vault (airlock's own System map, never
// listed as a credential), the running serve's vault reload picks it up,
// and the run deletes it when CMD exits. An entry past its expiry is
// refused even while it is still in the file.

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// runTokenPrefix starts every run token: "run.<id>.<secret>".
const runTokenPrefix = "run."

// RunTokenKey is the System map key prefix of run token entries.
const RunTokenKey = "run-token/"

// ErrRunToken: a run token cannot be issued (unknown or disabled agent).
var ErrRunToken = errors.New("cannot issue a run token")

// runTokenEntry is what the vault holds for one run token: never the
// token, only its hash.
type runTokenEntry struct {
	Agent   string    `json:"agent"`
	Hash    string    `json:"sha256"`
	Expires time.Time `json:"expires"`
}

// IssueRunToken registers a fresh token for agent valid for ttl in v and
// returns it with its id (for [Vault.RevokeRunToken]). Expired entries are
// pruned on the way.
func (v *Vault) IssueRunToken(agent string, ttl time.Duration) (token, id string, expires time.Time, err error) {
	var idb [8]byte
	var sec [32]byte
	if _, err := rand.Read(idb[:]); err != nil {
		return "", "", time.Time{}, fmt.Errorf("run token: %w", err)
	}
	if _, err := rand.Read(sec[:]); err != nil {
		return "", "", time.Time{}, fmt.Errorf("run token: %w", err)
	}
	id = hex.EncodeToString(idb[:])
	token = runTokenPrefix + id + "." + hex.EncodeToString(sec[:])
	expires = time.Now().Add(ttl).UTC()
	err = v.Update(func(d *Data) error {
		if a := d.Agents[agent]; a == nil || a.Disabled {
			return fmt.Errorf("agent %q is not registered or disabled: %w", agent, ErrRunToken)
		}
		pruneRunTokens(d, time.Now())
		b, err := json.Marshal(runTokenEntry{Agent: agent, Hash: hex.EncodeToString(HashToken(token)), Expires: expires})
		if err != nil {
			return err
		}
		if d.System == nil {
			d.System = map[string]Secret{}
		}
		d.System[RunTokenKey+id] = NewSecret(b)
		return nil
	})
	if err != nil {
		return "", "", time.Time{}, fmt.Errorf("register run token for %s: %w", agent, err)
	}
	return token, id, expires, nil
}

// RevokeRunToken deletes the run token id from v (and any expired one).
func (v *Vault) RevokeRunToken(id string) error {
	err := v.Update(func(d *Data) error {
		delete(d.System, RunTokenKey+id)
		pruneRunTokens(d, time.Now())
		return nil
	})
	if err != nil {
		return fmt.Errorf("revoke run token %s: %w", id, err)
	}
	return nil
}

func pruneRunTokens(d *Data, now time.Time) {
	for k, s := range d.System {
		if !strings.HasPrefix(k, RunTokenKey) {
			continue
		}
		var e runTokenEntry
		if json.Unmarshal(s.Bytes(), &e) != nil || !now.Before(e.Expires) {
			delete(d.System, k)
		}
	}
}

// AuthenticateRunToken accepts a run token of agent name that is
// registered in d, not expired, and whose agent is enabled.
func (d *Data) AuthenticateRunToken(name, token string) bool {
	rest, ok := strings.CutPrefix(token, runTokenPrefix)
	if !ok {
		return false
	}
	id, _, ok := strings.Cut(rest, ".")
	if !ok || len(id) != 16 {
		return false
	}
	s, ok := d.System[RunTokenKey+id]
	if !ok {
		return false
	}
	var e runTokenEntry
	if json.Unmarshal(s.Bytes(), &e) != nil || e.Agent != name || !time.Now().Before(e.Expires) {
		return false
	}
	want, err := hex.DecodeString(e.Hash)
	if err != nil || subtle.ConstantTimeCompare(HashToken(token), want) != 1 {
		return false
	}
	a := d.Agents[name]
	return a != nil && !a.Disabled
}
