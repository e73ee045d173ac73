package scrub

import (
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"unicode/utf16"
	"unicode/utf8"
)

// uEscapeAll spells every byte of s as \u00XX, hex digits in case c
// ('l', 'u', or 'm': alternating).
func uEscapeAll(s string, c byte) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		h := fmt.Sprintf("%02x", s[i])
		if c == 'u' || (c == 'm' && i%2 == 1) {
			h = strings.ToUpper(h)
		}
		b.WriteString(`\u00` + h)
	}
	return b.String()
}

// goJSON is what encoding/json writes for s, without the quotes: it
// escapes "&", "<", ">" as \u0026, \u003c, \u003e.
func goJSON(s string) string {
	b, _ := json.Marshal(s)
	return string(b[1 : len(b)-1])
}

// asciiJSON is Python's json.dumps(s) (ensure_ascii): every non-ASCII
// character as \uXXXX, astral ones as surrogate pairs.
func asciiJSON(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r == '/':
			b.WriteString(`\/`)
		case r < 0x80:
			b.WriteRune(r)
		case r < 0x10000:
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			hi, lo := utf16.EncodeRune(r)
			fmt.Fprintf(&b, `\u%04X\u%04X`, hi, lo)
		}
	}
	return b.String()
}

// TestEscapedAndHexEchoes plays an upstream that echoes the credential
// JSON-escaped or as hex (issue 16, item 7): each spelling must be
// replaced, in one piece and streamed in 1-byte reads.
func TestEscapedAndHexEchoes(t *testing.T) {
	const uni = "pässwörd-🔑-sk/4f0c&x"
	cases := map[string]struct{ secret, echo string }{
		"php slashes":            {testSecret, strings.ReplaceAll(testSecret, "/", `\/`)},
		"go html-safe json":      {testSecret, goJSON(testSecret)},
		"every byte lower":       {testSecret, uEscapeAll(testSecret, 'l')},
		"every byte upper":       {testSecret, uEscapeAll(testSecret, 'u')},
		"every byte mixed case":  {testSecret, uEscapeAll(testSecret, 'm')},
		"mixed with literal":     {testSecret, "sk-" + uEscapeAll("live", 'u') + `\/4f0c+2a77=e1d?94b\u0026x`},
		"short escapes":          {"tab\there\nnl\"q\\b", `tab\there\nnl\"q\\b`},
		"ensure_ascii unicode":   {uni, asciiJSON(uni)},
		"latin-1 bytes as u00XX": {"\xe9t\xe9-secret", `\u00e9t\u00E9-secret`},
		"hex lower":              {testSecret, hex.EncodeToString([]byte(testSecret))},
		"hex upper":              {testSecret, strings.ToUpper(hex.EncodeToString([]byte(testSecret)))},
		"base64 with slashes":    {"\xff\xff\xff-s3cret-\xfb\xff", strings.ReplaceAll(base64.StdEncoding.EncodeToString([]byte("\xff\xff\xff-s3cret-\xfb\xff")), "/", `\/`)},
		"escaped url form":       {testSecret, strings.ReplaceAll(url.QueryEscape(testSecret), "%", `\u0025`)},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			r := NewReplacer(Forms([]byte(tc.secret)), []byte("[R]"))
			body := `{"echo":"` + tc.echo + `","n":1}`
			want := `{"echo":"[R]","n":1}`
			if got, n := r.ReplaceAll([]byte(body)); string(got) != want || n != 1 {
				t.Errorf("ReplaceAll(%s) = %s (%d), want %s", body, got, n, want)
			}
			got, err := io.ReadAll(NewReader(&chunks{parts: bytesOf(body)}, r, nil))
			if err != nil || string(got) != want {
				t.Errorf("streamed 1 byte at a time: %s, %v; want %s", got, err, want)
			}
			if h := (http.Header{"X-Echo": {tc.echo}}); r.ScrubHeader(h) != 1 || h.Get("X-Echo") != "[R]" {
				t.Errorf("header: %q", h.Get("X-Echo"))
			}
		})
	}
}

func bytesOf(s string) [][]byte {
	parts := make([][]byte, len(s))
	for i := range parts {
		parts[i] = []byte{s[i]}
	}
	return parts
}

// TestEscapedNearMisses: escapes that do not decode to the secret are
// left alone, bodies without echoes pass unchanged.
func TestEscapedNearMisses(t *testing.T) {
	r := NewReplacer(Forms([]byte(testSecret)), []byte("[R]"))
	for name, body := range map[string]string{
		"one byte wrong":        strings.Replace(uEscapeAll(testSecret, 'l'), `\u006c`, `\u006d`, 1),
		"bad hex":               `sk-live\u00zz4f0c+2a77=e1d?94b&x`,
		"truncated":             testSecret[:len(testSecret)-1] + `\u00`,
		"escaped quote instead": `sk-live\"4f0c+2a77=e1d?94b&x`,
		"lone surrogate":        `sk-live\ud800/4f0c+2a77=e1d?94b&x`,
		"plain json":            `{"a":"\u00e9\/\n","b":[1,2,3]}`,
	} {
		t.Run(name, func(t *testing.T) {
			if got, n := r.ReplaceAll([]byte(body)); n != 0 || string(got) != body {
				t.Errorf("ReplaceAll(%s) = %s (%d replacements), want unchanged", body, got, n)
			}
		})
	}
}

// TestDecodeLinear: a body of backslashes against a secret of backslashes
// (every position has two readings) is matched in linear time, not by
// exponential backtracking an upstream could trigger.
func TestDecodeLinear(t *testing.T) {
	secret := strings.Repeat(`\`, 200)
	r := NewReplacer([][]byte{[]byte(secret)}, []byte("[R]"))
	body := []byte(strings.Repeat(`\\`, 200) + strings.Repeat(`\`, 100) + "!")
	got, n := r.ReplaceAll(body)
	if n != 1 || !bytes.HasPrefix(got, []byte("[R]")) {
		t.Fatalf("got %d replacements: %.40q", n, got)
	}
}

// jsonSpell spells f with each byte chosen by mask: literal, \u00XX in
// lower, upper or mixed case, the short escape when there is one, or the
// \uXXXX (surrogate pair) of the UTF-8 character starting there.
func jsonSpell(f, mask []byte) []byte {
	var b []byte
	for k := 0; k < len(f); k++ {
		m := byte(0)
		if len(mask) > 0 {
			m = mask[k%len(mask)] % 6
		}
		c := f[k]
		switch m {
		case 1, 2, 3:
			h := fmt.Sprintf("%02x", c)
			if m == 2 {
				h = strings.ToUpper(h)
			} else if m == 3 {
				h = strings.ToUpper(h[:1]) + h[1:]
			}
			b = append(b, `\u00`+h...)
		case 4:
			if e := bytes.IndexByte([]byte(`"\/`+"\b\f\n\r\t"), c); e >= 0 {
				b = append(b, '\\', `"\/bfnrt`[e])
				continue
			}
			b = append(b, c)
		case 5:
			if r, size := utf8.DecodeRune(f[k:]); size > 1 && r != utf8.RuneError {
				if r >= 0x10000 {
					hi, lo := utf16.EncodeRune(r)
					b = fmt.Appendf(b, `\u%04x\u%04X`, hi, lo)
				} else {
					b = fmt.Appendf(b, `\u%04x`, r)
				}
				k += size - 1
				continue
			}
			b = append(b, c)
		default:
			b = append(b, c)
		}
	}
	return b
}

// naiveDecodes reports whether s is a JSON spelling of f: a reference for
// the decoding NFA, by plain recursion (memoised on the two lengths).
func naiveDecodes(s, f []byte, memo map[[2]int]bool) bool {
	key := [2]int{len(s), len(f)}
	if v, ok := memo[key]; ok {
		return v
	}
	v := naiveDecodes1(s, f, memo)
	memo[key] = v
	return v
}

func naiveDecodes1(s, f []byte, memo map[[2]int]bool) bool {
	if len(s) == 0 || len(f) == 0 {
		return len(s) == 0 && len(f) == 0
	}
	if s[0] == f[0] && naiveDecodes(s[1:], f[1:], memo) {
		return true
	}
	if s[0] != '\\' || len(s) < 2 {
		return false
	}
	if i := strings.IndexByte(`"\/bfnrt`, s[1]); i >= 0 && "\"\\/\b\f\n\r\t"[i] == f[0] && naiveDecodes(s[2:], f[1:], memo) {
		return true
	}
	if s[1] != 'u' || len(s) < 6 {
		return false
	}
	cp, err := strconv.ParseUint(string(s[2:6]), 16, 32)
	if err != nil {
		return false
	}
	if cp < 0x100 && byte(cp) == f[0] && naiveDecodes(s[6:], f[1:], memo) {
		return true
	}
	r, used := rune(cp), 6
	if utf16.IsSurrogate(r) {
		if len(s) < 12 || string(s[6:8]) != `\u` {
			return false
		}
		lo, err := strconv.ParseUint(string(s[8:12]), 16, 32)
		if err != nil {
			return false
		}
		if r = utf16.DecodeRune(r, rune(lo)); r == utf8.RuneError {
			return false
		}
		used = 12
	}
	enc := []byte(string(r))
	return cp >= 0x80 && bytes.HasPrefix(f, enc) && naiveDecodes(s[used:], f[len(enc):], memo)
}

// naiveEscScrub: at each position, the longest spelling of any form is
// replaced; otherwise the byte is kept.
func naiveEscScrub(forms [][]byte, body, repl []byte) []byte {
	var out []byte
	for i := 0; i < len(body); {
		m := 0
		for _, f := range forms {
			for j := min(len(body), i+maxEscape*len(f)); j > i+m; j-- {
				if naiveDecodes(body[i:j], f, map[[2]int]bool{}) {
					m = j - i
					break
				}
			}
		}
		if m == 0 {
			out = append(out, body[i])
			i++
			continue
		}
		out = append(out, repl...)
		i += m
	}
	return out
}

// FuzzScrubberEscaped: for any secret, JSON spelling of one of its forms,
// surrounding bytes and chunking, the streaming scrubber equals the
// one-shot Scan and the naive reference, and no spelling of any form is
// left in its output.
func FuzzScrubberEscaped(f *testing.F) {
	f.Add([]byte(testSecret), []byte(`{"k":"`), []byte(`"}`), []byte{3, 9, 1}, []byte{0, 1, 4}, uint8(0))
	f.Add([]byte("pässwörd-🔑-k"), []byte(`\u00`), []byte(`\`), []byte{7, 7}, []byte{5, 0, 2}, uint8(0))
	f.Add([]byte(`a\b\c\d/e`), []byte(`\\`), []byte(`\/`), []byte{1}, []byte{4, 1}, uint8(3))
	f.Add([]byte("sk-0123456789"), []byte("data: "), []byte("\n\n"), []byte{0, 1, 2, 200}, []byte{2, 3}, uint8(15))
	f.Fuzz(func(t *testing.T, secret, a, b, cuts, mask []byte, which uint8) {
		if len(secret) < MinLen || len(secret) > 48 || len(a)+len(b) > 64 || len(cuts) > 32 {
			return
		}
		repl := []byte("[REDACTED:p]")
		forms := Forms(secret)
		spelled := jsonSpell(forms[int(which)%len(forms)], mask)
		body := bytes.Join([][]byte{a, spelled, b, jsonSpell(secret, mask[min(1, len(mask)):]), a}, nil)
		r := NewReplacer(forms, repl)
		got, err := io.ReadAll(NewReader(chunked(body, cuts), r, nil))
		if err != nil {
			t.Fatal(err)
		}
		want, _, _ := r.Scan(nil, body, true)
		if !bytes.Equal(got, want) {
			t.Fatalf("streaming %q != one-shot %q", got, want)
		}
		if naive := naiveEscScrub(r.forms, body, repl); !bytes.Equal(want, naive) {
			t.Fatalf("one-shot %q != naive %q", want, naive)
		}
		for _, f := range forms {
			if bytes.ContainsAny(f, `[]\`) || bytes.Contains(repl, f) {
				return // the replacement text (or a backslash before it) can re-create a form
			}
		}
		if again := naiveEscScrub(r.forms, got, repl); !bytes.Equal(again, got) {
			t.Fatalf("output %q still holds a spelling of a form", got)
		}
	})
}

// TestStripRange: the agent's Range and If-Range are removed from a
// request that carries an injected credential; a partial answer is refused.
func TestStripRange(t *testing.T) {
	h := http.Header{"Range": {"bytes=0-5"}, "If-Range": {`"etag"`}, "Accept": {"*/*"}}
	if !StripRange(h) || h.Get("Range") != "" || h.Get("If-Range") != "" || h.Get("Accept") != "*/*" {
		t.Errorf("after StripRange: %v", h)
	}
	if StripRange(h) {
		t.Error("second StripRange reported a strip")
	}
	cases := map[string]struct {
		status  int
		h       http.Header
		refused bool
	}{
		"200":                {200, http.Header{}, false},
		"206":                {206, http.Header{}, true},
		"200 with a range":   {200, http.Header{"Content-Range": {"bytes 0-5/27"}}, true},
		"416 with its range": {416, http.Header{"Content-Range": {"bytes */27"}}, true},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			err := RefusePartial(tc.status, tc.h)
			if refused := errors.Is(err, ErrPartial); refused != tc.refused {
				t.Errorf("RefusePartial(%d, %v) = %v, want refused=%v", tc.status, tc.h, err, tc.refused)
			}
		})
	}
}

func gz(t *testing.T, b []byte) []byte {
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	w.Write(b)
	w.Close()
	return buf.Bytes()
}

// TestRefuseCompressed plays an upstream that gzips the echo twice and
// labels it once: after the relay's one gunzip the body is still gzip and
// must be refused; plain bodies pass whole.
func TestRefuseCompressed(t *testing.T) {
	echo := []byte(`{"key":"` + testSecret + `"}`)
	cases := map[string]struct {
		decoded []byte
		refused bool
	}{
		"gzip inside gzip": {gz(t, echo), true},
		"zstd inside gzip": {append([]byte{0x28, 0xb5, 0x2f, 0xfd}, "frame"...), true},
		"json":             {echo, false},
		"one byte":         {[]byte("x"), false},
		"empty":            {nil, false},
		"starts like zlib": {[]byte("x http text"), false},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			zr, err := gzip.NewReader(bytes.NewReader(gz(t, tc.decoded)))
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(RefuseCompressed(zr))
			if refused := errors.Is(err, ErrStillCompressed); refused != tc.refused {
				t.Fatalf("err %v, want refused=%v", err, tc.refused)
			}
			if tc.refused && len(got) != 0 {
				t.Errorf("refused body still delivered %d bytes", len(got))
			}
			if !tc.refused && !bytes.Equal(got, tc.decoded) {
				t.Errorf("body %q, want %q", got, tc.decoded)
			}
		})
	}
}

// TestReplaceStringInPlace checks the header path: a value without an echo
// comes back as is and costs no allocation; one with echoes is replaced
// wherever they are, and the input string is left untouched.
func TestReplaceStringInPlace(t *testing.T) {
	secret := []byte("sk-live-0123456789abcdef")
	r := NewReplacer(Forms(secret), []byte("[REDACTED]"))
	cases := map[string]struct {
		in, want string
		n        int
	}{
		"clean":        {"application/json; charset=utf-8", "application/json; charset=utf-8", 0},
		"empty":        {"", "", 0},
		"raw":          {"Bearer sk-live-0123456789abcdef", "Bearer [REDACTED]", 1},
		"twice":        {"sk-live-0123456789abcdef,sk-live-0123456789abcdef", "[REDACTED],[REDACTED]", 2},
		"base64":       {"x=" + base64.StdEncoding.EncodeToString(secret), "x=[REDACTED]", 1},
		"near miss":    {"sk-live-0123456789abcdeX", "sk-live-0123456789abcdeX", 0},
		"echo at end":  {"token: sk-live-0123456789abcdef", "token: [REDACTED]", 1},
		"echo at head": {"sk-live-0123456789abcdef trailing", "[REDACTED] trailing", 1},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			in := strings.Clone(tc.in)
			got, n := r.ReplaceString(in)
			if got != tc.want || n != tc.n {
				t.Fatalf("ReplaceString(%q) = %q, %d; want %q, %d", tc.in, got, n, tc.want, tc.n)
			}
			if in != tc.in {
				t.Fatalf("input changed to %q", in)
			}
		})
	}
	clean := "application/json; charset=utf-8, and a longer value than thirty-two bytes"
	if a := testing.AllocsPerRun(100, func() { _, _ = r.ReplaceString(clean) }); a != 0 {
		t.Fatalf("a clean value costs %v allocations, want 0", a)
	}
}

// TestReadWholePooled checks the whole-body path: the bytes read, a body
// longer than declared refused, and Close idempotent (a second Close must
// not hand the array to the pool twice, where two bodies would share it).
func TestReadWholePooled(t *testing.T) {
	body := strings.Repeat("x", 300)
	wb, err := ReadWhole(strings.NewReader(body), int64(len(body)))
	if err != nil {
		t.Fatal(err)
	}
	if string(wb.Bytes()) != body {
		t.Fatalf("Bytes = %q", wb.Bytes())
	}
	got, _ := io.ReadAll(wb)
	if string(got) != body {
		t.Fatalf("read %q", got)
	}
	_ = wb.Close()
	_ = wb.Close()
	a, _ := ReadWhole(strings.NewReader("aaaa"), 4)
	b, _ := ReadWhole(strings.NewReader("bbbb"), 4)
	if &a.Bytes()[0] == &b.Bytes()[0] {
		t.Fatal("two open bodies share one array (double Close pooled it twice)")
	}
	if string(a.Bytes()) != "aaaa" || string(b.Bytes()) != "bbbb" {
		t.Fatalf("bodies %q, %q", a.Bytes(), b.Bytes())
	}
	if n, _ := a.Read(make([]byte, 8)); n != 4 {
		t.Fatalf("read %d bytes", n)
	}
	_ = a.Close()
	if n, err := a.Read(make([]byte, 8)); n != 0 || err != io.EOF {
		t.Fatalf("read after Close = %d, %v; want 0, EOF", n, err)
	}
	if _, err := ReadWhole(strings.NewReader("longer than said"), 4); err == nil {
		t.Fatal("a body longer than its Content-Length was accepted")
	}
}
