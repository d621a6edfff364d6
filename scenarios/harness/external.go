package harness

import (
	"encoding/json"
	"net/http"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/layer3/floatingips"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/layer3/routers"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/subnets"
)

// The way out: provider networks, routers with a gateway, floating IPs.

// ExtNet creates an external provider network with one subnet (no DHCP,
// gateway gw, the upstream router) and returns their ids.
func (e *Env) ExtNet(nc *gophercloud.ServiceClient, name, typ, physnet string, seg int, cidr, gw string) (string, string) {
	e.TB.Helper()
	ctx, cancel := e.Ctx()
	defer cancel()
	body := map[string]any{"name": name, "router:external": true,
		"provider:network_type": typ, "provider:physical_network": physnet}
	if seg != 0 {
		body["provider:segmentation_id"] = seg
	}
	res := e.MustCall(http.StatusCreated, http.MethodPost, e.D.Endpoint()+"/v2.0/networks", nil, map[string]any{"network": body})
	var created struct {
		Network struct {
			ID string `json:"id"`
		} `json:"network"`
	}
	if err := json.Unmarshal(res.Body, &created); err != nil {
		e.TB.Fatalf("create external network %s: %v", name, err)
	}
	n := created.Network
	no := false
	s, err := subnets.Create(ctx, nc, subnets.CreateOpts{NetworkID: n.ID, CIDR: cidr, IPVersion: gophercloud.IPv4,
		GatewayIP: &gw, EnableDHCP: &no, Name: name + "-subnet"}).Extract()
	if err != nil {
		e.TB.Fatalf("create subnet %s on %s: %v", cidr, name, err)
	}
	return n.ID, s.ID
}

// GatewayRouter creates a router with its gateway on extNet (SNAT on) and
// an interface on subnet, and returns it and its gateway address.
func (e *Env) GatewayRouter(nc *gophercloud.ServiceClient, name, extNet, subnet string) (*routers.Router, string) {
	e.TB.Helper()
	ctx, cancel := e.Ctx()
	defer cancel()
	yes := true
	r, err := routers.Create(ctx, nc, routers.CreateOpts{Name: name,
		GatewayInfo: &routers.GatewayInfo{NetworkID: extNet, EnableSNAT: &yes}}).Extract()
	if err != nil {
		e.TB.Fatalf("create router %s: %v", name, err)
	}
	if len(r.GatewayInfo.ExternalFixedIPs) == 0 {
		e.TB.Fatalf("router %s: no external fixed IP in %+v", name, r.GatewayInfo)
	}
	if _, err := routers.AddInterface(ctx, nc, r.ID, routers.AddInterfaceOpts{SubnetID: subnet}).Extract(); err != nil {
		e.TB.Fatalf("add_router_interface %s: %v", subnet, err)
	}
	return r, r.GatewayInfo.ExternalFixedIPs[0].IPAddress
}

// FloatingIP creates a floating IP on extNet for a port and returns it
// once every chassis realized it (X-Neutrino-Wait: realized): a check of
// its NAT must not see the moments while its flows reach the chassis.
func (e *Env) FloatingIP(nc *gophercloud.ServiceClient, extNet, portID string) *floatingips.FloatingIP {
	e.TB.Helper()
	ctx, cancel := e.Ctx()
	defer cancel()
	waited := *nc
	waited.MoreHeaders = map[string]string{"X-Neutrino-Wait": "realized"}
	for k, v := range nc.MoreHeaders {
		waited.MoreHeaders[k] = v
	}
	f, err := floatingips.Create(ctx, &waited, floatingips.CreateOpts{FloatingNetworkID: extNet, PortID: portID}).Extract()
	if err != nil {
		e.TB.Fatalf("create floating IP for %s: %v", portID, err)
	}
	e.TB.Logf("floating IP %s -> %s (port %s)", f.FloatingIP, f.FixedIP, portID)
	return f
}

// ActiveGateway reads the router's active gateway chassis and its
// priority list from its API body (extension attributes
// neutrino:active_gateway_chassis, neutrino:gateway_chassis).
func (e *Env) ActiveGateway(routerID string) (string, []string) {
	e.TB.Helper()
	res := e.MustCall(http.StatusOK, http.MethodGet, e.D.Endpoint()+"/v2.0/routers/"+routerID, nil, nil)
	var body struct {
		Router struct {
			Active string   `json:"neutrino:active_gateway_chassis"`
			List   []string `json:"neutrino:gateway_chassis"`
		} `json:"router"`
	}
	if err := json.Unmarshal(res.Body, &body); err != nil {
		e.TB.Fatalf("router %s: %v", routerID, err)
	}
	return body.Router.Active, body.Router.List
}

// FlowsMention checks, with one dump, that chassis has a Neutrino flow
// mentioning s (an address) and returns them.
func (e *Env) FlowsMention(chassis, s, when string) []Flow {
	e.TB.Helper()
	fs, err := e.Flows(chassis)
	if err != nil {
		e.TB.Fatal(err)
	}
	m := Mentioning(Ours(fs), s)
	if len(m) == 0 {
		e.TB.Errorf("%s: %s has no flow mentioning %s; its Neutrino flows:%s", when, chassis, s, FlowTexts(Ours(fs)))
	}
	return m
}

// NoFlowsOf checks, with one dump per chassis, that no chassis has a flow
// with the cookie owner of a port (Env.PortCookie, taken while it existed).
func (e *Env) NoFlowsOf(owner uint64, portID, when string) {
	e.TB.Helper()
	for _, ch := range e.Chassis {
		fs, err := e.Flows(ch)
		if err != nil {
			e.TB.Fatal(err)
		}
		if left := Owned(fs, owner); len(left) > 0 {
			e.TB.Errorf("%s: %s still has %d flows of port %s:%s", when, ch, len(left), portID, FlowTexts(left))
		}
	}
}
