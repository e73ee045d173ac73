package policy

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

// TestForwardReachesGoUpstream sends the forwarded form of accepted paths
// through a real net/http client to a real ServeMux on loopback: the
// upstream's RequestURI is Forward byte for byte, its URL.Path is the path
// judged, and the mux routes it without a redirect.
func TestForwardReachesGoUpstream(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, r.RequestURI+"\n"+r.URL.Path)
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	client := srv.Client()
	client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	for _, target := range []string{
		"/v1/public/x", "/v1//users/caf%C3%A9", "/v1/users/%7bx%7d", "/v1/users/a%20b:c@d!$&'()*+,=",
		"/v1/%61dmin/", "/v1/users/100%25", "/v1/users/a%3Ab", "/v1/users/{x}", "/v1/users/\xe2\x82\xac",
		"/api/v4/projects/g%2Fp/repository", "/a%3bb", "/a;b",
	} {
		t.Run(target, func(t *testing.T) {
			pth, err := NormalizePath(target)
			if err != nil {
				t.Fatal(err)
			}
			u, _ := url.Parse(srv.URL)
			pth.SetURL(u)
			u.RawQuery = "q=1"
			resp, err := client.Get(u.String())
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d (ServeMux would redirect %q)", resp.StatusCode, pth.Forward)
			}
			uri, path, _ := strings.Cut(string(body), "\n")
			if uri != pth.Forward+"?q=1" || path != pth.Decoded() {
				t.Errorf("upstream saw %q (path %q); forwarded %q judged %q", uri, path, pth.Forward, pth.Judged)
			}
		})
	}
}
