package main

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap/zapcore"
)

// consoleTimeLayout is the time column of `serve --log-format console`.
const consoleTimeLayout = "15:04:05.000"

// consoleCore renders log entries for humans, without colour: a "request"
// audit entry as one line of columns
//
//	15:04:05.000 WARN  bot deny openai GET api.openai.com:443 /v1/x 403 1.2ms ACCESS_DENIED
//
// (time level agent decision rule method host path status duration code;
// "-" marks an empty column), anything else as
//
//	15:04:05.000 INFO  listening proxy=127.0.0.1:7600 rules=3
type consoleCore struct {
	zapcore.LevelEnabler
	out    zapcore.WriteSyncer
	fields []zapcore.Field // from With
}

func newConsoleCore(out zapcore.WriteSyncer, level zapcore.LevelEnabler) zapcore.Core {
	return &consoleCore{LevelEnabler: level, out: out}
}

func (c *consoleCore) With(fields []zapcore.Field) zapcore.Core {
	clone := *c
	clone.fields = append(append([]zapcore.Field(nil), c.fields...), fields...)
	return &clone
}

func (c *consoleCore) Check(ent zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if c.Enabled(ent.Level) {
		return ce.AddCore(ent, c)
	}
	return ce
}

func (c *consoleCore) Write(ent zapcore.Entry, fields []zapcore.Field) error {
	enc := zapcore.NewMapObjectEncoder()
	for _, f := range c.fields {
		f.AddTo(enc)
	}
	for _, f := range fields {
		f.AddTo(enc)
	}
	line := formatConsole(ent, enc.Fields)
	if _, err := c.out.Write([]byte(line)); err != nil {
		return fmt.Errorf("write log line: %w", err)
	}
	if ent.Level > zapcore.ErrorLevel {
		return c.out.Sync()
	}
	return nil
}

func (c *consoleCore) Sync() error { return c.out.Sync() }

// requestColumns are the audit fields of a "request" line, in order.
var requestColumns = []string{"agent", "action", "rule", "method", "host", "path", "status", "duration_ms", "code"}

// formatConsole renders one entry as a line ending in "\n".
func formatConsole(ent zapcore.Entry, fields map[string]any) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %-5s ", ent.Time.Format(consoleTimeLayout), ent.Level.CapitalString())
	if ent.Message == "request" && fields["action"] != nil {
		cols := make([]string, len(requestColumns))
		for i, k := range requestColumns {
			cols[i] = consoleValue(k, fields[k])
		}
		b.WriteString(strings.Join(cols, " "))
		b.WriteByte('\n')
		return b.String()
	}
	b.WriteString(ent.Message)
	keys := make([]string, 0, len(fields))
	for k := range fields {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		b.WriteString(" " + k + "=" + quoteIfNeeded(fmt.Sprint(fields[k])))
	}
	if ent.Stack != "" {
		b.WriteString(" stack=" + strconv.Quote(ent.Stack))
	}
	b.WriteByte('\n')
	return b.String()
}

// consoleValue formats one column of a request line.
func consoleValue(key string, v any) string {
	if key == "duration_ms" {
		if ms, ok := v.(float64); ok {
			return (time.Duration(math.Round(ms*1000)) * time.Microsecond).String()
		}
	}
	s := fmt.Sprint(v)
	if v == nil || s == "" || (key == "status" && s == "0") {
		return "-"
	}
	return quoteIfNeeded(s)
}

// quoteIfNeeded keeps one entry on one line: values with spaces, quotes or
// control characters are Go-quoted.
func quoteIfNeeded(s string) string {
	if s == "" {
		return `""`
	}
	for _, r := range s {
		if r <= ' ' || r == '"' || r == '=' || r == 0x7f || r > 0x7e {
			return strconv.Quote(s)
		}
	}
	return s
}
