package main

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"time"
	"unsafe"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"neutrino/southbound/packet"
)

// newLabVLANPingCmd is `neutrino lab vlan-ping`: 802.1Q-tagged ARP and ICMP
// echo from inside a lab VM, for trunk tests. The lab machines have no
// 8021q module, so a VM cannot have a VLAN interface: this sends and reads
// tagged frames on a packet socket instead. The kernel takes the tag off a
// received frame before a packet socket sees it; it comes back as
// PACKET_AUXDATA. Hidden: a test tool, not an operator's.
func newLabVLANPingCmd(a *app) *cobra.Command {
	var (
		iface, mac, src string
		vlan            int
		timeout         time.Duration
		answer          bool
	)
	cmd := &cobra.Command{
		Use:    "vlan-ping --vlan N --mac MAC --ip ADDR [TARGET]",
		Short:  "ping TARGET from ADDR on VLAN N (or, with --answer, answer pings and ARP for ADDR on VLAN N until --timeout)",
		Hidden: true,
		Args:   cobra.MaximumNArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			hw, err := net.ParseMAC(mac)
			if err != nil {
				return fmt.Errorf("--mac: %w", err)
			}
			ip, err := netip.ParseAddr(src)
			if err != nil || !ip.Is4() {
				return fmt.Errorf("--ip %q: not an IPv4 address", src)
			}
			if vlan < 1 || vlan > 4094 {
				return fmt.Errorf("--vlan %d: not in 1-4094", vlan)
			}
			s, err := openTagged(iface)
			if err != nil {
				return err
			}
			defer unix.Close(s.fd)
			p := vlanPinger{s: s, mac: hw, ip: ip, vlan: uint16(vlan), deadline: time.Now().Add(timeout)}
			if answer {
				return p.answer(a.stdout)
			}
			if len(args) != 1 {
				return errors.New("a TARGET address is needed without --answer")
			}
			target, err := netip.ParseAddr(args[0])
			if err != nil || !target.Is4() {
				return fmt.Errorf("target %q: not an IPv4 address", args[0])
			}
			dst, err := p.arp(target)
			if err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "arp %s is-at %s vlan %d\n", target, dst, vlan)
			ttl, err := p.echo(dst, target)
			if err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "reply from %s vlan %d ttl %d\n", target, vlan, ttl)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&iface, "iface", "eth0", "interface")
	f.StringVar(&mac, "mac", "", "source MAC (the subport's)")
	f.StringVar(&src, "ip", "", "source IPv4 address (the subport's)")
	f.IntVar(&vlan, "vlan", 0, "802.1Q VLAN id")
	f.DurationVar(&timeout, "timeout", 2*time.Second, "how long to wait for the replies (or to answer)")
	f.BoolVar(&answer, "answer", false, "answer ARP and pings instead of sending")
	return cmd
}

// taggedSocket is a packet socket bound to one interface.
type taggedSocket struct {
	fd      int
	ifindex int
}

func openTagged(name string) (*taggedSocket, error) {
	ifi, err := net.InterfaceByName(name)
	if err != nil {
		return nil, err
	}
	proto := int(htons(unix.ETH_P_ALL))
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW, proto)
	if err != nil {
		return nil, fmt.Errorf("packet socket: %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: uint16(proto), Ifindex: ifi.Index}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("bind %s: %w", name, err)
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_AUXDATA, 1); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("PACKET_AUXDATA: %w", err)
	}
	return &taggedSocket{fd: fd, ifindex: ifi.Index}, nil
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// recv reads one incoming frame with its VLAN tag put back in place (from
// the auxiliary data), or nil when the wait ends.
func (s *taggedSocket) recv(until time.Time) ([]byte, error) {
	buf := make([]byte, 9000)
	oob := make([]byte, 256)
	for {
		wait := time.Until(until)
		if wait <= 0 {
			return nil, nil
		}
		tv := unix.NsecToTimeval(wait.Nanoseconds())
		if err := unix.SetsockoptTimeval(s.fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
			return nil, err
		}
		n, oobn, _, from, err := unix.Recvmsg(s.fd, buf, oob, 0)
		if errors.Is(err, unix.EINTR) {
			// A signal (the Go runtime's own, for one) interrupted the
			// wait; a socket with a receive timeout is never restarted
			// (signal(7)). Taken for the end of the wait, it ended the
			// answerer silently, seconds before its deadline.
			continue
		}
		if errors.Is(err, unix.EAGAIN) {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		if ll, ok := from.(*unix.SockaddrLinklayer); ok && ll.Pkttype == unix.PACKET_OUTGOING {
			continue // our own frames
		}
		frame := buf[:n]
		msgs, _ := unix.ParseSocketControlMessage(oob[:oobn])
		for _, m := range msgs {
			if m.Header.Level != unix.SOL_PACKET || m.Header.Type != unix.PACKET_AUXDATA || len(m.Data) < int(unsafe.Sizeof(unix.TpacketAuxdata{})) {
				continue
			}
			aux := (*unix.TpacketAuxdata)(unsafe.Pointer(&m.Data[0]))
			if aux.Status&unix.TP_STATUS_VLAN_VALID != 0 && len(frame) >= 12 {
				tag := make([]byte, 0, n+4)
				tag = append(tag, frame[:12]...)
				tpid := aux.Vlan_tpid
				if tpid == 0 {
					tpid = packet.EtherTypeVLAN
				}
				tag = binary.BigEndian.AppendUint16(tag, tpid)
				tag = binary.BigEndian.AppendUint16(tag, aux.Vlan_tci)
				frame = append(tag, frame[12:]...)
			}
		}
		return frame, nil
	}
}

func (s *taggedSocket) send(frame []byte) error {
	return unix.Sendto(s.fd, frame, 0, &unix.SockaddrLinklayer{Ifindex: s.ifindex, Halen: 6})
}

// vlanPinger speaks as (mac, ip) on one VLAN.
type vlanPinger struct {
	s        *taggedSocket
	mac      net.HardwareAddr
	ip       netip.Addr
	vlan     uint16
	deadline time.Time
}

// step is when to send again: 200 ms from now, or the deadline.
func (p *vlanPinger) step() time.Time {
	if t := time.Now().Add(200 * time.Millisecond); t.Before(p.deadline) {
		return t
	}
	return p.deadline
}

// arp resolves target on the VLAN, asking again every 200 ms.
func (p *vlanPinger) arp(target netip.Addr) (net.HardwareAddr, error) {
	req, err := packet.NewARPRequest(p.mac, p.ip, target, p.vlan)
	if err != nil {
		return nil, err
	}
	for time.Now().Before(p.deadline) {
		if err := p.s.send(req); err != nil {
			return nil, err
		}
		next := p.step()
		for {
			f, err := p.s.recv(next)
			if err != nil {
				return nil, err
			}
			if f == nil {
				break
			}
			a, err := packet.ParseARP(f)
			if err == nil && a.Op == packet.ARPReply && a.SPA == target {
				if a.VLAN != p.vlan {
					return nil, fmt.Errorf("ARP reply for %s on VLAN %d, not %d", target, a.VLAN, p.vlan)
				}
				return a.SHA, nil
			}
		}
	}
	return nil, fmt.Errorf("no ARP reply for %s on VLAN %d", target, p.vlan)
}

// echo pings target (at dst) on the VLAN until a tagged reply comes back
// and returns its TTL.
func (p *vlanPinger) echo(dst net.HardwareAddr, target netip.Addr) (int, error) {
	for seq := uint16(1); time.Now().Before(p.deadline); seq++ {
		if err := p.s.send(icmpEcho(dst, p.mac, p.vlan, p.ip, target, 8, 0x4e54, seq, 64)); err != nil {
			return 0, err
		}
		next := p.step()
		for {
			f, err := p.s.recv(next)
			if err != nil {
				return 0, err
			}
			if f == nil {
				break
			}
			e, ok := parseEcho(f)
			if ok && e.typ == 0 && e.src == target && e.dst == p.ip && e.id == 0x4e54 {
				if e.vlan != p.vlan {
					return 0, fmt.Errorf("echo reply from %s on VLAN %d, not %d", target, e.vlan, p.vlan)
				}
				return e.ttl, nil
			}
		}
	}
	return 0, fmt.Errorf("no echo reply from %s on VLAN %d", target, p.vlan)
}

// answer replies to ARP requests for the address and to pings of it on
// the VLAN until the deadline, with a line on out for every ARP request
// and every ping answered (the test stops it with a signal).
func (p *vlanPinger) answer(out io.Writer) error {
	fmt.Fprintf(out, "answering for %s on vlan %d\n", p.ip, p.vlan)
	for {
		f, err := p.s.recv(p.deadline)
		if err != nil {
			return err
		}
		if f == nil {
			fmt.Fprintf(out, "deadline reached\n")
			return nil
		}
		if a, err := packet.ParseARP(f); err == nil {
			if a.VLAN == p.vlan && a.Op == packet.ARPRequest && a.TPA == p.ip {
				reply, err := packet.NewARPReply(p.mac, p.ip, a.SHA, a.SPA, p.vlan)
				if err != nil {
					return err
				}
				if err := p.s.send(reply); err != nil {
					return err
				}
				fmt.Fprintf(out, "arp request from %s answered vlan %d\n", a.SPA, p.vlan)
			}
			continue
		}
		e, ok := parseEcho(f)
		if !ok || e.vlan != p.vlan || e.typ != 8 || e.dst != p.ip {
			continue
		}
		if err := p.s.send(icmpEcho(e.ethSrc, p.mac, p.vlan, p.ip, e.src, 0, e.id, e.seq, 64)); err != nil {
			return err
		}
		fmt.Fprintf(out, "answered %s seq %d vlan %d\n", e.src, e.seq, p.vlan)
	}
}

// icmpEcho builds a tagged ICMP echo request (typ 8) or reply (0).
func icmpEcho(dst, src net.HardwareAddr, vlan uint16, from, to netip.Addr, typ uint8, id, seq uint16, ttl uint8) []byte {
	b := make([]byte, 0, 18+20+16)
	b = append(b, dst...)
	b = append(b, src...)
	b = binary.BigEndian.AppendUint16(b, packet.EtherTypeVLAN)
	b = binary.BigEndian.AppendUint16(b, vlan)
	b = binary.BigEndian.AppendUint16(b, packet.EtherTypeIPv4)
	ip := len(b)
	f, t := from.As4(), to.As4()
	b = append(b, 0x45, 0, 0, 36, 0, 0, 0x40, 0, ttl, 1, 0, 0)
	b = append(b, f[:]...)
	b = append(b, t[:]...)
	binary.BigEndian.PutUint16(b[ip+10:], checksum(b[ip:ip+20]))
	icmp := len(b)
	b = append(b, typ, 0, 0, 0)
	b = binary.BigEndian.AppendUint16(b, id)
	b = binary.BigEndian.AppendUint16(b, seq)
	b = append(b, "neutrino"...)
	binary.BigEndian.PutUint16(b[icmp+2:], checksum(b[icmp:]))
	return b
}

func checksum(b []byte) uint16 {
	var sum uint32
	for i := 0; i+1 < len(b); i += 2 {
		sum += uint32(binary.BigEndian.Uint16(b[i:]))
	}
	if len(b)%2 == 1 {
		sum += uint32(b[len(b)-1]) << 8
	}
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}

type echoFrame struct {
	ethSrc   net.HardwareAddr
	vlan     uint16
	src, dst netip.Addr
	typ      uint8
	id, seq  uint16
	ttl      int
}

// parseEcho reads an ICMP echo request or reply (tagged or not).
func parseEcho(f []byte) (echoFrame, bool) {
	var e echoFrame
	if len(f) < 14 {
		return e, false
	}
	e.ethSrc = net.HardwareAddr(f[6:12])
	et, n := binary.BigEndian.Uint16(f[12:]), 14
	if et == packet.EtherTypeVLAN && len(f) >= 18 {
		e.vlan = binary.BigEndian.Uint16(f[14:]) & 0x0fff
		et, n = binary.BigEndian.Uint16(f[16:]), 18
	}
	if et != packet.EtherTypeIPv4 || len(f) < n+28 || f[n]>>4 != 4 || f[n+9] != 1 {
		return e, false
	}
	hl := int(f[n]&0x0f) * 4
	if len(f) < n+hl+8 {
		return e, false
	}
	e.ttl = int(f[n+8])
	e.src = netip.AddrFrom4([4]byte(f[n+12 : n+16]))
	e.dst = netip.AddrFrom4([4]byte(f[n+16 : n+20]))
	icmp := f[n+hl:]
	e.typ = icmp[0]
	e.id, e.seq = binary.BigEndian.Uint16(icmp[4:]), binary.BigEndian.Uint16(icmp[6:])
	return e, e.typ == 0 || e.typ == 8
}
