package console

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"net/http"
	"net/url"
	"strings"
	"time"

	"go.uber.org/zap"
)

// Cookie and header names.
const (
	cookieName = "airlock_console"
	csrfHeader = "X-Airlock-CSRF"
)

// session is one signed-in browser.
type session struct {
	csrf    string
	expires time.Time
}

// principal is who an authenticated request comes from.
type principal struct {
	approver string   // recorded as the approver of decisions
	sess     *session // nil for the admin token
}

// randomToken returns 32 random bytes, base64url.
func randomToken() string {
	var b [32]byte
	rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// digest is the map key a token is kept under: the token itself is never
// stored.
func digest(s string) string {
	sum := sha256.Sum256([]byte(s))
	return string(sum[:])
}

// LoginURL mints a one-time login URL on base ("http://127.0.0.1:7700"):
// single use, valid for Config.LoginTTL.
func (c *Console) LoginURL(base string) string {
	tok := randomToken()
	now := c.cfg.Now()
	c.mu.Lock()
	for k, exp := range c.logins {
		if !now.Before(exp) {
			delete(c.logins, k)
		}
	}
	for len(c.logins) >= maxLoginTokens { // drop the one closest to expiring
		var oldest string
		for k, exp := range c.logins {
			if oldest == "" || exp.Before(c.logins[oldest]) {
				oldest = k
			}
		}
		delete(c.logins, oldest)
	}
	c.logins[digest(tok)] = now.Add(c.cfg.LoginTTL)
	c.mu.Unlock()
	return strings.TrimRight(base, "/") + "/ui/login?token=" + url.QueryEscape(tok)
}

// redeem consumes a login token and starts a session; "" when the token is
// unknown, used or expired.
func (c *Console) redeem(tok string) (cookie string, s *session) {
	now := c.cfg.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	k := digest(tok)
	exp, ok := c.logins[k]
	delete(c.logins, k)
	if !ok || !now.Before(exp) {
		return "", nil
	}
	for k, s := range c.sessions {
		if !now.Before(s.expires) {
			delete(c.sessions, k)
		}
	}
	for len(c.sessions) >= maxSessions {
		var oldest string
		for k, s := range c.sessions {
			if oldest == "" || s.expires.Before(c.sessions[oldest].expires) {
				oldest = k
			}
		}
		delete(c.sessions, oldest)
	}
	cookie = randomToken()
	s = &session{csrf: randomToken(), expires: now.Add(c.cfg.SessionTTL)}
	c.sessions[digest(cookie)] = s
	return cookie, s
}

// authenticate returns who sent r: the admin token (Bearer) or a live
// session cookie. allowCookie is false on the admin API.
func (c *Console) authenticate(r *http.Request, allowCookie bool) (principal, bool) {
	if auth := r.Header.Get("Authorization"); auth != "" {
		tok, ok := strings.CutPrefix(auth, "Bearer ")
		if ok && subtle.ConstantTimeCompare([]byte(strings.TrimSpace(tok)), []byte(c.cfg.AdminToken)) == 1 {
			return principal{approver: c.cfg.TokenName}, true
		}
		return principal{}, false
	}
	if !allowCookie {
		return principal{}, false
	}
	ck, err := r.Cookie(cookieName)
	if err != nil || ck.Value == "" {
		return principal{}, false
	}
	now := c.cfg.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	s, ok := c.sessions[digest(ck.Value)]
	if !ok || !now.Before(s.expires) {
		return principal{}, false
	}
	return principal{approver: "console", sess: s}, true
}

// sameOrigin checks a cookie-authenticated state change: the CSRF header
// matches the session's token, Origin names this host, and the browser does
// not call the request cross-site.
func sameOrigin(r *http.Request, s *session) bool {
	if subtle.ConstantTimeCompare([]byte(r.Header.Get(csrfHeader)), []byte(s.csrf)) != 1 {
		return false
	}
	if site := r.Header.Get("Sec-Fetch-Site"); site != "" && site != "same-origin" {
		return false
	}
	scheme := "http://"
	if r.TLS != nil {
		scheme = "https://"
	}
	return r.Header.Get("Origin") == scheme+r.Host
}

// guard wraps an API handler: 401 without credentials, 403 for a
// cookie-authenticated state change that fails sameOrigin.
func (c *Console) guard(allowCookie bool, h func(http.ResponseWriter, *http.Request, principal)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		p, ok := c.authenticate(r, allowCookie)
		if !ok {
			w.Header().Set("WWW-Authenticate", `Bearer realm="airlock admin"`)
			writeError(w, http.StatusUnauthorized, "UNAUTHORIZED", "admin token or console session required",
				"send Authorization: Bearer <admin token>, or open the URL `airlock console` prints")
			return
		}
		if p.sess != nil && r.Method != http.MethodGet && r.Method != http.MethodHead && !sameOrigin(r, p.sess) {
			c.log.Warn("console request refused: cross-site", zap.String("origin", oneLine(r.Header.Get("Origin"))))
			writeError(w, http.StatusForbidden, "CSRF_REFUSED", "cross-site or token-less request refused",
				"use the console page itself; scripts send Authorization: Bearer instead")
			return
		}
		h(w, r, p)
	}
}

// login redeems ?token= and sets the session cookie. It answers with a
// page that moves on to /ui/ itself: a same-site navigation, so the
// SameSite=Strict cookie goes with it.
func (c *Console) login(w http.ResponseWriter, r *http.Request) {
	cookie, s := c.redeem(r.URL.Query().Get("token"))
	if s == nil {
		c.log.Warn("console login refused: token unknown, used or expired")
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.WriteHeader(http.StatusUnauthorized)
		w.Write([]byte(loginFailedPage))
		return
	}
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: cookie, Path: "/ui/", HttpOnly: true,
		SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil, Expires: s.expires})
	c.log.Info("console login")
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Write([]byte(loginOKPage))
}

// logout ends the session.
func (c *Console) logout(w http.ResponseWriter, r *http.Request, p principal) {
	if ck, err := r.Cookie(cookieName); err == nil {
		c.mu.Lock()
		delete(c.sessions, digest(ck.Value))
		c.mu.Unlock()
	}
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: "", Path: "/ui/", HttpOnly: true,
		SameSite: http.SameSiteStrictMode, MaxAge: -1})
	writeJSON(w, http.StatusOK, map[string]bool{"ok": true})
}

const loginOKPage = `<!doctype html><meta charset="utf-8"><meta http-equiv="refresh" content="0;url=/ui/">` +
	`<title>airlock console</title><p>Signed in. <a href="/ui/">Open the console</a>.`

const loginFailedPage = `<!doctype html><meta charset="utf-8"><title>airlock console</title>` +
	`<p>This login link was already used or has expired. Run <code>airlock console</code> for a new one.`
