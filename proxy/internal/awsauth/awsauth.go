// Package awsauth injects an aws credential: it signs the outbound request
// of an aws_sigv4 rule with AWS Signature V4 (package sigv4), hashing the
// body within bounds.
package awsauth

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/airlock/airlock/policy"
	"github.com/airlock/airlock/proxy/errcode"
	"github.com/airlock/airlock/proxy/sigv4"
	"github.com/airlock/airlock/vault"
)

// Body limits for SigV4 payload hashing: S3 streams anything larger (or of
// unknown length) as UNSIGNED-PAYLOAD; other services need the hash, so a
// larger body is refused.
const s3HashLimit = 1 << 20

// BodyLimit is the largest body hashed for signing; a variable so tests
// can lower it.
var BodyLimit int64 = 16 << 20

// Now is the signing clock (tests pin it).
var Now = time.Now

// Credentials is the aws credential's keys in sigv4's type.
func Credentials(c *vault.Credential) (sigv4.Credentials, error) {
	k, err := vault.AWSKeysOf(c)
	return sigv4.Credentials(k), err
}

// Inject signs the outbound request with the rule's aws credential.
// Region and service come from the rule, else from the *.amazonaws.com host.
func Inject(out *http.Request, rule *policy.Rule, cred *vault.Credential) error {
	creds, err := Credentials(cred)
	if err != nil {
		return err
	}
	region, service := rule.Inject.Region, rule.Inject.Service
	if region == "" || service == "" {
		r, s, ok := sigv4.Infer(out.URL.Host)
		if !ok {
			return errcode.New(http.StatusBadGateway, errcode.CredentialInvalid,
				"rule "+rule.Name+": cannot infer the AWS region and service of "+out.URL.Hostname(),
				"set inject.region and inject.service on the rule")
		}
		region, service = or(region, r), or(service, s)
	}
	hash, err := payloadHash(out, service)
	if err != nil {
		return err
	}
	if err := sigv4.Sign(out, creds, region, service, Now(), hash); err != nil {
		return fmt.Errorf("rule %s: %w", rule.Name, err)
	}
	return nil
}

// payloadHash hashes the body, buffering it so it can still be sent. S3
// bodies over s3HashLimit or of unknown length are sent unsigned.
func payloadHash(out *http.Request, service string) (string, error) {
	if out.Body == nil || out.Body == http.NoBody || out.ContentLength == 0 {
		return sigv4.EmptyPayloadHash, nil
	}
	if service == "s3" && (out.ContentLength < 0 || out.ContentLength > s3HashLimit) {
		return sigv4.UnsignedPayload, nil
	}
	if out.ContentLength > BodyLimit {
		return "", bodyTooLarge(service)
	}
	buf, err := io.ReadAll(io.LimitReader(out.Body, BodyLimit+1))
	if err != nil {
		return "", errcode.New(http.StatusBadRequest, errcode.BadRequest, "reading the request body to sign it failed", "")
	}
	if int64(len(buf)) > BodyLimit {
		return "", bodyTooLarge(service)
	}
	setBody(out, buf)
	return sigv4.PayloadHash(buf), nil
}

// setBody replaces out's body with buf, replayable through GetBody.
func setBody(out *http.Request, buf []byte) {
	out.ContentLength = int64(len(buf))
	out.Body = io.NopCloser(bytes.NewReader(buf))
	out.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(buf)), nil }
}

func bodyTooLarge(service string) *errcode.Error {
	return errcode.New(http.StatusRequestEntityTooLarge, errcode.BadRequest,
		fmt.Sprintf("request bodies over %d MiB cannot be signed for AWS service %s", BodyLimit>>20, service),
		"send a smaller body (S3 uploads of any size are sent as UNSIGNED-PAYLOAD)")
}

func or(s, def string) string {
	if s != "" {
		return s
	}
	return def
}
