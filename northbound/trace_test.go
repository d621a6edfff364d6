package northbound_test

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"neutrino/fsm"
	"neutrino/northbound/trace"
)

// TestTraceAPI checks GET /v1/trace against state with bound ports (chassis
// records and bindings committed as the leader would): the allowed packet
// crosses the tunnel to the destination's chassis and names the rule that
// admits it; TCP 80 is dropped by the destination's group; a spoofed
// source by port security; a routed packet names the router and next hop;
// an unplugged port has no flows. Members see only their ports, ofproto
// needs admin, bad input is a NeutronError 400. Then /v1/topology and /ui/.
func TestTraceAPI(t *testing.T) {
	s, be := newLocalAPI(t)
	be.must(t, fsm.CmdChassisUpsert, fsm.ChassisUpsertRequest{Chassis: []*fsm.Chassis{
		testGatewayChassis("c1", false), testGatewayChassis("c2", false)}})
	n1 := s.create("networks", "network", map[string]any{"name": "n1"}, nil)["id"].(string)
	sub1 := s.create("subnets", "subnet", map[string]any{"network_id": n1, "cidr": "10.0.1.0/24", "ip_version": 4}, nil)["id"].(string)
	n2 := s.create("networks", "network", map[string]any{"name": "n2"}, nil)["id"].(string)
	sub2 := s.create("subnets", "subnet", map[string]any{"network_id": n2, "cidr": "10.0.2.0/24", "ip_version": 4}, nil)["id"].(string)
	web := s.create("security-groups", "security_group", map[string]any{"name": "web"}, nil)["id"].(string)
	ssh := s.create("security-group-rules", "security_group_rule", map[string]any{"security_group_id": web,
		"direction": "ingress", "ethertype": "IPv4", "protocol": "tcp", "port_range_min": 22, "port_range_max": 22}, nil)["id"].(string)
	cli := s.create("security-groups", "security_group", map[string]any{"name": "cli"}, nil)["id"].(string)
	port := func(net, name, group string) (string, string) {
		p := s.create("ports", "port", map[string]any{"network_id": net, "name": name, "security_groups": []string{group}}, nil)
		return p["id"].(string), p["fixed_ips"].([]any)[0].(map[string]any)["ip_address"].(string)
	}
	a, _ := port(n1, "a", cli)
	b, bIP := port(n1, "b", web)
	c, cIP := port(n2, "c", web)
	idle, _ := port(n1, "idle", cli)
	be.must(t, fsm.CmdPortBind, fsm.PortBindRequest{Bindings: []fsm.PortBinding{
		{PortID: a, Chassis: "c1", OFPort: 5}, {PortID: b, Chassis: "c2", OFPort: 7}, {PortID: c, Chassis: "c1", OFPort: 8}}})
	r := s.create("routers", "router", map[string]any{"name": "r"}, nil)["id"].(string)
	for _, sub := range []string{sub1, sub2} {
		if code := s.do("PUT", "/v2.0/routers/"+r+"/add_router_interface", nil, map[string]any{"subnet_id": sub}, nil); code != 200 {
			t.Fatalf("add_router_interface: %d", code)
		}
	}
	if code := s.do("PUT", "/v2.0/routers/"+r, nil, map[string]any{"router": map[string]any{
		"routes": []any{map[string]any{"destination": "192.168.5.0/24", "nexthop": cIP}}}}, nil); code != 200 {
		t.Fatalf("router routes: %d", code)
	}

	get := func(query string, hdr map[string]string) (int, trace.Result, string) {
		t.Helper()
		var out struct {
			Trace trace.Result `json:"trace"`
		}
		code := s.do("GET", "/v1/trace?"+query, hdr, nil, &out)
		var raw map[string]any
		s.do("GET", "/v1/trace?"+query, hdr, nil, &raw)
		var b strings.Builder
		for _, st := range out.Trace.Steps {
			b.WriteString(st.Stage + "/" + st.Verdict + "/" + st.Chassis + "/" + st.Object + ": " + st.Detail + "\n")
		}
		if ne, ok := raw["NeutronError"]; ok {
			b.WriteString("NeutronError " + strings.TrimSpace(strings.ReplaceAll(strings.ReplaceAll(toString(ne), "\n", " "), "  ", " ")))
		}
		return code, out.Trace, b.String()
	}
	for _, tc := range []struct {
		what, query, verdict string
		want                 []string
	}{
		{"allowed", "port=" + a + "&to=" + bIP + ":tcp/22", trace.Delivered,
			[]string{"tunnel/pass/c1/chassis c2", "security groups (ingress)/pass/c2/security_group_rule " + ssh, "output/pass/c2/port " + b}},
		{"security group", "port=" + a + "&to=" + bIP + ":tcp/80", trace.Dropped,
			[]string{"security groups (ingress)/drop/c2/security_group " + web + ": no ingress rule of security group web"}},
		{"port security", "port=" + a + "&to=" + bIP + ":tcp/22&src=10.0.1.250", trace.Dropped,
			[]string{"port security/drop/c1/port " + a + ": spoofed source"}},
		{"routed", "port=" + a + "&to=" + cIP + ":tcp/22", trace.Delivered,
			[]string{"routing/pass/c1/router " + r, "next hop/pass/c1/port " + c, "L2 lookup/pass/c1/port " + c + ": port " + c + " is local (ofport 8)"}},
		{"extra route", "port=" + a + "&to=192.168.5.7:tcp/22", trace.Delivered,
			[]string{"routing/pass/c1/router " + r + ": router " + r + ": extra route 192.168.5.0/24 via " + cIP, "next hop/pass/c1/port " + c, "output/pass/c1/port " + c}},
		{"router address", "port=" + a + "&to=10.0.1.1", trace.Answered, []string{"routing/pass/c1/router " + r}},
		{"unplugged", "port=" + idle + "&to=" + bIP, trace.Dropped, []string{"classify/drop//port " + idle}},
	} {
		code, res, steps := get(tc.query, nil)
		if code != 200 || res.Verdict != tc.verdict {
			t.Errorf("%s: %d verdict %q, want %s:\n%s", tc.what, code, res.Verdict, tc.verdict, steps)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(steps, w) {
				t.Errorf("%s: no step %q in:\n%s", tc.what, w, steps)
			}
		}
	}
	// The routed packet's ofproto/trace flow goes to the router's MAC.
	if _, res, _ := get("port="+a+"&to="+cIP+":tcp/22", nil); len(res.OFProto) != 1 ||
		!strings.HasPrefix(res.OFProto[0].Flow, "in_port=5,tcp,") || res.OFProto[0].Chassis != "c1" {
		t.Errorf("routed: ofproto flows %+v", res.OFProto)
	}

	member := map[string]string{"X-Project-Id": "other", "X-Roles": "member"}
	for _, tc := range []struct {
		what, query string
		hdr         map[string]string
		code        int
	}{
		{"another project's port", "port=" + a + "&to=" + bIP, member, 404},
		{"no such port", "port=nope&to=" + bIP, nil, 404},
		{"ofproto as member", "port=" + a + "&to=" + bIP + "&ofproto=true", member, 403},
		{"bad destination", "port=" + a + "&to=10.0.1.3:tcp", nil, 400},
		{"IPv6 destination", "port=" + a + "&to=fd00::1", nil, 400},
		{"bad ofproto", "port=" + a + "&to=" + bIP + "&ofproto=maybe", nil, 400},
		{"no port", "to=" + bIP, nil, 400},
	} {
		code, _, body := get(tc.query, tc.hdr)
		if code != tc.code || !strings.Contains(body, "NeutronError") {
			t.Errorf("%s: %d %s, want %d NeutronError", tc.what, code, body, tc.code)
		}
	}

	// The topology the page draws, and the page.
	var topo struct {
		Networks []struct{ Name string }
		Chassis  []struct {
			Name string
			Up   bool
		}
		Ports []struct{ ID, Chassis string }
	}
	if code := s.do("GET", "/v1/topology", nil, nil, &topo); code != 200 || len(topo.Networks) != 2 || len(topo.Chassis) != 2 {
		t.Errorf("GET /v1/topology: %d %+v", code, topo)
	}
	bound := 0
	for _, p := range topo.Ports {
		if p.ID == a && p.Chassis == "c1" || p.ID == b && p.Chassis == "c2" {
			bound++
		}
	}
	if bound != 2 {
		t.Errorf("GET /v1/topology: ports %+v, want a on c1 and b on c2", topo.Ports)
	}
	var ne map[string]any
	if code := s.do("GET", "/v1/topology", member, nil, &ne); code != 403 || ne["NeutronError"] == nil {
		t.Errorf("GET /v1/topology as a member: %d %v, want 403", code, ne)
	}
	for path, want := range map[string]string{"/ui/": "<title>Neutrino topology</title>", "/ui/app.js": "/v1/topology"} {
		resp, err := http.Get(s.base + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(body), want) {
			t.Errorf("GET %s: %d, want %q in %.200s", path, resp.StatusCode, want, body)
		}
	}
}

func toString(v any) string {
	if m, ok := v.(map[string]any); ok {
		var b strings.Builder
		for k, x := range m {
			b.WriteString(k + "=" + strings.TrimSpace(strings.ReplaceAll(fmtAny(x), "\n", " ")) + " ")
		}
		return b.String()
	}
	return fmtAny(v)
}

func fmtAny(v any) string {
	s, _ := v.(string)
	return s
}

// BenchmarkTopology measures GET /v1/topology, which every open topology
// page polls each second, with 10,000 ports in the state.
func BenchmarkTopology(b *testing.B) {
	s := newAPIServer(b, nil)
	nid := portBenchNetwork(s, "big", "10.0.0.0/16")
	for i := 0; i < 10; i++ {
		ports := make([]any, 1000)
		for j := range ports {
			ports[j] = map[string]any{"network_id": nid}
		}
		if code := s.do("POST", "/v2.0/ports", nil, map[string]any{"ports": ports}, nil); code != 201 {
			b.Fatalf("bulk create: %d", code)
		}
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		var out struct {
			Ports []struct{ ID string } `json:"ports"`
		}
		if code := s.do("GET", "/v1/topology", nil, nil, &out); code != 200 || len(out.Ports) < 10000 {
			b.Fatalf("topology: %d, %d ports", code, len(out.Ports))
		}
	}
}

// BenchmarkTrace measures GET /v1/trace end to end through the API (an
// unplugged port: the request, auth, view and JSON, not a long path).
func BenchmarkTrace(b *testing.B) {
	s := newAPIServer(b, nil)
	nid := portBenchNetwork(s, "t", "10.0.0.0/16")
	var out map[string]map[string]any
	if code := s.do("POST", "/v2.0/ports", nil, map[string]any{"port": map[string]any{"network_id": nid}}, &out); code != 201 {
		b.Fatalf("port: %d", code)
	}
	pid := out["port"]["id"].(string)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		var res struct {
			Trace trace.Result `json:"trace"`
		}
		if code := s.do("GET", "/v1/trace?port="+pid+"&to=10.0.9.9:tcp/22", nil, nil, &res); code != 200 || res.Trace.Verdict == "" {
			b.Fatalf("trace: %d %+v", code, res.Trace)
		}
	}
}
