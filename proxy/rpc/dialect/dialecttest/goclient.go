package dialecttest

import (
	"bytes"
	"context"
	"encoding/json"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
	"time"
)

// GoSDKDir is the pre-FFI Go client: ../shared/peers/sanctum-sdk-go-socket
// relative to the repository root.
func GoSDKDir() string {
	return filepath.Join(here(), "..", "..", "..", "..", "..", "shared", "peers", "sanctum-sdk-go-socket")
}

func here() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Dir(file)
}

// BuildGoClient copies the Go client to a temporary directory, writes the
// driver (testdata/goclient/main.go) beside it with a go.mod replace
// pointing at the copy, builds it offline and returns the binary. It skips
// t when the client or the go command is absent.
func BuildGoClient(t testing.TB) string {
	t.Helper()
	sdk := GoSDKDir()
	if _, err := os.Stat(filepath.Join(sdk, "client.go")); err != nil {
		t.Skipf("skipping: pre-FFI SanctumAI Go client not found at %s (../shared is absent)", sdk)
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("skipping: no go command to build the Go client with")
	}
	dir := t.TempDir()
	if err := os.CopyFS(filepath.Join(dir, "sdk"), os.DirFS(sdk)); err != nil {
		t.Fatalf("copy the Go client: %v", err)
	}
	filepath.WalkDir(filepath.Join(dir, "sdk"), func(p string, d fs.DirEntry, err error) error {
		if err == nil {
			os.Chmod(p, 0o755) // CopyFS keeps read-only modes; TempDir cleanup must delete
		}
		return nil
	})
	src, err := os.ReadFile(filepath.Join(here(), "testdata", "goclient", "main.go"))
	if err != nil {
		t.Fatal(err)
	}
	gomod := "module goclient\n\ngo 1.25\n\nrequire github.com/jwgale/sanctum-sdk-go v0.0.0\n\n" +
		"replace github.com/jwgale/sanctum-sdk-go => ./sdk\n"
	for name, b := range map[string][]byte{"main.go": src, "go.mod": []byte(gomod)} {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	bin := filepath.Join(dir, "goclient")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, goBin, "build", "-o", bin, ".")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=-mod=mod", "GOPROXY=off", "GOTOOLCHAIN=local")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build the Go client driver: %v\n%s", err, out)
	}
	return bin
}

// GoClientConfig is what the driver does (testdata/goclient/main.go): on a
// first connection, list unauthenticated and authenticate with WrongSeed;
// on a second, authenticate, list, retrieve RetrievePath with TTL and
// release the lease, release an unknown lease, `use` http_request POST
// URL with HTTPPath, sign with SignPath, encrypt then decrypt with
// CryptPath, encrypt with the Node README's {plaintext}, and sign with
// DeniedPath.
type GoClientConfig struct {
	Network      string `json:"network"`
	Addr         string `json:"addr"`
	Agent        string `json:"agent"`
	Seed         string `json:"seed"`
	WrongSeed    string `json:"wrong_seed"`
	RetrievePath string `json:"retrieve_path"`
	TTL          int    `json:"ttl"`
	HTTPPath     string `json:"http_path"`
	URL          string `json:"url"`
	SignPath     string `json:"sign_path"`
	CryptPath    string `json:"crypt_path"`
	DeniedPath   string `json:"denied_path"`
}

// GoClientResult is the driver's JSON line.
type GoClientResult struct {
	List     []string `json:"list"`
	Retrieve struct {
		Path        string `json:"path"`
		ValueSHA256 string `json:"value_sha256"`
		ValueIsJSON bool   `json:"value_is_json_string"`
		TTL         uint64 `json:"ttl"`
		LeaseSet    bool   `json:"lease_set"`
	} `json:"retrieve"`
	Release      string          `json:"release"`
	UnknownLease string          `json:"unknown_lease"`
	HTTP         json.RawMessage `json:"http_output"`
	HTTPSuccess  bool            `json:"http_success"`
	Signature    json.RawMessage `json:"sign_output"`
	Decrypted    string          `json:"decrypted"`
	Plaintext    string          `json:"encrypt_plaintext_param"`
	Denied       string          `json:"denied"`
	WrongKey     string          `json:"wrong_key"`
	NoAuth       string          `json:"no_auth"`
	Raw          string          `json:"-"`
}

// RunGoClient runs the driver bin with cfg and fails t if it fails.
func RunGoClient(t testing.TB, bin string, cfg GoClientConfig) GoClientResult {
	t.Helper()
	arg, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, string(arg))
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	runErr := cmd.Run()
	var res GoClientResult
	line := bytes.TrimSpace(stdout.Bytes())
	if err := json.Unmarshal(line, &res); err != nil || runErr != nil {
		t.Fatalf("go client driver: %v\nstdout: %s\nstderr: %s", runErr, line, stderr.Bytes())
	}
	res.Raw = string(line)
	return res
}
