package rpc

import (
	"bytes"
	"container/list"
	"encoding/binary"
	"encoding/json"
	"io"
	"net"
	"sync"
)

// Before a connection has authenticated it is cheap for anyone to open, so
// it gets less: frames of at most Options.PreAuthMaxFrame (64 KiB), a
// handshake deadline (Options.HandshakeTimeout, 10 s) for the first
// successful challenge_response, and a place in a bounded pool of
// unauthenticated connections (Options.MaxUnauthConns in all,
// Options.MaxUnauthPerSource per source address). A new connection over
// either cap evicts the oldest unauthenticated one (of its source first),
// so a flood cannot keep a real agent from starting its handshake, and
// memory stays bounded by caps × frame limit.

// Defaults of the pre-authentication limits.
const (
	DefaultPreAuthMaxFrame    = 64 << 10
	DefaultMaxUnauthConns     = 1024
	DefaultMaxUnauthPerSource = 128
)

// unauthGate is the pool of unauthenticated connections.
type unauthGate struct {
	max, perSource int

	mu       sync.Mutex // guards all, bySource
	all      *list.List // of *gateEntry, oldest first
	bySource map[string]*list.List
}

// gateEntry is one unauthenticated connection in the pool.
type gateEntry struct {
	g        *unauthGate
	source   string
	evict    func()
	inAll    *list.Element
	inSource *list.Element
}

func newUnauthGate(max, perSource int) *unauthGate {
	return &unauthGate{max: max, perSource: perSource, all: list.New(), bySource: map[string]*list.List{}}
}

// enter adds a connection from source; evict closes it. It returns how
// many older connections were evicted to make room.
func (g *unauthGate) enter(source string, evict func()) (*gateEntry, int) {
	g.mu.Lock()
	var victims []*gateEntry
	src := g.bySource[source]
	if src == nil {
		src = list.New()
		g.bySource[source] = src
	}
	for g.perSource > 0 && src.Len() >= g.perSource {
		victims = append(victims, g.removeLocked(src.Front().Value.(*gateEntry)))
	}
	for g.max > 0 && g.all.Len() >= g.max {
		victims = append(victims, g.removeLocked(g.all.Front().Value.(*gateEntry)))
	}
	e := &gateEntry{g: g, source: source, evict: evict}
	e.inAll = g.all.PushBack(e)
	if g.bySource[source] == nil { // emptied and dropped by an eviction above
		g.bySource[source] = src
	}
	e.inSource = src.PushBack(e)
	g.mu.Unlock()
	for _, v := range victims {
		v.evict()
	}
	return e, len(victims)
}

// removeLocked takes e out of the pool (g.mu held).
func (g *unauthGate) removeLocked(e *gateEntry) *gateEntry {
	if e.inAll == nil {
		return e
	}
	g.all.Remove(e.inAll)
	src := g.bySource[e.source]
	src.Remove(e.inSource)
	if src.Len() == 0 {
		delete(g.bySource, e.source)
	}
	e.inAll, e.inSource = nil, nil
	return e
}

// leave takes the connection out of the pool (authenticated or closed);
// calling it again does nothing.
func (e *gateEntry) leave() {
	e.g.mu.Lock()
	e.g.removeLocked(e)
	e.g.mu.Unlock()
}

// sourceOf is the address a connection's limits are charged to: the IP of
// a TCP peer, "unix" for a Unix socket.
func sourceOf(c net.Conn) string {
	a := c.RemoteAddr()
	if a == nil {
		return "unix"
	}
	if ta, ok := a.(*net.TCPAddr); ok {
		return ta.IP.String()
	}
	if host, _, err := net.SplitHostPort(a.String()); err == nil {
		return host
	}
	return "unix"
}

// idProbeBytes is how much of an oversize frame is read to find its id.
const idProbeBytes = 4 << 10

// readFrameOrID reads one frame of at most max bytes. For a larger frame
// it reads the first idProbeBytes of the body and returns the request's
// id when it can be read there (nil otherwise) with ErrFrameTooLarge.
func readFrameOrID(r io.Reader, max int) (frame []byte, oversizeID json.RawMessage, err error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, nil, err
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if uint64(n) > uint64(max) {
		probe := make([]byte, min(int(n), idProbeBytes))
		k, _ := io.ReadFull(r, probe)
		return nil, probeID(probe[:k]), ErrFrameTooLarge
	}
	frame, err = readFrame(io.MultiReader(bytes.NewReader(hdr[:]), r), max)
	return frame, nil, err
}

// probeID reads the top-level "id" of a JSON object from its first bytes;
// nil when the id is not among them or is not a number or a string.
func probeID(prefix []byte) json.RawMessage {
	dec := json.NewDecoder(bytes.NewReader(prefix))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil
	}
	for dec.More() {
		key, err := dec.Token()
		if err != nil {
			return nil
		}
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil
		}
		if key == "id" {
			if len(v) == 0 || v[0] == 'n' || !validID(v) {
				return nil
			}
			return v
		}
	}
	return nil
}
