package usage

import (
	"bytes"
	_ "embed"
	"fmt"
	"math"
	"regexp"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/airlock/airlock/proxy/internal/readmap"
)

//go:embed prices.yaml
var shippedPrices []byte

// Price is what a model costs, in USD per 1M tokens. CacheWrite zero means
// the input price.
type Price struct {
	Input       float64 `yaml:"input"`
	Output      float64 `yaml:"output"`
	CachedInput float64 `yaml:"cached_input"`
	CacheWrite  float64 `yaml:"cache_write"`
}

// Prices is a price table. Its keys are the only model label values the
// meter's metrics use; every other model becomes [OtherModel].
type Prices struct {
	m map[string]Price

	// known memoises Lookup: every name asked for, exact or dated, with
	// its answer, so a request costs one map probe, lock-free (a record
	// reads it with its caches cold: the probes of m, a sync.Map and m
	// again cost it three). At most maxResolved names beyond the table's,
	// so answers naming random models cannot grow it.
	known *readmap.Map[string, priceEntry]
}

// priceEntry is Lookup's answer for one name.
type priceEntry struct {
	name  string
	price Price
	ok    bool
}

// maxResolved bounds the names Prices.known holds beyond the table's.
const maxResolved = 1024

// OtherModel is the model label of models the price table does not know.
const OtherModel = "other"

// ShippedPrices returns the table embedded from prices.yaml.
func ShippedPrices() *Prices {
	p, err := ParsePrices(shippedPrices)
	if err != nil {
		panic("usage: shipped prices.yaml: " + err.Error()) // caught by TestShippedPrices
	}
	return p
}

// ParsePrices parses a price table in the prices.yaml format (strict:
// unknown keys and negative prices are errors).
func ParsePrices(b []byte) (*Prices, error) {
	var doc struct {
		Version int              `yaml:"version"`
		Models  map[string]Price `yaml:"models"`
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&doc); err != nil {
		return nil, fmt.Errorf("price table: %w", err)
	}
	if doc.Version != 1 {
		return nil, fmt.Errorf("price table: version %d, want 1", doc.Version)
	}
	return (&Prices{}).With(doc.Models)
}

// With returns a copy of p with the given models added or replaced (the
// policy's `prices:`).
func (p *Prices) With(over map[string]Price) (*Prices, error) {
	out := &Prices{m: make(map[string]Price, len(p.m)+len(over))}
	for k, v := range p.m {
		out.m[k] = v
	}
	for k, v := range over {
		if k == "" || k == OtherModel || strings.TrimSpace(k) != k {
			return nil, fmt.Errorf("price table: model name %q is not usable", k)
		}
		for _, f := range []float64{v.Input, v.Output, v.CachedInput, v.CacheWrite} {
			if f < 0 || math.IsNaN(f) || math.IsInf(f, 0) {
				return nil, fmt.Errorf("price table: model %s: prices must be finite and not negative", k)
			}
		}
		out.m[k] = v
	}
	out.known = readmap.New[string, priceEntry](len(out.m) + maxResolved)
	return out, nil
}

// Models returns the table's model names, sorted.
func (p *Prices) Models() []string {
	out := make([]string, 0, len(p.m))
	for k := range p.m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// dated is the suffix a provider adds to a model alias in its answers.
var dated = regexp.MustCompile(`^-(\d{4}-\d{2}-\d{2}|\d{8}|latest)$`)

// Lookup returns the table entry for model: an exact key, or a key followed
// by a date suffix. ok=false: unknown model, name is [OtherModel].
func (p *Prices) Lookup(model string) (name string, price Price, ok bool) {
	e := p.known.Get(model, func() priceEntry { return p.entry(model) })
	return e.name, e.price, e.ok
}

// entry is Lookup without the memo.
func (p *Prices) entry(model string) priceEntry {
	if pr, ok := p.m[model]; ok {
		return priceEntry{model, pr, true}
	}
	name, pr, ok := p.resolve(model)
	return priceEntry{name, pr, ok}
}

// resolve finds the longest key that model is a dated form of.
func (p *Prices) resolve(model string) (name string, price Price, ok bool) {
	best := ""
	for k := range p.m {
		if len(k) > len(best) && strings.HasPrefix(model, k) && dated.MatchString(model[len(k):]) {
			best = k
		}
	}
	if best == "" {
		return OtherModel, Price{}, false
	}
	return best, p.m[best], true
}

// MaxPrice is the most expensive entry's input and output prices (used to
// reserve against a USD budget before the model is known).
func (p *Prices) MaxPrice() Price {
	var mx Price
	for _, v := range p.m {
		mx.Input = math.Max(mx.Input, v.Input)
		mx.Output = math.Max(mx.Output, v.Output)
	}
	return mx
}

// nanoUSD converts tokens at a per-1M price to nano-dollars.
func nanoUSD(tokens int64, perMillion float64) int64 {
	return int64(math.Round(float64(tokens) * perMillion * 1000))
}

// Cost is the cost of t at price pr, in nano-USD (1e-9 USD).
func (pr Price) Cost(t Tokens) int64 {
	cw := pr.CacheWrite
	if cw == 0 {
		cw = pr.Input
	}
	cached := pr.CachedInput
	if cached == 0 {
		cached = pr.Input
	}
	plain := max(t.Input-t.CachedInput-t.CacheWrite, 0)
	return nanoUSD(plain, pr.Input) + nanoUSD(t.CachedInput, cached) +
		nanoUSD(t.CacheWrite, cw) + nanoUSD(t.Output, pr.Output)
}
