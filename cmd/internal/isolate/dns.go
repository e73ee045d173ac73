package isolate

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
)

// DNS wire constants.
const (
	dnsHeaderLen  = 12
	typeA         = 1
	typeAAAA      = 28
	classIN       = 1
	rcodeOK       = 0
	rcodeFormErr  = 1
	rcodeServFail = 2
	rcodeNXDomain = 3
	rcodeNotImp   = 4
	rcodeRefused  = 5
	answerTTL     = 5
	maxNames      = 1 << 16
)

// ErrBadQuery: the packet is not a single-question DNS query.
var ErrBadQuery = errors.New("malformed DNS query")

// SyntheticPool is where [DNS] draws the addresses it answers with.
var SyntheticPool = netip.MustParsePrefix("198.18.0.0/15")

// Query is one parsed DNS question.
type Query struct {
	ID    uint16
	Flags uint16
	Name  string // lower-case, no trailing dot
	Type  uint16
	Class uint16
	raw   []byte // the question section as received
}

// ParseQuery parses a DNS query packet: a header with QR=0 and exactly one
// question (answer and authority sections empty; an additional section,
// e.g. EDNS, is ignored). Compression pointers are refused in queries.
func ParseQuery(b []byte) (Query, error) {
	if len(b) < dnsHeaderLen {
		return Query{}, ErrBadQuery
	}
	q := Query{ID: binary.BigEndian.Uint16(b), Flags: binary.BigEndian.Uint16(b[2:])}
	qd, an, ns := binary.BigEndian.Uint16(b[4:]), binary.BigEndian.Uint16(b[6:]), binary.BigEndian.Uint16(b[8:])
	if q.Flags&0x8000 != 0 || qd != 1 || an != 0 || ns != 0 {
		return q, ErrBadQuery
	}
	var labels []string
	i := dnsHeaderLen
	for {
		if i >= len(b) {
			return q, ErrBadQuery
		}
		n := int(b[i])
		i++
		if n == 0 {
			break
		}
		if n > 63 || i+n > len(b) {
			return q, ErrBadQuery
		}
		labels = append(labels, string(b[i:i+n]))
		i += n
	}
	if i+4 > len(b) {
		return q, ErrBadQuery
	}
	q.Type, q.Class = binary.BigEndian.Uint16(b[i:]), binary.BigEndian.Uint16(b[i+2:])
	q.raw = b[dnsHeaderLen : i+4]
	q.Name = strings.ToLower(strings.Join(labels, "."))
	if len(q.Name) > 253 {
		return q, ErrBadQuery
	}
	return q, nil
}

// validName: letters, digits, '-', '_' and dots between non-empty labels.
func validName(n string) bool {
	if n == "" {
		return false
	}
	for _, l := range strings.Split(n, ".") {
		if l == "" {
			return false
		}
		for i := 0; i < len(l); i++ {
			c := l[i]
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}

// DNS answers A queries with a synthetic address per name, AAAA with no
// data, and everything else with NOTIMP; names Allow refuses, or that are
// not valid host names, get NXDOMAIN.
type DNS struct {
	// Allow filters names (nil allows every valid name).
	Allow func(name string) bool

	mu     sync.Mutex // guards byName, byAddr, next
	byName map[string]netip.Addr
	byAddr map[netip.Addr]string
	next   netip.Addr
}

// Name returns the name a synthetic address was handed out for.
func (d *DNS) Name(a netip.Addr) (string, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	n, ok := d.byAddr[a.Unmap()]
	return n, ok
}

// addrFor returns the name's synthetic address, allocating one.
func (d *DNS) addrFor(name string) (netip.Addr, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if a, ok := d.byName[name]; ok {
		return a, true
	}
	if d.byName == nil {
		d.byName, d.byAddr = map[string]netip.Addr{}, map[netip.Addr]string{}
		d.next = SyntheticPool.Addr().Next()
	}
	if len(d.byName) >= maxNames || !SyntheticPool.Contains(d.next) {
		return netip.Addr{}, false
	}
	a := d.next
	d.next = a.Next()
	d.byName[name], d.byAddr[a] = a, name
	return a, true
}

// Answer builds the response to one query packet; nil means drop it (not
// even a header to answer).
func (d *DNS) Answer(pkt []byte) []byte {
	q, err := ParseQuery(pkt)
	if err != nil {
		if len(pkt) < dnsHeaderLen || q.Flags&0x8000 != 0 {
			return nil
		}
		return respond(q, rcodeFormErr, nil)
	}
	switch {
	case q.Class != classIN:
		return respond(q, rcodeRefused, nil)
	case !validName(q.Name) || (d.Allow != nil && !d.Allow(q.Name)):
		return respond(q, rcodeNXDomain, nil)
	case q.Type == typeAAAA:
		return respond(q, rcodeOK, nil) // NODATA: the child has no IPv6
	case q.Type != typeA:
		return respond(q, rcodeNotImp, nil)
	}
	a, ok := d.addrFor(q.Name)
	if !ok {
		return respond(q, rcodeServFail, nil)
	}
	return respond(q, rcodeOK, a.AsSlice())
}

// respond encodes a response echoing the question, with one A record when
// ip is set.
func respond(q Query, rcode int, ip []byte) []byte {
	out := make([]byte, dnsHeaderLen, dnsHeaderLen+len(q.raw)+16)
	binary.BigEndian.PutUint16(out, q.ID)
	flags := uint16(0x8000|0x0400|0x0080) | q.Flags&0x0100 | uint16(rcode) // QR AA RA, RD copied
	binary.BigEndian.PutUint16(out[2:], flags)
	if q.raw != nil {
		binary.BigEndian.PutUint16(out[4:], 1)
		out = append(out, q.raw...)
	}
	if ip != nil {
		binary.BigEndian.PutUint16(out[6:], 1)
		out = append(out, 0xc0, dnsHeaderLen) // pointer to the question name
		out = binary.BigEndian.AppendUint16(out, typeA)
		out = binary.BigEndian.AppendUint16(out, classIN)
		out = binary.BigEndian.AppendUint32(out, answerTTL)
		out = binary.BigEndian.AppendUint16(out, uint16(len(ip)))
		out = append(out, ip...)
	}
	return out
}

// Serve answers queries on pc until ctx is cancelled.
func (d *DNS) Serve(ctx context.Context, pc net.PacketConn) error {
	stop := context.AfterFunc(ctx, func() { pc.Close() })
	defer stop()
	buf := make([]byte, 1500)
	for {
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("dns: read: %w", err)
		}
		if resp := d.Answer(buf[:n]); resp != nil {
			_, _ = pc.WriteTo(resp, from)
		}
	}
}
