package harness

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strconv"
	"strings"
	"time"

	"neutrino/cluster/watch"
	"neutrino/fsm"
	"neutrino/southbound/flowsync"
	"neutrino/southbound/pipeline"
)

// OVS checks on a chassis, through Driver.Exec with the plain OVS tools
// (they reach the chassis' own Open vSwitch on every driver).

// Flow is one flow of `ovs-ofctl dump-flows`.
type Flow struct {
	Cookie uint64
	Text   string
}

var cookieRE = regexp.MustCompile(`cookie=0x([0-9a-f]+)`)

// Flows dumps br-int of a chassis.
func (e *Env) Flows(chassis string) ([]Flow, error) {
	out, err := e.Exec(chassis, "ovs-ofctl", "-O", "OpenFlow13", "dump-flows", "br-int")
	if err != nil {
		return nil, err
	}
	var fs []Flow
	for _, line := range strings.Split(out, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "OFPST_FLOW") {
			continue
		}
		f := Flow{Text: line}
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

// PortCookie is the owner part of the cookie of a port's flows
// (docs/pipeline.md: kind 2, the port's datapath key). Take it while the
// port exists: the key is read from the servers.
func (e *Env) PortCookie(portID string) uint64 {
	e.TB.Helper()
	return flowsync.Cookie(pipeline.KindPort, e.DatapathKey(fsm.TablePorts, portID))
}

// DatapathKey returns the key the servers allocated to an object of a
// keyed table (ports, networks, routers, security group rules). The API
// does not show it: it is read through the watch stream, as a chassis
// agent reads the state.
func (e *Env) DatapathKey(table, id string) uint32 {
	e.TB.Helper()
	ep := e.D.Endpoint()
	w, err := watch.New(watch.Config{Servers: func() []string { return []string{ep} }, Tables: []string{table},
		TLS: clientTLS.Clone(), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		e.TB.Fatal(err)
	}
	defer w.Close()
	var key uint32
	Poll(e.TB, Change, fmt.Sprintf("datapath key of %s %s", table, id), func() error {
		switch o := w.Get(table, id).(type) {
		case *fsm.Port:
			key = o.DatapathKey
		case *fsm.Network:
			key = o.DatapathKey
		case *fsm.Router:
			key = o.DatapathKey
		case *fsm.SecurityGroupRule:
			key = o.DatapathKey
		case nil:
			return fmt.Errorf("not in the watch copy (synced %v)", w.Synced())
		default:
			return fmt.Errorf("%T has no datapath key", o)
		}
		if key == 0 {
			return fmt.Errorf("no key")
		}
		return nil
	})
	return key
}

// Owned returns the Neutrino flows whose owner bits (kind and object key,
// any leader round) are owner.
func Owned(fs []Flow, owner uint64) []Flow {
	var out []Flow
	for _, f := range fs {
		if flowsync.IsOurs(f.Cookie) && f.Cookie&flowsync.CookieOwnerMask == owner {
			out = append(out, f)
		}
	}
	return out
}

// Ours returns the Neutrino flows (magic cookie) of a dump.
func Ours(fs []Flow) []Flow {
	var out []Flow
	for _, f := range fs {
		if flowsync.IsOurs(f.Cookie) {
			out = append(out, f)
		}
	}
	return out
}

// Mentioning returns the flows whose text contains s as a field value
// (e.g. an IP address: "10.7.0.1" does not match "10.7.0.11").
func Mentioning(fs []Flow, s string) []Flow {
	re := regexp.MustCompile(`(^|[=,:>( ])` + regexp.QuoteMeta(s) + `($|[,/ )\]-])`)
	var out []Flow
	for _, f := range fs {
		if re.MatchString(f.Text) {
			out = append(out, f)
		}
	}
	return out
}

// FlowTexts lists flows one an indented line, for messages.
func FlowTexts(fs []Flow) string {
	var b strings.Builder
	for _, f := range fs {
		b.WriteString("\n  ")
		b.WriteString(f.Text)
	}
	return b.String()
}

// FlowSet is the flows of a dump without their counters (packets, bytes,
// duration, idle_age) and, unless withCookie, their cookies (a new
// leader's round): what a controller programmed, comparable between two
// dumps.
func FlowSet(fs []Flow, withCookie bool) map[string]bool {
	out := map[string]bool{}
	for _, f := range fs {
		var keep []string
		for _, field := range strings.Split(f.Text, ", ") {
			name, _, _ := strings.Cut(field, "=")
			switch name {
			case "duration", "n_packets", "n_bytes", "idle_age", "hard_age":
				continue
			case "cookie":
				if !withCookie {
					continue
				}
			}
			keep = append(keep, field)
		}
		out[strings.Join(keep, ", ")] = true
	}
	return out
}

// FlowDiff lists what is in a and not in b.
func FlowDiff(a, b map[string]bool) []string {
	var out []string
	for f := range a {
		if !b[f] {
			out = append(out, f)
		}
	}
	return out
}

// Ofport returns the OpenFlow port number of a Neutron port's interface
// (external_ids:iface-id) on a chassis.
func (e *Env) Ofport(chassis, portID string) (int, error) {
	out, err := e.Exec(chassis, "ovs-vsctl", "--timeout=10", "--bare", "--columns=ofport",
		"find", "Interface", "external_ids:iface-id="+portID)
	if err != nil {
		return 0, err
	}
	n, err := strconv.Atoi(strings.TrimSpace(out))
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("port %s on %s: ofport %q", portID, chassis, strings.TrimSpace(out))
	}
	return n, nil
}

// Trace runs `ovs-appctl ofproto/trace br-int FLOW` on a chassis and
// returns the final datapath actions (the last "Datapath actions:" line,
// after any conntrack recirculation the trace followed) and the whole
// trace. "drop" means the packet goes nowhere.
func (e *Env) Trace(chassis, flow string) (actions, full string, err error) {
	full, err = e.Exec(chassis, "ovs-appctl", "ofproto/trace", "br-int", flow)
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

// traceVM traces a packet entering br-int from a VM's port.
func (e *Env) traceVM(vmName, flow string) (actions, full string, err error) {
	v, ok := e.VM(vmName)
	if !ok {
		return "", "", fmt.Errorf("trace: no VM %s", vmName)
	}
	ofp, err := e.Ofport(v.Chassis, v.PortID)
	if err != nil {
		return "", "", fmt.Errorf("trace: %w", err)
	}
	return e.Trace(v.Chassis, fmt.Sprintf("in_port=%d,%s", ofp, flow))
}

// TraceVM traces a packet entering br-int from a VM's port; flow is the
// rest of the trace flow (after in_port).
func (e *Env) TraceVM(vmName, flow string) (actions, full string) {
	e.TB.Helper()
	actions, full, err := e.traceVM(vmName, flow)
	if err != nil {
		e.TB.Fatal(err)
	}
	return actions, full
}

// TraceCase is a packet traced from a VM's port and whether the pipeline
// must drop it.
type TraceCase struct {
	What, Flow string
	Drop       bool
}

// ExpectTraces traces every case from a VM's port and fails the test (not
// at once) for each whose fate is not the one expected.
func (e *Env) ExpectTraces(vmName string, cases []TraceCase) {
	e.TB.Helper()
	for _, tc := range cases {
		actions, full := e.TraceVM(vmName, tc.Flow)
		if Dropped(actions) != tc.Drop {
			e.TB.Errorf("ofproto/trace of %s from %s: datapath actions %q, want drop=%v; trace:\n%s", tc.What, vmName, actions, tc.Drop, full)
		}
	}
}

// Dropped reports whether final datapath actions drop the packet.
func Dropped(actions string) bool {
	return actions == "drop" || actions == ""
}

// TraceOnFailure logs, when the test has failed by the time it ends (and
// before the lab goes down), ofproto/trace of a packet entering br-int
// from a VM: which flow dropped it or where it went.
func (e *Env) TraceOnFailure(vmName, what, flow string) {
	tb := e.TB
	tb.Cleanup(func() {
		if !tb.Failed() {
			return
		}
		actions, full, err := e.traceVM(vmName, flow)
		tb.Logf("ofproto/trace of %s from %s: %v final actions %q\n%s", what, vmName, err, actions, full)
	})
}

// ControllerRole is a chassis' view of one server's OpenFlow controller
// target: the role OVS gave that connection and whether it is up.
type ControllerRole struct {
	Role      string
	Connected bool
}

// ControllerRoles reads the Controller rows of a chassis, keyed by server
// address (targets are tcp:IP:PORT, or ssl:IP:PORT with TLS).
func (e *Env) ControllerRoles(chassis string) (map[string]ControllerRole, error) {
	out, err := e.Exec(chassis, "ovs-vsctl", "--format=json", "--columns=target,role,is_connected", "list", "Controller")
	if err != nil {
		return nil, err
	}
	var tbl struct {
		Data [][]json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal([]byte(out), &tbl); err != nil {
		return nil, fmt.Errorf("%s: Controller rows: %w: %s", chassis, err, out)
	}
	roles := map[string]ControllerRole{}
	for _, row := range tbl.Data {
		if len(row) != 3 {
			continue
		}
		var target string
		var connected bool
		_ = json.Unmarshal(row[0], &target)
		_ = json.Unmarshal(row[2], &connected)
		// role is a string, or ["set",[]] while OVS has not set it.
		var role string
		if json.Unmarshal(row[1], &role) != nil {
			role = ""
		}
		_, hostPort, _ := strings.Cut(target, ":")
		ip, _, _ := strings.Cut(hostPort, ":")
		roles[ip] = ControllerRole{Role: role, Connected: connected}
	}
	return roles, nil
}

// WaitRoles waits until every chassis has the leader's connection as
// master and, if the old leader's connection is up, has it as slave.
func (e *Env) WaitRoles(leader, old string, oldConnected bool, timeout time.Duration) {
	e.TB.Helper()
	lip, oip := e.Node(leader).Address, e.Node(old).Address
	for _, ch := range e.Chassis {
		Poll(e.TB, timeout, fmt.Sprintf("%s: %s master, %s slave", ch, leader, old), func() error {
			roles, err := e.ControllerRoles(ch)
			if err != nil {
				return err
			}
			if r := roles[lip]; !r.Connected || r.Role != "master" {
				return fmt.Errorf("leader %s: %+v (all: %+v)", leader, r, roles)
			}
			r := roles[oip]
			if oldConnected && !r.Connected {
				return fmt.Errorf("old leader %s is not connected: %+v", old, r)
			}
			if r.Connected && r.Role != "slave" {
				return fmt.Errorf("old leader %s: %+v", old, r)
			}
			return nil
		})
	}
}

// WaitRound waits until every Neutrino flow on every chassis carries the
// round of term (its low 16 bits) and there is at least one: the switches
// hold exactly what that term's leader programmed, none of an older one.
func (e *Env) WaitRound(term uint64, timeout time.Duration) {
	e.TB.Helper()
	want := uint16(term)
	for _, ch := range e.Chassis {
		Poll(e.TB, timeout, fmt.Sprintf("%s: every flow of round %d", ch, want), func() error {
			fs, err := e.Flows(ch)
			if err != nil {
				return err
			}
			fs = Ours(fs)
			if len(fs) == 0 {
				return errors.New("no Neutrino flows")
			}
			stale := map[uint16]int{}
			for _, f := range fs {
				if r := flowsync.CookieRound(f.Cookie); r != want {
					stale[r]++
				}
			}
			if len(stale) > 0 {
				return fmt.Errorf("%d flows, of other rounds: %v", len(fs), stale)
			}
			return nil
		})
	}
}
