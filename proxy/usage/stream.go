package usage

import (
	"bytes"
	"sync"
)

// Indices of the captured paths (see pathsFor).
const (
	pUsage = iota
	pModel
	pChoices
	pError
	pType
	pRespUsage
	pRespModel
	pMsgUsage
	pMsgModel
	nPaths
)

// pathsFor returns the paths worth capturing for an endpoint; unused
// indices stay nil and never match. The tables are shared: read only.
func pathsFor(ep Endpoint, sse bool) [][]string {
	if ep < 0 || int(ep) >= len(pathTables) {
		return buildPaths(ep, sse)
	}
	if sse {
		return pathTables[ep][1]
	}
	return pathTables[ep][0]
}

var pathTables = func() (t [EndpointMessages + 1][2][][]string) {
	for ep := range t {
		t[ep][0], t[ep][1] = buildPaths(Endpoint(ep), false), buildPaths(Endpoint(ep), true)
	}
	return t
}()

func buildPaths(ep Endpoint, sse bool) [][]string {
	p := make([][]string, nPaths)
	p[pUsage], p[pModel], p[pError] = []string{"usage"}, []string{"model"}, []string{"error"}
	switch ep {
	case EndpointChat:
		if sse {
			p[pChoices] = []string{"choices"}
		}
	case EndpointResponses:
		if sse {
			p[pType], p[pRespUsage], p[pRespModel] = []string{"type"}, []string{"response", "usage"}, []string{"response", "model"}
		}
	case EndpointMessages:
		p[pType] = []string{"type"}
		if sse {
			p[pMsgUsage], p[pMsgModel] = []string{"message", "usage"}, []string{"message", "model"}
		}
	}
	return p
}

// maxHold bounds the bytes of one SSE event held back while the meter
// decides whether to drop it (only when it strips the usage chunk airlock
// asked for). Longer events pass unedited: a usage-only chunk is tiny.
const maxHold = 64 << 10

// sseMeter parses a text/event-stream incrementally (WHATWG "event stream
// interpretation": lines end in CRLF, LF or CR, a blank line ends an event),
// feeding each event's data into a [jscan], and interprets every event as
// it completes. Memory is bounded: field names and event names are
// truncated, data is never kept (only jscan's bounded captures), and a held
// event is at most maxHold bytes.
type sseMeter struct {
	ep    Endpoint
	d     Dialect
	scan  *jscan
	tally *tally

	inValue   bool // past the field name's colon
	skipSpace bool // the value's first space is not part of it
	lastCR    bool
	lineLen   int
	field     [8]byte
	flen      int
	kind      byte // 'd' data, 'e' event, 0 other
	evName    []byte
	dataLines int
	dataHead  []byte // first bytes of the data, to see [DONE]
	done      bool   // data: [DONE] seen

	// strip mode: hold each event, drop the usage-only chunk, remove
	// "usage":null members (they appear only because airlock asked).
	strip       bool
	hold        []byte
	passthrough bool // the held event outgrew maxHold and was released
	dataStart   int  // offsets of the (single) data value in hold
	dataEnd     int
	out         []byte // bytes ready for the agent (strip mode)
	dropped     int    // usage-only chunks removed (tests, logs)
	ms          []member

	// A one-line data value is not fed to the scanner as it arrives: it
	// is held (strip mode holds the whole event anyway; otherwise hold
	// keeps the data value only) and dispatch walks it once, for the
	// captures (what the scanner would capture: FuzzTopMembersSame) and,
	// in strip mode, the members release edits. The walk reads about
	// 2.5 times faster than the scanner (BenchmarkObserverSSE). A second
	// data line, a value the walk refuses, a held value or event
	// outgrowing maxHold, or paths the walk cannot read as the scanner
	// does (heldPaths: deeper than two keys, say) get the scanner.
	deferred bool        // the current data line is held, not scanned
	noDefer  bool        // tests: scan every value as it arrives (the reference)
	useTop   bool        // this event's captures are top, not scan's
	top      topCaptures // valid when useTop
	topMs    []member    // the members of the held data value, when useTop (walked's)
	walked   memberCache // the held walks, each resuming after what its data shares with the last
	keys     *topKeys    // the paths of scan.paths the held walk captures (shared: read only)
	scanned  bool        // scan was written since its last reset
	walks    int         // events read by the held walk (tests)
	quiet    bool        // this event settles: nothing in it to read
	settled  int         // events that settled unread (tests)
	last     []byte      // the data of the last event that settled, when lastOK
	lastOK   bool
	lastTail bool // last ends in usageNullTail
	pre, suf int  // what the last event shared with the one before (changed's guess)
}

// capture is the value the event holds at path i.
func (s *sseMeter) capture(i int) []byte {
	if s.useTop {
		return s.top.get(i)
	}
	return s.scan.get(i)
}

// scanWrite feeds the scanner.
func (s *sseMeter) scanWrite(p []byte) {
	s.scanned = true
	s.scan.write(p)
}

// catchUp feeds the scanner the held data value it skipped.
func (s *sseMeter) catchUp() {
	if !s.deferred {
		return
	}
	s.deferred = false
	end := s.dataEnd
	if end < 0 {
		end = len(s.hold)
	}
	if s.dataStart <= end && end <= len(s.hold) {
		s.scanWrite(s.hold[s.dataStart:end])
	}
}

func newSSEMeter(ep Endpoint, d Dialect, t *tally, strip bool) *sseMeter {
	return &sseMeter{ep: ep, d: d, scan: newScan(pathsFor(ep, true)), tally: t, strip: strip && ep == EndpointChat, keys: sseTopKeys(ep)}
}

// sseKeyTables are topKeysOf(pathsFor(ep, true)) for every endpoint.
var sseKeyTables = func() (t [EndpointMessages + 1]topKeys) {
	for ep := range t {
		t[ep] = topKeysOf(pathsFor(Endpoint(ep), true))
	}
	return t
}()

// sseTopKeys is the held walk's reading of an endpoint's stream paths.
func sseTopKeys(ep Endpoint) *topKeys {
	if ep < 0 || int(ep) >= len(sseKeyTables) {
		k := topKeysOf(pathsFor(ep, true))
		return &k
	}
	return &sseKeyTables[ep]
}

// ssePool recycles stream meters (their scanner and event buffers), so a
// metered stream allocates none once warm.
var ssePool sync.Pool

// getSSEMeter is newSSEMeter from the pool.
func getSSEMeter(ep Endpoint, d Dialect, t *tally, strip bool) *sseMeter {
	s, _ := ssePool.Get().(*sseMeter)
	if s == nil {
		return newSSEMeter(ep, d, t, strip)
	}
	sc := s.scan
	sc.paths = pathsFor(ep, true)
	sc.setWant()
	if len(sc.caps) != len(sc.paths) {
		sc.caps = make([]capture, len(sc.paths))
	}
	sc.reset()
	s.walked.reset()
	*s = sseMeter{ep: ep, d: d, scan: sc, tally: t, strip: strip && ep == EndpointChat,
		evName: s.evName[:0], dataHead: s.dataHead[:0], hold: s.hold[:0], out: s.out[:0], ms: s.ms[:0], walked: s.walked, keys: sseTopKeys(ep), last: s.last[:0],
		top: topCaptures{inner: s.top.inner[:0]}}
	return s
}

// putSSEMeter returns a stream meter nobody uses any more; big buffers
// are dropped.
func putSSEMeter(s *sseMeter) {
	if cap(s.hold) > 16<<10 {
		s.hold = nil
	}
	if cap(s.out) > 16<<10 {
		s.out = nil
	}
	if cap(s.ms) > 256 {
		s.ms = nil
	}
	if cap(s.top.inner) > 256 {
		s.top.inner = nil
	}
	for i := range s.scan.caps {
		if cap(s.scan.caps[i].buf) > 4<<10 {
			s.scan.caps[i].buf = nil
		}
	}
	s.tally = nil
	ssePool.Put(s)
}

// feed consumes p; in strip mode the bytes to relay accumulate in s.out.
func (s *sseMeter) feed(p []byte) {
	for i := 0; i < len(p); {
		c := p[i]
		if s.lastCR {
			s.lastCR = false
			if c == '\n' {
				s.emit(p[i : i+1])
				i++
				continue
			}
		}
		if s.inValue {
			j := indexEOL(p[i:])
			run := p[i : i+j]
			if s.skipSpace && len(run) > 0 {
				s.skipSpace = false
				if run[0] == ' ' {
					s.emit(run[:1])
					run, i = run[1:], i+1
					j--
					if s.kind == 'd' {
						s.dataStart = len(s.hold)
					}
				}
			}
			s.value(run)
			s.emit(run)
			s.lineLen += len(run)
			i += j
			if i < len(p) {
				s.endLine(p[i])
				i++
			}
			continue
		}
		if j := fieldNameRun(p[i:]); j > 0 { // the field name's bytes, at once
			name := p[i : i+j]
			s.emit(name)
			if s.flen < len(s.field) {
				copy(s.field[s.flen:], name)
			}
			s.flen += j
			s.lineLen += j
			i += j
			continue
		}
		s.emit(p[i : i+1]) // a colon or a line end
		i++
		if c == ':' {
			s.lineLen++
			s.startValue()
			continue
		}
		s.lastCR = c == '\r'
		s.lineEnd()
	}
}

// fieldNameRun is the length of the field name bytes b starts with: up
// to the first colon, CR or LF.
func fieldNameRun(b []byte) int {
	for j, c := range b {
		if c == ':' || c == '\r' || c == '\n' {
			return j
		}
	}
	return len(b)
}

// indexEOL returns the index of the first LF or CR in b, or len(b) (a
// data line is most of an event's bytes).
func indexEOL(b []byte) int { return indexEither(b, '\n', '\r') }

// endLine handles a line terminator met inside a value.
func (s *sseMeter) endLine(c byte) {
	if s.kind == 'd' {
		s.dataEnd = len(s.hold)
	}
	s.emit([]byte{c})
	s.lastCR = c == '\r'
	s.lineEnd()
}

func (s *sseMeter) startValue() {
	s.inValue, s.skipSpace = true, true
	switch string(s.field[:min(s.flen, len(s.field))]) {
	case "data":
		if s.flen == 4 {
			s.kind = 'd'
			if s.dataLines > 0 {
				s.catchUp() // before the offsets move on
				s.scanWrite([]byte{'\n'})
			}
			s.dataStart, s.dataEnd = len(s.hold), -1
			s.dataLines++
			s.deferred = !s.passthrough && !s.noDefer && s.dataLines == 1 && s.keys.held
		}
	case "event":
		if s.flen == 5 {
			s.kind = 'e'
			s.evName = s.evName[:0]
		}
	}
}

func (s *sseMeter) value(run []byte) {
	switch s.kind {
	case 'd':
		switch {
		case !s.deferred:
			s.scanWrite(run)
		case !s.strip: // strip mode's emit holds the whole event
			s.holdData(run)
		}
		if s.dataLines == 1 && len(s.dataHead) < 8 {
			s.dataHead = append(s.dataHead, run[:min(len(run), 8-len(s.dataHead))]...)
		}
	case 'e':
		if room := 64 - len(s.evName); room > 0 {
			s.evName = append(s.evName, run[:min(len(run), room)]...)
		}
	}
}

// holdData holds a run of the deferred data value (outside strip mode);
// past maxHold the value goes to the scanner instead, from its start.
func (s *sseMeter) holdData(run []byte) {
	if len(s.hold)+len(run) <= maxHold {
		s.hold = append(s.hold, run...)
		return
	}
	s.catchUp()
	s.scanWrite(run)
}

func (s *sseMeter) lineEnd() {
	empty := s.lineLen == 0
	s.inValue, s.skipSpace, s.kind, s.flen, s.lineLen = false, false, 0, 0, 0
	if empty {
		s.dispatch(true)
	}
}

// emit passes relayed bytes on: held in strip mode, otherwise nothing to do
// (the caller relays its buffer as is).
func (s *sseMeter) emit(b []byte) {
	if !s.strip {
		return
	}
	if s.passthrough {
		s.out = append(s.out, b...)
		return
	}
	s.hold = append(s.hold, b...)
	if len(s.hold) > maxHold {
		s.catchUp() // the held value is about to go
		s.out = append(s.out, s.hold...)
		s.hold, s.passthrough = s.hold[:0], true
	}
}

// dispatch interprets the finished event; complete=false at end of stream
// without the closing blank line (then held bytes go out unedited).
func (s *sseMeter) dispatch(complete bool) {
	if s.deferred { // one data line, all held: walk it once
		s.deferred = false
		end := s.dataEnd
		if end < 0 {
			end = len(s.hold)
		}
		data := s.hold[s.dataStart:end]
		if s.settles(data) {
			s.quiet = true
			s.settled++
		} else if ms, _, _, ok := s.walked.walk(data); ok && s.top.fromMembers(data, ms, s.keys) {
			s.topMs, s.useTop = ms, true
			s.walks++
		} else {
			s.scanWrite(data) // the scanner's reading of what the walk refuses
		}
	}
	if s.dataLines > 0 {
		if string(s.dataHead) == "[DONE]" && s.dataLines == 1 {
			s.done = true
		}
		if !s.quiet {
			s.interpret()
		}
	}
	if s.strip {
		s.release(complete)
	} else {
		s.hold = s.hold[:0] // the data value, walked
	}
	if s.scanned { // a held walk leaves the scanner as it was: reset
		s.scan.reset()
		s.scanned = false
	}
	s.evName, s.dataHead, s.dataLines = s.evName[:0], s.dataHead[:0], 0
	s.passthrough, s.useTop, s.quiet = false, false, false
}

// Keys a chat chunk spells when it has something to count.
var (
	keyUsage = []byte(`"usage"`)
	keyError = []byte(`"error"`)
)

// usageNullTail ends every chunk of a stream airlock asked include_usage
// for: OpenAI adds "usage":null to each, as their last member.
const usageNullTail = `,"usage":null}`

// settles reports whether a chat chunk's data value can change nothing
// the meter reads, without walking it: the model is known (the first one
// counts), the data spells no "error" key, and no "usage" key but the
// null one of usageNullTail at its very end, so the scanner would capture
// no error and no usage either (an escaped key matches nothing;
// FuzzSSEDeferSame holds it to that). Strip mode cuts that tail without
// the walk's members (release). It costs a few byte compares where a walk
// costs ~200 ns: the chunks between a stream's first and its usage chunk
// are all like this, and differ from each other only in a few bytes, so
// only the bytes a chunk does not share with the last one settled are
// searched (changed).
func (s *sseMeter) settles(data []byte) bool {
	if s.ep != EndpointChat || s.tally.model == "" {
		return false
	}
	tail := endsInUsageNull(data)
	lo, hi := 0, len(data)
	if s.lastOK && s.lastTail == tail {
		lo, hi = s.changed(data)
	}
	w := data[lo:hi]
	if bytes.Contains(w, keyError) {
		return false
	}
	if i := bytes.Index(w, keyUsage); i >= 0 && !(tail && lo+i == len(data)-len(usageNullTail)+1) {
		return false // the tail's is the last place a "usage" fits: no other follows
	}
	s.lastTail, s.lastOK = tail, len(data) <= maxCachedObject
	if s.lastOK {
		s.last = append(s.last[:0], data...)
	}
	return true
}

// changed is the part of data that may spell a key s.last does not: the
// bytes it does not share with s.last at its start or end, widened by a
// key's length less one on each side (a key across the border). A key in
// the shared start would be one of s.last's, which spells none before its
// tail (the shared start stops short of it); one in the shared end is the
// tail's "usage", when both end in usageNullTail (settles asks that, or
// that neither does).
func (s *sseMeter) changed(data []byte) (lo, hi int) {
	const k = len(`"usage"`) - 1 // == len(`"error"`) - 1
	s.pre, s.suf = prefixFrom(data, s.last, s.pre), suffixFrom(data, s.last, s.suf)
	p := min(s.pre, max(0, len(s.last)-len(usageNullTail)))
	q := min(s.suf, min(len(data), len(s.last))-p)
	return max(0, p-k), min(len(data), len(data)-q+k)
}

// prefixFrom is commonPrefix(a, b), tried first at guess (the last
// chunk's: in a stream the shared start is the same chunk after chunk),
// which one SIMD compare confirms.
func prefixFrom(a, b []byte, guess int) int {
	if guess > 0 && guess <= min(len(a), len(b)) && string(a[:guess]) == string(b[:guess]) {
		return guess + commonPrefix(a[guess:], b[guess:])
	}
	return commonPrefix(a, b)
}

// suffixFrom is commonSuffix(a, b), tried first at guess.
func suffixFrom(a, b []byte, guess int) int {
	if guess > 0 && guess <= min(len(a), len(b)) && string(a[len(a)-guess:]) == string(b[len(b)-guess:]) {
		return guess + commonSuffix(a[:len(a)-guess], b[:len(b)-guess])
	}
	return commonSuffix(a, b)
}

// endsInUsageNull reports whether data ends in usageNullTail right after
// a value (no space between: appendWithout would cut the space too).
func endsInUsageNull(data []byte) bool {
	n := len(data) - len(usageNullTail)
	return n > 0 && string(data[n:]) == usageNullTail && !isJSONSpace(data[n-1])
}

// usageNullLast reports whether data ends in usageNullTail (as
// endsInUsageNull) and spells "usage" nowhere else. In a valid object
// that is its last member and its only usage key, and cutting
// usageNullTail's first 13 bytes is appendWithout's edit of it; an
// invalid one is cut the same (without airlock the upstream would not
// have added it).
func usageNullLast(data []byte) bool {
	return endsInUsageNull(data) && bytes.Index(data, keyUsage) == len(data)-len(usageNullTail)+1
}

func (s *sseMeter) interpret() {
	sc, t := s, s.tally
	if e := sc.capture(pError); e != nil && string(e) != "null" {
		t.errored = true
	}
	if s.ep == EndpointChat { // no event types: every chunk is a chat.completion.chunk
		t.addOpenAI(sc.capture(pUsage))
		t.setModel(sc.capture(pModel))
		return
	}
	typ := string(bytes.Trim(sc.capture(pType), `"`))
	if typ == "" {
		typ = string(s.evName)
	}
	switch s.ep {
	case EndpointResponses:
		switch typ {
		case "response.completed", "response.incomplete", "response.failed":
			t.addOpenAI(sc.capture(pRespUsage))
			t.setModel(sc.capture(pRespModel))
			t.errored = t.errored || typ == "response.failed"
		case "error":
			t.errored = true
		}
	case EndpointMessages:
		switch typ {
		case "message_start":
			t.addAnthropic(sc.capture(pMsgUsage), false)
			t.setModel(sc.capture(pMsgModel))
		case "message_delta":
			t.addAnthropic(sc.capture(pUsage), true)
		case "error":
			t.errored = true
		}
	}
}

// release moves the held event to out, dropping or editing it when it
// only exists because airlock asked for include_usage.
func (s *sseMeter) release(complete bool) {
	if s.passthrough || len(s.hold) == 0 {
		s.hold = s.hold[:0]
		return
	}
	ev := s.hold
	if complete && s.dataLines == 1 {
		u := s.capture(pUsage)
		switch {
		case u != nil && string(u) != "null" && string(bytes.TrimSpace(s.capture(pChoices))) == "[]":
			s.dropped++ // never a settled event: settling leaves no capture
			s.hold = s.hold[:0]
			return
		case s.dataEnd <= s.dataStart || s.dataEnd > len(ev): // no data value to edit
		case s.quiet && s.lastTail, !s.quiet && !s.useTop && usageNullLast(ev[s.dataStart:s.dataEnd]):
			// settles found the tail's "usage" the only one; a walked
			// event is cut by its members below, the same bytes when valid
			s.out = append(s.out, ev[:s.dataEnd-len(usageNullTail)]...)
			s.out = append(s.out, ev[s.dataEnd-1:]...)
			s.hold = s.hold[:0]
			return
		case s.quiet: // nothing to cut
		case string(u) == "null":
			data := ev[s.dataStart:s.dataEnd]
			ms, ok := s.topMs, s.useTop // the members of data, walked already
			if !ok {
				s.ms, _, _, ok = appendMembers(s.ms[:0], data)
				ms = s.ms
			}
			if ok {
				if i := find(data, ms, "usage"); i >= 0 {
					s.out = append(s.out, ev[:s.dataStart]...)
					s.out = appendWithout(s.out, data, ms, i)
					s.out = append(s.out, ev[s.dataEnd:]...)
					s.hold = s.hold[:0]
					return
				}
			}
		}
	}
	s.out = append(s.out, ev...)
	s.hold = s.hold[:0]
}

// end finishes the stream: a last event without its blank line is still
// counted, and any held bytes go out unedited.
func (s *sseMeter) end() {
	if s.lineLen > 0 || s.inValue {
		s.lineEnd()
	}
	s.dispatch(false)
}
