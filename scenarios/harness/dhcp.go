package harness

import (
	"fmt"
	"strings"
	"time"

	"neutrino/scenarios/lab"
)

// DHCPTimeout bounds the wait for a VM's DHCP client to get its address
// (the port's flows and binding must reach the chassis first).
const DHCPTimeout = 90 * time.Second

// DHCPClient is busybox udhcpc running in a VM (Env.DHCP).
type DHCPClient struct {
	e    *Env
	VM   string
	Dir  string // in the VM's file system: udhcpc.sh, udhcpc.pid, leases, resolv.conf
	Proc *Proc
}

// DHCP runs busybox udhcpc on a VM's eth0, as a cloud image's DHCP client
// would, after taking away the IPv4 address and routes Driver.AddVM wrote:
// whatever eth0 has afterwards came from the DHCP server. It returns once
// eth0 has an address; the test's cleanup stops the client and removes
// its files.
func (e *Env) DHCP(vmName string) *DHCPClient {
	e.TB.Helper()
	dir := strings.TrimSpace(e.MustExec(vmName, "mktemp", "-d", "/tmp/nv-dhcp-XXXXXX"))
	if !strings.HasPrefix(dir, "/tmp/nv-dhcp-") {
		e.TB.Fatalf("mktemp in %s: %q", vmName, dir)
	}
	e.TB.Cleanup(func() { _, _ = e.Exec(vmName, "rm", "-rf", dir) })
	e.MustExec(vmName, "sh", "-c", `printf '%s' "$1" > "$2/udhcpc.sh" && chmod 755 "$2/udhcpc.sh"`, "sh", lab.UDHCPCScript, dir)
	e.MustExec(vmName, "sh", "-c", "ip -4 route flush dev eth0 && ip -4 addr flush dev eth0")
	c := &DHCPClient{e: e, VM: vmName, Dir: dir}
	c.Proc = e.Start(vmName, "env", "DIR="+dir, "busybox", "udhcpc", "-f", "-i", "eth0", "-s", dir+"/udhcpc.sh",
		"-p", dir+"/udhcpc.pid", "-t", "3", "-T", "1", "-A", "1", "-x", "hostname:"+vmName)
	Poll(e.TB, DHCPTimeout, vmName+" gets an address by DHCP", func() error {
		if c.Proc.Exited() {
			return fmt.Errorf("udhcpc exited: %s", c.Proc.Stderr())
		}
		out, err := e.Exec(vmName, "ip", "-4", "-o", "addr", "show", "dev", "eth0")
		if err != nil {
			return err
		}
		if !strings.Contains(out, " inet ") {
			return fmt.Errorf("no address yet; udhcpc: %s", LastLine(c.Proc.Stderr()))
		}
		return nil
	})
	return c
}

// Renew makes the client renew its lease now (SIGUSR1 to udhcpc), as it
// does at half of the lease time.
func (c *DHCPClient) Renew() {
	c.e.TB.Helper()
	c.e.MustExec(c.VM, "sh", "-c", "kill -USR1 $(cat "+c.Dir+"/udhcpc.pid)")
}

// Leases counts the leases the client applied (bound or renewed).
func (c *DHCPClient) Leases() int {
	c.e.TB.Helper()
	out, _ := c.e.Exec(c.VM, "cat", c.Dir+"/leases")
	return strings.Count(out, "bound ") + strings.Count(out, "renew ")
}

// ResolvConf is the resolv.conf the client wrote.
func (c *DHCPClient) ResolvConf() string {
	c.e.TB.Helper()
	return c.e.MustExec(c.VM, "cat", c.Dir+"/resolv.conf")
}

// DHCPv6 runs `neutrino lab dhcp6-client` on a VM's eth0 (Debian's
// busybox has no udhcpc6) and returns once eth0 has a global /128 (the
// DHCPv6 address); the test's cleanup stops it.
func (e *Env) DHCPv6(vmName string) *Proc {
	e.TB.Helper()
	p := e.Start(vmName, e.Lab.Binary, "lab", "dhcp6-client", "eth0")
	Poll(e.TB, DHCPTimeout, vmName+" gets an IPv6 address by DHCPv6", func() error {
		if p.Exited() {
			return fmt.Errorf("dhcp6-client exited: %s", p.Stderr())
		}
		out, err := e.Exec(vmName, "ip", "-6", "-o", "addr", "show", "dev", "eth0", "scope", "global")
		if err != nil {
			return err
		}
		if !strings.Contains(out, "/128 ") {
			return fmt.Errorf("no DHCPv6 address yet: %q", strings.TrimSpace(out))
		}
		return nil
	})
	return p
}
