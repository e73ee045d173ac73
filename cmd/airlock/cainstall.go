package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
)

// debianCADir is where update-ca-certificates picks up local CAs.
const debianCADir = "/usr/local/share/ca-certificates"

// errNoSystemInstall: --system on an OS where airlock does not know the
// steps.
var errNoSystemInstall = errors.New("ca install --system supports Debian/Ubuntu and macOS only")

// caInstallSteps is the per-OS guide; %[1]s is the CA file, %[2]s the home.
const caInstallSteps = `# airlock's local CA: %[1]s
# Agents started with 'airlock run' or 'eval "$(airlock env)"' already trust it
# (SSL_CERT_FILE, REQUESTS_CA_BUNDLE, NODE_EXTRA_CA_CERTS, ...). To make every
# program on this machine trust it:

# Debian / Ubuntu (or: sudo airlock ca install --system)
sudo cp %[1]s /usr/local/share/ca-certificates/airlock.crt
sudo update-ca-certificates

# Fedora / RHEL
sudo cp %[1]s /etc/pki/ca-trust/source/anchors/airlock.pem
sudo update-ca-trust

# macOS (or: sudo airlock ca install --system)
sudo security add-trusted-cert -d -r trustRoot -k /Library/Keychains/System.keychain %[1]s

# Firefox and Chrome on Linux keep their own NSS store (certutil from libnss3-tools):
certutil -d sql:$HOME/.pki/nssdb -A -t C,, -n airlock -i %[1]s
# (Firefox: Settings > Privacy & Security > Certificates > Import, or set
#  security.enterprise_roots.enabled to true to use the system store.)

# Java keeps its own trust store:
keytool -importcert -noprompt -alias airlock -file %[1]s -keystore %[2]s/truststore.p12 -storetype PKCS12 -storepass changeit
export JAVA_TOOL_OPTIONS="-Djavax.net.ssl.trustStore=%[2]s/truststore.p12 -Djavax.net.ssl.trustStorePassword=changeit"

# Check with: airlock doctor
`

func caInstallCmd(g *globals, fs *flagSet) runFunc {
	system := fs.Bool("system", false, "add the CA to the system store now (Debian/Ubuntu, macOS; needs root)")
	return func(args []string) error {
		ca := g.home.CAPath()
		if _, err := os.Stat(ca); err != nil {
			return withHint(fmt.Errorf("read CA certificate: %w", err), "run `airlock init` first, or point --home / AIRLOCK_HOME at your airlock home")
		}
		if !*system {
			_, err := fmt.Fprintf(Stdout, caInstallSteps, shQuote(ca), shQuote(g.home.Dir()))
			return err
		}
		steps, err := systemInstallSteps(runtime.GOOS, ca, dirExists(debianCADir))
		if err != nil {
			return err
		}
		for _, argv := range steps {
			fmt.Fprintf(Stderr, "airlock: running %s\n", strings.Join(argv, " "))
			if err := runStep(argv); err != nil {
				return err
			}
		}
		fmt.Fprintln(Stderr, "airlock: done; `airlock doctor` checks the system store now trusts the CA")
		return nil
	}
}

// systemInstallSteps returns the commands that add ca to the system store
// of goos, or errNoSystemInstall with a hint.
func systemInstallSteps(goos, ca string, debian bool) ([][]string, error) {
	switch {
	case goos == "darwin":
		return [][]string{{"security", "add-trusted-cert", "-d", "-r", "trustRoot", "-k", "/Library/Keychains/System.keychain", ca}}, nil
	case goos == "linux" && debian:
		return [][]string{{"cp", ca, debianCADir + "/airlock.crt"}, {"update-ca-certificates"}}, nil
	}
	return nil, withHint(fmt.Errorf("%w (this is %s)", errNoSystemInstall, goos),
		"run `airlock ca install` without --system and follow the steps for your system")
}

func runStep(argv []string) error {
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = Stderr, Stderr
	if err := cmd.Run(); err != nil {
		hint := "check the output above"
		if os.Geteuid() != 0 {
			hint = "this needs root: run it again with sudo"
		}
		return withHint(fmt.Errorf("%s: %w", argv[0], err), hint)
	}
	return nil
}

func dirExists(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.IsDir()
}
