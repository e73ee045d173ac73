package dialect

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/airlock/airlock/proxy/rpc/dialect/dialecttest"
)

var fill = strings.NewReplacer("{{SIG}}", strings.Repeat("ab", 64), "{{LEASE}}", "1ea5e")

// TestRustFrames replays, on one connection, the frames the Rust SDK
// sends (testdata, derived from client.rs): each becomes the expected
// canonical frame, and each canonical result the dialect answer, which
// decodes into the types.rs shape the client reads.
func TestRustFrames(t *testing.T) {
	var cn Conn
	for _, tc := range dialecttest.ReadFrameCases(t, "testdata/rust_frames.txt") {
		t.Run(tc.Name, func(t *testing.T) {
			c, _, ok, e := cn.Translate([]byte(fill.Replace(tc.Request)))
			if !ok || e != nil {
				t.Fatalf("Translate: ok=%v e=%v", ok, e)
			}
			if want := fill.Replace(tc.Canonical); !dialecttest.JSONEqual(c.Frame(), []byte(want)) {
				t.Fatalf("canonical frame\n got %s\nwant %s", c.Frame(), want)
			}
			got, e := cn.Answer(c, json.RawMessage(tc.Result))
			if e != nil {
				t.Fatal(e)
			}
			if !dialecttest.JSONEqual(got, []byte(tc.Answer)) {
				t.Fatalf("answer\n got %s\nwant %s", got, tc.Answer)
			}
			if err := dialecttest.RustShapes(tc.Shape, got); err != nil {
				t.Fatalf("does not decode as %s: %v", tc.Shape, err)
			}
		})
	}
}

func TestNotDialect(t *testing.T) {
	var cn Conn
	for _, f := range []string{
		`{"id":1,"method":"authenticate","params":{"agent_name":"bot"}}`,
		`{"id":1,"method":"use","params":{}}`,
		`not json`,
		`[1,2]`,
		`{"id":1,"method":"auth.challengeX"}`,
	} {
		if _, _, ok, _ := cn.Translate([]byte(f)); ok {
			t.Errorf("%s taken as the dialect", f)
		}
	}
}

// TestVerifyNeedsPendingChallenge: auth.verify answers only the challenge
// pending for the same agent on this connection, once; otherwise it goes
// to the door with no session, which refuses it (SESSION_EXPIRED).
func TestVerifyNeedsPendingChallenge(t *testing.T) {
	var cn Conn
	verify := func(agent string) string {
		c, _, _, e := cn.Translate([]byte(`{"id":2,"method":"auth.verify","params":{"agent":"` + agent + `","signature":"00"}}`))
		if e != nil {
			t.Fatal(e)
		}
		var p struct {
			SessionID string `json:"session_id"`
		}
		json.Unmarshal(c.Params, &p)
		return p.SessionID
	}
	if s := verify("bot"); s != "" {
		t.Fatalf("no challenge yet, session %q", s)
	}
	c, _, _, _ := cn.Translate([]byte(`{"id":1,"method":"auth.challenge","params":{"agent":"bot"}}`))
	cn.Answer(c, json.RawMessage(`{"session_id":"s1","challenge":"00"}`))
	if s := verify("other"); s != "" {
		t.Fatalf("another agent answered bot's challenge: session %q", s)
	}
	if s := verify("bot"); s != "s1" {
		t.Fatalf("session %q, want s1", s)
	}
	if s := verify("bot"); s != "" {
		t.Fatalf("challenge answered twice: session %q", s)
	}
	// Not authenticated (the door refused the verify): later calls carry no session.
	c, _, _, _ = cn.Translate([]byte(`{"id":3,"method":"credential.list","params":{}}`))
	if string(c.Params) != `{"session_id":""}` {
		t.Fatalf("list params %s", c.Params)
	}
}

func TestPendingBounded(t *testing.T) {
	var cn Conn
	for i := range 100 {
		c, _, _, _ := cn.Translate([]byte(`{"id":1,"method":"auth.challenge","params":{"agent":"a` + strings.Repeat("x", i) + `"}}`))
		cn.Answer(c, json.RawMessage(`{"session_id":"s","challenge":"00"}`))
	}
	if len(cn.pending) > maxPending {
		t.Fatalf("%d challenges pending", len(cn.pending))
	}
}

func TestDialectParamErrors(t *testing.T) {
	cases := map[string]struct{ frame, param, msg string }{
		"agent_name instead of agent": {`{"id":1,"method":"auth.challenge","params":{"agent_name":"bot"}}`, "agent_name", "unknown parameter params.agent_name (want agent)"},
		"empty agent":                 {`{"id":1,"method":"auth.challenge","params":{"agent":""}}`, "agent", "must not be empty"},
		"agent not a string":          {`{"id":1,"method":"auth.challenge","params":{"agent":7}}`, "agent", "must be a string"},
		"session_id sent":             {`{"id":1,"method":"credential.list","params":{"session_id":"x"}}`, "session_id", "unknown parameter params.session_id"},
		"verify without signature":    {`{"id":1,"method":"auth.verify","params":{"agent":"bot"}}`, "signature", "missing parameter params.signature"},
		"ttl a string":                {`{"id":1,"method":"credential.retrieve","params":{"path":"a","ttl":"30"}}`, "ttl", "must be a number"},
		"use params not object":       {`{"id":1,"method":"credential.use","params":{"path":"a","operation":"sign","params":"x"}}`, "params", "must be an object"},
		"params an array":             {`{"id":1,"method":"lease.release","params":[1]}`, "", "params must be an object"},
		"long unknown name clipped":   {`{"id":1,"method":"lease.release","params":{"lease_id":"x","` + strings.Repeat("k", 500) + `":1}}`, strings.Repeat("k", 64) + "...", "unknown parameter"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			var cn Conn
			c, id, ok, e := cn.Translate([]byte(tc.frame))
			if !ok || c != nil || e == nil {
				t.Fatalf("ok=%v c=%v e=%v", ok, c, e)
			}
			if e.Code != CodeInvalidRequest || e.Param != tc.param || !strings.Contains(e.Message, tc.msg) || string(id) != "1" {
				t.Fatalf("got %+v id %s", e, id)
			}
		})
	}
}

func TestCheckOperationParams(t *testing.T) {
	cases := map[string]struct {
		op, params, param string
	}{
		"sign ok":                {"sign", `{"data":"x","algorithm":"hmac-sha256"}`, ""},
		"sign empty data ok":     {"sign", `{"data":""}`, ""},
		"encrypt ok":             {"encrypt", `{"data":"x"}`, ""},
		"decrypt ok":             {"decrypt", `{"data":"x"}`, ""},
		"other operation":        {"http_request", `{"anything":1}`, ""},
		"node readme encrypt":    {"encrypt", `{"plaintext":"sensitive data"}`, "plaintext"},
		"node readme sign":       {"sign", `{"payload":"data-to-sign"}`, "payload"},
		"extra param":            {"encrypt", `{"data":"x","plaintext":"y"}`, "plaintext"},
		"no params":              {"decrypt", `{}`, "data"},
		"null data":              {"encrypt", `{"data":null}`, "data"},
		"data not a string":      {"sign", `{"data":42}`, "data"},
		"algorithm not a string": {"sign", `{"data":"x","algorithm":1}`, "algorithm"},
		"algorithm on encrypt":   {"encrypt", `{"data":"x","algorithm":"a"}`, "algorithm"},
		"params not an object":   {"sign", `"x"`, ""},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			e := CheckOperationParams(tc.op, json.RawMessage(tc.params))
			wantErr := tc.param != "" || name == "params not an object"
			if (e != nil) != wantErr {
				t.Fatalf("err = %v", e)
			}
			if e != nil && (e.Param != tc.param || e.Code != CodeInvalidRequest || !strings.HasPrefix(e.Message, tc.op+": ")) {
				t.Fatalf("got %+v", e)
			}
			if e != nil && tc.param != "" && !strings.Contains(e.Message, "params."+tc.param) {
				t.Fatalf("message %q does not name params.%s", e.Message, tc.param)
			}
		})
	}
}

// FuzzTranslate: any frame either is left to the door, refused with a
// parameter error, or becomes a canonical frame the door can read; a
// dialect call never carries a client-chosen session_id.
func FuzzTranslate(f *testing.F) {
	for _, tc := range dialecttest.ReadFrameCases(f, "testdata/rust_frames.txt") {
		f.Add([]byte(fill.Replace(tc.Request)))
	}
	f.Add([]byte(`{"id":1,"method":"credential.list","params":{"session_id":"x"}}`))
	f.Fuzz(func(t *testing.T, frame []byte) {
		var cn Conn
		c, _, ok, e := cn.Translate(frame)
		if !ok {
			return
		}
		if (c == nil) == (e == nil) {
			t.Fatalf("c=%v e=%v", c, e)
		}
		if c == nil {
			return
		}
		var req struct {
			Method string                     `json:"method"`
			Params map[string]json.RawMessage `json:"params"`
		}
		if err := json.Unmarshal(c.Frame(), &req); err != nil || req.Method != c.Canonical {
			t.Fatalf("canonical frame %s: %v", c.Frame(), err)
		}
		if sid, ok := req.Params["session_id"]; ok && string(sid) != `""` {
			t.Fatalf("client-chosen session %s", sid)
		}
	})
}
