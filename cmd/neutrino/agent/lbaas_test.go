package agent

import (
	"testing"

	"neutrino/fsm"
)

// TestLBReportDiffers: the load balancer agent reports only what would
// change the state (a report identical to the state is never sent).
func TestLBReportDiffers(t *testing.T) {
	active := &fsm.LoadBalancer{Meta: fsm.Meta{ID: "lb"}, ProvisioningStatus: fsm.LBActive, OperatingStatus: fsm.LBOnline}
	failed := &fsm.LoadBalancer{Meta: fsm.Meta{ID: "lb"}, ProvisioningStatus: fsm.LBError, StatusReason: "bad", OperatingStatus: fsm.LBOnline}
	states := map[string]string{"lb": fsm.LBOnline, "m1": fsm.LBOnline, "m2": fsm.LBOpError}
	same := map[string]string{"lb": fsm.LBOnline, "m1": fsm.LBOnline, "m2": fsm.LBOpError}
	for _, c := range []struct {
		name    string
		lb      *fsm.LoadBalancer
		pending bool
		err     string
		op      map[string]string
		want    bool
	}{
		{"identical", active, false, "", same, false},
		{"no health read", active, false, "", nil, false},
		{"pending", active, true, "", same, true},
		{"member changed", active, false, "", map[string]string{"m2": fsm.LBOnline}, true},
		{"unknown object", active, false, "", map[string]string{"gone": fsm.LBOnline}, false},
		{"new error", active, false, "bad", same, true},
		{"error recorded", failed, false, "bad", same, false},
		{"other error", failed, false, "worse", same, true},
	} {
		if got := reportDiffers(c.lb, c.pending, states, c.err, c.op); got != c.want {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
}
