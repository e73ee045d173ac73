package source

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"

	"go.uber.org/zap"

	"github.com/airlock/airlock/vault"
)

// StatusFile is what `airlock serve` writes beside the vault so `vault
// list` (another process) can show each reference's last fetch: source,
// key, time and result. Never a value.
type StatusFile struct {
	Written time.Time                       `json:"written"`
	Sources map[string]map[string]KeyStatus `json:"sources"` // source -> SourceKey -> status
}

// WriteStatus writes the registry's status to path atomically (mode 0600).
func (r *Registry) WriteStatus(path string) error {
	st := r.Status()
	st.Written = time.Now().UTC()
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return fmt.Errorf("source status: %w", err)
	}
	if err := vault.WriteFile(path, b, 0o600); err != nil {
		return fmt.Errorf("source status: %w", err)
	}
	return nil
}

// ReadStatus reads a status file; a missing file is an empty status.
func ReadStatus(path string) (StatusFile, error) {
	st := StatusFile{Sources: map[string]map[string]KeyStatus{}}
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return st, nil
	}
	if err != nil {
		return st, fmt.Errorf("source status: %w", err)
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return StatusFile{Sources: map[string]map[string]KeyStatus{}}, fmt.Errorf("source status %s: malformed", path)
	}
	if st.Sources == nil {
		st.Sources = map[string]map[string]KeyStatus{}
	}
	return st, nil
}

// RefInfo is what `vault list` shows of a reference credential.
type RefInfo struct {
	Source     string     `json:"source"`
	Key        string     `json:"key"`
	Field      string     `json:"field,omitempty"`
	Version    int        `json:"version,omitempty"`
	LastFetch  *time.Time `json:"last_fetch"`
	LastResult string     `json:"last_result,omitempty"`
}

// DescribeRef returns the reference of c with its last fetch from st, or
// ok=false when c is not a reference.
func DescribeRef(c *vault.Credential, st StatusFile) (RefInfo, bool) {
	ref, ok := c.Ref()
	if !ok {
		return RefInfo{}, false
	}
	info := RefInfo{Source: ref.Source, Key: ref.Key, Field: ref.Field, Version: ref.Version}
	if ks, ok := st.Sources[ref.Source][SourceKey(ref)]; ok && !ks.LastFetch.IsZero() {
		t := ks.LastFetch.UTC()
		info.LastFetch, info.LastResult = &t, ks.Result
	}
	return info, true
}

// String is the one-column text form: "SOURCE:KEY[#FIELD][@V] (fetched
// TIME ok)" or "(never fetched)".
func (i RefInfo) String() string {
	s := i.Source + ":" + SourceKey(vault.Ref{Key: i.Key, Field: i.Field, Version: i.Version})
	if i.LastFetch == nil {
		return s + " (never fetched)"
	}
	return fmt.Sprintf("%s (fetched %s %s)", s, i.LastFetch.Format(time.RFC3339), i.LastResult)
}

// RunStatusWriter writes the status file every interval until ctx ends
// (and once more then). Errors are logged, not fatal: the file only feeds
// `vault list`. Run it in its own goroutine.
func (r *Registry) RunStatusWriter(ctx context.Context, path string, every time.Duration) {
	if every <= 0 {
		every = 10 * time.Second
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			if err := r.WriteStatus(path); err != nil {
				r.log.Warn("credential source status not written", zap.Error(err))
			}
			return
		case <-t.C:
			if err := r.WriteStatus(path); err != nil {
				r.log.Warn("credential source status not written", zap.Error(err))
			}
		}
	}
}
