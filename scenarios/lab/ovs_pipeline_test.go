package lab_test

import (
	"fmt"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"neutrino/southbound/flowsync"
	"neutrino/southbound/pipeline"
)

// OVS helpers of the data-path tests: flows by cookie and ofproto/trace,
// run inside a chassis' namespace against that chassis' own OVS (the lab
// sets OVS_RUNDIR for commands on a chassis; ovs-vswitchd's unixctl socket
// is <OVS_RUNDIR>/ovs-vswitchd.ctl).

// ofFlow is one flow of `ovs-ofctl dump-flows`.
type ofFlow struct {
	Cookie uint64
	Text   string
}

var cookieRE = regexp.MustCompile(`cookie=0x([0-9a-f]+)`)

// flows dumps br-int of a chassis.
func (p *pipeLab) flows(chassis string) ([]ofFlow, error) {
	out, err := p.exec(chassis, "ovs-ofctl", "-O", "OpenFlow13", "dump-flows", "br-int")
	if err != nil {
		return nil, err
	}
	var fs []ofFlow
	for _, line := range strings.Split(out, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "OFPST_FLOW") {
			continue
		}
		f := ofFlow{Text: line}
		if m := cookieRE.FindStringSubmatch(line); m != nil {
			c, err := strconv.ParseUint(m[1], 16, 64)
			if err != nil {
				return nil, fmt.Errorf("%s: cookie in %q: %w", chassis, line, err)
			}
			f.Cookie = c
		}
		fs = append(fs, f)
	}
	return fs, nil
}

// portCookie is the owner part of the cookie of a port's flows
// (docs/pipeline.md: kind 2, FNV-1a-32 of the port id).
func portCookie(portID string) uint64 { return flowsync.Cookie(pipeline.KindPort, portID) }

// owned returns the Neutrino flows whose owner bits (kind and object hash,
// any leader round) are owner.
func owned(fs []ofFlow, owner uint64) []ofFlow {
	var out []ofFlow
	for _, f := range fs {
		if flowsync.IsOurs(f.Cookie) && f.Cookie&flowsync.CookieOwnerMask == owner {
			out = append(out, f)
		}
	}
	return out
}

// ours returns the Neutrino flows (magic cookie) of a dump.
func ours(fs []ofFlow) []ofFlow {
	var out []ofFlow
	for _, f := range fs {
		if flowsync.IsOurs(f.Cookie) {
			out = append(out, f)
		}
	}
	return out
}

// mentioning returns the flows whose text contains s as a field value
// (e.g. an IP address: "10.7.0.1" does not match "10.7.0.11").
func mentioning(fs []ofFlow, s string) []ofFlow {
	re := regexp.MustCompile(`(^|[=,:>( ])` + regexp.QuoteMeta(s) + `($|[,/ )\]-])`)
	var out []ofFlow
	for _, f := range fs {
		if re.MatchString(f.Text) {
			out = append(out, f)
		}
	}
	return out
}

func flowTexts(fs []ofFlow) string {
	var b strings.Builder
	for _, f := range fs {
		b.WriteString("\n  ")
		b.WriteString(f.Text)
	}
	return b.String()
}

// ofport returns the OpenFlow port number of a VM's interface on its chassis.
func (p *pipeLab) ofport(vmName string) (int, error) {
	st := p.d.State()
	v := st.VM(vmName)
	if v == nil {
		return 0, fmt.Errorf("no VM %s", vmName)
	}
	out, err := p.exec(v.Chassis, "ovs-vsctl", "--timeout=10", "get", "Interface", v.OVSPort, "ofport")
	if err != nil {
		return 0, err
	}
	n, err := strconv.Atoi(strings.TrimSpace(out))
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("VM %s: ofport %q", vmName, strings.TrimSpace(out))
	}
	return n, nil
}

// trace runs `ovs-appctl ofproto/trace br-int FLOW` on a chassis and
// returns the final datapath actions (the last "Datapath actions:" line,
// after any conntrack recirculation the trace followed) and the whole
// trace. "drop" means the packet goes nowhere.
func (p *pipeLab) trace(chassis, flow string) (actions, full string, err error) {
	st := p.d.State()
	n := st.Node(chassis)
	if n == nil || n.OVSDir == "" {
		return "", "", fmt.Errorf("no chassis %s with OVS", chassis)
	}
	ctl := filepath.Join(n.OVSDir, "ovs-vswitchd.ctl")
	full, err = p.exec(chassis, "ovs-appctl", "-t", ctl, "ofproto/trace", "br-int", flow)
	if err != nil {
		return "", full, err
	}
	found := false
	for _, line := range strings.Split(full, "\n") {
		if a, ok := strings.CutPrefix(strings.TrimSpace(line), "Datapath actions:"); ok {
			actions, found = strings.TrimSpace(a), true
		}
	}
	if !found {
		return "", full, fmt.Errorf("ofproto/trace on %s: no datapath actions in:\n%s", chassis, full)
	}
	return actions, full, nil
}

// traceVM traces a packet entering br-int from a VM's port; flow is the
// rest of the trace flow (after in_port).
func (p *pipeLab) traceVM(vmName, flow string) (actions, full string) {
	p.tb.Helper()
	st := p.d.State()
	v := st.VM(vmName)
	if v == nil {
		p.tb.Fatalf("trace: no VM %s", vmName)
	}
	ofp, err := p.ofport(vmName)
	if err != nil {
		p.tb.Fatalf("trace: %v", err)
	}
	actions, full, err = p.trace(v.Chassis, fmt.Sprintf("in_port=%d,%s", ofp, flow))
	if err != nil {
		p.tb.Fatalf("trace: %v", err)
	}
	return actions, full
}

// dropped reports whether final datapath actions drop the packet.
func dropped(actions string) bool {
	return actions == "drop" || actions == ""
}

// traceOnFailure logs, when the test has failed by the time it ends (and
// before the lab goes down), ofproto/trace of a packet entering br-int
// from a VM: which flow dropped it or where it went.
func (p *pipeLab) traceOnFailure(vmName, what, flow string) {
	tb := p.tb
	tb.Cleanup(func() {
		if !tb.Failed() {
			return
		}
		st := p.d.State()
		v := st.VM(vmName)
		if v == nil {
			return
		}
		ofp, err := p.ofport(vmName)
		if err != nil {
			tb.Logf("trace of %s: %v", what, err)
			return
		}
		actions, full, err := p.trace(v.Chassis, fmt.Sprintf("in_port=%d,%s", ofp, flow))
		tb.Logf("ofproto/trace of %s from %s on %s: %v final actions %q\n%s", what, vmName, v.Chassis, err, actions, full)
	})
}
