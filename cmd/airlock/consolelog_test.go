package main

import (
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/airlock/airlock/vault"
)

func TestFormatConsole(t *testing.T) {
	at := time.Date(2026, 1, 2, 15, 4, 5, 123e6, time.UTC)
	request := map[string]any{"agent": "bot", "rule": "openai", "action": "inject", "credential": "openai/api-key",
		"method": "GET", "host": "api.openai.com:443", "path": "/v1/models", "status": int64(200),
		"bytes": int64(10), "duration_ms": 12.345, "code": "OK", "door": "proxy"}
	cases := map[string]struct {
		ent    zapcore.Entry
		fields map[string]any
		want   string
	}{
		"request": {
			ent:    zapcore.Entry{Level: zapcore.InfoLevel, Time: at, Message: "request"},
			fields: request,
			want:   "15:04:05.123 INFO  bot inject openai GET api.openai.com:443 /v1/models 200 12.345ms OK\n",
		},
		"denied request without rule": {
			ent: zapcore.Entry{Level: zapcore.WarnLevel, Time: at, Message: "request"},
			fields: map[string]any{"agent": "bot", "rule": "", "action": "deny", "method": "CONNECT",
				"host": "evil.example:443", "path": "", "status": int64(403), "duration_ms": 0.2, "code": "ACCESS_DENIED"},
			want: "15:04:05.123 WARN  bot deny - CONNECT evil.example:443 - 403 200µs ACCESS_DENIED\n",
		},
		"path with a space is quoted": {
			ent: zapcore.Entry{Level: zapcore.InfoLevel, Time: at, Message: "request"},
			fields: map[string]any{"agent": "bot", "rule": "r", "action": "allow", "method": "GET", "host": "h:443",
				"path": "/a b\n", "status": int64(0), "duration_ms": 1.0, "code": "OK"},
			want: "15:04:05.123 INFO  bot allow r GET h:443 \"/a b\\n\" - 1ms OK\n",
		},
		"other entry": {
			ent:    zapcore.Entry{Level: zapcore.InfoLevel, Time: at, Message: "listening"},
			fields: map[string]any{"proxy": "127.0.0.1:7600", "rules": int64(3), "policy": "/my home/policy.yaml"},
			want:   "15:04:05.123 INFO  listening policy=\"/my home/policy.yaml\" proxy=127.0.0.1:7600 rules=3\n",
		},
		"message only": {
			ent:  zapcore.Entry{Level: zapcore.ErrorLevel, Time: at, Message: "stopped"},
			want: "15:04:05.123 ERROR stopped\n",
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			if got := formatConsole(tc.ent, tc.fields); got != tc.want {
				t.Errorf("got  %q\nwant %q", got, tc.want)
			}
		})
	}
}

// TestConsoleCoreWith checks context fields and levels go through zap.
func TestConsoleCoreWith(t *testing.T) {
	var b lockedBuffer
	log := zap.New(newConsoleCore(zapcore.AddSync(&b), zapcore.InfoLevel)).With(zap.String("door", "rpc"))
	log.Debug("hidden")
	log.Info("reload", zap.String("result", "ok"))
	if got := b.String(); !regexp.MustCompile(`^\d\d:\d\d:\d\d\.\d{3} INFO  reload door=rpc result=ok\n$`).MatchString(got) {
		t.Errorf("got %q", got)
	}
}

// TestServeConsoleLog runs `serve --log-format console` and checks the
// request line a real request produces.
func TestServeConsoleLog(t *testing.T) {
	t.Parallel()
	e := initEnv(t)
	secret := randomSecret(t, "sk-console-")
	e.ok(secret+"\n", "vault", "set", "test/key")
	e.ok("", "agent", "add", "bot")
	api := newTestAPI(t)
	writeFile(t, filepath.Join(e.home, "policy.yaml"), apiPolicy(api, "test/key"))
	s := e.serve(t, api, "--log-format", "console")
	c := proxiedClient(t, e, s.addr, "bot")
	resp, err := c.Get(api.url + "/v1/models")
	must(t, err)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	host := strings.TrimPrefix(api.url, "https://")
	lineRE := regexp.MustCompile(`(?m)^\d\d:\d\d:\d\d\.\d{3} INFO  bot inject test-api GET ` + regexp.QuoteMeta(host) + ` /v1/models 200 \S+s OK$`)
	waitUntil(t, 5*time.Second, "console request line", func() bool { return lineRE.MatchString(s.logs.String()) })
	logs := s.logs.String()
	if strings.Contains(logs, "{") || strings.Contains(logs, "\x1b[") || strings.Contains(logs, secret) {
		t.Errorf("console log has JSON, colour codes or the secret:\n%s", logs)
	}
}

// proxiedClient is a Go agent of name through the proxy at addr, trusting
// airlock's CA.
func proxiedClient(t *testing.T, e *tenv, addr, name string) *http.Client {
	t.Helper()
	seed, err := readAgentSeed(home{dir: e.home}, name)
	must(t, err)
	caPEM, err := os.ReadFile(filepath.Join(e.home, "ca.pem"))
	must(t, err)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	proxy := &url.URL{Scheme: "http", User: url.UserPassword(name, vault.ProxyToken(seed)), Host: addr}
	tr := &http.Transport{Proxy: http.ProxyURL(proxy), TLSClientConfig: &tls.Config{RootCAs: pool}}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}
}
