package northbound

import (
	"encoding/json"
	"net/http"
	"slices"

	"neutrino/fsm"
)

// extra_dhcp_opts (Neutron's extra_dhcp_opt extension): options the
// chassis' DHCP responder adds to a port's answers.

// maxExtraDHCPOpts bounds a port's options (a DHCP message has room for
// about that many).
const maxExtraDHCPOpts = 50

func renderDHCPOpts(opts []fsm.DHCPOpt) []map[string]any {
	out := make([]map[string]any, 0, len(opts))
	for _, o := range opts {
		out = append(out, map[string]any{"opt_name": o.Name, "opt_value": o.Value, "ip_version": o.IPVersion})
	}
	return out
}

// setExtraDHCPOpts applies extra_dhcp_opts of a create or update as
// Neutron does: an option with opt_value null is removed, any other is
// added or replaces the one of the same name and IP version.
func setExtraDHCPOpts(p *fsm.Port, raw map[string]json.RawMessage) error {
	r, ok := raw["extra_dhcp_opts"]
	if !ok || isNull(r) {
		return nil
	}
	var opts []struct {
		Name      *string `json:"opt_name"`
		Value     *string `json:"opt_value"`
		IPVersion *int    `json:"ip_version"`
	}
	if err := decodeList("extra_dhcp_opts", r, &opts); err != nil {
		return err
	}
	out := slices.Clone(p.ExtraDHCPOpts)
	seen := map[fsm.DHCPOpt]bool{}
	for _, o := range opts {
		if o.Name == nil || *o.Name == "" {
			return badRequest("Invalid input for extra_dhcp_opts. Reason: opt_name is missing or empty.")
		}
		v := 4
		if o.IPVersion != nil {
			v = *o.IPVersion
		}
		if v != 4 && v != 6 {
			return badRequest("Invalid input for extra_dhcp_opts. Reason: ip_version %d is not 4 or 6.", v)
		}
		if v == 4 {
			if _, ok := fsm.DHCPv4OptionCode(*o.Name); !ok {
				return badRequest("Invalid input for extra_dhcp_opts. Reason: '%s' is not a DHCP option number (1-254) or a known option name.", *o.Name)
			}
		}
		key := fsm.DHCPOpt{Name: *o.Name, IPVersion: v}
		if seen[key] {
			return newError(http.StatusBadRequest, "InvalidInput",
				"Invalid input for extra_dhcp_opts. Reason: duplicate option %s (ip_version %d).", *o.Name, v)
		}
		seen[key] = true
		out = slices.DeleteFunc(out, func(x fsm.DHCPOpt) bool { return x.Name == key.Name && x.IPVersion == v })
		if o.Value == nil {
			continue
		}
		if len(*o.Value) > 255 {
			return badRequest("Invalid input for extra_dhcp_opts. Reason: the value of %s is longer than 255 bytes.", *o.Name)
		}
		key.Value = *o.Value
		out = append(out, key)
	}
	if len(out) > maxExtraDHCPOpts {
		return badRequest("Invalid input for extra_dhcp_opts. Reason: more than %d options.", maxExtraDHCPOpts)
	}
	p.ExtraDHCPOpts = out
	return nil
}
