package usage

import (
	"encoding/json"
	"strings"
	"testing"
)

// usageCases are usage objects whose decoding is easy to get wrong; each
// says what encoding/json makes of it (ok: Unmarshal succeeds).
var usageCases = map[string]struct {
	raw string
	ok  bool
}{
	"chat":                 {`{"prompt_tokens":24,"completion_tokens":5,"total_tokens":29,"prompt_tokens_details":{"cached_tokens":3,"audio_tokens":0},"completion_tokens_details":{"reasoning_tokens":2,"audio_tokens":0}}`, true},
	"responses":            {`{"input_tokens":10,"input_tokens_details":{"cached_tokens":4},"output_tokens":7,"output_tokens_details":{"reasoning_tokens":5},"total_tokens":17}`, true},
	"anthropic":            {`{"input_tokens":3,"cache_creation_input_tokens":100,"cache_read_input_tokens":50,"output_tokens":9}`, true},
	"spaces":               {" \t\r\n{ \"prompt_tokens\" : 1 , \"completion_tokens\" :2 } \n", true},
	"string for number":    {`{"prompt_tokens":"24","completion_tokens":5}`, false},
	"float for integer":    {`{"prompt_tokens":24.0,"completion_tokens":5}`, false},
	"exponent":             {`{"prompt_tokens":1e2}`, false},
	"bool for number":      {`{"completion_tokens":true}`, false},
	"object for number":    {`{"completion_tokens":{}}`, false},
	"array for number":     {`{"completion_tokens":[1]}`, false},
	"number for details":   {`{"prompt_tokens":1,"prompt_tokens_details":5}`, false},
	"string in details":    {`{"prompt_tokens":1,"prompt_tokens_details":{"cached_tokens":"5"}}`, false},
	"unknown in details":   {`{"prompt_tokens":1,"prompt_tokens_details":{"audio_tokens":"x","cached_tokens":5}}`, true},
	"mismatch elsewhere":   {`{"prompt_tokens":1,"cache_read_input_tokens":"7"}`, false},
	"unknown key any type": {`{"prompt_tokens":1,"total_tokens":"many","x":[{"y":null}]}`, true},
	"overflow":             {`{"prompt_tokens":9223372036854775808}`, false},
	"max int":              {`{"prompt_tokens":9223372036854775807}`, true},
	"min int":              {`{"prompt_tokens":-9223372036854775808}`, true},
	"below min int":        {`{"prompt_tokens":-9223372036854775809}`, false},
	"negative zero":        {`{"prompt_tokens":-0}`, true},
	"leading zero":         {`{"prompt_tokens":01}`, false},
	"null pointer":         {`{"prompt_tokens":5,"prompt_tokens":null}`, true},
	"null in details":      {`{"prompt_tokens_details":{"cached_tokens":3},"prompt_tokens_details":{"cached_tokens":null}}`, true},
	"details reset":        {`{"prompt_tokens_details":{"cached_tokens":3},"prompt_tokens_details":null,"prompt_tokens_details":{}}`, true},
	"duplicate, case":      {`{"prompt_tokens":1,"PROMPT_TOKENS":2,"Prompt_Tokens":3}`, true},
	"escaped key":          {`{"prompt\u005ftokens":7}`, true},
	"kelvin key":           {"{\"prompt_to\u212aens\":7}", true},
	"long s key":           {"{\"input_to\u212aen\u017f\":7}", true},
	"trailing comma":       {`{"prompt_tokens":1,}`, false},
	"trailing garbage":     {`{"prompt_tokens":1} x`, false},
	"two values":           {`{} {}`, false},
	"top null":             {`null`, true},
	"top number":           {`5`, false},
	"top array":            {`[]`, false},
	"top string":           {`"usage"`, false},
	"unterminated":         {`{"prompt_tokens":1`, false},
	"bad escape":           {`{"x":"\q","prompt_tokens":1}`, false},
	"control in string":    {"{\"x\":\"a\x01\",\"prompt_tokens\":1}", false},
	"invalid utf8 ok":      {"{\"x\":\"\xff\",\"prompt_tokens\":1}", true},
	"deep unknown":         {`{"x":` + strings.Repeat("[", 9999) + strings.Repeat("]", 9999) + `,"prompt_tokens":1}`, true},
	"too deep":             {`{"x":` + strings.Repeat("[", 10000) + strings.Repeat("]", 10000) + `,"prompt_tokens":1}`, false},
	"empty":                {``, false},
	"bare minus":           {`{"prompt_tokens":-}`, false},
	"dot without digits":   {`{"prompt_tokens":1.}`, false},
	"nul":                  {`{"prompt_tokens":nul}`, false},
}

// TestParseUsageCases: the hand decoder agrees with encoding/json, and
// the cases mean what they say.
func TestParseUsageCases(t *testing.T) {
	for name, tc := range usageCases {
		t.Run(name, func(t *testing.T) {
			got, ok := parseUsage([]byte(tc.raw))
			want, wantOK := parseUsageStd([]byte(tc.raw))
			if wantOK != tc.ok {
				t.Fatalf("encoding/json ok=%v, the case says %v", wantOK, tc.ok)
			}
			if ok != wantOK || got != want {
				t.Fatalf("parseUsage = %+v, %v; encoding/json %+v, %v", got, ok, want, wantOK)
			}
		})
	}
}

// FuzzUsageSame: for any bytes, the usage decoder gives exactly what
// json.Unmarshal into wireUsage gives (fields and whether it fails), and
// setModel takes exactly the model json.Unmarshal into a string takes.
func FuzzUsageSame(f *testing.F) {
	for _, tc := range usageCases {
		if len(tc.raw) < 1000 {
			f.Add([]byte(tc.raw))
		}
	}
	f.Add([]byte(`"gpt-4o"`))
	f.Add([]byte(`"gpt-\u00e9"`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		got, ok := parseUsage(raw)
		want, wantOK := parseUsageStd(raw)
		if ok != wantOK || got != want {
			t.Fatalf("%q: parseUsage = %+v, %v; encoding/json %+v, %v", raw, got, ok, want, wantOK)
		}
		var tl tally
		tl.setModel(raw)
		var s string
		wantModel := ""
		if json.Unmarshal(raw, &s) == nil && len(s) <= 200 {
			wantModel = s
		}
		if tl.model != wantModel {
			t.Fatalf("%q: setModel %q, encoding/json %q", raw, tl.model, wantModel)
		}
	})
}

// FuzzValidSame: validJSON is json.Valid.
func FuzzValidSame(f *testing.F) {
	for _, s := range []string{`{}`, `[1,2,{"a":null}]`, ` "x" `, `-0.5e+3`, `01`, `1.`, `[1,]`, `{"a":1,}`, `"\u12"`, `tru`, `"\ud800"`, "\"\x7f\xff\""} {
		f.Add([]byte(s))
	}
	for _, tc := range usageCases {
		if len(tc.raw) < 1000 {
			f.Add([]byte(tc.raw))
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if got, want := validJSON(b), json.Valid(b); got != want {
			t.Fatalf("%q: validJSON %v, json.Valid %v", b, got, want)
		}
	})
}

func BenchmarkParseUsage(b *testing.B) {
	raw := []byte(usageCases["chat"].raw)
	b.Run("hand", func(b *testing.B) {
		b.ReportAllocs()
		for range b.N {
			parseUsage(raw)
		}
	})
	b.Run("encoding/json", func(b *testing.B) {
		b.ReportAllocs()
		for range b.N {
			parseUsageStd(raw)
		}
	})
}

// TestValidStringsAtEveryOffset: the eight-at-a-time string skip sees a
// quote, a backslash or a control byte wherever it falls in a word.
func TestValidStringsAtEveryOffset(t *testing.T) {
	for pos := range 20 {
		for _, c := range []string{`"`, `\`, `\"`, `\\`, `\u00e9`, `\x`, "\x00", "\x01", "\x1f", " ", "\x7f", "\x80", "\xff"} {
			for tail := range 10 {
				doc := []byte(`"` + strings.Repeat("a", pos) + c + strings.Repeat("b", tail) + `"`)
				if got, want := validJSON(doc), json.Valid(doc); got != want {
					t.Fatalf("%q: validJSON %v, json.Valid %v", doc, got, want)
				}
			}
		}
	}
}
