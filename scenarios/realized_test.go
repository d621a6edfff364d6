package scenarios_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/layer3/routers"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/ports"

	"neutrino/scenarios/harness"
)

// Realization wait: a write with ?wait=realized (or the header
// X-Neutrino-Wait: realized) returns once every live chassis runs the
// flows of the write's revision, so what it changed is on the switches the
// moment the response arrives: these scenarios look once, never poll.

const headerWait = "X-Neutrino-Wait"

// waitTimeout bounds each waited write (X-Neutrino-Wait-Timeout).
const waitTimeout = 10 * time.Second

// TestRealizedWrites makes writes that wait for realization, through a
// server that may have to forward them to the leader, and checks the
// chassis once, right after each answer:
//   - create-port: POST /v2.0/ports?wait=realized of a port in the default
//     group: the chassis of the group's other members (whose default rule
//     admits the group's members) match its address at once;
//   - router-interface: PUT add_router_interface?wait=realized: both
//     chassis with ports on the network match the gateway address, and
//     the first ping of the gateway is answered;
//   - update-fixed-ip: PUT of B's fixed_ips with the header: B's chassis
//     matches the new address, no chassis the old one; a ping of the new
//     address is answered at once;
//   - delete-port: DELETE ?wait=realized: no chassis has a flow with the
//     port's cookie;
//   - realization-status: GET /v1/realization on every server lists every
//     chassis connected, master, without error, at or past the last
//     waited write's revision.
func TestRealizedWrites(t *testing.T) {
	p := sharedUp(t, pipelineTopo)
	eps := p.D.Endpoints()
	ep := eps[len(eps)-1]
	nc := harness.NetworkClient(ep, "")
	netID, subID := p.Network(nc, "realized", "10.7.0.0/24")
	a := p.Plug("rza", p.Chassis[0], p.Port(nc, ports.CreateOpts{NetworkID: netID, Name: "rza"}))
	b := p.Plug("rzb", p.Chassis[1], p.Port(nc, ports.CreateOpts{NetworkID: netID, Name: "rzb"}))
	p.PingOK(harness.FirstPacket, a.Name, b.IP)
	for _, ch := range p.Chassis[:2] {
		for _, v := range []harness.VM{a, b} {
			harness.Poll(t, harness.Change, fmt.Sprintf("flows of %s on %s (before the waited writes)", v.Name, ch), func() error {
				fs, err := p.Flows(ch)
				if err == nil && len(harness.Owned(fs, p.PortCookie(v.PortID))) == 0 {
					err = fmt.Errorf("none")
				}
				return err
			})
		}
	}

	// The highest revision a waited write answered with (a 504 names
	// its revision too).
	var lastRev uint64
	// waited sends a write that waits for realization (at most
	// waitTimeout: a failing wait costs that, not the API's 30 s
	// default), records its revision and fails t unless the status is want.
	waited := func(t *testing.T, want int, method, url string, header map[string]string, body any) harness.APIResult {
		t.Helper()
		h := map[string]string{"X-Neutrino-Wait-Timeout": fmt.Sprint(int(waitTimeout / time.Second))}
		for k, v := range header {
			h[k] = v
		}
		r, err := harness.Call(method, url, h, body)
		if err != nil {
			t.Fatal(err)
		}
		rev, perr := strconv.ParseUint(r.Header.Get("X-Neutrino-Revision"), 10, 64)
		lastRev = max(lastRev, rev)
		if r.Status != want {
			t.Fatalf("%s %s: %d %s, want %d", method, url, r.Status, strings.TrimSpace(string(r.Body)), want)
		}
		if perr != nil {
			t.Errorf("%s %s: no X-Neutrino-Revision in the answer: %v", method, url, perr)
		}
		t.Logf("%s %s: answered in %s, revision %d", method, strings.TrimPrefix(url, ep), r.Took.Round(time.Microsecond), rev)
		return r
	}

	t.Run("create-port", func(t *testing.T) {
		p := p.Sub(t)
		r := waited(t, http.StatusCreated, "POST", ep+"/v2.0/ports?wait=realized", nil,
			map[string]any{"port": map[string]any{"network_id": netID, "name": "rzc"}})
		var out struct {
			Port struct {
				ID       string `json:"id"`
				FixedIPs []struct {
					IP string `json:"ip_address"`
				} `json:"fixed_ips"`
			} `json:"port"`
		}
		if err := json.Unmarshal(r.Body, &out); err != nil || len(out.Port.FixedIPs) == 0 {
			t.Fatalf("POST port: %v %s", err, r.Body)
		}
		for _, ch := range p.Chassis[:2] {
			p.FlowsMention(ch, out.Port.FixedIPs[0].IP, "right after POST port?wait=realized (default-group member address)")
		}
	})

	t.Run("router-interface", func(t *testing.T) {
		p := p.Sub(t)
		ctx, cancel := p.Ctx()
		defer cancel()
		r, err := routers.Create(ctx, nc, routers.CreateOpts{Name: "realized"}).Extract()
		if err != nil {
			t.Fatalf("create router: %v", err)
		}
		waited(t, http.StatusOK, "PUT", ep+"/v2.0/routers/"+r.ID+"/add_router_interface?wait=realized", nil,
			map[string]any{"subnet_id": subID})
		for _, ch := range p.Chassis[:2] {
			p.FlowsMention(ch, "10.7.0.1", "right after add_router_interface?wait=realized")
		}
		if out, err := p.Exec(a.Name, "ping", "-n", "-c2", "-W2", "10.7.0.1"); err != nil {
			t.Errorf("first ping of the gateway right after add_router_interface?wait=realized: %v %s", err, out)
		}
	})

	t.Run("update-fixed-ip", func(t *testing.T) {
		p := p.Sub(t)
		const newIP = "10.7.0.77"
		waited(t, http.StatusOK, "PUT", ep+"/v2.0/ports/"+b.PortID, map[string]string{headerWait: "realized"},
			map[string]any{"port": map[string]any{"fixed_ips": []map[string]string{{"subnet_id": subID, "ip_address": newIP}}}})
		p.FlowsMention(b.Chassis, newIP, "right after PUT fixed_ips with X-Neutrino-Wait")
		for _, ch := range p.Chassis {
			fs, err := p.Flows(ch)
			if err != nil {
				t.Fatal(err)
			}
			if old := harness.Mentioning(harness.Ours(fs), b.IP); len(old) > 0 {
				t.Errorf("right after PUT fixed_ips with X-Neutrino-Wait: %s still matches the old address %s:%s", ch, b.IP, harness.FlowTexts(old))
			}
		}
		// Flush first: deleting the primary address would take a new
		// secondary one with it.
		p.MustExec(b.Name, "ip", "addr", "flush", "dev", "eth0")
		p.MustExec(b.Name, "ip", "addr", "add", newIP+"/24", "dev", "eth0")
		if out, err := p.Exec(a.Name, "ping", "-n", "-c2", "-W2", newIP); err != nil {
			t.Errorf("first ping of %s's new address %s: %v %s", b.Name, newIP, err, out)
		}
	})

	t.Run("delete-port", func(t *testing.T) {
		p := p.Sub(t)
		owner := p.PortCookie(b.PortID)
		waited(t, http.StatusNoContent, "DELETE", ep+"/v2.0/ports/"+b.PortID+"?wait=realized", nil, nil)
		p.NoFlowsOf(owner, b.PortID, "right after DELETE port?wait=realized")
	})

	t.Run("realization-status", func(t *testing.T) {
		p := p.Sub(t)
		for _, e := range eps {
			r := p.MustCall(http.StatusOK, "GET", e+"/v1/realization", nil, nil)
			var st struct {
				Revision uint64 `json:"revision"`
				Leader   string `json:"leader"`
				Chassis  []struct {
					Chassis   string `json:"chassis"`
					Realized  uint64 `json:"realized_revision"`
					Connected bool   `json:"connected"`
					Master    bool   `json:"master"`
					Error     string `json:"error"`
				} `json:"chassis"`
			}
			if err := json.Unmarshal(r.Body, &st); err != nil {
				t.Fatalf("GET %s/v1/realization: %v: %s", e, err, r.Body)
			}
			t.Logf("GET %s/v1/realization: %s", e, r.Body)
			if st.Revision < lastRev || st.Leader == "" {
				t.Errorf("GET %s/v1/realization: revision %d leader %q, want >= %d (the last waited write) and a leader", e, st.Revision, st.Leader, lastRev)
			}
			seen := map[string]bool{}
			for _, c := range st.Chassis {
				seen[c.Chassis] = true
				if c.Realized < lastRev || !c.Connected || !c.Master || c.Error != "" {
					lag := ""
					if c.Realized < lastRev && c.Error == "" {
						lag = " (it lags and reports no error)"
					}
					t.Errorf("GET %s/v1/realization: %+v, want realized >= %d, connected, master, no error%s", e, c, lastRev, lag)
				}
			}
			for _, ch := range p.Chassis {
				if !seen[ch] {
					t.Errorf("GET %s/v1/realization does not list %s", e, ch)
				}
			}
		}
	})
}

// BenchmarkRealizedPortAdd measures POST /v2.0/ports?wait=realized on a
// lab with a VM of the network on every chassis (so every chassis has to
// realize each revision): at least 50 adds, reported as p50-ms and p99-ms.
func BenchmarkRealizedPortAdd(b *testing.B) {
	p := up(b, pipelineTopo)
	nc := p.Admin
	netID, _ := p.Network(nc, "bench", "10.8.0.0/16")
	vms := p.VMOnEachChassis(nc, "bn", netID)
	p.PingOK(harness.FirstPacket, vms[0].Name, vms[1].IP)
	p.PingOK(harness.FirstPacket, vms[0].Name, vms[2].IP)
	if r, err := harness.Call("GET", p.D.Endpoint()+"/v1/realization", nil, nil); err != nil || r.Status == http.StatusNotFound {
		b.Skipf("the API has no realization wait yet (GET /v1/realization: %v %d)", err, r.Status)
	}

	url := p.D.Endpoint() + "/v2.0/ports?wait=realized"
	var lat []time.Duration
	add := func() {
		r, err := harness.Call("POST", url, nil, map[string]any{"port": map[string]any{
			"network_id": netID, "name": fmt.Sprintf("bench-%d", len(lat)),
		}})
		if err != nil {
			b.Fatal(err)
		}
		if r.Status != http.StatusCreated {
			b.Fatalf("POST port?wait=realized: %d %s", r.Status, r.Body)
		}
		lat = append(lat, r.Took)
	}
	for b.Loop() {
		add()
	}
	for len(lat) < 50 {
		add()
	}
	slices.Sort(lat)
	pct := func(q float64) float64 {
		i := int(q*float64(len(lat))+0.5) - 1
		i = max(0, min(i, len(lat)-1))
		return float64(lat[i].Microseconds()) / 1000
	}
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
	b.ReportMetric(float64(len(lat)), "adds")
}
