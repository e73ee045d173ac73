package console

import (
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"net/http"
	"strings"
	"time"
	"unicode"

	"github.com/airlock/airlock/proxy/approval"
	"go.uber.org/zap"
)

// routes builds the mux. /ui/api/ takes the cookie or the admin token;
// /v1/ takes the admin token only.
func (c *Console) routes() {
	m := http.NewServeMux()
	sub, _ := fs.Sub(static, "static")
	files := http.FileServerFS(sub)
	m.Handle("GET /ui/", http.StripPrefix("/ui", files))
	m.HandleFunc("GET /ui/login", c.login)
	m.HandleFunc("POST /ui/logout", c.guard(true, c.logout))
	m.HandleFunc("GET /ui/api/session", c.guard(true, c.apiSession))
	m.HandleFunc("GET /ui/api/pending", c.guard(true, c.apiPending))
	m.HandleFunc("POST /ui/api/approvals/{id}/{verdict}", c.guard(true, c.apiDecide))
	m.HandleFunc("GET /ui/api/feed", c.guard(true, c.apiFeed))
	m.HandleFunc("GET /ui/api/usage", c.guard(true, c.apiUsage))
	m.HandleFunc("GET /ui/api/budgets", c.guard(true, c.apiBudgets))

	m.HandleFunc("GET /v1/approvals", c.guard(false, c.apiPending))
	m.HandleFunc("POST /v1/approvals/{id}/{verdict}", c.guard(false, c.apiDecide))
	m.HandleFunc("POST /v1/console/login", c.guard(false, c.apiLogin))
	c.mux = m
}

// PendingView is one pending entry as the API shows it.
type PendingView struct {
	ID         string    `json:"id"`
	Agent      string    `json:"agent"`
	Rule       string    `json:"rule,omitempty"`
	Method     string    `json:"method"`
	Host       string    `json:"host"`
	Path       string    `json:"path"`
	Unmatched  bool      `json:"unmatched,omitempty"`
	Created    time.Time `json:"created"`
	AgeSeconds float64   `json:"age_seconds"`
	Waiters    int       `json:"waiters"`
}

// DecideBody is the JSON body of POST …/approvals/{id}/approve|deny.
type DecideBody struct {
	Remember string `json:"remember,omitempty"` // once | 1h | session | always | a duration
	Reason   string `json:"reason,omitempty"`
	Approver string `json:"approver,omitempty"` // who, as the client knows it ("cli:alice")
}

func (c *Console) apiSession(w http.ResponseWriter, _ *http.Request, p principal) {
	out := map[string]any{"approver": p.approver}
	if p.sess != nil {
		out["csrf"] = p.sess.csrf
		out["expires"] = p.sess.expires
	}
	writeJSON(w, http.StatusOK, out)
}

func (c *Console) apiPending(w http.ResponseWriter, r *http.Request, _ principal) {
	ps, err := c.cfg.Queue.Pending(r.Context())
	if err != nil {
		c.log.Error("console: list pending", zap.Error(err))
		writeError(w, http.StatusServiceUnavailable, "STATE_UNAVAILABLE", "cannot list pending approvals", "check the state store and retry")
		return
	}
	now := c.cfg.Now()
	out := make([]PendingView, 0, len(ps))
	for _, p := range ps {
		out = append(out, PendingView{ID: p.ID, Agent: p.Agent, Rule: p.Rule, Method: p.Method, Host: p.Host,
			Path: pathOnly(p.Path), Unmatched: p.Unmatched, Created: p.Created,
			AgeSeconds: now.Sub(p.Created).Round(time.Second).Seconds(), Waiters: p.Waiters})
	}
	writeJSON(w, http.StatusOK, map[string]any{"pending": out})
}

func (c *Console) apiDecide(w http.ResponseWriter, r *http.Request, p principal) {
	verdict := r.PathValue("verdict")
	if verdict != "approve" && verdict != "deny" {
		writeError(w, http.StatusNotFound, "NOT_FOUND", "unknown verdict "+oneLine(verdict), "POST …/approve or …/deny")
		return
	}
	var body DecideBody
	if err := readJSON(r, &body); err != nil {
		writeError(w, http.StatusBadRequest, "BAD_REQUEST", "bad JSON body: "+err.Error(),
			`send {"remember":"once|1h|always"} or {"reason":"..."}`)
		return
	}
	approver := p.approver
	if a := oneLine(body.Approver); a != "" && p.sess == nil {
		approver += " (" + a + ")"
	}
	v := approval.Verdict{Approve: verdict == "approve", Remember: body.Remember, Approver: approver, Reason: oneLine(body.Reason)}
	d, err := c.cfg.Queue.Decide(r.Context(), r.PathValue("id"), v)
	switch {
	case errors.Is(err, approval.ErrNotFound):
		writeError(w, http.StatusNotFound, "APPROVAL_NOT_FOUND", "no pending approval "+oneLine(r.PathValue("id")),
			"it was decided, timed out or its requests gave up; `airlock approvals` lists what is pending")
		return
	case errors.Is(err, approval.ErrBadRemember):
		writeError(w, http.StatusBadRequest, "BAD_REMEMBER", err.Error(), "use once, 1h, session, always or a duration")
		return
	case err != nil:
		c.log.Error("console: decide", zap.Error(err))
		writeError(w, http.StatusServiceUnavailable, "DECISION_FAILED", err.Error(), "retry, or approve --for a duration")
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"id": d.ID, "approved": d.Approved, "remember": d.Remember,
		"until": d.Until, "approver": d.Approver, "reason": d.Reason})
}

func (c *Console) apiFeed(w http.ResponseWriter, r *http.Request, _ principal) {
	var events []Event
	var agents []string
	if c.cfg.Feed != nil {
		events = c.cfg.Feed.Recent(r.URL.Query().Get("agent"), 200)
		agents = c.cfg.Feed.Agents()
	}
	if events == nil {
		events = []Event{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"events": events, "agents": agents})
}

func (c *Console) apiUsage(w http.ResponseWriter, _ *http.Request, _ principal) {
	if c.cfg.Usage == nil {
		writeJSON(w, http.StatusOK, Usage{})
		return
	}
	writeJSON(w, http.StatusOK, c.cfg.Usage.Usage(c.cfg.Now()))
}

func (c *Console) apiBudgets(w http.ResponseWriter, r *http.Request, _ principal) {
	bs := []Budget{}
	if c.cfg.Budgets != nil {
		got, err := c.cfg.Budgets.Budgets(r.Context())
		if err != nil {
			c.log.Error("console: budgets", zap.Error(err))
		} else if got != nil {
			bs = got
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"budgets": bs})
}

// apiLogin mints a one-time login URL (admin token only).
func (c *Console) apiLogin(w http.ResponseWriter, r *http.Request, _ principal) {
	scheme := "http://"
	if r.TLS != nil {
		scheme = "https://"
	}
	writeJSON(w, http.StatusOK, map[string]any{"url": c.LoginURL(scheme + r.Host), "expires_in_seconds": c.cfg.LoginTTL.Seconds()})
}

// readJSON decodes a small optional JSON body.
func readJSON(r *http.Request, v any) error {
	data, err := io.ReadAll(io.LimitReader(r.Body, 8<<10))
	if err != nil {
		return err
	}
	if len(strings.TrimSpace(string(data))) == 0 {
		return nil
	}
	dec := json.NewDecoder(strings.NewReader(string(data)))
	dec.DisallowUnknownFields()
	return dec.Decode(v)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// writeError answers with the proxy's error shape: code, detail, suggestion.
func writeError(w http.ResponseWriter, status int, code, detail, suggestion string) {
	w.Header().Set("X-Airlock-Error", code)
	writeJSON(w, status, map[string]string{"code": code, "detail": detail, "suggestion": suggestion})
}

// pathOnly drops a query or fragment: the console shows paths, never query
// strings (which may carry tokens).
func pathOnly(p string) string {
	if i := strings.IndexAny(p, "?#"); i >= 0 {
		return p[:i]
	}
	return p
}

// oneLine bounds client-supplied text for logs and decisions.
func oneLine(s string) string {
	s = strings.Map(func(r rune) rune {
		if !unicode.IsPrint(r) {
			return -1
		}
		return r
	}, strings.ToValidUTF8(s, ""))
	if len(s) > 200 {
		s = s[:200]
	}
	return s
}
