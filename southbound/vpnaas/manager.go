package vpnaas

import (
	"context"
	"crypto/sha256"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"neutrino/cluster/watch"
	"neutrino/fsm"
	"neutrino/southbound/hostnet"
)

// Tables are the replicated tables a Manager reads.
var Tables = []string{
	fsm.TableVPNIKEPolicies, fsm.TableVPNIPsecPolicies, fsm.TableVPNServices,
	fsm.TableVPNEndpointGroups, fsm.TableVPNSiteConnections,
	fsm.TableRouters, fsm.TablePorts, fsm.TableSubnets,
}

// Config configures a Manager.
type Config struct {
	// Chassis is this chassis' name.
	Chassis string
	// OVSDB is the chassis' OVSDB endpoint; Bridge its integration bridge
	// (default br-int).
	OVSDB, Bridge string
	// Dir holds one directory per router's charon.
	Dir string
	// NamespacePrefix starts the name of every VPN namespace (default
	// "nvpn-"); namespaces with it that no router needs are removed.
	NamespacePrefix string
	// Watch is the local copy of Tables.
	Watch *watch.Watcher
	// Fenced reports whether the chassis fenced itself off (nil: never);
	// a fenced gateway runs no tunnel.
	Fenced func() bool
	// Report sends a status report (PUT /v1/vpn/agent-status).
	Report func(ctx context.Context, r fsm.VPNStatusRequest) error
	// Interval is how often SA states are polled and failures retried
	// (default 500 ms).
	Interval time.Duration
	Logger   *slog.Logger
}

// Manager runs the charons of the routers whose active gateway is this
// chassis: level-triggered, woken by every watch batch and every Interval.
type Manager struct {
	cfg  Config
	log  *slog.Logger
	wake chan struct{}

	mu      sync.Mutex
	running map[string]*routerVPN // router id -> what runs
}

// routerVPN is one router's VPN as it runs (or should).
type routerVPN struct {
	router   string
	plumb    Plumbing
	charon   *Charon
	conns    []Conn
	services []string
	confHash [32]byte
	connHash map[string][32]byte // connection id -> its rendered config
	loaded   bool
}

// New returns a Manager; Run runs it.
func New(cfg Config) *Manager {
	if cfg.Bridge == "" {
		cfg.Bridge = "br-int"
	}
	if cfg.NamespacePrefix == "" {
		cfg.NamespacePrefix = "nvpn-"
	}
	if cfg.Interval == 0 {
		cfg.Interval = 500 * time.Millisecond
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Manager{cfg: cfg, log: cfg.Logger.With("component", "vpnaas"), wake: make(chan struct{}, 1),
		running: map[string]*routerVPN{}}
}

// Run reconciles until ctx ends, then tears every tunnel down.
func (m *Manager) Run(ctx context.Context) {
	cancel := m.cfg.Watch.Subscribe(func(watch.Batch) { m.Wake() })
	defer cancel()
	m.removeStale(ctx)
	t := time.NewTicker(m.cfg.Interval)
	defer t.Stop()
	for {
		if m.cfg.Watch.Synced() {
			m.reconcile(ctx)
		}
		select {
		case <-ctx.Done():
			sctx, c := context.WithTimeout(context.Background(), 20*time.Second)
			m.teardownAll(sctx)
			c()
			return
		case <-m.wake:
		case <-t.C:
		}
	}
}

// Wake asks for a reconcile now.
func (m *Manager) Wake() {
	select {
	case m.wake <- struct{}{}:
	default:
	}
}

// Routers lists the routers whose VPN runs here.
func (m *Manager) Routers() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []string
	for id := range m.running {
		out = append(out, id)
	}
	slices.Sort(out)
	return out
}

// removeStale removes VPN namespaces (and their charons) an earlier run
// of this agent left: whatever is needed is built again.
func (m *Manager) removeStale(ctx context.Context) {
	ents, _ := os.ReadDir("/run/netns")
	for _, e := range ents {
		if !strings.HasPrefix(e.Name(), m.cfg.NamespacePrefix) {
			continue
		}
		suffix := strings.TrimPrefix(e.Name(), m.cfg.NamespacePrefix)
		ch := &Charon{Namespace: e.Name(), Dir: filepath.Join(m.cfg.Dir, suffix)}
		if err := ch.Stop(ctx); err != nil {
			m.log.Warn("stop a stale charon", "namespace", e.Name(), "err", err)
		}
		if err := hostnet.DeleteNamespace(ctx, e.Name()); err != nil {
			m.log.Warn("remove a stale VPN namespace", "namespace", e.Name(), "err", err)
		}
	}
	if m.cfg.OVSDB != "" {
		if err := RemovePorts(ctx, m.cfg.OVSDB, m.cfg.Bridge); err != nil {
			m.log.Warn("remove stale VPN ports", "err", err)
		}
	}
}

// desired computes what should run here from the watch copy.
func (m *Manager) desired() map[string]*routerVPN {
	out := map[string]*routerVPN{}
	if m.cfg.Fenced != nil && m.cfg.Fenced() {
		return out
	}
	w := m.cfg.Watch
	gwHost := map[string]string{} // router -> active gateway chassis
	gwIP := map[string]string{}
	ifaceSubnets := map[string][]string{}
	ifaceIP := map[[2]string]string{} // router, subnet -> its address there
	for _, p := range watch.List[*fsm.Port](w, fsm.TablePorts) {
		switch {
		case p.DeviceOwner == fsm.DeviceOwnerRouterGateway:
			gwHost[p.DeviceID] = p.BindingHostID
			for _, f := range p.FixedIPs {
				if a, err := netip.ParseAddr(f.IPAddress); err == nil && a.Is4() {
					gwIP[p.DeviceID] = a.String()
					break
				}
			}
		case strings.HasPrefix(p.DeviceOwner, "network:router_interface"):
			for _, f := range p.FixedIPs {
				ifaceSubnets[p.DeviceID] = append(ifaceSubnets[p.DeviceID], f.SubnetID)
				ifaceIP[[2]string{p.DeviceID, f.SubnetID}] = f.IPAddress
			}
		}
	}
	subnetCIDR := func(id string) string {
		if s, ok := watch.Get[*fsm.Subnet](w, fsm.TableSubnets, id); ok {
			if p := s.Prefix(); p.IsValid() && p.Addr().Is4() {
				return p.Masked().String()
			}
		}
		return ""
	}
	conns := watch.List[*fsm.IPsecSiteConnection](w, fsm.TableVPNSiteConnections)
	for _, s := range watch.List[*fsm.VPNService](w, fsm.TableVPNServices) {
		if !s.AdminStateUp || gwHost[s.RouterID] != m.cfg.Chassis || m.cfg.Chassis == "" {
			continue
		}
		r, ok := watch.Get[*fsm.Router](w, fsm.TableRouters, s.RouterID)
		if !ok || !r.AdminStateUp || r.DatapathKey == 0 {
			continue
		}
		ext := s.ExternalV4IP
		if ext == "" {
			ext = gwIP[s.RouterID]
		}
		if ext == "" {
			continue
		}
		rv := out[s.RouterID]
		if rv == nil {
			rv = &routerVPN{router: s.RouterID}
			rv.plumb.RouterKey = r.DatapathKey
			out[s.RouterID] = rv
		}
		rv.services = append(rv.services, s.ID)
		rv.plumb.ExternalIP = ext
		for _, c := range conns {
			if c.VPNServiceID != s.ID {
				continue
			}
			peer := c.PeerCIDRs
			if c.PeerEPGroupID != "" {
				peer = nil
				if g, ok := watch.Get[*fsm.EndpointGroup](w, fsm.TableVPNEndpointGroups, c.PeerEPGroupID); ok {
					peer = g.Endpoints
				}
			}
			// Peer CIDRs are blackholed even for a disabled connection.
			rv.plumb.PeerCIDRs = append(rv.plumb.PeerCIDRs, peer...)
			if !c.AdminStateUp {
				continue
			}
			var localIDs []string
			switch {
			case c.LocalEPGroupID != "":
				if g, ok := watch.Get[*fsm.EndpointGroup](w, fsm.TableVPNEndpointGroups, c.LocalEPGroupID); ok {
					localIDs = g.Endpoints
				}
			case s.SubnetID != "":
				localIDs = []string{s.SubnetID}
			default:
				localIDs = ifaceSubnets[s.RouterID]
			}
			var local, localIPs []string
			for _, id := range localIDs {
				if cidr := subnetCIDR(id); cidr != "" {
					local = append(local, cidr)
					if ip := ifaceIP[[2]string{s.RouterID, id}]; ip != "" {
						localIPs = append(localIPs, ip)
					}
				}
			}
			ike, ok1 := watch.Get[*fsm.IKEPolicy](w, fsm.TableVPNIKEPolicies, c.IKEPolicyID)
			esp, ok2 := watch.Get[*fsm.IPsecPolicy](w, fsm.TableVPNIPsecPolicies, c.IPsecPolicyID)
			if !ok1 || !ok2 || len(local) == 0 || len(peer) == 0 {
				continue
			}
			rv.conns = append(rv.conns, Conn{
				ID: c.ID, LocalAddr: ext, PeerAddress: c.PeerAddress, LocalID: c.LocalID, PeerID: c.PeerID, PSK: c.PSK,
				LocalCIDRs: local, PeerCIDRs: slices.Clone(peer),
				IKEVersion: ike.IKEVersion, Phase1Mode: ike.Phase1NegotiationMode,
				IKEEncryption: ike.EncryptionAlgorithm, IKEAuth: ike.AuthAlgorithm, IKEPFS: ike.PFS, IKELifetime: ike.LifetimeValue,
				ESPEncryption: esp.EncryptionAlgorithm, ESPAuth: esp.AuthAlgorithm, ESPPFS: esp.PFS, ESPLifetime: esp.LifetimeValue,
				Transform: esp.TransformProtocol, Mode: esp.EncapsulationMode, Initiator: c.Initiator,
				DPDAction: c.DPDAction, DPDInterval: c.DPDInterval, DPDTimeout: c.DPDTimeout,
			})
			rv.plumb.LocalCIDRs = append(rv.plumb.LocalCIDRs, local...)
			rv.plumb.LocalAddrs = append(rv.plumb.LocalAddrs, localIPs...)
			rv.plumb.PeerAddrs = append(rv.plumb.PeerAddrs, c.PeerAddress)
		}
	}
	for id, rv := range out {
		if len(rv.conns) == 0 {
			// Nothing to run: no namespace (its peer CIDRs stay dropped
			// by the pipeline while the port is missing).
			delete(out, id)
			continue
		}
		for _, l := range []*[]string{&rv.plumb.LocalCIDRs, &rv.plumb.LocalAddrs, &rv.plumb.PeerAddrs, &rv.plumb.PeerCIDRs} {
			slices.Sort(*l)
			*l = slices.Compact(*l)
		}
		ns := NamespaceName(m.cfg.NamespacePrefix, id)
		rv.plumb.Namespace, rv.plumb.OVSDB, rv.plumb.Bridge = ns, m.cfg.OVSDB, m.cfg.Bridge
		rv.plumb.Port, rv.plumb.RouterID = PortName(rv.plumb.RouterKey), id
		rv.charon = &Charon{Namespace: ns, Dir: filepath.Join(m.cfg.Dir, strings.TrimPrefix(ns, m.cfg.NamespacePrefix))}
	}
	return out
}

// reconcile brings the running routers to the desired ones and reports
// the states of their connections.
func (m *Manager) reconcile(ctx context.Context) {
	want := m.desired()
	m.mu.Lock()
	defer m.mu.Unlock()
	for id, cur := range m.running {
		if _, ok := want[id]; !ok {
			m.teardown(ctx, cur)
			delete(m.running, id)
		}
	}
	for id, w := range want {
		cur := m.running[id]
		if cur == nil {
			cur = w
			m.running[id] = cur
			m.log.Info("starting VPN", "router", id, "namespace", w.plumb.Namespace, "connections", len(w.conns))
		}
		cur.services, cur.conns = w.services, w.conns
		if err := m.ensure(ctx, cur, w); err != nil {
			m.log.Warn("VPN not up yet", "router", id, "err", err)
		}
	}
	m.report(ctx, want)
}

// ensure makes one router's VPN run as w says.
func (m *Manager) ensure(ctx context.Context, cur, w *routerVPN) error {
	plumbChanged := !samePlumbing(cur.plumb, w.plumb)
	if plumbChanged || !cur.loaded {
		if err := w.plumb.Ensure(ctx); err != nil {
			return err
		}
		cur.plumb = w.plumb
	}
	if cur.charon.PID() == 0 {
		cur.loaded = false
		if err := cur.charon.Start(ctx); err != nil {
			return err
		}
	}
	conf, err := Render(w.conns)
	if err != nil {
		return err
	}
	h := sha256.Sum256([]byte(conf))
	if cur.loaded && h == cur.confHash {
		return nil
	}
	hashes := map[string][32]byte{}
	var changed []Conn
	for _, c := range w.conns {
		one, err := Render([]Conn{c})
		if err != nil {
			return err
		}
		hashes[c.ID] = sha256.Sum256([]byte(one))
		if old, ok := cur.connHash[c.ID]; ok && cur.loaded && old != hashes[c.ID] {
			changed = append(changed, c)
		}
	}
	if err := cur.charon.Load(ctx, conf); err != nil {
		return err
	}
	cur.confHash, cur.connHash, cur.loaded = h, hashes, true
	m.log.Info("VPN configuration loaded", "router", cur.router, "connections", len(w.conns), "changed", len(changed))
	// A changed connection (key, peer, policies) is established afresh:
	// charon keeps an existing SA across a reload.
	for _, c := range changed {
		if err := cur.charon.Terminate(ctx, c.Name()); err != nil {
			m.log.Debug("terminate", "connection", c.ID, "err", err)
		}
		if c.Initiator != "response-only" {
			go func() {
				ictx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
				defer cancel()
				_ = cur.charon.Initiate(ictx, c.Name())
			}()
		}
	}
	return nil
}

func samePlumbing(a, b Plumbing) bool {
	return a.Namespace == b.Namespace && a.ExternalIP == b.ExternalIP && a.OVSDB == b.OVSDB &&
		slices.Equal(a.LocalCIDRs, b.LocalCIDRs) && slices.Equal(a.LocalAddrs, b.LocalAddrs) && slices.Equal(a.PeerAddrs, b.PeerAddrs) && slices.Equal(a.PeerCIDRs, b.PeerCIDRs)
}

func (m *Manager) teardown(ctx context.Context, r *routerVPN) {
	m.log.Info("stopping VPN", "router", r.router, "namespace", r.plumb.Namespace)
	if err := r.charon.Stop(ctx); err != nil {
		m.log.Warn("stop charon", "router", r.router, "err", err)
	}
	if err := r.plumb.Remove(ctx); err != nil {
		m.log.Warn("remove VPN namespace", "router", r.router, "err", err)
	}
}

func (m *Manager) teardownAll(ctx context.Context) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for id, r := range m.running {
		m.teardown(ctx, r)
		delete(m.running, id)
	}
}

// report sends the states of the connections of the services here when
// they differ from the replicated ones. Only services whose router's
// active gateway is this chassis are reported: the state machine ignores
// the rest anyway.
func (m *Manager) report(ctx context.Context, want map[string]*routerVPN) {
	if m.cfg.Report == nil || (m.cfg.Fenced != nil && m.cfg.Fenced()) {
		return // a fenced gateway's view is stale and no server answers
	}
	w := m.cfg.Watch
	req := fsm.VPNStatusRequest{Chassis: m.cfg.Chassis, Services: map[string]string{}, Connections: map[string]string{}}
	gw := map[string]bool{}
	for _, p := range watch.List[*fsm.Port](w, fsm.TablePorts) {
		if p.DeviceOwner == fsm.DeviceOwnerRouterGateway && p.BindingHostID == m.cfg.Chassis && m.cfg.Chassis != "" {
			gw[p.DeviceID] = true
		}
	}
	changed := false
	for _, s := range watch.List[*fsm.VPNService](w, fsm.TableVPNServices) {
		if !gw[s.RouterID] {
			continue
		}
		rv := m.running[s.RouterID]
		var sas map[string]SAState
		if rv != nil && rv.loaded {
			sas, _ = rv.charon.SAs(ctx)
		}
		svc := fsm.VPNStatusDown
		if rv != nil && rv.loaded && slices.Contains(rv.services, s.ID) {
			svc = fsm.VPNStatusActive
		}
		req.Services[s.ID] = svc
		if svc != s.Status {
			changed = true
		}
		for _, c := range watch.List[*fsm.IPsecSiteConnection](w, fsm.TableVPNSiteConnections) {
			if c.VPNServiceID != s.ID {
				continue
			}
			st := fsm.VPNStatusDown
			if sas[Conn{ID: c.ID}.Name()].Up() {
				st = fsm.VPNStatusActive
			}
			req.Connections[c.ID] = st
			if st != c.Status {
				changed = true
			}
		}
	}
	if !changed {
		return
	}
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := m.cfg.Report(rctx, req); err != nil {
		m.log.Warn("VPN status report failed", "err", err)
	}
}
