package stack

import (
	"errors"
	"path/filepath"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/airlock/airlock/certs"
	"github.com/airlock/airlock/policy"
	"github.com/airlock/airlock/proxy"
	"github.com/airlock/airlock/proxy/rpc"
	"github.com/airlock/airlock/vault"
)

func parts(t *testing.T) Options {
	t.Helper()
	v, err := vault.Create(filepath.Join(t.TempDir(), "v"), []byte("pw"), vault.CreateOptions{KDF: vault.FastKDF})
	if err != nil {
		t.Fatal(err)
	}
	ca, err := certs.NewCA("stack test", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	pol, err := policy.Parse("p.yaml", []byte("version: 1\n"))
	if err != nil {
		t.Fatal(err)
	}
	return Options{Vault: v, CA: ca, Policy: pol, Log: zap.NewNop()}
}

func TestNew(t *testing.T) {
	cases := map[string]struct {
		edit    func(*Options)
		wantErr error
		wantRPC bool
	}{
		"complete":   {edit: func(*Options) {}},
		"with rpc":   {edit: func(o *Options) { o.RPC = &rpc.Options{} }, wantRPC: true},
		"no vault":   {edit: func(o *Options) { o.Vault = nil }, wantErr: ErrIncomplete},
		"no ca":      {edit: func(o *Options) { o.CA = nil }, wantErr: ErrIncomplete},
		"no policy":  {edit: func(o *Options) { o.Policy = nil }, wantErr: ErrIncomplete},
		"no logger":  {edit: func(o *Options) { o.Log = nil }, wantErr: ErrIncomplete},
		"tune first": {edit: func(o *Options) { o.Tune = func(c *proxy.Config) { c.MaxConnsPerAgent = -1 } }},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			o := parts(t)
			tc.edit(&o)
			st, err := New(o)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("err %v, want %v", err, tc.wantErr)
			}
			if err != nil {
				return
			}
			if st.Server == nil || (st.RPC != nil) != tc.wantRPC {
				t.Fatalf("server %v, rpc %v (want rpc %v)", st.Server, st.RPC, tc.wantRPC)
			}
		})
	}
}
