package main

import (
	"net/netip"
	"strings"
	"testing"
)

func TestParseSourceAgents(t *testing.T) {
	cases := map[string]struct {
		in      []string
		want    []string
		wantErr string
	}{
		"two agents": {in: []string{"10.42.1.0/24=bot", " 10.42.2.7/32 = other "}, want: []string{"10.42.1.0/24=bot", "10.42.2.7/32=other"}},
		"host bits":  {in: []string{"10.42.1.9/24=bot"}, want: []string{"10.42.1.0/24=bot"}},
		"ipv6":       {in: []string{"fd00::/64=bot"}, want: []string{"fd00::/64=bot"}},
		"no agent":   {in: []string{"10.0.0.0/8"}, wantErr: "want CIDR=AGENT"},
		"bad cidr":   {in: []string{"10.0.0.0=bot"}, wantErr: "want CIDR=AGENT"},
		"bad name":   {in: []string{"10.0.0.0/8=../x"}, wantErr: "agent"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got, err := parseSourceAgents(tc.in)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || len(got) != len(tc.want) {
				t.Fatalf("got %v, %v", got, err)
			}
			for i, w := range tc.want {
				p, a, _ := strings.Cut(w, "=")
				if got[i].Prefix != netip.MustParsePrefix(p) || got[i].Agent != a {
					t.Fatalf("got %v, want %s", got[i], w)
				}
			}
		})
	}
}

func TestTransparentFlagsNeedAgent(t *testing.T) {
	fs := newFlagSet("serve")
	tf := addServeTransparentFlags(fs)
	if err := fs.Parse([]string{"--transparent", "127.0.0.1:0"}); err != nil {
		t.Fatal(err)
	}
	if _, err := tf.listen(nil, nil, nil); err == nil || !strings.Contains(err.Error(), "needs an agent") {
		t.Fatalf("err %v", err)
	}
	fs = newFlagSet("serve")
	tf = addServeTransparentFlags(fs)
	_ = fs.Parse([]string{"--transparent-agent", "bot"})
	if _, err := tf.listen(nil, nil, nil); err == nil || !strings.Contains(err.Error(), "need --transparent") {
		t.Fatalf("err %v", err)
	}
}
