package rpc

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// DefaultMaxFrame is the largest frame accepted or sent: 4 MiB, as the SDKs.
const DefaultMaxFrame = 4 << 20

// ErrFrameTooLarge is returned by readFrame for a length over the limit; the
// body is not read, so the stream is no longer at a frame boundary.
var ErrFrameTooLarge = errors.New("frame too large")

// request is one decoded request frame.
type request struct {
	ID     json.RawMessage `json:"id"`
	Method string          `json:"method"`
	Params json.RawMessage `json:"params"`
}

// response is one answer frame; exactly one of Result and Error is set.
type response struct {
	ID     json.RawMessage `json:"id"`
	Result any             `json:"result,omitempty"`
	Error  *Error          `json:"error,omitempty"`
}

var nullID = json.RawMessage("null")

// readFrame reads one length-prefixed frame of at most max bytes. The buffer
// grows as bytes arrive, so a claimed length costs nothing until it is sent.
func readFrame(r io.Reader, max int) ([]byte, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if uint64(n) > uint64(max) {
		return nil, fmt.Errorf("frame of %d bytes (limit %d): %w", n, max, ErrFrameTooLarge)
	}
	var buf bytes.Buffer
	buf.Grow(int(min(n, 64<<10)))
	if _, err := io.CopyN(&buf, r, int64(n)); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, fmt.Errorf("read frame body: %w", err)
	}
	return buf.Bytes(), nil
}

// appendFrame appends the frame of payload to dst.
func appendFrame(dst, payload []byte) []byte {
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(payload)))
	return append(dst, payload...)
}

// decodeRequest parses a frame body. On failure it still returns the id when
// one could be read, so the error answer can carry it.
func decodeRequest(b []byte) (request, *Error) {
	var req request
	if err := json.Unmarshal(b, &req); err != nil {
		return request{ID: salvageID(b)}, invalid("request is not a JSON object")
	}
	if !validID(req.ID) {
		return request{ID: nullID}, invalid("id must be a number, a string or null")
	}
	if len(req.ID) == 0 {
		req.ID = nullID
	}
	if req.Method == "" {
		return req, invalid("method is missing")
	}
	if len(req.Params) == 0 || string(req.Params) == "null" {
		req.Params = json.RawMessage("{}")
	}
	if req.Params[0] != '{' {
		return req, invalid("params must be an object")
	}
	return req, nil
}

// salvageID reads just the id of a request whose other fields are bad.
func salvageID(b []byte) json.RawMessage {
	var probe struct {
		ID json.RawMessage `json:"id"`
	}
	if json.Unmarshal(b, &probe) != nil || !validID(probe.ID) || len(probe.ID) == 0 {
		return nullID
	}
	return probe.ID
}

func validID(id json.RawMessage) bool {
	if len(id) == 0 {
		return true
	}
	switch id[0] {
	case '"', 'n', '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
		return true
	}
	return false
}

// encodeResponse renders resp as a frame. An answer that would not fit in
// max bytes is replaced by an error answer that does.
func encodeResponse(resp response, max int) []byte {
	b, err := json.Marshal(resp)
	if err != nil {
		b, _ = json.Marshal(response{ID: resp.ID, Error: internal("cannot encode the result")})
	}
	if len(b) > max {
		b, _ = json.Marshal(response{ID: resp.ID, Error: invalid("the result is larger than the frame limit")})
	}
	return appendFrame(make([]byte, 0, 4+len(b)), b)
}

// decodeParams unmarshals the params object into v.
func decodeParams(raw json.RawMessage, v any) *Error {
	if err := json.Unmarshal(raw, v); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field != "" {
			return invalid("params." + te.Field + " has the wrong type")
		}
		return invalid("params are malformed")
	}
	return nil
}
