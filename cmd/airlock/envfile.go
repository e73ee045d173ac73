package main

import (
	"bytes"
	"errors"
	"fmt"
	"regexp"
	"strings"
)

// envKeyRE is a portable environment variable name.
var envKeyRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// envEntry is one KEY=VALUE line of a .env file.
type envEntry struct {
	Key   string
	Value string
	Line  int
}

// envLineError is a malformed .env line. It never holds the line's text:
// that may be a secret.
type envLineError struct {
	Line int
	Msg  string
}

func (e *envLineError) Error() string { return fmt.Sprintf("line %d: %s", e.Line, e.Msg) }

// parseEnvFile parses .env text: KEY=VALUE lines, blank lines and
// #-comments skipped, an optional "export " prefix, values in single quotes
// (literal) or double quotes (\n \r \t \" \\ escapes) unquoted, unquoted
// values trimmed and cut at " #". The first malformed line is an
// *envLineError; nothing is returned with it.
func parseEnvFile(data []byte) ([]envEntry, error) {
	var out []envEntry
	lines := bytes.Split(data, []byte("\n"))
	for i, raw := range lines {
		n := i + 1
		line := strings.TrimSpace(strings.TrimSuffix(string(raw), "\r"))
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		e, err := parseEnvLine(line)
		if err != nil {
			return nil, &envLineError{Line: n, Msg: err.Error()}
		}
		e.Line = n
		out = append(out, e)
	}
	return out, nil
}

func parseEnvLine(line string) (envEntry, error) {
	if rest, ok := strings.CutPrefix(line, "export"); ok && rest != "" && (rest[0] == ' ' || rest[0] == '\t') {
		line = strings.TrimSpace(rest)
	}
	key, val, ok := strings.Cut(line, "=")
	if !ok {
		return envEntry{}, errors.New("want KEY=VALUE")
	}
	key = strings.TrimSpace(key)
	if !envKeyRE.MatchString(key) {
		return envEntry{}, errors.New("invalid variable name (want letters, digits and _, not starting with a digit)")
	}
	v, err := parseEnvValue(strings.TrimSpace(val))
	if err != nil {
		return envEntry{}, fmt.Errorf("%s: %w", key, err)
	}
	return envEntry{Key: key, Value: v}, nil
}

func parseEnvValue(s string) (string, error) {
	if s == "" {
		return "", nil
	}
	switch s[0] {
	case '\'':
		end := strings.IndexByte(s[1:], '\'')
		if end < 0 {
			return "", errors.New("missing closing single quote")
		}
		return s[1 : end+1], checkTrailer(s[end+2:])
	case '"':
		return parseDoubleQuoted(s)
	}
	if i := strings.Index(s, " #"); i >= 0 {
		s = s[:i]
	} else if i := strings.Index(s, "\t#"); i >= 0 {
		s = s[:i]
	}
	return strings.TrimSpace(s), nil
}

func parseDoubleQuoted(s string) (string, error) {
	var b strings.Builder
	for i := 1; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"':
			return b.String(), checkTrailer(s[i+1:])
		case c == '\\' && i+1 < len(s):
			i++
			switch s[i] {
			case 'n':
				b.WriteByte('\n')
			case 'r':
				b.WriteByte('\r')
			case 't':
				b.WriteByte('\t')
			case '"', '\\', '$', '`':
				b.WriteByte(s[i])
			default:
				b.WriteByte('\\')
				b.WriteByte(s[i])
			}
		default:
			b.WriteByte(c)
		}
	}
	return "", errors.New("missing closing double quote")
}

// checkTrailer allows only blanks or a comment after a closing quote.
func checkTrailer(rest string) error {
	rest = strings.TrimSpace(rest)
	if rest == "" || strings.HasPrefix(rest, "#") {
		return nil
	}
	return errors.New("text after the closing quote")
}
