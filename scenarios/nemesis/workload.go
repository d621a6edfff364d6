package nemesis

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/anishathalye/porcupine"
)

// Headers of the request-identity contract.
const (
	HeaderIdempotencyKey = "Idempotency-Key"
	HeaderRequestID      = "X-Neutrino-Request-Id"
	HeaderReplayed       = "X-Neutrino-Replayed"
)

// Workload is a set of concurrent clients, each on its own kept-alive
// connections (one http.Transport per client), sending every request to a
// server picked at random, followers included:
//
//   - creators make networks with unique names; even-numbered ones send an
//     Idempotency-Key and retry an unknown outcome with the same key until
//     it is acknowledged (or the hard deadline), odd-numbered ones send no
//     key and never retry an unknown outcome;
//   - CAS writers read the register network (linearizable GET) and PUT a new
//     unique name with If-Match on the revision read; even-numbered ones
//     send an Idempotency-Key and retry unknown outcomes with it;
//   - readers read the register.
type Workload struct {
	// Servers are the API addresses (host:port, or base URLs) of every server.
	Servers []string
	// Names names the servers by address in diagnostics (optional).
	Names map[string]string
	// History receives the register operations.
	History *History
	// Prefix starts every name and key of this run.
	Prefix string
	// Register is the id of the network CAS writers update ("" for none).
	Register string
	// Clients of each kind.
	Creators, CASWriters, Readers int
	// RequestTimeout bounds one HTTP attempt (default 6 s).
	RequestTimeout time.Duration
	// Pace is the mean pause between a client's operations (default 50 ms).
	Pace time.Duration

	mu       sync.Mutex
	creates  []*Create
	problems []*problem
	stats    map[string]int
	attempts []Attempt
}

// Create is one network create as the client saw it.
type Create struct {
	Name, Key string
	Outcome   Outcome
	// ID is the acknowledged network's id.
	ID       string
	Attempts int
	Replayed bool
}

// Run runs the clients. They start operations until stop is closed; a keyed
// operation in flight then still retries until hard ends.
func (w *Workload) Run(hard context.Context, stop <-chan struct{}) {
	if w.RequestTimeout == 0 {
		w.RequestTimeout = 6 * time.Second
	}
	if w.Pace == 0 {
		w.Pace = 50 * time.Millisecond
	}
	w.stats = map[string]int{}
	// Clients also stop starting operations once hard ends.
	stopAll := make(chan struct{})
	go func(stop <-chan struct{}) {
		select {
		case <-stop:
		case <-hard.Done():
		}
		close(stopAll)
	}(stop)
	stop = stopAll
	var wg sync.WaitGroup
	run := func(f func(c *client)) {
		wg.Add(1)
		c := w.newClient()
		go func() {
			defer wg.Done()
			defer c.hc.CloseIdleConnections()
			f(c)
		}()
	}
	for i := range w.Creators {
		run(func(c *client) { w.creator(hard, stop, c, i, i%2 == 0) })
	}
	if w.Register != "" {
		for i := range w.CASWriters {
			run(func(c *client) { w.casWriter(hard, stop, c, i, i%2 == 0) })
		}
		for range w.Readers {
			run(func(c *client) { w.reader(stop, c) })
		}
	}
	wg.Wait()
}

// Creates returns every create attempted.
func (w *Workload) Creates() []*Create {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]*Create(nil), w.creates...)
}

// Problems returns the answers no correct server gives (a 4xx to a valid
// create, a 5xx other than 503, an answer breaking the request-identity
// contract), one line per class with its count and first example.
func (w *Workload) Problems() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []string
	for _, p := range w.problems {
		out = append(out, fmt.Sprintf("%s (%d times), first: %s", p.class, p.count, p.example))
	}
	return out
}

// Stats counts answers by request kind, status and error type.
func (w *Workload) Stats() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	keys := make([]string, 0, len(w.stats))
	for k := range w.stats {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "%s=%d ", k, w.stats[k])
	}
	return strings.TrimSpace(b.String())
}

// problem records a bad answer under its class (what is wrong, without
// names), keeping the count and the first example of each class.
func (w *Workload) problem(class, format string, args ...any) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, p := range w.problems {
		if p.class == class {
			p.count++
			return
		}
	}
	w.problems = append(w.problems, &problem{class: class, example: fmt.Sprintf(format, args...), count: 1})
}

type problem struct {
	class, example string
	count          int
}

func (w *Workload) count(kind string, r reply) {
	k := kind + ":"
	switch {
	case r.err != nil && r.dialFailed:
		k += "dial-error"
	case r.err != nil:
		k += "conn-error"
	default:
		k += strconv.Itoa(r.status)
		if r.typ != "" {
			k += "-" + r.typ
		}
	}
	w.mu.Lock()
	w.stats[k]++
	w.mu.Unlock()
}

// Attempt is one answered write attempt: which server it went to and how
// long that server held the client.
type Attempt struct {
	Addr       string
	Begin, End time.Time
	What       string
}

// timed records an answered write attempt.
func (w *Workload) timed(began time.Time, addr string, r reply, what string) {
	if r.err != nil {
		return
	}
	a := Attempt{Addr: addr, Begin: began, End: time.Now(), What: what}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.attempts = append(w.attempts, a)
}

// Slowest returns the slowest answered write attempt for which skip is
// false (e.g. one sent to a server that was frozen meanwhile).
func (w *Workload) Slowest(skip func(Attempt) bool) (Attempt, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	var best Attempt
	found := false
	for _, a := range w.attempts {
		if skip(a) {
			continue
		}
		if !found || a.End.Sub(a.Begin) > best.End.Sub(best.Begin) {
			best, found = a, true
		}
	}
	return best, found
}

type client struct {
	id  int
	hc  *http.Client
	rng *rand.Rand
}

func (w *Workload) newClient() *client {
	return &client{
		id: w.History.NewClient(),
		hc: &http.Client{Timeout: w.RequestTimeout, Transport: &http.Transport{
			DialContext:         (&net.Dialer{Timeout: time.Second}).DialContext,
			MaxIdleConnsPerHost: 2,
		}},
		rng: rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64())),
	}
}

func (w *Workload) server(c *client) string { return w.Servers[c.rng.IntN(len(w.Servers))] }

// pause waits about Pace, or less when stop closes.
func (w *Workload) pause(c *client, stop <-chan struct{}) bool {
	d := time.Duration(c.rng.Int64N(int64(2 * w.Pace)))
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-stop:
		return false
	case <-t.C:
		return true
	}
}

func stopped(stop <-chan struct{}) bool {
	select {
	case <-stop:
		return true
	default:
		return false
	}
}

// backoff waits before a retry, giving up when ctx ends.
func backoff(ctx context.Context, attempt int) bool {
	d := min(time.Duration(attempt)*50*time.Millisecond, 500*time.Millisecond)
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// reply is one HTTP exchange.
type reply struct {
	status     int
	typ, msg   string
	header     http.Header
	body       []byte
	err        error
	dialFailed bool
}

func (c *client) do(ctx context.Context, method, url string, body any, hdr map[string]string) reply {
	var rd io.Reader
	if body != nil {
		data, err := json.Marshal(body)
		if err != nil {
			return reply{err: err}
		}
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return reply{err: err}
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		var op *net.OpError
		return reply{err: err, dialFailed: errors.As(err, &op) && op.Op == "dial"}
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	r := reply{status: resp.StatusCode, header: resp.Header, body: data, err: err}
	if err != nil {
		return r
	}
	var ne struct {
		NeutronError struct {
			Type    string `json:"type"`
			Message string `json:"message"`
		} `json:"NeutronError"`
	}
	if resp.StatusCode >= 400 && json.Unmarshal(data, &ne) == nil {
		r.typ, r.msg = ne.NeutronError.Type, ne.NeutronError.Message
	}
	return r
}

// base is the API's base URL at addr (host:port or a URL).
func base(addr string) string {
	if strings.Contains(addr, "://") {
		return strings.TrimSuffix(addr, "/")
	}
	return "http://" + addr
}

// classify sorts a write's answer by what it says about the write's effect.
//
// A failed dial means nothing was sent, unless the request carries an
// Idempotency-Key: Go's transport then takes it as replayable and may have
// sent it on a kept-alive connection that broke before it dialed anew.
func classify(r reply, keyed bool) Outcome {
	switch {
	case r.err != nil && r.dialFailed && !keyed:
		return NotApplied
	case r.err != nil:
		return Unknown
	case r.status >= 200 && r.status < 300:
		return OK
	case r.status == http.StatusPreconditionFailed:
		return Rejected
	case r.status == http.StatusServiceUnavailable && r.typ != "" && r.typ != "OutcomeUnknown":
		return NotApplied
	case r.status >= 500:
		return Unknown
	default:
		return NotApplied
	}
}

// checkAnswer records answers the contract rules out: a 422 (the workload
// never reuses a key for another request), a 5xx other than 503, a 503
// without Retry-After, a write's answer without its identity, an
// OutcomeUnknown that does not name the key to retry with.
func (w *Workload) checkAnswer(kind, what string, write bool, key string, r reply) {
	if r.err != nil {
		return
	}
	id := r.header.Get(HeaderRequestID)
	switch {
	case r.status == http.StatusUnprocessableEntity:
		w.problem(kind+": 422 "+r.typ, "%s: %s", what, r.msg)
	case r.status >= 500 && r.status != http.StatusServiceUnavailable:
		w.problem(fmt.Sprintf("%s: %d %s", kind, r.status, r.typ), "%s: %s", what, r.msg)
	case r.status == http.StatusServiceUnavailable && r.header.Get("Retry-After") == "":
		w.problem(kind+": 503 "+r.typ+" without Retry-After", "%s: %s", what, r.msg)
	case r.typ == "OutcomeUnknown" && (id == "" || !strings.Contains(r.msg, id) && (key == "" || !strings.Contains(r.msg, key))):
		w.problem(kind+": OutcomeUnknown without the key in "+HeaderRequestID+" and message", "%s: %q, %q", what, id, r.msg)
	case write && r.typ != "ServiceUnavailable" && id == "":
		w.problem(fmt.Sprintf("%s: %d without %s", kind, r.status, HeaderRequestID), "%s", what)
	case write && key != "" && id != "" && !strings.HasSuffix(id, key):
		w.problem(kind+": "+HeaderRequestID+" does not carry the key", "%s: %q", what, id)
	}
}

type network struct {
	Network struct {
		ID             string `json:"id"`
		Name           string `json:"name"`
		RevisionNumber uint64 `json:"revision_number"`
	} `json:"network"`
}

func (w *Workload) creator(hard context.Context, stop <-chan struct{}, c *client, n int, keyed bool) {
	for seq := 0; w.pause(c, stop); seq++ {
		cr := &Create{Name: fmt.Sprintf("%s-c%d-%d", w.Prefix, n, seq)}
		if keyed {
			cr.Key = cr.Name + "-key"
		}
		w.mu.Lock()
		w.creates = append(w.creates, cr)
		w.mu.Unlock()
		w.create(hard, c, cr)
	}
}

func (w *Workload) create(hard context.Context, c *client, cr *Create) {
	body := map[string]any{"network": map[string]any{"name": cr.Name}}
	hdr := map[string]string{}
	if cr.Key != "" {
		hdr[HeaderIdempotencyKey] = cr.Key
	}
	maybe := false
	for attempt := 1; ; attempt++ {
		cr.Attempts = attempt
		addr := w.server(c)
		began := time.Now()
		r := c.do(hard, http.MethodPost, base(addr)+"/v2.0/networks", body, hdr)
		w.timed(began, addr, r, "create "+cr.Name+" "+w.via(addr, r))
		w.count("create", r)
		what := fmt.Sprintf("create %s (key %q, attempt %d)", cr.Name, cr.Key, attempt)
		w.checkAnswer("create", what, true, cr.Key, r)
		out := classify(r, cr.Key != "")
		switch {
		case out == OK:
			var nw network
			if err := json.Unmarshal(r.body, &nw); err != nil || nw.Network.ID == "" || nw.Network.Name != cr.Name {
				w.problem("create: acknowledged with a body not naming it", "%s: %q", what, r.body)
			}
			cr.Outcome, cr.ID = OK, nw.Network.ID
			cr.Replayed = r.header.Get(HeaderReplayed) == "true"
			return
		case out == NotApplied && r.err == nil && r.status < 500:
			// A valid create of a unique name has no reason to be refused.
			w.problem(fmt.Sprintf("create: %d %s", r.status, r.typ), "%s: %s", what, r.msg)
			cr.Outcome = NotApplied
			if maybe {
				cr.Outcome = Unknown
			}
			return
		case out == Unknown:
			maybe = true
			if cr.Key == "" {
				cr.Outcome = Unknown
				return
			}
		}
		// Not applied for certain (no leader, not ready, not reachable):
		// any client may try again; a keyed one also after an unknown outcome.
		if !backoff(hard, attempt) {
			cr.Outcome = NotApplied
			if maybe {
				cr.Outcome = Unknown
			}
			return
		}
	}
}

// read does one linearizable GET of the register and records it.
func (w *Workload) read(c *client) (RegisterState, bool) {
	call := w.History.Now()
	addr := w.server(c)
	r := c.do(context.Background(), http.MethodGet, base(addr)+"/v2.0/networks/"+w.Register, nil, nil)
	ret := w.History.Now()
	w.count("read", r)
	w.checkAnswer("read", "read", false, "", r)
	if r.err != nil || r.status != http.StatusOK {
		if r.err == nil && r.status != http.StatusServiceUnavailable {
			w.problem(fmt.Sprintf("read: %d %s", r.status, r.typ), "%s", r.msg)
		}
		return RegisterState{}, false
	}
	var nw network
	if err := json.Unmarshal(r.body, &nw); err != nil {
		w.problem("read: undecodable body", "%q: %v", r.body, err)
		return RegisterState{}, false
	}
	s := RegisterState{Rev: nw.Network.RevisionNumber, Name: nw.Network.Name}
	w.History.Add(porcupine.Operation{ClientId: c.id, Input: RegisterInput{Kind: OpRead}, Call: call,
		Output: RegisterOutput{Outcome: OK, Rev: s.Rev, Name: s.Name}, Return: ret, Metadata: w.via(addr, r)})
	return s, true
}

func (w *Workload) reader(stop <-chan struct{}, c *client) {
	for w.pause(c, stop) {
		w.read(c)
	}
}

func (w *Workload) casWriter(hard context.Context, stop <-chan struct{}, c *client, n int, keyed bool) {
	for seq := 0; w.pause(c, stop); seq++ {
		s, ok := w.read(c)
		if !ok || stopped(stop) {
			continue
		}
		in := RegisterInput{Kind: OpCAS, Expect: s.Rev, Name: fmt.Sprintf("%s-w%d-%d", w.Prefix, n, seq)}
		if keyed {
			in.Key = in.Name + "-key"
		}
		call := w.History.Now()
		out, meta := w.cas(hard, c, in)
		ret := w.History.Now()
		if out.Outcome == Unknown {
			ret = Never
		}
		w.History.Add(porcupine.Operation{ClientId: c.id, Input: in, Call: call, Output: out, Return: ret, Metadata: meta})
		if out.Outcome == Unknown {
			c.id = w.History.NewClient()
		}
	}
}

// cas runs one CAS (with its retries) and returns its outcome and which
// servers its attempts went to and were served by.
func (w *Workload) cas(hard context.Context, c *client, in RegisterInput) (out RegisterOutput, meta string) {
	defer func() { meta = strings.TrimPrefix(meta, "; ") }()
	body := map[string]any{"network": map[string]any{"name": in.Name}}
	hdr := map[string]string{"If-Match": "revision_number=" + strconv.FormatUint(in.Expect, 10)}
	if in.Key != "" {
		hdr[HeaderIdempotencyKey] = in.Key
	}
	maybe := false
	for attempt := 1; ; attempt++ {
		addr := w.server(c)
		began := time.Now()
		r := c.do(hard, http.MethodPut, base(addr)+"/v2.0/networks/"+w.Register, body, hdr)
		w.timed(began, addr, r, "cas "+in.Name+" "+w.via(addr, r))
		meta += "; " + w.via(addr, r)
		w.count("cas", r)
		what := fmt.Sprintf("cas %s (key %q, attempt %d)", in.Name, in.Key, attempt)
		w.checkAnswer("cas", what, true, in.Key, r)
		out := classify(r, in.Key != "")
		switch {
		case out == OK:
			var nw network
			err := json.Unmarshal(r.body, &nw)
			replayed := r.header.Get(HeaderReplayed) == "true"
			if err != nil || (!replayed && (nw.Network.RevisionNumber != in.Expect+1 || nw.Network.Name != in.Name)) {
				w.problem("cas: acknowledged with a body not showing the update", "%s: %q", what, r.body)
			}
			return RegisterOutput{Outcome: OK}, meta
		case out == Rejected:
			// Even after an unknown outcome: a repeat of an applied keyed
			// request answers with the first outcome (contract), so a 412
			// says the update never applied.
			return RegisterOutput{Outcome: Rejected}, meta
		case out == NotApplied && r.err == nil && r.status < 500:
			w.problem(fmt.Sprintf("cas: %d %s", r.status, r.typ), "%s: %s", what, r.msg)
			if maybe {
				return RegisterOutput{Outcome: Unknown}, meta
			}
			return RegisterOutput{Outcome: NotApplied}, meta
		case out == Unknown:
			maybe = true
			if in.Key == "" {
				return RegisterOutput{Outcome: Unknown}, meta
			}
		case in.Key == "":
			// Not applied for certain: done, as seen by a client that
			// does not retry.
			return RegisterOutput{Outcome: NotApplied}, meta
		}
		if !backoff(hard, attempt) {
			if maybe {
				return RegisterOutput{Outcome: Unknown}, meta
			}
			return RegisterOutput{Outcome: NotApplied}, meta
		}
	}
}

// via says which server a request went to and which one served it.
func (w *Workload) via(addr string, r reply) string {
	served := ""
	if r.header != nil {
		served = r.header.Get("X-Neutrino-Served-By")
	}
	out := "to " + addr
	if n := w.Names[addr]; n != "" {
		out = "to " + n
	}
	if served != "" {
		out += " served by " + served
	}
	if r.err != nil {
		out += " (" + r.err.Error() + ")"
	} else {
		out += " " + strconv.Itoa(r.status)
	}
	return out
}

// ReadRegister reads the register until an answer or ctx ends, and records
// the read: a final read after the faults makes a lost update visible.
func (w *Workload) ReadRegister(ctx context.Context) (RegisterState, error) {
	c := w.newClient()
	defer c.hc.CloseIdleConnections()
	for attempt := 1; ; attempt++ {
		if s, ok := w.read(c); ok {
			return s, nil
		}
		if !backoff(ctx, attempt) {
			return RegisterState{}, fmt.Errorf("no answer to a read of the register: %w", ctx.Err())
		}
	}
}

// CreateNetwork creates one network (no faults expected) and returns its
// id and state.
func CreateNetwork(ctx context.Context, addr, name string) (string, RegisterState, error) {
	c := &client{hc: &http.Client{Timeout: 10 * time.Second}}
	r := c.do(ctx, http.MethodPost, base(addr)+"/v2.0/networks", map[string]any{"network": map[string]any{"name": name}}, nil)
	if r.err != nil {
		return "", RegisterState{}, r.err
	}
	var nw network
	if r.status != http.StatusCreated || json.Unmarshal(r.body, &nw) != nil || nw.Network.ID == "" {
		return "", RegisterState{}, fmt.Errorf("create %s: %d %s", name, r.status, r.body)
	}
	return nw.Network.ID, RegisterState{Rev: nw.Network.RevisionNumber, Name: nw.Network.Name}, nil
}

// ListNetworks returns the ids of every network by name, through addr: a
// linearizable read, or the server's own replica when stale.
func ListNetworks(ctx context.Context, addr string, stale bool) (map[string][]string, error) {
	c := &client{hc: &http.Client{Timeout: 10 * time.Second}}
	u := base(addr) + "/v2.0/networks?fields=id&fields=name"
	if stale {
		u += "&stale"
	}
	r := c.do(ctx, http.MethodGet, u, nil, nil)
	if r.err != nil {
		return nil, r.err
	}
	if r.status != http.StatusOK {
		return nil, fmt.Errorf("list networks via %s: %d %s", addr, r.status, r.body)
	}
	var l struct {
		Networks []struct {
			ID   string `json:"id"`
			Name string `json:"name"`
		} `json:"networks"`
	}
	if err := json.Unmarshal(r.body, &l); err != nil {
		return nil, fmt.Errorf("list networks via %s: %w", addr, err)
	}
	out := map[string][]string{}
	for _, n := range l.Networks {
		out[n.Name] = append(out[n.Name], n.ID)
	}
	return out, nil
}

// CreateReport counts creates by outcome.
type CreateReport struct {
	Acked, AckedKeyed, Unknown, UnknownPresent, NotApplied, Replayed int
}

// CheckCreates compares the creates with the networks present (by name)
// and returns every violation: an acknowledged create missing or present
// under another id, any name present twice, a create said to be not
// applied that is present, a name of this run nobody created.
func CheckCreates(creates []*Create, present map[string][]string, prefix string) (CreateReport, []string) {
	var rep CreateReport
	var bad []string
	names := map[string]bool{}
	for _, c := range creates {
		names[c.Name] = true
		ids := present[c.Name]
		if len(ids) > 1 {
			bad = append(bad, fmt.Sprintf("%s (key %q, %s after %d attempts) is present %d times: %v",
				c.Name, c.Key, c.Outcome, c.Attempts, len(ids), ids))
		}
		switch c.Outcome {
		case OK:
			rep.Acked++
			if c.Key != "" {
				rep.AckedKeyed++
			}
			if c.Replayed {
				rep.Replayed++
			}
			if len(ids) == 0 {
				bad = append(bad, fmt.Sprintf("%s (key %q, id %s) was acknowledged and is lost", c.Name, c.Key, c.ID))
			} else if ids[0] != c.ID && len(ids) == 1 {
				bad = append(bad, fmt.Sprintf("%s (key %q) was acknowledged as %s but is present as %s", c.Name, c.Key, c.ID, ids[0]))
			}
		case NotApplied:
			rep.NotApplied++
			if len(ids) > 0 {
				bad = append(bad, fmt.Sprintf("%s (key %q) was answered as not applied and is present", c.Name, c.Key))
			}
		default:
			rep.Unknown++
			if len(ids) > 0 {
				rep.UnknownPresent++
			}
		}
	}
	for name := range present {
		if strings.HasPrefix(name, prefix+"-c") && !names[name] {
			bad = append(bad, fmt.Sprintf("%s is present but was never created", name))
		}
	}
	sort.Strings(bad)
	return rep, bad
}
