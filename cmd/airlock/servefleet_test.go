package main

import (
	"net"
	"strings"
	"testing"
)

// TestServeStateBadInput: a --state (or AIRLOCK_STATE) airlock cannot use
// is a clear error with a hint, and the URL's password never shows.
func TestServeStateBadInput(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	closed := l.Addr().String()
	l.Close()
	const password = "pw-fleet-3c9d51e0"
	cases := map[string]struct {
		env  string
		args []string
		code int
		msg  string
	}{
		"not a redis url":       {args: []string{"--state", "http://127.0.0.1:6379"}, code: exitUsage, msg: "--state"},
		"bad url from env":      {env: "mysql://u:" + password + "@127.0.0.1/db", code: exitUsage, msg: "--state"},
		"bad fail mode":         {args: []string{"--state", "redis://" + closed, "--state-ratelimit", "maybe"}, code: exitUsage, msg: "unknown mode"},
		"redis does not answer": {env: "redis://user:" + password + "@" + closed + "/0", code: exitFailure, msg: "fleet state"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			e := initEnv(t)
			if tc.env != "" {
				e.env["AIRLOCK_STATE"] = tc.env
			}
			r := e.run("", append([]string{"serve", "--listen", "127.0.0.1:0", "--admin", "off"}, tc.args...)...)
			wantError(t, r, tc.code, tc.msg)
			if strings.Contains(r.stdout+r.stderr, password) {
				t.Errorf("the state password is in the output\n%s", r)
			}
		})
	}
}
