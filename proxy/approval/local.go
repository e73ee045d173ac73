package approval

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"sync"
	"time"

	"github.com/airlock/airlock/vault"
)

// keepDecided is how many recent decisions LocalStore keeps for Decided.
const keepDecided = 512

// LocalStore is the single-process [Store]: pending entries and decisions in
// memory, durable remembered approvals in a JSON file (written atomically:
// temp file, fsync, rename, fsync of the directory).
type LocalStore struct {
	path string // "" keeps remembered approvals in memory only

	mu         sync.Mutex          // guards everything below
	pending    map[string]*Pending // by id
	byKey      map[string]string   // key -> id
	decided    map[string]Decision // by id, bounded by order
	order      []string            // ids in decided, oldest first
	remembered map[string]Decision // by key
	subs       map[chan Decision]struct{}
}

// rememberedRecord keeps the key, which Decision does not marshal.
type rememberedRecord struct {
	Key string `json:"key"`
	Decision
}

// NewLocalStore opens the store, loading remembered approvals from path (a
// missing file is an empty store). path "" keeps them in memory only.
func NewLocalStore(path string) (*LocalStore, error) {
	s := &LocalStore{
		path: path, pending: map[string]*Pending{}, byKey: map[string]string{},
		decided: map[string]Decision{}, remembered: map[string]Decision{},
		subs: map[chan Decision]struct{}{},
	}
	if path == "" {
		return s, nil
	}
	data, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return s, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read remembered approvals: %w", err)
	}
	var f struct {
		Version    int                `json:"version"`
		Remembered []rememberedRecord `json:"remembered"`
	}
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, fmt.Errorf("read remembered approvals %s: %w (move the file away to start empty)", path, err)
	}
	if f.Version != 1 {
		return nil, fmt.Errorf("read remembered approvals %s: unknown version %d", path, f.Version)
	}
	for _, r := range f.Remembered {
		if r.Key != "" {
			r.Decision.Key = r.Key
			s.remembered[r.Key] = r.Decision
		}
	}
	return s, nil
}

// Join implements [Store].
func (s *LocalStore) Join(_ context.Context, p Pending) (Pending, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if id, ok := s.byKey[p.Key]; ok {
		e := s.pending[id]
		e.Waiters++
		return *e, false, nil
	}
	p.Waiters = 1
	e := p
	s.pending[p.ID] = &e
	s.byKey[p.Key] = p.ID
	return e, true, nil
}

// Leave implements [Store].
func (s *LocalStore) Leave(_ context.Context, id string) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.pending[id]
	if !ok {
		return false, ErrNotFound
	}
	e.Waiters--
	if e.Waiters > 0 {
		return false, nil
	}
	delete(s.pending, id)
	delete(s.byKey, e.Key)
	return true, nil
}

// Get implements [Store].
func (s *LocalStore) Get(_ context.Context, id string) (Pending, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.pending[id]
	if !ok {
		return Pending{}, ErrNotFound
	}
	return *e, nil
}

// List implements [Store].
func (s *LocalStore) List(_ context.Context) ([]Pending, error) {
	s.mu.Lock()
	out := make([]Pending, 0, len(s.pending))
	for _, e := range s.pending {
		out = append(out, *e)
	}
	s.mu.Unlock()
	sort.Slice(out, func(i, j int) bool {
		if !out[i].Created.Equal(out[j].Created) {
			return out[i].Created.Before(out[j].Created)
		}
		return out[i].ID < out[j].ID
	})
	return out, nil
}

// Resolve implements [Store]. A failed write of the remembered file leaves
// the entry pending and the file as it was.
func (s *LocalStore) Resolve(_ context.Context, d Decision) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.pending[d.ID]
	if !ok {
		return ErrNotFound
	}
	if d.durable() {
		prev, had := s.remembered[e.Key]
		s.remembered[e.Key] = d
		if err := s.saveLocked(d.At); err != nil {
			if had {
				s.remembered[e.Key] = prev
			} else {
				delete(s.remembered, e.Key)
			}
			return err
		}
	}
	delete(s.pending, d.ID)
	delete(s.byKey, e.Key)
	s.decided[d.ID] = d
	s.order = append(s.order, d.ID)
	if len(s.order) > keepDecided {
		delete(s.decided, s.order[0])
		s.order = s.order[1:]
	}
	for ch := range s.subs {
		select {
		case ch <- d:
		default: // slow subscriber: it polls Decided
		}
	}
	return nil
}

// Decided implements [Store].
func (s *LocalStore) Decided(_ context.Context, id string) (Decision, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d, ok := s.decided[id]
	return d, ok, nil
}

// Remembered implements [Store].
func (s *LocalStore) Remembered(_ context.Context, key string, now time.Time) (Decision, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d, ok := s.remembered[key]
	if !ok || !d.covers(now) {
		return Decision{}, false, nil
	}
	return d, true, nil
}

// Subscribe implements [Store].
func (s *LocalStore) Subscribe(ctx context.Context) (<-chan Decision, error) {
	ch := make(chan Decision, 64)
	s.mu.Lock()
	s.subs[ch] = struct{}{}
	s.mu.Unlock()
	go func() {
		<-ctx.Done()
		s.mu.Lock()
		delete(s.subs, ch)
		s.mu.Unlock()
		close(ch)
	}()
	return ch, nil
}

// saveLocked writes the remembered approvals still in force at now. s.mu
// must be held.
func (s *LocalStore) saveLocked(now time.Time) error {
	if s.path == "" {
		return nil
	}
	recs := make([]rememberedRecord, 0, len(s.remembered))
	for k, d := range s.remembered {
		if !d.covers(now) {
			delete(s.remembered, k)
			continue
		}
		recs = append(recs, rememberedRecord{Key: k, Decision: d})
	}
	sort.Slice(recs, func(i, j int) bool { return recs[i].Key < recs[j].Key })
	data, err := json.MarshalIndent(struct {
		Version    int                `json:"version"`
		Remembered []rememberedRecord `json:"remembered"`
	}{1, recs}, "", "  ")
	if err != nil {
		return fmt.Errorf("encode remembered approvals: %w", err)
	}
	if err := vault.WriteFile(s.path, append(data, '\n'), 0o600); err != nil {
		return fmt.Errorf("save remembered approvals: %w", err)
	}
	return nil
}
