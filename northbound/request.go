package northbound

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"

	"neutrino/fsm"
)

// Headers of request identity (see README, "Consistency").
const (
	// HeaderIdempotencyKey is the client's identity of a write; a retry
	// with the same key is answered with the first outcome.
	HeaderIdempotencyKey = "Idempotency-Key"
	// HeaderRequestID carries a write's key in every answer, and from a
	// forwarding server to the leader (never Idempotency-Key: Go's
	// transport would then resend the request on its own).
	HeaderRequestID = "X-Neutrino-Request-Id"
	// HeaderReplayed is "true" on the answer to a repeat of an applied
	// request.
	HeaderReplayed = "X-Neutrino-Replayed"
)

// maxKeyLen bounds an idempotency key.
const maxKeyLen = 255

// requestCtx is the identity of one write and what its handler declared it
// will answer; it lives in the request's context.
type requestCtx struct {
	// key is what the client retries with; id is key scoped by project.
	key, id     string
	fingerprint string

	mu      sync.Mutex
	n       int      // ids derived so far
	outcome *outcome // the answer a repeat gets
}

type requestCtxKey struct{}

func requestFrom(ctx context.Context) *requestCtx {
	rc, _ := ctx.Value(requestCtxKey{}).(*requestCtx)
	return rc
}

// withoutRequest drops the request identity: for a secondary command of a
// request (e.g. the default security group) that is safe to repeat and
// must not take the identity of the request's own command.
func withoutRequest(ctx context.Context) context.Context {
	return context.WithValue(ctx, requestCtxKey{}, (*requestCtx)(nil))
}

// outcome is what a repeat of a request is answered with, recorded with
// the request in the state machine: a status and which objects to render
// from the state as it is when the repeat comes.
type outcome struct {
	Status int `json:"s"`
	// Created objects: rendered as GET Collection/ID each, under Singular
	// (or the plural collection key when Bulk).
	Collection string   `json:"c,omitempty"`
	Singular   string   `json:"o,omitempty"`
	Plural     string   `json:"l,omitempty"`
	IDs        []string `json:"i,omitempty"`
	Bulk       bool     `json:"b,omitempty"`
	// Path: the body is that of GET Path (updates).
	Path string `json:"p,omitempty"`
	// Body is a literal body (actions whose answer is not a resource).
	Body json.RawMessage `json:"r,omitempty"`
}

// defaultOutcome is the answer a write gets unless its handler declares
// another: an update answers the object as GET shows it, a delete 204.
func defaultOutcome(r *http.Request) *outcome {
	switch r.Method {
	case http.MethodPut:
		return &outcome{Status: http.StatusOK, Path: r.URL.Path}
	case http.MethodDelete:
		return &outcome{Status: http.StatusNoContent}
	}
	return &outcome{Status: http.StatusCreated}
}

// declare sets what a repeat of the request is answered with; handlers
// call it before they propose.
func declare(ctx context.Context, o *outcome) {
	if rc := requestFrom(ctx); rc != nil {
		rc.mu.Lock()
		rc.outcome = o
		rc.mu.Unlock()
	}
}

// declareBody declares a literal answer (an action's result).
func declareBody(ctx context.Context, status int, body any) {
	data, err := json.Marshal(body)
	if err != nil {
		return
	}
	declare(ctx, &outcome{Status: status, Body: data})
}

// declareCreated declares the objects a create makes (under /v2.0/plural).
func declareCreated(ctx context.Context, plural, singular string, bulk bool, ids ...string) {
	declare(ctx, &outcome{Status: http.StatusCreated, Collection: "/v2.0/" + plural,
		Singular: singular, Plural: jsonPlural(plural), IDs: ids, Bulk: bulk})
}

// jsonPlural is a collection's key in JSON bodies ("security-groups" ->
// "security_groups").
func jsonPlural(collection string) string {
	b := []byte(collection)
	for i, c := range b {
		if c == '-' {
			b[i] = '_'
		}
	}
	return string(b)
}

// newID returns the next object id of a request: derived from its identity
// and fingerprint, so a retry of a create builds the same ids; random for
// a request without identity.
func newID(ctx context.Context) string {
	rc := requestFrom(ctx)
	if rc == nil {
		return newUUID()
	}
	rc.mu.Lock()
	n := rc.n
	rc.n++
	rc.mu.Unlock()
	sum := sha256.Sum256([]byte(rc.id + "\x00" + rc.fingerprint + "\x00" + strconv.Itoa(n)))
	b := sum[:16]
	b[6] = b[6]&0x0f | 0x50
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// requestKey returns the key of a write: the client's Idempotency-Key, the
// one a forwarding server passed on, or a new random one.
func requestKey(r *http.Request) (string, error) {
	if vs := r.Header.Values(HeaderIdempotencyKey); len(vs) > 0 {
		if len(vs) > 1 {
			return "", badRequest("Only one %s header is allowed.", HeaderIdempotencyKey)
		}
		return vs[0], validKey(vs[0])
	}
	if r.Header.Get(HeaderForwarded) != "" {
		if k := r.Header.Get(HeaderRequestID); k != "" {
			return k, validKey(k)
		}
	}
	return newUUID(), nil
}

func validKey(k string) error {
	if len(k) == 0 || len(k) > maxKeyLen {
		return badRequest("Invalid %s: 1 to %d printable characters.", HeaderIdempotencyKey, maxKeyLen)
	}
	for i := 0; i < len(k); i++ {
		if k[i] < 0x20 || k[i] > 0x7e {
			return badRequest("Invalid %s: 1 to %d printable characters.", HeaderIdempotencyKey, maxKeyLen)
		}
	}
	return nil
}

// fingerprint identifies a request by method, path and body.
func fingerprint(method, path string, body []byte) string {
	h := sha256.New()
	h.Write([]byte(method + "\x00" + path + "\x00"))
	h.Write(body)
	return hex.EncodeToString(h.Sum(nil))
}

// readAllBody reads the body once (bounded) and puts it back for the
// handler.
func readAllBody(r *http.Request) ([]byte, error) {
	if r.Body == nil {
		return nil, nil
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBodyBytes+1))
	if err != nil {
		return nil, badRequest("Failed to read the request body: %v", err)
	}
	if err := validText(body); err != nil {
		return nil, err
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	return body, nil
}

func errKeyMismatch(key string) *apiError {
	return newError(http.StatusUnprocessableEntity, "IdempotencyKeyMismatch",
		"The %s %q was used for another request (method, path or body differ).", HeaderIdempotencyKey, key)
}

// replay answers a repeat of an applied request from its record: the first
// status, and the objects it named rendered from the current state.
func (s *Server) replay(w http.ResponseWriter, r *http.Request, rc *requestCtx, rec *fsm.Request) {
	if rec.Fingerprint != rc.fingerprint {
		writeError(w, errKeyMismatch(rc.key))
		return
	}
	var o outcome
	if err := json.Unmarshal(rec.Outcome, &o); err != nil || o.Status == 0 {
		o = outcome{Status: http.StatusOK}
	}
	w.Header().Set(HeaderReplayed, "true")
	setRevision(w, rec.Index)
	switch {
	case o.Body != nil:
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(o.Status)
		_, _ = w.Write(o.Body)
	case o.Path != "":
		status, body := s.internalGet(r, o.Path)
		if status != http.StatusOK {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(status)
			_, _ = w.Write(body)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(o.Status)
		_, _ = w.Write(body)
	case len(o.IDs) > 0:
		objs := make([]json.RawMessage, 0, len(o.IDs))
		for _, id := range o.IDs {
			status, body := s.internalGet(r, o.Collection+"/"+id)
			if status != http.StatusOK {
				// Deleted since: the first answer named it, the state no
				// longer has it.
				continue
			}
			var env map[string]json.RawMessage
			if json.Unmarshal(body, &env) == nil && env[o.Singular] != nil {
				objs = append(objs, env[o.Singular])
			}
		}
		if o.Bulk {
			writeJSON(w, o.Status, map[string]any{o.Plural: objs})
			return
		}
		if len(objs) == 0 {
			writeError(w, newError(http.StatusNotFound, "HTTPNotFound",
				"The resource created by this request no longer exists."))
			return
		}
		writeJSON(w, o.Status, map[string]any{o.Singular: objs[0]})
	default:
		w.WriteHeader(o.Status)
	}
}

// internalGet serves GET path as the caller, from this server's state
// (it is the ready leader and has applied the request being replayed).
func (s *Server) internalGet(r *http.Request, path string) (int, []byte) {
	in, err := http.NewRequestWithContext(r.Context(), http.MethodGet, path, nil)
	if err != nil {
		return http.StatusInternalServerError, nil
	}
	for _, h := range []string{"X-Project-Id", "X-Tenant-Id", "X-Roles", "X-User-Id", "X-Auth-Token"} {
		if vs := r.Header.Values(h); len(vs) > 0 {
			in.Header[h] = vs
		}
	}
	in.Header.Set(HeaderStale, "true")
	rec := &recorder{header: http.Header{}}
	s.mux.ServeHTTP(rec, in)
	if rec.status == 0 {
		rec.status = http.StatusOK
	}
	return rec.status, rec.body.Bytes()
}

// recorder is a ResponseWriter that keeps what it is given.
type recorder struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (rr *recorder) Header() http.Header { return rr.header }
func (rr *recorder) WriteHeader(status int) {
	if rr.status == 0 {
		rr.status = status
	}
}
func (rr *recorder) Write(p []byte) (int, error) {
	if rr.status == 0 {
		rr.status = http.StatusOK
	}
	return rr.body.Write(p)
}

// errReplayed is what propose returns when the state machine found the
// request already applied: the handler stops and the front door answers
// from the record.
type errReplayed struct{ rec *fsm.Request }

func (e *errReplayed) Error() string {
	return "request already applied at revision " + strconv.FormatUint(e.rec.Index, 10)
}
