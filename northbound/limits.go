package northbound

import (
	"bytes"
	"errors"
	"io"
	"net"
	"net/http"
	"sync"
	"time"

	"neutrino/cluster/watch"
)

// Limits bound what one client can make the API hold: bytes, time and
// concurrent requests. A zero field takes its default (DefaultLimits).
type Limits struct {
	// MaxBodyBytes bounds a request body (Neutron's
	// max_request_body_size); a larger one is refused with 413.
	MaxBodyBytes int64
	// MaxHeaderBytes bounds the request line and headers (http.Server's
	// MaxHeaderBytes); a larger one is refused with 431.
	MaxHeaderBytes int
	// ReadHeaderTimeout bounds the time to send the request line and
	// headers, ReadTimeout the whole request with its body: a client that
	// trickles bytes (slowloris) is disconnected when they pass.
	ReadHeaderTimeout time.Duration
	ReadTimeout       time.Duration
	// IdleTimeout closes a kept-alive connection that sends no new
	// request for this long.
	IdleTimeout time.Duration
	// MaxPerClient bounds the requests one client address has in progress
	// at once; one more is refused with 429. Negative: no limit.
	MaxPerClient int
}

// Defaults of Limits (documented in the README, "Limits").
const (
	// DefaultMaxBodyBytes is Neutron's max_request_body_size default.
	DefaultMaxBodyBytes int64 = 114688
	// DefaultMaxHeaderBytes leaves room for large Keystone tokens (PKI
	// tokens reach several KiB) and is far below net/http's 1 MiB.
	DefaultMaxHeaderBytes    = 64 << 10
	DefaultReadHeaderTimeout = 10 * time.Second
	DefaultReadTimeout       = 30 * time.Second
	// DefaultIdleTimeout is above the 90 s our own clients (forwarder,
	// watcher) keep idle connections, so they close first and never send
	// on a connection the server is closing.
	DefaultIdleTimeout  = 120 * time.Second
	DefaultMaxPerClient = 64
)

// DefaultLimits returns Limits with every default.
func DefaultLimits() Limits {
	return Limits{}.withDefaults()
}

func (l Limits) withDefaults() Limits {
	if l.MaxBodyBytes <= 0 {
		l.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if l.MaxHeaderBytes <= 0 {
		l.MaxHeaderBytes = DefaultMaxHeaderBytes
	}
	if l.ReadHeaderTimeout <= 0 {
		l.ReadHeaderTimeout = DefaultReadHeaderTimeout
	}
	if l.ReadTimeout <= 0 {
		l.ReadTimeout = DefaultReadTimeout
	}
	if l.IdleTimeout <= 0 {
		l.IdleTimeout = DefaultIdleTimeout
	}
	if l.MaxPerClient == 0 {
		l.MaxPerClient = DefaultMaxPerClient
	}
	return l
}

// ConfigureServer sets the size and time limits on the http.Server that
// serves the API. There is no WriteTimeout: watches and realization waits
// answer after a long hold, and a write deadline would cut them off; a
// client that stops reading holds one goroutine until the kernel's
// buffers time out, and counts against its MaxPerClient meanwhile.
func (l Limits) ConfigureServer(hs *http.Server) {
	l = l.withDefaults()
	hs.MaxHeaderBytes = l.MaxHeaderBytes
	hs.ReadHeaderTimeout = l.ReadHeaderTimeout
	hs.ReadTimeout = l.ReadTimeout
	hs.IdleTimeout = l.IdleTimeout
}

// clientLimiter counts the requests in progress per client address.
type clientLimiter struct {
	max int
	mu  sync.Mutex
	n   map[string]int
}

func (c *clientLimiter) acquire(client string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n[client] >= c.max {
		return false
	}
	c.n[client]++
	return true
}

func (c *clientLimiter) release(client string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n[client]--; c.n[client] <= 0 {
		delete(c.n, client)
	}
}

// clientAddr is the client's IP (its port differs per connection).
func clientAddr(r *http.Request) string {
	if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		return host
	}
	return r.RemoteAddr
}

// exemptFromClientLimit: a watch is a chassis agent's long poll, held
// open by design; a forwarded request was counted against its client at
// the forwarding server (with TLS, checkForwarder has proved the
// forwarder is a server before this runs), and counting it here would
// make a follower one client of the leader for all of its own clients.
func exemptFromClientLimit(r *http.Request) bool {
	return r.URL.Path == watch.PathWatch || r.Header.Get(HeaderForwarded) != ""
}

// limit enforces the per-client concurrency limit and the body size, and
// reads the body whole before the handler runs: the server's read
// deadline (ReadTimeout) then covers exactly the upload, and is lifted
// for the handler, so a long poll or a wait for realization is not cut
// short by it (net/http cancels a request's context when its connection's
// read deadline passes).
func (s *Server) limit(next http.Handler) http.Handler {
	lim := s.cfg.Limits.withDefaults()
	clients := &clientLimiter{max: lim.MaxPerClient, n: map[string]int{}}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if lim.MaxPerClient > 0 && !exemptFromClientLimit(r) {
			client := clientAddr(r)
			if !clients.acquire(client) {
				w.Header().Set("Retry-After", "1")
				writeError(w, newError(http.StatusTooManyRequests, "TooManyRequests",
					"Too many requests in progress from %s (at most %d at once); retry later.", client, lim.MaxPerClient))
				return
			}
			defer clients.release(client)
		}
		if r.ContentLength > lim.MaxBodyBytes {
			// Not read: close rather than drain what may be megabytes.
			w.Header().Set("Connection", "close")
			writeError(w, errBodyTooLarge(lim.MaxBodyBytes))
			return
		}
		if r.Body != nil && r.Body != http.NoBody {
			data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, lim.MaxBodyBytes))
			if err != nil {
				var tooLarge *http.MaxBytesError
				if errors.As(err, &tooLarge) {
					writeError(w, errBodyTooLarge(lim.MaxBodyBytes))
				} else {
					w.Header().Set("Connection", "close")
					writeError(w, badRequest("Failed to read the request body: %v", err))
				}
				return
			}
			r.Body = io.NopCloser(bytes.NewReader(data))
		}
		// Errors only where the connection has no deadline to lift
		// (httptest's recorder).
		_ = http.NewResponseController(w).SetReadDeadline(time.Time{})
		next.ServeHTTP(w, r)
	})
}

func errBodyTooLarge(max int64) *apiError {
	return newError(http.StatusRequestEntityTooLarge, "RequestEntityTooLarge",
		"Request body is larger than %d bytes.", max)
}
