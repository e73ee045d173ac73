package source

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// maxBody bounds every response body a source reads.
const maxBody = 1 << 20

// newHTTPClient returns a client trusting caPEM in addition to nothing
// else when given (a private CA), or the system roots.
func newHTTPClient(caPEM []byte, timeout time.Duration) (*http.Client, error) {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.Proxy = nil // a source is reached directly, never through airlock itself
	if len(caPEM) > 0 {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(caPEM) {
			return nil, errors.New("the CA bundle holds no PEM certificate")
		}
		t.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	return &http.Client{Transport: t, Timeout: timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}, nil
}

// readBody reads at most maxBody bytes of resp and closes it.
func readBody(resp *http.Response) ([]byte, error) {
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxBody+1))
	if err != nil {
		return nil, fmt.Errorf("read response: %v: %w", err, ErrUnavailable)
	}
	if len(b) > maxBody {
		return nil, fmt.Errorf("response larger than %d bytes: %w", maxBody, ErrUnavailable)
	}
	return b, nil
}

// statusError maps a non-2xx status to a sentinel. The body is never
// included: it may echo anything.
func statusError(op string, resp *http.Response) error {
	code := resp.StatusCode
	switch {
	case code == http.StatusUnauthorized:
		return fmt.Errorf("%s: 401 unauthorized (token or client credentials refused): %w", op, ErrAuth)
	case code == http.StatusForbidden:
		return fmt.Errorf("%s: 403 forbidden (no permission for this secret): %w", op, ErrAuth)
	case code == http.StatusNotFound:
		return fmt.Errorf("%s: 404: %w", op, ErrNotFound)
	case code == http.StatusConflict:
		return fmt.Errorf("%s: 409 conflict: %w", op, ErrUnavailable)
	case code == http.StatusTooManyRequests:
		after := retryAfter(resp.Header.Get("Retry-After"))
		return &retryError{msg: fmt.Sprintf("%s: 429 rate limited (retry after %s)", op, after), after: after}
	}
	return fmt.Errorf("%s: status %d: %w", op, code, ErrUnavailable)
}

// retryAfter parses a Retry-After in seconds (bounded), default 1 s.
func retryAfter(v string) time.Duration {
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		return time.Second
	}
	return time.Duration(min(n, 3600)) * time.Second
}

// transportError wraps a failed round trip without the URL's query.
func transportError(op string, err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	return fmt.Errorf("%s: %v: %w", op, err, ErrUnavailable)
}
