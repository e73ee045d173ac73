package placeholder

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
)

const (
	tgPath   = "telegram/bot-token"
	tgSecret = "123456:ABC-def_GHI/jk?l%m&n=o p+q"
)

func TestFind(t *testing.T) {
	long := strings.Repeat("a", MaxPathLen)
	cases := map[string]struct {
		in   string
		want []string
	}{
		"plain":              {"x{{airlock:a/b}}y", []string{"a/b"}},
		"two":                {"{{airlock:a}}{{airlock:b.c@d+e-f_g}}", []string{"a", "b.c@d+e-f_g"}},
		"longest path":       {"{{airlock:" + long + "}}", []string{long}},
		"path too long":      {"{{airlock:" + long + "a}}", nil},
		"empty path":         {"{{airlock:}}", nil},
		"empty segment":      {"{{airlock:a//b}}", nil},
		"leading slash":      {"{{airlock:/a}}", nil},
		"trailing slash":     {"{{airlock:a/}}", nil},
		"dot segment":        {"{{airlock:a/../b}}", nil},
		"space":              {"{{airlock:a b}}", nil},
		"one brace":          {"{{airlock:a}", nil},
		"unclosed":           {"{{airlock:a", nil},
		"nested start":       {"{{airlock:{{airlock:a}}", []string{"a"}},
		"extra brace before": {"{{{airlock:a}}}", []string{"a"}},
		"upper prefix":       {"{{AIRLOCK:a}}", nil},
		"no placeholder":     {"{\"a\": {}}", nil},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			var got []string
			for _, r := range Find(tc.in) {
				got = append(got, r.Path)
				if tc.in[r.Start:r.End] != Prefix+r.Path+Suffix {
					t.Errorf("span %d:%d = %q", r.Start, r.End, tc.in[r.Start:r.End])
				}
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("Find(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

// TestTelegramPath sends a Telegram-style request with a real Go client to
// a loopback server after ReplaceURL: the server sees the token in its
// path segment, the "/" of the secret escaped, and nothing of the
// placeholder.
func TestTelegramPath(t *testing.T) {
	var gotPath, gotRaw, gotQuery string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotPath, gotRaw, gotQuery = r.URL.Path, r.URL.EscapedPath(), r.URL.RawQuery
	}))
	defer srv.Close()

	// As the agent writes it; Go's client escapes the braces.
	u, err := url.Parse(srv.URL + "/bot{{airlock:" + tgPath + "}}/sendMessage?chat_id=1&sig={{airlock:" + tgPath + "}}")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(u.EscapedPath(), "%7B%7Bairlock:") {
		t.Fatalf("test premise: Go escapes the braces, got %q", u.EscapedPath())
	}
	// The policy judges the path with the placeholder in it.
	if u.Path != "/bot{{airlock:telegram/bot-token}}/sendMessage" {
		t.Fatalf("judged path %q", u.Path)
	}
	used, err := ReplaceURL(u, Only(tgPath, []byte(tgSecret)))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(used, []string{tgPath, tgPath}) {
		t.Errorf("used = %q", used)
	}
	resp, err := http.Get(u.String())
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if want := "/bot" + tgSecret + "/sendMessage"; gotPath != want {
		t.Errorf("upstream path %q, want %q", gotPath, want)
	}
	if want := "/bot" + url.PathEscape(tgSecret) + "/sendMessage"; gotRaw != want {
		t.Errorf("upstream escaped path %q, want %q", gotRaw, want)
	}
	q, err := url.ParseQuery(gotQuery)
	if err != nil || q.Get("sig") != tgSecret || q.Get("chat_id") != "1" || len(q) != 2 {
		t.Errorf("upstream query %q (%v): sig=%q", gotQuery, err, q.Get("sig"))
	}
}

func TestReplaceEscapedForms(t *testing.T) {
	allowed := func(p string) ([]byte, bool) {
		if p == "dots" {
			return []byte(".."), true
		}
		return Only(tgPath, []byte("s/e:c"))(p)
	}
	cases := map[string]struct {
		in, want string
		query    bool
	}{
		"literal braces":    {"/bot{{airlock:telegram/bot-token}}/x", "/bots%2Fe:c/x", false},
		"escaped braces":    {"/bot%7B%7Bairlock:telegram/bot-token%7D%7D/x", "/bots%2Fe:c/x", false},
		"lower hex":         {"/bot%7b%7bairlock:telegram%2fbot-token%7d%7d", "/bots%2Fe:c", false},
		"escaped slash":     {"/a/%7B%7Bairlock:telegram%2Fbot-token%7D%7D", "/a/s%2Fe:c", false},
		"bad escape kept":   {"/%zz/%7B%7Bairlock:telegram/bot-token%7D%7D%", "/%zz/s%2Fe:c%", false},
		"query":             {"a=1&k=%7B%7Bairlock%3Atelegram%2Fbot-token%7D%7D", "a=1&k=s%2Fe%3Ac", true},
		"query literal":     {"k={{airlock:telegram/bot-token}}", "k=s%2Fe%3Ac", true},
		"no placeholder":    {"/a/%7B%7Bairlock/x", "/a/%7B%7Bairlock/x", false},
		"dot-dot secret":    {"/a/{{airlock:dots}}/b", "/a/%2E%2E/b", false},
		"malformed ignored": {"/%7B%7Bairlock:a//b%7D%7D", "/%7B%7Bairlock:a//b%7D%7D", false},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			f := ReplacePath
			if tc.query {
				f = ReplaceQuery
			}
			got, _, err := f(tc.in, allowed)
			if err != nil || got != tc.want {
				t.Errorf("got %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

func TestNotAllowed(t *testing.T) {
	allowed := Only(tgPath, []byte(tgSecret))
	u, _ := url.Parse("https://api.example/x/{{airlock:other/key}}?q={{airlock:" + tgPath + "}}")
	before := *u
	_, err := ReplaceURL(u, allowed)
	var na *NotAllowedError
	if !errors.Is(err, ErrNotAllowed) || !errors.As(err, &na) || na.Path != "other/key" || na.Where != "path" {
		t.Fatalf("err = %v", err)
	}
	if *u != before {
		t.Errorf("url changed on error: %v", u)
	}
	_, err = ReplaceURL(u, None)
	if !errors.Is(err, ErrNotAllowed) {
		t.Fatalf("None allowed a placeholder: %v", err)
	}
	if strings.Contains(err.Error(), tgSecret) {
		t.Error("error text holds the secret")
	}

	h := http.Header{"X-Token": {"Bearer {{airlock:other/key}}"}}
	if _, err := ReplaceHeader(h, allowed); !errors.As(err, &na) || na.Where != "header X-Token" {
		t.Fatalf("header: %v", err)
	}
	if h.Get("X-Token") != "Bearer {{airlock:other/key}}" {
		t.Error("header changed on error")
	}
}

func TestReplaceHeader(t *testing.T) {
	h := http.Header{
		"X-Api-Key": {"k={{airlock:" + tgPath + "}}"},
		"Accept":    {"*/*"},
	}
	used, err := ReplaceHeader(h, Only(tgPath, []byte("s3cr\tet")))
	if err != nil || h.Get("X-Api-Key") != "k=s3cr\tet" || h.Get("Accept") != "*/*" || !slices.Equal(used, []string{tgPath}) {
		t.Fatalf("got %q %q, %v", h.Get("X-Api-Key"), used, err)
	}
	for _, bad := range []string{"a\r\nX-Evil: 1", "a\nb", "a\x00b", "a\x7fb"} {
		h := http.Header{"X-Api-Key": {"{{airlock:" + tgPath + "}}"}}
		_, err := ReplaceHeader(h, Only(tgPath, []byte(bad)))
		if !errors.Is(err, ErrUnsafeHeaderValue) {
			t.Errorf("secret %q: err = %v", bad, err)
		}
		if strings.Contains(err.Error(), bad) {
			t.Errorf("error text holds the secret %q", bad)
		}
		if h.Get("X-Api-Key") != "{{airlock:"+tgPath+"}}" {
			t.Error("header changed on error")
		}
	}
}

func TestCheckEncoding(t *testing.T) {
	cases := map[string]struct {
		ce   []string
		fail bool
	}{
		"none":     {nil, false},
		"identity": {[]string{"identity"}, false},
		"gzip":     {[]string{"gzip"}, true},
		"list":     {[]string{"identity, br"}, true},
		"second":   {[]string{"identity", "deflate"}, true},
	}
	for name, tc := range cases {
		h := http.Header{}
		for _, v := range tc.ce {
			h.Add("Content-Encoding", v)
		}
		if err := CheckEncoding(h); errors.Is(err, ErrEncodedBody) != tc.fail {
			t.Errorf("%s: err = %v", name, err)
		}
	}
}

func TestEscaperFor(t *testing.T) {
	secret := []byte(`a"b\c&d=e f<`)
	cases := map[string]string{
		"application/json":                  `a\"b\\c&d=e f<`,
		"application/vnd.api+json; q=1":     `a\"b\\c&d=e f<`,
		"application/x-www-form-urlencoded": "a%22b%5Cc%26d%3De+f%3C",
		"text/plain":                        string(secret),
		"":                                  string(secret),
	}
	for ct, want := range cases {
		if got := string(EscaperFor(ct)(secret)); got != want {
			t.Errorf("%q: got %q, want %q", ct, got, want)
		}
	}
}

// FuzzReplaceEscaped: every placeholder FindEscaped reports decodes, over
// its span, to exactly the placeholder; after ReplacePath with all of them
// allowed none is left, and a path that unescaped before still does.
func FuzzReplaceEscaped(f *testing.F) {
	for _, s := range []string{"/bot%7B%7Bairlock:a%7D%7D/x", "/{{airlock:a}}%", "%7b%7bairlock%3aa%2fb%7d%7d", "/%%7B{{airlock:a}}}"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		refs := FindEscaped(s)
		for _, r := range refs {
			dec, _ := unescapeMap(s[r.Start:r.End])
			if string(dec) != Prefix+r.Path+Suffix {
				t.Fatalf("span %q decodes to %q, path %q", s[r.Start:r.End], dec, r.Path)
			}
		}
		all := func(string) ([]byte, bool) { return []byte("S/%{x}"), true }
		out, used, err := ReplacePath(s, all)
		if err != nil || len(used) != len(refs) {
			t.Fatalf("used %d of %d: %v", len(used), len(refs), err)
		}
		if left := FindEscaped(out); len(left) != 0 {
			t.Fatalf("placeholders left in %q: %v", out, left)
		}
		if _, err := url.PathUnescape(s); err == nil {
			if _, err := url.PathUnescape(out); err != nil {
				t.Fatalf("%q unescaped but %q does not: %v", s, out, err)
			}
		}
	})
}
