// Package sigv4 signs HTTP requests with AWS Signature Version 4
// (AWS4-HMAC-SHA256), using the standard library only.
//
// # Steps
//
// [CanonicalRequest] renders the method, the canonical URI, the canonical
// query string, the signed headers and the payload hash; [StringToSign]
// hashes it under the credential scope; [SigningKey] derives the day's key
// from the secret access key; [Sign] does all three and sets the
// Authorization, X-Amz-Date and (for session credentials)
// X-Amz-Security-Token headers on the request.
//
// Tests run the published aws-sig-v4-test-suite vectors (testdata/).
package sigv4

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"time"
)

// Algorithm is the only signing algorithm this package speaks.
const Algorithm = "AWS4-HMAC-SHA256"

// UnsignedPayload is the payload hash for bodies that are not hashed (S3
// only; the body is still protected by TLS).
const UnsignedPayload = "UNSIGNED-PAYLOAD"

// EmptyPayloadHash is the SHA-256 of an empty body.
const EmptyPayloadHash = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

// TimeFormat is the X-Amz-Date layout.
const TimeFormat = "20060102T150405Z"

const dateFormat = "20060102"

// Credentials are an AWS access key. The secret parts never appear in
// formatted output.
type Credentials struct {
	AccessKeyID     string
	SecretAccessKey string
	SessionToken    string // optional (temporary credentials from STS)
}

// String names the access key id only.
func (c Credentials) String() string { return "aws:" + c.AccessKeyID }

// GoString is String: %#v must not print the secret either.
func (c Credentials) GoString() string { return c.String() }

// Format prints String for every verb.
func (c Credentials) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(c.String())) }

// ErrIncomplete is returned when credentials, region or service are missing.
var ErrIncomplete = errors.New("incomplete signing input")

// unsignedHeaders are never signed: they are added or changed by proxies
// and transports on the way (botocore skips the same ones).
var unsignedHeaders = map[string]bool{
	"authorization":       true,
	"user-agent":          true,
	"expect":              true,
	"x-amzn-trace-id":     true,
	"connection":          true,
	"keep-alive":          true,
	"proxy-authorization": true,
	"proxy-connection":    true,
	"te":                  true,
	"trailer":             true,
	"transfer-encoding":   true,
	"upgrade":             true,
	"accept-encoding":     true,
}

// Sign signs req in place for region and service at now. payloadHash is the
// hex SHA-256 of the body (EmptyPayloadHash for none) or UnsignedPayload.
// Any Authorization, X-Amz-Date, X-Amz-Security-Token and
// X-Amz-Content-Sha256 already on req are replaced. For S3 the payload
// hash is also sent as X-Amz-Content-Sha256, which S3 requires.
func Sign(req *http.Request, creds Credentials, region, service string, now time.Time, payloadHash string) error {
	if creds.AccessKeyID == "" || creds.SecretAccessKey == "" || region == "" || service == "" {
		return fmt.Errorf("sign %s request: %w", service, ErrIncomplete)
	}
	prepare(req, creds, service, now, payloadHash)
	return signHeaders(req, creds, region, service, now, payloadHash, SignableHeaders(req))
}

// prepare replaces the headers the signature covers or carries.
func prepare(req *http.Request, creds Credentials, service string, now time.Time, payloadHash string) {
	h := req.Header
	for _, k := range []string{"Authorization", "X-Amz-Date", "X-Amz-Security-Token", "X-Amz-Content-Sha256"} {
		h.Del(k)
	}
	h.Set("X-Amz-Date", now.UTC().Format(TimeFormat))
	if creds.SessionToken != "" {
		h.Set("X-Amz-Security-Token", creds.SessionToken)
	}
	if service == "s3" || payloadHash == UnsignedPayload {
		h.Set("X-Amz-Content-Sha256", payloadHash)
	}
}

// signHeaders computes the signature over the named headers (lower case)
// and sets Authorization.
func signHeaders(req *http.Request, creds Credentials, region, service string, now time.Time, payloadHash string, signed []string) error {
	creq := CanonicalRequest(req, service, signed, payloadHash)
	sts := StringToSign(now, region, service, creq)
	key := SigningKey(creds.SecretAccessKey, now, region, service)
	sig := hex.EncodeToString(hmacSHA256(key, []byte(sts)))
	req.Header.Set("Authorization", Algorithm+" Credential="+creds.AccessKeyID+"/"+Scope(now, region, service)+
		", SignedHeaders="+strings.Join(signed, ";")+", Signature="+sig)
	return nil
}

// SignableHeaders lists, sorted and in lower case, the headers of req that
// Sign covers: host and every header except the hop-by-hop and transport
// ones in unsignedHeaders.
func SignableHeaders(req *http.Request) []string {
	names := []string{"host"}
	for k := range req.Header {
		lk := strings.ToLower(k)
		if lk == "host" || unsignedHeaders[lk] {
			continue
		}
		names = append(names, lk)
	}
	sort.Strings(names)
	return names
}

// Scope is the credential scope "YYYYMMDD/region/service/aws4_request".
func Scope(now time.Time, region, service string) string {
	return now.UTC().Format(dateFormat) + "/" + region + "/" + service + "/aws4_request"
}

// StringToSign renders the string to sign for a canonical request.
func StringToSign(now time.Time, region, service, canonicalRequest string) string {
	sum := sha256.Sum256([]byte(canonicalRequest))
	return Algorithm + "\n" + now.UTC().Format(TimeFormat) + "\n" + Scope(now, region, service) + "\n" + hex.EncodeToString(sum[:])
}

// SigningKey derives the signing key for the day of now.
func SigningKey(secret string, now time.Time, region, service string) []byte {
	k := hmacSHA256([]byte("AWS4"+secret), []byte(now.UTC().Format(dateFormat)))
	k = hmacSHA256(k, []byte(region))
	k = hmacSHA256(k, []byte(service))
	return hmacSHA256(k, []byte("aws4_request"))
}

func hmacSHA256(key, data []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write(data)
	return m.Sum(nil)
}

// PayloadHash is the hex SHA-256 of body.
func PayloadHash(body []byte) string {
	sum := sha256.Sum256(body)
	return hex.EncodeToString(sum[:])
}
