package main

import (
	"bufio"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/airlock/airlock/policy"
)

// checkHome checks the home exists and nobody else can read it. It
// returns false when there is no home to check further.
func (d *doctor) checkHome() bool {
	const name = "home"
	fi, err := os.Stat(d.h.Dir())
	switch {
	case errors.Is(err, fs.ErrNotExist):
		d.add(name, statusBroken, "no airlock home at "+d.h.Dir(), "run `airlock init`, or point --home / AIRLOCK_HOME at your airlock home")
		return false
	case err != nil:
		d.add(name, statusBroken, err.Error(), "check the permissions of "+d.h.Dir())
		return false
	case !fi.IsDir():
		d.add(name, statusBroken, d.h.Dir()+" is not a directory", "point --home / AIRLOCK_HOME at your airlock home")
		return false
	}
	var problems, fixes []string
	tooOpen := func(path string, want fs.FileMode) {
		fi, err := os.Stat(path)
		if err != nil || fi.Mode().Perm()&0o077 == 0 {
			return
		}
		problems = append(problems, fmt.Sprintf("%s is %04o, want %04o", path, fi.Mode().Perm(), want))
		fixes = append(fixes, fmt.Sprintf("chmod %o %s", want, shQuote(path)))
	}
	tooOpen(d.h.Dir(), 0o700)
	tooOpen(d.h.VaultPath(), 0o600)
	tooOpen(d.h.KeysDir(), 0o700)
	keys, _ := filepath.Glob(filepath.Join(d.h.KeysDir(), "*.key"))
	for _, k := range keys {
		tooOpen(k, 0o600)
	}
	if len(problems) > 0 {
		d.add("permissions", statusBroken, strings.Join(problems, "; "), strings.Join(fixes, " && "))
	} else {
		d.add("permissions", statusOK, "home 0700, vault and agent keys 0600 (agents running as "+currentUser()+
			" can still read them: run agents as another user, in a container, or under `airlock run --isolate`)", "")
	}
	d.checkWritable()
	return true
}

// checkWritable warns when another user can change what serve hot-reloads
// or what agents trust: policy.yaml, ca.pem, ca-bundle.pem, wgetrc.
func (d *doctor) checkWritable() {
	var problems, fixes []string
	for _, path := range []string{d.h.PolicyPath(), d.h.CAPath(), d.h.BundlePath(), d.h.WgetrcPath()} {
		fi, err := os.Stat(path)
		if err != nil || fi.Mode().Perm()&0o022 == 0 {
			continue
		}
		problems = append(problems, fmt.Sprintf("%s is %04o: other users can change it", path, fi.Mode().Perm()))
		fixes = append(fixes, "chmod go-w "+shQuote(path))
	}
	if len(problems) > 0 {
		d.add("writable by others", statusWarn, strings.Join(problems, "; ")+" (serve reloads policy.yaml on change)", strings.Join(fixes, " && "))
	}
}

// currentUser names the user running airlock, for messages.
func currentUser() string {
	if u := os.Getenv("USER"); u != "" {
		return u
	}
	return fmt.Sprintf("uid %d", os.Getuid())
}

func (d *doctor) checkPolicy() {
	const name = "policy"
	path := d.h.PolicyPath()
	if _, err := os.Stat(path); err != nil {
		d.add(name, statusBroken, fmt.Sprintf("no policy at %s", path), "copy policy.example.yaml there, or start a new home with `airlock init`")
		return
	}
	p, err := policy.Load(path)
	if err != nil {
		var lines []string
		for _, e := range policyErrors(err) {
			lines = append(lines, fmt.Sprintf("%s:%d:%d: %s", e.File, e.Line, e.Column, e.Msg))
		}
		if len(lines) == 0 {
			lines = []string{err.Error()}
		}
		d.add(name, statusBroken, strings.Join(lines, "; "), "fix those lines, then `airlock policy check` re-checks the file")
		return
	}
	d.add(name, statusOK, fmt.Sprintf("%s valid (%d rules)", path, len(p.Rules)), "")
	printLint(p, lintInventory(d.h, d.vault))
}

// checkCA checks the CA certificate's validity period and whether the
// system store trusts it.
func (d *doctor) checkCA() {
	const name = "ca"
	cert, err := d.caCert()
	if err != nil {
		d.add(name, statusBroken, err.Error(), hintOf(err))
		return
	}
	left := cert.NotAfter.Sub(d.now)
	switch {
	case left <= 0:
		d.add(name, statusBroken, "the CA certificate expired on "+cert.NotAfter.Format(time.DateOnly),
			"start a new home with `airlock init` (agents must then trust the new ca.pem)")
	case left < caWarnBefore:
		d.add(name, statusWarn, fmt.Sprintf("the CA certificate expires in %d day(s), on %s", int(left.Hours()/24), cert.NotAfter.Format(time.DateOnly)),
			"plan a new home with `airlock init` before then; agents must trust the new ca.pem")
	default:
		d.add(name, statusOK, "valid until "+cert.NotAfter.Format(time.DateOnly), "")
	}
	d.checkSystemTrust(cert)
}

// caCert loads the CA: with its key when the vault is open (a mismatch is
// an error), else the certificate alone.
func (d *doctor) caCert() (*x509.Certificate, error) {
	if d.vault != nil {
		ca, err := loadCA(d.h, d.vault)
		if err != nil {
			return nil, err
		}
		return ca.Cert, nil
	}
	b, err := os.ReadFile(d.h.CAPath())
	if err != nil {
		return nil, withHint(fmt.Errorf("read CA certificate: %w", err), "restore ca.pem from a backup, or start a new home with `airlock init`")
	}
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "CERTIFICATE" {
		return nil, withHint(fmt.Errorf("%s holds no PEM certificate", d.h.CAPath()), "restore ca.pem from a backup")
	}
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		return nil, withHint(fmt.Errorf("parse %s: %w", d.h.CAPath(), err), "restore ca.pem from a backup")
	}
	return c, nil
}

func (d *doctor) checkSystemTrust(cert *x509.Certificate) {
	const name = "system trust"
	pool, err := x509.SystemCertPool()
	if err == nil {
		_, err = cert.Verify(x509.VerifyOptions{Roots: pool, CurrentTime: d.now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
	}
	if err != nil {
		d.add(name, statusWarn, "the system certificate store does not trust airlock's CA",
			"`airlock run` and `airlock env` point agents at the CA; for every program, `airlock ca install` prints the steps")
		return
	}
	d.add(name, statusOK, "the system certificate store trusts airlock's CA", "")
}

func (d *doctor) checkCredentials() {
	const name = "credentials"
	if d.vault == nil {
		d.add(name, statusSkipped, "the vault was not opened", "")
		return
	}
	var expired, soon []string
	s := d.vault.Snapshot()
	for _, path := range s.CredentialPaths() {
		c := s.Credentials[path]
		switch {
		case c.Expired(d.now):
			expired = append(expired, path)
		case !c.ExpiresAt.IsZero() && c.ExpiresAt.Sub(d.now) < credWarnBefore:
			soon = append(soon, fmt.Sprintf("%s (%s)", path, c.ExpiresAt.UTC().Format(time.RFC3339)))
		}
	}
	const fix = "store a fresh value: `airlock vault set PATH --expires 90d` (value on stdin)"
	switch {
	case len(expired) > 0:
		d.add(name, statusBroken, "expired: "+strings.Join(expired, ", "), fix)
	case len(soon) > 0:
		d.add(name, statusWarn, "expiring within 7 days: "+strings.Join(soon, ", "), fix)
	default:
		d.add(name, statusOK, fmt.Sprintf("%d credential(s), none expiring within 7 days", len(s.Credentials)), "")
	}
	if len(expired) > 0 && len(soon) > 0 {
		d.add(name, statusWarn, "expiring within 7 days: "+strings.Join(soon, ", "), fix)
	}
}

// checkPort checks the proxy address is free, or held by an airlock.
func (d *doctor) checkPort() {
	const name = "port"
	addr := defaultListen()
	l, err := net.Listen("tcp", addr)
	if err == nil {
		_ = l.Close()
		d.add(name, statusOK, addr+" is free for `airlock serve`", "")
		return
	}
	if probeAirlock(addr) {
		d.add(name, statusWarn, "airlock is already serving on "+addr,
			"nothing to do if that is yours; stop it before starting another `airlock serve`")
		return
	}
	d.add(name, statusBroken, fmt.Sprintf("%s is taken by another program", addr),
		"stop that program, or use another address: `airlock serve --listen ADDR` with AIRLOCK_LISTEN=ADDR for the agents")
}

// probeAirlock sends an unauthenticated CONNECT to addr: airlock answers
// 407 with an X-Airlock-Error header.
func probeAirlock(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return false
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(3 * time.Second))
	if _, err := fmt.Fprint(c, "CONNECT airlock-doctor.invalid:443 HTTP/1.1\r\nHost: airlock-doctor.invalid:443\r\n\r\n"); err != nil {
		return false
	}
	req, _ := http.NewRequest(http.MethodConnect, "http://airlock-doctor.invalid:443", nil)
	resp, err := http.ReadResponse(bufio.NewReader(c), req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusProxyAuthRequired && resp.Header.Get("X-Airlock-Error") != ""
}

// checkShellProxy looks at HTTPS_PROXY of the shell doctor runs in.
func (d *doctor) checkShellProxy() {
	const name = "HTTPS_PROXY"
	raw := os.Getenv("HTTPS_PROXY")
	if raw == "" {
		raw = os.Getenv("https_proxy")
	}
	fix := "run `eval \"$(airlock env --agent NAME)\"` in this shell, or start agents with `airlock run --agent NAME -- CMD`"
	if raw == "" {
		d.add(name, statusWarn, "not set in this shell: programs started here bypass airlock", fix)
		return
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		d.add(name, statusWarn, "set but not a URL", fix)
		return
	}
	if !sameAddr(u.Host, defaultListen()) {
		d.add(name, statusWarn, fmt.Sprintf("points at %s, airlock listens on %s", u.Redacted(), defaultListen()), fix)
		return
	}
	if u.User == nil {
		d.add(name, statusWarn, "points at airlock without an agent name and token", fix)
		return
	}
	d.add(name, statusOK, "points at airlock as agent "+u.User.Username(), "")
}

// sameAddr compares host:port addresses, taking every loopback name as
// equal.
func sameAddr(a, b string) bool {
	ah, ap, err1 := net.SplitHostPort(a)
	bh, bp, err2 := net.SplitHostPort(b)
	if err1 != nil || err2 != nil {
		return a == b
	}
	return ap == bp && (ah == bh || (isLoopback(ah) && isLoopback(bh)))
}

func isLoopback(h string) bool {
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}
