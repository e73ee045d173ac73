package main

import (
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/airlock/airlock/vault"
)

// maxEnvFileBytes bounds a .env file.
const maxEnvFileBytes = 4 << 20

func vaultImportEnvCmd(g *globals, fs *flagSet) runFunc {
	return func(args []string) error {
		file := args[0]
		entries, err := readEnvFile(file)
		if err != nil {
			return err
		}
		v, err := openVault(g.home)
		if err != nil {
			return err
		}
		err = v.Update(func(d *vault.Data) error {
			if d.Credentials == nil {
				d.Credentials = map[string]*vault.Credential{}
			}
			now := time.Now().UTC()
			for _, e := range entries {
				path := "env/" + e.Key
				c := &vault.Credential{Path: path, Kind: vault.KindStatic, Value: vault.NewSecret([]byte(e.Value)),
					CreatedAt: now, UpdatedAt: now, Metadata: map[string]string{"source": file}}
				if old, ok := d.Credentials[path]; ok {
					c.CreatedAt = old.CreatedAt
				}
				d.Credentials[path] = c
			}
			return nil
		})
		if err != nil {
			return updateError("import "+file, err)
		}
		fmt.Fprintf(Stderr, "airlock: imported %d credentials from %s (as env/KEY)\n", len(entries), file)
		return nil
	}
}

// readEnvFile reads and validates the whole file before anything is
// imported. Empty values are skipped with a warning.
func readEnvFile(file string) ([]envEntry, error) {
	fi, err := os.Stat(file)
	if err != nil {
		return nil, withHint(fmt.Errorf("read %s: %w", file, err), "check the path of the .env file")
	}
	if fi.Size() > maxEnvFileBytes {
		return nil, withHint(fmt.Errorf("%s is larger than %d bytes", file, maxEnvFileBytes), "a .env file holds KEY=VALUE lines; split it")
	}
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, withHint(fmt.Errorf("read %s: %w", file, err), "check the path of the .env file")
	}
	entries, err := parseEnvFile(data)
	var le *envLineError
	if errors.As(err, &le) {
		return nil, withHint(fmt.Errorf("%s:%d: %s; nothing imported", file, le.Line, le.Msg),
			"fix that line (KEY=VALUE, optionally quoted, optionally after `export `) and run the import again")
	}
	if err != nil {
		return nil, err
	}
	kept := entries[:0]
	for _, e := range entries {
		if e.Value == "" {
			fmt.Fprintf(Stderr, "airlock: %s:%d: %s has an empty value, skipped\n", file, e.Line, e.Key)
			continue
		}
		kept = append(kept, e)
	}
	if len(kept) == 0 {
		return nil, withHint(fmt.Errorf("%s holds no KEY=VALUE lines", file), "check that this is the .env file you meant")
	}
	return kept, nil
}
