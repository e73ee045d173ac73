// Package rpctest runs the public SanctumAI Python SDK against an airlock
// RPC door, for tests in any package (the rpc unit tests and the proxy's
// end-to-end test).
//
// The SDK is not part of airlock: it is read, unmodified, from
// ../shared/peers/sanctum-sdk-python relative to the repository and put on
// PYTHONPATH; its only dependency is PyNaCl (Debian python3-nacl).
package rpctest

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
	"time"
)

// Python is the interpreter the SDK runs with.
const Python = "/usr/bin/python3"

// SDKConfig is what testdata/sdk_client.py does: connect over TCP with the
// agent's key file, list, retrieve RetrievePath with TTL and release it,
// `use` http_request POST URL with HTTPPath, sign with SignPath, encrypt
// then decrypt with CryptPath, and expect AccessDenied for DeniedPath and
// for retrieving HTTPPath.
type SDKConfig struct {
	Host         string `json:"host"`
	Port         int    `json:"port"`
	Agent        string `json:"agent"`
	KeyPath      string `json:"key_path"` // hex Ed25519 seed, as `airlock agent add` writes
	RetrievePath string `json:"retrieve_path"`
	TTL          int    `json:"ttl"`
	HTTPPath     string `json:"http_path"`
	URL          string `json:"url"`
	SignPath     string `json:"sign_path"`
	CryptPath    string `json:"crypt_path"`
	DeniedPath   string `json:"denied_path"`
}

// SDKResult is the script's JSON line. Secret values appear only as
// SHA-256 digests.
type SDKResult struct {
	List     []string `json:"list"`
	Retrieve struct {
		ValueSHA256  string `json:"value_sha256"`
		TTL          int    `json:"ttl"`
		HasExpiresAt bool   `json:"has_expires_at"`
	} `json:"retrieve"`
	UnknownLease string `json:"unknown_lease"` // "LeaseExpired" expected
	HTTPRequest  struct {
		Status  int               `json:"status"`
		Body    string            `json:"body"`
		Headers map[string]string `json:"headers"`
	} `json:"http_request"`
	Signature      string `json:"signature"`       // base64 HMAC-SHA256 of "sign me"
	Decrypted      string `json:"decrypted"`       // "round trip ✓" expected
	Denied         string `json:"denied"`          // "AccessDenied:ACCESS_DENIED" expected
	RetrieveDenied string `json:"retrieve_denied"` // "AccessDenied:ACCESS_DENIED" expected
	Raw            string `json:"-"`               // the line as printed
}

// SDKDir is the SDK directory: ../shared/peers/sanctum-sdk-python relative
// to the repository root.
func SDKDir() string {
	return filepath.Join(here(), "..", "..", "..", "..", "shared", "peers", "sanctum-sdk-python")
}

// Script is the path of testdata/sdk_client.py.
func Script() string { return filepath.Join(here(), "..", "testdata", "sdk_client.py") }

func here() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Dir(file)
}

// RunSDKClient runs the script with cfg. It skips t when the SDK directory
// is absent (saying so) and fails t when the script fails.
func RunSDKClient(t testing.TB, cfg SDKConfig) SDKResult {
	t.Helper()
	sdk := SDKDir()
	if _, err := os.Stat(filepath.Join(sdk, "sanctum_ai", "client.py")); err != nil {
		t.Skipf("skipping: SanctumAI Python SDK not found at %s (../shared is absent)", sdk)
	}
	arg, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, Python, Script(), string(arg))
	cmd.Env = append(os.Environ(), "PYTHONPATH="+sdk, "PYTHONDONTWRITEBYTECODE=1")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	runErr := cmd.Run()
	var res SDKResult
	line := bytes.TrimSpace(stdout.Bytes())
	if err := json.Unmarshal(line, &res); err != nil || runErr != nil {
		t.Fatalf("%s %s: %v\nstdout: %s\nstderr: %s", Python, Script(), runErr, line, stderr.Bytes())
	}
	res.Raw = string(line)
	return res
}
