package transparent

import (
	"errors"
	"strings"

	"golang.org/x/crypto/cryptobyte"
)

const (
	recordTypeHandshake    = 0x16
	handshakeClientHello   = 0x01
	extensionServerName    = 0x0000
	serverNameTypeHostName = 0x00
	maxRecordLen           = 16384 + 2048
	maxHostLen             = 253
)

// ErrBadHello: the bytes are not a well-formed TLS ClientHello.
var ErrBadHello = errors.New("malformed TLS ClientHello")

// ParseSNI returns the server_name of the TLS ClientHello that b starts
// with, reassembled across handshake records. It returns "" and no error
// for a well-formed hello without SNI, errNeedMore when b is a valid but
// incomplete prefix, and ErrBadHello otherwise. The name is lower-cased,
// without a trailing dot, and holds only letters, digits, '-', '_' and '.'.
func ParseSNI(b []byte) (string, error) {
	hs, err := handshakeBytes(b)
	if err != nil {
		return "", err
	}
	return helloSNI(hs)
}

// handshakeBytes concatenates the fragments of the leading handshake
// records until one complete handshake message is present.
func handshakeBytes(b []byte) ([]byte, error) {
	var hs []byte
	for {
		if len(hs) >= 4 {
			n := int(hs[1])<<16 | int(hs[2])<<8 | int(hs[3])
			if hs[0] != handshakeClientHello {
				return nil, ErrBadHello
			}
			if len(hs) >= 4+n {
				return hs[:4+n], nil
			}
		}
		if len(b) < 5 {
			return nil, errNeedMore
		}
		if b[0] != recordTypeHandshake || b[1] != 3 {
			return nil, ErrBadHello
		}
		n := int(b[3])<<8 | int(b[4])
		if n == 0 || n > maxRecordLen {
			return nil, ErrBadHello
		}
		if len(b) < 5+n {
			if len(hs) == 0 && len(b) > 5 && b[5] != handshakeClientHello {
				return nil, ErrBadHello
			}
			return nil, errNeedMore
		}
		hs = append(hs, b[5:5+n]...)
		b = b[5+n:]
	}
}

// helloSNI parses one complete ClientHello handshake message.
func helloSNI(hs []byte) (string, error) {
	s := cryptobyte.String(hs[4:])
	var sessionID, suites, compression, exts cryptobyte.String
	if !s.Skip(2+32) || !s.ReadUint8LengthPrefixed(&sessionID) ||
		!s.ReadUint16LengthPrefixed(&suites) || !s.ReadUint8LengthPrefixed(&compression) {
		return "", ErrBadHello
	}
	if s.Empty() {
		return "", nil // no extensions
	}
	if !s.ReadUint16LengthPrefixed(&exts) || !s.Empty() {
		return "", ErrBadHello
	}
	for !exts.Empty() {
		var typ uint16
		var data cryptobyte.String
		if !exts.ReadUint16(&typ) || !exts.ReadUint16LengthPrefixed(&data) {
			return "", ErrBadHello
		}
		if typ == extensionServerName {
			return serverNameExt(data)
		}
	}
	return "", nil
}

func serverNameExt(data cryptobyte.String) (string, error) {
	var list cryptobyte.String
	if !data.ReadUint16LengthPrefixed(&list) || !data.Empty() {
		return "", ErrBadHello
	}
	for !list.Empty() {
		var typ uint8
		var name cryptobyte.String
		if !list.ReadUint8(&typ) || !list.ReadUint16LengthPrefixed(&name) {
			return "", ErrBadHello
		}
		if typ == serverNameTypeHostName {
			h, ok := cleanHost(string(name))
			if !ok {
				return "", ErrBadHello
			}
			return h, nil
		}
	}
	return "", nil
}

// cleanHost lower-cases a DNS name, drops one trailing dot, and checks its
// characters and length.
func cleanHost(h string) (string, bool) {
	h = strings.TrimSuffix(strings.ToLower(h), ".")
	if h == "" || len(h) > maxHostLen {
		return "", false
	}
	for i := 0; i < len(h); i++ {
		c := h[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_') {
			return "", false
		}
	}
	return h, true
}
