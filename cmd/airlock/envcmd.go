package main

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/airlock/airlock/vault"
)

// envVar is one variable airlock sets for an agent.
type envVar struct{ Key, Value string }

// agentEnv computes the variables that route an agent through airlock and
// make it trust airlock's CA. The token is rebuilt from keys/NAME.key; no
// vault unlock is needed.
func agentEnv(h home, agent string) ([]envVar, error) {
	name, err := pickAgent(h, agent)
	if err != nil {
		return nil, err
	}
	seed, err := readAgentSeed(h, name)
	if err != nil {
		return nil, err
	}
	proxy := proxyURL(name, vault.ProxyToken(seed))
	const noProxy = "localhost,127.0.0.1,::1"
	bundle, ca := h.BundlePath(), h.CAPath()
	vars := []envVar{
		{"HTTPS_PROXY", proxy}, {"https_proxy", proxy},
		{"HTTP_PROXY", proxy}, {"http_proxy", proxy},
		{"NO_PROXY", noProxy}, {"no_proxy", noProxy},
		{"SSL_CERT_FILE", bundle}, {"CURL_CA_BUNDLE", bundle},
		{"REQUESTS_CA_BUNDLE", bundle}, {"GIT_SSL_CAINFO", bundle},
		{"AWS_CA_BUNDLE", bundle},
		{"NODE_EXTRA_CA_CERTS", ca}, {"NODE_USE_ENV_PROXY", "1"},
	}
	if wgetrc, err := ensureWgetrc(h); err == nil { // a read-only home: no WGETRC, the rest still works
		vars = append(vars, envVar{"WGETRC", wgetrc})
	}
	return vars, nil
}

// ensureWgetrc writes the home's wgetrc: GNU wget reads no CA variable,
// only ca_certificate= in the file WGETRC names (which replaces
// ~/.wgetrc; copy your own settings into it if you have any).
func ensureWgetrc(h home) (string, error) {
	path := h.WgetrcPath()
	want := []byte("# written by airlock: wget trusts airlock's CA (plus the system roots)\nca_certificate = " + h.BundlePath() + "\n")
	if got, err := os.ReadFile(path); err == nil && string(got) == string(want) {
		return path, nil
	}
	if err := vault.WriteFile(path, want, 0o644); err != nil {
		return "", withHint(err, "check that "+h.Dir()+" is writable")
	}
	return path, nil
}

// pickAgent returns name, or the only agent with a key file.
func pickAgent(h home, name string) (string, error) {
	if name != "" {
		return name, checkAgentName(name)
	}
	files, _ := filepath.Glob(filepath.Join(h.KeysDir(), "*.key"))
	var names []string
	for _, f := range files {
		n := strings.TrimSuffix(filepath.Base(f), ".key")
		if agentNameRE.MatchString(n) {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	switch len(names) {
	case 1:
		return names[0], nil
	case 0:
		return "", withHint(fmt.Errorf("no agent key files in %s", h.KeysDir()), "`airlock agent add NAME` creates an agent")
	}
	return "", withHint(usageErrorf("several agents: %s", strings.Join(names, ", ")), "pass --agent NAME")
}

func envCmd(g *globals, fs *flagSet) runFunc {
	agent := fs.String("agent", "", "agent `NAME` (default: the only agent)")
	shell := fs.String("shell", "sh", "output syntax: `sh|fish`")
	return func(args []string) error {
		if *shell != "sh" && *shell != "fish" {
			return usageErrorf("--shell %q: want sh or fish", *shell)
		}
		vars, err := agentEnv(g.home, *agent)
		if err != nil {
			return err
		}
		var b strings.Builder
		for _, v := range vars {
			if *shell == "fish" {
				fmt.Fprintf(&b, "set -gx %s %s;\n", v.Key, fishQuote(v.Value))
			} else {
				fmt.Fprintf(&b, "export %s=%s\n", v.Key, shQuote(v.Value))
			}
		}
		b.WriteString(envNotes(g.home))
		_, err = fmt.Fprint(Stdout, b.String())
		return err
	}
}

// envNotes are comment lines (valid in sh and fish) for the runtimes that
// no variable above configures on its own.
func envNotes(h home) string {
	return `# curl, git, Python (requests, httpx, urllib), the AWS CLI and Go programs use the
# variables above (Go reads SSL_CERT_FILE on Linux and BSD); wget reads WGETRC.
# Node: NODE_EXTRA_CA_CERTS works everywhere; fetch honours HTTPS_PROXY only on
# Node >= 24 or 22.21 with NODE_USE_ENV_PROXY=1; older Node needs undici's
# EnvHttpProxyAgent (see examples/agents/agent.mjs).
# Java ignores these variables: import the CA into a trust store, then
#   JAVA_TOOL_OPTIONS="-Djavax.net.ssl.trustStore=` + h.Dir() + `/truststore.p12 -Djavax.net.ssl.trustStorePassword=changeit"
# (` + "`airlock ca install`" + ` prints the keytool command).
`
}

// shQuote quotes s for POSIX shells.
func shQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// fishQuote quotes s for fish.
func fishQuote(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + "'"
}
