package usage

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
)

// DefaultMaxTokens is the output reservation of a request that names no
// maximum on a rule without default_max_tokens.
const DefaultMaxTokens = 4096

// DefaultReservationTTL bounds how long a reservation nobody commits or
// releases keeps counting (a crash between admission and answer).
const DefaultReservationTTL = time.Hour

// Config configures a [Meter].
type Config struct {
	Store          Store            // required
	Prices         *Prices          // nil: ShippedPrices()
	Budgets        []Budget         // validated by New
	Metrics        *Metrics         // nil: not counted
	Log            *zap.Logger      // nil: not logged
	Webhook        string           // optional URL POSTed a JSON note when a budget crosses warn_at
	Client         *http.Client     // for the webhook; nil: a client with a 5s timeout
	Now            func() time.Time // nil: time.Now
	MaxRequestBody int64            // 0: MaxRequestBody
	ReservationTTL time.Duration    // 0: DefaultReservationTTL
}

// Meter meters LLM requests and enforces budgets. Safe for concurrent use.
type Meter struct {
	store   Store
	metrics *Metrics
	log     *zap.Logger
	now     func() time.Time
	maxBody int64
	ttl     time.Duration
	webhook string
	client  *http.Client

	conf atomic.Pointer[conf] // prices and budgets; Reload swaps it

	warnMu sync.Mutex      // guards warned
	warned map[string]bool // budget bucket key → warning sent for that window
}

// conf is one generation of prices and budgets, with what the request
// path derives from them once: each budget's current window (its bucket
// keys) and gauge.
type conf struct {
	prices  *Prices
	budgets []Budget
	wins    []windowCache      // same indices as budgets
	gauges  []prometheus.Gauge // airlock_budget_used_ratio{budget}; nil without metrics
	warnKey []string           // rolling windows' warning key
}

// New returns a meter.
func New(c Config) (*Meter, error) {
	if c.Store == nil {
		return nil, errors.New("usage: no store")
	}
	m := &Meter{store: c.Store, metrics: c.Metrics, log: c.Log, now: c.Now, maxBody: c.MaxRequestBody,
		ttl: c.ReservationTTL, webhook: c.Webhook, client: c.Client, warned: map[string]bool{}}
	if m.log == nil {
		m.log = zap.NewNop()
	}
	if m.now == nil {
		m.now = time.Now
	}
	if m.ttl <= 0 {
		m.ttl = DefaultReservationTTL
	}
	if m.client == nil {
		m.client = &http.Client{Timeout: 5 * time.Second}
	}
	if err := m.Reload(c.Budgets, c.Prices); err != nil {
		return nil, err
	}
	return m, nil
}

// Reload replaces the budgets and the price table (policy reload). Usage
// already counted stays: budgets are keyed by name.
func (m *Meter) Reload(budgets []Budget, prices *Prices) error {
	if prices == nil {
		prices = ShippedPrices()
	}
	seen := map[string]bool{}
	infos := make([]BudgetInfo, 0, len(budgets))
	for i := range budgets {
		b := &budgets[i]
		if err := b.Validate(); err != nil {
			return fmt.Errorf("usage: %w", err)
		}
		if seen[b.Name] {
			return fmt.Errorf("usage: budget %s defined twice", b.Name)
		}
		seen[b.Name] = true
		tz := "UTC"
		if b.Location != nil {
			tz = b.Location.String()
		}
		infos = append(infos, BudgetInfo{Name: b.Name, Unit: b.unit(), Limit: b.toUnit(b.limit()), Window: b.Window, Timezone: tz, WarnAt: b.WarnAt})
	}
	c := &conf{prices: prices, budgets: append([]Budget(nil), budgets...), wins: make([]windowCache, len(budgets)),
		warnKey: make([]string, len(budgets))}
	for i, b := range budgets {
		c.warnKey[i] = b.Name + "@rolling"
	}
	if m.metrics != nil { // known budgets show at 0 before their first refusal or warning
		c.gauges = make([]prometheus.Gauge, len(budgets))
		for i, b := range budgets {
			m.metrics.BudgetRejections.WithLabelValues(b.Name)
			m.metrics.BudgetWarnings.WithLabelValues(b.Name)
			c.gauges[i] = m.metrics.BudgetUsedRatio.WithLabelValues(b.Name)
		}
	}
	m.conf.Store(c)
	if d, ok := m.store.(interface{ SetBudgets([]BudgetInfo) }); ok {
		d.SetBudgets(infos)
	}
	return nil
}

// Target is who sends a request and over what: the matched rule's names
// and usage settings.
type Target struct {
	Agent, Rule, Credential string
	Dialect                 Dialect // the rule's usage: (DefaultDialect(host) when unset)
	DefaultMaxTokens        int64   // the rule's default_max_tokens (0: DefaultMaxTokens)
}

// Admit is the admission step for one request, called after the rule
// matched and before the credential is injected. For a request that is not
// a metered LLM call it returns (nil, nil) and leaves r alone. Otherwise it
// reads (bounded) and maybe rewrites r's body (see [InspectRequest]),
// removes Accept-Encoding so the answer can be read, and reserves the
// request's maximum on every budget that covers it. A budget without room
// gives a *[BudgetError] (errors.Is ErrBudgetExceeded); nothing is reserved
// then. With a ticket, the caller must end it exactly once: [Ticket.Wrap]
// on the response (its body's Close or EOF ends it) or [Ticket.Abort] if
// no response comes.
func (m *Meter) Admit(ctx context.Context, t Target, r *http.Request) (*Ticket, error) {
	ep := EndpointOf(t.Dialect, r.Method, r.URL.Path)
	if ep == EndpointNone {
		return nil, nil
	}
	tk := &Ticket{m: m, target: t}
	if err := inspectRequest(r, ep, m.maxBody, &tk.info, &tk.reqBody); err != nil {
		return nil, err
	}
	delete(r.Header, "Accept-Encoding") // canonical already: no Del and its key canonicalisation
	tk.conf, tk.id = m.conf.Load(), newID()
	maxOut := tk.info.MaxOutput
	if maxOut <= 0 && ep != EndpointEmbeddings {
		maxOut = t.DefaultMaxTokens
		if maxOut <= 0 {
			maxOut = DefaultMaxTokens
		}
	}
	if err := tk.reserve(ctx, m.now(), maxOut); err != nil {
		return nil, err
	}
	return tk, nil
}

// Reservation ids: a random prefix per process (ids reach a shared store)
// and a sequence number.
var (
	idPrefix = func() string {
		var b [12]byte
		_, _ = rand.Read(b[:])
		return hex.EncodeToString(b[:]) + "-"
	}()
	idSeq atomic.Uint64
)

func newID() string {
	var buf [48]byte
	return string(strconv.AppendUint(append(buf[:0], idPrefix...), idSeq.Add(1), 36))
}

// Ticket is one admitted request, from its reservation to its record.
// Wrap and Abort are no-ops on a nil *Ticket (a request Admit did not
// meter), so callers need not check.
type Ticket struct {
	m       *Meter
	conf    *conf
	target  Target
	info    RequestInfo
	id      string
	held    []heldBudget // the budgets holding a claim
	once    sync.Once
	result  atomic.Pointer[Result] // &res when the ticket ends
	res     Result
	body    Body        // the response body (Wrap)
	waiting WaitingBody // the response body (WrapWaiting)
	reqBody bytesBody   // the request body Admit read ahead

	heldBuf [2]heldBudget // held's backing array for up to 2 budgets

	// What only Admit and the record need (claims, charges, the time of
	// admission) lives on their stacks: the ticket, allocated for every
	// request, stays in a smaller size class.
}

// heldBudget is a budget holding a claim of a ticket: its index in
// conf.budgets and the amount claimed.
type heldBudget struct {
	i      int
	amount int64
}

// ErrRequestBody is what Admit's error matches (errors.Is) when the
// agent's request body could not be read: the agent's fault, not the
// meter's.
var ErrRequestBody = errors.New("request body unreadable")

// Result is what one finished ticket recorded (the audit line carries it).
type Result struct {
	Model   string // price-table name, the model as reported when unpriced, "" when unknown
	Outcome Outcome
	Tokens  Tokens
	CostUSD float64
}

// Result is what the ticket recorded, or nil while it has not ended (and
// on a nil ticket).
func (t *Ticket) Result() *Result {
	if t == nil {
		return nil
	}
	return t.result.Load()
}

// Info is what the meter learnt from the request.
func (t *Ticket) Info() *RequestInfo { return &t.info }

// RefreshGauges sets airlock_budget_used_ratio for every budget (call at
// start and now and then, so idle budgets and new windows show too).
func (m *Meter) RefreshGauges() {
	c := m.conf.Load()
	now := m.now()
	for i := range c.budgets {
		m.checkBudget(c, i, now)
	}
}

// reserve claims the request's maximum (maxOut output tokens and the
// input estimate) at now on every budget covering it.
func (t *Ticket) reserve(ctx context.Context, now time.Time, maxOut int64) error {
	var claimBuf [2]Claim // a local store keeps no claim: they stay on the stack
	claims := claimBuf[:0]
	t.held = t.heldBuf[:0]
	for i := range t.conf.budgets {
		b := &t.conf.budgets[i]
		if !b.Matches(t.target.Agent, t.target.Rule, t.target.Credential) {
			continue
		}
		w := t.conf.window(i, now)
		claims = append(claims, Claim{Budget: b.Name, Buckets: w.buckets, Limit: b.limit(), Amount: t.estimate(b, maxOut)})
		t.held = append(t.held, heldBudget{i, claims[len(claims)-1].Amount})
	}
	if len(claims) == 0 {
		return nil
	}
	var err error
	if ms := t.m.memStore(); ms != nil {
		err = ms.reserve(t.id, claims, now, now.Add(t.m.ttl))
	} else { // a shared store may keep the claims
		err = t.m.store.Reserve(ctx, Reservation{ID: t.id, Claims: append([]Claim(nil), claims...), Now: now, Expires: now.Add(t.m.ttl)})
	}
	if err == nil {
		return nil
	}
	return t.refused(err, claims, now)
}

// memStore is the meter's store when it is local (a MemStore, or the
// FileStore around one), else nil.
func (m *Meter) memStore() *MemStore {
	switch st := m.store.(type) {
	case *MemStore:
		return st
	case *FileStore:
		return st.MemStore
	}
	return nil
}

// refused turns Reserve's error into Admit's.
func (t *Ticket) refused(err error, claims []Claim, now time.Time) error {
	var over *OverLimitError
	if errors.As(err, &over) && over.Claim >= 0 && over.Claim < len(claims) {
		b, c := &t.conf.budgets[t.held[over.Claim].i], claims[over.Claim]
		be := &BudgetError{Budget: b.Name, Unit: b.unit(), Limit: b.toUnit(c.Limit), Used: b.toUnit(over.Used),
			Pending: b.toUnit(over.Reserved), Request: b.toUnit(c.Amount),
			Reset:    b.resetAt(now, t.conf.window(t.held[over.Claim].i, now).end, over.PerBucket, over.Reserved, c.Amount),
			InFlight: over.Used+c.Amount <= c.Limit}
		t.m.rejected(t.target, be, over.Used, c.Limit)
		return be
	}
	return fmt.Errorf("usage: reserve budget: %w", err)
}

// estimate is the request's reservation on b, in b's units.
func (t *Ticket) estimate(b *Budget, maxOut int64) int64 {
	tokens := t.info.InputEstimate + maxOut
	if b.USD <= 0 {
		return tokens
	}
	_, pr, ok := t.conf.prices.Lookup(t.info.Model)
	if !ok {
		pr = t.conf.prices.MaxPrice() // reservation only: the cost is never guessed
	}
	return nanoUSD(t.info.InputEstimate, pr.Input) + nanoUSD(maxOut, pr.Output)
}

// Wrap meters resp: it replaces resp.Body with the metering body (which
// relays every byte as it arrives and, when the request was rewritten,
// strips what airlock added). The ticket ends when the body reaches EOF,
// fails or is closed.
func (t *Ticket) Wrap(resp *http.Response) {
	if t == nil || resp == nil {
		return
	}
	resp.Body = t.newBody(resp)
	if t.info.Rewritten && resp.ContentLength >= 0 && isSSE(resp) {
		resp.ContentLength = -1 // stripping changes the length
		resp.Header.Del("Content-Length")
	}
}

// Abort ends a ticket whose request got no response (dial failure,
// timeout, refusal later in the pipeline): recorded as no usage, the
// reservation released.
func (t *Ticket) Abort() {
	if t == nil {
		return
	}
	t.finish(&tally{})
}

// finish commits what the response reported, once.
func (t *Ticket) finish(tl *tally) {
	t.once.Do(func() { t.m.record(t, tl) })
}
