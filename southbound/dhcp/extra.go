package dhcp

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"neutrino/fsm"
)

// Option value types of the DHCPv4 codes extra_dhcp_opts can carry;
// anything else is sent as the text of opt_value.
var (
	addrOptions = map[uint8]bool{1: true, 3: true, 6: true, 7: true, 28: true, 42: true, 44: true, 54: true, 150: true}
	u16Options  = map[uint8]bool{26: true}
	u32Options  = map[uint8]bool{51: true, 58: true, 59: true}
)

// extraOptions encodes a port's IPv4 extra_dhcp_opts; an option whose
// value does not fit its code's type is left out (and reported).
func extraOptions(opts []fsm.DHCPOpt) ([]Option, []error) {
	var out []Option
	var errs []error
	for _, o := range opts {
		if o.IPVersion != 4 {
			continue
		}
		code, ok := fsm.DHCPv4OptionCode(o.Name)
		if !ok {
			errs = append(errs, fmt.Errorf("extra_dhcp_opts: unknown option %q", o.Name))
			continue
		}
		v, err := encodeOption(code, o.Value)
		if err != nil {
			errs = append(errs, fmt.Errorf("extra_dhcp_opts: %s: %w", o.Name, err))
			continue
		}
		out = append(out, Option{Code: code, Value: v})
	}
	return out, errs
}

func encodeOption(code uint8, value string) ([]byte, error) {
	switch {
	case addrOptions[code]:
		var b []byte
		for _, s := range strings.Split(value, ",") {
			a, err := netip.ParseAddr(strings.TrimSpace(s))
			if err != nil || !a.Is4() {
				return nil, fmt.Errorf("%q is not a list of IPv4 addresses", value)
			}
			b = append(b, a.AsSlice()...)
		}
		return b, nil
	case u16Options[code]:
		n, err := strconv.ParseUint(value, 10, 16)
		if err != nil {
			return nil, err
		}
		return binary.BigEndian.AppendUint16(nil, uint16(n)), nil
	case u32Options[code]:
		n, err := strconv.ParseUint(value, 10, 32)
		if err != nil {
			return nil, err
		}
		return binary.BigEndian.AppendUint32(nil, uint32(n)), nil
	}
	return []byte(value), nil
}
