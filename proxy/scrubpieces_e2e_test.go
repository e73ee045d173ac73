package proxy_test

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Issue 16, item 7: an agent that cannot read the secret from one scrubbed
// response tries to rebuild it from pieces (Range slices of an echo) or to
// unwrap a compression layer the scrubber did not see through.

// piecesUpstream echoes the injected bearer token in a JSON document:
// /x/file through http.ServeContent (which honours Range and If-Range),
// /x/slice?from=&to= as a 206 whatever the request asked, /x/gzip2 gzipped
// twice but labelled Content-Encoding: gzip once, /x/gzip1 gzipped once.
// It records the Range and If-Range headers it received.
type piecesUpstream struct {
	mu     sync.Mutex
	ranges []string
}

func (p *piecesUpstream) handler(secret string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ") != secret {
			http.Error(w, "no credential injected", http.StatusUnauthorized)
			return
		}
		p.mu.Lock()
		for _, k := range []string{"Range", "If-Range"} {
			if v := r.Header.Get(k); v != "" {
				p.ranges = append(p.ranges, k+": "+v)
			}
		}
		p.mu.Unlock()
		doc := []byte(`{"your_key":"` + secret + `"}`)
		switch r.URL.Path {
		case "/x/file":
			http.ServeContent(w, r, "key.json", time.Unix(1700000000, 0), bytes.NewReader(doc))
		case "/x/slice":
			from, _ := strconv.Atoi(r.URL.Query().Get("from"))
			to, _ := strconv.Atoi(r.URL.Query().Get("to"))
			from, to = min(max(from, 0), len(doc)), min(max(to, from), len(doc))
			w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", from, to-1, len(doc)))
			w.WriteHeader(http.StatusPartialContent)
			_, _ = w.Write(doc[from:to])
		case "/x/gzip1", "/x/gzip2":
			body := gzipBytes(doc)
			if r.URL.Path == "/x/gzip2" {
				body = gzipBytes(body)
			}
			w.Header().Set("Content-Encoding", "gzip")
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write(body)
		default:
			http.NotFound(w, r)
		}
	})
}

func (p *piecesUpstream) seenRanges() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.ranges...)
}

func gzipBytes(b []byte) []byte {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	_, _ = zw.Write(b)
	_ = zw.Close()
	return buf.Bytes()
}

// gunzipAll peels gzip layers off b for as long as it parses as gzip, and
// returns every layer (what an agent could read with zcat, repeated).
func gunzipAll(b []byte) [][]byte {
	layers := [][]byte{b}
	for range 4 {
		zr, err := gzip.NewReader(bytes.NewReader(b))
		if err != nil {
			break
		}
		if b, err = io.ReadAll(zr); len(b) == 0 {
			break
		}
		layers = append(layers, b)
		if err != nil {
			break
		}
	}
	return layers
}

// piecesEnv is one `airlock serve` with a rule injecting test/bearer into
// the pieces upstream.
type piecesEnv struct {
	*env
	pu     *piecesUpstream
	up     *upstream
	c      *http.Client
	secret string
}

func startPieces(t *testing.T) *piecesEnv {
	p := &piecesEnv{pu: &piecesUpstream{}, secret: secrets["test/bearer"]}
	p.up = newUpstream(t, p.pu.handler(p.secret))
	p.env = newEnv(t)
	p.upCAFile = p.up.caFile(t)
	p.setSecret("test/bearer", p.secret)
	agent := p.addAgent("bot")
	p.writePolicy("version: 1\negress:\n  allow_networks: [\"127.0.0.0/8\"]\nrules:\n  - name: pieces\n    host: \"" +
		p.up.hostPort() + "\"\n    paths: [\"/x/**\"]\n    credential: test/bearer\n")
	p.serve()
	p.c = p.client(agent)
	// The agent reads bodies as sent: no transparent gunzip by the Go client.
	p.c.Transport.(*http.Transport).DisableCompression = true
	t.Cleanup(func() {
		assertNoSecrets(t, "airlock logs", p.logs.String())
		if resp, err := http.Get("http://" + p.adminAddr + "/metrics"); err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			assertNoSecrets(t, "/metrics", string(b))
		}
	})
	return p
}

// fetch does one GET as the agent; a transport or body error is returned
// as err with whatever body arrived before it.
func (p *piecesEnv) fetch(path string, hdr http.Header) (status int, h http.Header, body []byte, err error) {
	req, _ := http.NewRequest("GET", p.up.URL+path, nil)
	for k, v := range hdr {
		req.Header[k] = v
	}
	resp, err := p.c.Do(req)
	if err != nil {
		return 0, nil, nil, err
	}
	defer resp.Body.Close()
	body, err = io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, body, err
}

// TestHostileRangeSlices: the agent asks for the echo six bytes at a time
// with Range (and If-Range, which ServeContent honours too). airlock strips
// both from the injected request, so every answer is the whole document,
// scrubbed; no slice and no concatenation of slices holds the secret, and
// the upstream never saw a Range header.
func TestHostileRangeSlices(t *testing.T) {
	t.Parallel() // own home, own ports
	p := startPieces(t)
	docLen := len(`{"your_key":""}`) + len(p.secret)
	for name, extra := range map[string]http.Header{
		"Range":            {},
		"Range + If-Range": {"If-Range": {time.Unix(1700000000, 0).UTC().Format(http.TimeFormat)}},
	} {
		t.Run(name, func(t *testing.T) {
			var all []byte
			for from := 0; from < docLen; from += 6 {
				hdr := extra.Clone()
				hdr.Set("Range", fmt.Sprintf("bytes=%d-%d", from, from+5))
				status, h, body, err := p.fetch("/x/file", hdr)
				if err != nil {
					t.Fatalf("slice %d: %v", from, err)
				}
				if status != http.StatusOK || h.Get("Content-Range") != "" {
					t.Errorf("slice %d: agent got %d Content-Range %q, want the whole (scrubbed) document", from, status, h.Get("Content-Range"))
				}
				if bytes.Contains(body, []byte(p.secret)) {
					t.Fatalf("slice %d holds the secret: %s", from, body)
				}
				all = append(all, body...)
			}
			if bytes.Contains(all, []byte(p.secret)) {
				t.Errorf("the concatenated slices rebuild the secret: %s", all)
			}
			if !bytes.Contains(all, []byte("[REDACTED:test/bearer]")) {
				t.Errorf("the upstream's echo was not scrubbed (or never sent): %s", all)
			}
		})
	}
	if seen := p.pu.seenRanges(); len(seen) > 0 {
		t.Errorf("the upstream received %d range headers, first %q: airlock must strip them on injected requests", len(seen), seen[0])
	}
}

// TestHostilePartialUnasked: an upstream answers 206 with a slice the
// agent chose in the query, Range or not. airlock refuses every partial
// answer to an injected request with 502 UPSTREAM_ERROR and a suggestion,
// so the slices never reach the agent.
func TestHostilePartialUnasked(t *testing.T) {
	t.Parallel() // own home, own ports
	p := startPieces(t)
	var all []byte
	for from := 0; from < 48; from += 6 {
		status, h, body, err := p.fetch(fmt.Sprintf("/x/slice?from=%d&to=%d", from, from+6), nil)
		if err != nil {
			t.Fatalf("slice %d: %v", from, err)
		}
		if status != http.StatusBadGateway || h.Get("X-Airlock-Error") != "UPSTREAM_ERROR" ||
			!strings.Contains(string(body), "strips Range") {
			t.Errorf("slice %d: agent got %d %q %s, want 502 UPSTREAM_ERROR with the Range suggestion",
				from, status, h.Get("X-Airlock-Error"), body)
		}
		all = append(all, body...)
	}
	if bytes.Contains(all, []byte(p.secret)) {
		t.Errorf("the concatenated answers rebuild the secret: %s", all)
	}
}

// TestHostileDoubleGzip: the upstream gzips the echo twice and labels it
// Content-Encoding: gzip once. airlock decodes one layer; the rest is
// still gzip, which the scrubber cannot see into, so the body is refused
// and the agent never gets the inner bytes, however many layers it peels.
// A body gzipped once is decoded and scrubbed as before.
func TestHostileDoubleGzip(t *testing.T) {
	t.Parallel() // own home, own ports
	p := startPieces(t)
	for _, tc := range []struct{ path, want string }{
		{"/x/gzip2", ""},
		{"/x/gzip1", "[REDACTED:test/bearer]"},
	} {
		t.Run(tc.path, func(t *testing.T) {
			status, h, body, err := p.fetch(tc.path, nil)
			for i, layer := range gunzipAll(body) {
				if bytes.Contains(layer, []byte(p.secret)) {
					t.Fatalf("layer %d of the agent's body holds the secret (status %d, err %v)", i, status, err)
				}
			}
			if tc.want == "" {
				t.Logf("agent got %d, %d bytes, err %v", status, len(body), err)
				if err == nil && status == http.StatusOK && len(body) > 0 {
					t.Errorf("agent got %d with a %d-byte body, want the response refused", status, len(body))
				}
				return
			}
			if err != nil || status != http.StatusOK || h.Get("Content-Encoding") != "" || !bytes.Contains(body, []byte(tc.want)) {
				t.Errorf("agent got %d %v Content-Encoding %q %q, want the decoded body scrubbed", status, err, h.Get("Content-Encoding"), body)
			}
		})
	}
}
