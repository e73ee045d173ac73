package source

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/airlock/airlock/vault"
)

// Source types (vault.SourceDef.Type).
const (
	TypeHelvetiSafe = "helvetisafe"
	TypeVaultKV     = "vault-kv"
	TypeExec        = "exec"
	TypeFile        = "file"
)

// Types lists the source types, for help texts.
var Types = []string{TypeHelvetiSafe, TypeVaultKV, TypeExec, TypeFile}

// Config keys every source accepts (cache settings), and per type. The
// secrets each type needs are in SecretNames.
var (
	cacheKeys  = []string{"ttl", "refresh_ahead", "stale_for", "fetch_timeout"}
	ConfigKeys = map[string][]string{
		TypeHelvetiSafe: {"base_url", "auth", "client_id", "scopes", "key_mode", "ca_pem", "timeout"},
		TypeVaultKV:     {"address", "mount", "namespace", "auth", "role_id", "approle_mount", "ca_pem", "timeout"},
		TypeExec:        {"argv", "env", "setenv", "timeout", "first_line"},
		TypeFile:        {"dir", "first_line"},
	}
	SecretNames = map[string][]string{
		TypeHelvetiSafe: {"client_secret", "api_token", "rsa_key_pem", "password"},
		TypeVaultKV:     {"token", "secret_id"},
	}
)

// Build makes the source a definition describes, and its cache options.
// Errors name the source and the setting, never a secret.
func Build(def *vault.SourceDef) (Source, CacheOptions, error) {
	if err := checkKeys(def); err != nil {
		return nil, CacheOptions{}, err
	}
	opts, err := cacheOptions(def.Config)
	if err != nil {
		return nil, opts, fmt.Errorf("source %q: %w", def.Name, err)
	}
	var src Source
	switch def.Type {
	case TypeHelvetiSafe:
		src, err = buildHelvetiSafe(def)
	case TypeVaultKV:
		src, err = buildKV(def)
	case TypeExec:
		src, err = buildExec(def)
	case TypeFile:
		src, err = NewFile(FileConfig{Dir: def.Config["dir"], FirstLine: def.Config["first_line"] == "true"})
	default:
		err = fmt.Errorf("unknown type %q (want %s)", def.Type, strings.Join(Types, ", "))
	}
	if err != nil {
		return nil, opts, fmt.Errorf("source %q: %w", def.Name, err)
	}
	return src, opts, nil
}

func checkKeys(def *vault.SourceDef) error {
	for k := range def.Config {
		if !slices.Contains(cacheKeys, k) && !slices.Contains(ConfigKeys[def.Type], k) &&
			!(def.Type == TypeHelvetiSafe && strings.HasPrefix(k, assumePrefix)) {
			return fmt.Errorf("source %q: unknown setting %q for type %s", def.Name, k, def.Type)
		}
	}
	for k := range def.Secrets {
		if !slices.Contains(SecretNames[def.Type], k) {
			return fmt.Errorf("source %q: unknown secret %q for type %s", def.Name, k, def.Type)
		}
	}
	return nil
}

func cacheOptions(cfg map[string]string) (CacheOptions, error) {
	var o CacheOptions
	for k, p := range map[string]*time.Duration{"ttl": &o.TTL, "refresh_ahead": &o.RefreshAhead,
		"stale_for": &o.StaleFor, "fetch_timeout": &o.FetchTimeout} {
		if err := parseDur(cfg, k, p); err != nil {
			return o, err
		}
	}
	return o, nil
}

func parseDur(cfg map[string]string, k string, p *time.Duration) error {
	s, ok := cfg[k]
	if !ok || s == "" {
		return nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return fmt.Errorf("%s %q: want a duration such as 30s or 5m", k, s)
	}
	*p = d
	return nil
}

func buildHelvetiSafe(def *vault.SourceDef) (Source, error) {
	c := def.Config
	a, err := parseHelvetiSafeAssumptions(c)
	if err != nil {
		return nil, err
	}
	cfg := HelvetiSafeConfig{BaseURL: c["base_url"], Auth: c["auth"], ClientID: c["client_id"],
		Scopes: strings.Fields(c["scopes"]), KeyMode: c["key_mode"], CAPEM: []byte(c["ca_pem"]), Assume: a,
		ClientSecret: def.Secrets["client_secret"], APIToken: def.Secrets["api_token"],
		PrivateKey: def.Secrets["rsa_key_pem"], Password: def.Secrets["password"]}
	if err := parseDur(c, "timeout", &cfg.Timeout); err != nil {
		return nil, err
	}
	return NewHelvetiSafe(cfg)
}

func buildKV(def *vault.SourceDef) (Source, error) {
	c := def.Config
	cfg := KVConfig{Address: c["address"], Mount: c["mount"], Namespace: c["namespace"], Auth: c["auth"],
		RoleID: c["role_id"], AppRoleMount: c["approle_mount"], CAPEM: []byte(c["ca_pem"]),
		Token: def.Secrets["token"], SecretID: def.Secrets["secret_id"]}
	if err := parseDur(c, "timeout", &cfg.Timeout); err != nil {
		return nil, err
	}
	return NewKV(cfg)
}

func buildExec(def *vault.SourceDef) (Source, error) {
	c := def.Config
	var cfg ExecConfig
	if err := json.Unmarshal([]byte(c["argv"]), &cfg.Argv); err != nil {
		return nil, errors.New(`argv: want a JSON array of strings, e.g. ["pass","show","{key}"]`)
	}
	if s := c["setenv"]; s != "" {
		if err := json.Unmarshal([]byte(s), &cfg.SetEnv); err != nil {
			return nil, errors.New(`setenv: want a JSON array of "NAME=VALUE" strings`)
		}
	}
	if s := c["env"]; s != "" {
		cfg.Env = strings.Split(s, ",")
	}
	if s := c["first_line"]; s != "" {
		b, err := strconv.ParseBool(s)
		if err != nil {
			return nil, errors.New("first_line: want true or false")
		}
		cfg.FirstLine = b
	}
	if err := parseDur(c, "timeout", &cfg.Timeout); err != nil {
		return nil, err
	}
	return NewExec(cfg)
}
