package northbound

import (
	"embed"
	"io/fs"
	"net/http"
	"slices"
)

// uiFiles is the topology page: plain HTML and JavaScript, no build step.
//
//go:embed ui
var uiFiles embed.FS

// uiRoutes serves the topology page (/ui/, static, the same on every
// agent) and the data it polls (GET /v1/topology, through the API's front
// door: the API's auth, admin only since it shows chassis, a leader read).
func (s *Server) uiRoutes() {
	sub, _ := fs.Sub(uiFiles, "ui")
	s.mux.Handle("GET /ui/", http.StripPrefix("/ui/", http.FileServer(http.FS(sub))))
	s.mux.Handle("GET /ui", http.RedirectHandler("/ui/", http.StatusMovedPermanently))
	s.neutron("GET /v1/topology", s.topology)
}

// Topology is what the page draws.
type Topology struct {
	Revision uint64        `json:"revision"`
	Networks []TopoNetwork `json:"networks"`
	Routers  []TopoRouter  `json:"routers"`
	Ports    []TopoPort    `json:"ports"`
	Chassis  []TopoChassis `json:"chassis"`
}

// TopoNetwork is a network with its subnets' CIDRs.
type TopoNetwork struct {
	ID       string   `json:"id"`
	Name     string   `json:"name"`
	External bool     `json:"external"`
	CIDRs    []string `json:"cidrs"`
}

// TopoRouter is a router, the networks of its interfaces and its gateway.
type TopoRouter struct {
	ID             string   `json:"id"`
	Name           string   `json:"name"`
	Networks       []string `json:"networks"`
	GatewayNetwork string   `json:"gateway_network,omitempty"`
	// ActiveGateway is the chassis its gateway port is bound to.
	ActiveGateway  string   `json:"active_gateway,omitempty"`
	GatewayChassis []string `json:"gateway_chassis"`
}

// TopoPort is a port and where it is plugged.
type TopoPort struct {
	ID          string   `json:"id"`
	Name        string   `json:"name"`
	NetworkID   string   `json:"network_id"`
	Chassis     string   `json:"chassis,omitempty"`
	DeviceOwner string   `json:"device_owner"`
	IPs         []string `json:"ips"`
	Status      string   `json:"status"`
}

// TopoChassis is a chassis and whether it is up.
type TopoChassis struct {
	Name     string   `json:"name"`
	Up       bool     `json:"up"`
	Roles    []string `json:"roles"`
	TunnelIP string   `json:"tunnel_ip"`
	Zone     string   `json:"availability_zone"`
	LastSeen string   `json:"last_seen"`
}

func (s *Server) topology(w http.ResponseWriter, r *http.Request) error {
	if !identityFrom(r.Context()).Admin {
		return forbidden("rule:get_topology is disallowed by policy: the topology shows chassis, which needs the admin role")
	}
	v := s.view(w)
	t := Topology{Revision: v.Revision(), Networks: []TopoNetwork{}, Routers: []TopoRouter{}, Ports: []TopoPort{}, Chassis: []TopoChassis{}}
	for _, n := range v.Networks() {
		tn := TopoNetwork{ID: n.ID, Name: n.Name, External: n.External, CIDRs: []string{}}
		for _, sub := range v.SubnetsOfNetwork(n.ID) {
			tn.CIDRs = append(tn.CIDRs, sub.CIDR)
		}
		t.Networks = append(t.Networks, tn)
	}
	for _, rt := range v.Routers() {
		tr := TopoRouter{ID: rt.ID, Name: rt.Name, Networks: []string{}, ActiveGateway: v.ActiveGatewayChassis(rt.ID),
			GatewayChassis: append([]string{}, rt.GatewayChassis...)}
		for _, p := range v.RouterInterfaces(rt.ID) {
			if !slices.Contains(tr.Networks, p.NetworkID) {
				tr.Networks = append(tr.Networks, p.NetworkID)
			}
		}
		if rt.Gateway != nil {
			tr.GatewayNetwork = rt.Gateway.NetworkID
		}
		t.Routers = append(t.Routers, tr)
	}
	for _, p := range v.Ports() {
		tp := TopoPort{ID: p.ID, Name: p.Name, NetworkID: p.NetworkID, Chassis: p.BindingHostID,
			DeviceOwner: p.DeviceOwner, IPs: []string{}, Status: p.Status}
		for _, ip := range p.FixedIPs {
			tp.IPs = append(tp.IPs, ip.IPAddress)
		}
		t.Ports = append(t.Ports, tp)
	}
	for _, c := range v.ChassisList() {
		t.Chassis = append(t.Chassis, TopoChassis{Name: c.Name, Up: c.Up, Roles: append([]string{}, c.Roles...),
			TunnelIP: c.TunnelIP, Zone: c.Zone(), LastSeen: c.LastSeen})
	}
	writeJSON(w, http.StatusOK, t)
	return nil
}
