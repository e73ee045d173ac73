package proxy_test

import (
	"bufio"
	"crypto/sha1"
	"encoding/base64"
	"io"
	"net/http"
	"strings"
	"testing"
)

const wsGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

func wsAccept(key string) string {
	h := sha1.Sum([]byte(key + wsGUID))
	return base64.StdEncoding.EncodeToString(h[:])
}

// wsEcho is a minimal RFC 6455 server: it accepts the upgrade only when the
// injected credential is present, then echoes one text frame.
func wsEcho(wantAuth string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if digest(r.Header.Get("Authorization")) != wantAuth || !strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
			http.Error(w, "unauthorized upgrade", http.StatusUnauthorized)
			return
		}
		c, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer c.Close()
		io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: "+
			wsAccept(r.Header.Get("Sec-WebSocket-Key"))+"\r\n\r\n")
		payload, err := readFrame(brw.Reader)
		if err != nil {
			return
		}
		c.Write(frame([]byte("echo: "+string(payload)), false))
	})
}

// frame builds a short FIN text frame, masked when sent by a client.
func frame(p []byte, masked bool) []byte {
	b := []byte{0x81, byte(len(p))}
	if !masked {
		return append(b, p...)
	}
	b[1] |= 0x80
	mask := []byte{1, 2, 3, 4}
	b = append(b, mask...)
	for i, c := range p {
		b = append(b, c^mask[i%4])
	}
	return b
}

func readFrame(r *bufio.Reader) ([]byte, error) {
	h := make([]byte, 2)
	if _, err := io.ReadFull(r, h); err != nil {
		return nil, err
	}
	n := int(h[1] & 0x7f)
	var mask []byte
	if h[1]&0x80 != 0 {
		mask = make([]byte, 4)
		if _, err := io.ReadFull(r, mask); err != nil {
			return nil, err
		}
	}
	p := make([]byte, n)
	if _, err := io.ReadFull(r, p); err != nil {
		return nil, err
	}
	for i := range p {
		if mask != nil {
			p[i] ^= mask[i%4]
		}
	}
	return p, nil
}

func TestWebSocketThroughMITM(t *testing.T) {
	t.Parallel() // own home, own ports
	e, up, agent := startInjectEnv(t, wsEcho(digest("Bearer "+secrets["test/bearer"])))
	tc := mitmTLS(t, e, agent, up.hostPort(), "127.0.0.1")
	io.WriteString(tc, "GET /x/ws HTTP/1.1\r\nHost: "+up.hostPort()+"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
	br := bufio.NewReader(tc)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols || resp.Header.Get("Sec-Websocket-Accept") != wsAccept("dGhlIHNhbXBsZSBub25jZQ==") {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("upgrade: %d %s", resp.StatusCode, b)
	}
	tc.Write(frame([]byte("hello"), true))
	got, err := readFrame(br)
	if err != nil || string(got) != "echo: hello" {
		t.Fatalf("echo frame %q, %v", got, err)
	}
}
