package pipeline

import (
	"neutrino/fsm"
	"neutrino/southbound/openflow"
)

// QoS (Neutron's qos extension) on a chassis' local ports. The userspace
// datapath has no tc, so an Interface's ingress_policing_rate (what
// ML2/OVS sets) does nothing here: bandwidth limits are OpenFlow meters
// with one drop band, one per port and direction, numbered from the
// port's ofport (QoSMeterID). The egress limit (traffic from the VM)
// meters the port's classify flow in table 0; the ingress limit (traffic
// to the VM) meters its output flow in table 65. A DSCP-marking rule sets
// ip_dscp on IPv4 and IPv6 from the port in table 0 (prioQoSMark), before
// port security, which does not look at DSCP.

// prioQoSMark: table 0, IP from a port with a DSCP-marking rule.
const prioQoSMark = prioMatch + 1

// QoSMeterID is the meter of a local port's limit in one direction.
func QoSMeterID(ofport uint32, ingress bool) uint32 {
	id := ofport << 1
	if ingress {
		id |= 1
	}
	return id
}

// qosBand is the meter band of a bandwidth-limit rule: the burst is
// max_burst_kbps, or 80 % of the rate when that is 0 (what ML2/OVS
// defaults to). A rate of 0 is no limit.
func qosBand(r *fsm.QoSRule) (openflow.MeterBand, bool) {
	if r == nil || r.MaxKbps <= 0 {
		return openflow.MeterBand{}, false
	}
	burst := r.MaxBurstKbps
	if burst <= 0 {
		burst = max(r.MaxKbps*8/10, 1)
	}
	return openflow.MeterBand{RateKbps: uint32(r.MaxKbps), BurstKbit: uint32(burst)}, true
}

// qosActions adds the egress meter to a port's classify actions and
// returns the actions its output flow starts with and its DSCP rule.
func qosActions(pol *fsm.QoSPolicy, ofport uint32, classify []openflow.Action) (outClassify, output []openflow.Action, dscp *fsm.QoSRule) {
	if _, ok := qosBand(pol.BandwidthLimit(fsm.QoSEgress)); ok {
		classify = append([]openflow.Action{openflow.Meter{ID: QoSMeterID(ofport, false)}}, classify...)
	}
	if _, ok := qosBand(pol.BandwidthLimit(fsm.QoSIngress)); ok {
		output = []openflow.Action{openflow.Meter{ID: QoSMeterID(ofport, true)}}
	}
	return classify, output, pol.DSCPMarking()
}

// Meters is the meter table a chassis needs: one meter per bandwidth
// limit of each port bound there. It covers every binding, a superset of
// the ports whose flows name a meter, so no flow names a missing one.
func Meters(v *fsm.View, f Facts) map[uint32]openflow.MeterBand {
	out := map[uint32]openflow.MeterBand{}
	if len(v.QoSPolicies()) == 0 {
		return out // the common case: one lookup, not one per port
	}
	// Bands per policy, computed once: most ports share a few policies.
	type bands struct {
		egress, ingress openflow.MeterBand
		hasE, hasI      bool
	}
	byPolicy := map[*fsm.QoSPolicy]bands{}
	for id, ofport := range f.Bindings {
		p := v.Port(id)
		if p == nil {
			continue
		}
		pol := v.EffectiveQoSPolicy(p)
		if pol == nil {
			continue
		}
		bs, ok := byPolicy[pol]
		if !ok {
			bs.egress, bs.hasE = qosBand(pol.BandwidthLimit(fsm.QoSEgress))
			bs.ingress, bs.hasI = qosBand(pol.BandwidthLimit(fsm.QoSIngress))
			byPolicy[pol] = bs
		}
		if bs.hasE {
			out[QoSMeterID(ofport, false)] = bs.egress
		}
		if bs.hasI {
			out[QoSMeterID(ofport, true)] = bs.ingress
		}
	}
	return out
}
