package sigv4

import (
	"net"
	"strings"
)

// signingNames maps endpoint prefixes whose signing name differs.
var signingNames = map[string]string{
	"bedrock-runtime":       "bedrock",
	"bedrock-agent":         "bedrock",
	"bedrock-agent-runtime": "bedrock",
	"runtime.sagemaker":     "sagemaker",
	"email":                 "ses",
	"runtime.lex":           "lex",
	"data.iot":              "iotdata",
}

// globalServices are signed in us-east-1 whatever the host.
var globalServices = map[string]bool{"iam": true, "sts": true, "route53": true, "cloudfront": true, "s3": true}

// Infer derives the region and signing service from an AWS endpoint host
// name such as bedrock-runtime.us-west-2.amazonaws.com,
// my-bucket.s3.eu-west-1.amazonaws.com or sts.amazonaws.com. ok is false
// for hosts outside amazonaws.com or shapes it does not know.
func Infer(host string) (region, service string, ok bool) {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	rest, found := cutSuffixAny(host, ".amazonaws.com.cn", ".amazonaws.com")
	if !found || rest == "" {
		return "", "", false
	}
	labels := strings.Split(rest, ".")
	last := labels[len(labels)-1]
	if r, ok := strings.CutPrefix(last, "s3-"); ok && isRegion(r) { // legacy s3-us-west-2
		return r, "s3", true
	}
	if !isRegion(last) {
		// Global endpoint: sts.amazonaws.com, bucket.s3.amazonaws.com.
		if globalServices[last] {
			return "us-east-1", last, true
		}
		return "", "", false
	}
	if len(labels) < 2 {
		return "", "", false
	}
	region = last
	prefix := strings.Join(labels[:len(labels)-1], ".")
	for p, name := range signingNames {
		if prefix == p || strings.HasSuffix(prefix, "."+p) {
			return region, name, true
		}
	}
	service = labels[len(labels)-2]
	if service == "s3" || strings.HasPrefix(service, "s3-") || service == "dualstack" && len(labels) > 2 && labels[len(labels)-3] == "s3" {
		service = "s3"
	}
	return region, service, true
}

func cutSuffixAny(s string, suffixes ...string) (string, bool) {
	for _, suf := range suffixes {
		if r, ok := strings.CutSuffix(s, suf); ok {
			return r, true
		}
	}
	return s, false
}

// isRegion reports whether s looks like an AWS region: us-east-1,
// ap-southeast-2, us-gov-west-1, cn-north-1.
func isRegion(s string) bool {
	parts := strings.Split(s, "-")
	if len(parts) < 3 {
		return false
	}
	num := parts[len(parts)-1]
	if num == "" {
		return false
	}
	for i := 0; i < len(num); i++ {
		if num[i] < '0' || num[i] > '9' {
			return false
		}
	}
	for _, p := range parts[:len(parts)-1] {
		if p == "" {
			return false
		}
		for i := 0; i < len(p); i++ {
			if p[i] < 'a' || p[i] > 'z' {
				return false
			}
		}
	}
	return true
}
