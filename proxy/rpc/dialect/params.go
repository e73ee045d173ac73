package dialect

import (
	"encoding/json"
	"slices"
	"strings"
)

// kind is the JSON type a parameter must have.
type kind int

const (
	kString kind = iota
	kNumber
	kObject
)

func (k kind) String() string {
	return [...]string{"a string", "a number", "an object"}[k]
}

// param is one parameter of a method or operation.
type param struct {
	name     string
	kind     kind
	required bool
}

// specs are the parameters of each dialect method, exactly as the Rust
// and Go clients send them.
var specs = map[string][]param{
	MethodChallenge: {{"agent", kString, true}},
	MethodVerify:    {{"agent", kString, true}, {"signature", kString, true}},
	MethodList:      {},
	MethodRetrieve:  {{"path", kString, true}, {"ttl", kNumber, false}},
	MethodUse:       {{"path", kString, true}, {"operation", kString, true}, {"params", kObject, false}},
	MethodRelease:   {{"lease_id", kString, true}},
}

// values are decoded parameters by name, checked against their spec.
type values map[string]json.RawMessage

func (v values) str(name string) string {
	var s string
	json.Unmarshal(v[name], &s)
	return s
}

// readParams decodes a params object and checks it against spec: no
// unknown parameter, every required one present and non-empty, each of
// its type (null counts as absent for an optional one). The error names
// the first unknown parameter (sorted) if any, else the first one at fault
// in spec order.
func readParams(raw json.RawMessage, spec []param) (values, *Error) {
	v := values{}
	if len(raw) != 0 && string(raw) != "null" {
		if err := json.Unmarshal(raw, &v); err != nil || v == nil {
			return nil, invalidParam("", "params must be an object")
		}
	}
	var unknown []string
	for name := range v {
		if !slices.ContainsFunc(spec, func(p param) bool { return p.name == name }) {
			unknown = append(unknown, name)
		}
	}
	if len(unknown) > 0 {
		slices.Sort(unknown)
		want := make([]string, 0, len(spec))
		for _, p := range spec {
			want = append(want, p.name)
		}
		msg := "unknown parameter params." + clip(unknown[0])
		if len(want) > 0 {
			msg += " (want " + strings.Join(want, ", ") + ")"
		}
		return nil, invalidParam(clip(unknown[0]), msg)
	}
	for _, p := range spec {
		b, ok := v[p.name]
		if ok && string(b) == "null" && !p.required {
			delete(v, p.name)
			continue
		}
		if !ok {
			if p.required {
				return nil, invalidParam(p.name, "missing parameter params."+p.name)
			}
			continue
		}
		if !hasKind(b, p.kind) {
			return nil, invalidParam(p.name, "params."+p.name+" must be "+p.kind.String())
		}
		if p.required && p.kind == kString && string(b) == `""` {
			return nil, invalidParam(p.name, "params."+p.name+" must not be empty")
		}
	}
	return v, nil
}

func hasKind(b json.RawMessage, k kind) bool {
	if len(b) == 0 {
		return false
	}
	switch k {
	case kString:
		return b[0] == '"'
	case kNumber:
		return b[0] == '-' || '0' <= b[0] && b[0] <= '9'
	}
	return b[0] == '{'
}

func invalidParam(name, msg string) *Error {
	return &Error{Code: CodeInvalidRequest, Message: msg, Param: name,
		Suggestion: "check the request against the SanctumAI protocol (README, RPC section)"}
}

// clip bounds a client-chosen parameter name quoted in an error.
func clip(s string) string {
	if len(s) > 64 {
		s = strings.ToValidUTF8(s[:64], "") + "..."
	}
	return s
}

// operationSpecs are the parameters of the `use` operations whose
// parameters were not checked before: an unknown one (the Node SDK's
// README sends {plaintext} to encrypt and {payload} to sign) used to be
// ignored and an empty string encrypted or signed in its place.
var operationSpecs = map[string][]param{
	"sign":    {{"data", kString, true}, {"algorithm", kString, false}},
	"encrypt": {{"data", kString, true}},
	"decrypt": {{"data", kString, true}},
}

// CheckOperationParams checks the params of a `use` operation sign,
// encrypt or decrypt: "data" is required (a string, possibly empty),
// "algorithm" is optional
// for sign, anything else is INVALID_REQUEST naming the parameter. Other
// operations are not checked here (nil).
func CheckOperationParams(operation string, params json.RawMessage) *Error {
	spec, ok := operationSpecs[operation]
	if !ok {
		return nil
	}
	if _, e := readParamsAllowEmpty(params, spec); e != nil {
		e.Message = operation + ": " + e.Message
		return e
	}
	return nil
}

// readParamsAllowEmpty is readParams where a required string may be "".
func readParamsAllowEmpty(raw json.RawMessage, spec []param) (values, *Error) {
	loose := make([]param, len(spec))
	copy(loose, spec)
	var required []string
	for i := range loose {
		if loose[i].required {
			required = append(required, loose[i].name)
			loose[i].required = false
		}
	}
	v, e := readParams(raw, loose)
	if e != nil {
		return nil, e
	}
	for _, name := range required {
		if _, ok := v[name]; !ok {
			return nil, invalidParam(name, "missing parameter params."+name)
		}
	}
	return v, nil
}
