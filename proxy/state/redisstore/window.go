package redisstore

import (
	"fmt"
	"time"
)

// WindowAt returns the budget window of kind that contains now: "hour",
// "day" or "month" (calendar, in loc; nil is UTC) or "24h" (rolling).
// Calendar IDs name the kind, the start in loc and loc, so a changed time
// zone starts a new counter rather than mixing two.
func WindowAt(kind string, loc *time.Location, now time.Time) (Window, error) {
	if loc == nil {
		loc = time.UTC
	}
	t := now.In(loc)
	var start, end time.Time
	switch kind {
	case "hour":
		start = time.Date(t.Year(), t.Month(), t.Day(), t.Hour(), 0, 0, 0, loc)
		end = start.Add(time.Hour)
	case "day":
		start = time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, loc)
		end = start.AddDate(0, 0, 1)
	case "month":
		start = time.Date(t.Year(), t.Month(), 1, 0, 0, 0, 0, loc)
		end = start.AddDate(0, 1, 0)
	case "24h":
		return Window{Rolling: 24 * time.Hour}, nil
	default:
		return Window{}, fmt.Errorf("budget window %q: want hour, day, month or 24h", kind)
	}
	return Window{ID: kind + ":" + start.Format("2006-01-02T15:04") + "@" + loc.String(), End: end}, nil
}
