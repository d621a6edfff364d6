package lab

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"neutrino/southbound/hostnet"
)

// DHCPTimeout bounds how long AddVM waits for a VM's DHCP client to get
// its address (the port's flows and binding must reach the chassis first).
const DHCPTimeout = 90 * time.Second

// UDHCPCScript applies what busybox udhcpc got to $interface as a cloud
// image's DHCP client would: address, MTU, routes (option 121 if given,
// else the router), DNS into $DIR/resolv.conf (nothing under /etc is
// touched: a VM shares its node's file system), and one line per lease
// applied in $DIR/leases. A NAK or a new address flushes the old one. The
// lab and the scenario harness (on any driver) run it.
const UDHCPCScript = `#!/bin/sh
action="$1"
case "$action" in
deconfig)
	ip -4 addr flush dev "$interface"
	ip link set dev "$interface" up
	;;
bound|renew)
	[ -n "$mtu" ] && ip link set dev "$interface" mtu "$mtu"
	if ! ip -4 addr show dev "$interface" | grep -q "inet $ip/"; then
		ip -4 addr flush dev "$interface"
	fi
	ip addr replace "$ip/$subnet" ${broadcast:+broadcast $broadcast} dev "$interface"
	if [ -n "$staticroutes" ]; then
		set -- $staticroutes
		while [ $# -ge 2 ]; do
			ip route replace "$1" via "$2" dev "$interface"
			shift 2
		done
	elif [ -n "$router" ]; then
		for r in $router; do
			ip route replace default via "$r" dev "$interface"
			break
		done
	fi
	{
		[ -n "$domain" ] && echo "search $domain"
		for d in $dns; do echo "nameserver $d"; done
	} > "$DIR/resolv.conf.new" && mv "$DIR/resolv.conf.new" "$DIR/resolv.conf"
	echo "$action $ip/$mask router=$router mtu=$mtu lease=$lease" >> "$DIR/leases"
	;;
esac
exit 0
`

// vmDir is where a VM's DHCP client keeps its script, log and resolv.conf.
func vmDir(labDir, name string) string { return filepath.Join(labDir, "vms", name) }

// ResolvConf is the path of the resolv.conf a VM's DHCP client writes.
func ResolvConf(labDir, name string) string { return filepath.Join(vmDir(labDir, name), "resolv.conf") }

// startDHCPClient starts busybox udhcpc in the VM's namespace, in the
// foreground of its own session (the lab records its PID), retrying
// discovery forever.
func startDHCPClient(labDir string, vm *VM) (Process, error) {
	dir := vmDir(labDir, vm.Name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return Process{}, err
	}
	script := filepath.Join(dir, "udhcpc.sh")
	if err := os.WriteFile(script, []byte(UDHCPCScript), 0o755); err != nil {
		return Process{}, err
	}
	logf, err := os.OpenFile(filepath.Join(dir, "udhcpc.log"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return Process{}, err
	}
	defer logf.Close()
	cmd := exec.Command("ip", "netns", "exec", vm.Namespace, "busybox", "udhcpc", "-f", "-i", "eth0",
		"-s", script, "-t", "3", "-T", "1", "-A", "1", "-x", "hostname:"+vm.Name)
	cmd.Env = append(os.Environ(), "DIR="+dir)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return Process{}, fmt.Errorf("start udhcpc: %w", err)
	}
	go func() { _ = cmd.Wait() }()
	return processOf(cmd.Process.Pid, "udhcpc "+vm.Name), nil
}

// waitAddress waits until eth0 in the VM has an IPv4 address.
func waitAddress(ctx context.Context, vm *VM) error {
	return poll(ctx, DHCPTimeout, func() (bool, string, error) {
		out, err := hostnet.Exec(ctx, vm.Namespace, "ip", "-4", "-o", "addr", "show", "dev", "eth0")
		if err != nil {
			return false, err.Error(), nil
		}
		return strings.Contains(out, " inet "), "no DHCP address yet", nil
	})
}

// ipv6Autoconf makes the VM's kernel solicit routers until one answers
// (every 2 s at most), so SLAAC does not wait for a periodic
// advertisement when the port's flows came after its first solicitations.
// It is set on the namespace's defaults before eth0 moves in.
func ipv6Autoconf(ctx context.Context, ns string) error {
	_, err := hostnet.Exec(ctx, ns, "sysctl", "-qw",
		"net.ipv6.conf.default.accept_ra=1", "net.ipv6.conf.default.autoconf=1",
		"net.ipv6.conf.default.router_solicitations=-1",
		"net.ipv6.conf.default.router_solicitation_max_interval=2")
	return err
}

// startDHCP starts the VM's DHCP client, records it, and waits for the
// address.
func (s *store) startDHCP(ctx context.Context, vm *VM) error {
	p, err := startDHCPClient(filepath.Dir(s.path), vm)
	if err != nil {
		return err
	}
	vm.DHCPClient = &p
	if err := s.update(func(st *State) {
		if v := st.VM(vm.Name); v != nil {
			v.DHCPClient = &p
		}
		st.Processes = append(st.Processes, p)
	}); err != nil {
		return err
	}
	if err := waitAddress(ctx, vm); err != nil {
		return fmt.Errorf("no DHCP address (see %s): %w", filepath.Join(vmDir(filepath.Dir(s.path), vm.Name), "udhcpc.log"), err)
	}
	return nil
}
