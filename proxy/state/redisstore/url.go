package redisstore

import (
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// ParseURL parses a --state value into client options and a display
// address without credentials. Accepted forms:
//
//	redis://[user:pass@]host:port[/db][?dial_timeout=3s&...]
//	rediss://...                       the same over TLS
//	redis+sentinel://[user:pass@]host:port[/db]?master_name=NAME[&addr=host:port...]
//	redis+cluster://[user:pass@]host:port[?addr=host:port...]
//
// Query parameters are go-redis' own (dial_timeout, read_timeout,
// pool_size, ...); unknown ones are errors.
//
// Timeouts default short (dial 1s, read/write 1s, pool wait 1s, one retry)
// so an unreachable Redis costs a request about a second, not the
// library's default of several; the URL's parameters override them.
func ParseURL(raw string) (*redis.UniversalOptions, string, error) {
	o, shown, err := parseURL(raw)
	if err != nil {
		return nil, "", err
	}
	setDefault(&o.DialTimeout, time.Second)
	setDefault(&o.ReadTimeout, time.Second)
	setDefault(&o.WriteTimeout, time.Second)
	setDefault(&o.PoolTimeout, time.Second)
	if o.MaxRetries == 0 {
		o.MaxRetries = 1
	}
	if o.DialerRetries == 0 {
		o.DialerRetries = 1
	}
	return o, shown, nil
}

func setDefault(d *time.Duration, v time.Duration) {
	if *d == 0 {
		*d = v
	}
}

func parseURL(raw string) (*redis.UniversalOptions, string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, "", fmt.Errorf("%w: %v (want redis://[user:pass@]host:port/db)", ErrBadURL, stripURLError(err))
	}
	if u.Host == "" {
		return nil, "", fmt.Errorf("%w: no host (want redis://[user:pass@]host:port/db)", ErrBadURL)
	}
	shown := redacted(u)
	switch u.Scheme {
	case "redis", "rediss":
		o, err := redis.ParseURL(raw)
		if err != nil {
			return nil, "", fmt.Errorf("%w: %s: %v", ErrBadURL, shown, err)
		}
		return &redis.UniversalOptions{
			Addrs: []string{o.Addr}, DB: o.DB, Username: o.Username, Password: o.Password,
			TLSConfig: o.TLSConfig, DialTimeout: o.DialTimeout, ReadTimeout: o.ReadTimeout,
			WriteTimeout: o.WriteTimeout, PoolSize: o.PoolSize, MinIdleConns: o.MinIdleConns,
			MaxRetries: o.MaxRetries, Protocol: o.Protocol, ClientName: o.ClientName, PoolTimeout: o.PoolTimeout,
			DialerRetries: o.DialerRetries,
		}, shown, nil
	case "redis+sentinel", "rediss+sentinel":
		u2 := *u
		u2.Scheme = strings.TrimSuffix(u.Scheme, "+sentinel")
		o, err := redis.ParseFailoverURL(u2.String())
		if err != nil {
			return nil, "", fmt.Errorf("%w: %s: %v", ErrBadURL, shown, err)
		}
		if o.MasterName == "" {
			return nil, "", fmt.Errorf("%w: %s: sentinel url needs ?master_name=NAME", ErrBadURL, shown)
		}
		return &redis.UniversalOptions{
			Addrs: o.SentinelAddrs, MasterName: o.MasterName, DB: o.DB,
			SentinelUsername: o.SentinelUsername, SentinelPassword: o.SentinelPassword,
			Username: o.Username, Password: o.Password, TLSConfig: o.TLSConfig,
			DialTimeout: o.DialTimeout, ReadTimeout: o.ReadTimeout, WriteTimeout: o.WriteTimeout,
			PoolSize: o.PoolSize,
		}, shown, nil
	case "redis+cluster", "rediss+cluster":
		u2 := *u
		u2.Scheme = strings.TrimSuffix(u.Scheme, "+cluster")
		o, err := redis.ParseClusterURL(u2.String())
		if err != nil {
			return nil, "", fmt.Errorf("%w: %s: %v", ErrBadURL, shown, err)
		}
		return &redis.UniversalOptions{
			Addrs: o.Addrs, IsClusterMode: true, Username: o.Username, Password: o.Password,
			TLSConfig: o.TLSConfig, DialTimeout: o.DialTimeout, ReadTimeout: o.ReadTimeout,
			WriteTimeout: o.WriteTimeout, PoolSize: o.PoolSize,
		}, shown, nil
	}
	return nil, "", fmt.Errorf("%w: scheme %q in %s (want redis://, rediss://, redis+sentinel:// or redis+cluster://)", ErrBadURL, u.Scheme, shown)
}

// redacted is u as scheme://[user:xxxxx@]host[/db], for errors and
// Health: no password, no query, no path that is not a db number.
func redacted(u *url.URL) string {
	var b strings.Builder
	b.WriteString(u.Scheme + "://")
	if u.User != nil {
		b.WriteString(url.PathEscape(u.User.Username()))
		if _, has := u.User.Password(); has {
			b.WriteString(":xxxxx")
		}
		b.WriteString("@")
	}
	b.WriteString(u.Host)
	if db := strings.TrimPrefix(u.Path, "/"); db != "" && strings.Trim(db, "0123456789") == "" {
		b.WriteString("/" + db)
	}
	return b.String()
}

// stripURLError drops the url text from a url.Error (it may hold a password).
func stripURLError(err error) error {
	if ue, ok := err.(*url.Error); ok {
		return ue.Err
	}
	return err
}
