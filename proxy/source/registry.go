package source

import (
	"bytes"
	"context"
	"errors"
	"maps"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/airlock/airlock/vault"
)

// Registry holds one [Cache] per source defined in the vault and resolves
// credentials through them. It is safe for concurrent use.
type Registry struct {
	metrics *Metrics
	log     *zap.Logger

	// mu guards sources.
	mu      sync.RWMutex
	sources map[string]*regEntry
}

type regEntry struct {
	def   *vault.SourceDef
	cache *Cache // nil when the definition could not be built
	err   error  // why not
}

// NewRegistry returns an empty registry; m and log may be nil.
func NewRegistry(m *Metrics, log *zap.Logger) *Registry {
	if m == nil {
		m, _ = NewMetrics(nil)
	}
	if log == nil {
		log = zap.NewNop()
	}
	return &Registry{metrics: m, log: log, sources: map[string]*regEntry{}}
}

// Load makes the registry match d.Sources: new and changed definitions are
// built (with an empty cache), removed ones closed, unchanged ones keep
// their cache. Call it at start and after every vault reload. A definition
// that does not build is kept as an error (its credentials answer
// ErrUnavailable) and reported in the returned joined error.
func (r *Registry) Load(d *vault.Data) error {
	var errs []error
	next := map[string]*regEntry{}
	r.mu.RLock()
	old := maps.Clone(r.sources)
	r.mu.RUnlock()
	for _, name := range d.SourceNames() {
		def := d.Sources[name]
		if o, ok := old[name]; ok && sameDef(o.def, def) {
			next[name] = o
			delete(old, name)
			continue
		}
		e := &regEntry{def: def}
		src, opts, err := Build(def)
		if err != nil {
			e.err = err
			errs = append(errs, err)
			r.log.Error("credential source not set up", zap.String(LogSource, name), zap.Error(err))
		} else {
			e.cache = NewCache(name, src, opts, r.metrics, r.log)
		}
		next[name] = e
	}
	r.mu.Lock()
	r.sources = next
	r.mu.Unlock()
	for _, o := range old {
		if o.cache != nil {
			o.cache.Close()
		}
	}
	return errors.Join(errs...)
}

func sameDef(a, b *vault.SourceDef) bool {
	if a.Type != b.Type || !maps.Equal(a.Config, b.Config) || len(a.Secrets) != len(b.Secrets) {
		return false
	}
	for k, v := range a.Secrets {
		if w, ok := b.Secrets[k]; !ok || !bytes.Equal(v.Bytes(), w.Bytes()) {
			return false
		}
	}
	return true
}

// Close stops every cache.
func (r *Registry) Close() {
	r.mu.Lock()
	old := r.sources
	r.sources = map[string]*regEntry{}
	r.mu.Unlock()
	for _, e := range old {
		if e.cache != nil {
			e.cache.Close()
		}
	}
}

// Cache returns the cache of a source, or an [*Error] (ErrUnavailable)
// when it is not defined or could not be set up.
func (r *Registry) Cache(name string) (*Cache, error) {
	r.mu.RLock()
	e, ok := r.sources[name]
	r.mu.RUnlock()
	switch {
	case !ok:
		return nil, &Error{Source: name, Class: ErrUnavailable, Cause: errors.New("no such source in the vault (airlock source list)")}
	case e.cache == nil:
		return nil, &Error{Source: name, Class: ErrUnavailable, Cause: e.err}
	}
	return e.cache, nil
}

// Fetch resolves one reference through its source's cache.
func (r *Registry) Fetch(ctx context.Context, ref vault.Ref) (Value, error) {
	c, err := r.Cache(ref.Source)
	if err != nil {
		var se *Error
		if errors.As(err, &se) {
			se.Key = ref.Key
		}
		return Value{}, err
	}
	return c.FetchTTL(ctx, SourceKey(ref), ref.TTL)
}

// Resolve returns the value of a vault credential: its own for a stored
// one, its source's for a [vault.KindRef] one (the credential's Username
// and ExpiresAt still apply). The credential's own expiry is checked
// first either way (ErrExpired).
func (r *Registry) Resolve(ctx context.Context, c *vault.Credential, now time.Time) (Value, error) {
	if c.Expired(now) {
		return Value{}, &Error{Source: "vault", Key: c.Path, Class: ErrExpired}
	}
	ref, isRef := c.Ref()
	if !isRef {
		if c.Kind == vault.KindRef {
			return Value{}, &Error{Source: "vault", Key: c.Path, Class: ErrNotFound,
				Cause: errors.New("malformed reference (set it again with airlock vault set-ref)")}
		}
		kind := c.Kind
		if kind == "" {
			kind = vault.KindStatic
		}
		return Value{Secret: c.Value, Kind: kind, ExpiresAt: c.ExpiresAt, Username: c.Username}, nil
	}
	v, err := r.Fetch(ctx, ref)
	if err != nil {
		return Value{}, err
	}
	if !v.ExpiresAt.IsZero() && !now.Before(v.ExpiresAt) {
		return Value{}, &Error{Source: ref.Source, Key: ref.Key, Class: ErrExpired}
	}
	if c.Username != "" {
		v.Username = c.Username
	}
	if !c.ExpiresAt.IsZero() && (v.ExpiresAt.IsZero() || c.ExpiresAt.Before(v.ExpiresAt)) {
		v.ExpiresAt = c.ExpiresAt
	}
	return v, nil
}

// CheckResult is one source's answer to `airlock doctor`.
type CheckResult struct {
	Source string
	Type   string
	Err    error // nil: the source answered
}

// Check asks every source whether it answers (its Checker, if any).
func (r *Registry) Check(ctx context.Context) []CheckResult {
	r.mu.RLock()
	entries := maps.Clone(r.sources)
	r.mu.RUnlock()
	var out []CheckResult
	for _, name := range sortedNames(entries) {
		e := entries[name]
		res := CheckResult{Source: name, Type: e.def.Type, Err: e.err}
		if e.cache != nil {
			res.Err = CheckSource(ctx, e.cache.Source())
		}
		out = append(out, res)
	}
	return out
}

// CheckSource runs src's Checker, if it has one, with a 15 s bound.
func CheckSource(ctx context.Context, src Source) error {
	ch, ok := src.(Checker)
	if !ok {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	return ch.Check(ctx)
}

// Status returns the last fetch of every key of every source.
func (r *Registry) Status() StatusFile {
	r.mu.RLock()
	defer r.mu.RUnlock()
	st := StatusFile{Sources: map[string]map[string]KeyStatus{}}
	for name, e := range r.sources {
		if e.cache != nil {
			st.Sources[name] = e.cache.Status()
		}
	}
	return st
}

func sortedNames[V any](m map[string]V) []string {
	d := &vault.Data{Sources: map[string]*vault.SourceDef{}}
	for k := range m {
		d.Sources[k] = nil
	}
	return d.SourceNames()
}

// ResolveCredential is [Registry.Resolve] shaped for code that works on
// *vault.Credential (injection, scrubbing, audit): a stored credential is
// returned as is; a reference comes back as a copy holding the fetched
// value, with Kind set to the value's kind, so nothing downstream changes.
// The copy's Metadata keeps the reference (source, key) for audit lines.
func (r *Registry) ResolveCredential(ctx context.Context, c *vault.Credential, now time.Time) (*vault.Credential, error) {
	if c.Kind != vault.KindRef {
		if c.Expired(now) {
			return nil, &Error{Source: "vault", Key: c.Path, Class: ErrExpired}
		}
		return c, nil
	}
	v, err := r.Resolve(ctx, c, now)
	if err != nil {
		return nil, err
	}
	out := *c
	out.Kind, out.Value, out.Username, out.ExpiresAt = v.Kind, v.Secret, v.Username, v.ExpiresAt
	out.Metadata = maps.Clone(c.Metadata)
	return &out, nil
}
