package fsm

import "testing"

// TestLBVIPPortBind: the VIP port is plugged on the standby chassis too;
// a binding report from it neither moves nor clears the FSM's binding,
// and one from the active chassis only sets the ofport.
func TestLBVIPPortBind(t *testing.T) {
	e := newLBEnv(t, gatewayChassis("gw-a"), gatewayChassis("gw-b"))
	e.must(CmdLBCreate, e.lbCreate("lb1", "10.0.0.100", false))
	bind := func(b PortBinding) *Port {
		t.Helper()
		e.must(CmdPortBind, PortBindRequest{Bindings: []PortBinding{b}, At: "t3"})
		return e.f.State().Read().Port("vip-lb1")
	}
	if p := bind(PortBinding{PortID: "vip-lb1", Chassis: "gw-b", OFPort: 9}); p.BindingHostID != "gw-a" || p.BindingOFPort != 0 {
		t.Fatalf("standby's claim: bound to %q ofport %d, want gw-a 0", p.BindingHostID, p.BindingOFPort)
	}
	if p := bind(PortBinding{PortID: "vip-lb1", Chassis: "gw-a", OFPort: 7}); p.BindingHostID != "gw-a" || p.BindingOFPort != 7 {
		t.Fatalf("active's report: bound to %q ofport %d, want gw-a 7", p.BindingHostID, p.BindingOFPort)
	}
	if p := bind(PortBinding{PortID: "vip-lb1", FromChassis: "gw-a"}); p.BindingHostID != "gw-a" || p.BindingOFPort != 0 {
		t.Fatalf("active's unplug: bound to %q ofport %d, want gw-a 0 (still bound)", p.BindingHostID, p.BindingOFPort)
	}
}
