// Package northbound is Neutrino's HTTP API: the OpenStack Networking
// (Neutron) v2.0 API plus a few endpoints of our own under /v1. It validates
// requests, decides allocations (segmentation ids), proposes commands
// through the cluster and reads the replicated state. It never programs a
// switch.
//
// Consistency: any server accepts any request. Writes are forwarded to the
// leader and answer after the command is committed and applied, with the
// new state revision in the X-Neutrino-Revision header. Reads are served by
// the leader after it verified its leadership (linearizable), unless the
// request asks for a stale read with the query parameter `stale` or the
// header `X-Neutrino-Stale: true`, which any server answers from its own
// replica.
//
// Realization: a write with the query parameter `wait=realized` or the
// header `X-Neutrino-Wait: realized` answers only once every chassis the
// leader programs realized the committed revision (see realization.go);
// GET /v1/realization reports each chassis' realized revision.
package northbound

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptrace"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"neutrino/fsm"
)

// Headers of our own.
const (
	HeaderRevision  = "X-Neutrino-Revision"
	HeaderStale     = "X-Neutrino-Stale"
	HeaderForwarded = "X-Neutrino-Forwarded-By"
	HeaderServedBy  = "X-Neutrino-Served-By"
)

// Errors a Backend returns, sorted by what they mean for a command.
var (
	// ErrNotLeader: this server is not (or no longer) the leader; the
	// command was not appended and never takes effect.
	ErrNotLeader = errors.New("not the leader")
	// ErrNotReady: this server leads but has not applied everything
	// committed before its term; the command was not appended.
	ErrNotReady = errors.New("leader not ready")
	// ErrUnknownOutcome: the command reached Raft and its fate is unknown.
	ErrUnknownOutcome = errors.New("outcome unknown")
	// ErrUnsupported: a server runs a version that does not know the
	// command (a rolling upgrade is not done); not appended. The text after
	// it names the server.
	ErrUnsupported = errors.New("command not supported by every server")
)

// Backend is what the API needs from the cluster.
type Backend interface {
	// Apply proposes a command and returns its result once applied here.
	Apply(ctx context.Context, cmd []byte) (*fsm.Result, error)
	// IsLeader reports whether this server is the Raft leader.
	IsLeader() bool
	// LeaderHTTPAddr is the leader's API address ("host:port"), "" if none.
	LeaderHTTPAddr() string
	// VerifyLeader confirms leadership and that the local state is current.
	VerifyLeader(ctx context.Context) error
	// WaitReady waits (up to ctx's deadline) until this server is the
	// leader and has applied everything committed before its term;
	// ErrNotLeader or ErrNotReady otherwise.
	WaitReady(ctx context.Context) error
}

// Range is an inclusive range of segmentation ids.
type Range struct{ Min, Max int }

// Config configures the API.
type Config struct {
	NodeName string
	// AuthStrategy is AuthNoAuth (identity from X-Project-Id / X-Roles) or
	// AuthToken (X-Auth-Token looked up in Tokens).
	AuthStrategy string
	Tokens       map[string]TokenEntry
	// Keystone configures AuthKeystone (keystone.go).
	Keystone KeystoneConfig
	// DefaultProject is the project of requests that name none (noauth).
	DefaultProject string
	// TenantNetworkType is the type of networks created without provider
	// attributes: vxlan, geneve or gre.
	TenantNetworkType string
	// VNIRanges, GRERanges: ids allocated to vxlan/geneve and gre networks.
	VNIRanges []Range
	GRERanges []Range
	// VLANRanges maps a physical network to its allocatable VLAN ids; every
	// key is a physical network that VLAN networks may use.
	VLANRanges map[string][]Range
	// FlatNetworks lists the physical networks flat networks may use.
	FlatNetworks []string
	// PhysicalMTU is the underlay MTU that overlay MTUs are derived from.
	PhysicalMTU int
	// MACBase is the prefix of generated port MAC addresses (1 to 5
	// bytes, "fa:16:3e" when empty); the rest is random.
	MACBase string
	// ForwardTimeout bounds a write's way to the leader (forwarding, with
	// resends to a new leader) and a leader's wait for its readiness and
	// for a commit; it covers an election.
	ForwardTimeout time.Duration
	// LeaderWait bounds how long a request waits for a leader to be
	// known at all (each time it needs one); longer than an election, so a
	// server cut off from the majority answers 503 in this time.
	LeaderWait time.Duration
	// Status and Members feed /v1/cluster; nil ones report nothing.
	Status  func() ClusterStatus
	Members func() []Member
	// RemoveServer removes a server from the Raft configuration, on the
	// leader (DELETE /v1/cluster/servers/{name}); nil refuses. Errors that
	// are *fsm.Error keep their status (not found, conflict).
	RemoveServer func(ctx context.Context, name string) error
	// FinalizeUpgrade records that every server runs a version that knows
	// the same command types (POST /v1/cluster/upgrade/finalize), on the
	// leader; nil refuses. Errors are the Backend's Apply errors.
	FinalizeUpgrade func(ctx context.Context) (*fsm.Result, error)
	// UpgradeCheck says, on any server, whether every server knows the
	// finalize command (ErrUnsupported naming one that does not), so a
	// follower refuses a finalize itself instead of forwarding it to a
	// leader that may run the older version; nil skips the check.
	UpgradeCheck func() error
	// Realizer reports and waits for the realization of revisions on the
	// chassis (the leader's southbound controller); nil when none, then
	// GET /v1/realization lists no chassis and waiting writes are refused.
	Realizer Realizer
	// PeerTLS, when set, makes forwards to the leader go over HTTPS with
	// this client configuration (this server's certificate); the agent
	// sets it with --tls-cert (northbound/peertls.go).
	PeerTLS *tls.Config
	// VerifyForwarder, when set, is asked about every request that says
	// it was forwarded by a server; an error refuses the request (403), so
	// only a server's certificate can act as the forwarding server.
	VerifyForwarder func(*tls.ConnectionState) error
	// Keyring serves /v1/gossip/keyring (this node's gossip keys); nil
	// answers 503.
	Keyring Keyring
	// OFProtoTrace runs `ovs-appctl ofproto/trace br-int FLOW` on this
	// agent's chassis (GET /v1/ofproto/trace); nil on an agent with none.
	OFProtoTrace func(ctx context.Context, flow string) (string, error)
	// ChassisTLS, when set, is the client configuration for calling the
	// agent of the chassis named (GET /v1/ofproto/trace) over HTTPS.
	ChassisTLS func(name string) *tls.Config
	// NoReplica: this process keeps no replica of the state (a chassis
	// agent), so it refuses watches (503) instead of answering from an
	// empty state.
	NoReplica bool
	// LBDeleteTimeout is how long the leader waits for the agent's report
	// on a load balancer being deleted before it completes the deletion
	// without one (DefaultLBDeleteTimeout when zero).
	LBDeleteTimeout time.Duration
	// QuotaDefaults are the default quota limits by resource (network,
	// port, ...); a resource without an entry is unlimited (-1). The
	// leader commits them (SyncQuotaDefaults).
	QuotaDefaults map[string]int
	// Readiness feeds GET /readyz and the readiness gate (ready.go); nil
	// means always ready.
	Readiness func() Readiness
	// Metrics, when set, is served at GET /metrics before the server is
	// ready (the agent's Prometheus registry); ObserveRequest, when set,
	// is told about every request (metrics.go).
	Metrics        http.Handler
	ObserveRequest RequestObserver
	// Limits bound bodies, headers, read times and each client's
	// concurrent requests (limits.go); zero fields take the defaults.
	Limits Limits
	Logger *slog.Logger
}

// DefaultLeaderWait is LeaderWait's default: an election here takes
// 1.3-2.8 s (lab-notes), so this rides out one and not a partition.
const DefaultLeaderWait = 4 * time.Second

// DefaultForwardTimeout is ForwardTimeout's default: a few elections
// (about 2-3 s each here, lab-notes.md).
const DefaultForwardTimeout = 10 * time.Second

// DefaultConfig returns the defaults documented in the README.
func DefaultConfig() Config {
	return Config{
		AuthStrategy:      AuthNoAuth,
		DefaultProject:    "admin",
		TenantNetworkType: fsm.NetTypeVXLAN,
		VNIRanges:         []Range{{1000, 99999}},
		GRERanges:         []Range{{1000, 99999}},
		VLANRanges:        map[string][]Range{},
		PhysicalMTU:       1500,
		ForwardTimeout:    DefaultForwardTimeout,
		LeaderWait:        DefaultLeaderWait,
	}
}

// Server serves the API.
type Server struct {
	cfg      Config
	be       Backend
	fsm      *fsm.FSM
	log      *slog.Logger
	mux      *http.ServeMux
	segments *segmentAllocator
	prefixes *prefixAllocator
	ipam     *ipAllocator
	// forwarder carries requests to the leader; it keeps connections open.
	forwarder *http.Client
	// watchStop is closed by StopWatches (watch.go).
	watchStop chan struct{}
	stopOnce  sync.Once
	// keystone validates tokens under AuthKeystone; nil otherwise.
	keystone *keystoneAuth
}

// New returns a Server; Handler gives its http.Handler.
func New(cfg Config, be Backend, f *fsm.FSM) *Server {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.LeaderWait == 0 {
		cfg.LeaderWait = DefaultLeaderWait
	}
	if cfg.ForwardTimeout == 0 {
		cfg.ForwardTimeout = DefaultForwardTimeout
	}
	if cfg.PhysicalMTU == 0 {
		cfg.PhysicalMTU = 1500
	}
	s := &Server{cfg: cfg, be: be, fsm: f, log: cfg.Logger.With("component", "api"),
		mux: http.NewServeMux(), segments: newSegmentAllocator(), prefixes: newPrefixAllocator(),
		forwarder: &http.Client{Transport: &http.Transport{
			DialContext:         (&net.Dialer{Timeout: time.Second}).DialContext,
			MaxIdleConnsPerHost: 64,
			IdleConnTimeout:     90 * time.Second,
			TLSClientConfig:     cfg.PeerTLS,
		}}}
	ipam, err := newIPAllocator(func() *fsm.View { return f.State().Read() }, cfg.MACBase)
	if err != nil {
		s.log.Warn("bad MAC base, using "+defaultMACBase, "err", err)
		ipam, _ = newIPAllocator(func() *fsm.View { return f.State().Read() }, defaultMACBase)
	}
	s.ipam = ipam
	if cfg.AuthStrategy == AuthKeystone {
		if s.keystone, err = newKeystoneAuth(cfg.Keystone, s.log); err != nil {
			s.log.Error("keystone authentication is not configured: every request is refused", "err", err)
		}
	}
	s.routes()
	if !cfg.NoReplica {
		go s.expireLBDeletes()
	}
	return s
}

// Handler returns the API's http.Handler.
func (s *Server) Handler() http.Handler {
	return s.instrument(s.checkForwarder(s.limit(s.gate(s.mux))))
}

func (s *Server) routes() {
	s.mux.HandleFunc("GET /healthz", s.healthz)
	s.mux.HandleFunc("GET /readyz", s.readyz)
	if s.cfg.Metrics != nil {
		s.mux.Handle("GET /metrics", s.cfg.Metrics)
	}
	s.mux.HandleFunc("GET /v1/cluster", s.clusterStatus)
	s.mux.HandleFunc("GET /v1/cluster/members", s.clusterMembers)
	s.neutron("DELETE /v1/cluster/servers/{name}", s.removeServer)
	s.mux.HandleFunc("POST /v1/cluster/upgrade/finalize", s.upgradeCheck(s.apiHandlerFunc("POST /v1/cluster/upgrade/finalize", s.finalizeUpgrade)))
	s.mux.HandleFunc("GET /v1/realization", s.realization)
	s.keyringRoutes()
	s.watchRoutes()
	s.mux.HandleFunc("GET /{$}", s.versions)
	s.mux.HandleFunc("GET /v2.0/{$}", s.v2Root)
	s.mux.HandleFunc("GET /v2.0/extensions", s.extensions)

	s.neutron("GET /v2.0/networks", s.listNetworks)
	s.neutron("POST /v2.0/networks", s.createNetworks)
	s.neutron("GET /v2.0/networks/{id}", s.showNetwork)
	s.neutron("PUT /v2.0/networks/{id}", s.updateNetwork)
	s.neutron("DELETE /v2.0/networks/{id}", s.deleteNetwork)
	s.tagRoutes("networks", s.networkTags)
	s.chassisRoutes()
	s.subnetRoutes()
	s.portRoutes()
	s.securityGroupRoutes()
	s.routerRoutes()
	s.floatingIPRoutes()
	s.vpnRoutes()
	s.lbaasRoutes()
	s.firewallRoutes()
	s.quotaRoutes()
	s.agentRoutes()
	s.traceRoutes()
	s.uiRoutes()
	s.rbacRoutes()
	s.subnetPoolRoutes()
	s.segmentRoutes()
	s.qosRoutes()
	s.trunkRoutes()
	s.mux.HandleFunc("/", s.unrouted)
}

// probeMethods are the methods a path is tried with to tell an unknown
// path (404) from a known one asked with the wrong method (405).
var probeMethods = []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete}

// unrouted answers what no route took. The catch-all "/" shadows
// ServeMux's own 405, so it asks the mux which methods the path has:
// Neutron answers a known collection or member asked with an unsupported
// method with 405 and an Allow header, and only an unknown path with 404.
func (s *Server) unrouted(w http.ResponseWriter, r *http.Request) {
	var allow []string
	for _, m := range probeMethods {
		if m == r.Method {
			continue
		}
		probe := r.Clone(r.Context())
		probe.Method = m
		if _, pattern := s.mux.Handler(probe); pattern != "" && pattern != "/" {
			allow = append(allow, m)
		}
	}
	if len(allow) == 0 {
		writeError(w, newError(http.StatusNotFound, "HTTPNotFound", "The resource could not be found."))
		return
	}
	w.Header().Set("Allow", strings.Join(allow, ", "))
	writeError(w, newError(http.StatusMethodNotAllowed, "HTTPMethodNotAllowed",
		"The method %s is not allowed for this resource.", r.Method))
}

// apiHandler is a Neutron handler: it returns an error instead of writing one.
type apiHandler func(w http.ResponseWriter, r *http.Request) error

// neutron registers a Neutron route: identity, leader forwarding for writes
// and consistent reads, request identity and replay of writes, and the
// error format.
func (s *Server) neutron(pattern string, h apiHandler) {
	s.mux.HandleFunc(pattern, s.apiHandlerFunc(pattern, h))
}

// apiHandlerFunc is what neutron registers for a route: the front door
// shared by every API of ours (Neutron's, Octavia's, /v1).
func (s *Server) apiHandlerFunc(pattern string, h apiHandler) http.HandlerFunc {
	write := !strings.HasPrefix(pattern, "GET ")
	return func(w http.ResponseWriter, r *http.Request) {
		var wait *waitRequest
		key := ""
		if write {
			var err error
			if wait, err = parseWait(r); err != nil {
				writeError(w, err)
				return
			}
			// Every write has an identity from here on, and every answer,
			// forwarded or not, names it.
			if key, err = requestKey(r); err != nil {
				writeError(w, err)
				return
			}
			w.Header().Set(HeaderRequestID, key)
		}
		var waitFor time.Duration
		if wait != nil {
			waitFor = wait.timeout
		}
		needLeader := write || !staleRead(r)
		// A forwarded write carries its wait parameter and headers: the
		// leader, which programs the chassis, waits.
		if needLeader && !s.be.IsLeader() && s.forward(w, r, key, waitFor) {
			return
		}
		if wait != nil && s.cfg.Realizer == nil {
			writeError(w, badRequest("This server cannot wait for realization: it has no controller."))
			return
		}
		if write {
			// A new leader allocates (segments, addresses) from its local
			// state: only once it applied everything committed before its
			// term does that state show every allocation.
			ctx, cancel := context.WithTimeout(r.Context(), s.cfg.ForwardTimeout)
			err := s.be.WaitReady(ctx)
			cancel()
			if errors.Is(err, ErrNotLeader) && s.forward(w, r, key, waitFor) {
				return
			}
			if err != nil {
				writeError(w, errNotApplied(err))
				return
			}
		}
		if needLeader {
			// A write also answers from local state before it proposes
			// (If-Match 412, 404, validation, a replayed request): a leader
			// deposed without knowing it (paused, cut off) must not answer
			// from its stale state, so a quorum confirms it leads first,
			// as for a consistent read. Nothing was proposed yet: a write
			// that learns it does not lead is forwarded.
			err := s.be.VerifyLeader(r.Context())
			if err != nil && write && errors.Is(err, ErrNotLeader) && s.forward(w, r, key, waitFor) {
				return
			}
			if err != nil {
				if write {
					writeError(w, errNotApplied(err))
				} else {
					writeError(w, newError(http.StatusServiceUnavailable, "ServiceUnavailable",
						"Cannot serve a consistent read: %v", err))
				}
				return
			}
		}
		ident, err := s.identify(r)
		if err != nil {
			writeError(w, err)
			return
		}
		if write && ident.ReadOnly {
			writeError(w, forbidden("%s %s is disallowed by policy: the token's roles (%s) may list and show, not change; writes need the member or admin role.",
				r.Method, r.URL.Path, strings.Join(ident.Roles, ", ")))
			return
		}
		ctx := context.WithValue(r.Context(), identityKey{}, ident)
		var rc *requestCtx
		if write {
			body, err := readAllBody(r)
			if err != nil {
				writeError(w, err)
				return
			}
			rc = &requestCtx{key: key, id: ident.ProjectID + "/" + key,
				fingerprint: fingerprint(r.Method, r.URL.Path, body), outcome: defaultOutcome(r)}
			ctx = context.WithValue(ctx, requestCtxKey{}, rc)
		}
		r = r.WithContext(ctx)
		w.Header().Set(HeaderServedBy, s.cfg.NodeName)
		run := func(w http.ResponseWriter) {
			if rc != nil {
				// A repeat of an applied request: answer the first outcome
				// without running the handler (its checks would see the
				// request's own effects).
				if rec := s.fsm.State().Read().Request(rc.id); rec != nil {
					s.replay(w, r, rc, rec)
					return
				}
			}
			if err := h(w, r); err != nil {
				var rp *errReplayed
				if errors.As(err, &rp) && rc != nil {
					s.replay(w, r, rc, rp.rec)
					return
				}
				if ae := toAPIError(err); ae.Status >= 500 {
					s.log.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
				}
				writeError(w, err)
			}
		}
		if wait != nil {
			s.serveWaiting(w, r, wait, run)
			return
		}
		run(w)
	}
}

func staleRead(r *http.Request) bool {
	if _, ok := r.URL.Query()["stale"]; ok {
		return true
	}
	v := r.Header.Get(HeaderStale)
	b, _ := strconv.ParseBool(v)
	return b
}

// hopHeaders are not forwarded: hop-by-hop headers (RFC 9110 7.6.1), and
// the idempotency headers that make Go's transport resend a POST on its
// own after a broken kept-alive connection; the key travels in
// HeaderRequestID instead and the forwarder decides about resends.
var hopHeaders = []string{"Connection", "Keep-Alive", "Proxy-Connection", "Proxy-Authenticate",
	"Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade",
	HeaderIdempotencyKey, "X-Idempotency-Key", HeaderRequestID}

// forwardBackoff spaces resends to a leader that answered with an error
// but is still the leader in our view.
const forwardBackoff = 50 * time.Millisecond

// forward sends the request to the leader and reports true, or reports
// false when this server became the leader meanwhile and should serve the
// request itself.
//
// A write carries its identity (key, in HeaderRequestID), so resending it
// is safe: the leader answers a repeat of an applied request with the
// first outcome. So an attempt whose connection broke is resent, and an
// attempt in flight to a server that is no longer the leader in our Raft
// view is abandoned and resent to the new leader: a leader that stopped
// answering costs about the election time, not the client's timeout.
// Everything is bounded by ForwardTimeout (plus the realization wait the
// request asked for); when it passes after an attempt that may have
// reached a leader, the outcome is reported as unknown, never as "not
// applied".
//
// A request that was already forwarded once is not forwarded again: the
// server that forwarded it retries with the next leader.
func (s *Server) forward(w http.ResponseWriter, r *http.Request, key string, extra time.Duration) bool {
	if r.Header.Get(HeaderForwarded) != "" {
		writeError(w, errNoLeader)
		return true
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBodyBytes+1))
	if err != nil {
		writeError(w, badRequest("Failed to read the request body: %v", err))
		return true
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.ForwardTimeout+extra)
	defer cancel()
	write := r.Method != http.MethodGet && r.Method != http.MethodHead
	maybeSent := false
	var lastErr error
	for {
		addr, self := s.waitLeader(ctx)
		if self {
			r.Body = io.NopCloser(bytes.NewReader(body))
			return false
		}
		if addr == "" {
			switch {
			case write && maybeSent:
				s.log.Warn("forward: deadline passed, outcome unknown", "key", key, "err", lastErr)
				writeError(w, errOutcomeUnknown(key))
			default:
				writeError(w, errNoLeader)
			}
			return true
		}
		resp, sent, err := s.attempt(ctx, r, addr, body, key)
		if err != nil {
			maybeSent = maybeSent || sent
		} else {
			retry, uncertain := retryableAnswer(resp)
			if !retry {
				defer resp.Body.Close()
				for k, vs := range resp.Header {
					w.Header()[k] = vs
				}
				w.WriteHeader(resp.StatusCode)
				_, _ = io.Copy(w, resp.Body)
				return true
			}
			maybeSent = maybeSent || uncertain
			err = errors.New("leader answered " + resp.Status)
		}
		lastErr = err
		s.log.Debug("forward attempt failed, resending", "leader", addr, "sent", sent, "err", err)
		// The leader changed: go at once. Otherwise give it a moment.
		if cur := s.be.LeaderHTTPAddr(); cur == addr && !s.be.IsLeader() {
			t := time.NewTimer(forwardBackoff)
			select {
			case <-ctx.Done():
			case <-t.C:
			}
			t.Stop()
		}
	}
}

// retryableAnswer reports whether the leader's answer says it could not
// take the request (it was not the leader, not ready, or lost leadership
// with the outcome unknown), in which case the body is consumed and the
// forwarder tries again; uncertain is set when the write may have applied.
func retryableAnswer(resp *http.Response) (retry, uncertain bool) {
	if resp.StatusCode != http.StatusServiceUnavailable {
		return false, false
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	var env struct {
		NeutronError struct {
			Type string `json:"type"`
		} `json:"NeutronError"`
	}
	typ := ""
	if err == nil && json.Unmarshal(data, &env) == nil {
		typ = env.NeutronError.Type
	}
	switch typ {
	case "ServiceUnavailable":
		return true, false
	case ErrTypeOutcomeUnknown:
		return true, true
	}
	// Another 503 (e.g. no segmentation id left) is the answer.
	resp.Body = io.NopCloser(bytes.NewReader(data))
	return false, false
}

// attempt sends one forward to addr. It is abandoned (error) when our Raft
// view of the leader moves away from addr while waiting for the answer.
// sent reports whether any of the request may have reached the leader.
func (s *Server) attempt(ctx context.Context, r *http.Request, addr string, body []byte, key string) (*http.Response, bool, error) {
	actx, cancel := context.WithCancel(ctx)
	var sent atomic.Bool
	trace := &httptrace.ClientTrace{WroteHeaders: func() { sent.Store(true) }}
	u := *r.URL
	u.Scheme, u.Host = "http", addr
	if s.cfg.PeerTLS != nil {
		u.Scheme = "https"
	}
	out, err := http.NewRequestWithContext(httptrace.WithClientTrace(actx, trace), r.Method, u.String(), bytes.NewReader(body))
	if err != nil {
		cancel()
		return nil, false, err
	}
	out.Header = r.Header.Clone()
	for _, h := range hopHeaders {
		out.Header.Del(h)
	}
	if key != "" {
		out.Header.Set(HeaderRequestID, key)
	}
	out.Host = r.Host
	out.Header.Set(HeaderForwarded, s.cfg.NodeName)

	done := make(chan struct{})
	moved := make(chan struct{})
	go func() {
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
				if s.be.IsLeader() || s.be.LeaderHTTPAddr() != addr {
					close(moved)
					cancel()
					return
				}
			}
		}
	}()
	resp, err := s.forwarder.Do(out)
	close(done)
	if err != nil {
		cancel()
		select {
		case <-moved:
			err = fmt.Errorf("leader changed while waiting for %s: %w", addr, err)
		default:
		}
		return nil, sent.Load(), err
	}
	resp.Body = &cancelBody{ReadCloser: resp.Body, cancel: cancel}
	return resp, true, nil
}

// cancelBody releases an attempt's context once its answer was read.
type cancelBody struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (b *cancelBody) Close() error {
	err := b.ReadCloser.Close()
	b.cancel()
	return err
}

// waitLeader waits (until ctx ends) for a known leader and returns its API
// address, or self=true when this server is the leader.
func (s *Server) waitLeader(ctx context.Context) (addr string, self bool) {
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	// No leader for longer than an election takes: this server is likely
	// cut off from the majority; answer now rather than at the deadline.
	ctx, cancel := context.WithTimeout(ctx, s.cfg.LeaderWait)
	defer cancel()
	for {
		if s.be.IsLeader() {
			return "", true
		}
		if addr := s.be.LeaderHTTPAddr(); addr != "" {
			return addr, false
		}
		select {
		case <-ctx.Done():
			return "", false
		case <-tick.C:
		}
	}
}

// propose encodes and applies a command; it returns the new revision. A
// command of a write with an identity goes inside a request envelope, so
// the state machine applies it at most once per identity.
//
// The error says what the client may assume: not applied (503
// ServiceUnavailable), unknown (503 OutcomeUnknown, retry with the key),
// rejected (the state machine's error), or errReplayed (applied before).
func (s *Server) propose(ctx context.Context, t fsm.CommandType, body any) (uint64, error) {
	cmd, err := fsm.Encode(t, body)
	if err != nil {
		return 0, err
	}
	rc := requestFrom(ctx)
	if rc != nil {
		rc.mu.Lock()
		out, err := json.Marshal(rc.outcome)
		rc.mu.Unlock()
		if err != nil {
			return 0, err
		}
		cmd, err = fsm.Encode(fsm.CmdRequest, fsm.RequestEnvelope{ID: rc.id, Fingerprint: rc.fingerprint,
			Time: time.Now().UnixNano(), Outcome: out, Command: cmd})
		if err != nil {
			return 0, err
		}
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, s.cfg.ForwardTimeout)
		defer cancel()
	}
	res, err := s.be.Apply(ctx, cmd)
	if err != nil {
		if errors.Is(err, ErrNotLeader) || errors.Is(err, ErrNotReady) {
			return 0, errNotApplied(err)
		}
		if errors.Is(err, ErrUnsupported) {
			return 0, errUnsupported(err)
		}
		key := ""
		if rc != nil {
			key = rc.key
		}
		s.log.Warn("write outcome unknown", "key", key, "err", err)
		return 0, errOutcomeUnknown(key)
	}
	if res.Replayed {
		return 0, &errReplayed{rec: res.Request}
	}
	if res.Err != nil {
		return 0, res.Err
	}
	return res.Revision, nil
}

// view returns a read view of the replicated state and sets the revision
// header from it.
func (s *Server) view(w http.ResponseWriter) *fsm.View {
	v := s.fsm.State().Read()
	w.Header().Set(HeaderRevision, strconv.FormatUint(v.Revision(), 10))
	return v
}

func setRevision(w http.ResponseWriter, rev uint64) {
	w.Header().Set(HeaderRevision, strconv.FormatUint(rev, 10))
}

func now() string { return time.Now().UTC().Format("2006-01-02T15:04:05Z") }
