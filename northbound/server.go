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
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
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

// ErrNotLeader is what a Backend returns from Apply when this server is not
// (or no longer) the leader.
var ErrNotLeader = errors.New("not the leader")

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
	// ForwardTimeout bounds waiting for a leader before forwarding.
	ForwardTimeout time.Duration
	// Status and Members feed /v1/cluster; nil ones report nothing.
	Status  func() ClusterStatus
	Members func() []Member
	// Realizer reports and waits for the realization of revisions on the
	// chassis (the leader's southbound controller); nil when none, then
	// GET /v1/realization lists no chassis and waiting writes are refused.
	Realizer Realizer
	// Readiness feeds GET /readyz and the readiness gate (ready.go); nil
	// means always ready.
	Readiness func() Readiness
	Logger    *slog.Logger
}

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
		ForwardTimeout:    5 * time.Second,
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
	ipam     *ipAllocator
	// forwarder carries requests to the leader; it keeps connections open.
	forwarder *http.Client
}

// New returns a Server; Handler gives its http.Handler.
func New(cfg Config, be Backend, f *fsm.FSM) *Server {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.ForwardTimeout == 0 {
		cfg.ForwardTimeout = 5 * time.Second
	}
	if cfg.PhysicalMTU == 0 {
		cfg.PhysicalMTU = 1500
	}
	s := &Server{cfg: cfg, be: be, fsm: f, log: cfg.Logger.With("component", "api"),
		mux: http.NewServeMux(), segments: newSegmentAllocator(),
		forwarder: &http.Client{Transport: &http.Transport{
			DialContext:         (&net.Dialer{Timeout: time.Second}).DialContext,
			MaxIdleConnsPerHost: 64,
			IdleConnTimeout:     90 * time.Second,
		}}}
	ipam, err := newIPAllocator(func() *fsm.View { return f.State().Read() }, cfg.MACBase)
	if err != nil {
		s.log.Warn("bad MAC base, using "+defaultMACBase, "err", err)
		ipam, _ = newIPAllocator(func() *fsm.View { return f.State().Read() }, defaultMACBase)
	}
	s.ipam = ipam
	s.routes()
	return s
}

// Handler returns the API's http.Handler.
func (s *Server) Handler() http.Handler { return s.gate(s.mux) }

func (s *Server) routes() {
	s.mux.HandleFunc("GET /healthz", s.healthz)
	s.mux.HandleFunc("GET /readyz", s.readyz)
	s.mux.HandleFunc("GET /v1/cluster", s.clusterStatus)
	s.mux.HandleFunc("GET /v1/cluster/members", s.clusterMembers)
	s.mux.HandleFunc("GET /v1/realization", s.realization)
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
	s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, newError(http.StatusNotFound, "HTTPNotFound", "The resource could not be found."))
	})
}

// apiHandler is a Neutron handler: it returns an error instead of writing one.
type apiHandler func(w http.ResponseWriter, r *http.Request) error

// neutron registers a Neutron route: identity, leader forwarding for writes
// and consistent reads, and the error format.
func (s *Server) neutron(pattern string, h apiHandler) {
	write := !strings.HasPrefix(pattern, "GET ")
	s.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		var wait *waitRequest
		if write {
			var err error
			if wait, err = parseWait(r); err != nil {
				writeError(w, err)
				return
			}
		}
		needLeader := write || !staleRead(r)
		// A forwarded write carries its wait parameter and headers: the
		// leader, which programs the chassis, waits.
		if needLeader && !s.be.IsLeader() && s.forward(w, r) {
			return
		}
		if wait != nil && s.cfg.Realizer == nil {
			writeError(w, badRequest("This server cannot wait for realization: it has no controller."))
			return
		}
		if needLeader && !write {
			if err := s.be.VerifyLeader(r.Context()); err != nil {
				writeError(w, newError(http.StatusServiceUnavailable, "ServiceUnavailable",
					"Cannot serve a consistent read: %v", err))
				return
			}
		}
		ident, err := s.identify(r)
		if err != nil {
			writeError(w, err)
			return
		}
		r = r.WithContext(context.WithValue(r.Context(), identityKey{}, ident))
		w.Header().Set(HeaderServedBy, s.cfg.NodeName)
		run := func(w http.ResponseWriter) {
			if err := h(w, r); err != nil {
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
	})
}

func staleRead(r *http.Request) bool {
	if _, ok := r.URL.Query()["stale"]; ok {
		return true
	}
	v := r.Header.Get(HeaderStale)
	b, _ := strconv.ParseBool(v)
	return b
}

// forward sends the request to the leader and reports true, or reports
// false when this server became the leader meanwhile and should serve the
// request itself.
//
// A request whose connection to the leader could not even be opened never
// reached it, so it is retried against the next leader until
// ForwardTimeout: a client does not see a leader's crash as an error when
// a new leader is elected in time. Any failure after the request was sent
// is reported (503), never retried: the write may have been applied.
//
// A request that was already forwarded once is not forwarded again:
// leadership moved under it and the client should retry rather than have
// servers bounce it around.
func (s *Server) forward(w http.ResponseWriter, r *http.Request) bool {
	if r.Header.Get(HeaderForwarded) != "" {
		writeError(w, errNoLeader)
		return true
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBodyBytes+1))
	if err != nil {
		writeError(w, badRequest("Failed to read the request body: %v", err))
		return true
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.ForwardTimeout)
	defer cancel()
	dead := ""
	for {
		addr, self := s.waitLeader(ctx, dead)
		if self {
			r.Body = io.NopCloser(bytes.NewReader(body))
			return false
		}
		if addr == "" {
			writeError(w, errNoLeader)
			return true
		}
		resp, err := s.send(r, addr, body)
		if err != nil {
			var op *net.OpError
			if errors.As(err, &op) && op.Op == "dial" {
				s.log.Debug("leader unreachable, waiting for the next", "leader", addr, "err", err)
				dead = addr
				continue
			}
			s.log.Warn("forward to leader failed", "leader", addr, "err", err)
			writeError(w, newError(http.StatusServiceUnavailable, "ServiceUnavailable",
				"The leader did not answer; the request may or may not have been applied: %v", err))
			return true
		}
		defer resp.Body.Close()
		for k, vs := range resp.Header {
			w.Header()[k] = vs
		}
		w.WriteHeader(resp.StatusCode)
		_, _ = io.Copy(w, resp.Body)
		return true
	}
}

func (s *Server) send(r *http.Request, addr string, body []byte) (*http.Response, error) {
	u := *r.URL
	u.Scheme, u.Host = "http", addr
	out, err := http.NewRequestWithContext(r.Context(), r.Method, u.String(), bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	out.Header = r.Header.Clone()
	out.Host = r.Host
	out.Header.Set(HeaderForwarded, s.cfg.NodeName)
	return s.forwarder.Do(out)
}

// waitLeader waits (until ctx ends) for a leader other than dead and
// returns its API address, or self=true when this server is the leader.
func (s *Server) waitLeader(ctx context.Context, dead string) (addr string, self bool) {
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		if s.be.IsLeader() {
			return "", true
		}
		if addr := s.be.LeaderHTTPAddr(); addr != "" && addr != dead {
			return addr, false
		}
		select {
		case <-ctx.Done():
			return "", false
		case <-tick.C:
		}
	}
}

// propose encodes and applies a command; it returns the new revision.
func (s *Server) propose(ctx context.Context, t fsm.CommandType, body any) (uint64, error) {
	cmd, err := fsm.Encode(t, body)
	if err != nil {
		return 0, err
	}
	res, err := s.be.Apply(ctx, cmd)
	if err != nil {
		if errors.Is(err, ErrNotLeader) {
			return 0, errNoLeader
		}
		return 0, newError(http.StatusServiceUnavailable, "ServiceUnavailable",
			"The write was not committed: %v", err)
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
