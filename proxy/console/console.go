// Package console serves the local web console (/ui/) and the approvals
// admin API (/v1/approvals, /v1/console/login) on the admin listener.
//
// # Pages
//
// One embedded page (no CDN, no external request): pending approvals with
// Approve (once, 1 h, always) and Deny, refreshed every second; the last
// decisions, filterable by agent; per-agent and per-credential use over the
// last hour and day as inline SVG charts; budget bars.
//
// # Authentication
//
// Every API request carries either the admin token (Authorization: Bearer,
// compared in constant time) or the console session cookie. A session starts
// at a one-time login URL (/ui/login?token=…, single use, short TTL) minted
// by POST /v1/console/login (admin token only), which `airlock console`
// prints. The cookie is HttpOnly and SameSite=Strict; it cannot be Secure on
// the plain-http loopback listener (it is when the request came over TLS).
// Cookie-authenticated POSTs also need the session's CSRF token in the
// X-Airlock-CSRF header and a same-origin Origin header; /ui/ answers only
// to loopback Host names (DNS rebinding) unless Config.Hosts adds others.
//
// # Data
//
// The console reads through small interfaces: [Queue] (the approval queue),
// [Feed] (a ring buffer of recent decisions the audit path fills with
// [Feed.Add]; it also counts use per agent and credential), [UsageSource]
// and [BudgetSource]. No secret value passes through any of them.
package console

import (
	"context"
	"embed"
	"errors"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/airlock/airlock/proxy/approval"
	"go.uber.org/zap"
)

//go:embed static
var static embed.FS

// Queue is the approval queue as the console uses it (*approval.Queue).
type Queue interface {
	Pending(ctx context.Context) ([]approval.Pending, error)
	Decide(ctx context.Context, id string, v approval.Verdict) (approval.Decision, error)
}

// UsageSource reports use per agent and per credential (*Feed is one).
type UsageSource interface {
	Usage(now time.Time) Usage
}

// BudgetSource reports budgets and their spend; nil shows no budgets.
type BudgetSource interface {
	Budgets(ctx context.Context) ([]Budget, error)
}

// Budget is one budget bar.
type Budget struct {
	Name   string    `json:"name"`
	Unit   string    `json:"unit"` // "usd" or "tokens"
	Used   float64   `json:"used"`
	Limit  float64   `json:"limit"`
	WarnAt float64   `json:"warn_at,omitempty"` // fraction of Limit
	Resets time.Time `json:"resets,omitzero"`
}

// Defaults.
const (
	DefaultLoginTTL   = 2 * time.Minute
	DefaultSessionTTL = 12 * time.Hour
	maxSessions       = 32
	maxLoginTokens    = 16
)

// Config configures a [Console].
type Config struct {
	Queue      Queue        // required
	Feed       *Feed        // optional; nil shows an empty feed
	Usage      UsageSource  // optional; default Feed
	Budgets    BudgetSource // optional
	AdminToken string       // required: the admin token, accepted as Bearer
	// TokenName names the admin token as approver ("admin-token").
	TokenName  string
	LoginTTL   time.Duration // one-time login URL lifetime; 0 = DefaultLoginTTL
	SessionTTL time.Duration // console session lifetime; 0 = DefaultSessionTTL
	// Hosts are Host header names /ui/ answers to besides localhost and
	// loopback addresses (the admin listener's public name, if any).
	Hosts []string
	Now   func() time.Time
	Log   *zap.Logger
}

// Console is the http.Handler for /ui/, /v1/approvals and /v1/console/login.
type Console struct {
	cfg Config
	log *zap.Logger
	mux *http.ServeMux

	mu       sync.Mutex           // guards logins and sessions
	logins   map[string]time.Time // sha256(token) -> expiry
	sessions map[string]*session  // sha256(cookie) -> session
}

// New builds the console handler.
func New(cfg Config) (*Console, error) {
	if cfg.Queue == nil {
		return nil, errors.New("console: Config.Queue is required")
	}
	if len(cfg.AdminToken) < 16 {
		return nil, errors.New("console: Config.AdminToken must be set (at least 16 characters)")
	}
	if cfg.TokenName == "" {
		cfg.TokenName = "admin-token"
	}
	if cfg.LoginTTL <= 0 {
		cfg.LoginTTL = DefaultLoginTTL
	}
	if cfg.SessionTTL <= 0 {
		cfg.SessionTTL = DefaultSessionTTL
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Usage == nil && cfg.Feed != nil {
		cfg.Usage = cfg.Feed
	}
	c := &Console{cfg: cfg, log: cfg.Log, logins: map[string]time.Time{}, sessions: map[string]*session{}}
	if c.log == nil {
		c.log = zap.NewNop()
	}
	c.routes()
	return c, nil
}

// ServeHTTP implements http.Handler.
func (c *Console) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "+
		"connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'")
	if strings.HasPrefix(r.URL.Path, "/ui/") && !c.hostAllowed(r.Host) {
		writeError(w, http.StatusMisdirectedRequest, "BAD_HOST", "the console answers only to localhost",
			"open it at http://127.0.0.1:PORT/ui/ (or add the name to the console hosts)")
		return
	}
	c.mux.ServeHTTP(w, r)
}

// hostAllowed reports whether a Host header names this machine's loopback or
// one of Config.Hosts.
func (c *Console) hostAllowed(hostport string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	if host == "localhost" {
		return true
	}
	if a, err := netip.ParseAddr(strings.Trim(host, "[]")); err == nil && a.Zone() == "" && a.IsLoopback() {
		return true
	}
	for _, h := range c.cfg.Hosts {
		if strings.EqualFold(h, host) {
			return true
		}
	}
	return false
}
