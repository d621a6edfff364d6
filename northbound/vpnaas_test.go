package northbound_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/vpnaas/endpointgroups"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/vpnaas/ikepolicies"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/vpnaas/ipsecpolicies"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/vpnaas/services"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/vpnaas/siteconnections"

	"neutrino/cluster"
	"neutrino/cmd/neutrino/agent"
	"neutrino/fsm"
	"neutrino/northbound"
)

const vpnSecret = "s3cr3t-psk-never-shown"

// startGatewayChassis starts a chassis-only agent with the gateway role
// joining the servers, and waits until the cluster records it up.
func startGatewayChassis(t *testing.T, s *apiServer, binds []string, name string) {
	t.Helper()
	a, err := agent.Start(agent.Config{Node: name, DataDir: t.TempDir(), Bind: freeBind(t), HTTP: "127.0.0.1:0", Join: binds,
		Logger:  slog.New(slog.NewTextHandler(io.Discard, nil)),
		Chassis: cluster.NodeMeta{TunnelIP: "192.0.2.10", Roles: []string{"gateway"}, Encaps: []string{"geneve"}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = a.Shutdown(ctx)
	})
	eventually(t, 30*time.Second, func() error {
		var l struct {
			Chassis []map[string]any `json:"chassis"`
		}
		s.do("GET", "/v2.0/chassis?name="+name, nil, nil, &l)
		if len(l.Chassis) != 1 || l.Chassis[0]["status"] != "UP" {
			return fmt.Errorf("chassis %s: %v", name, l.Chassis)
		}
		return nil
	})
}

// vpnSite is a router with a gateway and one private subnet.
type vpnSite struct {
	router, subnet, extNet, gatewayIP string
}

func newVPNSite(s *apiServer, cidr string) vpnSite {
	ext, _ := externalNet(s, nil, "203.0.113.0/24")
	n := s.create("networks", "network", map[string]any{"name": "private"}, nil)
	sub := s.create("subnets", "subnet", map[string]any{"ip_version": ipVersionOf(cidr), "network_id": n["id"], "cidr": cidr}, nil)
	r := s.create("routers", "router", map[string]any{"name": "r1", "external_gateway_info": map[string]any{"network_id": ext["id"]}}, nil)
	s.put("/v2.0/routers/"+r["id"].(string)+"/add_router_interface", nil, map[string]any{"subnet_id": sub["id"]})
	return vpnSite{router: r["id"].(string), subnet: sub["id"].(string), extNet: ext["id"].(string), gatewayIP: gatewayIP(r)}
}

// rawGet returns a GET's body as text (to look for secrets in it).
func (s *apiServer) rawGet(path string) string {
	s.t.Helper()
	resp, err := http.Get(s.base + path)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// leaderRevision is the revision a consistent read answers with (reads go
// to the leader), unlike /v1/cluster, which answers from the local replica.
func (s *apiServer) leaderRevision() uint64 {
	s.t.Helper()
	code, h := s.doRaw("GET", "/v2.0/vpn/vpnservices", nil, nil, nil)
	var rev uint64
	if _, err := fmt.Sscan(h.Get("X-Neutrino-Revision"), &rev); code != 200 || err != nil {
		s.t.Fatalf("revision of a read: %d %v", code, err)
	}
	return rev
}

func noSecret(t *testing.T, where, body string) {
	t.Helper()
	if strings.Contains(body, vpnSecret) || strings.Contains(body, `"psk":`) {
		t.Fatalf("%s shows the PSK: %s", where, body)
	}
}

func agentStatus(s *apiServer, hdr map[string]string, body any) (int, map[string]any, uint64) {
	s.t.Helper()
	var out map[string]any
	code, h := s.doRaw("PUT", "/v1/vpn/agent-status", hdr, body, &out)
	var rev uint64
	fmt.Sscan(h.Get("X-Neutrino-Revision"), &rev)
	return code, out, rev
}

// TestVPNaaSGophercloud drives the VPNaaS lifecycle with gophercloud's
// vpnaas packages against a 3-server cluster with a gateway chassis, each
// call through another server; statuses move only by agent reports.
func TestVPNaaSGophercloud(t *testing.T) {
	servers, binds := newAPIClusterBinds(t, 3, nil)
	startGatewayChassis(t, servers[0], binds, "gw1")
	ctx := context.Background()
	n := 0
	c := func() *gophercloud.ServiceClient { n++; return gopher(servers[n%3], "", "") }
	s := servers[0]
	site := newVPNSite(s, "10.1.0.0/24")

	ike, err := ikepolicies.Create(ctx, c(), ikepolicies.CreateOpts{Name: "ike", IKEVersion: ikepolicies.IKEVersionv2,
		EncryptionAlgorithm: ikepolicies.EncryptionAlgorithmAES256, AuthAlgorithm: ikepolicies.AuthAlgorithmSHA256,
		PFS: ikepolicies.PFSGroup14, Lifetime: &ikepolicies.LifetimeCreateOpts{Units: ikepolicies.UnitSeconds, Value: 7200}}).Extract()
	if err != nil || ike.IKEVersion != "v2" || ike.Lifetime.Value != 7200 || ike.Phase1NegotiationMode != "main" || ike.PFS != "group14" {
		t.Fatalf("ike policy: %v %+v", err, ike)
	}
	ipsec, err := ipsecpolicies.Create(ctx, c(), ipsecpolicies.CreateOpts{Name: "ipsec", PFS: ipsecpolicies.PFSGroup14,
		EncryptionAlgorithm: ipsecpolicies.EncryptionAlgorithmAES128, AuthAlgorithm: ipsecpolicies.AuthAlgorithmSHA1}).Extract()
	if err != nil || ipsec.TransformProtocol != "esp" || ipsec.EncapsulationMode != "tunnel" || ipsec.Lifetime.Value != 3600 {
		t.Fatalf("ipsec policy: %v %+v", err, ipsec)
	}
	svc, err := services.Create(ctx, c(), services.CreateOpts{Name: "vpn", RouterID: site.router}).Extract()
	if err != nil || svc.Status != "PENDING_CREATE" || svc.ExternalV4IP != site.gatewayIP || !svc.AdminStateUp || svc.SubnetID != "" {
		t.Fatalf("vpn service: %v %+v", err, svc)
	}
	local, err := endpointgroups.Create(ctx, c(), endpointgroups.CreateOpts{Name: "local", Type: endpointgroups.TypeSubnet,
		Endpoints: []string{site.subnet}}).Extract()
	if err != nil || local.Type != "subnet" {
		t.Fatalf("local group: %v %+v", err, local)
	}
	peer, err := endpointgroups.Create(ctx, c(), endpointgroups.CreateOpts{Name: "peer", Type: endpointgroups.TypeCIDR,
		Endpoints: []string{"172.16.0.0/24", "172.16.1.0/24"}}).Extract()
	if err != nil || len(peer.Endpoints) != 2 {
		t.Fatalf("peer group: %v %+v", err, peer)
	}
	conn, err := siteconnections.Create(ctx, c(), siteconnections.CreateOpts{Name: "to-site-b", VPNServiceID: svc.ID,
		IKEPolicyID: ike.ID, IPSecPolicyID: ipsec.ID, PeerAddress: "198.51.100.7", PeerID: "198.51.100.7", PSK: vpnSecret,
		LocalEPGroupID: local.ID, PeerEPGroupID: peer.ID,
		DPD: &siteconnections.DPDCreateOpts{Action: siteconnections.ActionRestart, Interval: 2, Timeout: 10}}).Extract()
	if err != nil {
		t.Fatal(err)
	}
	if conn.Status != "PENDING_CREATE" || conn.PSK != "" || conn.MTU != 1500 || conn.Initiator != "bi-directional" ||
		conn.DPD.Action != "restart" || conn.DPD.Timeout != 10 || conn.RouteMode != "static" || conn.AuthMode != "psk" {
		t.Fatalf("connection: %+v", conn)
	}
	for i, sv := range servers {
		noSecret(t, fmt.Sprintf("GET through server %d", i), sv.rawGet("/v2.0/vpn/ipsec-site-connections/"+conn.ID))
		noSecret(t, "list", sv.rawGet("/v2.0/vpn/ipsec-site-connections"))
	}
	// The PSK is no filter (it would leak by trial), and no field: asking
	// for it is ignored like any unknown field name, as Neutron does.
	var e map[string]any
	checkVPNErr(t, s, "GET", "/v2.0/vpn/ipsec-site-connections?psk="+vpnSecret, nil, 400, "", &e)
	noSecret(t, "fields=psk list", s.rawGet("/v2.0/vpn/ipsec-site-connections?fields=psk&fields=id"))
	noSecret(t, "fields=psk show", s.rawGet("/v2.0/vpn/ipsec-site-connections/"+conn.ID+"?fields=psk"))

	// Filters, fields and paging like the other resources.
	pages, err := siteconnections.List(c(), siteconnections.ListOpts{PeerID: "198.51.100.7", VPNServiceID: svc.ID}).AllPages(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := siteconnections.ExtractConnections(pages); err != nil || len(got) != 1 || got[0].ID != conn.ID {
		t.Fatalf("filtered connections: %v %+v", err, got)
	}
	for i := 0; i < 4; i++ {
		if _, err := ikepolicies.Create(ctx, c(), ikepolicies.CreateOpts{Name: fmt.Sprintf("extra-%d", i)}).Extract(); err != nil {
			t.Fatal(err)
		}
	}
	// gophercloud's vpnaas ListOpts have no limit: page by hand, following
	// the next links.
	seen, npages := 0, 0
	for next := s.base + "/v2.0/vpn/ikepolicies?limit=2&sort_key=name"; next != ""; npages++ {
		var page struct {
			Policies []map[string]any    `json:"ikepolicies"`
			Links    []map[string]string `json:"ikepolicies_links"`
		}
		resp, err := http.Get(next)
		if err != nil {
			t.Fatal(err)
		}
		err = json.NewDecoder(resp.Body).Decode(&page)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		seen += len(page.Policies)
		next = ""
		for _, l := range page.Links {
			if l["rel"] == "next" {
				next = l["href"]
			}
		}
	}
	if seen != 5 || npages != 3 {
		t.Fatalf("paging: %d policies in %d pages", seen, npages)
	}
	named, err := ikepolicies.List(c(), ikepolicies.ListOpts{Name: "extra-2"}).AllPages(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := ikepolicies.ExtractPolicies(named); err != nil || len(got) != 1 || got[0].Name != "extra-2" {
		t.Fatalf("filter by name: %v %+v", err, got)
	}
	var fl map[string][]map[string]any
	s.do("GET", "/v2.0/vpn/vpnservices?fields=id&fields=status", nil, nil, &fl)
	if len(fl["vpnservices"]) != 1 || len(fl["vpnservices"][0]) != 2 || fl["vpnservices"][0]["status"] != "PENDING_CREATE" {
		t.Fatalf("fields: %v", fl)
	}

	// Status comes only from the router's active gateway chassis.
	report := map[string]any{"chassis": "gw1", "services": map[string]any{svc.ID: "ACTIVE"}, "connections": map[string]any{conn.ID: "ACTIVE"}}
	if code, out, _ := agentStatus(s, map[string]string{"X-Project-Id": "p1", "X-Roles": "member"}, report); code != 403 {
		t.Fatalf("member report: %d %v", code, out)
	}
	rev := s.leaderRevision()
	stale := map[string]any{"chassis": "gw-elsewhere", "connections": map[string]any{conn.ID: "ACTIVE"}}
	if code, out, _ := agentStatus(servers[1], nil, stale); code != 200 || s.leaderRevision() != rev {
		t.Fatalf("stale report: %d %v, revision %d -> %d", code, out, rev, s.leaderRevision())
	}
	if code, out, _ := agentStatus(servers[1], nil, map[string]any{"chassis": "gw1", "connections": map[string]any{conn.ID: "UP"}}); code != 400 || s.leaderRevision() != rev {
		t.Fatalf("bad status: %d %v", code, out)
	}
	code, out, rev2 := agentStatus(servers[2], nil, report)
	if code != 200 || rev2 <= rev {
		t.Fatalf("report: %d %v rev %d", code, out, rev2)
	}
	got, err := siteconnections.Get(ctx, c(), conn.ID).Extract()
	if err != nil || got.Status != "ACTIVE" {
		t.Fatalf("connection after report: %v %+v", err, got)
	}
	if sv, err := services.Get(ctx, c(), svc.ID).Extract(); err != nil || sv.Status != "ACTIVE" {
		t.Fatalf("service after report: %v %+v", err, sv)
	}
	if code, _, rev3 := agentStatus(servers[0], nil, report); code != 200 || rev3 != rev2 || s.leaderRevision() != rev2 {
		t.Fatalf("a repeated report was proposed: %d, revision %d -> %d", code, rev2, rev3)
	}

	// Updates.
	mtu := 1400
	newPSK := vpnSecret + "-2"
	upd, err := siteconnections.Update(ctx, c(), conn.ID, siteconnections.UpdateOpts{MTU: mtu, PSK: newPSK,
		DPD: &siteconnections.DPDUpdateOpts{Interval: 5}}).Extract()
	if err != nil || upd.MTU != mtu || upd.PSK != "" || upd.DPD.Interval != 5 || upd.DPD.Timeout != 10 || upd.Status != "ACTIVE" {
		t.Fatalf("update: %v %+v", err, upd)
	}
	down := false
	upd, err = siteconnections.Update(ctx, c(), conn.ID, siteconnections.UpdateOpts{AdminStateUp: &down}).Extract()
	if err != nil || upd.Status != "DOWN" || upd.AdminStateUp {
		t.Fatalf("disable: %v %+v", err, upd)
	}
	desc := "renamed"
	if p, err := ikepolicies.Update(ctx, c(), ike.ID, ikepolicies.UpdateOpts{Description: &desc}).Extract(); !isStatus(err, 409) {
		t.Fatalf("update of a policy in use: %v %+v", err, p)
	}

	// In use: nothing goes while something needs it.
	rev = s.leaderRevision()
	for _, tc := range []struct {
		what string
		err  error
		want int
	}{
		{"ike policy", ikepolicies.Delete(ctx, c(), ike.ID).ExtractErr(), 409},
		{"ipsec policy", ipsecpolicies.Delete(ctx, c(), ipsec.ID).ExtractErr(), 409},
		{"endpoint group", endpointgroups.Delete(ctx, c(), local.ID).ExtractErr(), 400},
		{"vpn service", services.Delete(ctx, c(), svc.ID).ExtractErr(), 409},
	} {
		if !isStatus(tc.err, tc.want) {
			t.Errorf("delete %s in use: %v, want %d", tc.what, tc.err, tc.want)
		}
	}
	checkVPNErr(t, s, "DELETE", "/v2.0/routers/"+site.router, nil, 409, "", &e)
	checkVPNErr(t, s, "PUT", "/v2.0/routers/"+site.router, map[string]any{"router": map[string]any{"external_gateway_info": map[string]any{}}},
		409, "RouterInUseByVPNService", &e)
	checkVPNErr(t, s, "PUT", "/v2.0/routers/"+site.router+"/remove_router_interface", map[string]any{"subnet_id": site.subnet},
		409, "SubnetInUseByEndpointGroup", &e)
	if s.leaderRevision() != rev {
		t.Fatalf("refused deletes changed the revision %d -> %d", rev, s.leaderRevision())
	}

	// Tear down in order.
	for _, del := range []func() error{
		func() error { return siteconnections.Delete(ctx, c(), conn.ID).ExtractErr() },
		func() error { return endpointgroups.Delete(ctx, c(), local.ID).ExtractErr() },
		func() error { return endpointgroups.Delete(ctx, c(), peer.ID).ExtractErr() },
		func() error { return services.Delete(ctx, c(), svc.ID).ExtractErr() },
		func() error { return ikepolicies.Delete(ctx, c(), ike.ID).ExtractErr() },
		func() error { return ipsecpolicies.Delete(ctx, c(), ipsec.ID).ExtractErr() },
	} {
		if err := del(); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := siteconnections.Get(ctx, c(), conn.ID).Extract(); !isStatus(err, 404) {
		t.Fatalf("deleted connection: %v", err)
	}
	var ext map[string][]map[string]any
	s.do("GET", "/v2.0/extensions", nil, nil, &ext)
	found := 0
	for _, x := range ext["extensions"] {
		if x["alias"] == "vpnaas" || x["alias"] == "vpn-endpoint-groups" {
			found++
		}
	}
	if found != 2 {
		t.Fatalf("extensions: vpnaas and vpn-endpoint-groups not both listed: %v", ext)
	}
}

// checkVPNErr sends a request and checks a NeutronError answer.
func checkVPNErr(t *testing.T, s *apiServer, method, path string, body any, want int, wantType string, out *map[string]any) {
	t.Helper()
	*out = nil
	code := s.do(method, path, nil, body, out)
	checkNeutronError(t, code, want, *out, wantType)
}

// TestVPNaaSBadInput: every invalid request is a 4xx in Neutron's format
// and changes nothing.
func TestVPNaaSBadInput(t *testing.T) {
	s := newAPIServer(t, nil)
	site := newVPNSite(s, "10.1.0.0/24")
	noGw := s.create("routers", "router", map[string]any{"name": "no-gateway"}, nil)
	other := s.create("networks", "network", map[string]any{"name": "other"}, nil)
	otherSub := s.create("subnets", "subnet", map[string]any{"ip_version": 4, "network_id": other["id"], "cidr": "10.9.0.0/24"}, nil)
	ike := s.create("vpn/ikepolicies", "ikepolicy", map[string]any{"name": "ike"}, nil)
	ipsec := s.create("vpn/ipsecpolicies", "ipsecpolicy", map[string]any{"name": "ipsec"}, nil)
	svc := s.create("vpn/vpnservices", "vpnservice", map[string]any{"router_id": site.router}, nil)
	legacy := s.create("vpn/vpnservices", "vpnservice", map[string]any{"router_id": site.router, "subnet_id": site.subnet}, nil)
	local := s.create("vpn/endpoint-groups", "endpoint_group", map[string]any{"type": "subnet", "endpoints": []string{site.subnet}}, nil)
	peer := s.create("vpn/endpoint-groups", "endpoint_group", map[string]any{"type": "cidr", "endpoints": []string{"172.16.0.0/24"}}, nil)
	overlap := s.create("vpn/endpoint-groups", "endpoint_group", map[string]any{"type": "cidr", "endpoints": []string{"10.1.0.128/25"}}, nil)
	for _, o := range []map[string]any{svc, legacy} {
		if o["status"] != "PENDING_CREATE" || o["external_v4_ip"] != site.gatewayIP {
			t.Fatalf("service: %v", o)
		}
	}
	conn := func(change map[string]any) map[string]any {
		c := map[string]any{"vpnservice_id": svc["id"], "ikepolicy_id": ike["id"], "ipsecpolicy_id": ipsec["id"],
			"peer_address": "198.51.100.7", "peer_id": "198.51.100.7", "psk": vpnSecret,
			"local_ep_group_id": local["id"], "peer_ep_group_id": peer["id"]}
		for k, v := range change {
			if v == nil {
				delete(c, k)
				continue
			}
			c[k] = v
		}
		return map[string]any{"ipsec_site_connection": c}
	}
	good := s.create("vpn/ipsec-site-connections", "ipsec_site_connection", conn(nil)["ipsec_site_connection"].(map[string]any), nil)
	ikeBody := func(k string, v any) map[string]any { return map[string]any{"ikepolicy": map[string]any{k: v}} }
	ipsecBody := func(k string, v any) map[string]any { return map[string]any{"ipsecpolicy": map[string]any{k: v}} }
	cases := []struct {
		name, method, path string
		body               any
		code               int
		typ                string
	}{
		{"md5", "POST", "ikepolicies", ikeBody("auth_algorithm", "md5"), 400, "HTTPBadRequest"},
		{"des", "POST", "ikepolicies", ikeBody("encryption_algorithm", "des"), 400, "HTTPBadRequest"},
		{"group1", "POST", "ikepolicies", ikeBody("pfs", "group1"), 400, "HTTPBadRequest"},
		{"ike v3", "POST", "ikepolicies", ikeBody("ike_version", "v3"), 400, "HTTPBadRequest"},
		{"phase1 fast", "POST", "ikepolicies", ikeBody("phase1_negotiation_mode", "fast"), 400, "HTTPBadRequest"},
		{"lifetime 59", "POST", "ikepolicies", ikeBody("lifetime", map[string]any{"units": "seconds", "value": 59}), 400, "HTTPBadRequest"},
		{"lifetime kilobytes", "POST", "ikepolicies", ikeBody("lifetime", map[string]any{"units": "kilobytes"}), 400, "HTTPBadRequest"},
		{"lifetime extra key", "POST", "ikepolicies", ikeBody("lifetime", map[string]any{"minutes": 5}), 400, "HTTPBadRequest"},
		{"lifetime not int", "POST", "ikepolicies", ikeBody("lifetime", map[string]any{"value": 60.5}), 400, "HTTPBadRequest"},
		{"unknown attribute", "POST", "ikepolicies", ikeBody("colour", "red"), 400, "HTTPBadRequest"},
		{"transform", "POST", "ipsecpolicies", ipsecBody("transform_protocol", "gre"), 400, "HTTPBadRequest"},
		{"encapsulation", "POST", "ipsecpolicies", ipsecBody("encapsulation_mode", "beet"), 400, "HTTPBadRequest"},
		{"ipsec lifetime", "POST", "ipsecpolicies", ipsecBody("lifetime", map[string]any{"value": 10}), 400, "HTTPBadRequest"},
		{"router without gateway", "POST", "vpnservices", map[string]any{"vpnservice": map[string]any{"router_id": noGw["id"]}}, 400, "RouterIsNotExternal"},
		{"subnet not on router", "POST", "vpnservices", map[string]any{"vpnservice": map[string]any{"router_id": site.router, "subnet_id": otherSub["id"]}},
			400, "SubnetIsNotConnectedToRouter"},
		{"unknown router", "POST", "vpnservices", map[string]any{"vpnservice": map[string]any{"router_id": "2f1ac0cb-64c1-4bb1-9a5a-1b4f5e0d9e11"}}, 404, "RouterNotFound"},
		{"router_id is read-only", "PUT", "vpnservices/" + svc["id"].(string), map[string]any{"vpnservice": map[string]any{"router_id": noGw["id"]}}, 400, "HTTPBadRequest"},
		{"group type vlan", "POST", "endpoint-groups", map[string]any{"endpoint_group": map[string]any{"type": "vlan", "endpoints": []string{"5"}}}, 400, "HTTPBadRequest"},
		{"group bad cidr", "POST", "endpoint-groups", map[string]any{"endpoint_group": map[string]any{"type": "cidr", "endpoints": []string{"10.0.0.1/24"}}},
			400, "InvalidEndpointInEndpointGroup"},
		{"group unknown subnet", "POST", "endpoint-groups", map[string]any{"endpoint_group": map[string]any{"type": "subnet",
			"endpoints": []string{"2f1ac0cb-64c1-4bb1-9a5a-1b4f5e0d9e11"}}}, 400, "NonExistingSubnetInEndpointGroup"},
		{"group no endpoints", "POST", "endpoint-groups", map[string]any{"endpoint_group": map[string]any{"type": "cidr", "endpoints": []string{}}},
			400, "MissingEndpointForEndpointGroup"},
		{"dpd timeout <= interval", "POST", "ipsec-site-connections", conn(map[string]any{"dpd": map[string]any{"interval": 30, "timeout": 30}}),
			400, "IPsecSiteConnectionDpdIntervalValueError"},
		{"dpd action", "POST", "ipsec-site-connections", conn(map[string]any{"dpd": map[string]any{"action": "panic"}}), 400, "HTTPBadRequest"},
		{"dpd negative", "POST", "ipsec-site-connections", conn(map[string]any{"dpd": map[string]any{"interval": -1}}), 400, "HTTPBadRequest"},
		{"mtu 67", "POST", "ipsec-site-connections", conn(map[string]any{"mtu": 67}), 400, "IPsecSiteConnectionMtuError"},
		{"initiator", "POST", "ipsec-site-connections", conn(map[string]any{"initiator": "sometimes"}), 400, "HTTPBadRequest"},
		{"no psk", "POST", "ipsec-site-connections", conn(map[string]any{"psk": nil}), 400, "HTTPBadRequest"},
		{"empty psk", "POST", "ipsec-site-connections", conn(map[string]any{"psk": ""}), 400, "HTTPBadRequest"},
		{"peer cidrs with groups", "POST", "ipsec-site-connections", conn(map[string]any{"peer_cidrs": []string{"172.17.0.0/24"}}), 400, "PeerCidrsInvalid"},
		{"missing peer group", "POST", "ipsec-site-connections", conn(map[string]any{"peer_ep_group_id": nil}), 400, "MissingRequiredEndpointGroup"},
		{"peer group overlaps local", "POST", "ipsec-site-connections", conn(map[string]any{"peer_ep_group_id": overlap["id"]}), 400, "PeerCidrOverlapsLocalSubnet"},
		{"local group of type cidr", "POST", "ipsec-site-connections", conn(map[string]any{"local_ep_group_id": peer["id"]}), 400, "WrongEndpointGroupType"},
		{"legacy without peer cidrs", "POST", "ipsec-site-connections", conn(map[string]any{"vpnservice_id": legacy["id"],
			"local_ep_group_id": nil, "peer_ep_group_id": nil}), 400, "MissingPeerCidrs"},
		{"legacy with groups", "POST", "ipsec-site-connections", conn(map[string]any{"vpnservice_id": legacy["id"], "peer_cidrs": []string{"172.16.0.0/24"}}),
			400, "InvalidEndpointGroup"},
		{"legacy overlap", "POST", "ipsec-site-connections", conn(map[string]any{"vpnservice_id": legacy["id"], "local_ep_group_id": nil,
			"peer_ep_group_id": nil, "peer_cidrs": []string{"10.0.0.0/8"}}), 400, "PeerCidrOverlapsLocalSubnet"},
		{"bad peer cidr", "POST", "ipsec-site-connections", conn(map[string]any{"vpnservice_id": legacy["id"], "local_ep_group_id": nil,
			"peer_ep_group_id": nil, "peer_cidrs": []string{"172.16.0.1/24"}}), 400, "HTTPBadRequest"},
		{"unresolvable peer", "POST", "ipsec-site-connections", conn(map[string]any{"peer_address": "no-such-peer.invalid"}), 400, "VPNPeerAddressNotResolved"},
		{"v6 peer, v4 gateway", "POST", "ipsec-site-connections", conn(map[string]any{"peer_address": "2001:db8::7"}), 400, "ExternalNetworkHasNoSubnet"},
		{"unknown service", "POST", "ipsec-site-connections", conn(map[string]any{"vpnservice_id": "2f1ac0cb-64c1-4bb1-9a5a-1b4f5e0d9e11"}), 404, "VPNServiceNotFound"},
		{"unknown ike policy", "POST", "ipsec-site-connections", conn(map[string]any{"ikepolicy_id": "2f1ac0cb-64c1-4bb1-9a5a-1b4f5e0d9e11"}), 404, "IKEPolicyNotFound"},
		{"service is read-only", "PUT", "ipsec-site-connections/" + good["id"].(string),
			map[string]any{"ipsec_site_connection": map[string]any{"vpnservice_id": legacy["id"]}}, 400, "HTTPBadRequest"},
		{"update to overlap", "PUT", "ipsec-site-connections/" + good["id"].(string),
			map[string]any{"ipsec_site_connection": map[string]any{"peer_ep_group_id": overlap["id"]}}, 400, "PeerCidrOverlapsLocalSubnet"},
		{"update dpd timeout below interval", "PUT", "ipsec-site-connections/" + good["id"].(string),
			map[string]any{"ipsec_site_connection": map[string]any{"dpd": map[string]any{"timeout": 20}}}, 400, "IPsecSiteConnectionDpdIntervalValueError"},
		{"psk in a member's other project", "GET", "ipsec-site-connections/2f1ac0cb-64c1-4bb1-9a5a-1b4f5e0d9e11", nil, 404, "IPsecSiteConnectionNotFound"},
		{"endpoints are read-only", "PUT", "endpoint-groups/" + peer["id"].(string),
			map[string]any{"endpoint_group": map[string]any{"endpoints": []string{"172.18.0.0/24"}}}, 400, "HTTPBadRequest"},
		{"policy in use", "DELETE", "ikepolicies/" + ike["id"].(string), nil, 409, "IKEPolicyInUse"},
		{"policy in use updated", "PUT", "ipsecpolicies/" + ipsec["id"].(string), ipsecBody("pfs", "group14"), 409, "IPsecPolicyInUse"},
		{"group in use", "DELETE", "endpoint-groups/" + peer["id"].(string), nil, 400, "EndpointGroupInUse"},
		{"service in use", "DELETE", "vpnservices/" + svc["id"].(string), nil, 409, "VPNServiceInUse"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rev := s.revision()
			var out map[string]any
			checkVPNErr(t, s, tc.method, "/v2.0/vpn/"+tc.path, tc.body, tc.code, tc.typ, &out)
			if after := s.revision(); after != rev {
				t.Fatalf("rejected request moved the revision %d -> %d", rev, after)
			}
			data, _ := json.Marshal(out)
			noSecret(t, "error", string(data))
		})
	}
	// Another project sees none of it.
	member := map[string]string{"X-Project-Id": "other-project", "X-Roles": "member"}
	for _, c := range []string{"ikepolicies", "ipsecpolicies", "vpnservices", "endpoint_groups", "ipsec_site_connections"} {
		path := "/v2.0/vpn/" + strings.ReplaceAll(c, "_", "-")
		if got := s.list(path, member, c); len(got) != 0 {
			t.Errorf("%s visible to another project: %v", c, got)
		}
	}
	var out map[string]any
	if code := s.do("GET", "/v2.0/vpn/ipsec-site-connections/"+good["id"].(string), member, nil, &out); code != 404 {
		t.Errorf("another project's connection: %d %v", code, out)
	}

	// The gateway's agent gets every VPN table, the PSK included, from
	// the admin-only watch; nobody else does.
	var snap struct {
		Objects []struct {
			Table  string         `json:"table"`
			ID     string         `json:"id"`
			Object map[string]any `json:"object"`
		} `json:"objects"`
	}
	tables := "vpn_ikepolicies,vpn_ipsecpolicies,vpn_services,vpn_endpoint_groups,vpn_site_connections"
	if code := s.do("GET", "/v1/watch/snapshot?tables="+tables, nil, nil, &snap); code != 200 {
		t.Fatalf("watch snapshot: %d", code)
	}
	seen := map[string]int{}
	for _, o := range snap.Objects {
		seen[o.Table]++
		if o.ID == good["id"] && o.Object["PSK"] != vpnSecret {
			t.Errorf("the watch lacks the PSK the agent needs: %v", o.Object)
		}
	}
	for _, tb := range strings.Split(tables, ",") {
		if seen[tb] == 0 {
			t.Errorf("watch snapshot has no %s: %v", tb, seen)
		}
	}
	if code := s.do("GET", "/v1/watch/snapshot?tables=vpn_site_connections", member, nil, &out); code != 403 {
		t.Errorf("a member's watch: %d %v", code, out)
	}
}

// osc runs Debian's openstack CLI (python3-neutronclient's vpn plugin)
// against a server with noauth, as an admin, and decodes its -f json
// output into out (when not nil).
func osc(t *testing.T, s *apiServer, out any, args ...string) {
	t.Helper()
	if err := oscErr(t, s, out, args...); err != nil {
		t.Fatal(err)
	}
}

func oscErr(t *testing.T, s *apiServer, out any, args ...string) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}
	stdout, stderr, err := openstackCLI(ctx, env, append([]string{"--os-auth-type", "none", "--os-endpoint", s.base}, args...)...)
	if err != nil {
		return fmt.Errorf("openstack %s: %w: %s", strings.Join(args, " "), err, stderr)
	}
	if out != nil {
		if err := json.Unmarshal([]byte(stdout), out); err != nil {
			return fmt.Errorf("openstack %s: decode %q: %w", strings.Join(args, " "), stdout, err)
		}
	}
	return nil
}

// TestVPNaaSOpenstackCLI drives the lifecycle with `openstack vpn ...`
// through a follower of a 3-server cluster.
func TestVPNaaSOpenstackCLI(t *testing.T) {
	if _, err := exec.LookPath("openstack"); err != nil {
		t.Skip("no openstack CLI on this machine")
	}
	servers := newAPICluster(t, 3, nil)
	s := servers[1]
	site := newVPNSite(servers[0], "10.1.0.0/24")
	var obj map[string]any
	osc(t, s, &obj, "vpn", "ike", "policy", "create", "ike1", "--ike-version", "v2", "--encryption-algorithm", "aes-256",
		"--auth-algorithm", "sha256", "--pfs", "group14", "-f", "json")
	if obj["ike_version"] != "v2" && obj["IKE Version"] != "v2" {
		t.Fatalf("ike policy: %v", obj)
	}
	osc(t, s, nil, "vpn", "ipsec", "policy", "create", "ipsec1", "--pfs", "group14", "--encryption-algorithm", "aes-128", "-f", "json")
	osc(t, s, &obj, "vpn", "service", "create", "vpn1", "--router", site.router, "-f", "json")
	osc(t, s, nil, "vpn", "endpoint", "group", "create", "local1", "--type", "subnet", "--value", site.subnet, "-f", "json")
	osc(t, s, nil, "vpn", "endpoint", "group", "create", "peer1", "--type", "cidr", "--value", "172.16.0.0/24", "-f", "json")
	osc(t, s, &obj, "vpn", "ipsec", "site", "connection", "create", "conn1", "--vpnservice", "vpn1", "--ikepolicy", "ike1",
		"--ipsecpolicy", "ipsec1", "--peer-address", "198.51.100.7", "--peer-id", "198.51.100.7", "--psk", vpnSecret,
		"--local-endpoint-group", "local1", "--peer-endpoint-group", "peer1", "-f", "json")
	out, _ := json.Marshal(obj)
	if strings.Contains(string(out), vpnSecret) {
		t.Fatalf("create shows the PSK: %s", out)
	}
	osc(t, s, &obj, "vpn", "ipsec", "site", "connection", "show", "conn1", "-f", "json")
	out, _ = json.Marshal(obj)
	if strings.Contains(string(out), vpnSecret) || !strings.Contains(string(out), "PENDING_CREATE") {
		t.Fatalf("show: %s", out)
	}
	osc(t, s, nil, "vpn", "ipsec", "site", "connection", "set", "conn1", "--mtu", "1400", "--dpd", "action=restart,interval=5,timeout=20")
	osc(t, s, &obj, "vpn", "ipsec", "site", "connection", "show", "conn1", "-f", "json")
	if fmt.Sprint(obj["mtu"], obj["MTU"]) == "<nil> <nil>" || (obj["mtu"] != float64(1400) && obj["MTU"] != float64(1400)) {
		t.Fatalf("after set: %v", obj)
	}
	var list []map[string]any
	osc(t, s, &list, "vpn", "ipsec", "site", "connection", "list", "-f", "json")
	if len(list) != 1 {
		t.Fatalf("list: %v", list)
	}
	// A policy in use cannot go.
	if err := oscErr(t, s, nil, "vpn", "ike", "policy", "delete", "ike1"); err == nil {
		t.Fatal("deleting an IKE policy in use succeeded")
	}
	for _, args := range [][]string{
		{"vpn", "ipsec", "site", "connection", "delete", "conn1"},
		{"vpn", "endpoint", "group", "delete", "local1", "peer1"},
		{"vpn", "service", "delete", "vpn1"},
		{"vpn", "ike", "policy", "delete", "ike1"},
		{"vpn", "ipsec", "policy", "delete", "ipsec1"},
	} {
		osc(t, s, nil, args...)
	}
	for _, c := range []string{"ikepolicies", "ipsecpolicies", "vpnservices", "endpoint_groups", "ipsec_site_connections"} {
		if got := s.list("/v2.0/vpn/"+strings.ReplaceAll(c, "_", "-"), nil, c); len(got) != 0 {
			t.Errorf("%s left: %v", c, got)
		}
	}
}

// TestVPNaaSReplay sends every kind of VPNaaS write twice with one
// Idempotency-Key: the repeat gets the first answer and changes nothing.
func TestVPNaaSReplay(t *testing.T) {
	s, be := newLocalAPI(t)
	be.must(t, fsm.CmdChassisUpsert, fsm.ChassisUpsertRequest{Chassis: []*fsm.Chassis{testGatewayChassis("gw1", true)}})
	ext := s.create("networks", "network", map[string]any{"name": "ext", "router:external": true, "provider:network_type": "flat",
		"provider:physical_network": "physnet1"}, nil)
	s.create("subnets", "subnet", map[string]any{"ip_version": 4, "network_id": ext["id"], "cidr": "203.0.113.0/24"}, nil)
	n := s.create("networks", "network", map[string]any{"name": "n"}, nil)
	sub := s.create("subnets", "subnet", map[string]any{"ip_version": 4, "network_id": n["id"], "cidr": "10.1.0.0/24"}, nil)
	r := s.create("routers", "router", map[string]any{"external_gateway_info": map[string]any{"network_id": ext["id"]}}, nil)
	s.put("/v2.0/routers/"+r["id"].(string)+"/add_router_interface", nil, map[string]any{"subnet_id": sub["id"]})
	ids := map[string]string{"router": r["id"].(string), "subnet": sub["id"].(string)}
	steps := []struct {
		name, method, path string
		body               func() any
		status             int
		save               string
	}{
		{"ike create", "POST", "ikepolicies", func() any { return map[string]any{"ikepolicy": map[string]any{"name": "i"}} }, 201, "ike"},
		{"ike update", "PUT", "ikepolicies/{ike}", func() any { return map[string]any{"ikepolicy": map[string]any{"pfs": "group14"}} }, 200, ""},
		{"ike tag", "PUT", "ikepolicies/{ike}/tags/red", nil, 201, ""},
		{"ipsec create", "POST", "ipsecpolicies", func() any { return map[string]any{"ipsecpolicy": map[string]any{"name": "p"}} }, 201, "ipsec"},
		{"service create", "POST", "vpnservices", func() any { return map[string]any{"vpnservice": map[string]any{"router_id": ids["router"]}} }, 201, "svc"},
		{"service update", "PUT", "vpnservices/{svc}", func() any { return map[string]any{"vpnservice": map[string]any{"name": "v"}} }, 200, ""},
		{"local group create", "POST", "endpoint-groups", func() any {
			return map[string]any{"endpoint_group": map[string]any{"type": "subnet", "endpoints": []string{ids["subnet"]}}}
		}, 201, "local"},
		{"peer group create", "POST", "endpoint-groups", func() any {
			return map[string]any{"endpoint_group": map[string]any{"type": "cidr", "endpoints": []string{"172.16.0.0/24"}}}
		}, 201, "peer"},
		{"connection create", "POST", "ipsec-site-connections", func() any {
			return map[string]any{"ipsec_site_connection": map[string]any{"vpnservice_id": ids["svc"], "ikepolicy_id": ids["ike"],
				"ipsecpolicy_id": ids["ipsec"], "peer_address": "198.51.100.7", "peer_id": "198.51.100.7", "psk": vpnSecret,
				"local_ep_group_id": ids["local"], "peer_ep_group_id": ids["peer"]}}
		}, 201, "conn"},
		{"connection update", "PUT", "ipsec-site-connections/{conn}", func() any {
			return map[string]any{"ipsec_site_connection": map[string]any{"mtu": 1400}}
		}, 200, ""},
		{"agent status", "PUT", "/v1/vpn/agent-status", func() any {
			return map[string]any{"chassis": "gw1", "connections": map[string]any{ids["conn"]: "ACTIVE"}}
		}, 200, ""},
		{"connection delete", "DELETE", "ipsec-site-connections/{conn}", nil, 204, ""},
		{"group delete", "DELETE", "endpoint-groups/{peer}", nil, 204, ""},
		{"service delete", "DELETE", "vpnservices/{svc}", nil, 204, ""},
		{"ike delete", "DELETE", "ikepolicies/{ike}", nil, 204, ""},
		{"ipsec delete", "DELETE", "ipsecpolicies/{ipsec}", nil, 204, ""},
	}
	for i, st := range steps {
		path := st.path
		if !strings.HasPrefix(path, "/") {
			path = "/v2.0/vpn/" + path
		}
		for k, v := range ids {
			path = strings.ReplaceAll(path, "{"+k+"}", v)
		}
		var body any
		if st.body != nil {
			body = st.body()
		}
		hdr := map[string]string{"Idempotency-Key": fmt.Sprintf("vpn-key-%d", i)}
		var first, again map[string]any
		code, h1 := s.doRaw(st.method, path, hdr, body, &first)
		if code != st.status || h1.Get(northbound.HeaderReplayed) != "" {
			t.Fatalf("%s: first answer %d %v, want %d", st.name, code, first, st.status)
		}
		rev := be.f.State().Read().Revision()
		code2, h2 := s.doRaw(st.method, path, hdr, body, &again)
		if code2 != code || h2.Get(northbound.HeaderReplayed) != "true" {
			t.Fatalf("%s: repeat answered %d %v (replayed %q), want %d", st.name, code2, again, h2.Get(northbound.HeaderReplayed), code)
		}
		if !reflect.DeepEqual(normalize(first), normalize(again)) {
			t.Fatalf("%s: repeat answer differs:\nfirst %v\nagain %v", st.name, first, again)
		}
		if now := be.f.State().Read().Revision(); now != rev {
			t.Fatalf("%s: the repeat changed the state (revision %d -> %d)", st.name, rev, now)
		}
		if st.save != "" {
			ids[st.save] = idOf(first)
		}
		if st.name == "agent status" {
			if c := be.f.State().Read().IPsecSiteConnection(ids["conn"]); c.Status != fsm.VPNStatusActive {
				t.Fatalf("status not applied: %s", c.Status)
			}
		}
	}
}
