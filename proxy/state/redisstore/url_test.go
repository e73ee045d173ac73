package redisstore

import (
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"
)

func TestParseURL(t *testing.T) {
	cases := map[string]struct {
		url, addr, shown string
		db               int
		tls, cluster     bool
		master, err      string
	}{
		"plain":        {url: "redis://127.0.0.1:6379/2", addr: "127.0.0.1:6379", db: 2, shown: "redis://127.0.0.1:6379/2"},
		"user pass":    {url: "redis://airlock:s3cret-pw@redis:6380/0", addr: "redis:6380", shown: "redis://airlock:xxxxx@redis:6380/0"},
		"tls":          {url: "rediss://redis.example:6380", addr: "redis.example:6380", tls: true, shown: "rediss://redis.example:6380"},
		"sentinel":     {url: "redis+sentinel://s1:26379?master_name=mymaster&addr=s2:26379", addr: "s1:26379", master: "mymaster", shown: "redis+sentinel://s1:26379"},
		"cluster":      {url: "redis+cluster://c1:7000?addr=c2:7000", addr: "c1:7000", cluster: true, shown: "redis+cluster://c1:7000"},
		"no master":    {url: "redis+sentinel://s1:26379", err: "master_name"},
		"bad scheme":   {url: "http://x:1", err: "scheme"},
		"no host":      {url: "redis:///0", err: "no host"},
		"bad db":       {url: "redis://:pw-secret@h:1/x", err: "invalid"},
		"unknown opt":  {url: "redis://h:1/0?bogus=1", err: "bogus"},
		"bad encoding": {url: "redis://u:%zz-secret@h:1", err: "bad redis state url"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			o, shown, err := ParseURL(tc.url)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) || !errors.Is(err, ErrBadURL) {
					t.Fatalf("err %v, want ErrBadURL mentioning %q", err, tc.err)
				}
				if strings.Contains(err.Error(), "secret") {
					t.Errorf("error shows the password: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if o.Addrs[0] != tc.addr || o.DB != tc.db || (o.TLSConfig != nil) != tc.tls || o.IsClusterMode != tc.cluster || o.MasterName != tc.master || shown != tc.shown {
				t.Errorf("got %v db=%d tls=%v cluster=%v master=%q shown=%q", o.Addrs, o.DB, o.TLSConfig != nil, o.IsClusterMode, o.MasterName, shown)
			}
			if o.DialTimeout != time.Second || o.MaxRetries != 1 {
				t.Errorf("timeouts not defaulted: dial %v retries %d", o.DialTimeout, o.MaxRetries)
			}
		})
	}
	if o, _, _ := ParseURL("redis://h:1/0?dial_timeout=3s"); o.DialTimeout != 3*time.Second {
		t.Errorf("url dial_timeout not kept: %v", o.DialTimeout)
	}
}

// FuzzParseURL: never panics, and never echoes a password in an error
// or in the shown address.
func FuzzParseURL(f *testing.F) {
	for _, s := range []string{"redis://u:PASSWORD@h:1/0", "rediss://h", "redis+sentinel://u:PASSWORD@h:1?master_name=m",
		"redis+cluster://h:1?addr=x:2", "redis://u:PASSWORD@h:1/0?dial_timeout=x", "redis://u:PASSWORD@/0"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		_, shown, err := ParseURL(s)
		u, perr := url.Parse(s)
		if perr != nil || u.User == nil {
			return
		}
		pw, _ := u.User.Password()
		if len(pw) < 8 || strings.Count(s, pw) != 1 {
			return // too short, or also elsewhere in the url: not telling
		}
		if strings.Contains(shown, pw) || err != nil && strings.Contains(err.Error(), pw) {
			t.Fatalf("password %q shown: %q / %v", pw, shown, err)
		}
	})
}

// FuzzOpenRecord: records read from Redis are untrusted bytes: they open
// only if sealed for that credential and version, and never panic.
func FuzzOpenRecord(f *testing.F) {
	good, _ := seal(testTokenKey, "c", 1, []byte(`{"a":"x","r":"y","e":"2026-01-01T00:00:00Z"}`))
	f.Add("1", good)
	f.Add("0", good)
	f.Add("1", []byte("short"))
	f.Fuzz(func(t *testing.T, version string, blob []byte) {
		tok, err := openRecord(testTokenKey, "c", version, blob)
		if err == nil && tok.Version < 1 {
			t.Fatalf("opened with version %d", tok.Version)
		}
		if err != nil && !errors.Is(err, ErrBadRecord) {
			t.Fatalf("error %v is not ErrBadRecord", err)
		}
	})
}
