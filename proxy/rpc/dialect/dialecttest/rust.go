// Package dialecttest holds test helpers for the second SanctumAI dialect:
// the Rust SDK's frames and result shapes (read by hand from
// ../shared/peers/sanctum-sdk-rust, which cannot be built here) and a
// driver built from the pre-FFI Go client (../shared/peers/
// sanctum-sdk-go-socket). Used by the dialect package's tests and the
// door's.
package dialecttest

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"
)

// RustShapes checks b against the serde shapes of sanctum-sdk-rust
// src/types.rs and src/error.rs: serde ignores unknown fields (no
// deny_unknown_fields there), requires every non-Option field, accepts a
// missing or null Option, and refuses a wrong type. shape is a type name
// of types.rs ("Credential", "Vec<CredentialInfo>", ...) or "Value".
func RustShapes(shape string, b []byte) error {
	switch shape {
	case "Value":
		if !json.Valid(b) {
			return fmt.Errorf("not JSON")
		}
		return nil
	case "Vec<CredentialInfo>":
		var items []json.RawMessage
		if err := json.Unmarshal(b, &items); err != nil || items == nil && string(b) != "[]" {
			return fmt.Errorf("not an array: %s", b)
		}
		for i, it := range items {
			if err := RustShapes("CredentialInfo", it); err != nil {
				return fmt.Errorf("[%d]: %w", i, err)
			}
		}
		return nil
	}
	fields, ok := rustTypes[shape]
	if !ok {
		return fmt.Errorf("unknown shape %q", shape)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil || m == nil {
		return fmt.Errorf("%s: not an object: %s", shape, b)
	}
	for _, f := range fields {
		v, present := m[f.name]
		if present && string(v) == "null" && f.optional {
			continue
		}
		if !present {
			if f.optional {
				continue
			}
			return fmt.Errorf("%s: missing field %s", shape, f.name)
		}
		if err := rustKind(f.kind, v); err != nil {
			return fmt.Errorf("%s.%s: %w", shape, f.name, err)
		}
	}
	return nil
}

type rustField struct {
	name     string
	kind     string // String, bool, u64, Value
	optional bool
}

// rustTypes are the structs of types.rs (line numbers of the peer copy)
// and VaultError of error.rs:36-47.
var rustTypes = map[string][]rustField{
	"RpcResponse":    {{"id", "u64", false}, {"result", "Value", true}, {"error", "Value", true}},                                  // types.rs:14-18
	"Credential":     {{"path", "String", false}, {"value", "Value", false}, {"lease_id", "String", false}, {"ttl", "u64", false}}, // types.rs:22-27
	"CredentialInfo": {{"path", "String", false}, {"type", "String", true}, {"description", "String", true}},                       // types.rs:31-36
	"UseResult":      {{"success", "bool", false}, {"output", "Value", true}},                                                      // types.rs:40-43
	"AuthChallenge":  {{"challenge", "String", false}},                                                                             // types.rs:47-49
	"AuthResult":     {{"authenticated", "bool", false}, {"session_id", "String", true}},                                           // types.rs:53-56
	"VaultError": {{"code", "String", false}, {"message", "String", false}, {"detail", "String", true},
		{"suggestion", "String", true}, {"docs_url", "String", true}, {"context", "Value", true}},
}

func rustKind(kind string, v json.RawMessage) error {
	var err error
	switch kind {
	case "String":
		var s string
		err = json.Unmarshal(v, &s)
	case "bool":
		var b bool
		err = json.Unmarshal(v, &b)
	case "u64":
		var n uint64
		err = json.Unmarshal(v, &n)
	case "Value":
		if string(v) == "null" {
			return nil
		}
	}
	if err != nil || string(v) == "null" {
		return fmt.Errorf("want %s, got %s", kind, v)
	}
	return nil
}

// FrameCase is one case of a frames file (dialect/testdata/rust_frames.txt).
type FrameCase struct {
	Name                               string
	Request, Canonical, Result, Answer string
	Shape                              string
}

// ReadFrameCases reads a frames file: "## name" starts a case, "key: value"
// lines fill it, other "#" lines are comments.
func ReadFrameCases(t testing.TB, path string) []FrameCase {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var cases []FrameCase
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if name, ok := strings.CutPrefix(line, "## "); ok {
			cases = append(cases, FrameCase{Name: name})
			continue
		}
		key, val, ok := strings.Cut(line, ": ")
		if !ok || strings.HasPrefix(line, "#") || len(cases) == 0 {
			continue
		}
		c := &cases[len(cases)-1]
		switch key {
		case "request":
			c.Request = val
		case "canonical":
			c.Canonical = val
		case "result":
			c.Result = val
		case "answer":
			c.Answer = val
		case "shape":
			c.Shape = val
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return cases
}

// JSONEqual reports whether a and b are the same JSON value.
func JSONEqual(a, b []byte) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	xa, _ := json.Marshal(x)
	ya, _ := json.Marshal(y)
	return bytes.Equal(xa, ya)
}
