package northbound_test

import (
	"context"
	"net/http"
	"net/netip"
	"sync"
	"testing"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/layer3/routers"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/rbacpolicies"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/segments"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/subnetpools"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/networks"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/ports"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/subnets"
)

func mustStatus(t *testing.T, what string, err error, code int) {
	t.Helper()
	if !isStatus(err, code) {
		t.Fatalf("%s: want %d, got %v", what, code, err)
	}
}

func networkIDs(t *testing.T, c *gophercloud.ServiceClient) map[string]bool {
	t.Helper()
	pages, err := networks.List(c, networks.ListOpts{}).AllPages(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	ns, err := networks.ExtractNetworks(pages)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, n := range ns {
		out[n.ID] = true
	}
	return out
}

// TestGophercloudRBAC shares a member's network with one project and
// makes an admin's network external for one project, through gophercloud
// against a 3-server cluster.
func TestGophercloudRBAC(t *testing.T) {
	servers := newAPICluster(t, 3, nil)
	ctx := context.Background()
	admin := gopher(servers[0], "", "")
	pa := gopher(servers[1], "pa", "member")
	pb := gopher(servers[2], "pb", "member")
	pc := gopher(servers[0], "pc", "member")

	n, err := networks.Create(ctx, pa, networks.CreateOpts{Name: "pa-net"}).Extract()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := subnets.Create(ctx, pa, subnets.CreateOpts{NetworkID: n.ID, CIDR: "10.7.0.0/24", IPVersion: 4}).Extract(); err != nil {
		t.Fatal(err)
	}
	if networkIDs(t, pb)[n.ID] {
		t.Fatal("pb sees pa's network before any policy")
	}
	_, err = ports.Create(ctx, pb, ports.CreateOpts{NetworkID: n.ID}).Extract()
	mustStatus(t, "pb port before the policy", err, http.StatusNotFound)

	// A member may not share with everyone.
	_, err = rbacpolicies.Create(ctx, pa, rbacpolicies.CreateOpts{Action: rbacpolicies.ActionAccessShared,
		ObjectType: "network", ObjectID: n.ID, TargetTenant: "*"}).Extract()
	mustStatus(t, "member wildcard", err, http.StatusForbidden)
	// Nor share what it does not own.
	_, err = rbacpolicies.Create(ctx, pb, rbacpolicies.CreateOpts{Action: rbacpolicies.ActionAccessShared,
		ObjectType: "network", ObjectID: n.ID, TargetTenant: "pb"}).Extract()
	mustStatus(t, "policy on another's network", err, http.StatusNotFound)

	pol, err := rbacpolicies.Create(ctx, pa, rbacpolicies.CreateOpts{Action: rbacpolicies.ActionAccessShared,
		ObjectType: "network", ObjectID: n.ID, TargetTenant: "pb"}).Extract()
	if err != nil {
		t.Fatal(err)
	}
	if pol.ProjectID != "pa" || pol.TargetTenant != "pb" || pol.ObjectID != n.ID || pol.Action != "access_as_shared" {
		t.Fatalf("policy %+v", pol)
	}
	_, err = rbacpolicies.Create(ctx, pa, rbacpolicies.CreateOpts{Action: rbacpolicies.ActionAccessShared,
		ObjectType: "network", ObjectID: n.ID, TargetTenant: "pb"}).Extract()
	mustStatus(t, "duplicate policy", err, http.StatusConflict)

	if !networkIDs(t, pb)[n.ID] || networkIDs(t, pc)[n.ID] {
		t.Fatal("after sharing with pb: pb must see the network, pc must not")
	}
	checkSharedPerProject(t, n.ID, map[*gophercloud.ServiceClient]bool{pa: false, pb: true, admin: false})
	// A wildcard policy (an admin's) shares it with every project, its
	// owner's included; the targeted one is still there for pb.
	all, err := rbacpolicies.Create(ctx, admin, rbacpolicies.CreateOpts{Action: rbacpolicies.ActionAccessShared,
		ObjectType: "network", ObjectID: n.ID, TargetTenant: "*"}).Extract()
	if err != nil {
		t.Fatal(err)
	}
	checkSharedPerProject(t, n.ID, map[*gophercloud.ServiceClient]bool{pa: true, pb: true, pc: true, admin: true})
	if err := rbacpolicies.Delete(ctx, admin, all.ID).ExtractErr(); err != nil {
		t.Fatal(err)
	}
	checkSharedPerProject(t, n.ID, map[*gophercloud.ServiceClient]bool{pa: false, pb: true, admin: false})
	if networkIDs(t, pc)[n.ID] {
		t.Fatal("pc sees pa's network after the wildcard policy is gone")
	}
	port, err := ports.Create(ctx, pb, ports.CreateOpts{NetworkID: n.ID, Name: "pb-port"}).Extract()
	if err != nil {
		t.Fatalf("pb port on the shared network: %v", err)
	}
	if port.ProjectID != "pb" || len(port.FixedIPs) != 1 {
		t.Fatalf("port %+v", port)
	}
	_, err = ports.Create(ctx, pc, ports.CreateOpts{NetworkID: n.ID}).Extract()
	mustStatus(t, "pc port", err, http.StatusNotFound)

	// Policies are the owner's: pb lists none, pa its one.
	for c, want := range map[*gophercloud.ServiceClient]int{pa: 1, pb: 0} {
		pages, err := rbacpolicies.List(c, rbacpolicies.ListOpts{}).AllPages(ctx)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := rbacpolicies.ExtractRBACPolicies(pages)
		if len(got) != want {
			t.Fatalf("policies listed: %d, want %d", len(got), want)
		}
	}

	// In use while pb has a port; retargeting is refused alike.
	err = rbacpolicies.Delete(ctx, pa, pol.ID).ExtractErr()
	mustStatus(t, "delete in use", err, http.StatusConflict)
	_, err = rbacpolicies.Update(ctx, pa, pol.ID, rbacpolicies.UpdateOpts{TargetTenant: "pc"}).Extract()
	mustStatus(t, "retarget in use", err, http.StatusConflict)
	if err := ports.Delete(ctx, pb, port.ID).ExtractErr(); err != nil {
		t.Fatal(err)
	}
	upd, err := rbacpolicies.Update(ctx, pa, pol.ID, rbacpolicies.UpdateOpts{TargetTenant: "pc"}).Extract()
	if err != nil || upd.TargetTenant != "pc" {
		t.Fatalf("retarget: %v %+v", err, upd)
	}
	if networkIDs(t, pb)[n.ID] || !networkIDs(t, pc)[n.ID] {
		t.Fatal("after retargeting to pc: pc must see the network, pb must not")
	}
	if err := rbacpolicies.Delete(ctx, pa, pol.ID).ExtractErr(); err != nil {
		t.Fatal(err)
	}
	if networkIDs(t, pc)[n.ID] {
		t.Fatal("pc still sees the network after the policy went")
	}

	// access_as_external: an admin's internal network becomes a gateway
	// network for pb only.
	ext, err := networks.Create(ctx, admin, networks.CreateOpts{Name: "ext-for-pb"}).Extract()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := subnets.Create(ctx, admin, subnets.CreateOpts{NetworkID: ext.ID, CIDR: "172.30.0.0/24", IPVersion: 4}).Extract(); err != nil {
		t.Fatal(err)
	}
	_, err = routers.Create(ctx, pb, routers.CreateOpts{Name: "r-early", GatewayInfo: &routers.GatewayInfo{NetworkID: ext.ID}}).Extract()
	mustStatus(t, "gateway before the policy", err, http.StatusNotFound)
	xp, err := rbacpolicies.Create(ctx, admin, rbacpolicies.CreateOpts{Action: rbacpolicies.ActionAccessExternal,
		ObjectType: "network", ObjectID: ext.ID, TargetTenant: "pb"}).Extract()
	if err != nil {
		t.Fatal(err)
	}
	rt, err := routers.Create(ctx, pb, routers.CreateOpts{Name: "r-pb", GatewayInfo: &routers.GatewayInfo{NetworkID: ext.ID}}).Extract()
	if err != nil {
		t.Fatalf("pb gateway on the network made external for it: %v", err)
	}
	if rt.GatewayInfo.NetworkID != ext.ID {
		t.Fatalf("router %+v", rt)
	}
	_, err = routers.Create(ctx, pc, routers.CreateOpts{Name: "r-pc", GatewayInfo: &routers.GatewayInfo{NetworkID: ext.ID}}).Extract()
	mustStatus(t, "pc gateway", err, http.StatusNotFound)
	err = rbacpolicies.Delete(ctx, admin, xp.ID).ExtractErr()
	mustStatus(t, "external policy in use", err, http.StatusConflict)
	if err := routers.Delete(ctx, pb, rt.ID).ExtractErr(); err != nil {
		t.Fatal(err)
	}
	if err := rbacpolicies.Delete(ctx, admin, xp.ID).ExtractErr(); err != nil {
		t.Fatal(err)
	}
	var shown struct {
		Network struct {
			External bool `json:"router:external"`
		} `json:"network"`
	}
	if code := servers[1].do("GET", "/v2.0/networks/"+ext.ID, nil, nil, &shown); code != 200 || shown.Network.External {
		t.Fatalf("network still external after its last access_as_external policy: %d %+v", code, shown)
	}

	// Segments: one per network, admin-only.
	pages, err := segments.List(admin, segments.ListOpts{NetworkID: n.ID}).AllPages(ctx)
	if err != nil {
		t.Fatal(err)
	}
	segs, err := segments.ExtractSegments(pages)
	if err != nil || len(segs) != 1 || segs[0].NetworkType != "vxlan" || segs[0].SegmentationID < 1000 || segs[0].SegmentationID > 1009 {
		t.Fatalf("segments of %s: %v %+v", n.ID, err, segs)
	}
	one, err := segments.Get(ctx, admin, segs[0].ID).Extract()
	if err != nil || one.NetworkID != n.ID {
		t.Fatalf("segment get: %v %+v", err, one)
	}
	pages, err = segments.List(pa, segments.ListOpts{}).AllPages(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if segs, _ := segments.ExtractSegments(pages); len(segs) != 0 {
		t.Fatalf("a member lists %d segments", len(segs))
	}
	_, err = segments.Create(ctx, admin, segments.CreateOpts{NetworkID: n.ID, NetworkType: "vlan"}).Extract()
	mustStatus(t, "segment create", err, http.StatusMethodNotAllowed)
}

// TestGophercloudSubnetPools allocates subnets from pools: explicit and
// default prefix lengths, the default pool, overlap refused, prefixes
// released on delete, and concurrent allocations that never overlap.
func TestGophercloudSubnetPools(t *testing.T) {
	servers := newAPICluster(t, 3, nil)
	ctx := context.Background()
	admin := gopher(servers[0], "", "")
	pa := gopher(servers[1], "pa", "member")

	_, err := subnetpools.Create(ctx, pa, subnetpools.CreateOpts{Name: "x", Prefixes: []string{"10.90.0.0/16"}, IsDefault: true}).Extract()
	mustStatus(t, "member is_default", err, http.StatusForbidden)
	_, err = subnetpools.Create(ctx, pa, subnetpools.CreateOpts{Name: "x", Prefixes: []string{"10.90.0.0/16"}, DefaultPrefixLen: 8}).Extract()
	mustStatus(t, "default_prefixlen outside the bounds", err, http.StatusBadRequest)

	pool, err := subnetpools.Create(ctx, pa, subnetpools.CreateOpts{Name: "pa-pool", Prefixes: []string{"10.60.0.0/20"},
		DefaultPrefixLen: 26, MaxPrefixLen: 28}).Extract()
	if err != nil {
		t.Fatal(err)
	}
	if pool.IPversion != 4 || pool.DefaultPrefixLen != 26 || pool.MinPrefixLen != 20 || pool.MaxPrefixLen != 28 {
		t.Fatalf("pool %+v", pool)
	}
	n, err := networks.Create(ctx, pa, networks.CreateOpts{Name: "pool-net"}).Extract()
	if err != nil {
		t.Fatal(err)
	}
	mk := func(c *gophercloud.ServiceClient, opts subnets.CreateOpts) (*subnets.Subnet, error) {
		opts.NetworkID, opts.IPVersion = n.ID, 4
		return subnets.Create(ctx, c, opts).Extract()
	}
	s28, err := mk(pa, subnets.CreateOpts{SubnetPoolID: pool.ID, Prefixlen: 28})
	if err != nil || s28.CIDR != "10.60.0.0/28" || s28.SubnetPoolID != pool.ID {
		t.Fatalf("first /28: %v %+v", err, s28)
	}
	s26, err := mk(pa, subnets.CreateOpts{SubnetPoolID: pool.ID})
	if err != nil || s26.CIDR != "10.60.0.64/26" {
		t.Fatalf("default prefix length: %v %+v", err, s26)
	}
	_, err = mk(pa, subnets.CreateOpts{SubnetPoolID: pool.ID, CIDR: "10.60.0.64/27"})
	mustStatus(t, "explicit overlapping cidr", err, http.StatusConflict)
	_, err = mk(pa, subnets.CreateOpts{SubnetPoolID: pool.ID, Prefixlen: 30})
	mustStatus(t, "prefixlen over max", err, http.StatusBadRequest)
	err = subnetpools.Delete(ctx, pa, pool.ID).ExtractErr()
	mustStatus(t, "pool in use", err, http.StatusConflict)
	if err := subnets.Delete(ctx, pa, s28.ID).ExtractErr(); err != nil {
		t.Fatal(err)
	}
	again, err := mk(pa, subnets.CreateOpts{SubnetPoolID: pool.ID, Prefixlen: 28})
	if err != nil || again.CIDR != "10.60.0.0/28" {
		t.Fatalf("released prefix not reused: %v %+v", err, again)
	}

	// Concurrent creates through all three servers: distinct prefixes.
	n2, err := networks.Create(ctx, pa, networks.CreateOpts{Name: "pool-net-2"}).Extract()
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var got []netip.Prefix
	var wg sync.WaitGroup
	for i := 0; i < 9; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			sub, err := subnets.Create(ctx, gopher(servers[i%3], "pa", "member"), subnets.CreateOpts{NetworkID: n2.ID, IPVersion: 4,
				SubnetPoolID: pool.ID, Prefixlen: 28}).Extract()
			if err != nil {
				t.Errorf("concurrent create %d: %v", i, err)
				return
			}
			mu.Lock()
			got = append(got, netip.MustParsePrefix(sub.CIDR))
			mu.Unlock()
		}(i)
	}
	wg.Wait()
	for i, a := range got {
		for _, b := range got[i+1:] {
			if a.Overlaps(b) {
				t.Fatalf("concurrent allocations overlap: %s %s", a, b)
			}
		}
	}

	// The default pool serves use_default_subnetpool (gophercloud has no
	// field for it: a raw request).
	def, err := subnetpools.Create(ctx, admin, subnetpools.CreateOpts{Name: "default-v4", Prefixes: []string{"10.128.0.0/16"},
		DefaultPrefixLen: 24, IsDefault: true, Shared: true}).Extract()
	if err != nil {
		t.Fatal(err)
	}
	var created struct {
		Subnet struct {
			CIDR         string `json:"cidr"`
			SubnetPoolID string `json:"subnetpool_id"`
		} `json:"subnet"`
	}
	code := servers[2].do("POST", "/v2.0/subnets", map[string]string{"X-Project-Id": "pa", "X-Roles": "member"},
		map[string]any{"subnet": map[string]any{"network_id": n2.ID, "ip_version": 4, "use_default_subnetpool": true}}, &created)
	if code != http.StatusCreated || created.Subnet.CIDR != "10.128.0.0/24" || created.Subnet.SubnetPoolID != def.ID {
		t.Fatalf("default pool subnet: %d %+v", code, created)
	}
	_, err = subnetpools.Create(ctx, admin, subnetpools.CreateOpts{Name: "default-v4-2", Prefixes: []string{"10.129.0.0/16"}, IsDefault: true}).Extract()
	mustStatus(t, "second default pool", err, http.StatusBadRequest)
	// Prefixes may grow, not shrink.
	if _, err := subnetpools.Update(ctx, pa, pool.ID, subnetpools.UpdateOpts{Prefixes: []string{"10.60.0.0/20", "10.61.0.0/24"}}).Extract(); err != nil {
		t.Fatal(err)
	}
	_, err = subnetpools.Update(ctx, pa, pool.ID, subnetpools.UpdateOpts{Prefixes: []string{"10.61.0.0/24"}}).Extract()
	mustStatus(t, "shrinking prefixes", err, http.StatusBadRequest)
}

// checkSharedPerProject checks a network's `shared` as each client's
// project sees it, in a show and through ?shared=true|false, as Neutron
// computes it per request: true when an access_as_shared policy targets
// the caller's project or `*`.
func checkSharedPerProject(t *testing.T, id string, want map[*gophercloud.ServiceClient]bool) {
	t.Helper()
	ctx := context.Background()
	for c, shared := range want {
		n, err := networks.Get(ctx, c, id).Extract()
		if err != nil {
			t.Fatalf("show as %v: %v", c.MoreHeaders, err)
		}
		if n.Shared != shared {
			t.Errorf("show: shared %v, want %v (headers %v)", n.Shared, shared, c.MoreHeaders)
		}
		for _, filter := range []bool{true, false} {
			pages, err := networks.List(c, networks.ListOpts{Shared: &filter}).AllPages(ctx)
			if err != nil {
				t.Fatal(err)
			}
			got, err := networks.ExtractNetworks(pages)
			if err != nil {
				t.Fatal(err)
			}
			listed := false
			for _, x := range got {
				listed = listed || x.ID == id
				if x.Shared != filter {
					t.Errorf("?shared=%v listed %s with shared %v", filter, x.ID, x.Shared)
				}
			}
			if listed != (filter == shared) {
				t.Errorf("?shared=%v as %v: listed %v, want %v", filter, c.MoreHeaders, listed, filter == shared)
			}
		}
	}
}
