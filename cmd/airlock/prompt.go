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

// errNoPassphrase: nothing can unlock the vault and no terminal can ask.
var errNoPassphrase = withHint(noPassphraseError{},
	"set AIRLOCK_PASSPHRASE or AIRLOCK_KEY_FILE, pass --passphrase-file, or run in a terminal")

// noPassphraseError is vault.ErrNoUnlock said once, in the user's words.
type noPassphraseError struct{}

func (noPassphraseError) Error() string { return "the vault is locked and no passphrase was given" }
func (noPassphraseError) Unwrap() error { return vault.ErrNoUnlock }

// passphraseTries is how often a person at a terminal may retype a wrong
// vault passphrase.
const passphraseTries = 3

// minPassphraseLen: shorter new passphrases get a warning (not a refusal).
const minPassphraseLen = 12

// isTerminal reports whether s (Stdin, Stderr) is a terminal.
func isTerminal(s any) bool {
	f, ok := s.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// openTTY returns the terminal to prompt on: stdin when it is one, else
// the controlling terminal /dev/tty (as ssh and gpg do, so
// `printf KEY | airlock vault set P` can still ask for the passphrase).
// Prompts go to w. ok is false without any terminal.
func openTTY() (in *os.File, w io.Writer, done func(), ok bool) {
	if f, isFile := Stdin.(*os.File); isFile && term.IsTerminal(int(f.Fd())) {
		return f, Stderr, func() {}, true
	}
	t, err := os.OpenFile("/dev/tty", os.O_RDWR, 0)
	if err != nil {
		return nil, nil, nil, false
	}
	if !term.IsTerminal(int(t.Fd())) {
		t.Close()
		return nil, nil, nil, false
	}
	return t, t, func() { t.Close() }, true
}

// canPrompt reports whether a passphrase prompt is possible.
func canPrompt() bool {
	_, _, done, ok := openTTY()
	if ok {
		done()
	}
	return ok
}

// readHidden prompts on the terminal and reads a line without echo.
func readHidden(prompt string) ([]byte, error) {
	in, w, done, ok := openTTY()
	if !ok {
		return nil, errors.New("no terminal to prompt on")
	}
	defer done()
	fmt.Fprint(w, prompt)
	b, err := term.ReadPassword(int(in.Fd()))
	fmt.Fprintln(w)
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

// warnShortPassphrase warns (never refuses) about a short new passphrase.
func warnShortPassphrase(p []byte) {
	if len(p) < minPassphraseLen {
		fmt.Fprintf(Stderr, "airlock: warning: the passphrase is shorter than %d characters; anyone who gets a copy of the vault file can try to guess it offline\n", minPassphraseLen)
	}
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
// AIRLOCK_PASSPHRASE or a prompt on the terminal; confirm asks twice
// (init). ok is false when none is available and no terminal can ask;
// prompted says a person typed it (a wrong one may be retyped).
func (h home) passphrase(confirm bool) (p []byte, ok, prompted bool, err error) {
	switch {
	case h.passphraseFile != "":
		p, err = readSecretFile(h.passphraseFile, "passphrase")
		return p, err == nil, false, err
	case envPassphrase() != nil:
		return envPassphrase(), true, false, nil
	case !canPrompt():
		return nil, false, false, nil
	case confirm:
		p, err = promptTwice("new vault passphrase")
	default:
		p, err = readHidden("vault passphrase: ")
	}
	if err == nil && len(p) == 0 {
		err = withHint(errors.New("empty passphrase"), "type a passphrase, or set AIRLOCK_PASSPHRASE")
	}
	return p, err == nil, true, err
}

// unlock says how to open the vault: passphrase and/or AIRLOCK_KEY_FILE.
func (h home) unlock() (u vault.Unlock, prompted bool, err error) {
	u = vault.Unlock{KeyFile: os.Getenv("AIRLOCK_KEY_FILE")}
	if u.KeyFile != "" && h.passphraseFile == "" && envPassphrase() == nil {
		return u, false, nil // unattended: never prompt
	}
	p, ok, prompted, err := h.passphrase(false)
	if err != nil {
		return u, false, err
	}
	if !ok {
		return u, false, errNoPassphrase
	}
	u.Passphrase = p
	return u, prompted, nil
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
