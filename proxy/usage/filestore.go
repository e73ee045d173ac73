package usage

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"
)

// FileStore is a [MemStore] persisted to one JSON file, so usage totals
// and budget counters survive a restart. It saves at most every
// FlushEvery when something changed, and on Flush and Close; each save
// writes a temporary file in the same directory, fsyncs it, renames it over
// the old one and fsyncs the directory, so a crash leaves the old or the
// new state, never a torn one. A crash loses at most FlushEvery of usage.
// In-flight reservations are not persisted: their requests die with the
// process. One process writes a file; readers (`airlock usage`) are safe
// at any time.
type FileStore struct {
	*MemStore
	path  string
	every time.Duration
	now   func() time.Time

	saveMu  sync.Mutex // serialises saves
	budgets []BudgetInfo
	stop    chan struct{}
	done    chan struct{}
	closeMu sync.Once
}

// State is the file's content.
type State struct {
	Version int              `json:"version"`
	Saved   time.Time        `json:"saved"`
	Buckets map[string]int64 `json:"buckets"`
	Usage   []Row            `json:"usage"`
	Budgets []BudgetInfo     `json:"budgets"`
}

// BudgetInfo describes a budget in the state file, so `airlock usage
// budgets` can show it without the policy.
type BudgetInfo struct {
	Name     string  `json:"name"`
	Unit     string  `json:"unit"` // tokens | usd
	Limit    float64 `json:"limit"`
	Window   string  `json:"window"`
	Timezone string  `json:"timezone"`
	WarnAt   float64 `json:"warn_at,omitempty"`
}

const stateVersion = 1

// Retention of the state file's contents.
const (
	KeepBuckets = 35 * 24 * time.Hour  // longer than any window
	KeepRows    = 400 * 24 * time.Hour // `airlock usage --since` reaches back this far
)

// FileOptions tune OpenFile.
type FileOptions struct {
	FlushEvery time.Duration    // default 1s
	Now        func() time.Time // default time.Now
}

// OpenFile loads path (a missing file is an empty state) and starts the
// background saver. Close it to save the last changes.
func OpenFile(path string, o FileOptions) (*FileStore, error) {
	if o.FlushEvery <= 0 {
		o.FlushEvery = time.Second
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	st, err := LoadState(path)
	if err != nil {
		return nil, err
	}
	m := NewMemStore()
	for k, v := range st.Buckets {
		m.buckets[k] = v
	}
	for _, r := range st.Usage {
		r := r
		m.rows[rowKey{r.Day, r.Agent, r.Rule, r.Credential, r.Model}] = &r
		if r.Unpriced {
			m.unpriced[r.Day]++
		}
	}
	f := &FileStore{MemStore: m, path: path, every: o.FlushEvery, now: o.Now, budgets: st.Budgets,
		stop: make(chan struct{}), done: make(chan struct{})}
	go f.saver()
	return f, nil
}

// LoadState reads a state file; a missing file is an empty state.
func LoadState(path string) (*State, error) {
	st := &State{Version: stateVersion, Buckets: map[string]int64{}}
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return st, nil
	}
	if err != nil {
		return nil, fmt.Errorf("usage state: %w", err)
	}
	if err := json.Unmarshal(b, st); err != nil {
		return nil, fmt.Errorf("usage state %s: %w (move the file away to start from zero)", path, err)
	}
	if st.Version != stateVersion {
		return nil, fmt.Errorf("usage state %s: version %d, this airlock reads %d", path, st.Version, stateVersion)
	}
	if st.Buckets == nil {
		st.Buckets = map[string]int64{}
	}
	return st, nil
}

// SetBudgets records the budgets' definitions in the file.
func (f *FileStore) SetBudgets(infos []BudgetInfo) {
	f.mu.Lock()
	if !slices.Equal(f.budgets, infos) { // an unchanged policy writes nothing
		f.budgets = append([]BudgetInfo(nil), infos...)
		f.dirty = true
	}
	f.mu.Unlock()
}

func (f *FileStore) saver() {
	defer close(f.done)
	t := time.NewTicker(f.every)
	defer t.Stop()
	for {
		select {
		case <-f.stop:
			return
		case <-t.C:
			_ = f.Flush() // a failing disk is retried at the next tick; Close reports it
		}
	}
}

// Flush saves now if anything changed.
func (f *FileStore) Flush() error {
	f.saveMu.Lock()
	defer f.saveMu.Unlock()
	f.mu.Lock()
	if !f.dirty {
		f.mu.Unlock()
		return nil
	}
	f.prune(f.now(), KeepBuckets, KeepRows)
	st := State{Version: stateVersion, Saved: f.now().UTC(), Buckets: make(map[string]int64, len(f.buckets)),
		Usage: f.rowsLocked(), Budgets: f.budgets}
	for k, v := range f.buckets {
		st.Buckets[k] = v
	}
	f.dirty = false
	f.mu.Unlock()
	b, err := json.Marshal(st)
	if err == nil {
		err = writeAtomic(f.path, b)
	}
	if err != nil {
		f.mu.Lock()
		f.dirty = true
		f.mu.Unlock()
		return fmt.Errorf("usage state: save %s: %w", f.path, err)
	}
	return nil
}

// Close stops the saver and saves the last changes.
func (f *FileStore) Close() error {
	f.closeMu.Do(func() { close(f.stop) })
	<-f.done
	return f.Flush()
}

// writeAtomic replaces path with data: temp file, fsync, rename, fsync dir.
func writeAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	name := tmp.Name()
	defer os.Remove(name) // no-op after the rename
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(name, path); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// BudgetStatus is one budget's state at a moment, read from a state file.
type BudgetStatus struct {
	BudgetInfo
	Used  float64   `json:"used"`       // committed in the current window, in Unit
	Ratio float64   `json:"used_ratio"` // Used / Limit
	Reset time.Time `json:"reset"`      // end of the calendar window; rolling: when the oldest usage ages out
}

// BudgetStatus computes every recorded budget's current window at now
// (for `airlock usage budgets`; in-flight reservations are not in the file).
func (st *State) BudgetStatus(now time.Time) ([]BudgetStatus, error) {
	out := make([]BudgetStatus, 0, len(st.Budgets))
	for _, info := range st.Budgets {
		loc, err := time.LoadLocation(info.Timezone)
		if err != nil {
			return nil, fmt.Errorf("budget %s: time zone %q: %w", info.Name, info.Timezone, err)
		}
		b := Budget{Name: info.Name, Window: info.Window, Location: loc}
		if info.Unit == "usd" {
			b.USD = info.Limit
		} else {
			b.Tokens = int64(info.Limit)
		}
		buckets, end := b.window(now)
		var used int64
		per := make([]int64, len(buckets))
		for i, k := range buckets {
			per[i] = st.Buckets[k]
			used += per[i]
		}
		if b.Window == "24h" {
			end = b.resetAt(now, end, per, 0, b.limit()-used+1)
			if used == 0 {
				end = now
			}
		}
		s := BudgetStatus{BudgetInfo: info, Used: b.toUnit(used), Reset: end}
		if l := b.limit(); l > 0 {
			s.Ratio = float64(used) / float64(l)
		}
		out = append(out, s)
	}
	return out, nil
}
