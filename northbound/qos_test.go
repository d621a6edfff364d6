package northbound_test

import (
	"context"
	"net/http"
	"testing"

	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/qos/policies"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/qos/rules"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/qos/ruletypes"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/networks"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/ports"
)

type qosPort struct {
	ports.Port
	policies.QoSPolicyExt
}

type qosNetwork struct {
	networks.Network
	policies.QoSPolicyExt
}

// TestGophercloudQoS drives the qos extension through gophercloud against
// a 3-server cluster: policies and both rule kinds (CRUD, Neutron's
// validation and conflicts), rule types, attaching a shared policy to a
// member's network and port, member policy limits, and QosPolicyInUse.
func TestGophercloudQoS(t *testing.T) {
	servers := newAPICluster(t, 3, nil)
	ctx := context.Background()
	admin := gopher(servers[0], "", "")
	pa := gopher(servers[1], "pa", "member")

	pol, err := policies.Create(ctx, admin, policies.CreateOpts{Name: "gold", Shared: true}).Extract()
	if err != nil {
		t.Fatal(err)
	}
	private, err := policies.Create(ctx, admin, policies.CreateOpts{Name: "private", ProjectID: "pz"}).Extract()
	if err != nil {
		t.Fatal(err)
	}
	_, err = policies.Create(ctx, pa, policies.CreateOpts{Name: "mine"}).Extract()
	mustStatus(t, "member creates a policy", err, http.StatusForbidden)

	bw, err := rules.CreateBandwidthLimitRule(ctx, admin, pol.ID, rules.CreateBandwidthLimitRuleOpts{MaxKBps: 20000, MaxBurstKBps: 2000}).ExtractBandwidthLimitRule()
	if err != nil {
		t.Fatal(err)
	}
	if bw.Direction != "egress" || bw.MaxKBps != 20000 || bw.MaxBurstKBps != 2000 {
		t.Fatalf("bandwidth limit rule %+v", bw)
	}
	_, err = rules.CreateBandwidthLimitRule(ctx, admin, pol.ID, rules.CreateBandwidthLimitRuleOpts{MaxKBps: 1}).ExtractBandwidthLimitRule()
	mustStatus(t, "second egress limit", err, http.StatusConflict)
	in, err := rules.CreateBandwidthLimitRule(ctx, admin, pol.ID, rules.CreateBandwidthLimitRuleOpts{MaxKBps: 5000, Direction: "ingress"}).ExtractBandwidthLimitRule()
	if err != nil {
		t.Fatal(err)
	}
	_, err = rules.CreateBandwidthLimitRule(ctx, admin, pol.ID, rules.CreateBandwidthLimitRuleOpts{MaxKBps: 1, Direction: "sideways"}).ExtractBandwidthLimitRule()
	mustStatus(t, "bad direction", err, http.StatusBadRequest)
	_, err = rules.CreateDSCPMarkingRule(ctx, admin, pol.ID, rules.CreateDSCPMarkingRuleOpts{DSCPMark: 27}).ExtractDSCPMarkingRule()
	mustStatus(t, "DSCP mark 27", err, http.StatusBadRequest)
	dscp, err := rules.CreateDSCPMarkingRule(ctx, admin, pol.ID, rules.CreateDSCPMarkingRuleOpts{DSCPMark: 26}).ExtractDSCPMarkingRule()
	if err != nil {
		t.Fatal(err)
	}
	_, err = rules.CreateDSCPMarkingRule(ctx, pa, pol.ID, rules.CreateDSCPMarkingRuleOpts{DSCPMark: 10}).ExtractDSCPMarkingRule()
	mustStatus(t, "member creates a rule", err, http.StatusForbidden)
	mark := 46
	if got, err := rules.UpdateDSCPMarkingRule(ctx, admin, pol.ID, dscp.ID, rules.UpdateDSCPMarkingRuleOpts{DSCPMark: &mark}).ExtractDSCPMarkingRule(); err != nil || got.DSCPMark != 46 {
		t.Fatalf("update DSCP rule: %+v %v", got, err)
	}
	maxK := 30000
	if got, err := rules.UpdateBandwidthLimitRule(ctx, admin, pol.ID, in.ID, rules.UpdateBandwidthLimitRuleOpts{MaxKBps: &maxK}).ExtractBandwidthLimitRule(); err != nil || got.MaxKBps != 30000 || got.Direction != "ingress" {
		t.Fatalf("update bandwidth rule: %+v %v", got, err)
	}

	// The member sees the shared policy with its three rules, not the private one.
	got, err := policies.Get(ctx, pa, pol.ID).Extract()
	if err != nil || len(got.Rules) != 3 || !got.Shared {
		t.Fatalf("member's view of the shared policy: %+v %v", got, err)
	}
	_, err = policies.Get(ctx, pa, private.ID).Extract()
	mustStatus(t, "member reads another project's policy", err, http.StatusNotFound)
	pages, err := rules.ListBandwidthLimitRules(pa, pol.ID, rules.BandwidthLimitRulesListOpts{}).AllPages(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if list, err := rules.ExtractBandwidthLimitRules(pages); err != nil || len(list) != 2 {
		t.Fatalf("bandwidth rules: %+v %v", list, err)
	}
	tpages, err := ruletypes.ListRuleTypes(pa).AllPages(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if types, err := ruletypes.ExtractRuleTypes(tpages); err != nil || len(types) != 2 {
		t.Fatalf("rule types: %+v %v", types, err)
	}
	if rt, err := ruletypes.GetRuleType(ctx, pa, "dscp_marking").Extract(); err != nil || len(rt.Drivers) != 1 {
		t.Fatalf("rule type details: %+v %v", rt, err)
	}

	// Attach: the member's network takes the shared policy; another
	// project's private policy is not found.
	var n qosNetwork
	err = networks.Create(ctx, pa, policies.NetworkCreateOptsExt{CreateOptsBuilder: networks.CreateOpts{Name: "qos-net"}, QoSPolicyID: pol.ID}).ExtractInto(&n)
	if err != nil || n.QoSPolicyID != pol.ID {
		t.Fatalf("network with a policy: %+v %v", n, err)
	}
	_, err = ports.Create(ctx, pa, policies.PortCreateOptsExt{CreateOptsBuilder: ports.CreateOpts{NetworkID: n.ID}, QoSPolicyID: private.ID}).Extract()
	mustStatus(t, "port with another project's policy", err, http.StatusNotFound)
	var p qosPort
	if err := ports.Create(ctx, pa, policies.PortCreateOptsExt{CreateOptsBuilder: ports.CreateOpts{NetworkID: n.ID}, QoSPolicyID: pol.ID}).ExtractInto(&p); err != nil || p.QoSPolicyID != pol.ID {
		t.Fatalf("port with a policy: %+v %v", p, err)
	}
	err = policies.Delete(ctx, admin, pol.ID).ExtractErr()
	mustStatus(t, "delete a policy in use", err, http.StatusConflict)
	// Detach from the port (null) and the network; then the delete works.
	none := ""
	var p2 qosPort
	if err := ports.Update(ctx, pa, p.ID, policies.PortUpdateOptsExt{UpdateOptsBuilder: ports.UpdateOpts{}, QoSPolicyID: &none}).ExtractInto(&p2); err != nil || p2.ID != p.ID || p2.QoSPolicyID != "" {
		t.Fatalf("detach from the port: %+v %v", p2, err)
	}
	err = policies.Delete(ctx, admin, pol.ID).ExtractErr()
	mustStatus(t, "delete a policy its network still names", err, http.StatusConflict)
	var n2 qosNetwork
	if err := networks.Update(ctx, pa, n.ID, policies.NetworkUpdateOptsExt{UpdateOptsBuilder: networks.UpdateOpts{}, QoSPolicyID: &none}).ExtractInto(&n2); err != nil || n2.ID != n.ID || n2.QoSPolicyID != "" {
		t.Fatalf("detach from the network: %+v %v", n2, err)
	}
	if err := rules.DeleteBandwidthLimitRule(ctx, admin, pol.ID, bw.ID).ExtractErr(); err != nil {
		t.Fatal(err)
	}
	err = rules.DeleteBandwidthLimitRule(ctx, admin, pol.ID, bw.ID).ExtractErr()
	mustStatus(t, "delete a deleted rule", err, http.StatusNotFound)
	if err := policies.Delete(ctx, admin, pol.ID).ExtractErr(); err != nil {
		t.Fatal(err)
	}
	_, err = policies.Get(ctx, admin, pol.ID).Extract()
	mustStatus(t, "get a deleted policy", err, http.StatusNotFound)
}
