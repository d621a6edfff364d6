package northbound

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"

	"neutrino/cluster/watch"
	"neutrino/fsm"
)

// Bounds of GET /v1/watch.
const (
	// DefaultWatchTimeout is how long a watch waits for a change when the
	// request does not say.
	DefaultWatchTimeout = 30 * time.Second
	maxWatchTimeout     = 5 * time.Minute
	// MaxWatchChanges caps the changes of one watch answer (and is the
	// default of its limit parameter): a watcher far behind catches up in
	// several answers instead of one unbounded one.
	MaxWatchChanges = 1000
	// watchReadyEvery is how often a waiting watch checks that this
	// replica is still ready: a server cut off from the leader stops
	// answering "nothing changed" within about this plus two heartbeats.
	watchReadyEvery = 500 * time.Millisecond
)

func (s *Server) watchRoutes() {
	s.watchStop = make(chan struct{})
	s.mux.HandleFunc("GET "+watch.PathWatch, s.watch)
	s.mux.HandleFunc("GET "+watch.PathSnapshot, s.watchSnapshot)
}

// StopWatches ends every waiting watch with 503, so that a server shutting
// down (http.Server.RegisterOnShutdown) need not wait for long polls and
// their watchers move to another server at once.
func (s *Server) StopWatches() { s.stopOnce.Do(func() { close(s.watchStop) }) }

// watchAllowed answers 401/403 unless the request is an admin's: a watch
// carries every project's objects.
func (s *Server) watchAllowed(w http.ResponseWriter, r *http.Request) bool {
	ident, err := s.identify(r)
	if err != nil {
		writeError(w, err)
		return false
	}
	if !ident.Admin {
		writeError(w, forbidden("Watching state requires the admin role."))
		return false
	}
	return true
}

// watchTables parses the tables parameter: a comma-separated list of
// fsm.WatchTables.
func watchTables(r *http.Request) (map[string]bool, error) {
	raw := r.URL.Query().Get("tables")
	if raw == "" {
		return nil, badRequest("The tables parameter is required (any of %s).", strings.Join(fsm.WatchTables, ","))
	}
	out := map[string]bool{}
	for _, t := range strings.Split(raw, ",") {
		if !fsm.IsWatchTable(t) {
			return nil, badRequest("Unknown table %q; tables are %s.", t, strings.Join(fsm.WatchTables, ","))
		}
		out[t] = true
	}
	return out, nil
}

func uintParam(r *http.Request, name string, def uint64) (uint64, error) {
	raw := r.URL.Query().Get(name)
	if raw == "" {
		return def, nil
	}
	v, err := strconv.ParseUint(raw, 10, 64)
	if err != nil {
		return 0, badRequest("Bad %s %q: not an unsigned integer.", name, raw)
	}
	return v, nil
}

// watchNotReady is the 503 of a replica that may be missing changes: a
// watcher goes to another server instead of waiting here for nothing.
func (s *Server) watchNotReady() *apiError {
	if s.cfg.NoReplica {
		return newError(http.StatusServiceUnavailable, "ServiceUnavailable",
			"This agent keeps no replica of the state; watch a server.")
	}
	if s.cfg.Readiness == nil {
		return nil
	}
	if rd := s.cfg.Readiness(); !rd.Ready {
		return newError(http.StatusServiceUnavailable, "ServiceUnavailable",
			"This server's replica may be behind (%s); watch another server.", missingText(rd.Missing))
	}
	return nil
}

// errWatchGone is the 410 of a watch whose revision this replica cannot
// continue from: its history no longer reaches back there, the state was
// replaced by a snapshot since, or it belongs to another cluster.
func errWatchGone(format string, args ...any) *apiError {
	return newError(http.StatusGone, "WatchRevisionGone", format+" Read "+watch.PathSnapshot+" and watch from its revision.", args...)
}

// watch serves GET /v1/watch?tables=T1,T2&since=REV&timeout=S&limit=N
// from this server's replica: a long poll that answers once the watched
// tables changed after REV, or after the timeout with no changes.
func (s *Server) watch(w http.ResponseWriter, r *http.Request) {
	if !s.watchAllowed(w, r) {
		return
	}
	tables, err := watchTables(r)
	if err != nil {
		writeError(w, err)
		return
	}
	since, err := uintParam(r, "since", 0)
	if err != nil {
		writeError(w, err)
		return
	}
	epoch, err := uintParam(r, "epoch", 0)
	if err != nil {
		writeError(w, err)
		return
	}
	limit, err := uintParam(r, "limit", MaxWatchChanges)
	if err != nil {
		writeError(w, err)
		return
	}
	limit = max(1, min(limit, MaxWatchChanges))
	timeout := DefaultWatchTimeout
	if raw := r.URL.Query().Get("timeout"); raw != "" {
		secs, err := strconv.ParseFloat(raw, 64)
		if err != nil || secs < 0 {
			writeError(w, badRequest("Bad timeout %q: seconds expected.", raw))
			return
		}
		timeout = min(time.Duration(secs*float64(time.Second)), maxWatchTimeout)
	}
	if ae := s.watchNotReady(); ae != nil {
		writeError(w, ae)
		return
	}
	keep := func(c fsm.Change) bool { return tables[c.Table] }
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	readyTick := time.NewTicker(watchReadyEvery)
	defer readyTick.Stop()
	for {
		st := s.fsm.State()
		v := st.Read()
		rev := v.Revision()
		if e := v.Epoch(); epoch != 0 && e != 0 && e != epoch {
			writeError(w, errWatchGone("Revision %d is of cluster epoch %d; this cluster's epoch is %d.", since, epoch, e))
			return
		}
		if rev > since {
			changes, upTo, ok := s.fsm.ChangesPage(since, rev, int(limit), keep)
			select {
			case <-st.AbandonCh():
				// A restore replaced the state between the read and the
				// history: read both again.
				continue
			default:
			}
			if !ok {
				writeError(w, errWatchGone("This server's change history does not reach back to revision %d.", since))
				return
			}
			if len(changes) > 0 {
				s.writeWatchAnswer(w, v, changes, upTo, rev)
				return
			}
			// Only other tables changed: wait on from here.
			since = upTo
		}
		select {
		case <-v.RevisionWatch():
		case <-st.AbandonCh():
		case <-readyTick.C:
			if ae := s.watchNotReady(); ae != nil {
				writeError(w, ae)
				return
			}
		case <-deadline.C:
			writeJSON(w, http.StatusOK, watch.Answer{Format: watch.Format, Revision: max(since, rev),
				ReadAt: rev, Epoch: v.Epoch(), Changes: []watch.WireChange{}})
			return
		case <-s.watchStop:
			writeError(w, newError(http.StatusServiceUnavailable, "ServiceUnavailable",
				"This server is shutting down; watch another server."))
			return
		case <-r.Context().Done():
			return
		}
	}
}

// writeWatchAnswer writes the changes with their objects read from v.
func (s *Server) writeWatchAnswer(w http.ResponseWriter, v *fsm.View, changes []fsm.Change, upTo, rev uint64) {
	out := watch.Answer{Format: watch.Format, Revision: upTo, ReadAt: rev, More: upTo < rev,
		Epoch: v.Epoch(), Changes: make([]watch.WireChange, 0, len(changes))}
	for _, c := range changes {
		wc, err := wireChange(c.Table, c.ID, v.Object(c.Table, c.ID))
		if err != nil {
			writeError(w, err)
			return
		}
		out.Changes = append(out.Changes, wc)
	}
	w.Header().Set(HeaderRevision, strconv.FormatUint(rev, 10))
	w.Header().Set(HeaderServedBy, s.cfg.NodeName)
	writeJSON(w, http.StatusOK, out)
}

func wireChange(table, id string, obj any) (watch.WireChange, error) {
	if obj == nil {
		return watch.WireChange{Table: table, ID: id, Op: watch.OpDelete}, nil
	}
	raw, err := json.Marshal(obj)
	if err != nil {
		return watch.WireChange{}, err
	}
	return watch.WireChange{Table: table, ID: id, Op: watch.OpUpsert, Object: raw}, nil
}

// watchSnapshot serves GET /v1/watch/snapshot?tables=T1,T2: every object of
// the tables at one revision of this server's replica, where a watcher
// starts or restarts (after a 410).
func (s *Server) watchSnapshot(w http.ResponseWriter, r *http.Request) {
	if !s.watchAllowed(w, r) {
		return
	}
	tables, err := watchTables(r)
	if err != nil {
		writeError(w, err)
		return
	}
	if ae := s.watchNotReady(); ae != nil {
		writeError(w, ae)
		return
	}
	v := s.fsm.State().Read()
	out := watch.SnapshotAnswer{Format: watch.Format, Revision: v.Revision(), Epoch: v.Epoch(),
		Objects: []watch.WireChange{}}
	for _, t := range fsm.WatchTables {
		if !tables[t] {
			continue
		}
		for _, obj := range v.Objects(t) {
			wc, err := wireChange(t, fsm.ObjectID(obj), obj)
			if err != nil {
				writeError(w, err)
				return
			}
			out.Objects = append(out.Objects, wc)
		}
	}
	w.Header().Set(HeaderRevision, strconv.FormatUint(out.Revision, 10))
	w.Header().Set(HeaderServedBy, s.cfg.NodeName)
	writeJSON(w, http.StatusOK, out)
}
