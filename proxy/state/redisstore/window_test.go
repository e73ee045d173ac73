package redisstore

import (
	"testing"
	"time"
)

func TestWindowAt(t *testing.T) {
	ny, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Skip("no tz database:", err)
	}
	at := time.Date(2026, 11, 1, 3, 30, 0, 0, time.UTC) // 23:30 Oct 31 in New York (EDT)
	cases := map[string]struct {
		kind string
		loc  *time.Location
		id   string
		end  time.Time
	}{
		"month utc":  {"month", nil, "month:2026-11-01T00:00@UTC", time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)},
		"month ny":   {"month", ny, "month:2026-10-01T00:00@America/New_York", time.Date(2026, 11, 1, 0, 0, 0, 0, ny)},
		"day ny":     {"day", ny, "day:2026-10-31T00:00@America/New_York", time.Date(2026, 11, 1, 0, 0, 0, 0, ny)},
		"day ny dst": {"day", ny, "", time.Time{}}, // checked below
		"hour":       {"hour", nil, "hour:2026-11-01T03:00@UTC", time.Date(2026, 11, 1, 4, 0, 0, 0, time.UTC)},
	}
	for name, tc := range cases {
		if tc.id == "" {
			continue
		}
		t.Run(name, func(t *testing.T) {
			w, err := WindowAt(tc.kind, tc.loc, at)
			if err != nil || w.ID != tc.id || !w.End.Equal(tc.end) || w.Rolling != 0 {
				t.Errorf("got %+v %v, want %s ending %v", w, err, tc.id, tc.end)
			}
		})
	}
	// The day DST ends in New York lasts 25 hours.
	w, _ := WindowAt("day", ny, time.Date(2026, 11, 1, 12, 0, 0, 0, ny))
	if d := w.End.Sub(time.Date(2026, 11, 1, 0, 0, 0, 0, ny)); d != 25*time.Hour {
		t.Errorf("DST day lasts %v, want 25h", d)
	}
	if w, err := WindowAt("24h", nil, at); err != nil || w.Rolling != 24*time.Hour {
		t.Errorf("rolling: %+v %v", w, err)
	}
	if _, err := WindowAt("week", nil, at); err == nil {
		t.Error("week accepted")
	}
}
