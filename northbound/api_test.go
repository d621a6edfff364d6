package northbound_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"neutrino/cluster/clustertest"
	"neutrino/cmd/neutrino/agent"
	"neutrino/northbound"
)

var (
	freeBind   = clustertest.FreeBind
	eventually = clustertest.Eventually
)

// apiServer is one in-process server agent with a real single-node Raft.
type apiServer struct {
	t    testing.TB
	base string
	// bind is the server's gossip address (for agents to join).
	bind string
}

func newAPIServer(t testing.TB, tweak func(*northbound.Config)) *apiServer {
	t.Helper()
	return newAPICluster(t, 1, tweak)[0]
}

// newAPICluster starts n in-process server agents (real Raft over loopback
// TCP, real HTTP) and waits until they agree on a leader.
func newAPICluster(t testing.TB, n int, tweak func(*northbound.Config)) []*apiServer {
	t.Helper()
	servers, _ := newAPIClusterBinds(t, n, tweak)
	return servers
}

// newAPIClusterBinds is newAPICluster that also returns the servers' gossip
// addresses, for chassis agents to join.
func newAPIClusterBinds(t testing.TB, n int, tweak func(*northbound.Config)) ([]*apiServer, []string) {
	t.Helper()
	api := northbound.DefaultConfig()
	api.VNIRanges = []northbound.Range{{Min: 1000, Max: 1009}}
	api.VLANRanges = map[string][]northbound.Range{"physnet1": {{Min: 100, Max: 101}}}
	api.FlatNetworks = []string{"external"}
	if tweak != nil {
		tweak(&api)
	}
	binds := make([]string, n)
	for i := range binds {
		binds[i] = freeBind(t)
	}
	var servers []*apiServer
	for i := 0; i < n; i++ {
		a, err := agent.Start(agent.Config{
			Server: true, Node: fmt.Sprintf("api-%d", i+1), DataDir: t.TempDir(), Bind: binds[i],
			HTTP: "127.0.0.1:0", BootstrapExpect: n, Join: binds, API: api,
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_ = a.Shutdown(ctx)
		})
		servers = append(servers, &apiServer{t: t, base: "http://" + a.HTTPAddr(), bind: binds[i]})
	}
	for _, s := range servers {
		eventually(t, 30*time.Second, func() error {
			var st map[string]any
			if code := s.do("GET", "/v1/cluster", nil, nil, &st); code != 200 || st["leader"] == "" || st["epoch"] == float64(0) {
				return fmt.Errorf("no leader yet: %d %v", code, st)
			}
			return nil
		})
	}
	return servers, binds
}

// do sends a request; body may be a string (sent as is) or a value (JSON).
func (s *apiServer) do(method, path string, hdr map[string]string, body any, out any) int {
	s.t.Helper()
	code, _ := s.doRaw(method, path, hdr, body, out)
	return code
}

func (s *apiServer) doRaw(method, path string, hdr map[string]string, body any, out any) (int, http.Header) {
	s.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		data, err := json.Marshal(b)
		if err != nil {
			s.t.Fatal(err)
		}
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, s.base+path, rd)
	if err != nil {
		s.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		s.t.Fatal(err)
	}
	if out != nil && len(data) > 0 {
		if err := json.Unmarshal(data, out); err != nil {
			s.t.Fatalf("%s %s: decode %q: %v", method, path, data, err)
		}
	}
	return resp.StatusCode, resp.Header
}

// agreedRevision waits until every server reports the same revision and
// returns it. A follower applies an entry after the leader has answered
// the request that wrote it, so a revision read from one server right
// after writes may yet move.
func agreedRevision(t testing.TB, servers []*apiServer) uint64 {
	t.Helper()
	var rev uint64
	eventually(t, 30*time.Second, func() error {
		revs := make([]uint64, len(servers))
		for i, s := range servers {
			revs[i] = s.revision()
		}
		for _, r := range revs[1:] {
			if r != revs[0] {
				return fmt.Errorf("servers at revisions %v", revs)
			}
		}
		rev = revs[0]
		return nil
	})
	return rev
}

func (s *apiServer) revision() uint64 {
	s.t.Helper()
	var st struct {
		Revision uint64 `json:"revision"`
	}
	if code := s.do("GET", "/v1/cluster", nil, nil, &st); code != 200 {
		s.t.Fatalf("cluster status: %d", code)
	}
	return st.Revision
}

func (s *apiServer) createNetwork(body map[string]any, hdr map[string]string) map[string]any {
	s.t.Helper()
	var out struct {
		Network map[string]any `json:"network"`
	}
	if code := s.do("POST", "/v2.0/networks", hdr, map[string]any{"network": body}, &out); code != 201 {
		s.t.Fatalf("create network %v: status %d", body, code)
	}
	return out.Network
}

type neutronError struct {
	NeutronError struct {
		Type    string `json:"type"`
		Message string `json:"message"`
		Detail  string `json:"detail"`
	} `json:"NeutronError"`
}

func TestNetworkBadInput(t *testing.T) {
	s := newAPIServer(t, nil)
	existing := s.createNetwork(map[string]any{"name": "taken", "provider:network_type": "vxlan", "provider:segmentation_id": 1005}, nil)
	member := map[string]string{"X-Project-Id": "p-member", "X-Roles": "member"}
	cases := []struct {
		name     string
		method   string
		path     string
		hdr      map[string]string
		body     any
		wantCode int
		wantType string
	}{
		{"malformed JSON", "POST", "/v2.0/networks", nil, `{"network": {"name": "x"`, 400, "MalformedRequestBody"},
		{"body not an object", "POST", "/v2.0/networks", nil, `[1,2]`, 400, "MalformedRequestBody"},
		{"no resource key", "POST", "/v2.0/networks", nil, `{}`, 400, "HTTPBadRequest"},
		{"unknown attribute", "POST", "/v2.0/networks", nil, map[string]any{"network": map[string]any{"name": "x", "colour": "red"}}, 400, "HTTPBadRequest"},
		{"read-only attribute", "POST", "/v2.0/networks", nil, map[string]any{"network": map[string]any{"status": "DOWN"}}, 400, "HTTPBadRequest"},
		{"wrong type bool", "POST", "/v2.0/networks", nil, map[string]any{"network": map[string]any{"admin_state_up": "maybe"}}, 400, "HTTPBadRequest"},
		{"wrong type string", "POST", "/v2.0/networks", nil, map[string]any{"network": map[string]any{"name": 12}}, 400, "HTTPBadRequest"},
		{"wrong type int", "POST", "/v2.0/networks", nil, map[string]any{"network": map[string]any{"mtu": "big"}}, 400, "HTTPBadRequest"},
		{"name too long", "POST", "/v2.0/networks", nil, map[string]any{"network": map[string]any{"name": strings.Repeat("n", 256)}}, 400, "HTTPBadRequest"},
		{"vxlan id out of range", "POST", "/v2.0/networks", nil, map[string]any{"network": map[string]any{"provider:network_type": "vxlan", "provider:segmentation_id": 1 << 24}}, 400, "InvalidInput"},
		{"vlan id out of range", "POST", "/v2.0/networks", nil, map[string]any{"network": map[string]any{"provider:network_type": "vlan", "provider:physical_network": "physnet1", "provider:segmentation_id": 4095}}, 400, "InvalidInput"},
		{"vlan unknown physnet", "POST", "/v2.0/networks", nil, map[string]any{"network": map[string]any{"provider:network_type": "vlan", "provider:physical_network": "nope", "provider:segmentation_id": 10}}, 400, "InvalidInput"},
		{"flat with segment", "POST", "/v2.0/networks", nil, map[string]any{"network": map[string]any{"provider:network_type": "flat", "provider:physical_network": "external", "provider:segmentation_id": 10}}, 400, "InvalidInput"},
		{"unknown network type", "POST", "/v2.0/networks", nil, map[string]any{"network": map[string]any{"provider:network_type": "token-ring"}}, 400, "InvalidInput"},
		{"physnet on overlay", "POST", "/v2.0/networks", nil, map[string]any{"network": map[string]any{"provider:network_type": "vxlan", "provider:physical_network": "physnet1"}}, 400, "InvalidInput"},
		{"mtu too big", "POST", "/v2.0/networks", nil, map[string]any{"network": map[string]any{"mtu": 1451}}, 400, "InvalidInput"},
		{"duplicate VNI", "POST", "/v2.0/networks", nil, map[string]any{"network": map[string]any{"provider:network_type": "vxlan", "provider:segmentation_id": 1005}}, 409, "TunnelIdInUse"},
		{"duplicate VNI inside bulk", "POST", "/v2.0/networks", nil, map[string]any{"networks": []any{
			map[string]any{"name": "ok-1", "provider:network_type": "vxlan", "provider:segmentation_id": 2000},
			map[string]any{"name": "ok-2", "provider:network_type": "vxlan", "provider:segmentation_id": 2000}}}, 409, "TunnelIdInUse"},
		{"bulk with one bad", "POST", "/v2.0/networks", nil, map[string]any{"networks": []any{
			map[string]any{"name": "fine"}, map[string]any{"name": "bad", "mtu": 9000}}}, 400, "InvalidInput"},
		{"member sets provider", "POST", "/v2.0/networks", member, map[string]any{"network": map[string]any{"provider:network_type": "vxlan"}}, 403, "PolicyNotAuthorized"},
		{"member creates for other project", "POST", "/v2.0/networks", member, map[string]any{"network": map[string]any{"project_id": "someone-else"}}, 403, "PolicyNotAuthorized"},
		{"delete missing id", "DELETE", "/v2.0/networks/6f1e4a4c-0000-4000-8000-000000000000", nil, nil, 404, "NetworkNotFound"},
		{"show missing id", "GET", "/v2.0/networks/6f1e4a4c-0000-4000-8000-000000000000", nil, nil, 404, "NetworkNotFound"},
		{"update missing id", "PUT", "/v2.0/networks/6f1e4a4c-0000-4000-8000-000000000000", nil, map[string]any{"network": map[string]any{"name": "x"}}, 404, "NetworkNotFound"},
		{"update read-only", "PUT", "/v2.0/networks/" + existing["id"].(string), nil, map[string]any{"network": map[string]any{"provider:segmentation_id": 7}}, 400, "HTTPBadRequest"},
		{"update stale If-Match", "PUT", "/v2.0/networks/" + existing["id"].(string), map[string]string{"If-Match": "revision_number=99"}, map[string]any{"network": map[string]any{"name": "x"}}, 412, "RevisionNumberConstraintFailed"},
		{"member updates invisible network", "PUT", "/v2.0/networks/" + existing["id"].(string), member, map[string]any{"network": map[string]any{"name": "x"}}, 404, "NetworkNotFound"},
		{"unknown filter", "GET", "/v2.0/networks?colour=red", nil, nil, 400, "HTTPBadRequest"},
		{"bad limit", "GET", "/v2.0/networks?limit=-1", nil, nil, 400, "HTTPBadRequest"},
		{"bad sort_dir", "GET", "/v2.0/networks?sort_key=name&sort_dir=sideways", nil, nil, 400, "HTTPBadRequest"},
		{"tag too long", "PUT", "/v2.0/networks/" + existing["id"].(string) + "/tags/" + strings.Repeat("t", 61), nil, nil, 400, "HTTPBadRequest"},
		{"remove missing tag", "DELETE", "/v2.0/networks/" + existing["id"].(string) + "/tags/nope", nil, nil, 404, "TagNotFound"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := s.revision()
			var ne neutronError
			code := s.do(tc.method, tc.path, tc.hdr, tc.body, &ne)
			if code != tc.wantCode || ne.NeutronError.Type != tc.wantType || ne.NeutronError.Message == "" {
				t.Fatalf("got %d %+v, want %d %s", code, ne.NeutronError, tc.wantCode, tc.wantType)
			}
			if after := s.revision(); after != before {
				t.Fatalf("revision moved from %d to %d: a rejected request changed state", before, after)
			}
		})
	}
	var list struct {
		Networks []map[string]any `json:"networks"`
	}
	s.do("GET", "/v2.0/networks", nil, nil, &list)
	if len(list.Networks) != 1 {
		t.Fatalf("want only the one good network, got %d", len(list.Networks))
	}
}
