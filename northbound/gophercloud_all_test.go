package northbound_test

import (
	"context"
	"fmt"
	"net/http"
	"testing"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/external"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/layer3/floatingips"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/layer3/routers"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/security/groups"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/security/rules"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/networks"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/ports"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/subnets"
	"github.com/gophercloud/gophercloud/v2/pagination"
)

// walk pages through a list with the pager's next links and returns
// everything it saw and the number of pages.
func walk[T any](t *testing.T, pager pagination.Pager, extract func(pagination.Page) ([]T, error)) ([]T, int) {
	t.Helper()
	var all []T
	pages := 0
	err := pager.EachPage(context.Background(), func(_ context.Context, p pagination.Page) (bool, error) {
		items, err := extract(p)
		if err != nil {
			return false, err
		}
		pages++
		all = append(all, items...)
		return true, nil
	})
	if err != nil {
		t.Fatalf("paging: %v", err)
	}
	return all, pages
}

// TestGophercloudAllResources drives every resource (networks, subnets,
// ports, security groups and rules, routers, floating IPs) through
// gophercloud's own packages against a 3-server cluster: create, list
// with a filter and with paging, update with If-Match (where gophercloud
// sends it), delete. Consecutive calls go through different servers.
func TestGophercloudAllResources(t *testing.T) {
	servers := newAPICluster(t, 3, nil)
	ctx := context.Background()
	calls := 0
	c := func() *gophercloud.ServiceClient {
		calls++
		return gopher(servers[calls%3], "", "")
	}
	must := func(err error, what string) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	up, yes := true, true

	// Networks: an external one and an internal one.
	extNet, err := networks.Create(ctx, c(), external.CreateOptsExt{CreateOptsBuilder: networks.CreateOpts{Name: "public", AdminStateUp: &up}, External: &yes}).Extract()
	must(err, "create external network")
	net, err := networks.Create(ctx, c(), networks.CreateOpts{Name: "private"}).Extract()
	must(err, "create network")

	// Subnets.
	extSub, err := subnets.Create(ctx, c(), subnets.CreateOpts{NetworkID: extNet.ID, CIDR: "203.0.113.0/24", IPVersion: gophercloud.IPv4, Name: "public-v4"}).Extract()
	must(err, "create external subnet")
	var subIDs []string
	for i := 0; i < 3; i++ {
		sn, err := subnets.Create(ctx, c(), subnets.CreateOpts{NetworkID: net.ID, CIDR: fmt.Sprintf("10.0.%d.0/24", i), IPVersion: gophercloud.IPv4, Name: fmt.Sprint("sub-", i)}).Extract()
		must(err, "create subnet")
		if sn.GatewayIP != fmt.Sprintf("10.0.%d.1", i) || len(sn.AllocationPools) != 1 || sn.RevisionNumber != 1 {
			t.Fatalf("subnet: %+v", sn)
		}
		subIDs = append(subIDs, sn.ID)
	}
	subs, pages := walk(t, subnets.List(c(), subnets.ListOpts{NetworkID: net.ID, Limit: 2, SortKey: "name"}), subnets.ExtractSubnets)
	if len(subs) != 3 || pages < 2 || subs[0].Name != "sub-0" {
		t.Fatalf("subnets: %d in %d pages", len(subs), pages)
	}
	filtered, _ := walk(t, subnets.List(c(), subnets.ListOpts{CIDR: "10.0.1.0/24"}), subnets.ExtractSubnets)
	if len(filtered) != 1 || filtered[0].ID != subIDs[1] {
		t.Fatalf("subnet filter: %+v", filtered)
	}
	name, rev := "sub-0-renamed", 1
	sn, err := subnets.Update(ctx, c(), subIDs[0], subnets.UpdateOpts{Name: &name, RevisionNumber: &rev}).Extract()
	if err != nil || sn.Name != name || sn.RevisionNumber != 2 {
		t.Fatalf("subnet update: %v %+v", err, sn)
	}
	if _, err := subnets.Update(ctx, c(), subIDs[0], subnets.UpdateOpts{Name: &name, RevisionNumber: &rev}).Extract(); !isStatus(err, http.StatusPreconditionFailed) {
		t.Fatalf("subnet stale If-Match: %v", err)
	}

	// Security groups and rules.
	var sgIDs []string
	for i := 0; i < 3; i++ {
		g, err := groups.Create(ctx, c(), groups.CreateOpts{Name: fmt.Sprint("sg-", i), Description: "web"}).Extract()
		must(err, "create security group")
		sgIDs = append(sgIDs, g.ID)
	}
	gs, pages := walk(t, groups.List(c(), groups.ListOpts{Description: "web", Limit: 2}), groups.ExtractGroups)
	if len(gs) != 3 || pages < 2 {
		t.Fatalf("security groups: %d in %d pages", len(gs), pages)
	}
	g, err := groups.Update(ctx, c(), sgIDs[0], groups.UpdateOpts{Name: "sg-0-renamed", RevisionNumber: &rev}).Extract()
	if err != nil || g.Name != "sg-0-renamed" {
		t.Fatalf("security group update: %v %+v", err, g)
	}
	if _, err := groups.Update(ctx, c(), sgIDs[0], groups.UpdateOpts{Name: "x", RevisionNumber: &rev}).Extract(); !isStatus(err, http.StatusPreconditionFailed) {
		t.Fatalf("security group stale If-Match: %v", err)
	}
	var ruleIDs []string
	for _, port := range []int{22, 80, 443} {
		r, err := rules.Create(ctx, c(), rules.CreateOpts{Direction: rules.DirIngress, EtherType: rules.EtherType4, SecGroupID: sgIDs[1],
			Protocol: rules.ProtocolTCP, PortRangeMin: port, PortRangeMax: port, RemoteIPPrefix: "0.0.0.0/0"}).Extract()
		must(err, "create rule")
		ruleIDs = append(ruleIDs, r.ID)
	}
	rs, pages := walk(t, rules.List(c(), rules.ListOpts{SecGroupID: sgIDs[1], Direction: "ingress", Limit: 2}), rules.ExtractRules)
	if len(rs) != 3 || pages < 2 {
		t.Fatalf("rules: %d in %d pages", len(rs), pages)
	}

	// Ports.
	var portIDs []string
	for i := 0; i < 5; i++ {
		p, err := ports.Create(ctx, c(), ports.CreateOpts{NetworkID: net.ID, Name: fmt.Sprint("port-", i), SecurityGroups: &[]string{sgIDs[1]},
			FixedIPs: []ports.IP{{SubnetID: subIDs[i%3]}}}).Extract()
		must(err, "create port")
		if len(p.FixedIPs) != 1 || p.FixedIPs[0].SubnetID != subIDs[i%3] || p.MACAddress == "" {
			t.Fatalf("port: %+v", p)
		}
		portIDs = append(portIDs, p.ID)
	}
	ps, pages := walk(t, ports.List(c(), ports.ListOpts{NetworkID: net.ID, Limit: 2, SortKey: "name", SortDir: "desc"}), ports.ExtractPorts)
	if len(ps) != 5 || pages < 3 || ps[0].Name != "port-4" {
		t.Fatalf("ports: %d in %d pages", len(ps), pages)
	}
	onSub, _ := walk(t, ports.List(c(), ports.ListOpts{FixedIPs: []ports.FixedIPOpts{{SubnetID: subIDs[0]}}}), ports.ExtractPorts)
	if len(onSub) != 2 {
		t.Fatalf("ports on subnet 0: %d", len(onSub))
	}
	pname := "port-0-renamed"
	p, err := ports.Update(ctx, c(), portIDs[0], ports.UpdateOpts{Name: &pname, RevisionNumber: &rev}).Extract()
	if err != nil || p.Name != pname || p.RevisionNumber != 2 {
		t.Fatalf("port update: %v %+v", err, p)
	}
	if _, err := ports.Update(ctx, c(), portIDs[0], ports.UpdateOpts{Name: &pname, RevisionNumber: &rev}).Extract(); !isStatus(err, http.StatusPreconditionFailed) {
		t.Fatalf("port stale If-Match: %v", err)
	}

	// Routers: one with the gateway and two interfaces, two plain ones.
	r, err := routers.Create(ctx, c(), routers.CreateOpts{Name: "router-0", AdminStateUp: &up, GatewayInfo: &routers.GatewayInfo{NetworkID: extNet.ID}}).Extract()
	must(err, "create router")
	if r.GatewayInfo.NetworkID != extNet.ID || len(r.GatewayInfo.ExternalFixedIPs) != 1 || r.GatewayInfo.ExternalFixedIPs[0].SubnetID != extSub.ID || r.Status != "ACTIVE" {
		t.Fatalf("router: %+v", r)
	}
	routerIDs := []string{r.ID}
	for i := 1; i < 3; i++ {
		o, err := routers.Create(ctx, c(), routers.CreateOpts{Name: fmt.Sprint("router-", i)}).Extract()
		must(err, "create router")
		routerIDs = append(routerIDs, o.ID)
	}
	for _, sub := range subIDs[:2] {
		info, err := routers.AddInterface(ctx, c(), r.ID, routers.AddInterfaceOpts{SubnetID: sub}).Extract()
		if err != nil || info.SubnetID != sub || info.ID != r.ID || info.PortID == "" {
			t.Fatalf("add interface: %v %+v", err, info)
		}
	}
	rl, pages := walk(t, routers.List(c(), routers.ListOpts{Limit: 2, SortKey: "name"}), routers.ExtractRouters)
	if len(rl) != 3 || pages < 2 || rl[0].Name != "router-0" {
		t.Fatalf("routers: %d in %d pages", len(rl), pages)
	}
	byName, _ := walk(t, routers.List(c(), routers.ListOpts{Name: "router-2"}), routers.ExtractRouters)
	if len(byName) != 1 || byName[0].ID != routerIDs[2] {
		t.Fatalf("router filter: %+v", byName)
	}
	cur, err := routers.Get(ctx, c(), r.ID).Extract()
	must(err, "get router")
	crev := cur.RevisionNumber
	r, err = routers.Update(ctx, c(), r.ID, routers.UpdateOpts{Routes: &[]routers.Route{{DestinationCIDR: "192.168.0.0/16", NextHop: "10.0.0.254"}}, RevisionNumber: &crev}).Extract()
	if err != nil || len(r.Routes) != 1 || r.RevisionNumber != crev+1 {
		t.Fatalf("router update: %v %+v", err, r)
	}
	if _, err := routers.Update(ctx, c(), r.ID, routers.UpdateOpts{Name: "x", RevisionNumber: &crev}).Extract(); !isStatus(err, http.StatusPreconditionFailed) {
		t.Fatalf("router stale If-Match: %v", err)
	}

	// Floating IPs: associated ones to ports on the routed subnets.
	var fipIDs []string
	for i := 0; i < 3; i++ {
		f, err := floatingips.Create(ctx, c(), floatingips.CreateOpts{FloatingNetworkID: extNet.ID, PortID: portIDs[i], Description: "vm"}).Extract()
		if i == 2 {
			// port-2 is on sub-2, which no router connects to the outside.
			if !isStatus(err, http.StatusNotFound) {
				t.Fatalf("floating IP without a gateway path: %v", err)
			}
			f, err = floatingips.Create(ctx, c(), floatingips.CreateOpts{FloatingNetworkID: extNet.ID, Description: "vm"}).Extract()
		}
		must(err, "create floating IP")
		fipIDs = append(fipIDs, f.ID)
		if (i < 2 && (f.Status != "ACTIVE" || f.RouterID != r.ID || f.PortID != portIDs[i])) || (i == 2 && f.Status != "DOWN") {
			t.Fatalf("floating IP %d: %+v", i, f)
		}
	}
	fl, pages := walk(t, floatingips.List(c(), floatingips.ListOpts{FloatingNetworkID: extNet.ID, Limit: 2}), floatingips.ExtractFloatingIPs)
	if len(fl) != 3 || pages < 2 {
		t.Fatalf("floating IPs: %d in %d pages", len(fl), pages)
	}
	active, _ := walk(t, floatingips.List(c(), floatingips.ListOpts{RouterID: r.ID, Status: "ACTIVE"}), floatingips.ExtractFloatingIPs)
	if len(active) != 2 {
		t.Fatalf("active floating IPs: %+v", active)
	}
	f, err := floatingips.Get(ctx, c(), fipIDs[0]).Extract()
	must(err, "get floating IP")
	frev := f.RevisionNumber
	none := ""
	f, err = floatingips.Update(ctx, c(), fipIDs[0], floatingips.UpdateOpts{PortID: &none, RevisionNumber: &frev}).Extract()
	if err != nil || f.PortID != "" || f.Status != "DOWN" || f.RouterID != "" {
		t.Fatalf("disassociate: %v %+v", err, f)
	}
	if _, err := floatingips.Update(ctx, c(), fipIDs[0], floatingips.UpdateOpts{PortID: &portIDs[0], RevisionNumber: &frev}).Extract(); !isStatus(err, http.StatusPreconditionFailed) {
		t.Fatalf("floating IP stale If-Match: %v", err)
	}
	// Move floating IP 1 from port-1 to port-0 in one update.
	f, err = floatingips.Update(ctx, c(), fipIDs[1], floatingips.UpdateOpts{PortID: &portIDs[0]}).Extract()
	if err != nil || f.PortID != portIDs[0] || f.Status != "ACTIVE" {
		t.Fatalf("re-associate: %v %+v", err, f)
	}

	// The interface is held by the floating IP until it goes.
	if _, err := routers.RemoveInterface(ctx, c(), r.ID, routers.RemoveInterfaceOpts{SubnetID: subIDs[0]}).Extract(); !isStatus(err, http.StatusConflict) {
		t.Fatalf("remove interface in use: %v", err)
	}

	// Delete everything, each through another server.
	for _, id := range fipIDs {
		must(floatingips.Delete(ctx, c(), id).ExtractErr(), "delete floating IP")
	}
	r, err = routers.Update(ctx, c(), r.ID, routers.UpdateOpts{Routes: &[]routers.Route{}}).Extract()
	must(err, "clear routes")
	for _, sub := range subIDs[:2] {
		_, err := routers.RemoveInterface(ctx, c(), r.ID, routers.RemoveInterfaceOpts{SubnetID: sub}).Extract()
		must(err, "remove interface")
	}
	for _, id := range routerIDs {
		must(routers.Delete(ctx, c(), id).ExtractErr(), "delete router")
	}
	for _, id := range portIDs {
		must(ports.Delete(ctx, c(), id).ExtractErr(), "delete port")
	}
	for _, id := range ruleIDs {
		must(rules.Delete(ctx, c(), id).ExtractErr(), "delete rule")
	}
	for _, id := range sgIDs {
		must(groups.Delete(ctx, c(), id).ExtractErr(), "delete security group")
	}
	for _, id := range append(subIDs, extSub.ID) {
		must(subnets.Delete(ctx, c(), id).ExtractErr(), "delete subnet")
	}
	for _, id := range []string{net.ID, extNet.ID} {
		must(networks.Delete(ctx, c(), id).ExtractErr(), "delete network")
	}
	if left, _ := walk(t, ports.List(c(), ports.ListOpts{}), ports.ExtractPorts); len(left) != 0 {
		t.Fatalf("ports left: %+v", left)
	}
	if _, err := routers.Get(ctx, c(), routerIDs[0]).Extract(); !isStatus(err, http.StatusNotFound) {
		t.Fatalf("get deleted router: %v", err)
	}
}
