package transparent

// Hand-off: a process that accepted a redirected connection (`airlock run
// --isolate`) gives the socket itself to `airlock serve` over a Unix
// seqpacket socket, so serve reads the client directly instead of through
// a second TCP hop and a userspace splice. One message per connection: a
// JSON header (agent, credential, original destination, name, the bytes
// already peeked) with the socket attached as SCM_RIGHTS.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"sync"
	"syscall"

	"go.uber.org/zap"
	"golang.org/x/sys/unix"
)

// maxHandoffMsg bounds one hand-off message (the peek is at most
// DefaultMaxPeek bytes, base64 in JSON).
const maxHandoffMsg = 64 << 10

// ErrHandoff: a connection could not be handed off (not a socket, or the
// hand-off socket failed); the caller still owns it.
var ErrHandoff = errors.New("connection hand-off failed")

// handoffHeader is the JSON part of one hand-off message.
type handoffHeader struct {
	Agent      string `json:"agent"`
	Token      string `json:"token"`
	OrigDst    string `json:"orig_dst"`
	ServerName string `json:"server_name"`
	TLS        bool   `json:"tls"`
	Peeked     []byte `json:"peeked,omitempty"`
	Door       string `json:"door,omitempty"` // doorProxy for Conn.Proxy
}

// doorProxy is handoffHeader.Door for a connection to the proxy port.
const doorProxy = "proxy"

// Sender hands connections to a [ServeHandoff] listener.
type Sender struct {
	mu sync.Mutex // serialises messages on c
	c  *net.UnixConn
}

// DialHandoff connects to the hand-off socket at path.
func DialHandoff(path string) (*Sender, error) {
	c, err := net.DialUnix("unixpacket", nil, &net.UnixAddr{Name: path, Net: "unixpacket"})
	if err != nil {
		return nil, fmt.Errorf("hand-off socket %s: %w", path, err)
	}
	return &Sender{c: c}, nil
}

// Close closes the hand-off connection.
func (s *Sender) Close() error { return s.c.Close() }

// Send gives c to the receiver as agent with token, then closes this
// process's copy. On an error wrapping ErrHandoff nothing was sent and c
// is still open.
func (s *Sender) Send(c *Conn, agent, token string) error {
	raw, peeked := c.Unwrap()
	sc, ok := raw.(syscall.Conn)
	if !ok {
		return fmt.Errorf("%T is not a socket: %w", raw, ErrHandoff)
	}
	h := handoffHeader{Agent: agent, Token: token, OrigDst: c.OrigDst.String(), ServerName: c.ServerName, TLS: c.TLS, Peeked: peeked}
	if c.Proxy {
		h.Door = doorProxy
	}
	hdr, err := json.Marshal(h)
	if err != nil || len(hdr) > maxHandoffMsg {
		return fmt.Errorf("hand-off header: %w", ErrHandoff)
	}
	rawc, err := sc.SyscallConn()
	if err != nil {
		return fmt.Errorf("%w: %v", ErrHandoff, err)
	}
	var werr error
	cerr := rawc.Control(func(fd uintptr) {
		s.mu.Lock()
		defer s.mu.Unlock()
		_, _, werr = s.c.WriteMsgUnix(hdr, unix.UnixRights(int(fd)), nil)
	})
	if cerr != nil || werr != nil {
		return fmt.Errorf("%w: %v", ErrHandoff, errors.Join(cerr, werr))
	}
	return raw.Close()
}

// Authenticator accepts or refuses a hand-off's agent credential.
type Authenticator func(agent, token string) bool

// ServeHandoff accepts senders on ln and passes every connection they hand
// off, once auth accepts its credential, to h (as a [Conn] whose reads
// replay the sender's peek). It returns when ctx ends or ln fails.
func ServeHandoff(ctx context.Context, ln *net.UnixListener, auth Authenticator, h Handler, log *zap.Logger) error {
	if log == nil {
		log = zap.NewNop()
	}
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		c, err := ln.AcceptUnix()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("hand-off: accept: %w", err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer c.Close()
			stop := context.AfterFunc(ctx, func() { c.Close() })
			defer stop()
			receiveHandoffs(ctx, c, auth, h, log, &wg)
		}()
	}
}

// receiveHandoffs reads one sender's messages until it hangs up.
func receiveHandoffs(ctx context.Context, c *net.UnixConn, auth Authenticator, h Handler, log *zap.Logger, wg *sync.WaitGroup) {
	buf := make([]byte, maxHandoffMsg)
	oob := make([]byte, unix.CmsgSpace(4*4))
	for {
		n, oobn, _, _, err := c.ReadMsgUnix(buf, oob)
		if err != nil {
			if !errors.Is(err, io.EOF) && ctx.Err() == nil {
				log.Debug("hand-off sender gone", zap.Error(err))
			}
			return
		}
		if n == 0 && oobn == 0 {
			return
		}
		tc, err := handoffConn(buf[:n], oob[:oobn], auth)
		if err != nil {
			log.Warn("hand-off refused", zap.Error(err))
			continue
		}
		wg.Add(1)
		go func() { defer wg.Done(); h(ctx, tc) }()
	}
}

// handoffConn turns one message into a Conn; every descriptor received is
// closed on error.
func handoffConn(msg, oob []byte, auth Authenticator) (*Conn, error) {
	var fds []int
	if cms, err := unix.ParseSocketControlMessage(oob); err == nil {
		for _, cm := range cms {
			if r, err := unix.ParseUnixRights(&cm); err == nil {
				fds = append(fds, r...)
			}
		}
	}
	closeAll := func() {
		for _, fd := range fds {
			_ = unix.Close(fd)
		}
	}
	var hdr handoffHeader
	dec := json.NewDecoder(bytes.NewReader(msg))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&hdr); err != nil || len(fds) != 1 {
		closeAll()
		return nil, fmt.Errorf("malformed hand-off message (%d descriptors)", len(fds))
	}
	dst, err := netip.ParseAddrPort(hdr.OrigDst)
	if err != nil {
		closeAll()
		return nil, fmt.Errorf("hand-off original destination %q: %w", hdr.OrigDst, err)
	}
	if hdr.Door != "" && hdr.Door != doorProxy {
		closeAll()
		return nil, fmt.Errorf("hand-off door %q: want %q or none", hdr.Door, doorProxy)
	}
	if !auth(hdr.Agent, hdr.Token) {
		closeAll()
		return nil, fmt.Errorf("hand-off for agent %q: unknown agent or wrong token", hdr.Agent)
	}
	f := os.NewFile(uintptr(fds[0]), "handoff")
	nc, err := net.FileConn(f)
	f.Close()
	if err != nil {
		return nil, fmt.Errorf("hand-off descriptor: %w", err)
	}
	conn := nc
	if len(hdr.Peeked) > 0 {
		conn = &replayConn{Conn: nc, rest: hdr.Peeked}
	}
	return &Conn{Conn: conn, OrigDst: dst, ServerName: hdr.ServerName, TLS: hdr.TLS, Agent: hdr.Agent, Proxy: hdr.Door == doorProxy}, nil
}
