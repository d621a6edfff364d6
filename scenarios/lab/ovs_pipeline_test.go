package lab_test

import (
	"fmt"

	"neutrino/scenarios/harness"
)

// OVS helpers of the data-path tests (package harness: flows by cookie and
// ofproto/trace with the plain OVS tools on a chassis).

// ofFlow is one flow of `ovs-ofctl dump-flows`.
type ofFlow = harness.Flow

// flows dumps br-int of a chassis.
func (p *pipeLab) flows(chassis string) ([]ofFlow, error) { return p.env.Flows(chassis) }

// owned returns the Neutrino flows whose owner bits are owner.
func owned(fs []ofFlow, owner uint64) []ofFlow { return harness.Owned(fs, owner) }

// ours returns the Neutrino flows (magic cookie) of a dump.
func ours(fs []ofFlow) []ofFlow { return harness.Ours(fs) }

// mentioning returns the flows whose text contains s as a field value.
func mentioning(fs []ofFlow, s string) []ofFlow { return harness.Mentioning(fs, s) }

func flowTexts(fs []ofFlow) string { return harness.FlowTexts(fs) }

// ofport returns the OpenFlow port number of a VM's interface on its chassis.
func (p *pipeLab) ofport(vmName string) (int, error) {
	v, ok := p.env.VM(vmName)
	if !ok {
		return 0, fmt.Errorf("no VM %s", vmName)
	}
	return p.env.Ofport(v.Chassis, v.PortID)
}

// trace runs ofproto/trace on a chassis (harness.Env.Trace).
func (p *pipeLab) trace(chassis, flow string) (actions, full string, err error) {
	return p.env.Trace(chassis, flow)
}

// traceVM traces a packet entering br-int from a VM's port.
func (p *pipeLab) traceVM(vmName, flow string) (actions, full string) {
	p.tb.Helper()
	return p.e().TraceVM(vmName, flow)
}

// dropped reports whether final datapath actions drop the packet.
func dropped(actions string) bool { return harness.Dropped(actions) }

// traceOnFailure logs ofproto/trace of a packet from a VM if the test fails.
func (p *pipeLab) traceOnFailure(vmName, what, flow string) { p.e().TraceOnFailure(vmName, what, flow) }
