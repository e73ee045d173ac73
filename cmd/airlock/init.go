package main

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/airlock/airlock/certs"
	"github.com/airlock/airlock/policy"
	"github.com/airlock/airlock/vault"
)

// systemRootFiles are where Linux distributions and macOS keep the system
// trust store as one PEM file (the list crypto/x509 reads).
var systemRootFiles = []string{
	"/etc/ssl/certs/ca-certificates.crt",
	"/etc/pki/tls/certs/ca-bundle.crt",
	"/etc/ssl/ca-bundle.pem",
	"/etc/pki/tls/cacert.pem",
	"/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem",
	"/etc/ssl/cert.pem",
}

func initCmd(g *globals, fs *flagSet) runFunc {
	return func([]string) error {
		h := g.home
		if _, err := os.Lstat(h.VaultPath()); err == nil {
			return withHint(fmt.Errorf("a vault already exists at %s", h.VaultPath()),
				"airlock init never overwrites a vault; use another --home, or move the old vault away if you really mean to start over")
		}
		// The passphrase first: without one, nothing is created.
		pass, ok, _, err := h.passphrase(true)
		if err != nil {
			return err
		}
		if !ok {
			return withHint(errors.New("no passphrase was given for the new vault"),
				"set AIRLOCK_PASSPHRASE, pass --passphrase-file, or run in a terminal")
		}
		warnShortPassphrase(pass)
		return initHome(h, pass)
	}
}

// initHome creates the home's directories and files. A failure removes
// everything it created, so a failed init leaves nothing behind.
func initHome(h home, pass []byte) (err error) {
	var created []string // removed in reverse order on failure
	defer func() {
		if err != nil {
			for i := len(created) - 1; i >= 0; i-- {
				_ = os.Remove(created[i]) // directories only when empty
			}
		}
	}()
	created = append(missingDirs(h.Dir()), missingDirs(h.KeysDir())...)
	if err := h.ensureDirs(); err != nil {
		return err
	}
	for _, f := range []string{h.VaultPath(), h.CAPath(), h.BundlePath()} {
		if _, serr := os.Lstat(f); errors.Is(serr, fs.ErrNotExist) {
			created = append(created, f)
		}
	}
	if err := createVault(h, pass); err != nil {
		return err
	}
	policyNote, err := writePolicy(h)
	if err != nil {
		return err
	}
	printNextSteps(h, policyNote)
	return nil
}

// missingDirs lists dir and those of its parents that do not exist yet,
// outermost first.
func missingDirs(dir string) []string {
	var out []string
	for d := filepath.Clean(dir); ; d = filepath.Dir(d) {
		if _, err := os.Lstat(d); !errors.Is(err, fs.ErrNotExist) || d == filepath.Dir(d) {
			break
		}
		out = append([]string{d}, out...)
	}
	return out
}

// createVault writes the vault with the CA key and audit key sealed in it,
// then ca.pem and ca-bundle.pem. A failure removes the new vault.
func createVault(h home, pass []byte) (err error) {
	ca, err := certs.NewCA(hostname(), time.Now())
	if err != nil {
		return fmt.Errorf("create CA: %w", err)
	}
	keyPEM, err := ca.KeyPEM()
	if err != nil {
		return fmt.Errorf("encode CA key: %w", err)
	}
	hmacKey := make([]byte, 32)
	if _, err := rand.Read(hmacKey); err != nil {
		return fmt.Errorf("generate audit key: %w", err)
	}
	adminTok, err := newAdminToken()
	if err != nil {
		return err
	}
	opts := vault.CreateOptions{KeyFile: os.Getenv("AIRLOCK_KEY_FILE")}
	if os.Getenv("AIRLOCK_INSECURE_FAST_KDF") == "1" {
		opts.KDF = vault.FastKDF
	}
	v, err := vault.Create(h.VaultPath(), pass, opts)
	if err != nil {
		if errors.Is(err, vault.ErrExists) {
			return withHint(fmt.Errorf("create vault: %w", err), "another airlock init created it a moment ago; use that vault")
		}
		return withHint(fmt.Errorf("create vault: %w", err), "check that "+h.Dir()+" is writable")
	}
	defer func() {
		if err != nil {
			_ = os.Remove(h.VaultPath())
		}
	}()
	restartGeneration(h, v) // a new vault: forget the old one's generation (generation.go)
	err = v.Update(func(d *vault.Data) error {
		if d.System == nil {
			d.System = map[string]vault.Secret{}
		}
		d.System[sysCAKey] = vault.NewSecret(keyPEM)
		d.System[sysAuditHMAC] = vault.NewSecret(hmacKey)
		d.System[sysAdminToken] = adminTok // admintoken.go
		return nil
	})
	if err != nil {
		return updateError("seal CA key", err)
	}
	if err := writeFileAtomic(h.CAPath(), ca.CertPEM, 0o644); err != nil {
		return err
	}
	return writeBundle(h, ca.CertPEM)
}

// writeBundle writes ca-bundle.pem: the system roots (when found) plus
// airlock's CA, so SSL_CERT_FILE pointing at it keeps other hosts working.
func writeBundle(h home, caPEM []byte) error {
	var b []byte
	for _, f := range systemRootFiles {
		roots, err := os.ReadFile(f)
		if err == nil && len(roots) > 0 {
			b = append(roots, '\n')
			break
		}
	}
	b = append(b, caPEM...)
	return writeFileAtomic(h.BundlePath(), b, 0o644)
}

// writePolicy writes the default policy unless one is already there.
func writePolicy(h home) (string, error) {
	_, err := os.Stat(h.PolicyPath())
	if err == nil {
		return "kept the existing " + h.PolicyPath(), nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("policy %s: %w", h.PolicyPath(), err)
	}
	if err := writeFileAtomic(h.PolicyPath(), policy.DefaultYAML, 0o644); err != nil {
		return "", err
	}
	return "wrote the example policy " + h.PolicyPath(), nil
}

func hostname() string {
	n, err := os.Hostname()
	if err != nil || n == "" {
		return "localhost"
	}
	return n
}

func printNextSteps(h home, policyNote string) {
	lines := []string{
		"airlock: created " + h.Dir() + " (vault, CA, keys/); " + policyNote,
		"next steps:",
		"  1. store a credential:   printf %s \"$OPENAI_API_KEY\" | airlock vault set openai/api-key",
		"  2. allow its use:        edit " + h.PolicyPath() + ", then `airlock policy check`",
		"  3. add an agent:         airlock agent add bot",
		"  4. start the proxy:      airlock serve",
		"  5. run the agent:        airlock run --agent bot -- python3 examples/agents/agent.py  (from a clone of the airlock repository)",
	}
	fmt.Fprintln(Stderr, strings.Join(lines, "\n"))
}
