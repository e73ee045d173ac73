package proxy

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/fsnotify/fsnotify"
	"go.uber.org/zap"

	"github.com/airlock/airlock/policy"
	"github.com/airlock/airlock/vault"
)

// Hot reload: a [Watcher] polls the policy and vault files (size, mtime,
// and for the policy the content hash) and swaps in new versions. A request
// loads the policy pointer once and keeps the credential it resolved, so
// in-flight requests finish on the versions they started with. An invalid
// file is refused, logged with its reason and counted; the old version
// stays in force.

// expiryWindow is how far ahead airlock_credentials_expiring looks.
const expiryWindow = 7 * 24 * time.Hour

// ErrSealed is returned by ReloadVault when the vault has been sealed.
var ErrSealed = errors.New("vault is sealed")

// ReloadPolicy loads the policy file at path and swaps it in. An invalid
// file leaves the policy in force untouched; its error carries the
// file:line:col of each problem.
func (s *Server) ReloadPolicy(path string) error {
	p, err := policy.Load(path)
	if err != nil {
		s.metrics.PolicyReloads.WithLabelValues(resultError).Inc()
		s.noteReloadError(&s.ops.policyErr, path, err)
		s.log.Error("policy reload refused; the previous policy stays in force", zap.String("file", path), fieldErr(err))
		return fmt.Errorf("reload policy: %w", err)
	}
	now := time.Now()
	old := s.Policy()
	s.swapPolicy(p, now)
	s.ops.policyErr.Store(nil)
	s.metrics.PolicyReloads.WithLabelValues(resultSuccess).Inc()
	s.metrics.LastReloadSuccess.Set(float64(now.UnixNano()) / 1e9)
	s.log.Info("policy reloaded", zap.String("file", path), zap.String("sha256", p.Hash),
		zap.Int("rules", len(p.Rules)), zap.String("mode", orString(p.Egress.Mode, "enforce")))
	if v := s.Vault(); v != nil {
		s.revokeRuleless(old, p, v.Snapshot())
	}
	return nil
}

// ReloadVault re-reads the vault file with the data key held in memory
// (so a passphrase change made meanwhile does not matter). changed is false
// when the file's content is what is already loaded.
func (s *Server) ReloadVault() (changed bool, err error) {
	v := s.Vault()
	if v == nil {
		return false, ErrSealed
	}
	old := v.Snapshot()
	changed, err = v.Reload()
	if err != nil {
		s.metrics.VaultReloads.WithLabelValues(resultError).Inc()
		s.noteReloadError(&s.ops.vaultErr, v.Path(), err)
		s.log.Error("vault reload refused; the previous contents stay in force", zap.String("file", v.Path()), fieldErr(err))
		return false, fmt.Errorf("reload vault: %w", err)
	}
	s.ops.vaultErr.Store(nil)
	if changed {
		s.metrics.VaultReloads.WithLabelValues(resultSuccess).Inc()
		s.metrics.LastReloadSuccess.Set(float64(time.Now().UnixNano()) / 1e9)
		d := v.Snapshot()
		s.log.Info("vault reloaded", zap.String("file", v.Path()),
			zap.Int("credentials", len(d.Credentials)), zap.Int("agents", len(d.Agents)))
		s.revokeChangedAgents(old, d)
		s.dropStaleCaches()
	}
	s.updateExpiring(time.Now())
	return changed, nil
}

// updateExpiring recomputes airlock_credentials_expiring.
func (s *Server) updateExpiring(now time.Time) {
	if v := s.Vault(); v != nil {
		s.metrics.CredentialsExpiring.Set(float64(expiringCount(v.Snapshot(), now)))
	}
}

// expiringCount counts credentials expiring within expiryWindow of now,
// the already expired included.
func expiringCount(d *vault.Data, now time.Time) int {
	if d == nil {
		return 0
	}
	n := 0
	for _, c := range d.Credentials {
		if !c.ExpiresAt.IsZero() && c.ExpiresAt.Before(now.Add(expiryWindow)) {
			n++
		}
	}
	return n
}

// Watcher reloads the policy and the vault when their files change, and on
// demand (SIGHUP).
type Watcher struct {
	s          *Server
	policyPath string
	interval   time.Duration
	kick       chan struct{}

	// Owned by the Run goroutine.
	pol, vlt fileStamp
	polls    int
	tried    string // hash of the policy content last loaded or refused
}

// fileStamp is what polling compares.
type fileStamp struct {
	mod  time.Time
	size int64
	ok   bool
}

func (a fileStamp) same(b fileStamp) bool {
	return a.ok == b.ok && a.size == b.size && a.mod.Equal(b.mod)
}

func stampOf(path string) fileStamp {
	fi, err := os.Stat(path)
	if err != nil {
		return fileStamp{}
	}
	return fileStamp{mod: fi.ModTime(), size: fi.Size(), ok: true}
}

// NewWatcher watches policyPath and the server's vault file every 500 ms.
func (s *Server) NewWatcher(policyPath string) *Watcher {
	return &Watcher{s: s, policyPath: policyPath, interval: 500 * time.Millisecond, kick: make(chan struct{}, 1)}
}

// Reload asks Run to reload both files now, changed or not. It never
// blocks (a signal handler may call it).
func (w *Watcher) Reload() {
	select {
	case w.kick <- struct{}{}:
	default:
	}
}

// Run polls until ctx ends. It also refreshes airlock_credentials_expiring
// (every minute) so credentials drift into the window without a reload.
func (w *Watcher) Run(ctx context.Context) {
	w.s.metrics.LastReloadSuccess.Set(float64(time.Now().UnixNano()) / 1e9)
	w.s.updateExpiring(time.Now())
	w.s.revocationsInit() // revocation metrics from the start; events from other replicas (agents.go)
	w.pol = stampOf(w.policyPath)
	if v := w.s.Vault(); v != nil {
		w.vlt = stampOf(v.Path())
	}
	tick := time.NewTicker(w.interval)
	defer tick.Stop()
	changed := w.notify(ctx) // nil (never ready) when fsnotify is unavailable
	expiry := time.NewTicker(time.Minute)
	defer expiry.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			w.poll(false)
		case <-changed:
			w.poll(false)
		case <-w.kick:
			w.s.log.Info("reload requested")
			w.poll(true)
		case now := <-expiry.C:
			w.s.updateExpiring(now)
		}
	}
}

// poll reloads what changed (everything when force).
func (w *Watcher) poll(force bool) {
	w.polls++
	// The stamp catches edits at once; the hash check every 5 s also
	// catches a same-size rewrite within one mtime tick (coarse clocks).
	if st := stampOf(w.policyPath); force || !st.same(w.pol) || w.polls%10 == 0 {
		w.pol = st
		if w.policyChanged() || force {
			_ = w.s.ReloadPolicy(w.policyPath)
		}
	}
	v := w.s.Vault()
	if v == nil {
		return
	}
	if st := stampOf(v.Path()); force || !st.same(w.vlt) {
		w.vlt = st
		_, _ = w.s.ReloadVault()
	}
}

// policyChanged reports whether the policy file's bytes differ from the
// policy in force and from the last content tried (a touch, a rewrite with
// the same content or a still-broken file is no new reload).
func (w *Watcher) policyChanged() bool {
	b, err := os.ReadFile(w.policyPath)
	if err != nil { // let Load report it, once
		changed := w.tried != "unreadable"
		w.tried = "unreadable"
		return changed
	}
	sum := sha256.Sum256(b)
	h := hex.EncodeToString(sum[:])
	if p := w.s.Policy(); (p != nil && p.Hash == h) || h == w.tried {
		return false
	}
	w.tried = h
	return true
}

// notify watches the directories of the policy and vault files (saves
// rename a temporary file into place) and signals a change of either, so
// `airlock agent add`, `agent rm` and `vault set` take effect at once; the
// poll stays as the fallback. It returns nil when fsnotify cannot watch.
func (w *Watcher) notify(ctx context.Context) <-chan struct{} {
	fw, err := fsnotify.NewWatcher()
	if err != nil {
		w.s.log.Info("file notifications unavailable; polling only", fieldErr(err))
		return nil
	}
	names := map[string]bool{filepath.Clean(w.policyPath): true}
	if v := w.s.Vault(); v != nil {
		names[filepath.Clean(v.Path())] = true
	}
	for name := range names {
		if err := fw.Add(filepath.Dir(name)); err != nil {
			w.s.log.Info("file notifications unavailable; polling only", zap.String("dir", filepath.Dir(name)), fieldErr(err))
		}
	}
	ch := make(chan struct{}, 1)
	go func() {
		defer fw.Close()
		for {
			select {
			case <-ctx.Done():
				return
			case ev, ok := <-fw.Events:
				if !ok {
					return
				}
				if names[filepath.Clean(ev.Name)] {
					select {
					case ch <- struct{}{}:
					default:
					}
				}
			case _, ok := <-fw.Errors:
				if !ok {
					return
				}
			}
		}
	}()
	return ch
}
