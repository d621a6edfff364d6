package northbound

import (
	"bufio"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
)

// RequestObserver is told about every answered request (Config.ObserveRequest):
// resource is the route's collection ("networks", "lbaas/loadbalancers",
// "v1/cluster"), never an id, so the agent's metric labels stay bounded.
type RequestObserver func(resource, method string, code int, took time.Duration)

// instrument reports every request to the observer. It wraps the whole
// handler (the readiness gate's 503s count too) and reads the route the
// mux chose from r.Pattern after serving: the middleware inside it pass the
// same *http.Request on.
func (s *Server) instrument(next http.Handler) http.Handler {
	obs := s.cfg.ObserveRequest
	if obs == nil {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w}
		next.ServeHTTP(sw, r)
		pattern := r.Pattern
		if pattern == "" {
			// Answered before the mux (the gate, the forwarder check):
			// the route it would have taken.
			_, pattern = s.mux.Handler(r)
		}
		code := sw.code
		if code == 0 {
			code = http.StatusOK
		}
		obs(resourceOf(pattern), methodLabel(r.Method), code, time.Since(start))
	})
}

// resources caches resourceOf per route pattern (a fixed, small set).
var resources sync.Map

// resourceOf names the collection of a route pattern: the method, the
// version prefix and every {wildcard} dropped, e.g.
// "PUT /v2.0/networks/{id}/tags/{tag}" -> "networks/tags".
func resourceOf(pattern string) string {
	if v, ok := resources.Load(pattern); ok {
		return v.(string)
	}
	path := pattern
	if i := strings.IndexByte(path, ' '); i >= 0 {
		path = path[i+1:]
	}
	var parts []string
	for seg := range strings.SplitSeq(path, "/") {
		if seg == "" || seg == "v2.0" || seg == "{$}" || strings.HasPrefix(seg, "{") {
			continue
		}
		parts = append(parts, seg)
	}
	res := strings.Join(parts, "/")
	switch {
	case pattern == "" || pattern == "/":
		res = "unrouted"
	case res == "":
		res = "root"
	}
	resources.Store(pattern, res)
	return res
}

// methodLabel keeps the method label to the methods the API knows.
func methodLabel(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete:
		return m
	}
	return "OTHER"
}

// statusWriter records the status code a handler wrote.
type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Flush keeps streaming answers (watches) streaming through the wrapper.
func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Hijack passes a hijack through (nothing of ours hijacks today).
func (w *statusWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	return http.NewResponseController(w.ResponseWriter).Hijack()
}

// Unwrap lets http.ResponseController reach the real writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
