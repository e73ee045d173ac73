package proxy_test

import (
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// escapedForms are the spellings of the injected secret a chatty upstream
// echoes inside JSON strings (issue 16, item 7).
func escapedForms(secret string) map[string]string {
	u := func(upper bool, every int) string {
		var b strings.Builder
		for i := 0; i < len(secret); i++ {
			if i%every != 0 {
				b.WriteByte(secret[i])
				continue
			}
			h := fmt.Sprintf(`\u%04x`, secret[i])
			if upper {
				h = `\u` + strings.ToUpper(h[2:])
			}
			b.WriteString(h)
		}
		return b.String()
	}
	return map[string]string{
		"u00xx":         u(false, 1),
		"u00XX":         u(true, 1),
		"mixed":         u(true, 3),
		"hex":           hex.EncodeToString([]byte(secret)),
		"HEX":           strings.ToUpper(hex.EncodeToString([]byte(secret))),
		"base64 \\/":    strings.ReplaceAll(base64.StdEncoding.EncodeToString([]byte("\xff\xfe"+secret)), "/", `\/`),
		"dash as u002d": strings.ReplaceAll(secret, "-", `\u002d`),
	}
}

// TestHostileEscapedEcho: an upstream echoes the injected bearer token
// JSON-escaped or as hex, in a short body (scrubbed whole) and streamed
// across two flushed writes; the agent must get none of it.
func TestHostileEscapedEcho(t *testing.T) {
	t.Parallel() // own home, own ports
	secret := secrets["test/bearer"]
	forms := escapedForms(secret)
	echo := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
		if got != secret {
			http.Error(w, "no credential injected", http.StatusUnauthorized)
			return
		}
		f := forms[r.URL.Query().Get("form")]
		body := `{"echo":"` + f + `"}`
		if r.URL.Query().Get("stream") == "" {
			w.Header().Set("Content-Length", fmt.Sprint(len(body)))
			io.WriteString(w, body)
			return
		}
		io.WriteString(w, body[:len(body)/2])
		w.(http.Flusher).Flush()
		io.WriteString(w, body[len(body)/2:])
	})
	up := newUpstream(t, echo)
	e := newEnv(t)
	e.upCAFile = up.caFile(t)
	e.setSecret("test/bearer", secret)
	agent := e.addAgent("bot")
	e.writePolicy("version: 1\negress:\n  allow_networks: [\"127.0.0.0/8\"]\nrules:\n  - name: echo\n    host: \"" +
		up.hostPort() + "\"\n    paths: [\"/x/**\"]\n    credential: test/bearer\n")
	e.serve()
	c := e.client(agent)
	for name, f := range forms {
		for _, stream := range []string{"", "1"} {
			t.Run(fmt.Sprintf("%s stream=%q", name, stream), func(t *testing.T) {
				q := url.Values{"form": {name}, "stream": {stream}}
				resp, err := c.Get(up.URL + "/x/echo?" + q.Encode())
				if err != nil {
					t.Fatal(err)
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 || !strings.Contains(string(b), "[REDACTED:test/bearer]") || strings.Contains(string(b), f) {
					t.Errorf("agent got %d %s (the upstream sent %s)", resp.StatusCode, b, f)
				}
			})
		}
	}
	assertNoSecrets(t, "airlock logs", e.logs.String())
}
