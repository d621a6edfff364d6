package lab

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"neutrino/southbound/hostnet"
)

// Debian's busybox-static has no udhcpc6, so the lab's DHCPv6 client is
// this small one, run in the VM's namespace as `neutrino lab
// dhcp6-client eth0`: a Solicit with rapid commit for one IA_NA, the
// address from the Reply applied as a /128 (the on-link prefix comes from
// the router advertisement), again at half the lease.

// RunDHCPv6Client runs the lab's DHCPv6 client on iface until ctx ends,
// logging each lease to log.
func RunDHCPv6Client(ctx context.Context, iface string, log io.Writer) error {
	ifi, err := net.InterfaceByName(iface)
	if err != nil {
		return err
	}
	if len(ifi.HardwareAddr) != 6 {
		return fmt.Errorf("dhcp6: %s has no Ethernet address", iface)
	}
	// The link-local address is tentative (duplicate address detection)
	// for about a second after the link comes up: bind once it is not.
	var conn *net.UDPConn
	ll := linkLocalOf(ifi.HardwareAddr)
	for conn == nil {
		conn, err = net.ListenUDP("udp6", &net.UDPAddr{IP: ll.AsSlice(), Port: 546, Zone: iface})
		if err != nil {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(200 * time.Millisecond):
			}
		}
	}
	defer conn.Close()
	duid := append([]byte{0, 3, 0, 1}, ifi.HardwareAddr...)
	server := &net.UDPAddr{IP: net.ParseIP("ff02::1:2"), Port: 547, Zone: iface}
	buf := make([]byte, 1500)
	for xid := uint32(1); ctx.Err() == nil; xid++ {
		msg := []byte{1, byte(xid >> 16), byte(xid >> 8), byte(xid)} // Solicit
		msg = opt6(msg, 1, duid)
		msg = opt6(msg, 14, nil) // rapid commit
		// IA_NA: IAID (the interface index), T1 and T2 left to the server.
		msg = opt6(msg, 3, append(binary.BigEndian.AppendUint32(nil, uint32(ifi.Index)), make([]byte, 8)...))
		msg = opt6(msg, 6, []byte{0, 23}) // option request: DNS
		if _, err := conn.WriteToUDP(msg, server); err != nil {
			fmt.Fprintf(log, "solicit: %v\n", err)
		}
		_ = conn.SetReadDeadline(time.Now().Add(time.Second))
		n, _, err := conn.ReadFromUDP(buf)
		if err != nil {
			continue
		}
		addr, valid, err := parseReply6(buf[:n], xid)
		if err != nil {
			fmt.Fprintf(log, "reply: %v\n", err)
			continue
		}
		lft := fmt.Sprint(valid)
		if out, err := exec.CommandContext(ctx, "ip", "-6", "addr", "replace", addr.String()+"/128", "dev", iface,
			"valid_lft", lft, "preferred_lft", lft).CombinedOutput(); err != nil {
			fmt.Fprintf(log, "ip addr: %v: %s\n", err, out)
			continue
		}
		fmt.Fprintf(log, "bound %s lease %d\n", addr, valid)
		select {
		case <-ctx.Done():
		case <-time.After(time.Duration(max(valid/2, 1)) * time.Second):
		}
	}
	return nil
}

func opt6(b []byte, code uint16, v []byte) []byte {
	b = binary.BigEndian.AppendUint16(b, code)
	b = binary.BigEndian.AppendUint16(b, uint16(len(v)))
	return append(b, v...)
}

// parseReply6 reads the address and valid lifetime of a Reply's IA_NA.
func parseReply6(b []byte, xid uint32) (netip.Addr, uint32, error) {
	if len(b) < 4 || b[0] != 7 || uint32(b[1])<<16|uint32(b[2])<<8|uint32(b[3]) != xid {
		return netip.Addr{}, 0, errors.New("not the reply to our solicit")
	}
	for o := b[4:]; len(o) >= 4; {
		code, l := binary.BigEndian.Uint16(o), int(binary.BigEndian.Uint16(o[2:]))
		if 4+l > len(o) {
			break
		}
		if v := o[4 : 4+l]; code == 3 && l >= 12 {
			for in := v[12:]; len(in) >= 4; {
				c, il := binary.BigEndian.Uint16(in), int(binary.BigEndian.Uint16(in[2:]))
				if 4+il > len(in) {
					break
				}
				if c == 5 && il >= 24 {
					return netip.AddrFrom16([16]byte(in[4:20])), binary.BigEndian.Uint32(in[24:]), nil
				}
				in = in[4+il:]
			}
		}
		o = o[4+l:]
	}
	return netip.Addr{}, 0, errors.New("reply without an address")
}

func linkLocalOf(mac net.HardwareAddr) netip.Addr {
	return netip.AddrFrom16([16]byte{0xfe, 0x80, 8: mac[0] ^ 2, mac[1], mac[2], 0xff, 0xfe, mac[3], mac[4], mac[5]})
}

// startDHCP6Client starts `BINARY lab dhcp6-client eth0` in the VM's
// namespace (its own session; the lab records its PID).
func startDHCP6Client(labDir, binary string, vm *VM) (Process, error) {
	dir := vmDir(labDir, vm.Name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return Process{}, err
	}
	logf, err := os.OpenFile(filepath.Join(dir, "dhcp6.log"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return Process{}, err
	}
	defer logf.Close()
	cmd := exec.Command("ip", "netns", "exec", vm.Namespace, binary, "lab", "dhcp6-client", "eth0")
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return Process{}, fmt.Errorf("start dhcp6 client: %w", err)
	}
	go func() { _ = cmd.Wait() }()
	return processOf(cmd.Process.Pid, "dhcp6-client "+vm.Name), nil
}

// waitAddress6 waits until eth0 in the VM has a global IPv6 /128 (the
// DHCPv6 address).
func waitAddress6(ctx context.Context, vm *VM) error {
	return poll(ctx, DHCPTimeout, func() (bool, string, error) {
		out, err := hostnet.Exec(ctx, vm.Namespace, "ip", "-6", "-o", "addr", "show", "dev", "eth0", "scope", "global")
		if err != nil {
			return false, err.Error(), nil
		}
		return strings.Contains(out, "/128 "), "no DHCPv6 address yet", nil
	})
}

// startDHCP6 starts the VM's DHCPv6 client, records it, and waits for the
// address.
func (s *store) startDHCP6(ctx context.Context, binary string, vm *VM) error {
	if binary == "" {
		var err error
		if binary, err = os.Executable(); err != nil {
			return err
		}
	}
	p, err := startDHCP6Client(filepath.Dir(s.path), binary, vm)
	if err != nil {
		return err
	}
	vm.DHCP6Client = &p
	if err := s.update(func(st *State) {
		if v := st.VM(vm.Name); v != nil {
			v.DHCP6Client = &p
		}
		st.Processes = append(st.Processes, p)
	}); err != nil {
		return err
	}
	if err := waitAddress6(ctx, vm); err != nil {
		return fmt.Errorf("no DHCPv6 address (see %s): %w", filepath.Join(vmDir(filepath.Dir(s.path), vm.Name), "dhcp6.log"), err)
	}
	return nil
}
