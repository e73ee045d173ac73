package main

import (
	"errors"
	"fmt"
	"strings"

	"github.com/airlock/airlock/proxy/audit"
	"github.com/airlock/airlock/vault"
)

// auditVerifyCmd checks audit files with the vault's audit HMAC key and
// prints "ok N lines", or fails (exit 1) naming the first broken line. The
// first line given must be the chain's genesis unless --from or --after
// says where the files start (older files deleted on purpose).
func auditVerifyCmd(g *globals, fs *flagSet) runFunc {
	from := fs.Uint64("from", 0, "the first file starts at this `seq` (older lines deleted on purpose)")
	after := fs.String("after", "", "the first file continues the last line of this previous audit `file`")
	return func(args []string) error {
		if *from != 0 && *after != "" {
			return withHint(usageError("audit verify takes --from or --after, not both"), "give one of them: --from SEQ or --after PREVIOUS_FILE")
		}
		v, err := openVault(g.home)
		if err != nil {
			return err
		}
		key, err := auditKey(v)
		if err != nil {
			return err
		}
		chains, err := audit.Chains(args...)
		if err != nil {
			return withHint(err, "check the file names; give rotated files first, oldest first: airlock audit verify FILE.* FILE")
		}
		if len(chains) > 1 && (*from != 0 || *after != "") {
			return withHint(usageErrorf("--from and --after apply to one chain, and these files hold %d replicas' chains", len(chains)),
				"verify each replica's files on their own to give --from or --after")
		}
		total := 0
		var per []string
		for _, c := range chains {
			n, err := verifyChain(key, audit.Start{Seq: *from, After: *after}, c.Files)
			if err != nil {
				return err
			}
			total += n
			per = append(per, fmt.Sprintf("%s: %d", c.Replica, n))
		}
		if len(chains) > 1 || len(chains) == 1 && chains[0].Replica != "" {
			fmt.Fprintf(Stdout, "ok %d lines (replica %s)\n", total, strings.Join(per, ", "))
			return nil
		}
		fmt.Fprintf(Stdout, "ok %d lines\n", total)
		return nil
	}
}

// verifyChain checks one chain's files and explains a failure.
func verifyChain(key []byte, start audit.Start, files []string) (int, error) {
	n, err := audit.VerifyChain(key, start, files...)
	var ce *audit.ChainError
	switch {
	case errors.As(err, &ce) && ce.Head:
		return n, withHint(err, "lines at the head of the chain are missing; if older audit files were deleted on purpose, give --from SEQ or --after PREVIOUS_FILE")
	case errors.As(err, &ce):
		return n, withHint(err, "the audit log was changed after airlock wrote it, or it belongs to another vault; lines before this one verified")
	case err != nil:
		return n, withHint(err, "check the file names; give rotated files first, oldest first: airlock audit verify FILE.* FILE")
	}
	return n, nil
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
