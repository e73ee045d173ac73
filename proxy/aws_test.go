package proxy

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/airlock/airlock/policy"
	"github.com/airlock/airlock/proxy/internal/awsauth"
	"github.com/airlock/airlock/proxy/sigv4"
	"github.com/airlock/airlock/vault"
)

var awsTestCreds = sigv4.Credentials{AccessKeyID: "AKIDEXAMPLE", SecretAccessKey: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", SessionToken: "session-token-1"}

func TestInjectSigV4(t *testing.T) {
	awsauth.Now = func() time.Time { return time.Date(2015, 8, 30, 12, 36, 0, 0, time.UTC) }
	t.Cleanup(func() { awsauth.Now = time.Now })
	cred, err := newAWSCredential("aws/bedrock", awsTestCreds)
	if err != nil {
		t.Fatal(err)
	}
	awsauth.BodyLimit = 1 << 10
	t.Cleanup(func() { awsauth.BodyLimit = 16 << 20 })
	big := strings.Repeat("x", int(awsauth.BodyLimit)+1)
	cases := map[string]struct {
		url, region, service string
		body                 string
		unknownLength        bool
		scope                string // in the Authorization header
		payload              string // X-Amz-Content-Sha256, "" when absent
		code                 string // expected error code
	}{
		"explicit":          {url: "https://bedrock-runtime.us-west-2.amazonaws.com/model/m:0/invoke", region: "us-west-2", service: "bedrock", body: `{"a":1}`, scope: "20150830/us-west-2/bedrock/aws4_request"},
		"inferred":          {url: "https://bedrock-runtime.eu-west-3.amazonaws.com/model/m/invoke", body: "{}", scope: "20150830/eu-west-3/bedrock/aws4_request"},
		"region from rule":  {url: "https://bedrock-runtime.eu-west-3.amazonaws.com/", region: "us-east-1", scope: "20150830/us-east-1/bedrock/aws4_request"},
		"s3 small":          {url: "https://b.s3.us-east-2.amazonaws.com/k", body: "hello", scope: "20150830/us-east-2/s3/aws4_request", payload: sigv4.PayloadHash([]byte("hello"))},
		"s3 streaming":      {url: "https://b.s3.us-east-2.amazonaws.com/k", body: "hello", unknownLength: true, scope: "/s3/", payload: sigv4.UnsignedPayload},
		"not inferable":     {url: "https://api.example.com/", code: CodeCredentialInvalid},
		"non-s3 too large":  {url: "https://sts.amazonaws.com/", body: big, unknownLength: true, code: CodeBadRequest},
		"non-s3 chunked ok": {url: "https://sts.amazonaws.com/", body: "Action=GetCallerIdentity", unknownLength: true, scope: "20150830/us-east-1/sts/aws4_request"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			req := httptest.NewRequest("POST", tc.url, strings.NewReader(tc.body))
			req.RequestURI = ""
			if tc.unknownLength {
				req.ContentLength = -1
			}
			req.Header.Set("Authorization", "AWS4-HMAC-SHA256 forged")
			req.Header.Set("X-Amz-Security-Token", "agent-token")
			req.Header.Set("X-Amz-Date", "19990101T000000Z")
			rule := &policy.Rule{Name: "bedrock", Inject: policy.Inject{Type: policy.InjectSigV4, Region: tc.region, Service: tc.service}}
			err := (&Server{}).inject(req, rule, cred)
			if tc.code != "" {
				var e *Error
				if !errors.As(err, &e) || e.Code != tc.code {
					t.Fatalf("err = %v, want %s", err, tc.code)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			auth := req.Header.Values("Authorization")
			if len(auth) != 1 || !strings.HasPrefix(auth[0], "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/") || !strings.Contains(auth[0], tc.scope) {
				t.Fatalf("Authorization %q, want scope %s", auth, tc.scope)
			}
			if got := req.Header.Values("X-Amz-Security-Token"); len(got) != 1 || got[0] != awsTestCreds.SessionToken {
				t.Fatalf("security token %q", got)
			}
			if got := req.Header.Get("X-Amz-Date"); got != "20150830T123600Z" {
				t.Fatalf("X-Amz-Date %q", got)
			}
			if got := req.Header.Get("X-Amz-Content-Sha256"); got != tc.payload {
				t.Fatalf("X-Amz-Content-Sha256 %q, want %q", got, tc.payload)
			}
			body, _ := io.ReadAll(req.Body)
			if string(body) != tc.body {
				t.Fatalf("body after signing %q, want %q", body, tc.body)
			}
		})
	}
}

func TestAWSCredentialRoundTrip(t *testing.T) {
	cred, err := newAWSCredential("aws/x", awsTestCreds)
	if err != nil {
		t.Fatal(err)
	}
	got, err := awsauth.Credentials(cred)
	if err != nil || got != awsTestCreds {
		t.Fatalf("round trip %v, %v", got, err)
	}
	secrets := tokenSecrets(cred, nil)
	if len(secrets) != 2 || secrets[0] != awsTestCreds.SecretAccessKey || secrets[1] != awsTestCreds.SessionToken {
		t.Fatal("tokenSecrets does not list the aws secrets")
	}
	if _, err := newAWSCredential("aws/x", sigv4.Credentials{AccessKeyID: "A"}); !errors.Is(err, vault.ErrBadTokenCredential) {
		t.Fatalf("no secret: %v", err)
	}
	cred.Metadata = nil
	if _, err := awsauth.Credentials(cred); !errors.Is(err, vault.ErrBadTokenCredential) {
		t.Fatalf("no key id: %v", err)
	}
	_ = http.MethodGet
}
