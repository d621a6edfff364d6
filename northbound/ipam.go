package northbound

import (
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"

	"neutrino/fsm"
)

// ipAllocator decides port addresses and MAC addresses on the leader before
// a command is proposed, so the command carries them and replicas never
// diverge. As with segment ids, what requests in flight have chosen is held
// as pending until their command was applied (or failed), so concurrent
// requests never pick the same address; the state machine re-checks
// uniqueness at apply time all the same.
//
// Every check reads the current state under the allocator's lock: a lease
// is released only after its command is applied, so an address is always
// either pending or visible in the state, never neither.
type ipAllocator struct {
	mu      sync.Mutex
	state   func() *fsm.View
	pending map[string]*lease
	// next is, per subnet, where the last search ended: allocation walks
	// the pools from there instead of rescanning the used addresses.
	next    map[string]netip.Addr
	macBase []byte
}

// defaultMACBase is OpenStack's base_mac prefix.
const defaultMACBase = "fa:16:3e"

// maxScan bounds the addresses one allocation looks at; IPv6 pools are
// too large to scan to the end.
const maxScan = 1 << 20

func newIPAllocator(state func() *fsm.View, macBase string) (*ipAllocator, error) {
	base, err := parseMACBase(macBase)
	if err != nil {
		return nil, err
	}
	return &ipAllocator{state: state, pending: map[string]*lease{}, next: map[string]netip.Addr{}, macBase: base}, nil
}

// parseMACBase reads a MAC prefix of 1 to 5 bytes ("fa:16:3e").
func parseMACBase(s string) ([]byte, error) {
	if s == "" {
		s = defaultMACBase
	}
	var out []byte
	for _, part := range strings.Split(s, ":") {
		var b byte
		if _, err := fmt.Sscanf(part, "%02x", &b); err != nil || len(part) != 2 {
			return nil, fmt.Errorf("MAC base %q: %q is not a hex byte", s, part)
		}
		out = append(out, b)
	}
	if len(out) < 1 || len(out) > 5 {
		return nil, fmt.Errorf("MAC base %q: want 1 to 5 bytes", s)
	}
	if out[0]&1 != 0 {
		return nil, fmt.Errorf("MAC base %q is a multicast prefix", s)
	}
	return out, nil
}

// lease is what one request holds: addresses and MACs it chose, each for
// the object that claimed it, so two ports of one bulk create asking for
// the same address conflict here, before anything is proposed.
type lease struct {
	a      *ipAllocator
	keys   []string
	owners map[string]string // key -> the object it was taken for
}

// allocated is the owner of what allocateIP/allocateMAC picked: no later
// claim in the request may take it again.
const allocated = "\x00allocated"

func (a *ipAllocator) begin() *lease { return &lease{a: a} }

// release gives the lease's keys back; call it once the command was
// applied or failed.
func (l *lease) release() {
	l.a.mu.Lock()
	defer l.a.mu.Unlock()
	for _, k := range l.keys {
		if l.a.pending[k] == l {
			delete(l.a.pending, k)
		}
	}
	l.keys = nil
	l.owners = nil
}

func ipKey(subnetID string, a netip.Addr) string { return "ip\x00" + subnetID + "\x00" + a.String() }
func macKey(networkID, mac string) string        { return "mac\x00" + networkID + "\x00" + mac }

// take reserves a key for owner unless another lease holds it, or this
// one holds it for another owner (a retried build of the same object
// takes its own keys again). Must hold a.mu.
func (l *lease) take(key, owner string) bool {
	if h, ok := l.a.pending[key]; ok {
		return h == l && owner != allocated && l.owners[key] == owner
	}
	l.a.pending[key] = l
	l.keys = append(l.keys, key)
	if l.owners == nil {
		l.owners = map[string]string{}
	}
	l.owners[key] = owner
	return true
}

func ipInUse(a netip.Addr, subnetID string) *apiError {
	return newError(http.StatusConflict, fsm.ErrTypeIPAddressInUse,
		"IP address %s already allocated in subnet %s", a, subnetID)
}

// claimIP reserves an address chosen by the caller; owner (a port id, or
// "") may already hold it.
func (l *lease) claimIP(sub *fsm.Subnet, a netip.Addr, owner string) error {
	l.a.mu.Lock()
	defer l.a.mu.Unlock()
	if p := l.a.state().PortByIP(sub.ID, a.String()); p != nil {
		if p.ID == owner {
			return nil
		}
		return ipInUse(a, sub.ID)
	}
	if !l.take(ipKey(sub.ID, a), owner) {
		return ipInUse(a, sub.ID)
	}
	return nil
}

// allocateIP picks a free address from the subnet's pools, walking on from
// where the previous allocation on the subnet stopped.
func (l *lease) allocateIP(sub *fsm.Subnet) (netip.Addr, error) {
	pools := parsePools(sub.AllocationPools)
	if len(pools) == 0 {
		return netip.Addr{}, ipExhausted(sub.NetworkID)
	}
	l.a.mu.Lock()
	defer l.a.mu.Unlock()
	v := l.a.state()
	gw, _ := netip.ParseAddr(sub.GatewayIP)
	start, pi := pools[0].start, 0
	if c, ok := l.a.next[sub.ID]; ok {
		for i, p := range pools {
			if p.contains(c) {
				start, pi = c, i
				break
			}
		}
	}
	a := start
	for n := 0; n < maxScan; n++ {
		if a != gw && v.PortByIP(sub.ID, a.String()) == nil && l.take(ipKey(sub.ID, a), allocated) {
			next, _ := stepPools(pools, a, pi)
			l.a.next[sub.ID] = next
			return a, nil
		}
		a, pi = stepPools(pools, a, pi)
		if a == start {
			break
		}
	}
	return netip.Addr{}, ipExhausted(sub.NetworkID)
}

func ipExhausted(networkID string) *apiError {
	return newError(http.StatusConflict, fsm.ErrTypeIPAddressGenerationErr,
		"No more IP addresses available on network %s.", networkID)
}

// stepPools returns the address after a, wrapping from a pool's end to the
// next pool's start and from the last pool to the first.
func stepPools(pools []addrRange, a netip.Addr, pi int) (netip.Addr, int) {
	if a != pools[pi].end {
		return a.Next(), pi
	}
	pi = (pi + 1) % len(pools)
	return pools[pi].start, pi
}

// claimMAC reserves a MAC chosen by the caller on a network.
func (l *lease) claimMAC(networkID, mac, owner string) error {
	l.a.mu.Lock()
	defer l.a.mu.Unlock()
	if p := l.a.state().PortByMAC(networkID, mac); p != nil {
		if p.ID == owner {
			return nil
		}
		return macInUse(networkID, mac)
	}
	if !l.take(macKey(networkID, mac), owner) {
		return macInUse(networkID, mac)
	}
	return nil
}

func macInUse(networkID, mac string) *apiError {
	return newError(http.StatusConflict, fsm.ErrTypeMacAddressInUse,
		"Unable to complete operation for network %s. The mac address %s is in use.", networkID, mac)
}

// allocateMAC generates a MAC from the configured base and random bytes,
// unique on the network.
func (l *lease) allocateMAC(networkID string) (string, error) {
	l.a.mu.Lock()
	defer l.a.mu.Unlock()
	v := l.a.state()
	for try := 0; try < 64; try++ {
		mac := make(net.HardwareAddr, 6)
		copy(mac, l.a.macBase)
		for i := len(l.a.macBase); i < 6; i++ {
			mac[i] = byte(rand.UintN(256))
		}
		s := mac.String()
		if v.PortByMAC(networkID, s) == nil && l.take(macKey(networkID, s), allocated) {
			return s, nil
		}
	}
	return "", newError(http.StatusServiceUnavailable, "MacAddressGenerationFailure",
		"Unable to generate unique mac on network %s.", networkID)
}

// addrRange is a parsed allocation pool.
type addrRange struct{ start, end netip.Addr }

func (r addrRange) contains(a netip.Addr) bool {
	return r.start.Compare(a) <= 0 && a.Compare(r.end) <= 0
}

func parsePools(pools []fsm.IPRange) []addrRange {
	out := make([]addrRange, 0, len(pools))
	for _, p := range pools {
		s, err1 := netip.ParseAddr(p.Start)
		e, err2 := netip.ParseAddr(p.End)
		if err1 == nil && err2 == nil && s.Compare(e) <= 0 {
			out = append(out, addrRange{s, e})
		}
	}
	return out
}

// lastAddr is the highest address of a prefix (the v4 broadcast address).
func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

// hostBounds are the first and last addresses a port may use: IPv4 keeps
// the network and broadcast addresses out, IPv6 the subnet-router anycast
// address (Neutron's generate_pools).
func hostBounds(p netip.Prefix) (netip.Addr, netip.Addr, bool) {
	first, last := p.Masked().Addr(), lastAddr(p)
	if first == last {
		return first, last, true
	}
	lo := first.Next()
	hi := last
	if p.Addr().Is4() {
		hi = last.Prev()
	}
	return lo, hi, lo.Compare(hi) < 0
}

// defaultGateway is the first host address, or none for tiny subnets.
func defaultGateway(p netip.Prefix) (netip.Addr, bool) {
	lo, _, ok := hostBounds(p)
	if !ok || lo == p.Masked().Addr() {
		return netip.Addr{}, false
	}
	return lo, true
}

// defaultPools is the whole host range minus the gateway.
func defaultPools(p netip.Prefix, gw netip.Addr) []fsm.IPRange {
	lo, hi, ok := hostBounds(p)
	if !ok {
		return []fsm.IPRange{}
	}
	var out []fsm.IPRange
	add := func(s, e netip.Addr) {
		if s.IsValid() && e.IsValid() && s.Compare(e) <= 0 {
			out = append(out, fsm.IPRange{Start: s.String(), End: e.String()})
		}
	}
	if gw.IsValid() && lo.Compare(gw) <= 0 && gw.Compare(hi) <= 0 {
		if gw != lo {
			add(lo, gw.Prev())
		}
		if gw != hi {
			add(gw.Next(), hi)
		}
	} else {
		add(lo, hi)
	}
	if out == nil {
		out = []fsm.IPRange{}
	}
	return out
}

// validatePools checks explicit allocation pools as Neutron does and
// returns them canonical and sorted.
func validatePools(p netip.Prefix, pools []fsm.IPRange, gw netip.Addr) ([]fsm.IPRange, error) {
	lo, hi, _ := hostBounds(p)
	var rs []addrRange
	for _, pool := range pools {
		s, err1 := netip.ParseAddr(pool.Start)
		e, err2 := netip.ParseAddr(pool.End)
		if err1 != nil || err2 != nil || s.Is4() != p.Addr().Is4() || e.Is4() != p.Addr().Is4() || s.Zone() != "" || e.Zone() != "" {
			return nil, newError(http.StatusBadRequest, "InvalidAllocationPool",
				"The allocation pool %s-%s is not valid.", pool.Start, pool.End)
		}
		if s.Compare(e) > 0 {
			return nil, newError(http.StatusBadRequest, "InvalidAllocationPool",
				"The allocation pool %s-%s is not valid.", pool.Start, pool.End)
		}
		if s.Compare(lo) < 0 || e.Compare(hi) > 0 {
			return nil, newError(http.StatusBadRequest, "OutOfBoundsAllocationPool",
				"The allocation pool %s-%s spans beyond the subnet cidr %s.", s, e, p)
		}
		rs = append(rs, addrRange{s, e})
	}
	sortRanges(rs)
	for i := 1; i < len(rs); i++ {
		if rs[i].start.Compare(rs[i-1].end) <= 0 {
			return nil, newError(http.StatusConflict, "OverlappingAllocationPools",
				"Found overlapping allocation pools: %s-%s and %s-%s for subnet %s.", rs[i-1].start, rs[i-1].end, rs[i].start, rs[i].end, p)
		}
	}
	out := make([]fsm.IPRange, 0, len(rs))
	for _, r := range rs {
		if gw.IsValid() && r.contains(gw) {
			return nil, newError(http.StatusConflict, "GatewayConflictWithAllocationPools",
				"Gateway ip %s conflicts with allocation pool %s-%s.", gw, r.start, r.end)
		}
		out = append(out, fsm.IPRange{Start: r.start.String(), End: r.end.String()})
	}
	return out, nil
}

func sortRanges(rs []addrRange) {
	for i := 1; i < len(rs); i++ {
		for j := i; j > 0 && rs[j].start.Compare(rs[j-1].start) < 0; j-- {
			rs[j], rs[j-1] = rs[j-1], rs[j]
		}
	}
}

// eui64 is the SLAAC address of a MAC in a /64.
func eui64(p netip.Prefix, mac string) (netip.Addr, error) {
	hw, err := net.ParseMAC(mac)
	if err != nil || len(hw) != 6 || p.Bits() != 64 || !p.Addr().Is6() {
		return netip.Addr{}, fmt.Errorf("no EUI-64 address for %s in %s", mac, p)
	}
	b := p.Masked().Addr().As16()
	b[8], b[9], b[10], b[11] = hw[0]^0x02, hw[1], hw[2], 0xff
	b[12], b[13], b[14], b[15] = 0xfe, hw[3], hw[4], hw[5]
	return netip.AddrFrom16(b), nil
}

// isAutoAddressSubnet: addresses on SLAAC subnets derive from the MAC.
func isAutoAddressSubnet(s *fsm.Subnet) bool {
	return s.IPVersion == 6 && (s.IPv6AddressMode == "slaac" || s.IPv6AddressMode == "dhcpv6-stateless")
}

// parseMAC validates and normalises a unicast MAC address.
func parseMAC(s string) (string, error) {
	hw, err := net.ParseMAC(s)
	if err != nil || len(hw) != 6 || hw[0]&1 != 0 || hw.String() == "00:00:00:00:00:00" {
		return "", badRequest("Invalid input for mac_address. Reason: '%s' is not a valid MAC address.", s)
	}
	return hw.String(), nil
}
