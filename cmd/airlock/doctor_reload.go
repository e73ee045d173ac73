package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"time"
)

// servedStatus is the part of serve's /v1/status the reload check reads.
type servedStatus struct {
	Policy struct {
		LastReloadError *reloadErr `json:"last_reload_error"`
		Stale           string     `json:"stale"`
	} `json:"policy"`
	Vault struct {
		LastReloadError *reloadErr `json:"last_reload_error"`
	} `json:"vault"`
}

type reloadErr struct {
	File  string `json:"file"`
	Error string `json:"error"`
}

// checkReload asks a running serve (AIRLOCK_ADMIN) whether its last
// reload of the policy or the vault was refused: then the files on disk
// are not what it enforces.
func (d *doctor) checkReload() {
	const name = "reload"
	addr := envOr("AIRLOCK_ADMIN", "127.0.0.1:7700")
	c := &http.Client{Timeout: 2 * time.Second}
	req, err := http.NewRequest(http.MethodGet, "http://"+addr+"/v1/status", nil)
	if err != nil {
		d.add(name, statusSkipped, "bad AIRLOCK_ADMIN "+addr+": "+err.Error(), "set AIRLOCK_ADMIN to HOST:PORT of serve's admin listener")
		return
	}
	if tok := d.adminToken(); tok != "" { // /v1/status is behind the admin token
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := c.Do(req)
	if err != nil {
		d.add(name, statusOK, "no airlock serve answers on admin "+addr+": nothing enforces an older file", "")
		return
	}
	defer resp.Body.Close()
	var st servedStatus
	if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&st) != nil {
		d.add(name, statusSkipped, fmt.Sprintf("admin %s answered /v1/status with %d", addr, resp.StatusCode),
			"open the vault (AIRLOCK_PASSPHRASE or a key file) or set AIRLOCK_ADMIN_TOKEN so doctor can send the admin token")
		return
	}
	found := false
	if e := st.Policy.LastReloadError; e != nil {
		found = true
		d.add(name, statusWarn, "the running serve refused to reload the policy and still enforces the previous one: "+e.Error,
			"fix the file (`airlock policy check` shows every problem); serve reloads it when saved")
	} else if st.Policy.Stale != "" {
		found = true
		d.add(name, statusWarn, st.Policy.Stale, "wait a second for the reload, or send SIGHUP to airlock serve")
	}
	if e := st.Vault.LastReloadError; e != nil {
		found = true
		d.add(name, statusWarn, "the running serve refused to reload the vault "+e.File+": "+e.Error,
			"restore a good vault file (the running serve keeps the previous contents)")
	}
	if !found {
		d.add(name, statusOK, "the running serve enforces the policy and vault on disk", "")
	}
}

// adminToken is the admin token doctor sends: AIRLOCK_ADMIN_TOKEN, else
// the opened vault's, else "".
func (d *doctor) adminToken() string {
	if tok := os.Getenv("AIRLOCK_ADMIN_TOKEN"); tok != "" {
		return tok
	}
	if d.vault != nil {
		return adminTokenOf(d.vault)
	}
	return ""
}
