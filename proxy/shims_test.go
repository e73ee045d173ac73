package proxy

import (
	"github.com/airlock/airlock/proxy/audit"
	"github.com/airlock/airlock/proxy/sigv4"
	"github.com/airlock/airlock/vault"
)

// Test helpers for the in-package tests, after compat.go (issue 15) went.

// newAWSCredential is vault.NewAWSCredential with sigv4's key type.
func newAWSCredential(path string, c sigv4.Credentials) (*vault.Credential, error) {
	return vault.NewAWSCredential(path, vault.AWSKeys(c))
}

// NewAsyncWriter is audit.NewAsyncWriter for bench_test.go (which another
// change owns); replace its three calls and delete this line when merged.
var NewAsyncWriter = audit.NewAsyncWriter
