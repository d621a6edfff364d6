// Package watch follows the replicated state from outside Raft: a chassis
// agent keeps a local copy of some tables, fed by long polls to any server
// (GET /v1/watch), resumed from its revision after a failover, and rebuilt
// from a snapshot (GET /v1/watch/snapshot) when a server answers 410 Gone.
// Subscribers hear of every change batch after the copy holds it; the copy
// only ever moves forward, and only from one consistent revision to the
// next.
package watch

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"neutrino/fsm"
)

// Defaults of Config.
const (
	DefaultPollTimeout    = 10 * time.Second
	DefaultRequestTimeout = 5 * time.Second
	DefaultMaxBackoff     = time.Second
)

// Config configures a Watcher.
type Config struct {
	// Servers lists the servers' API addresses ("host:port" or a URL),
	// asked again on every failover (e.g. from gossip).
	Servers func() []string
	// Tables are the fsm tables to keep (fsm.WatchTables).
	Tables []string
	// Token is sent as X-Auth-Token (the watch needs the admin role).
	Token string
	// TokenFunc, when set, gives the token for each request instead
	// (Keystone tokens expire and are renewed).
	TokenFunc func(context.Context) (string, error)
	// PollTimeout is how long a server holds a poll with nothing new.
	PollTimeout time.Duration
	// RequestTimeout bounds a snapshot, a poll beyond PollTimeout, and a
	// dial: what a dead or unreachable server costs at most.
	RequestTimeout time.Duration
	// MaxChanges asks for at most this many changes per answer (0: the
	// server's cap).
	MaxChanges int
	// MaxBackoff caps the pause after every server failed in a row.
	MaxBackoff time.Duration
	// TLS is the client configuration for https:// servers (the agent's
	// certificate and the cluster CA); nil uses Go's defaults.
	TLS    *tls.Config
	Logger *slog.Logger
}

// Change is one object of a batch: its new state (Op OpUpsert, Object the
// *fsm type of the table) or its removal (OpDelete, Object nil).
type Change struct {
	Table  string
	ID     string
	Op     string
	Object any
}

// Batch is what subscribers hear: the copy now is at Revision and these
// objects changed since the previous batch. Resync is set when the copy was
// rebuilt from a snapshot (first sync, or after 410 Gone).
type Batch struct {
	Revision uint64
	Resync   bool
	Changes  []Change
}

// Stats counts what a Watcher went through.
type Stats struct {
	// Resyncs counts snapshots read, the first included.
	Resyncs int
	// Failovers counts moves from a failing server to another.
	Failovers int
	// Answers counts the watch answers received, pages included.
	Answers int
	// Server is the server asked last.
	Server string
}

type entry struct {
	raw json.RawMessage
	obj any
}

// Watcher keeps a local copy of the watched tables.
type Watcher struct {
	cfg    Config
	log    *slog.Logger
	http   *http.Client
	cancel context.CancelFunc
	done   chan struct{}
	query  string

	mu     sync.RWMutex
	tables map[string]map[string]entry
	rev    uint64
	epoch  uint64
	synced bool
	// heard is the revision the subscribers last heard of; changed is
	// closed and replaced whenever it moves.
	heard   uint64
	changed chan struct{}
	subs    map[int]func(Batch)
	nextSub int
	stats   Stats

	// Used by the run goroutine only: the pages of an answer that is not
	// complete yet (More), the revision to ask from, and the newest read
	// revision of those pages.
	pending map[[2]string]WireChange
	next    uint64
	high    uint64
}

// New starts a Watcher; it syncs in the background (Synced, WaitRevision).
func New(cfg Config) (*Watcher, error) {
	if cfg.Servers == nil {
		return nil, errors.New("watch: Servers is required")
	}
	if len(cfg.Tables) == 0 {
		return nil, errors.New("watch: no tables")
	}
	for _, t := range cfg.Tables {
		if !fsm.IsWatchTable(t) {
			return nil, fmt.Errorf("watch: unknown table %q", t)
		}
	}
	if cfg.PollTimeout <= 0 {
		cfg.PollTimeout = DefaultPollTimeout
	}
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = DefaultRequestTimeout
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = DefaultMaxBackoff
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	ctx, cancel := context.WithCancel(context.Background())
	w := &Watcher{cfg: cfg, log: cfg.Logger.With("component", "watch"), cancel: cancel,
		done: make(chan struct{}), query: strings.Join(cfg.Tables, ","),
		tables: map[string]map[string]entry{}, changed: make(chan struct{}),
		subs: map[int]func(Batch){}, pending: map[[2]string]WireChange{},
		http: &http.Client{Transport: &http.Transport{
			DialContext:         (&net.Dialer{Timeout: cfg.RequestTimeout}).DialContext,
			MaxIdleConnsPerHost: 2,
			IdleConnTimeout:     90 * time.Second,
			TLSClientConfig:     cfg.TLS,
		}}}
	for _, t := range cfg.Tables {
		w.tables[t] = map[string]entry{}
	}
	go w.run(ctx)
	return w, nil
}

// Close stops the Watcher; the copy stays readable as it was.
func (w *Watcher) Close() {
	w.cancel()
	<-w.done
	w.http.CloseIdleConnections()
}

// Revision is the revision the copy is at (0 before the first sync).
func (w *Watcher) Revision() uint64 {
	w.mu.RLock()
	defer w.mu.RUnlock()
	return w.rev
}

// Synced reports whether the copy has been filled from a server.
func (w *Watcher) Synced() bool {
	w.mu.RLock()
	defer w.mu.RUnlock()
	return w.synced
}

// Stats returns the counters.
func (w *Watcher) Stats() Stats {
	w.mu.RLock()
	defer w.mu.RUnlock()
	return w.stats
}

// Get returns the object of a watched table with the id (an *fsm type,
// not to be changed), or nil.
func (w *Watcher) Get(table, id string) any {
	w.mu.RLock()
	defer w.mu.RUnlock()
	return w.tables[table][id].obj
}

// List returns every object of a watched table, ordered by id, and the
// revision they are at.
func (w *Watcher) List(table string) ([]any, uint64) {
	w.mu.RLock()
	defer w.mu.RUnlock()
	ids := slices.Sorted(maps.Keys(w.tables[table]))
	out := make([]any, len(ids))
	for i, id := range ids {
		out[i] = w.tables[table][id].obj
	}
	return out, w.rev
}

// Get is Watcher.Get typed: Get[*fsm.Port](w, fsm.TablePorts, id).
func Get[T any](w *Watcher, table, id string) (T, bool) {
	v, ok := w.Get(table, id).(T)
	return v, ok
}

// List is Watcher.List typed.
func List[T any](w *Watcher, table string) []T {
	objs, _ := w.List(table)
	out := make([]T, 0, len(objs))
	for _, o := range objs {
		if v, ok := o.(T); ok {
			out = append(out, v)
		}
	}
	return out
}

// Subscribe calls fn with every batch from now on, in revision order, from
// the Watcher's one goroutine once the copy holds the batch; fn must not
// block for long. The returned func unsubscribes.
func (w *Watcher) Subscribe(fn func(Batch)) (cancel func()) {
	w.mu.Lock()
	defer w.mu.Unlock()
	id := w.nextSub
	w.nextSub++
	w.subs[id] = fn
	return func() {
		w.mu.Lock()
		delete(w.subs, id)
		w.mu.Unlock()
	}
}

// WaitRevision waits until the copy is at rev or later and the
// subscribers heard of it, or ctx ends.
func (w *Watcher) WaitRevision(ctx context.Context, rev uint64) error {
	for {
		w.mu.RLock()
		cur, ch := w.heard, w.changed
		synced := w.synced
		w.mu.RUnlock()
		if synced && cur >= rev {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("watch: at revision %d, waiting for %d: %w", cur, rev, ctx.Err())
		}
	}
}

// errGone: the server cannot continue from our revision; read a snapshot.
var errGone = errors.New("revision gone")

func (w *Watcher) run(ctx context.Context) {
	defer close(w.done)
	cur := ""
	failed := 0
	backoff := 50 * time.Millisecond
	for ctx.Err() == nil {
		servers := w.cfg.Servers()
		if len(servers) == 0 {
			if !sleep(ctx, backoff) {
				return
			}
			backoff = min(2*backoff, w.cfg.MaxBackoff)
			continue
		}
		if !slices.Contains(servers, cur) {
			cur = servers[0]
		}
		w.mu.Lock()
		w.stats.Server = cur
		w.mu.Unlock()
		err := w.step(ctx, cur)
		switch {
		case err == nil:
			failed, backoff = 0, 50*time.Millisecond
			continue
		case errors.Is(err, errGone):
			w.log.Info("revision gone, reading a snapshot", "server", cur, "err", err)
			w.mu.Lock()
			w.synced = false
			w.mu.Unlock()
			clear(w.pending)
			w.high = 0
			continue
		case ctx.Err() != nil:
			return
		}
		w.log.Warn("watch server failed, trying another", "server", cur, "err", err)
		i := slices.Index(servers, cur)
		cur = servers[(i+1)%len(servers)]
		w.mu.Lock()
		w.stats.Failovers++
		w.mu.Unlock()
		failed++
		if failed%len(servers) == 0 {
			// Every server failed in a row: wait before another round.
			if !sleep(ctx, backoff) {
				return
			}
			backoff = min(2*backoff, w.cfg.MaxBackoff)
		}
	}
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

func (w *Watcher) step(ctx context.Context, server string) error {
	w.mu.RLock()
	synced, rev, epoch := w.synced, w.rev, w.epoch
	w.mu.RUnlock()
	if !synced {
		return w.resync(ctx, server, rev)
	}
	if w.next < rev {
		w.next = rev
	}
	q := url.Values{"tables": {w.query}, "since": {strconv.FormatUint(w.next, 10)},
		"timeout": {strconv.FormatFloat(w.cfg.PollTimeout.Seconds(), 'f', -1, 64)}}
	if epoch != 0 {
		q.Set("epoch", strconv.FormatUint(epoch, 10))
	}
	if w.cfg.MaxChanges > 0 {
		q.Set("limit", strconv.Itoa(w.cfg.MaxChanges))
	}
	var ans Answer
	if err := w.get(ctx, server, PathWatch, q, w.cfg.PollTimeout+w.cfg.RequestTimeout, &ans); err != nil {
		return err
	}
	if ans.Format != Format {
		return fmt.Errorf("watch: %s answers format %d, want %d", server, ans.Format, Format)
	}
	w.mu.Lock()
	w.stats.Answers++
	w.mu.Unlock()
	if ans.Revision <= w.next {
		// Nothing new, or a server behind us: it answered after its wait.
		return nil
	}
	for _, c := range ans.Changes {
		w.pending[[2]string{c.Table, c.ID}] = c
	}
	w.next = ans.Revision
	w.high = max(w.high, ans.ReadAt)
	if ans.More || w.next < w.high {
		// The objects so far are as of a later revision than the changes
		// reach: the copy moves only once the changes catch up.
		return nil
	}
	changes, err := decodeAll(slices.Collect(maps.Values(w.pending)))
	if err != nil {
		return fmt.Errorf("watch: %s: %w", server, err)
	}
	clear(w.pending)
	w.high = 0
	if ans.Epoch != 0 {
		epoch = ans.Epoch
	}
	w.publish(w.next, epoch, false, changes, nil)
	return nil
}

// resync replaces the copy with a server's snapshot, unless the server is
// behind the copy.
func (w *Watcher) resync(ctx context.Context, server string, rev uint64) error {
	var snap SnapshotAnswer
	q := url.Values{"tables": {w.query}}
	if err := w.get(ctx, server, PathSnapshot, q, w.cfg.RequestTimeout, &snap); err != nil {
		return err
	}
	if snap.Format != Format {
		return fmt.Errorf("watch: %s answers format %d, want %d", server, snap.Format, Format)
	}
	w.mu.RLock()
	epoch := w.epoch
	w.mu.RUnlock()
	// A server behind the copy would move it back; one of another cluster
	// epoch (the cluster was bootstrapped anew) has revisions of its own.
	if snap.Revision < rev && (epoch == 0 || snap.Epoch == 0 || snap.Epoch == epoch) {
		return fmt.Errorf("watch: %s is at revision %d, behind the copy's %d", server, snap.Revision, rev)
	}
	objs, err := decodeAll(snap.Objects)
	if err != nil {
		return fmt.Errorf("watch: %s: %w", server, err)
	}
	fresh := map[[2]string]bool{}
	for _, c := range objs {
		fresh[[2]string{c.Table, c.ID}] = true
	}
	w.next, w.high = snap.Revision, 0
	w.publish(snap.Revision, snap.Epoch, true, objs, fresh)
	return nil
}

type decoded struct {
	Change
	raw json.RawMessage
}

func decodeAll(wire []WireChange) ([]decoded, error) {
	out := make([]decoded, 0, len(wire))
	for _, c := range wire {
		d := decoded{Change: Change{Table: c.Table, ID: c.ID, Op: c.Op}, raw: c.Object}
		switch c.Op {
		case OpDelete:
		case OpUpsert:
			obj := fsm.NewObject(c.Table)
			if obj == nil {
				return nil, fmt.Errorf("object of unknown table %q", c.Table)
			}
			if err := json.Unmarshal(c.Object, obj); err != nil {
				return nil, fmt.Errorf("decode %s %s: %w", c.Table, c.ID, err)
			}
			d.Object = obj
		default:
			return nil, fmt.Errorf("unknown op %q for %s %s", c.Op, c.Table, c.ID)
		}
		out = append(out, d)
	}
	return out, nil
}

// publish moves the copy to rev and tells the subscribers. With keep
// (a resync) every object not in it is deleted, and only objects that
// differ from the copy are in the batch.
func (w *Watcher) publish(rev, epoch uint64, resync bool, changes []decoded, keep map[[2]string]bool) {
	batch := Batch{Revision: rev, Resync: resync}
	w.mu.Lock()
	for _, c := range changes {
		tbl := w.tables[c.Table]
		if tbl == nil {
			continue
		}
		old, had := tbl[c.ID]
		if c.Op == OpDelete {
			if !had {
				continue
			}
			delete(tbl, c.ID)
		} else {
			if had && string(old.raw) == string(c.raw) {
				continue
			}
			tbl[c.ID] = entry{raw: c.raw, obj: c.Object}
		}
		batch.Changes = append(batch.Changes, c.Change)
	}
	if keep != nil {
		for t, tbl := range w.tables {
			for id := range tbl {
				if !keep[[2]string{t, id}] {
					delete(tbl, id)
					batch.Changes = append(batch.Changes, Change{Table: t, ID: id, Op: OpDelete})
				}
			}
		}
		w.stats.Resyncs++
	}
	slices.SortFunc(batch.Changes, func(a, b Change) int {
		return strings.Compare(a.Table+"\x00"+a.ID, b.Table+"\x00"+b.ID)
	})
	w.rev, w.epoch, w.synced = rev, epoch, true
	subs := make([]func(Batch), 0, len(w.subs))
	for _, id := range slices.Sorted(maps.Keys(w.subs)) {
		subs = append(subs, w.subs[id])
	}
	w.mu.Unlock()
	if len(batch.Changes) > 0 || resync {
		for _, fn := range subs {
			fn(batch)
		}
	}
	// Waiters go on only once the subscribers heard of the batch.
	w.mu.Lock()
	w.heard = rev
	close(w.changed)
	w.changed = make(chan struct{})
	w.mu.Unlock()
}

// get asks server for path?q within timeout and decodes a 200 answer into
// out; 410 is errGone.
func (w *Watcher) get(ctx context.Context, server, path string, q url.Values, timeout time.Duration, out any) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	base := server
	if !strings.Contains(base, "://") {
		base = "http://" + base
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(base, "/")+path+"?"+q.Encode(), nil)
	if err != nil {
		return fmt.Errorf("watch: %w", err)
	}
	tok := w.cfg.Token
	if w.cfg.TokenFunc != nil {
		if tok, err = w.cfg.TokenFunc(ctx); err != nil {
			return fmt.Errorf("watch: %w", err)
		}
	}
	if tok != "" {
		req.Header.Set("X-Auth-Token", tok)
	}
	resp, err := w.http.Do(req)
	if err != nil {
		return fmt.Errorf("watch: %s: %w", server, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("watch: %s: read answer: %w", server, err)
	}
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusGone:
		return fmt.Errorf("watch: %s: %w: %s", server, errGone, strings.TrimSpace(string(body)))
	default:
		return fmt.Errorf("watch: %s answers %s: %s", server, resp.Status, strings.TrimSpace(string(body)))
	}
	if err := json.Unmarshal(body, out); err != nil {
		return fmt.Errorf("watch: %s: decode answer: %w", server, err)
	}
	return nil
}
