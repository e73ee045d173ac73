// Command goclient drives airlock's RPC door with the unmodified pre-FFI
// SanctumAI Go client (module github.com/jwgale/sanctum-sdk-go), built by
// dialecttest.BuildGoClient with a go.mod replace pointing at a copy of
// ../shared/peers/sanctum-sdk-go-socket. It takes a JSON config as its
// argument and prints one JSON line; secret values appear only as SHA-256
// digests.
package main

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"

	sanctum "github.com/jwgale/sanctum-sdk-go"
)

type config struct {
	Network      string `json:"network"` // tcp or unix
	Addr         string `json:"addr"`
	Agent        string `json:"agent"`
	Seed         string `json:"seed"`       // hex Ed25519 seed
	WrongSeed    string `json:"wrong_seed"` // a key the vault does not know for Agent
	RetrievePath string `json:"retrieve_path"`
	TTL          int    `json:"ttl"`
	HTTPPath     string `json:"http_path"`
	URL          string `json:"url"`
	SignPath     string `json:"sign_path"`
	CryptPath    string `json:"crypt_path"`
	DeniedPath   string `json:"denied_path"`
}

type result struct {
	List     []string `json:"list"`
	Retrieve struct {
		Path        string `json:"path"`
		ValueSHA256 string `json:"value_sha256"`
		ValueIsJSON bool   `json:"value_is_json_string"`
		TTL         uint64 `json:"ttl"`
		LeaseSet    bool   `json:"lease_set"`
	} `json:"retrieve"`
	Release      string          `json:"release"`       // "" on success
	UnknownLease string          `json:"unknown_lease"` // a code
	HTTP         json.RawMessage `json:"http_output"`
	HTTPSuccess  bool            `json:"http_success"`
	Signature    json.RawMessage `json:"sign_output"`
	Decrypted    string          `json:"decrypted"`
	Plaintext    string          `json:"encrypt_plaintext_param"` // code: message
	Denied       string          `json:"denied"`
	WrongKey     string          `json:"wrong_key"`
	NoAuth       string          `json:"no_auth"`
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "goclient:", err)
		os.Exit(1)
	}
}

func dial(cfg config) (*sanctum.Client, error) {
	if cfg.Network == "unix" {
		return sanctum.NewClient(cfg.Addr)
	}
	return sanctum.NewTCPClient(cfg.Addr)
}

func key(seedHex string) (ed25519.PrivateKey, error) {
	seed, err := hex.DecodeString(seedHex)
	if err != nil || len(seed) != ed25519.SeedSize {
		return nil, fmt.Errorf("bad seed")
	}
	return ed25519.NewKeyFromSeed(seed), nil
}

// code is the VaultError code of err, or its text.
func code(err error) string {
	var ve *sanctum.VaultError
	if errors.As(err, &ve) {
		return ve.Code
	}
	if err == nil {
		return ""
	}
	return "not a VaultError: " + err.Error()
}

func run() error {
	var cfg config
	if err := json.Unmarshal([]byte(os.Args[1]), &cfg); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out result

	// Calls before authenticating are refused.
	anon, err := dial(cfg)
	if err != nil {
		return err
	}
	_, err = anon.List(ctx)
	out.NoAuth = code(err)
	wrong, err := key(cfg.WrongSeed)
	if err != nil {
		return err
	}
	out.WrongKey = code(anon.Authenticate(ctx, cfg.Agent, wrong))
	anon.Close()

	c, err := dial(cfg)
	if err != nil {
		return err
	}
	defer c.Close()
	k, err := key(cfg.Seed)
	if err != nil {
		return err
	}
	if err := c.Authenticate(ctx, cfg.Agent, k); err != nil {
		return fmt.Errorf("authenticate: %w", err)
	}
	list, err := c.List(ctx)
	if err != nil {
		return fmt.Errorf("list: %w", err)
	}
	for _, ci := range list {
		out.List = append(out.List, ci.Path)
	}

	cred, err := c.Retrieve(ctx, cfg.RetrievePath, cfg.TTL)
	if err != nil {
		return fmt.Errorf("retrieve: %w", err)
	}
	var value string
	out.Retrieve.ValueIsJSON = json.Unmarshal(cred.Value, &value) == nil
	sum := sha256.Sum256([]byte(value))
	out.Retrieve.ValueSHA256 = hex.EncodeToString(sum[:])
	out.Retrieve.Path, out.Retrieve.TTL, out.Retrieve.LeaseSet = cred.Path, cred.TTL, cred.LeaseID != ""
	out.Release = code(c.ReleaseLease(ctx, cred.LeaseID))
	out.UnknownLease = code(c.ReleaseLease(ctx, "no-such-lease"))

	ur, err := c.Use(ctx, cfg.HTTPPath, "http_request", map[string]interface{}{
		"method": "POST", "url": cfg.URL, "body": "from-go-client",
		"headers": map[string]string{"X-Test": "1"}, "header_type": "bearer",
	})
	if err != nil {
		return fmt.Errorf("http_request: %w", err)
	}
	out.HTTP, out.HTTPSuccess = ur.Output, ur.Success

	ur, err = c.Use(ctx, cfg.SignPath, "sign", map[string]interface{}{"algorithm": "hmac-sha256", "data": "sign me"})
	if err != nil {
		return fmt.Errorf("sign: %w", err)
	}
	out.Signature = ur.Output

	ur, err = c.Use(ctx, cfg.CryptPath, "encrypt", map[string]interface{}{"data": "round trip ✓"})
	if err != nil {
		return fmt.Errorf("encrypt: %w", err)
	}
	var enc struct {
		Ciphertext string `json:"ciphertext"`
	}
	json.Unmarshal(ur.Output, &enc)
	ur, err = c.Use(ctx, cfg.CryptPath, "decrypt", map[string]interface{}{"data": enc.Ciphertext})
	if err != nil {
		return fmt.Errorf("decrypt: %w", err)
	}
	var dec struct {
		Plaintext string `json:"plaintext"`
	}
	json.Unmarshal(ur.Output, &dec)
	out.Decrypted = dec.Plaintext

	_, err = c.Use(ctx, cfg.CryptPath, "encrypt", map[string]interface{}{"plaintext": "lost?"})
	var ve *sanctum.VaultError
	if errors.As(err, &ve) {
		out.Plaintext = ve.Code + ": " + ve.Message
	} else {
		out.Plaintext = fmt.Sprint("no VaultError: ", err)
	}
	_, err = c.Use(ctx, cfg.DeniedPath, "sign", map[string]interface{}{"data": "x"})
	out.Denied = code(err)

	b, err := json.Marshal(out)
	if err != nil {
		return err
	}
	fmt.Println(string(b))
	return nil
}
