package fsm

import (
	"strconv"
	"strings"
)

// DHCPOpt is one of a port's extra_dhcp_opts (Neutron's extra_dhcp_opt
// extension): an option name (a dnsmasq name or a number) and its value,
// for DHCPv4 (IPVersion 4) or DHCPv6 (6).
type DHCPOpt struct {
	Name      string
	Value     string
	IPVersion int
}

// dhcpv4Names are the dnsmasq option names extra_dhcp_opts may use.
var dhcpv4Names = map[string]uint8{
	"netmask": 1, "router": 3, "dns-server": 6, "log-server": 7, "hostname": 12,
	"domain-name": 15, "root-path": 17, "mtu": 26, "broadcast": 28,
	"static-route": 33, "ntp-server": 42, "netbios-ns": 44, "lease-time": 51,
	"server-identifier": 54, "T1": 58, "T2": 59, "vendor-class": 60,
	"tftp-server": 66, "bootfile-name": 67, "user-class": 77,
	"domain-search": 119, "classless-static-route": 121, "tftp-server-address": 150,
}

// DHCPv4OptionCode is the option code an extra_dhcp_opts name stands for:
// a number 1-254 ("119", or dnsmasq's "option:119") or a known name.
func DHCPv4OptionCode(name string) (uint8, bool) {
	n := strings.TrimPrefix(name, "option:")
	if c, ok := dhcpv4Names[n]; ok {
		return c, true
	}
	if v, err := strconv.Atoi(n); err == nil && v >= 1 && v <= 254 {
		return uint8(v), true
	}
	return 0, false
}
