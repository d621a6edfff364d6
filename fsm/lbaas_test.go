package fsm

import "testing"

// fillLBTables puts one object in every LBaaS table for the snapshot
// round-trip tests, straight into the store at index.
func fillLBTables(t *testing.T, f *FSM, index uint64) uint64 {
	t.Helper()
	txn := f.State().db.Txn(true)
	m := func(id string) Meta {
		return Meta{ID: id, ProjectID: "p-lb", Name: id, Tags: []string{"t"}, CreateIndex: index, ModifyIndex: index}
	}
	insert(txn, TableLBLoadBalancers, &LoadBalancer{Meta: m("snap-lb"), VipNetworkID: "n00", VipAddress: "10.0.0.9",
		Provider: LBProvider, ProvisioningStatus: LBActive, OperatingStatus: LBOnline, GatewayChassis: []string{"gw-snap"},
		ActiveChassis: "gw-snap", ConfigRevision: index}, index)
	insert(txn, TableLBListeners, &Listener{Meta: m("snap-l"), LoadBalancerID: "snap-lb", Protocol: LBProtocolHTTP,
		ProtocolPort: 80, ConnectionLimit: -1, InsertHeaders: map[string]string{"X-Forwarded-For": "true"}}, index)
	insert(txn, TableLBPools, &Pool{Meta: m("snap-p"), LoadBalancerID: "snap-lb", ListenerIDs: []string{"snap-l"},
		SessionPersistence: &SessionPersistence{Type: LBPersistAppCookie, CookieName: "c"}}, index)
	insert(txn, TableLBMembers, &Member{Meta: m("snap-m"), PoolID: "snap-p", LoadBalancerID: "snap-lb", Address: "10.0.0.5"}, index)
	insert(txn, TableLBHealthMonitors, &HealthMonitor{Meta: m("snap-h"), PoolID: "snap-p", LoadBalancerID: "snap-lb", Type: LBMonitorHTTP}, index)
	insert(txn, TableLBL7Policies, &L7Policy{Meta: m("snap-7p"), ListenerID: "snap-l", LoadBalancerID: "snap-lb", Action: LBReject, Position: 1}, index)
	insert(txn, TableLBL7Rules, &L7Rule{Meta: m("snap-7r"), L7PolicyID: "snap-7p", ListenerID: "snap-l", LoadBalancerID: "snap-lb",
		Type: LBRulePath, CompareType: LBCompareStarts, Value: "/api"}, index)
	setIndex(txn, indexRevision, index)
	txn.Commit()
	return index
}
