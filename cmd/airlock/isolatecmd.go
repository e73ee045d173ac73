package main

// `airlock run --isolate` and the doctor's isolation check. The command
// table is not edited here; see registerIsolate's doc for the wiring.

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/airlock/airlock/cmd/internal/isolate"
)

const usageRunIsolate = "airlock run --isolate [--agent NAME] [--ttl D] -- CMD [ARGS...]"

// defaultRunTTL bounds a run credential when --ttl is not given.
const defaultRunTTL = 12 * time.Hour

// init turns the re-executed binary into the namespace init before main
// runs; it returns at once in every other process.
func init() { isolate.MaybeInit() }

// runIsolateFlags are the flags `run` gains for isolation.
type runIsolateFlags struct {
	isolate *bool
	ttl     *time.Duration
}

// addRunIsolateFlags registers --isolate and --ttl on run's flag set.
//
// Wiring (cmdRun in envcmd.go): after `agent := fs.String(...)` add
// `iso := addRunIsolateFlags(fs)`, and after the argument checks
// `if *iso.isolate { return runIsolated(g, *agent, *iso.ttl, fs.Args()) }`.
// Then add `d.checkIsolation()` to doctor.run.
func addRunIsolateFlags(fs *flagSet) runIsolateFlags {
	return runIsolateFlags{
		isolate: fs.Bool("isolate", false, "run CMD in its own namespaces where airlock is the only way out (Linux; see airlock doctor)"),
		ttl:     fs.Duration("ttl", defaultRunTTL, "lifetime of the run's credential (with --isolate)"),
	}
}

// runCredential issues the run's identity: a fresh token registered in the
// vault with the run's TTL (runcred.go); tests swap it.
var runCredential isolate.RunCredential = vaultRunCredential{}

// runIsolated runs argv isolated: every TCP connection goes to the proxy
// at defaultListen() as a CONNECT with the run's credential.
func runIsolated(g *globals, agent string, ttl time.Duration, argv []string) error {
	if _, err := isolate.Available(isolate.ModeAuto); err != nil {
		return isolateHint(err)
	}
	name, err := pickAgent(g.home, agent)
	if err != nil {
		return err
	}
	if err := checkProxyUp(defaultListen()); err != nil { // before a run token is written (runcmd.go)
		return err
	}
	creds := runCredential
	if vc, ok := creds.(vaultRunCredential); ok {
		vc.h, vc.proxyAddr = g.home, defaultListen()
		creds = vc
	}
	ctx := context.Background()
	cred, err := creds.Issue(ctx, name, ttl)
	if err != nil {
		return withHint(fmt.Errorf("issue a run credential for %s: %w", name, err), "check `airlock agent list`")
	}
	defer func() {
		if err := creds.Revoke(context.Background(), cred); err != nil {
			fmt.Fprintf(Stderr, "airlock: error: revoke the run credential: %v\n", err)
		}
	}()
	opts, err := isolateOptions(g.home, cred, argv)
	if err != nil {
		return err
	}
	handler, proxyHandler, closeHandoff := isolate.Handoff(handoffPath(g.home), opts.ProxyAddr, cred, nil)
	defer closeHandoff()
	opts.Handler, opts.ProxyHandler = handler, proxyHandler
	// From here on this process only relays: a connection's accept, peek
	// and hand-off, DNS answers. With one P its goroutines wake each other
	// without cross-thread handoffs and idle Ps spinning (measured: about
	// half of the run's CPU per new connection went to the scheduler).
	runtime.GOMAXPROCS(1)
	code, err := isolate.Run(ctx, opts)
	if err != nil {
		return isolateHint(err)
	}
	if code != 0 {
		return &exitCodeError{code: code}
	}
	return nil
}

// isolateOptions builds the run: the home hidden, the CA files written
// back, proxy variables naming airlock's end of the veth.
func isolateOptions(h home, cred isolate.Credential, argv []string) (isolate.Options, error) {
	proxyAddr := defaultListen()
	_, portStr, err := net.SplitHostPort(proxyAddr)
	if err != nil {
		return isolate.Options{}, withHint(fmt.Errorf("proxy address %q: %w", proxyAddr, err), "set AIRLOCK_LISTEN to HOST:PORT")
	}
	port, _ := strconv.Atoi(portStr)
	probe, err := net.DialTimeout("tcp", proxyAddr, 2*time.Second)
	if err != nil {
		return isolate.Options{}, withHint(fmt.Errorf("no airlock proxy at %s: %w", proxyAddr, err), "start `airlock serve` first (or set AIRLOCK_LISTEN to where it listens)")
	}
	probe.Close()
	files := map[string][]byte{}
	if _, err := ensureWgetrc(h); err != nil { // wget trusts the CA only through it
		return isolate.Options{}, err
	}
	for _, p := range []string{h.BundlePath(), h.CAPath(), h.WgetrcPath()} {
		b, err := os.ReadFile(p)
		if err != nil {
			return isolate.Options{}, withHint(fmt.Errorf("read %s: %w", p, err), "run `airlock init` first")
		}
		files[p] = b
	}
	vars, err := agentEnv(h, cred.Agent)
	if err != nil {
		return isolate.Options{}, err
	}
	env := func(n isolate.Network) []string {
		inside := (&url.URL{Scheme: "http", User: url.UserPassword(cred.Agent, cred.Token),
			Host: net.JoinHostPort(n.Host.String(), portStr)}).String()
		set := map[string]bool{}
		for _, v := range vars {
			set[v.Key] = true
		}
		var out []string
		for _, kv := range os.Environ() {
			k, _, _ := strings.Cut(kv, "=")
			// AIRLOCK_PASSPHRASE and friends never enter the namespace.
			if !set[k] && !strings.HasPrefix(k, "AIRLOCK_") {
				out = append(out, kv)
			}
		}
		for _, v := range vars {
			if strings.HasSuffix(strings.ToLower(v.Key), "_proxy") && !strings.HasPrefix(strings.ToLower(v.Key), "no_") {
				v.Value = inside
			}
			out = append(out, v.Key+"="+v.Value)
		}
		return out
	}
	return isolate.Options{Argv: argv, Env: env, Hide: []string{h.Dir()}, Files: files, Agent: cred.Agent,
		Handler: isolate.ForwardCONNECT(proxyAddr, cred, nil), ProxyAddr: proxyAddr, ProxyPort: uint16(port),
		Stdin: os.Stdin, Stdout: fileOr(Stdout, os.Stdout), Stderr: fileOr(Stderr, os.Stderr)}, nil
}

func fileOr(w any, def *os.File) *os.File {
	if f, ok := w.(*os.File); ok {
		return f
	}
	return def
}

// isolateHint adds what to do next.
func isolateHint(err error) error {
	switch {
	case errors.Is(err, isolate.ErrNotRoot):
		return withHint(err, "run `sudo airlock run --isolate ...`; `airlock doctor` shows which isolation modes this machine supports")
	case errors.Is(err, isolate.ErrMissingTool):
		return withHint(err, "install nftables, iproute2 and util-linux (apt install nftables iproute2 util-linux)")
	case errors.Is(err, isolate.ErrUnsupportedOS):
		return withHint(err, hintUnsupportedOS)
	case errors.Is(err, isolate.ErrNoUserNS):
		return withHint(err, "run as root (`sudo airlock run --isolate ...`), or enable unprivileged user namespaces (sysctl kernel.unprivileged_userns_clone=1)")
	}
	return withHint(err, "`airlock doctor` checks isolation support; the README's \"Isolated agents\" section lists what each mode needs")
}

// hintUnsupportedOS is what to do where isolation cannot run (macOS).
const hintUnsupportedOS = "run the agent with `airlock run --agent NAME -- CMD` (the proxy variables) here, or with --isolate on a Linux machine or VM"

// isolationSupport reports which isolation modes this machine supports,
// as a doctor line: status, detail, fix.
func isolationSupport() (status, detail, fix string) {
	root, user := isolate.Supported(), isolate.UserSupported()
	if errors.Is(root, isolate.ErrUnsupportedOS) {
		return statusWarn, root.Error(), hintUnsupportedOS
	}
	describe := func(err error) string {
		if err == nil {
			return "available"
		}
		return "unavailable: " + err.Error()
	}
	detail = "root mode " + describe(root) + "; unprivileged mode " + describe(user)
	switch {
	case user == nil || (root == nil && os.Geteuid() == 0):
		return statusOK, detail, ""
	case root == nil || errors.Is(root, isolate.ErrNotRoot):
		return statusWarn, detail, "run `sudo airlock run --isolate -- CMD`, or enable unprivileged user namespaces (sysctl kernel.unprivileged_userns_clone=1)"
	}
	return statusWarn, detail, "install nftables, iproute2 and util-linux"
}

// checkIsolation adds the isolation line to the doctor's report.
func (d *doctor) checkIsolation() {
	status, detail, fix := isolationSupport()
	d.add("isolation", status, detail, fix)
}
