package controller

import (
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sync"
	"time"

	"neutrino/fsm"
	"neutrino/southbound/openflow"
	"neutrino/southbound/packet"
	"neutrino/southbound/pipeline"
)

// The leader's part of the way out (docs/pipeline.md, "The way out"):
//
//   - MAC bindings: an ARP a chassis copies to the leader (a request for,
//     or a reply to, an address the chassis serves on an external network)
//     teaches the sender's MAC, committed as fsm.MacBinding when new or
//     changed;
//   - next-hop misses: a packet for an external next hop with no binding
//     makes the leader send an ARP request for it from that chassis;
//   - announcements: once a chassis acknowledged the flows that make it
//     serve an external address, the leader sends gratuitous ARP for it
//     from there, so the physical network learns where the MAC went.

// Timings of the external services.
const (
	// arpRetry is the least time between two ARP requests for one next
	// hop from one chassis.
	arpRetry = 500 * time.Millisecond
	// learnRetry is the least time between two commits of one binding.
	learnRetry = time.Second
	// packetOutTimeout bounds one packet-out.
	packetOutTimeout = 2 * time.Second
)

// garpSchedule is when a moved address is announced, after the chassis
// acknowledged its flows: at once, and twice more in case the first is
// lost (switch ports coming up, a busy link).
var garpSchedule = []time.Duration{0, 200 * time.Millisecond, time.Second}

// externalState is the leader's memory of the external services.
type externalState struct {
	mu      sync.Mutex
	arpSent map[string]time.Time // chassis|key|ip -> last request
	learned map[string]time.Time // network|ip|mac -> last commit
}

// onPacketIn handles a packet-in from a MASTER connection.
func (c *Controller) onPacketIn(chassis string, pi openflow.PacketIn) {
	key := pi.Metadata & pipeline.MetadataNetworkMask
	if key == 0 {
		return
	}
	v := c.cfg.FSM.State().Read()
	n := externalNetworkByKey(v, key)
	if n == nil {
		return
	}
	if arp, err := packet.ParseARP(pi.Data); err == nil {
		c.learn(v, n, arp.SPA, arp.SHA)
		return
	}
	if pi.TableID == pipeline.TableNextHop {
		c.resolve(chassis, key, pi)
	}
}

// externalNetworkByKey finds the external network with a network key.
func externalNetworkByKey(v *fsm.View, key uint64) *fsm.Network {
	for _, n := range v.Networks() {
		if n.External && pipeline.NetworkKey(n) == key {
			return n
		}
	}
	return nil
}

// learn commits ip -> mac on network n when ip is on one of its subnets,
// is not a Neutron port's, and the binding is new or changed.
func (c *Controller) learn(v *fsm.View, n *fsm.Network, ip netip.Addr, mac net.HardwareAddr) {
	if !ip.IsValid() || len(mac) != 6 || mac[0]&1 != 0 {
		return
	}
	var onSubnet bool
	for _, s := range v.SubnetsOfNetwork(n.ID) {
		if s.Prefix().Contains(ip) {
			onSubnet = true
			if v.PortByIP(s.ID, ip.String()) != nil {
				return
			}
		}
	}
	if !onSubnet {
		return
	}
	if mb := v.MacBinding(n.ID, ip.String()); mb != nil && mb.MAC == mac.String() {
		return
	}
	k := n.ID + "|" + ip.String() + "|" + mac.String()
	c.ext.mu.Lock()
	if time.Since(c.ext.learned[k]) < learnRetry {
		c.ext.mu.Unlock()
		return
	}
	c.ext.learned[k] = time.Now()
	c.ext.mu.Unlock()
	cmd, err := fsm.Encode(fsm.CmdMacBindingSet, fsm.MacBindingSetRequest{
		Bindings: []fsm.MacBinding{{NetworkID: n.ID, IP: ip.String(), MAC: mac.String()}},
		At:       time.Now().UTC().Format(time.RFC3339),
	})
	if err != nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	res, err := c.cfg.Apply(ctx, cmd)
	if err == nil {
		err = res.Err
	}
	if err != nil {
		c.log.Warn("commit MAC binding", "network", n.ID, "ip", ip, "mac", mac, "err", err)
		return
	}
	c.log.Info("learned MAC binding", "network", n.ID, "ip", ip, "mac", mac.String())
}

// resolve sends an ARP request for the next hop of a packet table 55
// could not resolve, from the packet's source MAC and address, flooded on
// its network from the chassis that asked.
func (c *Controller) resolve(chassis string, key uint64, pi openflow.PacketIn) {
	nh := ipv4(pi.Reg(pipeline.RegNextHop))
	src, srcIP, ok := ipv4Source(pi.Data)
	if !ok || !nh.IsValid() {
		return
	}
	k := fmt.Sprintf("%s|%x|%s", chassis, key, nh)
	c.ext.mu.Lock()
	if time.Since(c.ext.arpSent[k]) < arpRetry {
		c.ext.mu.Unlock()
		return
	}
	c.ext.arpSent[k] = time.Now()
	c.ext.mu.Unlock()
	frame, err := packet.NewARPRequest(src, srcIP, nh, 0)
	if err != nil {
		return
	}
	if err := c.floodOn(chassis, key, frame); err != nil {
		c.log.Debug("ARP request", "chassis", chassis, "next_hop", nh, "err", err)
	}
}

// floodOn sends a frame from a chassis as if a local port of network key
// had sent it to table 40 (the L2 lookup floods a broadcast).
func (c *Controller) floodOn(chassis string, key uint64, frame []byte) error {
	ctx, cancel := context.WithTimeout(context.Background(), packetOutTimeout)
	defer cancel()
	return c.PacketOut(ctx, chassis, openflow.PacketOut{
		Actions: []openflow.Action{openflow.SetUint(openflow.FieldMetadata, key), openflow.Resubmit{Table: pipeline.TableL2Lookup}},
		Data:    frame,
	})
}

func ipv4(u uint32) netip.Addr {
	if u == 0 {
		return netip.Addr{}
	}
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], u)
	return netip.AddrFrom4(b)
}

// ipv4Source returns the source MAC and IPv4 address of an untagged
// Ethernet frame carrying IPv4.
func ipv4Source(frame []byte) (net.HardwareAddr, netip.Addr, bool) {
	if len(frame) < 34 || binary.BigEndian.Uint16(frame[12:]) != 0x0800 {
		return nil, netip.Addr{}, false
	}
	return net.HardwareAddr(slices.Clone(frame[6:12])), netip.AddrFrom4([4]byte(frame[26:30])), true
}

// announce sends gratuitous ARP for the external addresses this chassis
// newly serves in state v, once the switch acknowledged revision rev.
func (w *worker) announce(v *fsm.View, facts pipeline.Facts, rev uint64) {
	anns := pipeline.Announcements(v, facts)
	now := make(map[string]bool, len(anns))
	var fresh []pipeline.Announcement
	for _, a := range anns {
		k := fmt.Sprintf("%x|%s|%s", a.NetworkKey, a.MAC, a.IP)
		now[k] = true
		if !w.announced[k] {
			fresh = append(fresh, a)
		}
	}
	w.announced = now
	if len(fresh) == 0 {
		return
	}
	go func() {
		if err := w.syncer.WaitRealized(w.ctx, rev); err != nil {
			return
		}
		start := time.Now()
		for _, at := range garpSchedule {
			select {
			case <-w.ctx.Done():
				return
			case <-time.After(time.Until(start.Add(at))):
			}
			for _, a := range fresh {
				frame, err := packet.NewGratuitousARP(a.MAC, a.IP, 0)
				if err != nil {
					continue
				}
				if err := w.c.floodOn(w.name, a.NetworkKey, frame); err != nil {
					w.log.Debug("gratuitous ARP", "ip", a.IP, "err", err)
				}
			}
		}
		w.log.Info("announced external addresses", "count", len(fresh), "after", time.Since(start).Round(time.Millisecond))
	}()
}
