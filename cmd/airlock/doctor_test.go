package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/airlock/airlock/vault"
)

// freeAddr returns a loopback address nobody listens on (right now).
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	addr := l.Addr().String()
	must(t, l.Close())
	return addr
}

// doctorEnv is an initialised home whose proxy address is free and whose
// shell points at it: only the system-trust warning remains.
func doctorEnv(t *testing.T) *tenv {
	t.Helper()
	e := initEnv(t)
	e.env["AIRLOCK_LISTEN"] = freeAddr(t)
	e.ok("", "agent", "add", "bot")
	e.env["HTTPS_PROXY"] = "http://bot:x@" + e.env["AIRLOCK_LISTEN"]
	e.env["https_proxy"] = ""
	return e
}

func runDoctor(t *testing.T, e *tenv) (result, doctorReport, map[string]checkResult) {
	t.Helper()
	devnull, err := os.Open(os.DevNull)
	must(t, err)
	defer devnull.Close()
	r := e.runWith(devnull, "doctor", "--json")
	var rep doctorReport
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatalf("doctor --json: %v\n%s", err, r)
	}
	byName := map[string]checkResult{}
	for _, c := range rep.Checks {
		if prev, ok := byName[c.Name]; !ok || prev.Status != statusBroken {
			byName[c.Name] = c
		}
		if c.Status != statusOK && c.Status != statusSkipped && c.Fix == "" {
			t.Errorf("check %s is %s without a fix", c.Name, c.Status)
		}
	}
	return r, rep, byName
}

func TestDoctor(t *testing.T) {
	t.Parallel()
	cases := map[string]struct {
		setup  func(t *testing.T, e *tenv)
		code   int
		check  string // the check that must have status
		status string
		detail string // substring of that check's detail
	}{
		"healthy": {
			code: exitOK, check: "vault", status: statusOK, detail: "opens",
		},
		"no home": {
			setup: func(t *testing.T, e *tenv) { must(t, os.RemoveAll(e.home)) },
			code:  exitFailure, check: "home", status: statusBroken, detail: "no airlock home",
		},

		"vault readable by others": {
			setup: func(t *testing.T, e *tenv) { must(t, os.Chmod(e.vaultPath(), 0o644)) },
			code:  exitFailure, check: "permissions", status: statusBroken, detail: "airlock.vault is 0644",
		},
		"agent key readable by others": {
			setup: func(t *testing.T, e *tenv) { must(t, os.Chmod(filepath.Join(e.home, "keys", "bot.key"), 0o640)) },
			code:  exitFailure, check: "permissions", status: statusBroken, detail: "bot.key is 0640",
		},
		"wrong passphrase": {
			setup: func(t *testing.T, e *tenv) { e.env["AIRLOCK_PASSPHRASE"] = "nope" },
			code:  exitFailure, check: "vault", status: statusBroken, detail: "wrong passphrase",
		},
		"tampered vault": {
			setup: func(t *testing.T, e *tenv) { flipByte(t, e.vaultPath(), 0.8) },
			code:  exitFailure, check: "vault", status: statusBroken, detail: "corrupt",
		},
		"vault is a directory": {
			setup: func(t *testing.T, e *tenv) {
				must(t, os.Remove(e.vaultPath()))
				must(t, os.Mkdir(e.vaultPath(), 0o700))
			},
			code: exitFailure, check: "vault", status: statusBroken, detail: "is a directory",
		},
		"no passphrase: vault skipped": {
			setup: func(t *testing.T, e *tenv) { delete(e.env, "AIRLOCK_PASSPHRASE") },
			code:  exitOK, check: "vault", status: statusSkipped, detail: "no passphrase",
		},
		"invalid policy": {
			setup: func(t *testing.T, e *tenv) {
				writeFile(t, filepath.Join(e.home, "policy.yaml"), "version: 1\nrules:\n  - name: x\n    hots: a.example\n")
			},
			code: exitFailure, check: "policy", status: statusBroken, detail: "policy.yaml:4:",
		},
		"missing policy": {
			setup: func(t *testing.T, e *tenv) { must(t, os.Remove(filepath.Join(e.home, "policy.yaml"))) },
			code:  exitFailure, check: "policy", status: statusBroken, detail: "no policy",
		},
		"CA expired": {
			setup: func(t *testing.T, e *tenv) {
				delete(e.env, "AIRLOCK_PASSPHRASE") // certificate alone: the key would not match
				writeCert(t, filepath.Join(e.home, "ca.pem"), time.Now().Add(-time.Hour))
			},
			code: exitFailure, check: "ca", status: statusBroken, detail: "expired",
		},
		"CA expires soon": {
			setup: func(t *testing.T, e *tenv) {
				delete(e.env, "AIRLOCK_PASSPHRASE")
				writeCert(t, filepath.Join(e.home, "ca.pem"), time.Now().Add(10*24*time.Hour))
			},
			code: exitOK, check: "ca", status: statusWarn, detail: "expires in",
		},
		"CA does not match the vault's key": {
			setup: func(t *testing.T, e *tenv) {
				writeCert(t, filepath.Join(e.home, "ca.pem"), time.Now().Add(time.Hour*24*365))
			},
			code: exitFailure, check: "ca", status: statusBroken, detail: "does not match",
		},
		"credential expired": {
			setup: func(t *testing.T, e *tenv) { setExpiry(t, e, "old/key", time.Now().Add(-time.Minute)) },
			code:  exitFailure, check: "credentials", status: statusBroken, detail: "expired: old/key",
		},
		"credential expiring": {
			setup: func(t *testing.T, e *tenv) { e.ok("v\n", "vault", "set", "soon/key", "--expires", "3d") },
			code:  exitOK, check: "credentials", status: statusWarn, detail: "soon/key",
		},
		"port taken by another program": {
			setup: func(t *testing.T, e *tenv) {
				l, err := net.Listen("tcp", "127.0.0.1:0")
				must(t, err)
				t.Cleanup(func() { l.Close() })
				go acceptAndClose(l)
				e.env["AIRLOCK_LISTEN"] = l.Addr().String()
			},
			code: exitFailure, check: "port", status: statusBroken, detail: "taken by another program",
		},
		"policy writable by others": {
			setup: func(t *testing.T, e *tenv) { must(t, os.Chmod(filepath.Join(e.home, "policy.yaml"), 0o666)) },
			code:  exitOK, check: "writable by others", status: statusWarn, detail: "policy.yaml is 0666",
		},
		"home readable by others": {
			setup: func(t *testing.T, e *tenv) { must(t, os.Chmod(e.home, 0o755)) },
			code:  exitFailure, check: "permissions", status: statusBroken, detail: "is 0755",
		},
		"same user note": {
			code: exitOK, check: "permissions", status: statusOK, detail: "can still read them",
		},
		"HTTPS_PROXY unset": {
			setup: func(t *testing.T, e *tenv) { e.env["HTTPS_PROXY"] = "" },
			code:  exitOK, check: "HTTPS_PROXY", status: statusWarn, detail: "not set",
		},
		"HTTPS_PROXY elsewhere": {
			setup: func(t *testing.T, e *tenv) { e.env["HTTPS_PROXY"] = "http://u:sekrit@proxy.example:3128" },
			code:  exitOK, check: "HTTPS_PROXY", status: statusWarn, detail: "points at http://u:xxxxx@proxy.example:3128",
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			e := doctorEnv(t)
			if tc.setup != nil {
				tc.setup(t, e)
			}
			r, rep, checks := runDoctor(t, e)
			if r.code != tc.code || rep.OK != (tc.code == exitOK) {
				t.Errorf("exit %d ok=%v, want %d\n%s", r.code, rep.OK, tc.code, r)
			}
			c, ok := checks[tc.check]
			if !ok || c.Status != tc.status || !strings.Contains(c.Detail, tc.detail) {
				t.Errorf("check %s = %+v, want status %s and detail containing %q\n%s", tc.check, c, tc.status, tc.detail, r)
			}
			if strings.Contains(r.stdout+r.stderr, "sekrit") {
				t.Errorf("doctor printed a proxy password\n%s", r)
			}
			if name == "healthy" {
				for _, c := range rep.Checks {
					if c.Status != statusOK && c.Name != "system trust" {
						t.Errorf("healthy home: %+v", c)
					}
				}
			}
		})
	}
}

// TestDoctorText checks the human report: a mark per check, a fix line
// under each problem, a hint, exit 1.
func TestDoctorText(t *testing.T) {
	t.Parallel()
	e := doctorEnv(t)
	must(t, os.Chmod(e.vaultPath(), 0o644))
	r := e.run("", "doctor")
	for _, want := range []string{"✗ permissions:", "fix: chmod 600 '" + e.vaultPath() + "'", "✓ vault: opens", "1 broken"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("stdout lacks %q\n%s", want, r)
		}
	}
	wantError(t, r, exitFailure, "doctor found 1 broken check")
}

// writeCert writes a self-signed CA certificate valid until notAfter.
func writeCert(t *testing.T, path string, notAfter time.Time) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	must(t, err)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: notAfter.Add(-365 * 24 * time.Hour), NotAfter: notAfter, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	must(t, err)
	writeFile(t, path, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})))
}

// setExpiry stores a credential expiring at when, bypassing the CLI's
// refusal of past dates.
func setExpiry(t *testing.T, e *tenv, path string, when time.Time) {
	t.Helper()
	v, err := vault.Open(e.vaultPath(), vault.Unlock{Passphrase: []byte(testPassphrase)})
	must(t, err)
	must(t, v.Update(func(d *vault.Data) error {
		d.SetCredential(&vault.Credential{Path: path, Value: vault.NewSecret([]byte("v")), ExpiresAt: when})
		return nil
	}))
}

func acceptAndClose(l net.Listener) {
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		c.Close()
	}
}

// TestDoctorAirlockServing: the port held by a running airlock is a
// warning, not a failure.
func TestDoctorAirlockServing(t *testing.T) {
	t.Parallel()
	e := doctorEnv(t)
	e.serve(t, newTestAPI(t))
	e.env["HTTPS_PROXY"] = "http://bot:x@" + e.env["AIRLOCK_LISTEN"]
	r, _, checks := runDoctor(t, e)
	if c := checks["port"]; r.code != exitOK || c.Status != statusWarn || !strings.Contains(c.Detail, "airlock is already serving") {
		t.Errorf("port check %+v\n%s", c, r)
	}
}
