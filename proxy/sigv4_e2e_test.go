package proxy_test

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os/exec"
	"sort"
	"strings"
	"sync"
	"testing"
)

// The SigV4 end-to-end test: airlock signs, a loopback upstream recomputes
// the signature from exactly what it received with verifySigV4 below
// (written from the AWS documentation independently of proxy/sigv4), and
// at the end botocore re-signs every received request when
// /usr/bin/python3 has it (apt package python3-botocore).

const (
	awsKeyID   = "AKIDEXAMPLE"
	awsSecret  = "aws-secret-e2e-wJalrXUtnFEMI/K7MDENG"
	awsSession = "aws-session-e2e-FQoGZXIvYXdzEXAMPLE"
)

const sigv4Policy = `version: 1
egress:
  allow_networks: ["127.0.0.0/8"]
rules:
  - name: bedrock
    host: "{{UP}}"
    paths: ["/x/**"]
    credential: aws/bedrock
    inject: {type: aws_sigv4, region: us-west-2, service: bedrock}
`

// sigv4Checker is the upstream handler; it records one verdict per request.
type sigv4Checker struct {
	mu       sync.Mutex // guards verdicts and received
	verdicts []string
	received []map[string]any // what botocore re-signs at the end
}

func (c *sigv4Checker) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	verdict := verifySigV4(r, body)
	if got := r.Header.Values("X-Amz-Security-Token"); len(got) != 1 || got[0] != awsSession {
		verdict = "security token header not the vault's"
	}
	c.mu.Lock()
	c.verdicts = append(c.verdicts, verdict)
	c.received = append(c.received, botocoreDoc(r, body))
	c.mu.Unlock()
	if verdict != "ok" {
		w.WriteHeader(http.StatusForbidden)
	}
	fmt.Fprintf(w, `{"verdict":%q,"body_sha256":%q}`, verdict, digest(string(body)))
}

func TestSigV4E2E(t *testing.T) {
	t.Parallel() // own home, own ports
	checker := &sigv4Checker{}
	up := newUpstream(t, checker)
	e := newEnv(t)
	e.upCAFile = up.caFile(t)
	e.mustRun(awsSecret+"\n"+awsSession+"\n", "vault", "set-aws", "aws/bedrock", "--access-key-id", awsKeyID, "--session-token-stdin")
	if out := e.mustRun("", "vault", "list"); !strings.Contains(out, "aws") {
		t.Fatalf("vault list does not show the aws kind:\n%s", out)
	}
	agent := e.addAgent("bot")
	e.writePolicy(strings.ReplaceAll(sigv4Policy, "{{UP}}", up.hostPort()))
	e.serve()
	c := e.client(agent)
	cases := map[string]struct {
		method, path, body string
		agentHeaders       map[string]string
	}{
		"invoke model":   {"POST", "/x/model/anthropic.claude-3-haiku-20240307-v1:0/invoke", `{"messages":[{"role":"user","content":"hi"}]}`, map[string]string{"Content-Type": "application/json", "Accept": "application/json"}},
		"query and get":  {"GET", "/x/foundation-models?byProvider=anthropic&maxResults=5", "", nil},
		"forged headers": {"POST", "/x/model/m/invoke", "{}", map[string]string{"Authorization": "AWS4-HMAC-SHA256 Credential=AKIAFORGED/x, SignedHeaders=host, Signature=00", "X-Amz-Security-Token": "agent-token", "X-Amz-Date": "20000101T000000Z", "X-Amz-Content-Sha256": "UNSIGNED-PAYLOAD"}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			req, _ := http.NewRequest(tc.method, up.URL+tc.path, strings.NewReader(tc.body))
			for k, v := range tc.agentHeaders {
				req.Header.Set(k, v)
			}
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != 200 || !strings.Contains(string(b), `"verdict":"ok"`) || !strings.Contains(string(b), digest(tc.body)) {
				t.Fatalf("%d %s", resp.StatusCode, b)
			}
			assertAbsent(t, "agent-visible output", string(b), []string{awsSecret, awsSession})
		})
	}
	assertAbsent(t, "airlock logs", e.logs.String(), []string{awsSecret, awsSession})
	if exec.Command("/usr/bin/python3", "-c", "import botocore").Run() != nil {
		t.Log("botocore not installed for /usr/bin/python3 (apt install python3-botocore): checked with the Go verifier only")
		return
	}
	checker.mu.Lock()
	defer checker.mu.Unlock()
	if len(checker.received) != len(cases) {
		t.Fatalf("upstream received %d requests, want %d", len(checker.received), len(cases))
	}
	if verdict := botocoreVerify(checker.received); verdict != "ok" {
		t.Fatalf("botocore: %s", verdict)
	}
}

// verifySigV4 recomputes the signature of a received request from the
// AWS SigV4 documentation: canonical request, string to sign, derived key.
func verifySigV4(r *http.Request, body []byte) string {
	auth := r.Header.Get("Authorization")
	rest, ok := strings.CutPrefix(auth, "AWS4-HMAC-SHA256 ")
	if !ok {
		return "no AWS4-HMAC-SHA256 authorization"
	}
	fields := map[string]string{}
	for _, f := range strings.Split(rest, ", ") {
		k, v, _ := strings.Cut(f, "=")
		fields[k] = v
	}
	scope := strings.Split(fields["Credential"], "/")
	if len(scope) != 5 || scope[0] != awsKeyID || scope[2] != "us-west-2" || scope[3] != "bedrock" || scope[4] != "aws4_request" {
		return "bad credential scope " + fields["Credential"]
	}
	amzDate := r.Header.Get("X-Amz-Date")
	if !strings.HasPrefix(amzDate, scope[1]) {
		return "date and scope disagree"
	}
	signed := strings.Split(fields["SignedHeaders"], ";")
	var hdrs strings.Builder
	for _, h := range signed {
		v := r.Host
		if h != "host" {
			vals := r.Header.Values(h)
			for i := range vals {
				vals[i] = strings.Join(strings.Fields(vals[i]), " ")
			}
			v = strings.Join(vals, ",")
		}
		hdrs.WriteString(h + ":" + v + "\n")
	}
	sum := sha256.Sum256(body)
	creq := strings.Join([]string{r.Method, awsEscape(r.URL.EscapedPath(), "/"), canonicalQuery(r.URL.Query()),
		hdrs.String(), fields["SignedHeaders"], hex.EncodeToString(sum[:])}, "\n")
	h := sha256.Sum256([]byte(creq))
	sts := "AWS4-HMAC-SHA256\n" + amzDate + "\n" + strings.Join(scope[1:], "/") + "\n" + hex.EncodeToString(h[:])
	key := []byte("AWS4" + awsSecret)
	for _, part := range scope[1:] {
		key = mac(key, part)
	}
	if want := hex.EncodeToString(mac(key, sts)); !hmac.Equal([]byte(want), []byte(fields["Signature"])) {
		return "signature mismatch; canonical request was:\n" + creq
	}
	return "ok"
}

func mac(key []byte, data string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(data))
	return m.Sum(nil)
}

// awsEscape is RFC 3986 encoding with the unreserved set, keeping safe.
func awsEscape(s, safe string) string {
	var b strings.Builder
	for _, c := range []byte(s) {
		if 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || strings.IndexByte("-_.~"+safe, c) >= 0 {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

func canonicalQuery(q url.Values) string {
	var pairs []string
	for k, vs := range q {
		for _, v := range vs {
			pairs = append(pairs, awsEscape(k, "")+"="+awsEscape(v, ""))
		}
	}
	sort.Strings(pairs)
	return strings.Join(pairs, "&")
}

// botocoreScript recomputes each signature with botocore's own signer.
const botocoreScript = `
import json, sys
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
for d in json.load(sys.stdin):
    req = AWSRequest(method=d["method"], url=d["url"], data=d["body"].encode(), headers=d["headers"])
    req.context["timestamp"] = d["amz_date"]
    auth = SigV4Auth(Credentials(d["key_id"], d["secret"], d["token"]), "bedrock", "us-west-2")
    creq = auth.canonical_request(req)
    if auth.signature(auth.string_to_sign(req, creq), req) != d["signature"]:
        print("botocore computes another signature; its canonical request:\n" + creq)
        sys.exit(0)
print("ok")
`

// botocoreDoc is what botocore needs to re-sign a received request: its
// signed headers, body and the X-Amz-Date airlock used.
func botocoreDoc(r *http.Request, body []byte) map[string]any {
	auth := r.Header.Get("Authorization")
	_, sig, _ := strings.Cut(auth, "Signature=")
	_, signedList, _ := strings.Cut(auth, "SignedHeaders=")
	signedList, _, _ = strings.Cut(signedList, ",")
	headers := map[string]string{}
	for _, h := range strings.Split(signedList, ";") {
		if h == "host" {
			headers["Host"] = r.Host
		} else {
			headers[h] = strings.Join(r.Header.Values(h), ",")
		}
	}
	return map[string]any{
		"method": r.Method, "url": "https://" + r.Host + r.URL.RequestURI(), "body": string(body), "headers": headers,
		"amz_date": r.Header.Get("X-Amz-Date"), "key_id": awsKeyID, "secret": awsSecret, "token": awsSession, "signature": sig,
	}
}

func botocoreVerify(docs []map[string]any) string {
	in, _ := json.Marshal(docs)
	cmd := exec.Command("/usr/bin/python3", "-c", botocoreScript)
	cmd.Stdin = bytes.NewReader(in)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "botocore failed: " + err.Error() + "\n" + string(out)
	}
	return strings.TrimSpace(string(out))
}
