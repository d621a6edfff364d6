// Package lab builds a multi-node Neutrino lab on one Linux machine out of
// network namespaces: the netns driver of package scenarios and the engine
// behind `neutrino lab`.
//
// Every node is a namespace (<prefix>server-1, <prefix>chassis-1, ...)
// with a veth into a linux bridge that lives in its own underlay namespace.
// Chassis and gateways run their own ovsdb-server and ovs-vswitchd (netdev
// datapath) with the tunnel IP on a netdev br-phy bridge; every node runs
// `neutrino agent` inside its namespace. Servers also serve the API on a
// socket the lab opens on 127.0.0.1 in the root namespace and hands over as
// an inherited fd, so the API is reachable with no lab address in the root
// namespace.
//
// Everything the lab makes is recorded in <dir>/state.json before or as it
// is made; Down undoes all of it, also after `up` crashed half-way.
package lab

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"neutrino/northbound/client"
	"neutrino/scenarios"
	"neutrino/southbound/hostnet"
	"neutrino/southbound/ovsproc"
)

// DefaultDir holds the state of the default lab. It is on /run (tmpfs)
// because everything a lab makes (namespaces, processes) ends with a
// reboot, and so should its state.
const DefaultDir = "/run/neutrino-lab"

// DefaultPrefix starts the name of every namespace of the default lab.
const DefaultPrefix = "nl-"

// DefaultReadyTimeout bounds how long Up waits for the cluster.
const DefaultReadyTimeout = 90 * time.Second

// Options configures Up.
type Options struct {
	// Dir holds state, logs and data; default DefaultDir. It must not
	// exist or be empty.
	Dir string
	// Prefix of namespace names; default DefaultPrefix. Two labs at once
	// need different prefixes.
	Prefix string
	// Binary is the neutrino binary the agents run; default this executable.
	Binary   string
	Topology scenarios.Topology
	// ReadyTimeout bounds the wait for a leader and full gossip membership.
	ReadyTimeout time.Duration
	// KeepOnFailure leaves a failed lab in place for inspection (Down
	// removes it).
	KeepOnFailure bool
	// AgentArgs are extra `neutrino agent` flags for every agent.
	AgentArgs []string
	// NoTLS runs every channel in plaintext. By default (and unless the
	// environment has NEUTRINO_LAB_TLS=off) the lab makes a CA and a
	// certificate per node with `neutrino tls`'s code (tls.go) and runs
	// the API over HTTPS, Raft, forwarding, OpenFlow and OVSDB over
	// mutual TLS, and gossip encrypted.
	NoTLS  bool
	Logger *slog.Logger
}

// ErrExists means a lab already exists in the directory.
var ErrExists = errors.New("a lab exists")

func (o *Options) defaults() error {
	if o.Dir == "" {
		o.Dir = DefaultDir
	}
	d, err := filepath.Abs(o.Dir)
	if err != nil {
		return fmt.Errorf("lab: dir: %w", err)
	}
	o.Dir = d
	if o.Prefix == "" {
		o.Prefix = DefaultPrefix
	}
	if o.Binary == "" {
		if o.Binary, err = os.Executable(); err != nil {
			return fmt.Errorf("lab: find the neutrino binary: %w", err)
		}
	}
	if o.ReadyTimeout == 0 {
		o.ReadyTimeout = DefaultReadyTimeout
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if os.Getenv(EnvTLS) == "off" {
		o.NoTLS = true
	}
	return nil
}

// builder builds one lab.
type builder struct {
	o     Options
	log   *slog.Logger
	store *store
}

// Up builds a lab and returns its state once every server answers with a
// leader, every node is alive in gossip and every chassis and gateway is
// committed as an up chassis. If it fails (or ctx ends) it
// removes what it made before returning; if the process dies, Down does.
func Up(ctx context.Context, o Options) (*State, error) {
	if err := o.defaults(); err != nil {
		return nil, err
	}
	planned, err := plan(o.Topology)
	if err != nil {
		return nil, err
	}
	if err := ovsproc.Available(); err != nil {
		return nil, err
	}
	// OVS puts unix sockets in <dir>/<node>/ovs; sun_path is 108 bytes.
	if longest := len(o.Dir) + len("/gateway-99/ovs/ovs-vswitchd.ctl") + 8; longest > 108 {
		return nil, fmt.Errorf("lab: --dir %s is %d bytes too long for the unix socket paths in it", o.Dir, longest-108)
	}
	if _, err := os.Stat(o.Binary); err != nil {
		return nil, fmt.Errorf("lab: neutrino binary: %w", err)
	}
	if st, err := LoadState(o.Dir); err == nil {
		return nil, fmt.Errorf("lab: %w in %s (phase %s, created %s): run `neutrino lab down` first",
			ErrExists, o.Dir, st.Phase, st.Created.Format(time.RFC3339))
	} else if !errors.Is(err, ErrNoLab) {
		return nil, fmt.Errorf("lab: %w in %s with an unreadable state (%w): run `neutrino lab down` first", ErrExists, o.Dir, err)
	}
	if ents, err := os.ReadDir(o.Dir); err == nil {
		for _, e := range ents {
			if e.Name() != lockFile {
				return nil, fmt.Errorf("lab: dir %s is not empty (has %s); choose another --dir", o.Dir, e.Name())
			}
		}
	}
	underlayNS := o.Prefix + "underlay"
	for _, ns := range append([]string{underlayNS, o.Prefix + OutsideName}, nodeNamespaces(o.Prefix, planned)...) {
		if hostnet.NamespaceExists(ns) {
			return nil, fmt.Errorf("lab: namespace %s exists (another lab with prefix %q?); take it down or choose another --prefix", ns, o.Prefix)
		}
	}
	if err := os.MkdirAll(o.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("lab: %w", err)
	}
	lk, err := acquireLock(o.Dir)
	if err != nil {
		return nil, err
	}
	defer lk.release()

	b := &builder{o: o, log: o.Logger.With("component", "lab"), store: &store{
		path: filepath.Join(o.Dir, stateFile),
		st: &State{
			Version: stateVersion, Dir: o.Dir, Prefix: o.Prefix, Phase: PhaseCreating,
			Created: time.Now().UTC(), Topology: o.Topology,
			Underlay: Underlay{Namespace: underlayNS, Bridge: underlayBridge, CIDR: UnderlayCIDR, MTU: UnderlayMTU},
		},
	}}
	if err := b.store.update(func(*State) {}); err != nil {
		_ = os.RemoveAll(o.Dir)
		return nil, err
	}
	if !o.NoTLS {
		if err := b.tlsCA(); err != nil {
			_ = os.RemoveAll(o.Dir)
			return nil, err
		}
	}
	st, err := b.build(ctx, planned)
	if err != nil && o.KeepOnFailure {
		return nil, fmt.Errorf("%w (lab left in %s for inspection: `neutrino lab down` removes it)", err, o.Dir)
	}
	if err != nil {
		// A fresh context: ctx may be what ended.
		cctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if derr := destroy(cctx, o.Dir, b.store.snapshot(), b.log); derr != nil {
			return nil, fmt.Errorf("%w (and cleaning up: %w)", err, derr)
		}
		return nil, err
	}
	return st, nil
}

func nodeNamespaces(prefix string, planned []plannedNode) []string {
	out := make([]string, len(planned))
	for i, p := range planned {
		out[i] = prefix + p.name
	}
	return out
}

func (b *builder) build(ctx context.Context, planned []plannedNode) (*State, error) {
	start := time.Now()
	if err := b.underlay(ctx); err != nil {
		return nil, err
	}
	if err := b.outside(ctx); err != nil {
		return nil, err
	}
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	servers := make([]string, 0)
	for _, p := range planned {
		if p.kind == scenarios.KindServer {
			servers = append(servers, net.JoinHostPort(p.ip.String(), strconv.Itoa(gossipPort)))
		}
	}
	// The outside node's OVS starts alongside the nodes.
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := b.outsideOVS(ctx); err != nil {
			mu.Lock()
			errs = append(errs, fmt.Errorf("%s: %w", OutsideName, err))
			mu.Unlock()
		}
	}()
	for _, p := range planned {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := b.node(ctx, p, planned, servers); err != nil {
				mu.Lock()
				errs = append(errs, fmt.Errorf("%s: %w", p.name, err))
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	order := map[string]int{}
	for i, p := range planned {
		order[p.name] = i
	}
	if err := b.store.update(func(st *State) {
		slices.SortFunc(st.Nodes, func(x, y *Node) int { return order[x.Name] - order[y.Name] })
	}); err != nil {
		return nil, err
	}
	b.log.Info("nodes built", "took", time.Since(start))
	if err := b.waitReady(ctx); err != nil {
		return nil, err
	}
	if err := b.store.update(func(st *State) { st.Phase = PhaseUp }); err != nil {
		return nil, err
	}
	b.log.Info("lab up", "took", time.Since(start))
	return b.store.snapshot(), nil
}

// createNamespace records a namespace in the state, then creates it.
func (b *builder) createNamespace(ctx context.Context, ns string) error {
	if err := b.store.update(func(st *State) { st.addNamespace(ns) }); err != nil {
		return err
	}
	return hostnet.CreateNamespace(ctx, ns)
}

// underlay creates the underlay namespace, its bridge and a bridge per
// physnet (vlan_filtering off, the default and all this kernel supports:
// 802.1Q frames pass as they are).
func (b *builder) underlay(ctx context.Context) error {
	ns := b.o.Prefix + "underlay"
	if err := b.createNamespace(ctx, ns); err != nil {
		return err
	}
	if err := b.store.update(func(st *State) { st.Physnets = slices.Clone(physnets) }); err != nil {
		return err
	}
	bridges := []string{underlayBridge}
	for _, pn := range physnets {
		bridges = append(bridges, pn.Bridge)
	}
	for _, br := range bridges {
		if _, err := hostnet.Exec(ctx, "", "ip", "-n", ns, "link", "add", br,
			"mtu", strconv.Itoa(UnderlayMTU), "type", "bridge"); err != nil {
			return fmt.Errorf("bridge %s: %w", br, err)
		}
		if err := hostnet.SetLinkUp(ns, br); err != nil {
			return err
		}
	}
	return nil
}

// physnetVeth creates a veth from the underlay namespace (ulName, made a
// port of the physnet's bridge) to nodeNS (nodeName), with TX offload off
// on both ends: the node end is a netdev OVS port, or faces one.
func (b *builder) physnetVeth(ctx context.Context, pn Physnet, ulName, nodeNS, nodeName, mac string) error {
	ulNS := b.o.Prefix + "underlay"
	if err := hostnet.CreateVeth(hostnet.VethSpec{
		Name: ulName, Namespace: ulNS, PeerName: nodeName, PeerNS: nodeNS, PeerMAC: mac, MTU: UnderlayMTU,
	}); err != nil {
		return err
	}
	if _, err := hostnet.Exec(ctx, "", "ip", "-n", ulNS, "link", "set", ulName, "master", pn.Bridge); err != nil {
		return err
	}
	for _, end := range [][2]string{{ulNS, ulName}, {nodeNS, nodeName}} {
		if err := hostnet.DisableTxOffload(ctx, end[0], end[1]); err != nil {
			return err
		}
	}
	return nil
}

// outside builds the outside node: a NIC in every physnet, the external
// gateway address on the flat one, nothing on the underlay. Its OVS (for
// VLANs) is outsideOVS's.
func (b *builder) outside(ctx context.Context) error {
	o := &Outside{Name: OutsideName, Namespace: b.o.Prefix + OutsideName}
	for _, pn := range physnets {
		nic := OutsideNIC{Name: pn.OutsideNIC, Physnet: pn.Name, MAC: pn.OutsideMAC,
			UnderlayLink: OutsideName + pn.Suffix}
		if pn.CIDR != "" {
			nic.Address = fmt.Sprintf("%s/%d", pn.Gateway, netip.MustParsePrefix(pn.CIDR).Bits())
		}
		o.NICs = append(o.NICs, nic)
	}
	if err := b.store.update(func(st *State) { st.Outside = o }); err != nil {
		return err
	}
	if err := b.createNamespace(ctx, o.Namespace); err != nil {
		return err
	}
	for i, pn := range physnets {
		nic := o.NICs[i]
		if err := b.physnetVeth(ctx, pn, nic.UnderlayLink, o.Namespace, nic.Name, nic.MAC); err != nil {
			return fmt.Errorf("%s: %w", OutsideName, err)
		}
		if nic.Address != "" {
			if err := hostnet.AddAddress(o.Namespace, nic.Name, nic.Address); err != nil {
				return fmt.Errorf("%s: %w", OutsideName, err)
			}
		}
	}
	return nil
}

// nodePhysnets plugs a node into every physnet: the veth, and a netdev
// OVS bridge in standalone fail mode (a learning switch; no controller)
// with the node end as its port. Patch ports to br-int are the
// controller's business.
func (b *builder) nodePhysnets(ctx context.Context, n *Node, save func() error) error {
	for _, pn := range physnets {
		n.Physnets = append(n.Physnets, PhysnetLink{Physnet: pn.Name, OVSBridge: pn.OVSBridge,
			NIC: pn.NIC, UnderlayLink: n.Name + pn.Suffix})
	}
	if err := save(); err != nil {
		return err
	}
	for i, pn := range physnets {
		l := n.Physnets[i]
		if err := b.physnetVeth(ctx, pn, l.UnderlayLink, n.Namespace, l.NIC, ""); err != nil {
			return err
		}
		if _, err := vsctl(ctx, n,
			"--may-exist", "add-br", l.OVSBridge, "--", "set", "Bridge", l.OVSBridge,
			"datapath_type=netdev", "fail_mode=standalone",
			"--", "--may-exist", "add-port", l.OVSBridge, l.NIC); err != nil {
			return err
		}
	}
	return nil
}

// node builds one node: namespace, underlay link, OVS for chassis, agent.
func (b *builder) node(ctx context.Context, p plannedNode, all []plannedNode, servers []string) error {
	ns := b.o.Prefix + p.name
	nodeDir := filepath.Join(b.o.Dir, p.name)
	if err := os.MkdirAll(nodeDir, 0o755); err != nil {
		return err
	}
	if err := b.createNamespace(ctx, ns); err != nil {
		return err
	}
	n := &Node{
		Name: p.name, Kind: p.kind, Namespace: ns, IP: p.ip.String(), MAC: p.mac,
		Gossip:  net.JoinHostPort(p.ip.String(), strconv.Itoa(gossipPort)),
		DataDir: filepath.Join(nodeDir, "data"), Log: filepath.Join(nodeDir, "agent.log"),
	}
	// n is this goroutine's; the state gets copies (save) under its lock.
	save := func() error {
		cp := *n
		return b.store.update(func(st *State) {
			if cur := st.Node(n.Name); cur != nil {
				*cur = cp
			} else {
				st.Nodes = append(st.Nodes, &cp)
			}
		})
	}
	if err := save(); err != nil {
		return err
	}
	cidr := fmt.Sprintf("%s/%d", p.ip, prefixLen())
	ulNS := b.o.Prefix + "underlay"
	// Created in both namespaces at once: nothing ever appears in the root.
	if err := hostnet.CreateVeth(hostnet.VethSpec{
		Name: p.name, Namespace: ulNS, PeerName: nodeNIC, PeerNS: ns, MTU: UnderlayMTU,
	}); err != nil {
		return err
	}
	if _, err := hostnet.Exec(ctx, "", "ip", "-n", ulNS, "link", "set", p.name, "master", underlayBridge); err != nil {
		return err
	}
	// The far end may be a netdev OVS port, which never completes the
	// partial checksums TX offload leaves: TCP between a server and a
	// chassis fails while ping works (as lab-notes say of workload veths).
	for _, end := range [][2]string{{ulNS, p.name}, {ns, nodeNIC}} {
		if err := hostnet.DisableTxOffload(ctx, end[0], end[1]); err != nil {
			return err
		}
	}
	args := []string{
		"--node", p.name, "--data-dir", n.DataDir, "--bind", n.Gossip,
	}
	if !b.o.NoTLS {
		tlsArgs, err := b.nodeTLS(n, p)
		if err != nil {
			return err
		}
		args = append(args, tlsArgs...)
		if err := save(); err != nil {
			return err
		}
	}
	for _, s := range servers {
		args = append(args, "--join", s)
	}
	if p.kind == scenarios.KindServer {
		if err := hostnet.AddAddress(ns, nodeNIC, cidr); err != nil {
			return err
		}
		n.UnderlayAPI = net.JoinHostPort(p.ip.String(), strconv.Itoa(httpPort))
		args = append(args, "--server", "--bootstrap-expect", strconv.Itoa(len(servers)),
			"--http", n.UnderlayAPI, "--http-fd", "3")
		// The API accepts provider networks on the lab's physnets.
		for _, pn := range physnets {
			if pn.VLAN {
				args = append(args, "--vlan-ranges", fmt.Sprintf("%s:%d:%d", pn.Name, VLANMin, VLANMax))
			} else {
				args = append(args, "--flat-networks", pn.Name)
			}
		}
	} else {
		if err := b.chassisOVS(ctx, n, cidr, all); err != nil {
			return err
		}
		if err := save(); err != nil {
			return err
		}
		if p.external {
			if err := b.nodePhysnets(ctx, n, save); err != nil {
				return err
			}
		}
		role := "compute"
		if p.kind == scenarios.KindGateway {
			role = "gateway"
			// Named as the lab names its namespaces, so Down finds them.
			args = append(args, "--vpn-namespace-prefix", ns+"-vpn-")
		}
		args = append(args, "--http", net.JoinHostPort(p.ip.String(), strconv.Itoa(httpPort)),
			"--tunnel-ip", n.IP, "--ovsdb", n.OVSDB, "--ovsdb-local", n.OVSDBUnix,
			"--chassis-roles", role, "--datapath-type", "netdev",
			// The DHCP/RA responder's own OpenFlow connection.
			"--dhcp-socket", filepath.Join(n.OVSDir, "br-int.mgmt"))
		if role == "gateway" {
			// Load balancer namespaces carry the node's name, so Down
			// finds them (lbNamespaces) and two gateways never collide.
			args = append(args, "--lb-netns-prefix", n.Namespace+LBNamespaceInfix)
		}
		for _, l := range n.Physnets {
			args = append(args, "--bridge-mappings", l.Physnet+":"+l.OVSBridge)
		}
	}
	n.Args = append(args, b.o.AgentArgs...)
	if err := save(); err != nil {
		return err
	}
	return startAgent(b.store, b.o.Binary, n.Name)
}

// chassisOVS starts the chassis' OVS and puts the tunnel endpoint on br-phy.
func (b *builder) chassisOVS(ctx context.Context, n *Node, cidr string, all []plannedNode) error {
	// The OVSDB listener binds the tunnel IP before br-phy carries it.
	if _, err := hostnet.Exec(ctx, n.Namespace, "sysctl", "-qw", "net.ipv4.ip_nonlocal_bind=1"); err != nil {
		return err
	}
	ovsDir := filepath.Join(b.o.Dir, n.Name, "ovs")
	remotes, ssl := dbRemotes(n)
	inst, err := ovsproc.Start(ctx, ovsproc.Options{
		Name: n.Name, Namespace: n.Namespace, Dir: ovsDir,
		DBRemotes: remotes, DBSSL: ssl,
		Logger: b.log,
	})
	if err != nil {
		return err
	}
	n.OVSDir = inst.RunDir()
	n.OVSDBUnix = inst.DBEndpoint()
	n.OVSDB = ovsdbEndpoint(n)
	n.OVSDBPID, n.VswitchdPID = inst.DBPID(), inst.VswitchdPID()
	if err := b.store.update(func(st *State) {
		st.Processes = append(st.Processes,
			processOf(n.OVSDBPID, "ovsdb-server "+n.Name),
			processOf(n.VswitchdPID, "ovs-vswitchd "+n.Name))
	}); err != nil {
		return err
	}
	if err := appctlTarget(inst); err != nil {
		return err
	}
	mtu := strconv.Itoa(UnderlayMTU)
	if _, err := inst.Vsctl(ctx,
		"add-br", phyBridge, "--", "set", "Bridge", phyBridge, "datapath_type=netdev",
		"other-config:hwaddr="+strconv.Quote(n.MAC),
		"--", "set", "Interface", phyBridge, "mtu_request="+mtu,
		"--", "add-port", phyBridge, nodeNIC); err != nil {
		return err
	}
	var peers []peer
	for _, o := range all {
		if o.mac != "" && o.name != n.Name {
			peers = append(peers, peer{ip: o.ip.String(), mac: o.mac})
		}
	}
	return tunnelEndpoint(ctx, inst, n, cidr, peers)
}

// appctlTarget links ovs-vswitchd's unixctl socket under the name plain
// `ovs-appctl` (target ovs-vswitchd, found through its pidfile in
// OVS_RUNDIR) looks for, <rundir>/ovs-vswitchd.<pid>.ctl, so a scenario
// runs `ovs-appctl ofproto/trace ...` on a chassis as on any OVS host.
func appctlTarget(inst *ovsproc.Instance) error {
	link := filepath.Join(inst.RunDir(), fmt.Sprintf("ovs-vswitchd.%d.ctl", inst.VswitchdPID()))
	if err := os.Symlink(inst.VswitchdCtl(), link); err != nil && !errors.Is(err, os.ErrExist) {
		return fmt.Errorf("lab: ovs-appctl target: %w", err)
	}
	return nil
}

// peer is another chassis' tunnel endpoint: br-phy's address and MAC.
type peer struct{ ip, mac string }

// tunnelEndpoint puts the tunnel IP on br-phy and pre-loads the tunnel
// peers' MACs: what `up` does and a revived OVS has lost (the ARP
// entries always, the address if br-phy's tap went with ovs-vswitchd).
func tunnelEndpoint(ctx context.Context, inst *ovsproc.Instance, n *Node, cidr string, peers []peer) error {
	if _, err := hostnet.Exec(ctx, n.Namespace, "ip", "addr", "replace", cidr, "dev", phyBridge); err != nil {
		return err
	}
	if err := hostnet.SetLinkUp(n.Namespace, phyBridge); err != nil {
		return err
	}
	// OVS resolves tunnel peers itself and drops the first packet to each
	// while it does: pre-load every other chassis' br-phy MAC.
	for _, p := range peers {
		if _, err := inst.Appctl(ctx, "tnl/arp/set", phyBridge, p.ip, p.mac); err != nil {
			return err
		}
	}
	return nil
}

// startAgent starts (or restarts) a node's agent inside its namespace, as
// a session leader of its own that outlives the lab command. A server
// gets its root-namespace API socket as fd 3.
func startAgent(s *store, binary, name string) error {
	st := s.snapshot()
	n := st.Node(name)
	if n == nil {
		return fmt.Errorf("lab: no node %s", name)
	}
	var extra []*os.File
	if n.Kind == scenarios.KindServer {
		// Port 0 the first time; the same port on a restart so the URL in
		// status stays right (unless something else took it meanwhile).
		ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(n.APIPort)))
		if err != nil && n.APIPort != 0 {
			ln, err = net.Listen("tcp", "127.0.0.1:0")
		}
		if err != nil {
			return fmt.Errorf("lab: API socket for %s: %w", name, err)
		}
		f, err := ln.(*net.TCPListener).File()
		ln.Close()
		if err != nil {
			return fmt.Errorf("lab: API socket for %s: %w", name, err)
		}
		defer f.Close()
		extra = append(extra, f)
		port := ln.Addr().(*net.TCPAddr).Port
		if err := s.update(func(st *State) {
			n := st.Node(name)
			scheme := "http"
			if st.CA != "" {
				scheme = "https"
			}
			n.APIPort, n.API = port, fmt.Sprintf("%s://127.0.0.1:%d", scheme, port)
		}); err != nil {
			return err
		}
	}
	logf, err := os.OpenFile(n.Log, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("lab: agent log: %w", err)
	}
	defer logf.Close()
	// nsenter, not `ip netns exec`: the latter gives the agent a private
	// mount namespace, and a namespace a gateway agent creates for a VPN
	// (`ip netns add`, a bind mount under /run/netns) would then exist for
	// the agent alone.
	args := append([]string{"--net=/run/netns/" + n.Namespace, "--", binary, "agent"}, n.Args...)
	cmd := exec.Command("nsenter", args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.ExtraFiles = extra
	cmd.Dir = filepath.Dir(n.Log)
	// Its own session: a Ctrl-C at the lab command must not reach agents.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("lab: start agent %s: %w", name, err)
	}
	pid := cmd.Process.Pid
	// Reap it if it dies while we live; nsenter execs in place, so
	// this PID is the agent's.
	go func() { _ = cmd.Wait() }()
	return s.update(func(st *State) {
		st.Node(name).AgentPID = pid
		st.Processes = append(st.Processes, processOf(pid, "agent "+name))
	})
}

// waitReady waits until every server's API (through its root-namespace
// socket) names a leader and gossip lists every node alive.
func (b *builder) waitReady(ctx context.Context) error {
	st := b.store.snapshot()
	var want []string
	for _, n := range st.Nodes {
		want = append(want, n.Name)
	}
	return poll(ctx, b.o.ReadyTimeout, func() (bool, string, error) {
		st := b.store.snapshot()
		for _, n := range st.Nodes {
			if !agentAlive(st, n) {
				return false, "", fmt.Errorf("lab: agent of %s exited: %s", n.Name, tail(n.Log, 8))
			}
		}
		for _, n := range st.Nodes {
			if n.Kind != scenarios.KindServer {
				continue
			}
			c, err := apiClient(st, n.API, 2*time.Second)
			if err != nil {
				return false, "", err
			}
			cs, err := c.Cluster(ctx)
			if err != nil {
				return false, fmt.Sprintf("%s: %v", n.Name, err), nil
			}
			if cs.Leader == "" {
				return false, n.Name + " sees no leader", nil
			}
			members, err := c.Members(ctx)
			if err != nil {
				return false, fmt.Sprintf("%s: members: %v", n.Name, err), nil
			}
			alive := map[string]bool{}
			for _, m := range members {
				alive[m.Name] = m.Status == "alive"
			}
			for _, w := range want {
				if !alive[w] {
					return false, fmt.Sprintf("%s does not see %s alive in gossip", n.Name, w), nil
				}
			}
		}
		// Gossip alive is not yet a chassis record: a router created
		// before its gateways' records are committed up gets no gateway.
		return chassisUp(ctx, st)
	})
}

// chassisUp reports whether the leader has committed every chassis and
// gateway node of the lab as an up chassis.
func chassisUp(ctx context.Context, st *State) (bool, string, error) {
	var api string
	for _, n := range st.Nodes {
		if n.Kind == scenarios.KindServer {
			api = n.API
			break
		}
	}
	c, err := apiClient(st, api, 2*time.Second)
	if err != nil {
		return false, "", err
	}
	list, err := c.List(ctx, "chassis", nil)
	if err != nil {
		return false, fmt.Sprintf("chassis list: %v", err), nil
	}
	up := map[string]bool{}
	for _, ch := range list {
		name, _ := ch["name"].(string)
		u, _ := ch["up"].(bool)
		up[name] = u
	}
	for _, n := range st.Nodes {
		if (n.Kind == scenarios.KindChassis || n.Kind == scenarios.KindGateway) && !up[n.Name] {
			return false, fmt.Sprintf("chassis %s is not committed up yet", n.Name), nil
		}
	}
	return true, "", nil
}

// apiClient is a client of one API URL of the lab (trusting its CA) with
// a short per-request timeout.
func apiClient(st *State, url string, timeout time.Duration) (*client.Client, error) {
	c, err := client.New(url)
	if err != nil {
		return nil, err
	}
	if st.CA != "" {
		if err := c.TrustCA(st.CA); err != nil {
			return nil, err
		}
	}
	c.HTTPClient.Timeout = timeout
	c.UserAgent = "neutrino-lab"
	return c, nil
}

// agentAlive reports whether a node's agent process is running.
func agentAlive(st *State, n *Node) bool {
	for _, p := range st.Processes {
		if p.PID == n.AgentPID {
			return p.alive()
		}
	}
	return false
}

// AgentAlive reports whether the agent of a node is running.
func (st *State) AgentAlive(name string) bool {
	n := st.Node(name)
	return n != nil && agentAlive(st, n)
}

// tail returns the last lines of a file, joined by " | ".
func tail(path string, lines int) string {
	return strings.ReplaceAll(tailLines(path, lines), "\n", " | ")
}

// Down removes the lab in dir: every process, namespace (and with them
// every link) and the directory. It works from whatever the state file
// recorded, also after a crashed `up`, and falls back to the prefix's
// namespace names when the state file is unreadable. A missing lab is not
// an error.
func Down(ctx context.Context, dir, prefix string, log *slog.Logger) error {
	if dir == "" {
		dir = DefaultDir
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		return fmt.Errorf("lab: dir: %w", err)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("%w in %s", ErrNoLab, dir)
	}
	lk, err := acquireLock(dir)
	if err != nil {
		return err
	}
	defer lk.release()
	st, err := LoadState(dir)
	if err != nil {
		if prefix == "" {
			prefix = DefaultPrefix
		}
		log.Warn("state unreadable; removing namespaces by prefix", "err", err, "prefix", prefix)
		st = &State{Dir: dir, Prefix: prefix, Namespaces: namespacesByPrefix(prefix)}
	}
	return destroy(ctx, dir, st, log)
}

// namespacesByPrefix lists existing namespaces named as a lab with this
// prefix names them.
func namespacesByPrefix(prefix string) []string {
	ents, _ := os.ReadDir("/run/netns")
	var out []string
	for _, e := range ents {
		if labNamespaceName(prefix, e.Name()) {
			out = append(out, e.Name())
		}
	}
	return out
}

// labNamespaceName reports whether name is one a lab with prefix makes.
func labNamespaceName(prefix, name string) bool {
	rest, ok := strings.CutPrefix(name, prefix)
	if !ok {
		return false
	}
	kind, num, _ := strings.Cut(rest, "-")
	// A gateway's VPN namespaces: <node>-vpn-<router>.
	num, _, _ = strings.Cut(num, "-vpn-")
	_, numErr := strconv.Atoi(num)
	switch {
	case rest == "underlay", rest == OutsideName, strings.HasPrefix(rest, "vm-"), strings.HasPrefix(rest, "site-"):
		return true
	case kind == scenarios.KindServer || kind == scenarios.KindChassis || kind == scenarios.KindGateway:
		return numErr == nil
	}
	return false
}

// destroy ends the lab's processes, deletes its namespaces and its dir.
func destroy(ctx context.Context, dir string, st *State, log *slog.Logger) error {
	start := time.Now()
	nss := slices.Clone(st.Namespaces)
	if st.Prefix != "" {
		// Namespaces the agents made (a gateway's VPN namespaces) are in
		// no state file; they are named as the lab names its own.
		nss = append(nss, namespacesByPrefix(st.Prefix)...)
	}
	for _, v := range st.VMs {
		nss = append(nss, v.Namespace)
	}
	for _, n := range st.Nodes {
		nss = append(nss, n.Namespace)
	}
	nss = append(nss, lbNamespaces(st)...)
	slices.Sort(nss)
	nss = slices.Compact(nss)

	procs := append(slices.Clone(st.Processes), processesOf(dir)...)
	var errs []error
	if err := killAll(ctx, procs, 2*time.Second); err != nil {
		errs = append(errs, err)
	}
	// Anything else still in a lab namespace is not ours to end, but it
	// keeps that namespace alive after its name is gone: say so.
	for _, p := range processesIn(nss) {
		if !p.alive() {
			continue
		}
		comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", p.PID))
		log.Warn("a process not started by the lab is in a lab namespace; left running",
			"pid", p.PID, "comm", strings.TrimSpace(string(comm)))
	}
	var (
		wg sync.WaitGroup
		mu sync.Mutex
	)
	for _, ns := range nss {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := hostnet.DeleteNamespace(ctx, ns); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if isLabDir(dir) {
		if err := os.RemoveAll(dir); err != nil {
			errs = append(errs, fmt.Errorf("lab: remove %s: %w", dir, err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	log.Info("lab down", "took", time.Since(start), "namespaces", len(nss), "processes", len(procs))
	return nil
}

// LBNamespaceInfix follows a gateway's namespace name in the names of its
// load balancer namespaces.
const LBNamespaceInfix = "-lb-"

// lbNamespaces lists the load balancer namespaces of the lab's gateways
// (made by their agents, not recorded in the state).
func lbNamespaces(st *State) []string {
	ents, err := os.ReadDir("/run/netns")
	if err != nil {
		return nil
	}
	var out []string
	for _, n := range st.Nodes {
		if n.Namespace == "" {
			continue
		}
		for _, e := range ents {
			if strings.HasPrefix(e.Name(), n.Namespace+LBNamespaceInfix) {
				out = append(out, e.Name())
			}
		}
	}
	return out
}

// isLabDir reports whether dir is a lab's (has its state or lock file), so
// a mistyped --dir never removes someone's directory.
func isLabDir(dir string) bool {
	for _, f := range []string{stateFile, lockFile} {
		if _, err := os.Stat(filepath.Join(dir, f)); err == nil {
			return true
		}
	}
	return false
}

// ovsTools are the OVS programs the lab runs against its chassis; one
// still talking to a lab's sockets when it goes down is the lab's (say,
// an ovs-vsctl a crashed `up` left waiting).
var ovsTools = map[string]bool{
	"ovs-vsctl": true, "ovs-appctl": true, "ovs-ofctl": true, "ovsdb-client": true,
	"ovsdb-tool": true, "ovsdb-server": true, "ovs-vswitchd": true,
	// A gateway agent's load balancers (their config is in its data dir);
	// they die with the agent, unless it was stopped mid-start.
	"haproxy": true,
}

// processesOf lists the lab's daemons by their command lines: an agent's
// --data-dir or an OVS daemon's --pidfile is a path in dir. This finds the
// daemons whose PID never reached the state file (a crash right after
// starting one) and OVS tools left talking to its sockets, without touching
// anyone else's process, e.g. a shell someone opened in a lab namespace or
// a `tail -f` of a lab log.
func processesOf(dir string) []Process {
	if !isLabDir(dir) {
		return nil
	}
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	self := os.Getpid()
	in := dir + "/"
	var out []Process
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if err != nil {
			continue
		}
		args := strings.Split(string(b), "\x00")
		tool := ovsTools[filepath.Base(args[0])]
		if filepath.Base(args[0]) == "charon" {
			// A gateway's or a site's charon: its conf is in the lab dir.
			if env, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid)); err == nil &&
				strings.Contains(string(env), "STRONGSWAN_CONF="+in) {
				out = append(out, processOf(pid, "lab daemon: charon"))
			}
			continue
		}
		for i, a := range args {
			ours := strings.HasPrefix(a, "--pidfile="+in) ||
				(a == "--data-dir" && i+1 < len(args) && strings.HasPrefix(args[i+1], in)) ||
				(tool && strings.Contains(a, in))
			if ours {
				out = append(out, processOf(pid, "lab daemon: "+args[0]))
				break
			}
		}
	}
	return out
}

// Addr returns a node's underlay address as netip.Addr (zero if bad).
func (n *Node) Addr() netip.Addr {
	a, _ := netip.ParseAddr(n.IP)
	return a
}
