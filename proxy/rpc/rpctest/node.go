package rpctest

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// NodeSDKDir is the Node/TypeScript SDK: ../shared/peers/sanctum-sdk-node
// relative to the repository root.
func NodeSDKDir() string {
	return filepath.Join(here(), "..", "..", "..", "..", "shared", "peers", "sanctum-sdk-node")
}

// RequireNodeEnv, when set to 1 (CI sets it), makes a failed Node SDK build
// fail the test instead of skipping it.
const RequireNodeEnv = "AIRLOCK_REQUIRE_NODE_SDK"

// BuildNodeSDK copies the Node SDK to a temporary directory and builds it
// there with `npm ci` (TypeScript and the SDK's dependencies from the npm
// registry) and `npx tsc`, returning the directory. It skips t when node
// or npm is missing or the build fails (no registry), unless
// AIRLOCK_REQUIRE_NODE_SDK=1.
func BuildNodeSDK(t testing.TB) string {
	t.Helper()
	src := NodeSDKDir()
	if _, err := os.Stat(filepath.Join(src, "package-lock.json")); err != nil {
		t.Skipf("skipping: SanctumAI Node SDK not found at %s (../shared is absent)", src)
	}
	skip := t.Skipf
	if os.Getenv(RequireNodeEnv) == "1" {
		skip = t.Fatalf
	}
	for _, tool := range []string{"node", "npm", "npx"} {
		if _, err := exec.LookPath(tool); err != nil {
			skip("skipping: %s not installed", tool)
		}
	}
	dir := filepath.Join(t.TempDir(), "sanctum-sdk-node")
	if err := os.CopyFS(dir, os.DirFS(src)); err != nil {
		t.Fatalf("copy the Node SDK: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	for _, args := range [][]string{{"npm", "ci", "--no-audit", "--no-fund", "--silent"}, {"npx", "tsc"}} {
		cmd := exec.CommandContext(ctx, args[0], args[1:]...)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			skip("skipping: %v in the Node SDK copy failed: %v\n%s", args, err, out)
		}
	}
	return dir
}

// NodeConfig is what testdata/node_client.js does: connect (TCP, or the
// Unix socket when Socket is set) and authenticate, list, retrieve, release
// an unknown lease, `use` http_request, sign, encrypt then decrypt, encrypt
// with the README's {plaintext}, and sign with DeniedPath.
type NodeConfig struct {
	Host         string `json:"host,omitempty"`
	Port         int    `json:"port,omitempty"`
	Socket       string `json:"socket,omitempty"`
	Agent        string `json:"agent"`
	KeyPath      string `json:"key_path"`
	RetrievePath string `json:"retrieve_path"`
	TTL          int    `json:"ttl"`
	HTTPPath     string `json:"http_path"`
	URL          string `json:"url"`
	SignPath     string `json:"sign_path"`
	CryptPath    string `json:"crypt_path"`
	DeniedPath   string `json:"denied_path"`
}

// NodeResult is the script's JSON line.
type NodeResult struct {
	List          []string `json:"list"`
	ValueSHA256   string   `json:"value_sha256"`
	UnknownLease  string   `json:"unknown_lease"`
	HTTPStatus    int      `json:"http_status"`
	HTTPBody      string   `json:"http_body"`
	Signature     string   `json:"signature"`
	Decrypted     string   `json:"decrypted"`
	ReadmeEncrypt string   `json:"readme_encrypt"`
	Denied        string   `json:"denied"`
	Raw           string   `json:"-"`
}

// RunNodeClient runs testdata/node_client.js with the SDK built in sdkDir.
func RunNodeClient(t testing.TB, sdkDir string, cfg NodeConfig) NodeResult {
	t.Helper()
	arg, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	script := filepath.Join(here(), "..", "testdata", "node_client.js")
	cmd := exec.CommandContext(ctx, "node", script, sdkDir, string(arg))
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	runErr := cmd.Run()
	var res NodeResult
	line := bytes.TrimSpace(stdout.Bytes())
	if err := json.Unmarshal(line, &res); err != nil || runErr != nil {
		t.Fatalf("node %s: %v\nstdout: %s\nstderr: %s", script, runErr, line, stderr.Bytes())
	}
	res.Raw = string(line)
	return res
}
