package main

import (
	"errors"
	"fmt"

	"github.com/airlock/airlock/proxy"
	"github.com/airlock/airlock/vault"
)

// cmdAuditVerify checks audit files with the vault's audit HMAC key and
// prints "ok N lines", or fails (exit 1) naming the first broken line.
func auditVerifyCmd(g *globals, fs *flagSet) runFunc {
	return func(args []string) error {
		if len(args) == 0 {
			return withHint(usageError("audit verify needs at least one FILE"), "usage: airlock audit verify FILE.* FILE")
		}
		v, err := openVault(g.home)
		if err != nil {
			return err
		}
		key, err := auditKey(v)
		if err != nil {
			return err
		}
		n, err := proxy.VerifyAudit(key, args...)
		var ce *proxy.ChainError
		switch {
		case errors.As(err, &ce):
			return withHint(err, "the audit log was changed after airlock wrote it, or it belongs to another vault; lines before this one verified")
		case err != nil:
			return withHint(err, "check the file names; give rotated files first, oldest first: airlock audit verify FILE.* FILE")
		}
		fmt.Fprintf(Stdout, "ok %d lines\n", n)
		return nil
	}
}

// auditKey is the HMAC key of the audit chain, sealed in the vault by
// `airlock init`.
func auditKey(v *vault.Vault) ([]byte, error) {
	k, ok := v.Snapshot().System[sysAuditHMAC]
	if !ok || k.Len() < 16 {
		return nil, withHint(fmt.Errorf("vault %s holds no audit HMAC key", v.Path()),
			"this vault was not created by `airlock init`; start a new home with `airlock init`")
	}
	return k.Bytes(), nil
}
