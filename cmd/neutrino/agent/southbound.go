package agent

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"

	"neutrino/cluster"
	"neutrino/southbound/controller"
	"neutrino/southbound/openflow"
)

// southbound is a server's share of programming the chassis: the OpenFlow
// listener and the controller, fed with leadership changes.
type southbound struct {
	ln     *openflow.Listener
	ctrl   *controller.Controller
	cancel context.CancelFunc
	wg     sync.WaitGroup
	log    *slog.Logger
	addr   string // announced OpenFlow address
	tls    bool   // switches connect over TLS (ssl: targets)
}

// Defaults of Config.PacketInRate and PacketInBurst: far above what ARP
// resolution and MAC learning for a chassis' ports ask of the leader, far
// below what one ovs-vswitchd can send (thousands per second).
const (
	DefaultPacketInRate  = 500
	DefaultPacketInBurst = 100
)

// listenOpenFlow opens the server's OpenFlow listener and returns the
// address to announce ("tcp:IP:PORT" or "unix:PATH").
func listenOpenFlow(cfg Config, log *slog.Logger) (*southbound, string, error) {
	network, addr, announce, err := openFlowAddr(cfg)
	if err != nil {
		return nil, "", err
	}
	opts := openflow.Options{Logger: log, PacketInRate: cfg.PacketInRate, PacketInBurst: cfg.PacketInBurst}
	if opts.PacketInRate == 0 {
		opts.PacketInRate, opts.PacketInBurst = DefaultPacketInRate, DefaultPacketInBurst
	}
	// TLS covers TCP targets; OVS has no TLS over unix sockets, which
	// only local processes reach anyway.
	useTLS := cfg.TLS != nil && (network == "tcp" || cfg.OpenFlowListener != nil)
	if useTLS {
		opts.TLS = openFlowTLS(cfg.TLS)
	}
	var ln *openflow.Listener
	if cfg.OpenFlowListener != nil {
		ln = openflow.NewListener(cfg.OpenFlowListener, opts)
		network, announce = "tcp", "tcp:"+cfg.OpenFlowListener.Addr().String()
	} else if ln, err = openflow.Listen(network, addr, opts); err != nil {
		return nil, "", fmt.Errorf("agent: --openflow: %w", err)
	}
	if network == "tcp" && strings.HasSuffix(announce, ":0") {
		// Port 0 (tests): announce the port the kernel chose.
		host, _, _ := net.SplitHostPort(strings.TrimPrefix(announce, "tcp:"))
		announce = "tcp:" + net.JoinHostPort(host, strconv.Itoa(ln.Addr().(*net.TCPAddr).Port))
	}
	if useTLS {
		announce = "ssl:" + strings.TrimPrefix(announce, "tcp:")
	}
	return &southbound{ln: ln, log: log, addr: announce, tls: useTLS}, announce, nil
}

// openFlowAddr parses Config.OpenFlow into what to listen on and what to
// announce; the default is the bind host (announced as the advertise
// address) on the bind port + 2.
func openFlowAddr(cfg Config) (network, addr, announce string, err error) {
	spec := cfg.OpenFlow
	if path, ok := strings.CutPrefix(spec, "unix:"); ok {
		return "unix", path, spec, nil
	}
	spec = strings.TrimPrefix(spec, "tcp:")
	if spec == "" {
		host, port, err := net.SplitHostPort(cfg.Bind)
		if err != nil {
			return "", "", "", fmt.Errorf("agent: --bind %q: %w", cfg.Bind, err)
		}
		p, err := strconv.Atoi(port)
		if err != nil {
			return "", "", "", fmt.Errorf("agent: --bind %q: %w", cfg.Bind, err)
		}
		spec = net.JoinHostPort(host, strconv.Itoa(p+2))
	}
	host, port, err := net.SplitHostPort(spec)
	if err != nil {
		return "", "", "", fmt.Errorf("agent: --openflow %q: want tcp:IP:PORT, IP:PORT or unix:PATH: %w", cfg.OpenFlow, err)
	}
	adv := host
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		adv = cfg.Advertise
		if adv == "" {
			return "", "", "", fmt.Errorf("agent: --openflow %q listens on every address: set --advertise", cfg.OpenFlow)
		}
	}
	return "tcp", spec, "tcp:" + net.JoinHostPort(adv, port), nil
}

// prepare builds the controller (not yet running) once the cluster exists,
// so the API, served before the cluster starts, can wait on it.
func (s *southbound) prepare(a *Agent) {
	if s == nil {
		return
	}
	c := a.cluster
	cfg := controller.Config{
		FSM:         a.fsm,
		Apply:       c.Apply,
		Controllers: func() []string { return serverOpenFlowAddrs(c) },
		Term:        c.Term,
		Listener:    s.ln,
		OnCompile:   a.metrics.observeCompile,
		Logger:      s.log,
	}
	if s.tls {
		cfg.VerifyChassis = chassisCheck(a.cfg.TLS)
	}
	if a.cfg.TLS != nil {
		cfg.OVSDBTLS = ovsdbTLS(a.cfg.TLS)
	}
	s.ctrl = controller.New(cfg)
}

// start runs the controller (built by prepare) and hands it every
// leadership change.
func (s *southbound) start(a *Agent) {
	if s == nil {
		return
	}
	c := a.cluster
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	events, unsubscribe := c.SubscribeLeadership()
	s.wg.Add(2)
	go func() {
		defer s.wg.Done()
		s.ctrl.Run(ctx)
	}()
	go func() {
		defer s.wg.Done()
		defer unsubscribe()
		for {
			select {
			case ev, ok := <-events:
				if !ok {
					s.ctrl.SetLeadership(false, 0)
					return
				}
				s.ctrl.SetLeadership(ev.IsLeader, ev.Term)
			case <-ctx.Done():
				return
			}
		}
	}()
}

// stop stops the controller (demoting every OpenFlow connection) and
// closes the listener.
func (s *southbound) stop() error {
	if s == nil {
		return nil
	}
	if s.cancel != nil {
		s.cancel()
	}
	s.wg.Wait()
	return s.close()
}

func (s *southbound) close() error {
	if s == nil {
		return nil
	}
	if err := s.ln.Close(); err != nil && !strings.Contains(err.Error(), "use of closed") {
		return fmt.Errorf("agent: close openflow listener: %w", err)
	}
	return nil
}

// serverOpenFlowAddrs are the OpenFlow addresses of every server gossip
// knows that has not left: a server that is down for a while keeps its
// target, so its restart costs no OVSDB write on every chassis.
func serverOpenFlowAddrs(c *cluster.Cluster) []string {
	var out []string
	for _, m := range c.Members() {
		if m.Meta.Role == cluster.RoleServer && m.Status != cluster.StatusLeft && m.Meta.OpenFlowAddr != "" {
			out = append(out, m.Meta.OpenFlowAddr)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// Controller returns the server's southbound controller, nil on a chassis
// agent or before Start returns.
func (a *Agent) Controller() *controller.Controller {
	if a.south == nil {
		return nil
	}
	return a.south.ctrl
}

// OpenFlowAddr is the OpenFlow address the server announces ("" on a
// chassis agent).
func (a *Agent) OpenFlowAddr() string {
	if a.south == nil {
		return ""
	}
	return a.south.addr
}
