package main

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// parseExpires reads --expires: a duration from now ("30d", "12h",
// "1d12h", "90m"), an RFC 3339 time, a date (2006-01-02, midnight UTC), or
// "never" (zero time). The result must lie in the future.
func parseExpires(s string, now time.Time) (time.Time, error) {
	s = strings.TrimSpace(s)
	if s == "" || s == "never" {
		return time.Time{}, nil
	}
	if d, err := parseDays(s); err == nil {
		if d <= 0 {
			return time.Time{}, errors.New("duration must be positive")
		}
		return now.Add(d).UTC().Truncate(time.Second), nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		t, err = time.Parse(time.DateOnly, s)
	}
	if err != nil {
		return time.Time{}, fmt.Errorf("want a duration like 30d or 12h, an RFC 3339 time, or never")
	}
	if !t.After(now) {
		return time.Time{}, fmt.Errorf("%s is in the past", t.Format(time.RFC3339))
	}
	return t.UTC(), nil
}

// parseDays is time.ParseDuration with a leading "Nd" days component.
func parseDays(s string) (time.Duration, error) {
	var days time.Duration
	if i := strings.IndexByte(s, 'd'); i >= 0 {
		n, err := strconv.Atoi(s[:i])
		if err != nil || n < 0 || n > 100*365 {
			return 0, errors.New("bad day count")
		}
		days = time.Duration(n) * 24 * time.Hour
		s = s[i+1:]
		if s == "" {
			return days, nil
		}
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, err
	}
	return days + d, nil
}
