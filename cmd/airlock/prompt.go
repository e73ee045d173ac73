package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/term"

	"github.com/airlock/airlock/vault"
)

// maxValueBytes bounds a credential value read from stdin.
const maxValueBytes = 1 << 20

var errNoPassphrase = withHint(fmt.Errorf("no passphrase given: %w", vault.ErrNoUnlock),
	"set AIRLOCK_PASSPHRASE or AIRLOCK_KEY_FILE, pass --passphrase-file, or run in a terminal")

// isTerminal reports whether r is a terminal (prompts are possible).
func isTerminal(r io.Reader) bool {
	f, ok := r.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// readHidden prompts on stderr and reads a line without echo.
func readHidden(prompt string) ([]byte, error) {
	f, ok := Stdin.(*os.File)
	if !ok {
		return nil, errors.New("stdin is not a terminal")
	}
	fmt.Fprint(Stderr, prompt)
	b, err := term.ReadPassword(int(f.Fd()))
	fmt.Fprintln(Stderr)
	if err != nil {
		return nil, fmt.Errorf("read from terminal: %w", err)
	}
	return b, nil
}

// promptTwice asks for a new secret twice and requires both to match.
func promptTwice(what string) ([]byte, error) {
	a, err := readHidden(what + ": ")
	if err != nil {
		return nil, err
	}
	b, err := readHidden("again: ")
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(a, b) {
		return nil, withHint(errors.New("the two entries do not match"), "run the command again and type the same text twice")
	}
	return a, nil
}

// stripNewline removes exactly one trailing "\n" or "\r\n".
func stripNewline(b []byte) []byte {
	if bytes.HasSuffix(b, []byte("\r\n")) {
		return b[:len(b)-2]
	}
	return bytes.TrimSuffix(b, []byte("\n"))
}

// readSecretFile reads a passphrase file; one trailing newline is dropped.
func readSecretFile(path, what string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, withHint(fmt.Errorf("read %s file: %w", what, err), "check the path given to the --"+what+"-file flag")
	}
	b = stripNewline(b)
	if len(b) == 0 {
		return nil, withHint(fmt.Errorf("%s file %s is empty", what, path), "write the "+what+" into the file")
	}
	return b, nil
}

// passphrase returns the vault passphrase from --passphrase-file,
// AIRLOCK_PASSPHRASE or a prompt; confirm asks twice (init). ok is false
// when none is available and no terminal can ask.
func (g *globals) passphrase(confirm bool) (p []byte, ok bool, err error) {
	switch {
	case g.passphraseFile != "":
		p, err = readSecretFile(g.passphraseFile, "passphrase")
		return p, err == nil, err
	case os.Getenv("AIRLOCK_PASSPHRASE") != "":
		return []byte(os.Getenv("AIRLOCK_PASSPHRASE")), true, nil
	case !isTerminal(Stdin):
		return nil, false, nil
	case confirm:
		p, err = promptTwice("new vault passphrase")
	default:
		p, err = readHidden("vault passphrase: ")
	}
	if err == nil && len(p) == 0 {
		err = withHint(errors.New("empty passphrase"), "type a passphrase, or set AIRLOCK_PASSPHRASE")
	}
	return p, err == nil, err
}

// unlock says how to open the vault: passphrase and/or AIRLOCK_KEY_FILE.
func (g *globals) unlock() (vault.Unlock, error) {
	u := vault.Unlock{KeyFile: os.Getenv("AIRLOCK_KEY_FILE")}
	if u.KeyFile != "" && g.passphraseFile == "" && os.Getenv("AIRLOCK_PASSPHRASE") == "" {
		return u, nil // unattended: never prompt
	}
	p, ok, err := g.passphrase(false)
	if err != nil {
		return u, err
	}
	if !ok {
		return u, errNoPassphrase
	}
	u.Passphrase = p
	return u, nil
}

// readValue reads a credential value: stdin when it is not a terminal
// (one trailing newline stripped), else a no-echo prompt. Empty is refused.
func readValue(prompt string) ([]byte, error) {
	var b []byte
	var err error
	if isTerminal(Stdin) {
		b, err = readHidden(prompt)
	} else {
		b, err = io.ReadAll(io.LimitReader(Stdin, maxValueBytes+1))
		if err == nil && len(b) > maxValueBytes {
			return nil, withHint(fmt.Errorf("value is longer than %d bytes", maxValueBytes), "store large files elsewhere; the vault holds credentials")
		}
		b = stripNewline(b)
	}
	if err != nil {
		return nil, fmt.Errorf("read value: %w", err)
	}
	if len(b) == 0 {
		return nil, withHint(errors.New("empty value"), "pipe the value on stdin, e.g. `printf %s \"$KEY\" | airlock vault set PATH`")
	}
	return b, nil
}

// confirm asks a yes/no question on a terminal; without a terminal the
// answer is yes (scripts pass --yes or run non-interactively).
func confirm(question string) (bool, error) {
	if !isTerminal(Stdin) {
		return true, nil
	}
	fmt.Fprintf(Stderr, "%s [y/N] ", question)
	line, err := bufio.NewReader(Stdin).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return false, fmt.Errorf("read answer: %w", err)
	}
	ans := strings.ToLower(strings.TrimSpace(line))
	return ans == "y" || ans == "yes", nil
}
