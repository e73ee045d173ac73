package proxy

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/airlock/airlock/policy"
	"github.com/airlock/airlock/proxy/sigv4"
	"github.com/airlock/airlock/vault"
)

// Body limits for SigV4 payload hashing: S3 streams anything larger (or of
// unknown length) as UNSIGNED-PAYLOAD; other services need the hash, so a
// larger body is refused.
const s3HashLimit = 1 << 20

// sigv4BodyLimit is a variable so tests can lower it.
var sigv4BodyLimit int64 = 16 << 20

// sigv4Now is the signing clock (tests pin it).
var sigv4Now = time.Now

// awsCredentials is the aws credential's keys in sigv4's type.
func awsCredentials(c *vault.Credential) (sigv4.Credentials, error) {
	k, err := vault.AWSKeysOf(c)
	return sigv4.Credentials(k), err
}

// injectSigV4 signs the outbound request with the rule's aws credential.
// Region and service come from the rule, else from the *.amazonaws.com host.
func injectSigV4(out *http.Request, rule *policy.Rule, cred *vault.Credential) error {
	creds, err := awsCredentials(cred)
	if err != nil {
		return err
	}
	region, service := rule.Inject.Region, rule.Inject.Service
	if region == "" || service == "" {
		r, s, ok := sigv4.Infer(out.URL.Host)
		if !ok {
			return newError(http.StatusBadGateway, CodeCredentialInvalid,
				"rule "+rule.Name+": cannot infer the AWS region and service of "+out.URL.Hostname(),
				"set inject.region and inject.service on the rule")
		}
		region, service = orString(region, r), orString(service, s)
	}
	hash, err := payloadHash(out, service)
	if err != nil {
		return err
	}
	if err := sigv4.Sign(out, creds, region, service, sigv4Now(), hash); err != nil {
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
	if out.ContentLength > sigv4BodyLimit {
		return "", bodyTooLarge(service)
	}
	buf, err := io.ReadAll(io.LimitReader(out.Body, sigv4BodyLimit+1))
	if err != nil {
		return "", newError(http.StatusBadRequest, CodeBadRequest, "reading the request body to sign it failed", "")
	}
	if int64(len(buf)) > sigv4BodyLimit {
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

func bodyTooLarge(service string) *Error {
	return newError(http.StatusRequestEntityTooLarge, CodeBadRequest,
		fmt.Sprintf("request bodies over %d MiB cannot be signed for AWS service %s", sigv4BodyLimit>>20, service),
		"send a smaller body (S3 uploads of any size are sent as UNSIGNED-PAYLOAD)")
}
