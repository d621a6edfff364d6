package northbound

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/hashicorp/raft"

	"neutrino/fsm"
)

// fsmBackend applies commands straight to an FSM, as a one-server
// cluster's leader would: the fuzz targets run the whole request path
// (decode, validate, allocate, propose, apply, render) without Raft's I/O.
type fsmBackend struct {
	mu    sync.Mutex
	f     *fsm.FSM
	index uint64
}

func (b *fsmBackend) Apply(_ context.Context, cmd []byte) (*fsm.Result, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.index++
	return b.f.Apply(&raft.Log{Index: b.index, Data: cmd}).(*fsm.Result), nil
}
func (b *fsmBackend) IsLeader() bool                     { return true }
func (b *fsmBackend) LeaderHTTPAddr() string             { return "" }
func (b *fsmBackend) VerifyLeader(context.Context) error { return nil }
func (b *fsmBackend) WaitReady(context.Context) error    { return nil }

// fuzzAPI is a server on a fresh state with one network and one subnet,
// whose ids replace NET_ID and SUB_ID in fuzzed bodies.
type fuzzAPI struct {
	h            http.Handler
	netID, subID string
	requests     int
}

func newFuzzAPI(t testing.TB) *fuzzAPI {
	f := fsm.New(slog.New(slog.NewTextHandler(io.Discard, nil)))
	cfg := DefaultConfig()
	cfg.VNIRanges = []Range{{Min: 1000, Max: 1999}} // more than a state's requests: never exhausted (503)
	cfg.VLANRanges = map[string][]Range{"physnet1": {{Min: 100, Max: 199}}}
	cfg.FlatNetworks = []string{"external"}
	cfg.NoReplica = true // no background loops per server
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	a := &fuzzAPI{h: New(cfg, &fsmBackend{f: f}, f).Handler()}
	var net struct{ Network struct{ ID string } }
	a.must(t, "POST", "/v2.0/networks", `{"network": {"name": "n"}}`, &net)
	var sub struct{ Subnet struct{ ID string } }
	a.must(t, "POST", "/v2.0/subnets", `{"subnet": {"network_id": "`+net.Network.ID+`", "ip_version": 4, "cidr": "10.0.0.0/24"}}`, &sub)
	a.netID, a.subID = net.Network.ID, sub.Subnet.ID
	return a
}

func (a *fuzzAPI) do(method, path string, body []byte) *httptest.ResponseRecorder {
	r := httptest.NewRequest(method, path, bytes.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	w := httptest.NewRecorder()
	a.h.ServeHTTP(w, r)
	return w
}

func (a *fuzzAPI) must(t testing.TB, method, path, body string, out any) {
	t.Helper()
	w := a.do(method, path, []byte(body))
	if w.Code >= 300 {
		t.Fatalf("%s %s: %d %s", method, path, w.Code, w.Body)
	}
	if err := json.Unmarshal(w.Body.Bytes(), out); err != nil {
		t.Fatal(err)
	}
}

// fuzzRoutes are the writes the fuzz target sends bodies to; ID is
// replaced by the fixture's object of that collection.
var fuzzRoutes = []struct{ method, path string }{
	{"POST", "/v2.0/networks"},
	{"PUT", "/v2.0/networks/NET_ID"},
	{"POST", "/v2.0/subnets"},
	{"PUT", "/v2.0/subnets/SUB_ID"},
	{"POST", "/v2.0/ports"},
}

// FuzzNeutronWrite sends any body to the network, subnet and port
// create and update requests: each is answered, never with a 5xx, always
// with JSON, an error always in Neutron's format; a created object reads
// back. (The state is rebuilt every few hundred requests, so it neither
// fills up nor slows the fuzzer down.)
func FuzzNeutronWrite(f *testing.F) {
	seeds := []struct {
		route int
		body  string
	}{
		{0, `{"network": {"name": "a", "admin_state_up": true, "shared": false, "mtu": 1400}}`},
		{0, `{"networks": [{"name": "a"}, {"name": "b", "provider:network_type": "vlan", "provider:physical_network": "physnet1"}]}`},
		{0, `{"network": {"provider:network_type": "flat", "provider:physical_network": "external", "router:external": true}}`},
		{1, `{"network": {"name": "renamed", "description": "d", "port_security_enabled": false}}`},
		{2, `{"subnet": {"network_id": "NET_ID", "ip_version": 4, "cidr": "10.1.0.0/24", "gateway_ip": "10.1.0.1", "allocation_pools": [{"start": "10.1.0.10", "end": "10.1.0.20"}], "dns_nameservers": ["8.8.8.8"], "host_routes": [{"destination": "0.0.0.0/0", "nexthop": "10.1.0.2"}]}}`},
		{2, `{"subnet": {"network_id": "NET_ID", "ip_version": 6, "cidr": "fd00::/64", "ipv6_ra_mode": "slaac", "ipv6_address_mode": "slaac"}}`},
		{3, `{"subnet": {"name": "s", "enable_dhcp": false, "gateway_ip": null}}`},
		{4, `{"port": {"network_id": "NET_ID", "fixed_ips": [{"subnet_id": "SUB_ID", "ip_address": "10.0.0.7"}], "mac_address": "fa:16:3e:00:00:01", "allowed_address_pairs": [{"ip_address": "10.0.0.100/32"}]}}`},
		{4, `{"ports": [{"network_id": "NET_ID", "device_owner": "compute:nova", "binding:host_id": "hv1"}]}`},
		{4, `{"port": {"network_id": "NET_ID", "security_groups": [], "port_security_enabled": false, "tags": ["x"]}}`},
	}
	for _, s := range seeds {
		f.Add(uint8(s.route), []byte(s.body))
	}
	var a *fuzzAPI
	f.Fuzz(func(t *testing.T, route uint8, body []byte) {
		if a == nil || a.requests >= 300 {
			a = newFuzzAPI(t)
		}
		a.requests++
		rt := fuzzRoutes[int(route)%len(fuzzRoutes)]
		path := strings.NewReplacer("NET_ID", a.netID, "SUB_ID", a.subID).Replace(rt.path)
		body = bytes.ReplaceAll(bytes.ReplaceAll(body, []byte("NET_ID"), []byte(a.netID)), []byte("SUB_ID"), []byte(a.subID))
		w := a.do(rt.method, path, body)
		if w.Code >= 500 {
			t.Fatalf("%s %s %q: %d %s", rt.method, path, body, w.Code, w.Body)
		}
		var ans map[string]json.RawMessage
		if err := json.Unmarshal(w.Body.Bytes(), &ans); err != nil {
			t.Fatalf("%s %s %q: %d, not JSON: %q", rt.method, path, body, w.Code, w.Body)
		}
		if w.Code >= 400 {
			var e struct {
				NeutronError struct{ Type, Message string }
			}
			if json.Unmarshal(w.Body.Bytes(), &e) != nil || e.NeutronError.Type == "" || e.NeutronError.Message == "" {
				t.Fatalf("%s %s %q: %d without a NeutronError: %s", rt.method, path, body, w.Code, w.Body)
			}
			return
		}
		if rt.method != "POST" {
			return
		}
		coll := strings.TrimPrefix(rt.path, "/v2.0/")
		for k, raw := range ans {
			var ids []string
			if k == coll {
				var objs []struct{ ID string }
				if err := json.Unmarshal(raw, &objs); err != nil {
					t.Fatalf("%s: %v", k, err)
				}
				for _, o := range objs {
					ids = append(ids, o.ID)
				}
			} else {
				var o struct{ ID string }
				if err := json.Unmarshal(raw, &o); err != nil {
					t.Fatalf("%s: %v", k, err)
				}
				ids = append(ids, o.ID)
			}
			for _, id := range ids {
				if g := a.do("GET", fmt.Sprintf("/v2.0/%s/%s", coll, id), nil); g.Code != http.StatusOK {
					t.Fatalf("created %s %s reads back %d %s", coll, id, g.Code, g.Body)
				}
			}
		}
	})
}
