//go:build ignore

// Command agent lists OpenAI models through airlock. No API key here:
// airlock injects it. net/http reads HTTPS_PROXY; SSL_CERT_FILE (set by
// airlock run) makes Go trust airlock's CA.
//
// Run: airlock run --agent research-bot -- go run agent.go
package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"
)

func main() {
	c := &http.Client{Timeout: 30 * time.Second}
	resp, err := c.Get("https://api.openai.com/v1/models")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(resp.Body)
		fmt.Fprintln(os.Stderr, resp.Status, resp.Header.Get("X-Airlock-Error"), string(body))
		os.Exit(1)
	}
	var list struct {
		Data []struct {
			ID string `json:"id"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&list); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	for i, m := range list.Data {
		if i == 5 {
			break
		}
		fmt.Println(m.ID)
	}
}
