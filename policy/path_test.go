package policy

import (
	"errors"
	"net/url"
	"path"
	"strings"
	"testing"
)

// hostilePolicy restricts paths and denies some: the shape issue 16 item
// 6 attacked.
const hostilePolicy = `
version: 1
rules:
  - name: no-delete
    host: api.example.com
    paths: ["/v1/delete-account"]
    action: deny
  - name: no-admin
    host: api.example.com
    paths: ["/v1/admin/**"]
    action: deny
  - name: public
    host: api.example.com
    paths: ["/v1/public/*", "/v1/x/**", "/v1/users/**"]
    credential: example/key
  - name: rest
    host: api.example.com
    methods: [POST]
    credential: example/key
`

// TestJudgeHostilePaths plays the agent of issue 16 item 6: every path
// must be refused (ErrBadPath) or denied, never reach the inject rule.
func TestJudgeHostilePaths(t *testing.T) {
	p := mustParse(t, hostilePolicy)
	cases := []string{
		"/v1/public%2Fsecret",
		"/v1/public%2F",
		"/v1/public%2f..%2fsecret",
		"/v1/admin;x/users",
		"/v1/x/..;/admin/users",
		"/v1/delete-account;",
		"/v1/delete-account/",
		"/v1/delete-account//",
		"/v1/Delete-Account",
		"/v1/DELETE-ACCOUNT/",
		"/v1/Admin/users",
		"/v1/ADMIN",
		"/v1/x/..\\admin/users",
		"/v1/x/..%5cadmin/users",
		"/v1/x/..%5Cadmin/users",
		"/v1/x/%2e%2e/admin/users",
		"/v1/x/.%2E/admin/users",
		"/v1/x/%2E/../admin",
		"/v1/x/../admin/users",
		"/v1/x/./y",
		"/v1/x/..",
		"//v1/admin/users",
		"/v1//admin/users",
		"/v1/%61dmin/users",
		"/v1/delete%2Daccount",
		"/v1/delete-accoun%74",
		"/v1/public/a%3bb",
		"/v1/public/a%00",
		"/v1/public/a%0d%0aX: y",
		"/v1/public/%zz",
		"/v1/public/%4",
		"/v1/public\\x",
		"https://api.example.com/v1/admin/users",
		"https://api.example.com/v1/x/..%2Fadmin/users?q=1",
		"*",
		"v1/public/x",
	}
	for _, target := range cases {
		t.Run(target, func(t *testing.T) {
			r, pth, err := p.Judge("bot", "POST", "api.example.com", 443, target)
			if err != nil {
				if !errors.Is(err, ErrBadPath) {
					t.Fatalf("error %v does not wrap ErrBadPath", err)
				}
				if len(target) > 1 && strings.Contains(err.Error(), target) {
					t.Errorf("error repeats the path: %v", err)
				}
				return
			}
			if r != nil && r.Action == ActionDeny {
				return
			}
			t.Fatalf("reached rule %s with judged %q forward %q", ruleName(r), pth.Judged, pth.Forward)
		})
	}
}

// TestJudgeAllowed: canonical paths and harmless rewrites pass, and what is
// forwarded is what was judged.
func TestJudgeAllowed(t *testing.T) {
	p := mustParse(t, hostilePolicy+`
  - name: gitlab
    host: gitlab.example.com
    paths: ["/api/v4/projects/*/repository/**"]
    credential: gitlab/token
    unsafe_paths: [encoded_slash]
  - name: tomcat-deny
    host: tomcat.example.com
    paths: ["/admin/**"]
    action: deny
    unsafe_paths: [semicolon, encoded_slash, backslash, noncanonical_escapes]
  - name: tomcat
    host: tomcat.example.com
    credential: tomcat/key
`)
	cases := []struct {
		host, target, rule, judged, forward string
	}{
		{"api.example.com", "/v1/public/x", "public", "/v1/public/x", "/v1/public/x"},
		{"api.example.com", "/v1/public/x?a=%2F", "public", "/v1/public/x", "/v1/public/x"},
		{"api.example.com", "/v1/users/caf%C3%A9", "public", "/v1/users/caf\xc3\xa9", "/v1/users/caf%C3%A9"},
		{"api.example.com", "/v1/users/a%20b:c@d", "public", "/v1/users/a b:c@d", "/v1/users/a%20b:c@d"},
		{"api.example.com", "/v1/users/{x}", "public", "/v1/users/{x}", "/v1/users/%7Bx%7D"},
		{"api.example.com", "/v1/users/100%25", "public", "/v1/users/100%25", "/v1/users/100%25"},
		{"api.example.com", "/v1/users/a%3Ab", "public", "/v1/users/a:b", "/v1/users/a%3Ab"},
		{"api.example.com", "/v1/other", "", "/v1/other", "/v1/other"},
		{"gitlab.example.com", "/api/v4/projects/g%2Fp/repository/files", "gitlab", "/api/v4/projects/g%2Fp/repository/files", "/api/v4/projects/g%2Fp/repository/files"},
		// the deny rule opted into everything and still meets every reading
		{"tomcat.example.com", "/x;y/../admin", "", "", ""},
		{"tomcat.example.com", "/admin;jsessionid=1/users", "tomcat-deny", "/admin;jsessionid=1/users", "/admin;jsessionid=1/users"},
		{"tomcat.example.com", "/public%2F..%2Fadmin", "", "", ""},
		{"tomcat.example.com", "/public%2Fadmin", "tomcat", "/public%2Fadmin", "/public%2Fadmin"},
		{"tomcat.example.com", "/%2Fadmin%2Fusers", "tomcat-deny", "/%2Fadmin%2Fusers", "/%2Fadmin%2Fusers"},
		{"tomcat.example.com", "/x/%2Fadmin", "tomcat", "/x/%2Fadmin", "/x/%2Fadmin"},
		{"tomcat.example.com", "/%61dmin/", "tomcat-deny", "/admin/", "/admin/"},
	}
	for _, tc := range cases {
		t.Run(tc.host+tc.target, func(t *testing.T) {
			r, pth, err := p.Judge("bot", "GET", tc.host, 443, tc.target)
			if tc.judged == "" {
				if !errors.Is(err, ErrBadPath) {
					t.Fatalf("err = %v, want ErrBadPath", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if ruleName(r) != tc.rule && !(r == nil && tc.rule == "") {
				t.Errorf("rule %s, want %s", ruleName(r), tc.rule)
			}
			if pth.Judged != tc.judged || pth.Forward != tc.forward {
				t.Errorf("judged %q forward %q, want %q %q", pth.Judged, pth.Forward, tc.judged, tc.forward)
			}
			checkAgree(t, pth)
		})
	}
}

// checkAgree is the property the normaliser promises: Go's net/url reads
// Forward as the path Judged stands for, sends Forward unchanged, and a
// second pass changes nothing.
func checkAgree(t *testing.T, pth Path) {
	t.Helper()
	u, err := url.Parse(pth.Forward)
	if err != nil {
		t.Fatalf("forward %q does not parse: %v", pth.Forward, err)
	}
	if u.Path != pth.Decoded() {
		t.Fatalf("forward %q decodes to %q, judged %q stands for %q", pth.Forward, u.Path, pth.Judged, pth.Decoded())
	}
	var out url.URL
	pth.SetURL(&out)
	if out.EscapedPath() != pth.Forward {
		t.Fatalf("net/url would send %q, not the forward path %q", out.EscapedPath(), pth.Forward)
	}
	if pth.Unsafe&(UnsafeEncodedSlash|UnsafeBackslash) == 0 {
		// A Go ServeMux upstream routes path.Clean(URL.Path): it must be
		// the judged path (no redirect, no other route).
		c := path.Clean(u.Path)
		if strings.HasSuffix(u.Path, "/") && c != "/" {
			c += "/"
		}
		if c != pth.Decoded() {
			t.Fatalf("ServeMux routes %q, judged %q", c, pth.Decoded())
		}
	}
	again, err := NormalizePath(pth.Forward)
	if err != nil {
		t.Fatalf("forward %q refused on a second pass: %v", pth.Forward, err)
	}
	had := pth.Unsafe
	if had.Has(UnsafeBackslash) { // a raw "\" is forwarded as %5C
		had |= UnsafeEncodedSlash
	}
	if again.Judged != pth.Judged || again.Forward != pth.Forward || again.Unsafe&^had != 0 {
		t.Fatalf("not idempotent: %+v then %+v", pth, again)
	}
}

// FuzzNormalizePath: never panics; an accepted path satisfies checkAgree;
// a refused one wraps ErrBadPath.
func FuzzNormalizePath(f *testing.F) {
	for _, s := range []string{"/", "/v1/public%2Fsecret", "/v1/x/..;/admin", "/a//b/", "/%41%2f%5c%25%3B", "/caf\xc3\xa9/{x}",
		"/v1/x/..%5cadmin", "https://h/a?b", "/a%2", "/;/", "/a/.%2e", "/\\/", "/%7e"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, target string) {
		pth, err := NormalizePath(target)
		if err != nil {
			if !errors.Is(err, ErrBadPath) {
				t.Fatalf("error %v does not wrap ErrBadPath", err)
			}
			return
		}
		if !strings.HasPrefix(pth.Judged, "/") || strings.Contains(pth.Judged, "//") {
			t.Fatalf("judged %q not rooted or has //", pth.Judged)
		}
		checkAgree(t, pth)
		if hasDotSegment(pth.Judged) || hasDotSegment(altForm(pth.Judged)) {
			t.Fatalf("judged %q has a dot segment", pth.Judged)
		}
	})
}

func TestUnsafeNames(t *testing.T) {
	all := UnsafeEncodedSlash | UnsafeBackslash | UnsafeSemicolon | UnsafeNoncanonical
	if got := all.String(); got != "encoded_slash, backslash, semicolon, noncanonical_escapes" {
		t.Errorf("String = %q", got)
	}
	if UnsafePaths(0).String() != "none" || !all.Has(UnsafeSemicolon) || UnsafeSemicolon.Has(all) {
		t.Error("Has/String wrong")
	}
}

func TestJudgeAllocs(t *testing.T) {
	p := bigPolicy(t, 200)
	n := testing.AllocsPerRun(100, func() {
		if r, _, err := p.Judge("bot3", "POST", "API20.example.com.", 443, "/v3/chat?x=1"); r == nil || err != nil {
			t.Fatal("no match")
		}
	})
	if n != 0 {
		t.Errorf("%v allocations, want 0", n)
	}
}

// TestDenyPatternForms: a deny written with a trailing slash or in
// another case still meets every spelling; allow rules stay exact.
func TestDenyPatternForms(t *testing.T) {
	p := mustParse(t, `
version: 1
rules:
  - {name: d, host: h.example.com, paths: ["/Admin/", "/v1/*/Keys"], action: deny}
  - {name: a, host: h.example.com, paths: ["/v1/Files/*"], credential: x/y}
`)
	for target, want := range map[string]string{
		"/admin": "d", "/ADMIN/": "d", "/admin/": "d", "/v1/x/keys": "d", "/v1/x/KEYS/": "d",
		"/v1/Files/a": "a", "/v1/files/a": "", "/admin/x": "",
	} {
		r, _, err := p.Judge("bot", "GET", "h.example.com", 443, target)
		if err != nil || ruleName(r) != want && !(r == nil && want == "") {
			t.Errorf("%s: rule %s err %v, want %q", target, ruleName(r), err, want)
		}
	}
}

// TestPlaceholderInPath: a Telegram-style {{airlock:PATH}} placeholder
// whose "/" the client escaped is judged as one segment and is not an
// encoded slash; an escaped slash outside a placeholder still is.
func TestPlaceholderInPath(t *testing.T) {
	p := mustParse(t, `
version: 1
rules:
  - name: telegram
    host: api.telegram.org
    paths: ["/bot*/sendMessage"]
    credential: telegram/bot-token
    inject: {type: placeholder}
`)
	for target, ok := range map[string]bool{
		"/bot%7B%7Bairlock:telegram%2Fbot-token%7D%7D/sendMessage": true,
		"/bot{{airlock:telegram%2Fbot-token}}/sendMessage":         true,
		"/bot{{airlock:telegram%2Fbot-token}}%2F/sendMessage":      false,
		"/bot{{airlock:tele gram%2Fbot}}/sendMessage":              false,
		"/bot{{airlock:x%2F..%2Fy}}/sendMessage":                   false,
		"/bot{{airlock:x%5Cy}}/sendMessage":                        false,
	} {
		r, pth, err := p.Judge("bot", "POST", "api.telegram.org", 443, target)
		if got := err == nil && r != nil; got != ok {
			t.Errorf("%s: rule %s err %v, want accepted=%v", target, ruleName(r), err, ok)
		}
		if ok {
			checkAgree(t, pth)
		}
	}
}
