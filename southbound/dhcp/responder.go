package dhcp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync/atomic"
	"time"

	"neutrino/southbound/openflow"
	"neutrino/southbound/pipeline"
)

// Config configures a Responder.
type Config struct {
	// Socket is the path of br-int's service socket
	// (<OVS_RUNDIR>/br-int.mgmt).
	Socket string
	// Chassis is this chassis' name: ports bound to it are answered.
	Chassis string
	Source  Source
	Settings
	// RAInterval is how often every local port on a network with router
	// advertisements gets one (DefaultRAInterval when zero).
	RAInterval time.Duration
	Logger     *slog.Logger
}

// DefaultRAInterval is the period of unsolicited router advertisements.
const DefaultRAInterval = 30 * time.Second

// Stats are a responder's counters.
type Stats struct {
	// PacketIns received on the agent's connection.
	PacketIns uint64
	// Answered: replies sent (offers, acks, naks, DHCPv6 replies, RAs to
	// solicitations).
	Answered uint64
	// Malformed packets dropped (undecodable frame, DHCP or DHCPv6
	// message, router solicitation).
	Malformed uint64
	// NoPort: a packet from an ofport that is no port bound here (yet).
	NoPort uint64
	// Silent: well formed, but nothing to answer (DHCP disabled, another
	// server's offer taken, release, decline).
	Silent uint64
	// Naks sent.
	Naks uint64
	// PeriodicRAs sent.
	PeriodicRAs uint64
	// Connects counts the connections made to the switch.
	Connects uint64
}

// Responder answers the DHCP, DHCPv6 and router solicitations of one
// chassis' VMs over its own OpenFlow connection to br-int.
type Responder struct {
	cfg   Config
	log   *slog.Logger
	idx   atomic.Pointer[index]
	dirty atomic.Bool
	conn  atomic.Pointer[openflow.Conn]

	packetIns, answered, malformedN, noPort, silent, naks, periodic, connects atomic.Uint64
}

// New returns a responder; Run starts it.
func New(cfg Config) *Responder {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.RAInterval <= 0 {
		cfg.RAInterval = DefaultRAInterval
	}
	r := &Responder{cfg: cfg, log: cfg.Logger.With("component", "dhcp")}
	r.dirty.Store(true)
	return r
}

// Invalidate says the replicated state changed: the next answer reads it
// again.
func (r *Responder) Invalidate() { r.dirty.Store(true) }

// Stats returns the counters.
func (r *Responder) Stats() Stats {
	return Stats{PacketIns: r.packetIns.Load(), Answered: r.answered.Load(), Malformed: r.malformedN.Load(),
		NoPort: r.noPort.Load(), Silent: r.silent.Load(), Naks: r.naks.Load(), PeriodicRAs: r.periodic.Load(),
		Connects: r.connects.Load()}
}

// Connected reports whether the responder holds a connection to br-int.
func (r *Responder) Connected() bool {
	c := r.conn.Load()
	if c == nil {
		return false
	}
	select {
	case <-c.Done():
		return false
	default:
		return true
	}
}

func (r *Responder) index() *index {
	if r.dirty.Swap(false) || r.idx.Load() == nil {
		r.idx.Store(buildIndex(r.cfg.Source, r.cfg.Chassis, r.cfg.Settings))
	}
	return r.idx.Load()
}

// Run connects to the switch and answers until ctx ends, reconnecting
// after a lost connection (ovs-vswitchd restarted).
func (r *Responder) Run(ctx context.Context) {
	go r.periodicRAs(ctx)
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		c, err := r.connect(ctx)
		if err != nil {
			r.log.Debug("dhcp: no connection to br-int", "socket", r.cfg.Socket, "err", err)
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, 2*time.Second)
			continue
		}
		backoff = 100 * time.Millisecond
		r.connects.Add(1)
		r.conn.Store(c)
		r.log.Info("dhcp: answering on br-int", "socket", r.cfg.Socket)
		r.serve(ctx, c)
		c.Close()
	}
}

func (r *Responder) connect(ctx context.Context) (*openflow.Conn, error) {
	var d net.Dialer
	nc, err := d.DialContext(ctx, "unix", r.cfg.Socket)
	if err != nil {
		return nil, err
	}
	c, err := openflow.Handshake(ctx, nc, openflow.Options{Logger: r.log, PacketInQueue: 1024})
	if err != nil {
		return nil, err
	}
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := c.SetControllerID(cctx, pipeline.ChassisControllerID); err != nil {
		c.Close()
		return nil, fmt.Errorf("dhcp: set controller id: %w", err)
	}
	if err := c.EnablePacketIns(cctx); err != nil {
		c.Close()
		return nil, fmt.Errorf("dhcp: enable packet-ins: %w", err)
	}
	return c, nil
}

func (r *Responder) serve(ctx context.Context, c *openflow.Conn) {
	for {
		select {
		case <-ctx.Done():
			return
		case pi, ok := <-c.PacketIns():
			if !ok {
				return
			}
			r.packetIns.Add(1)
			if fwRejectTable(pi.TableID) {
				r.reject(c, pi)
				continue
			}
			if out := r.Handle(pi.InPort, pi.Data); out != nil {
				err := c.SendPacketOut(openflow.PacketOut{InPort: pi.InPort,
					Actions: []openflow.Action{openflow.Output{Port: openflow.PortInPort}}, Data: out})
				if err != nil {
					r.log.Warn("dhcp: packet-out", "err", err)
				}
			}
		}
	}
}

// fwRejectTable says whether a packet-in comes from a firewall ACL table
// (a rule with action reject).
func fwRejectTable(t uint8) bool {
	switch t {
	case pipeline.TableFWEgressACL, pipeline.TableFWVMEgress, pipeline.TableFWIngressACL, pipeline.TableFWVMIngress:
		return true
	}
	return false
}

// reject answers a packet a firewall rule rejected (RejectAnswer). What a
// local port sent (tables 33, 34) is answered out of that port. What was
// about to be delivered to a local port (tables 48, 49) came from anywhere
// (routed here or on another chassis, through a tunnel, from outside
// through a floating IP): the answer goes back through the pipeline from
// the L2 lookup on the packet's network (the metadata it had), as if the
// destination port had sent it past its own filters, so it is routed,
// tunnelled or NATed toward the sender like any reply.
func (r *Responder) reject(c *openflow.Conn, pi openflow.PacketIn) {
	out := RejectAnswer(pi.Data)
	if out == nil {
		r.silent.Add(1)
		return
	}
	po := openflow.PacketOut{InPort: pi.InPort, Actions: []openflow.Action{openflow.Output{Port: openflow.PortInPort}}, Data: out}
	if pi.TableID == pipeline.TableFWIngressACL || pi.TableID == pipeline.TableFWVMIngress {
		meta := pi.Metadata & pipeline.MetadataNetworkMask
		if meta == 0 {
			r.silent.Add(1)
			return
		}
		po = openflow.PacketOut{InPort: openflow.PortController, Data: out, Actions: []openflow.Action{
			openflow.SetUint(openflow.FieldMetadata, meta), openflow.Resubmit{Table: pipeline.TableL2Lookup}}}
	}
	if err := c.SendPacketOut(po); err != nil {
		r.log.Warn("firewall reject: packet-out", "err", err)
		return
	}
	r.answered.Add(1)
}

// Handle answers one packet from ofport inPort; the reply frame, or nil.
// It never panics on what a VM sends: malformed packets are counted.
func (r *Responder) Handle(inPort uint32, data []byte) []byte {
	x := r.index()
	p := x.byOfport[inPort]
	if p == nil {
		r.noPort.Add(1)
		return nil
	}
	f, err := ParseFrame(data)
	if err != nil {
		r.bad(p.ID, err)
		return nil
	}
	var out []byte
	kind := ""
	switch {
	case f.Proto == protoUDP && f.SrcIP.Is4() && f.DstPort == 67:
		m, err := ParseV4(f.Payload)
		if err != nil {
			r.bad(p.ID, err)
			return nil
		}
		c := x.v4Config(p)
		if c == nil {
			r.silent.Add(1)
			return nil
		}
		a := AnswerV4(c, f, m)
		out, kind = a.Frame, a.Kind
		switch a.Kind {
		case "nak":
			r.naks.Add(1)
			r.log.Info("dhcp: NAK", "port", p.ID, "have", c.IP)
		case "decline":
			r.log.Warn("dhcp: VM declined its address (in use on the wire?)", "port", p.ID, "ip", c.IP)
		}
	case f.Proto == protoUDP && f.SrcIP.Is6() && f.DstPort == 547:
		m, err := ParseV6(f.Payload)
		if err != nil {
			r.bad(p.ID, err)
			return nil
		}
		c := x.v6Config(p)
		if c == nil {
			r.silent.Add(1)
			return nil
		}
		out, kind = AnswerV6(c, f, m)
	case f.Proto == protoICMP6:
		if err := ParseRS(f.Payload); err != nil {
			r.bad(p.ID, err)
			return nil
		}
		c := x.raConfig(p.NetworkID)
		if c == nil {
			r.silent.Add(1)
			return nil
		}
		dst, dstMAC := f.SrcIP, f.SrcMAC
		if !dst.IsValid() || dst.IsUnspecified() {
			dst = netip.MustParseAddr("ff02::1")
		}
		out, kind = RA(c, dstMAC, dst), "ra"
	default:
		r.bad(p.ID, fmt.Errorf("%w: not a DHCP request or router solicitation", ErrMalformed))
		return nil
	}
	if out == nil {
		r.silent.Add(1)
		return nil
	}
	r.answered.Add(1)
	r.log.Debug("dhcp: answered", "port", p.ID, "kind", kind)
	return out
}

func (r *Responder) bad(port string, err error) {
	n := r.malformedN.Add(1)
	if n&(n-1) == 0 || !errors.Is(err, ErrMalformed) { // log at 1, 2, 4, ...
		r.log.Warn("dhcp: dropped malformed packet", "port", port, "err", err, "dropped", n)
	}
}

// periodicRAs sends every local port on a network with router
// advertisements one every RAInterval, out of its own ofport only.
func (r *Responder) periodicRAs(ctx context.Context) {
	t := time.NewTicker(r.cfg.RAInterval)
	defer t.Stop()
	allNodes := netip.MustParseAddr("ff02::1")
	allNodesMAC := net.HardwareAddr{0x33, 0x33, 0, 0, 0, 1}
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		c := r.conn.Load()
		if c == nil {
			continue
		}
		x := r.index()
		for ofport, p := range x.byOfport {
			ra := x.raConfig(p.NetworkID)
			if ra == nil {
				continue
			}
			err := c.SendPacketOut(openflow.PacketOut{InPort: openflow.PortController,
				Actions: []openflow.Action{openflow.Output{Port: ofport}}, Data: RA(ra, allNodesMAC, allNodes)})
			if err != nil {
				r.log.Debug("dhcp: periodic RA", "port", p.ID, "err", err)
				continue
			}
			r.periodic.Add(1)
		}
	}
}
