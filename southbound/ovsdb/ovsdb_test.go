package ovsdb_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"neutrino/southbound/ovsdb"
	"neutrino/southbound/ovsproc"
)

var instSeq atomic.Int32

// chassis is a real OVS instance with a connected client.
type chassis struct {
	inst *ovsproc.Instance
	c    *ovsdb.Client
}

func newChassis(tb testing.TB) *chassis {
	tb.Helper()
	if err := ovsproc.Available(); err != nil {
		tb.Skipf("skipping: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// Unique per test process: other test binaries run in parallel.
	name := fmt.Sprintf("tdb%d-%d", os.Getpid(), instSeq.Add(1))
	inst, err := ovsproc.Start(ctx, ovsproc.Options{Name: name})
	if err != nil {
		tb.Fatalf("start ovs: %v", err)
	}
	tb.Cleanup(func() {
		if err := inst.Stop(); err != nil {
			tb.Errorf("stop ovs: %v", err)
		}
	})
	c, err := ovsdb.Connect(ctx, inst.DBEndpoint(), ovsdb.Config{})
	if err != nil {
		tb.Fatalf("connect: %v", err)
	}
	tb.Cleanup(c.Close) // runs before Stop (cleanups are LIFO)
	return &chassis{inst: inst, c: c}
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// eventually polls cond until it returns nil or the deadline passes.
func eventually(t *testing.T, timeout time.Duration, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not true after %v: %v", timeout, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func vsctl(t *testing.T, ch *chassis, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := ch.inst.Vsctl(ctx, args...)
	if err != nil {
		t.Fatalf("ovs-vsctl %v: %v", args, err)
	}
	return strings.TrimSpace(out)
}

// volatileColumns are written by ovs-vswitchd on its own schedule, outside
// the transaction that acknowledges a configuration (counters, connection
// state, the Interface "status" group read from the netdev); none of them
// is something the controller converges.
var volatileColumns = map[string]bool{
	"statistics": true, "status": true, "rstp_statistics": true, "rstp_status": true,
	"bfd_status": true, "is_connected": true, "role": true, "link_resets": true,
	"admin_state": true, "link_state": true, "link_speed": true, "duplex": true,
	"mtu": true, "mac_in_use": true, "ifindex": true, "lacp_current": true,
}

// dump returns the whole database as canonical text (rows sorted within a
// table, volatile columns dropped), read by ovsdb-client, not by our cache.
func dump(t *testing.T, ch *chassis) string {
	t.Helper()
	out, err := exec.Command("ovsdb-client", "-f", "json", "dump", ch.inst.DBEndpoint(), "Open_vSwitch").Output()
	if err != nil {
		t.Fatalf("ovsdb-client dump: %v", err)
	}
	dec := json.NewDecoder(bytes.NewReader(out))
	var b strings.Builder
	for {
		var tbl struct {
			Caption  string              `json:"caption"`
			Headings []string            `json:"headings"`
			Data     [][]json.RawMessage `json:"data"`
		}
		if err := dec.Decode(&tbl); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("decode dump: %v", err)
		}
		var rows []string
		for _, r := range tbl.Data {
			var cols []string
			for n, h := range tbl.Headings {
				if !volatileColumns[h] {
					cols = append(cols, h+"="+string(r[n]))
				}
			}
			rows = append(rows, strings.Join(cols, " "))
		}
		slices.Sort(rows)
		fmt.Fprintf(&b, "%s\n  %s\n", tbl.Caption, strings.Join(rows, "\n  "))
	}
	return b.String()
}

var bridgeSpec = ovsdb.BridgeSpec{
	Name:         "br-int",
	DatapathType: "netdev",
	Controllers:  []string{"tcp:127.0.0.1:6653", "tcp:127.0.0.1:6654"},
}

func TestEnsureIntegrationBridgeIdempotent(t *testing.T) {
	ch := newChassis(t)
	ctx := testCtx(t)

	n, err := ch.c.EnsureIntegrationBridge(ctx, bridgeSpec)
	if err != nil {
		t.Fatal(err)
	}
	if n == 0 {
		t.Fatal("first ensure sent no operations")
	}
	// Let ovs-vswitchd finish writing what it owns (ofport, mac_in_use...).
	if err := ch.inst.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	before := dump(t, ch)
	writes := ch.c.WriteOps()

	n, err = ch.c.EnsureIntegrationBridge(ctx, bridgeSpec)
	if err != nil {
		t.Fatal(err)
	}
	if n != 0 || ch.c.WriteOps() != writes {
		t.Errorf("second ensure sent %d operations (total %d -> %d), want 0", n, writes, ch.c.WriteOps())
	}
	if after := dump(t, ch); after != before {
		t.Errorf("database changed by a no-op ensure:\nbefore:\n%s\nafter:\n%s", before, after)
	}

	if id, err := ch.c.SystemID(ctx); err != nil || id != ch.inst.Name() {
		t.Errorf("SystemID = %q, %v; want %q", id, err, ch.inst.Name())
	}
	// A fresh session must agree: the no-op is not an artefact of our cache.
	c2, err := ovsdb.Connect(ctx, ch.inst.DBEndpoint(), ovsdb.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	if n, err := c2.EnsureIntegrationBridge(ctx, bridgeSpec); err != nil || n != 0 {
		t.Errorf("ensure from a new session: %d ops, %v; want 0, nil", n, err)
	}

	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"get", "Bridge", "br-int", "fail_mode"}, "secure"},
		{[]string{"get", "Bridge", "br-int", "datapath_type"}, "netdev"},
		{[]string{"get", "Bridge", "br-int", "protocols"}, "[OpenFlow13]"},
		{[]string{"get", "Bridge", "br-int", "other_config:disable-in-band"}, `"true"`},
		{[]string{"get-controller", "br-int"}, "tcp:127.0.0.1:6653\ntcp:127.0.0.1:6654"},
		{[]string{"--columns=max_backoff,connection_mode", "--bare", "list", "Controller"},
			"1000\nout-of-band\n\n1000\nout-of-band"},
		{[]string{"list-ports", "br-int"}, ""},
		{[]string{"get", "Interface", "br-int", "type"}, "internal"},
	} {
		if got := vsctl(t, ch, c.args...); got != c.want {
			t.Errorf("%v = %q, want %q", c.args, got, c.want)
		}
	}
	// ovs-vswitchd accepted the bridge: its local port got the local ofport.
	eventually(t, 5*time.Second, func() error {
		if got := vsctl(t, ch, "get", "Interface", "br-int", "ofport"); got != "65534" {
			return fmt.Errorf("br-int ofport %q", got)
		}
		return nil
	})
}

func TestEnsureIntegrationBridgeConverges(t *testing.T) {
	ch := newChassis(t)
	ctx := testCtx(t)
	if _, err := ch.c.EnsureIntegrationBridge(ctx, bridgeSpec); err != nil {
		t.Fatal(err)
	}
	// Others' settings on the same bridge, and drift of ours.
	vsctl(t, ch, "add-port", "br-int", "other0", "--", "set", "Interface", "other0", "type=internal")
	vsctl(t, ch, "set", "Bridge", "br-int", "other_config:mine=theirs", "external_ids:owner=someone",
		"other_config:disable-in-band=false", "fail_mode=standalone")

	spec := bridgeSpec
	spec.Controllers = []string{"tcp:127.0.0.1:6654", "tcp:127.0.0.1:6655"}
	spec.ExternalIDs = map[string]string{"neutrino-chassis": "c1"}
	n, err := ch.c.EnsureIntegrationBridge(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	if n == 0 {
		t.Fatal("converging a changed bridge sent no operations")
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"get-controller", "br-int"}, "tcp:127.0.0.1:6654\ntcp:127.0.0.1:6655"},
		{[]string{"--columns=target", "--bare", "list", "Controller"}, ""}, // checked below
		{[]string{"get", "Bridge", "br-int", "fail_mode"}, "secure"},
		{[]string{"get", "Bridge", "br-int", "other_config:disable-in-band"}, `"true"`},
		{[]string{"get", "Bridge", "br-int", "other_config:mine"}, "theirs"},
		{[]string{"get", "Bridge", "br-int", "external_ids:owner"}, "someone"},
		{[]string{"get", "Bridge", "br-int", "external_ids:neutrino-chassis"}, "c1"},
		{[]string{"list-ports", "br-int"}, "other0"},
	} {
		got := vsctl(t, ch, c.args...)
		if c.args[0] == "--columns=target" {
			// The dropped controller's row is garbage-collected, not leaked.
			rows := strings.Fields(got)
			slices.Sort(rows)
			if !slices.Equal(rows, []string{"tcp:127.0.0.1:6654", "tcp:127.0.0.1:6655"}) {
				t.Errorf("Controller rows %q", rows)
			}
			continue
		}
		if strings.Trim(got, `"`) != strings.Trim(c.want, `"`) {
			t.Errorf("%v = %q, want %q", c.args, got, c.want)
		}
	}
	// A controller row changed behind our back is fixed in place.
	ctl := vsctl(t, ch, "--columns=_uuid", "--bare", "find", "Controller", `target="tcp:127.0.0.1:6654"`)
	vsctl(t, ch, "set", "Controller", ctl, "max_backoff=8000", "connection_mode=in-band")
	if n, err := ch.c.EnsureIntegrationBridge(ctx, spec); err != nil || n != 1 {
		t.Errorf("fixing one controller: %d ops, %v; want 1 op", n, err)
	}
	if got := vsctl(t, ch, "get", "Controller", ctl, "max_backoff", "connection_mode"); got != "1000\nout-of-band" {
		t.Errorf("controller after fix: %q", got)
	}
	if n, err := ch.c.EnsureIntegrationBridge(ctx, spec); err != nil || n != 0 {
		t.Errorf("converged bridge: %d ops, %v; want 0", n, err)
	}
}

func TestEnsureTunnels(t *testing.T) {
	ch := newChassis(t)
	ctx := testCtx(t)
	if _, err := ch.c.EnsureIntegrationBridge(ctx, bridgeSpec); err != nil {
		t.Fatal(err)
	}
	// Ports we did not create, one of them a tunnel: they must survive.
	vsctl(t, ch, "add-port", "br-int", "keep0", "--", "set", "Interface", "keep0", "type=internal")
	vsctl(t, ch, "add-port", "br-int", "foreign-vx", "--", "set", "Interface", "foreign-vx", "type=vxlan",
		"options:remote_ip=192.0.2.99")

	gw1, gw2 := ovsdb.GatewayTunnelPort("gw-1"), ovsdb.GatewayTunnelPort("gw-2")
	spec := ovsdb.TunnelSpec{
		Bridge:  "br-int",
		LocalIP: "192.0.2.1",
		Encaps:  []string{ovsdb.EncapVXLAN, ovsdb.EncapGRE, ovsdb.EncapGeneve},
		Remotes: []ovsdb.RemoteTunnel{
			{Chassis: "gw-1", IP: "192.0.2.11", Encap: ovsdb.EncapGeneve},
			{Chassis: "gw-2", IP: "192.0.2.12", Encap: ovsdb.EncapVXLAN},
		},
	}
	ports := func() []string {
		p := strings.Split(vsctl(t, ch, "list-ports", "br-int"), "\n")
		slices.Sort(p)
		return p
	}
	want := func(extra ...string) []string {
		p := append([]string{"foreign-vx", "keep0"}, extra...)
		slices.Sort(p)
		return p
	}

	if n, err := ch.c.EnsureTunnels(ctx, spec); err != nil || n == 0 {
		t.Fatalf("ensure tunnels: %d ops, %v", n, err)
	}
	if got, w := ports(), want("tun-vxlan", "tun-gre", "tun-geneve", gw1, gw2); !slices.Equal(got, w) {
		t.Fatalf("ports %v, want %v", got, w)
	}
	for _, c := range []struct{ iface, col, want string }{
		{"tun-vxlan", "type", "vxlan"},
		{"tun-gre", "type", "gre"},
		{"tun-geneve", "options", `{key=flow, local_ip="192.0.2.1", remote_ip=flow}`},
		{gw1, "type", "geneve"},
		{gw1, "options", `{key=flow, local_ip="192.0.2.1", remote_ip="192.0.2.11"}`},
		{gw1, "external_ids", `{neutrino-chassis=gw-1, neutrino-tunnel=gateway}`},
		{gw2, "type", "vxlan"},
	} {
		if got := vsctl(t, ch, "get", "Interface", c.iface, c.col); got != c.want {
			t.Errorf("%s %s = %q, want %q", c.iface, c.col, got, c.want)
		}
	}
	// ovs-vswitchd (userspace) accepted every tunnel: no error, an ofport.
	eventually(t, 5*time.Second, func() error {
		for _, p := range []string{"tun-vxlan", "tun-gre", "tun-geneve", gw1, gw2} {
			if got := vsctl(t, ch, "get", "Interface", p, "ofport"); got == "[]" || strings.HasPrefix(got, "-") {
				return fmt.Errorf("%s ofport %s, error %s", p, got, vsctl(t, ch, "get", "Interface", p, "error"))
			}
		}
		return nil
	})
	if n, err := ch.c.EnsureTunnels(ctx, spec); err != nil || n != 0 {
		t.Errorf("converged tunnels: %d ops, %v; want 0", n, err)
	}

	// gw-1 leaves, gw-2 moves and changes encapsulation, gw-3 joins.
	gw3 := ovsdb.GatewayTunnelPort("gw-3")
	spec.Remotes = []ovsdb.RemoteTunnel{
		{Chassis: "gw-2", IP: "192.0.2.22", Encap: ovsdb.EncapGRE},
		{Chassis: "gw-3", IP: "192.0.2.13", Encap: ovsdb.EncapVXLAN},
	}
	if _, err := ch.c.EnsureTunnels(ctx, spec); err != nil {
		t.Fatal(err)
	}
	if got, w := ports(), want("tun-vxlan", "tun-gre", "tun-geneve", gw2, gw3); !slices.Equal(got, w) {
		t.Errorf("ports %v, want %v", got, w)
	}
	if got := vsctl(t, ch, "get", "Interface", gw2, "type", "options:remote_ip"); got != "gre\n\"192.0.2.22\"" {
		t.Errorf("gw-2 tunnel after move: %q", got)
	}
	// Drifted options on our port are put back.
	vsctl(t, ch, "set", "Interface", "tun-vxlan", "options:key=5")
	if n, err := ch.c.EnsureTunnels(ctx, spec); err != nil || n != 1 {
		t.Errorf("fixing tun-vxlan: %d ops, %v; want 1", n, err)
	}

	// No gateways left, geneve dropped.
	spec.Remotes, spec.Encaps = nil, []string{ovsdb.EncapVXLAN, ovsdb.EncapGRE}
	if _, err := ch.c.EnsureTunnels(ctx, spec); err != nil {
		t.Fatal(err)
	}
	if got, w := ports(), want("tun-vxlan", "tun-gre"); !slices.Equal(got, w) {
		t.Errorf("ports %v, want %v", got, w)
	}
	// Deleted ports leave no orphan rows behind (garbage collection).
	if got := vsctl(t, ch, "--columns=name", "--bare", "find", "Interface", "type=geneve"); got != "" {
		t.Errorf("geneve interfaces left: %q", got)
	}
	if got, err := ch.c.TunnelPorts(ctx, "br-int"); err != nil || !slices.Equal(got, []string{"tun-gre", "tun-vxlan"}) {
		t.Errorf("TunnelPorts = %v, %v", got, err)
	}

	// A name clash with a port that is not ours is an error, not a takeover.
	vsctl(t, ch, "add-port", "br-int", "tun-geneve", "--", "set", "Interface", "tun-geneve", "type=internal")
	spec.Encaps = append(spec.Encaps, ovsdb.EncapGeneve)
	if _, err := ch.c.EnsureTunnels(ctx, spec); err == nil {
		t.Error("ensure took over a foreign port named tun-geneve")
	}
	if got := vsctl(t, ch, "get", "Interface", "tun-geneve", "type"); got != "internal" {
		t.Errorf("foreign tun-geneve changed to %q", got)
	}
}

// recorder collects binding events.
type recorder struct {
	mu     sync.Mutex
	events []ovsdb.BindingEvent
}

func (r *recorder) add(e ovsdb.BindingEvent) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, e)
}

func (r *recorder) all() []ovsdb.BindingEvent {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.events)
}

// await waits for an event matching kind and iface id.
func (r *recorder) await(t *testing.T, timeout time.Duration, kind ovsdb.BindingEventKind, id string) ovsdb.BindingEvent {
	t.Helper()
	var found ovsdb.BindingEvent
	eventually(t, timeout, func() error {
		for _, e := range r.all() {
			if e.Kind == kind && e.Binding.IfaceID == id {
				found = e
				return nil
			}
		}
		return fmt.Errorf("no %s event for %s in %+v", kind, id, r.all())
	})
	return found
}

func TestBindings(t *testing.T) {
	ch := newChassis(t)
	ctx := testCtx(t)
	if _, err := ch.c.EnsureIntegrationBridge(ctx, bridgeSpec); err != nil {
		t.Fatal(err)
	}
	// A binding on another bridge is not ours to report.
	vsctl(t, ch, "add-br", "br-other", "--", "set", "Bridge", "br-other", "datapath_type=netdev")

	rec := &recorder{}
	wctx, stop := context.WithCancel(ctx)
	defer stop()
	ch.c.WatchBindings(wctx, "br-int", rec.add)

	vm, err := ch.inst.PlugVM(ctx, ovsproc.VMSpec{Name: "vm1", Bridge: "br-int", MAC: "02:00:00:00:01:01",
		CIDR: "192.0.2.21/24", IfaceID: "neutron-port-1"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ch.inst.PlugVM(ctx, ovsproc.VMSpec{Name: "vm-noid", Bridge: "br-int"}); err != nil {
		t.Fatal(err)
	}
	if _, err := ch.inst.PlugVM(ctx, ovsproc.VMSpec{Name: "vm-other", Bridge: "br-other", IfaceID: "elsewhere"}); err != nil {
		t.Fatal(err)
	}
	e := rec.await(t, time.Second, ovsdb.BindingAdded, "neutron-port-1")
	ofport, err := vm.OFPort(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if e.Binding != (ovsdb.Binding{IfaceID: "neutron-port-1", InterfaceName: "vm1", OFPort: ofport}) {
		t.Errorf("binding %+v, want ofport %d", e.Binding, ofport)
	}
	list, err := ch.c.Bindings(ctx, "br-int")
	if err != nil || len(list) != 1 || list[0] != e.Binding {
		t.Errorf("Bindings = %+v, %v", list, err)
	}

	// The port id changes (a rebind): an update with the old binding.
	vsctl(t, ch, "set", "Interface", "vm1", "external_ids:iface-id=neutron-port-2")
	u := rec.await(t, time.Second, ovsdb.BindingUpdated, "neutron-port-2")
	if u.Old.IfaceID != "neutron-port-1" || u.Binding.OFPort != ofport {
		t.Errorf("update %+v", u)
	}

	start := time.Now()
	vsctl(t, ch, "--no-wait", "del-port", "br-int", "vm1")
	r := rec.await(t, time.Second, ovsdb.BindingRemoved, "neutron-port-2")
	t.Logf("removal reported after %v", time.Since(start))
	if r.Binding.InterfaceName != "vm1" {
		t.Errorf("removed %+v", r.Binding)
	}
	for _, e := range rec.all() {
		if e.Binding.IfaceID == "elsewhere" || e.Binding.InterfaceName == "vm-noid" {
			t.Errorf("unexpected event %+v", e)
		}
	}
	if n := len(rec.all()); n != 3 {
		t.Errorf("%d events, want 3: %+v", n, rec.all())
	}
}

func TestBindingLatency(t *testing.T) {
	ch := newChassis(t)
	ctx := testCtx(t)
	if _, err := ch.c.EnsureIntegrationBridge(ctx, bridgeSpec); err != nil {
		t.Fatal(err)
	}
	rec := &recorder{}
	ch.c.WatchBindings(ctx, "br-int", rec.add)
	// An internal port gets its ofport from ovs-vswitchd without any veth
	// plumbing, so this measures OVS + our watch, from the write on.
	start := time.Now()
	vsctl(t, ch, "--no-wait", "add-port", "br-int", "lat0", "--", "set", "Interface", "lat0", "type=internal",
		"external_ids:iface-id=lat-port")
	e := rec.await(t, time.Second, ovsdb.BindingAdded, "lat-port")
	t.Logf("binding reported %v after the write (ofport %d)", time.Since(start), e.Binding.OFPort)
	if e.Binding.OFPort <= 0 {
		t.Errorf("binding without ofport: %+v", e)
	}
}

func TestReconnectAfterServerRestart(t *testing.T) {
	ch := newChassis(t)
	ctx := testCtx(t)
	if _, err := ch.c.EnsureIntegrationBridge(ctx, bridgeSpec); err != nil {
		t.Fatal(err)
	}
	rec := &recorder{}
	ch.c.WatchBindings(ctx, "br-int", rec.add)
	if _, err := ch.inst.PlugVM(ctx, ovsproc.VMSpec{Name: "vm1", Bridge: "br-int", IfaceID: "p1"}); err != nil {
		t.Fatal(err)
	}
	rec.await(t, time.Second, ovsdb.BindingAdded, "p1")

	if err := ch.inst.StopDB(); err != nil {
		t.Fatal(err)
	}
	if err := ch.inst.StartDB(ctx); err != nil {
		t.Fatal(err)
	}

	// Writes through the same client work again once it has reconnected.
	spec := bridgeSpec
	spec.Controllers = []string{"tcp:127.0.0.1:6660"}
	wctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if _, err := ch.c.EnsureIntegrationBridge(wctx, spec); err != nil {
		t.Fatalf("ensure after restart: %v", err)
	}
	if got := vsctl(t, ch, "get-controller", "br-int"); got != "tcp:127.0.0.1:6660" {
		t.Errorf("controller after restart = %q", got)
	}
	// The rebuilt cache feeds the watch: a new port is reported...
	if _, err := ch.inst.PlugVM(ctx, ovsproc.VMSpec{Name: "vm2", Bridge: "br-int", IfaceID: "p2"}); err != nil {
		t.Fatal(err)
	}
	rec.await(t, 5*time.Second, ovsdb.BindingAdded, "p2")
	// ...and the rebuild itself did not report the old one gone and back.
	for _, e := range rec.all() {
		if e.Binding.IfaceID == "p1" && e.Kind != ovsdb.BindingAdded {
			t.Errorf("spurious event across the restart: %+v", e)
		}
	}
	if n, err := ch.c.EnsureIntegrationBridge(wctx, spec); err != nil || n != 0 {
		t.Errorf("converged after restart: %d ops, %v", n, err)
	}
}

func BenchmarkEnsureNoop(b *testing.B) {
	ch := newChassis(b)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	tun := ovsdb.TunnelSpec{
		Bridge: "br-int", LocalIP: "192.0.2.1",
		Encaps: []string{ovsdb.EncapVXLAN, ovsdb.EncapGRE, ovsdb.EncapGeneve},
	}
	for n := range 10 {
		tun.Remotes = append(tun.Remotes, ovsdb.RemoteTunnel{
			Chassis: fmt.Sprintf("gw-%d", n), IP: fmt.Sprintf("192.0.2.%d", 100+n), Encap: ovsdb.EncapGeneve})
	}
	if _, err := ch.c.EnsureIntegrationBridge(ctx, bridgeSpec); err != nil {
		b.Fatal(err)
	}
	if _, err := ch.c.EnsureTunnels(ctx, tun); err != nil {
		b.Fatal(err)
	}
	writes := ch.c.WriteOps()
	for b.Loop() {
		if _, err := ch.c.EnsureIntegrationBridge(ctx, bridgeSpec); err != nil {
			b.Fatal(err)
		}
		if _, err := ch.c.EnsureTunnels(ctx, tun); err != nil {
			b.Fatal(err)
		}
	}
	if w := ch.c.WriteOps(); w != writes {
		b.Fatalf("no-op convergence wrote %d operations", w-writes)
	}
}

func TestPhysnetPatchPortNames(t *testing.T) {
	for _, c := range []struct{ bridge, in, out string }{
		{"br-ex", "int-br-ex", "phy-br-ex"},
		{"br-provider", "int-br-provider", "phy-br-provider"},
	} {
		if got := ovsdb.PhysnetPatchPort(c.bridge); got != c.in {
			t.Errorf("PhysnetPatchPort(%q) = %q, want %q", c.bridge, got, c.in)
		}
		if got := ovsdb.PhysnetPeerPort(c.bridge); got != c.out {
			t.Errorf("PhysnetPeerPort(%q) = %q, want %q", c.bridge, got, c.out)
		}
	}
	long := ovsdb.PhysnetPatchPort("br-very-long-name")
	if len(long) != 15 || !strings.HasPrefix(long, "int-") || long == ovsdb.PhysnetPatchPort("br-very-long-nam2") {
		t.Errorf("long bridge name gives %q", long)
	}
	if p := ovsdb.PhysnetPeerPort("br-very-long-name"); len(p) != 15 || p[4:] != long[4:] {
		t.Errorf("peer of a long bridge name %q vs %q", p, long)
	}
}

func TestEnsurePhysnetPatches(t *testing.T) {
	ch := newChassis(t)
	ctx := testCtx(t)
	if _, err := ch.c.EnsureIntegrationBridge(ctx, bridgeSpec); err != nil {
		t.Fatal(err)
	}
	// The operator's physical bridges, with a NIC-like port each.
	for _, br := range []string{"br-ex", "br-phys2"} {
		vsctl(t, ch, "add-br", br, "--", "set", "Bridge", br, "datapath_type=netdev")
		vsctl(t, ch, "add-port", br, br+"-nic", "--", "set", "Interface", br+"-nic", "type=internal")
	}
	vsctl(t, ch, "add-port", "br-int", "keep0", "--", "set", "Interface", "keep0", "type=internal")

	ports := func(br string) []string {
		out := vsctl(t, ch, "list-ports", br)
		if out == "" {
			return nil
		}
		p := strings.Split(out, "\n")
		slices.Sort(p)
		return p
	}
	spec := ovsdb.PhysnetSpec{Bridge: "br-int", Mappings: map[string]string{
		"external": "br-ex", "phys2": "br-phys2", "ghost": "br-missing",
	}}
	n, skipped, err := ch.c.EnsurePhysnetPatches(ctx, spec)
	if err != nil || n == 0 {
		t.Fatalf("ensure: %d ops, %v", n, err)
	}
	if len(skipped) != 1 || skipped[0].Physnet != "ghost" || skipped[0].Bridge != "br-missing" {
		t.Errorf("skipped %v, want ghost -> br-missing", skipped)
	}
	if got, want := ports("br-int"), []string{"int-br-ex", "int-br-phys2", "keep0"}; !slices.Equal(got, want) {
		t.Errorf("br-int ports %v, want %v", got, want)
	}
	if got, want := ports("br-ex"), []string{"br-ex-nic", "phy-br-ex"}; !slices.Equal(got, want) {
		t.Errorf("br-ex ports %v, want %v", got, want)
	}
	for _, c := range []struct{ iface, col, want string }{
		{"int-br-ex", "type", "patch"},
		{"int-br-ex", "options", "{peer=phy-br-ex}"},
		{"phy-br-ex", "type", "patch"},
		{"phy-br-ex", "options", "{peer=int-br-ex}"},
		{"int-br-ex", "external_ids", "{neutrino-physnet=external}"},
		{"phy-br-phys2", "external_ids", "{neutrino-physnet=phys2}"},
	} {
		if got := vsctl(t, ch, "get", "Interface", c.iface, c.col); got != c.want {
			t.Errorf("%s %s = %q, want %q", c.iface, c.col, got, c.want)
		}
	}
	if got := vsctl(t, ch, "get", "Port", "int-br-ex", "external_ids"); got != "{neutrino-physnet=external}" {
		t.Errorf("port int-br-ex external_ids %q", got)
	}
	// ovs-vswitchd accepted the pairs: ofports, no error.
	eventually(t, 5*time.Second, func() error {
		for _, p := range []string{"int-br-ex", "phy-br-ex", "int-br-phys2", "phy-br-phys2"} {
			if got := vsctl(t, ch, "get", "Interface", p, "ofport"); got == "[]" || strings.HasPrefix(got, "-") {
				return fmt.Errorf("%s ofport %s, error %s", p, got, vsctl(t, ch, "get", "Interface", p, "error"))
			}
		}
		return nil
	})
	if err := ch.inst.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	writes := ch.c.WriteOps()
	if n, sk, err := ch.c.EnsurePhysnetPatches(ctx, spec); err != nil || n != 0 || len(sk) != 1 {
		t.Errorf("converged: %d ops, skipped %v, %v; want 0 ops", n, sk, err)
	}
	if w := ch.c.WriteOps(); w != writes {
		t.Errorf("no-op ensure wrote %d operations", w-writes)
	}
	if got, err := ch.c.PhysnetPorts(ctx, "br-int"); err != nil || !slices.Equal(got, []string{"int-br-ex", "int-br-phys2"}) {
		t.Errorf("PhysnetPorts = %v, %v", got, err)
	}

	// The missing bridge appears: its pair follows.
	vsctl(t, ch, "add-br", "br-missing", "--", "set", "Bridge", "br-missing", "datapath_type=netdev")
	waitBridgeCached(t, ch, "br-missing")
	if _, sk, err := ch.c.EnsurePhysnetPatches(ctx, spec); err != nil || len(sk) != 0 {
		t.Fatalf("ensure after add-br: skipped %v, %v", sk, err)
	}
	if got := ports("br-missing"); !slices.Equal(got, []string{"phy-br-missing"}) {
		t.Errorf("br-missing ports %v", got)
	}

	// A mapping goes away, another moves to a new bridge: both ends of the
	// old pairs go, the other bridges' own ports stay.
	vsctl(t, ch, "add-br", "br-ex2", "--", "set", "Bridge", "br-ex2", "datapath_type=netdev")
	waitBridgeCached(t, ch, "br-ex2")
	spec.Mappings = map[string]string{"external": "br-ex2", "ghost": "br-missing"}
	if _, _, err := ch.c.EnsurePhysnetPatches(ctx, spec); err != nil {
		t.Fatal(err)
	}
	if got, want := ports("br-int"), []string{"int-br-ex2", "int-br-missing", "keep0"}; !slices.Equal(got, want) {
		t.Errorf("br-int ports %v, want %v", got, want)
	}
	if got := ports("br-ex"); !slices.Equal(got, []string{"br-ex-nic"}) {
		t.Errorf("br-ex ports %v", got)
	}
	if got := ports("br-phys2"); !slices.Equal(got, []string{"br-phys2-nic"}) {
		t.Errorf("br-phys2 ports %v", got)
	}
	if got := vsctl(t, ch, "--columns=name", "--bare", "find", "Interface", "name=phy-br-ex"); got != "" {
		t.Errorf("orphan interface left: %q", got)
	}

	// Drift on our port is put back; a foreign port with our name is
	// skipped, not taken over.
	vsctl(t, ch, "set", "Interface", "int-br-ex2", "options:peer=elsewhere")
	if n, _, err := ch.c.EnsurePhysnetPatches(ctx, spec); err != nil || n != 1 {
		t.Errorf("fixing int-br-ex2: %d ops, %v; want 1", n, err)
	}
	vsctl(t, ch, "add-br", "br-p3", "--", "set", "Bridge", "br-p3", "datapath_type=netdev")
	vsctl(t, ch, "add-port", "br-int", "int-br-p3", "--", "set", "Interface", "int-br-p3", "type=internal")
	spec.Mappings["p3"] = "br-p3"
	_, sk, err := ch.c.EnsurePhysnetPatches(ctx, spec)
	if err != nil || len(sk) != 1 || sk[0].Physnet != "p3" {
		t.Errorf("foreign int-br-p3: skipped %v, %v", sk, err)
	}
	if got := vsctl(t, ch, "get", "Interface", "int-br-p3", "type"); got != "internal" {
		t.Errorf("foreign int-br-p3 changed to %q", got)
	}
	if got := ports("br-p3"); got != nil {
		t.Errorf("br-p3 ports %v", got)
	}

	// Self-fencing: every pair goes, on both ends; the foreign port stays.
	if err := ch.c.RemovePhysnetPatches(ctx, "br-int"); err != nil {
		t.Fatal(err)
	}
	if got, want := ports("br-int"), []string{"int-br-p3", "keep0"}; !slices.Equal(got, want) {
		t.Errorf("br-int ports after remove %v, want %v", got, want)
	}
	for _, br := range []string{"br-ex2", "br-missing"} {
		if got := ports(br); got != nil {
			t.Errorf("%s ports after remove %v", br, got)
		}
	}
	if n, _, err := ch.c.EnsurePhysnetPatches(ctx, ovsdb.PhysnetSpec{Bridge: "br-int"}); err != nil || n != 0 {
		t.Errorf("remove twice: %d ops, %v", n, err)
	}
}

func TestWatchOwnedPorts(t *testing.T) {
	ch := newChassis(t)
	ctx := testCtx(t)
	if _, err := ch.c.EnsureIntegrationBridge(ctx, bridgeSpec); err != nil {
		t.Fatal(err)
	}
	vsctl(t, ch, "add-br", "br-ex", "--", "set", "Bridge", "br-ex", "datapath_type=netdev")
	spec := ovsdb.PhysnetSpec{Bridge: "br-int", Mappings: map[string]string{"external": "br-ex"}}
	if _, _, err := ch.c.EnsurePhysnetPatches(ctx, spec); err != nil {
		t.Fatal(err)
	}
	var calls atomic.Int32
	ch.c.WatchOwnedPorts(ctx, func() { calls.Add(1) })
	eventually(t, 5*time.Second, func() error { // wait for ofports to settle
		if got := vsctl(t, ch, "get", "Interface", "int-br-ex", "ofport"); got == "[]" {
			return errors.New("no ofport")
		}
		return nil
	})
	// A port that is not ours: no call.
	vsctl(t, ch, "add-port", "br-int", "other0", "--", "set", "Interface", "other0", "type=internal")
	calls.Store(0)
	// What a fenced gateway does, from another session.
	c2, err := ovsdb.Connect(ctx, ch.inst.DBEndpoint(), ovsdb.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	start := time.Now()
	if err := c2.RemovePhysnetPatches(ctx, "br-int"); err != nil {
		t.Fatal(err)
	}
	eventually(t, 2*time.Second, func() error {
		if calls.Load() == 0 {
			return errors.New("no call after the patch ports were removed")
		}
		return nil
	})
	t.Logf("owned-port change reported %v after the removal", time.Since(start))
}

// waitBridgeCached waits until the client's monitor cache holds a bridge
// ovs-vsctl just added: the update reaches the cache asynchronously.
func waitBridgeCached(t *testing.T, ch *chassis, name string) {
	t.Helper()
	eventually(t, 5*time.Second, func() error {
		br, err := ch.c.Bridge(testCtx(t), name)
		if err != nil {
			return err
		}
		if br == nil {
			return fmt.Errorf("bridge %s not in the client's cache yet", name)
		}
		return nil
	})
}
