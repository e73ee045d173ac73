package certs

import (
	"container/list"
	"crypto/tls"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultMaxEntries is the cache bound used when NewCache is given max < 1.
const DefaultMaxEntries = 10000

// RenewBefore is how close to its NotAfter a cached leaf is re-minted.
const RenewBefore = time.Hour

// Cache is a bounded LRU of leaf certificates with single-flight minting.
// It is safe for concurrent use.
type Cache struct {
	// OnLookup, when set before use, is called with hit=true on a cache hit
	// and false on a mint. A Get that waits for another goroutine's mint of
	// the same host counts as a hit, so misses equal mints.
	OnLookup func(hit bool)
	// Go, when set before use, runs Prewarm's background mint (the proxy
	// gives it workers that keep a grown stack); nil: a goroutine of its
	// own.
	Go func(f func())

	ca    *CA
	max   int
	now   func() time.Time // the clock; tests replace it
	mint  func(host string, now time.Time) (*tls.Certificate, error)
	mints atomic.Uint64
	waits atomic.Uint64 // Gets that joined another Get's mint
	base  *tls.Config   // shared by TLSConfig when host is ""
	baseL *tls.Config   // shared by LocalTLSConfig when host is ""

	mu       sync.Mutex               // guards lru, items and inflight
	lru      *list.List               // of *entry, most recently used first
	items    map[string]*list.Element // host -> element of lru
	inflight map[string]*call         // host -> mint in progress

	cfgMu   sync.Mutex
	configs map[cfgKey]*tls.Config // its server config (TLSConfig, LocalTLSConfig)
}

// cfgKey names a host's server config: the usual one, or the one for an
// agent on this host (LocalTLSConfig).
type cfgKey struct {
	host  string
	local bool
}

type entry struct {
	host string
	cert *tls.Certificate
}

// call is one mint in progress; done is closed once cert/err are set.
type call struct {
	done chan struct{}
	cert *tls.Certificate
	err  error
}

// NewCache returns a cache holding at most max leaves (DefaultMaxEntries
// when max < 1).
func NewCache(ca *CA, max int) *Cache {
	if max < 1 {
		max = DefaultMaxEntries
	}
	c := &Cache{
		ca:       ca,
		max:      max,
		now:      time.Now,
		mint:     ca.Mint,
		lru:      list.New(),
		items:    make(map[string]*list.Element),
		inflight: make(map[string]*call),
		configs:  make(map[cfgKey]*tls.Config),
	}
	c.base, c.baseL = c.newConfig("", false), c.newConfig("", true)
	return c
}

// Get returns the leaf for host, minting it once on a miss. Concurrent
// Gets of a host being minted wait for that mint and share its result.
// Leaves within [RenewBefore] of expiry are re-minted. Host names are
// normalised by [NormalizeHost]; a bad host returns [ErrBadHost].
func (c *Cache) Get(host string) (*tls.Certificate, error) {
	key, err := NormalizeHost(host)
	if err != nil {
		return nil, err
	}
	now := c.now()
	c.mu.Lock()
	if cert := c.freshLocked(key, now); cert != nil {
		c.mu.Unlock()
		c.lookup(true)
		return cert, nil
	}
	if cl, ok := c.inflight[key]; ok {
		c.waits.Add(1)
		c.mu.Unlock()
		<-cl.done
		if cl.err == nil {
			c.lookup(true)
		}
		return cl.cert, cl.err
	}
	cl := &call{done: make(chan struct{})}
	c.inflight[key] = cl
	c.mu.Unlock()
	c.finishMint(key, now, cl)
	return cl.cert, cl.err
}

// finishMint mints key's leaf for the in-flight call cl (registered by the
// caller under mu), caches it, and releases cl's waiters.
func (c *Cache) finishMint(key string, now time.Time, cl *call) {
	cl.cert, cl.err = c.mint(key, now)
	c.mints.Add(1)
	c.mu.Lock()
	delete(c.inflight, key)
	if cl.err == nil {
		c.storeLocked(key, cl.cert)
	}
	c.mu.Unlock()
	close(cl.done)
	c.lookup(false)
}

// freshLocked returns the cached leaf for key unless it is missing or due
// for renewal, marking it most recently used.
func (c *Cache) freshLocked(key string, now time.Time) *tls.Certificate {
	el, ok := c.items[key]
	if !ok {
		return nil
	}
	e := el.Value.(*entry)
	if !now.Add(RenewBefore).Before(e.cert.Leaf.NotAfter) {
		return nil
	}
	c.lru.MoveToFront(el)
	return e.cert
}

// storeLocked inserts or replaces key and evicts the least recently used
// entries beyond max.
func (c *Cache) storeLocked(key string, cert *tls.Certificate) {
	if el, ok := c.items[key]; ok {
		el.Value.(*entry).cert = cert
		c.lru.MoveToFront(el)
		return
	}
	c.items[key] = c.lru.PushFront(&entry{host: key, cert: cert})
	for c.lru.Len() > c.max {
		oldest := c.lru.Back()
		c.lru.Remove(oldest)
		delete(c.items, oldest.Value.(*entry).host)
	}
}

func (c *Cache) lookup(hit bool) {
	if c.OnLookup != nil {
		c.OnLookup(hit)
	}
}

// Len returns the number of cached leaves.
func (c *Cache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lru.Len()
}

// Mints returns how many times the cache has called [CA.Mint], failed
// mints included.
func (c *Cache) Mints() uint64 { return c.mints.Load() }

// TLSConfig returns a server config for a MITM'd connection to host: its
// GetCertificate serves the leaf for the SNI name, or host when no SNI.
// It offers TLS 1.2+ and ALPN "h2" and "http/1.1" (the proxy serves both;
// a server that speaks only HTTP/1.1 sets NextProtos on a clone). The
// config is shared by every connection to host (one per host, not one
// held by each connection; its session tickets resume on the host's next
// connections) and must not be modified.
func (c *Cache) TLSConfig(host string) *tls.Config {
	return c.config(host, false)
}

// LocalTLSConfig is TLSConfig for an agent whose connection comes from
// this host (a loopback address, a Unix socket): the same, but its key
// exchange is X25519 or P-256 alone, without the post-quantum
// X25519MLKEM768 that Go picks whenever a client offers it. Such traffic
// never leaves the host, so nobody can record it for a quantum computer
// later; the hybrid costs every new agent connection about 0.1–0.2 ms on
// its critical path (both ends' ML-KEM work; README "Security"). Upstream
// connections keep Go's default, post-quantum included.
func (c *Cache) LocalTLSConfig(host string) *tls.Config {
	return c.config(host, true)
}

func (c *Cache) config(host string, local bool) *tls.Config {
	if host == "" && c.base != nil {
		if local {
			return c.baseL
		}
		return c.base
	}
	k := cfgKey{host, local}
	c.cfgMu.Lock()
	defer c.cfgMu.Unlock()
	if cfg := c.configs[k]; cfg != nil {
		return cfg
	}
	if len(c.configs) >= c.max { // hosts of the past: dropped all at once
		clear(c.configs)
	}
	cfg := c.newConfig(host, local)
	c.configs[k] = cfg
	return cfg
}

// localCurves are LocalTLSConfig's key exchanges.
var localCurves = []tls.CurveID{tls.X25519, tls.CurveP256}

// newConfig builds host's server config (see TLSConfig, LocalTLSConfig).
func (c *Cache) newConfig(host string, local bool) *tls.Config {
	var curves []tls.CurveID // nil: Go's default
	if local {
		curves = localCurves
	}
	return &tls.Config{
		MinVersion:       tls.VersionTLS12,
		NextProtos:       nextProtos,
		CurvePreferences: curves,
		GetCertificate: func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
			if hello.ServerName != "" {
				return c.Get(hello.ServerName)
			}
			return c.Get(host)
		},
	}
}

// nextProtos is shared by every config; crypto/tls only reads it.
var nextProtos = []string{"h2", "http/1.1"}

// Prewarm starts minting host's leaf in the background unless it is
// cached or being minted, and returns at once: a MITM calls it when it
// accepts a CONNECT, so the mint runs while the agent reads the answer and
// sends its ClientHello, and the handshake's Get joins it. The mint counts
// as the miss (OnLookup(false)), the Get that joins it as a hit, as for any
// concurrent Get; a bad host is ignored.
func (c *Cache) Prewarm(host string) {
	key, err := NormalizeHost(host)
	if err != nil {
		return
	}
	now := c.now()
	c.mu.Lock()
	if _, ok := c.inflight[key]; ok || c.freshLocked(key, now) != nil {
		c.mu.Unlock()
		return
	}
	cl := &call{done: make(chan struct{})}
	c.inflight[key] = cl
	c.mu.Unlock()
	if c.Go != nil {
		c.Go(func() { c.finishMint(key, now, cl) })
		return
	}
	go c.finishMint(key, now, cl)
}
