package main

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/http"
)

// A minimal WebSocket (RFC 6455) for the soak: the upstream echoes each
// frame's payload back unmasked; the client sends masked binary frames.
// Payloads stay under 126 bytes, so lengths fit the first length byte.

const wsGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

func wsAccept(key string) string {
	h := sha1.Sum([]byte(key + wsGUID))
	return base64.StdEncoding.EncodeToString(h[:])
}

// wsEcho upgrades and echoes frames until the client closes.
func wsEcho(w http.ResponseWriter, r *http.Request) {
	key := r.Header.Get("Sec-WebSocket-Key")
	if r.Header.Get("Upgrade") != "websocket" || key == "" {
		http.Error(w, "want a websocket upgrade", http.StatusBadRequest)
		return
	}
	c, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return
	}
	defer c.Close()
	_, _ = fmt.Fprintf(brw, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n", wsAccept(key))
	if brw.Flush() != nil {
		return
	}
	for {
		op, payload, err := wsRead(brw.Reader)
		if err != nil || op == 0x8 { // error or close
			return
		}
		if _, err := c.Write(wsFrame(op, payload, false)); err != nil {
			return
		}
	}
}

// wsFrame builds one final frame (masked when a client sends it).
func wsFrame(op byte, payload []byte, mask bool) []byte {
	b := []byte{0x80 | op, byte(len(payload))}
	if !mask {
		return append(b, payload...)
	}
	b[1] |= 0x80
	var k [4]byte
	_, _ = rand.Read(k[:])
	b = append(b, k[:]...)
	for i, p := range payload {
		b = append(b, p^k[i%4])
	}
	return b
}

var errWSFrame = errors.New("websocket: frame too long for the bench")

// wsRead reads one frame (short payloads only), unmasking it.
func wsRead(br *bufio.Reader) (op byte, payload []byte, err error) {
	var h [2]byte
	if _, err := io.ReadFull(br, h[:]); err != nil {
		return 0, nil, err
	}
	n := int(h[1] & 0x7f)
	if n >= 126 {
		return 0, nil, errWSFrame
	}
	var k [4]byte
	masked := h[1]&0x80 != 0
	if masked {
		if _, err := io.ReadFull(br, k[:]); err != nil {
			return 0, nil, err
		}
	}
	payload = make([]byte, n)
	if _, err := io.ReadFull(br, payload); err != nil {
		return 0, nil, err
	}
	if masked {
		for i := range payload {
			payload[i] ^= k[i%4]
		}
	}
	return h[0] & 0x0f, payload, nil
}

// wsRoundTrips upgrades t to a WebSocket on path and checks n echoes.
func (t *tunnel) wsRoundTrips(host, path string, n int) error {
	var kb [16]byte
	_, _ = rand.Read(kb[:])
	key := base64.StdEncoding.EncodeToString(kb[:])
	resp, err := t.get(host, path, "Upgrade: websocket", "Connection: Upgrade", "Sec-WebSocket-Version: 13", "Sec-WebSocket-Key: "+key)
	if err != nil {
		return fmt.Errorf("websocket upgrade: %w", err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols || resp.Header.Get("Sec-WebSocket-Accept") != wsAccept(key) {
		return fmt.Errorf("websocket upgrade: status %d (%s)", resp.StatusCode, resp.Header.Get("X-Airlock-Error"))
	}
	for i := range n {
		msg := binary.BigEndian.AppendUint64([]byte("echo "), uint64(i))
		if _, err := t.c.Write(wsFrame(0x2, msg, true)); err != nil {
			return fmt.Errorf("websocket send: %w", err)
		}
		op, got, err := wsRead(t.br)
		if err != nil || op != 0x2 || !bytes.Equal(got, msg) {
			return fmt.Errorf("websocket echo %d: op %d %q %v", i, op, got, err)
		}
	}
	_, _ = t.c.Write(wsFrame(0x8, nil, true))
	return nil
}
