package redisstore

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// rotatingEndpoint is a loopback OAuth2 token endpoint whose refresh
// tokens rotate and are single use: presenting an old one is invalid_grant
// (and, as many providers do, it revokes the family: counted in reused).
type rotatingEndpoint struct {
	*httptest.Server
	mu       sync.Mutex // guards current, issued
	current  string
	issued   []string // every token handed out, for the leak grep
	calls    atomic.Int64
	reused   atomic.Int64
	lifetime atomic.Int64 // expires_in of issued tokens, seconds
}

func newRotatingEndpoint(t *testing.T, first string) *rotatingEndpoint {
	e := &rotatingEndpoint{current: first, issued: []string{first}}
	e.lifetime.Store(3600)
	e.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e.calls.Add(1)
		_ = r.ParseForm()
		e.mu.Lock()
		defer e.mu.Unlock()
		if r.Form.Get("grant_type") != "refresh_token" || r.Form.Get("refresh_token") != e.current {
			e.reused.Add(1)
			w.WriteHeader(http.StatusBadRequest)
			_, _ = w.Write([]byte(`{"error":"invalid_grant"}`))
			return
		}
		n := len(e.issued)
		at, rt := fmt.Sprintf("at-%d-Zq9s/+x", n), fmt.Sprintf("rt-%d-Kp3w=&y", n)
		e.current = rt
		e.issued = append(e.issued, at, rt)
		_ = json.NewEncoder(w).Encode(map[string]any{"access_token": at, "refresh_token": rt, "expires_in": e.lifetime.Load()})
	}))
	t.Cleanup(e.Close)
	return e
}

// refresher is the RefreshFunc airlock would pass: the fleet's refresh
// token, or the vault's (seed) when the fleet has none.
func (e *rotatingEndpoint) refresher(seed string) RefreshFunc {
	return func(ctx context.Context, cur Token) (Token, error) {
		rt := cur.RefreshToken
		if rt == "" {
			rt = seed
		}
		req, _ := http.NewRequestWithContext(ctx, "POST", e.URL, strings.NewReader(url.Values{
			"grant_type": {"refresh_token"}, "refresh_token": {rt}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return Token{}, err
		}
		defer resp.Body.Close()
		if resp.StatusCode != 200 {
			return Token{}, fmt.Errorf("token endpoint: %s", resp.Status)
		}
		var body struct {
			AccessToken  string `json:"access_token"`
			RefreshToken string `json:"refresh_token"`
			ExpiresIn    int    `json:"expires_in"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
			return Token{}, err
		}
		return Token{AccessToken: body.AccessToken, RefreshToken: body.RefreshToken,
			Expiry: time.Now().Add(time.Duration(body.ExpiresIn) * time.Second)}, nil
	}
}

// hammerTokens runs 3 stores × 100 concurrent Token calls and returns the
// access tokens they got.
func hammerTokens(t *testing.T, stores []*Store, minValid time.Duration, fn RefreshFunc) map[string]int {
	var mu sync.Mutex
	got := map[string]int{}
	var wg sync.WaitGroup
	start := make(chan struct{})
	for _, s := range stores {
		for range 100 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				tok, err := s.Token(context.Background(), "graph/oauth", minValid, fn)
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				got[tok.AccessToken]++
				mu.Unlock()
			}()
		}
	}
	close(start)
	wg.Wait()
	return got
}

// TestOAuth2OneRefreshAcrossReplicas: 300 callers on 3 replicas with no
// valid token → exactly one refresh; all 300 get its token. Restarted
// replicas refresh with the newest (rotated) refresh token, and Redis
// holds no token in any readable form.
func TestOAuth2OneRefreshAcrossReplicas(t *testing.T) {
	r := startRedis(t)
	e := newRotatingEndpoint(t, "rt-seed-from-vault")
	stores := newStores(t, r, 3, Options{})
	e.lifetime.Store(2) // expires in 2s; callers want 1s left
	got := hammerTokens(t, stores, time.Second, e.refresher("rt-seed-from-vault"))
	if n := e.calls.Load(); n != 1 {
		t.Fatalf("token endpoint called %d times, want 1", n)
	}
	if len(got) != 1 || got["at-1-Zq9s/+x"] != 300 {
		t.Fatalf("callers got %v, want 300 × at-1-Zq9s/+x", got)
	}
	for _, s := range stores {
		s.Close()
	}

	// "Restart" the fleet once the token has less than 1s left: new
	// stores, the vault still holding the seed, which the endpoint now
	// rejects.
	time.Sleep(1100 * time.Millisecond)
	stores = newStores(t, r, 3, Options{})
	e.lifetime.Store(3600)
	got = hammerTokens(t, stores, time.Second, e.refresher("rt-seed-from-vault"))
	if n, re := e.calls.Load(), e.reused.Load(); n != 2 || re != 0 {
		t.Fatalf("after restart: %d endpoint calls, %d reused refresh tokens; want 2 and 0", n, re)
	}
	if len(got) != 1 || got["at-3-Zq9s/+x"] != 300 {
		t.Fatalf("after restart callers got %v, want 300 × at-3-Zq9s/+x", got)
	}
	tok, err := stores[1].CachedToken(context.Background(), "graph/oauth")
	if err != nil || tok.Version != 2 || tok.RefreshToken != "rt-3-Kp3w=&y" {
		t.Fatalf("cached: %v %v, want version 2 with the newest refresh token", tok, err)
	}
	if strings.Contains(fmt.Sprint(tok)+fmt.Sprintf("%#v", tok), "rt-3") {
		t.Error("Token's String/GoString show the token")
	}

	e.mu.Lock()
	secrets := append([]string(nil), e.issued...)
	e.mu.Unlock()
	assertNoPlaintext(t, r, secrets)
}

// assertNoPlaintext greps every key's name, value and DUMP for every form
// of every secret: raw, base64 (std, url, raw), hex, url-encoded.
func assertNoPlaintext(t *testing.T, r *redisServer, secrets []string) {
	t.Helper()
	c := r.client()
	ctx := context.Background()
	keys, err := c.Keys(ctx, "*").Result()
	if err != nil || len(keys) == 0 {
		t.Fatalf("KEYS *: %v %v", keys, err)
	}
	var all bytes.Buffer
	for _, k := range keys {
		all.WriteString(k + "\n")
		d, err := c.Dump(ctx, k).Result()
		if err != nil {
			t.Fatalf("DUMP %s: %v", k, err)
		}
		all.WriteString(d + "\n")
		if typ, _ := c.Type(ctx, k).Result(); typ == "hash" {
			for f, v := range c.HGetAll(ctx, k).Val() {
				all.WriteString(f + "=" + v + "\n")
			}
		} else if typ == "string" {
			all.WriteString(c.Get(ctx, k).Val() + "\n")
		}
	}
	for _, s := range secrets {
		for _, form := range []string{s, base64.StdEncoding.EncodeToString([]byte(s)),
			base64.URLEncoding.EncodeToString([]byte(s)), base64.RawStdEncoding.EncodeToString([]byte(s)),
			hex.EncodeToString([]byte(s)), url.QueryEscape(s)} {
			if bytes.Contains(all.Bytes(), []byte(form)) {
				t.Errorf("redis holds secret %q in the form %q", s, form)
			}
		}
	}
}

// TestOAuth2SealedRecord: a record moved to another credential or sealed
// under another key does not open; refresh errors reach the caller and
// free the lease.
func TestOAuth2SealedRecord(t *testing.T) {
	r := startRedis(t)
	s := newStores(t, r, 1, Options{})[0]
	ctx := context.Background()
	if _, err := s.StoreToken(ctx, "a/oauth", Token{AccessToken: "at-a", RefreshToken: "rt-a", Expiry: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	c := r.client()
	blob := c.HGet(ctx, s.tokKey("a/oauth"), "blob").Val()
	c.HSet(ctx, s.tokKey("b/oauth"), "v", 1, "blob", blob)
	if _, err := s.CachedToken(ctx, "b/oauth"); !errors.Is(err, ErrBadRecord) {
		t.Errorf("swapped record: %v, want ErrBadRecord", err)
	}
	c.HSet(ctx, s.tokKey("a/oauth"), "v", 7) // replay as a newer version
	if _, err := s.CachedToken(ctx, "a/oauth"); !errors.Is(err, ErrBadRecord) {
		t.Errorf("re-versioned record: %v, want ErrBadRecord", err)
	}
	other := newStores(t, r, 1, Options{TokenKey: bytes.Repeat([]byte{7}, 32)})[0]
	c.HSet(ctx, s.tokKey("a/oauth"), "v", 1)
	if _, err := other.CachedToken(ctx, "a/oauth"); !errors.Is(err, ErrBadRecord) {
		t.Errorf("other key: %v, want ErrBadRecord", err)
	}
	fail := func(context.Context, Token) (Token, error) { return Token{}, errors.New("endpoint down") }
	if _, err := s.Token(ctx, "c/oauth", time.Minute, fail); err == nil || !strings.Contains(err.Error(), "endpoint down") {
		t.Errorf("refresh failure: %v", err)
	}
	if n := c.Exists(ctx, s.leaseKey("c/oauth")).Val(); n != 0 {
		t.Error("lease left behind after a failed refresh")
	}
	if _, err := newStores(t, r, 1, Options{TokenKey: []byte("short")})[0].Token(ctx, "x", 0, fail); !errors.Is(err, ErrNoTokenKey) {
		t.Errorf("short key: %v, want ErrNoTokenKey", err)
	}
}
