package agent_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"neutrino/cmd/neutrino/agent"
	"neutrino/northbound"
)

// scrape is one parsed /metrics answer.
type scrape map[string]*dto.MetricFamily

// scrapeMetrics GETs /metrics from an agent's API listener and parses it
// with Prometheus' own text parser.
func scrapeMetrics(addr string) (scrape, error) {
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET /metrics: %s", resp.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	return p.TextToMetricFamilies(resp.Body)
}

// value is the value of the series name{labels} (counter, gauge, or a
// histogram's sample count); ok is false when there is no such series.
func (s scrape) value(name string, labels map[string]string) (float64, bool) {
	mf := s[name]
	if mf == nil {
		return 0, false
	}
next:
	for _, m := range mf.GetMetric() {
		have := map[string]string{}
		for _, lp := range m.GetLabel() {
			have[lp.GetName()] = lp.GetValue()
		}
		for k, v := range labels {
			if have[k] != v {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.GetCounter().GetValue(), true
		case m.Gauge != nil:
			return m.GetGauge().GetValue(), true
		case m.Histogram != nil:
			return float64(m.GetHistogram().GetSampleCount()), true
		}
	}
	return 0, false
}

// get is value, 0 for a series not there yet (a counter never incremented).
func (s scrape) get(name string, labels map[string]string) float64 {
	v, _ := s.value(name, labels)
	return v
}

func mustScrape(t *testing.T, a *agent.Agent) scrape {
	t.Helper()
	s, err := scrapeMetrics(a.HTTPAddr())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestMetrics scrapes /metrics on a real 3-server cluster and a chassis
// agent with its own OVS: the API counter moves by exactly the requests
// made (on the follower that took them and on the leader they were
// forwarded to), Raft's applied index reaches the written revision, the
// leader reports flows and bundles for the chassis, gossip counts every
// member alive, and a leader change is counted after the leader stops.
func TestMetrics(t *testing.T) {
	_, servers, hv := threeServersOneChassis(t, "m")

	leaderOf := func(among []*agent.Agent) (*agent.Agent, error) {
		for _, a := range among {
			if a.Cluster().IsLeader() && a.Controller() != nil {
				return a, nil
			}
		}
		return nil, fmt.Errorf("no leader")
	}
	// Generous deadlines: under -race on a loaded machine elections repeat
	// (heartbeats time out) before one leader holds.
	var leader *agent.Agent
	eventually(t, 90*time.Second, func() (err error) {
		if leader, err = leaderOf(servers); err != nil {
			return err
		}
		return realized(leader, "hv1", 1)
	})
	var follower *agent.Agent
	for _, a := range servers {
		if a != leader {
			follower = a
			break
		}
	}

	// Every member alive in every agent's gossip, the chassis' included.
	for _, a := range append(servers, hv) {
		eventually(t, 30*time.Second, func() error {
			s, err := scrapeMetrics(a.HTTPAddr())
			if err != nil {
				return err
			}
			if v := s.get("neutrino_gossip_members", map[string]string{"state": "alive"}); v != 4 {
				return fmt.Errorf("%s: %v members alive, want 4", a.Cluster().NodeName(), v)
			}
			return nil
		})
	}
	if s := mustScrape(t, hv); s["neutrino_raft_term"] != nil {
		t.Errorf("chassis agent reports Raft metrics: %v", s["neutrino_raft_term"])
	}

	post := map[string]string{"resource": "networks", "method": "POST", "code": "201"}
	show := map[string]string{"resource": "networks", "method": "GET", "code": "200"}
	before := map[*agent.Agent]scrape{}
	for _, a := range servers {
		before[a] = mustScrape(t, a)
	}

	const writes, reads = 5, 3
	var ids []string
	var rev uint64
	for i := 0; i < writes; i++ {
		body, _ := json.Marshal(map[string]any{"network": map[string]any{"name": fmt.Sprintf("m%d", i)}})
		resp, err := http.Post("http://"+follower.HTTPAddr()+"/v2.0/networks", "application/json", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		var out struct {
			Network struct {
				ID string `json:"id"`
			} `json:"network"`
		}
		err = json.NewDecoder(resp.Body).Decode(&out)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusCreated {
			t.Fatalf("create network: %s %v", resp.Status, err)
		}
		ids = append(ids, out.Network.ID)
		r, err := strconv.ParseUint(resp.Header.Get(northbound.HeaderRevision), 10, 64)
		if err != nil {
			t.Fatalf("revision header: %v", err)
		}
		rev = max(rev, r)
	}
	for i := 0; i < reads; i++ {
		if code, err := apiGet(follower.HTTPAddr(), "/v2.0/networks/"+ids[i], nil, nil); err != nil || code != http.StatusOK {
			t.Fatalf("show network: %d %v", code, err)
		}
	}

	after := mustScrape(t, follower)
	if d := after.get("neutrino_api_requests_total", post) - before[follower].get("neutrino_api_requests_total", post); d != writes {
		t.Errorf("follower: POST networks 201 counter moved by %v, want %d", d, writes)
	}
	if d := after.get("neutrino_api_requests_total", show) - before[follower].get("neutrino_api_requests_total", show); d != reads {
		t.Errorf("follower: GET networks 200 counter moved by %v, want %d", d, reads)
	}
	lat := map[string]string{"resource": "networks", "method": "POST"}
	if d := after.get("neutrino_api_request_duration_seconds", lat) - before[follower].get("neutrino_api_request_duration_seconds", lat); d != writes {
		t.Errorf("follower: POST networks latency histogram has %v new samples, want %d", d, writes)
	}
	// The follower forwarded the writes, and the consistent reads, to the
	// leader, which counts what it answered; unless an election (a loaded
	// machine under -race) moved them elsewhere meanwhile.
	ls := mustScrape(t, leader)
	changes := "neutrino_raft_leader_changes_total"
	if after.get(changes, nil) == before[follower].get(changes, nil) && ls.get("neutrino_raft_leader", nil) == 1 {
		if d := ls.get("neutrino_api_requests_total", post) - before[leader].get("neutrino_api_requests_total", post); d != writes {
			t.Errorf("leader: POST networks 201 counter moved by %v, want %d", d, writes)
		}
	}
	// Exactly one server says it leads.
	eventually(t, 60*time.Second, func() error {
		leaders := 0.0
		for _, a := range servers {
			s, err := scrapeMetrics(a.HTTPAddr())
			if err != nil {
				return err
			}
			leaders += s.get("neutrino_raft_leader", nil)
		}
		if leaders != 1 {
			return fmt.Errorf("%v servers report neutrino_raft_leader 1, want 1", leaders)
		}
		return nil
	})
	// Every write was applied through some server's API.
	applies := 0.0
	for _, a := range servers {
		applies += mustScrape(t, a).get("neutrino_raft_apply_duration_seconds", nil) -
			before[a].get("neutrino_raft_apply_duration_seconds", nil)
	}
	if applies < writes {
		t.Errorf("%v new apply latency samples, want at least %d", applies, writes)
	}

	// Every server applies the written revision; the commit index is never
	// behind the applied one.
	for _, a := range servers {
		eventually(t, 10*time.Second, func() error {
			s, err := scrapeMetrics(a.HTTPAddr())
			if err != nil {
				return err
			}
			applied, commit := s.get("neutrino_raft_applied_index", nil), s.get("neutrino_raft_commit_index", nil)
			if applied < float64(rev) || commit < applied || s.get("neutrino_state_revision", nil) < float64(rev) {
				return fmt.Errorf("%s: applied %v commit %v revision %v, want applied >= %d <= commit",
					a.Cluster().NodeName(), applied, commit, s.get("neutrino_state_revision", nil), rev)
			}
			if s.get("neutrino_raft_term", nil) < 1 || s.get("neutrino_raft_leader_changes_total", nil) < 1 {
				return fmt.Errorf("%s: term %v, leader changes %v", a.Cluster().NodeName(),
					s.get("neutrino_raft_term", nil), s.get("neutrino_raft_leader_changes_total", nil))
			}
			return nil
		})
	}

	// The leader programs hv1: flows, bundles, compiles; in sync once it
	// realized the revision; no compile mismatch.
	hv1 := map[string]string{"chassis": "hv1"}
	eventually(t, 60*time.Second, func() error {
		if l, err := leaderOf(servers); err == nil {
			leader = l // an election may have moved it
		}
		s, err := scrapeMetrics(leader.HTTPAddr())
		if err != nil {
			return err
		}
		flows, ok := s.value("neutrino_chassis_flows", hv1)
		switch {
		case !ok || flows <= 0:
			return fmt.Errorf("flows for hv1: %v (reported %v)", flows, ok)
		case s.get("neutrino_flowsync_bundles_total", hv1) < 1:
			return fmt.Errorf("no bundle counted for hv1")
		case s.get("neutrino_flowsync_realized_revision", hv1) < float64(rev):
			return fmt.Errorf("hv1 realized %v, want >= %d", s.get("neutrino_flowsync_realized_revision", hv1), rev)
		case s.get("neutrino_compile_duration_seconds", map[string]string{"kind": "full"}) < 1:
			return fmt.Errorf("no full compile counted")
		}
		if _, ok := s.value("neutrino_flowsync_revision_lag", hv1); !ok {
			return fmt.Errorf("no revision lag for hv1")
		}
		return nil
	})
	ls = mustScrape(t, leader)
	if v := ls.get("neutrino_compile_mismatches_total", nil); v != 0 {
		t.Errorf("compile mismatches %v", v)
	}
	for _, a := range servers {
		if a == leader || a.Cluster().IsLeader() {
			continue
		}
		if _, ok := mustScrape(t, a).value("neutrino_chassis_flows", hv1); ok {
			t.Errorf("follower %s reports flows for hv1", a.Cluster().NodeName())
		}
	}

	// memberlist's own series are bridged in, labelled by node.
	if _, ok := ls.value("memberlist_udp_sent", map[string]string{"node": leader.Cluster().NodeName()}); !ok {
		t.Errorf("no memberlist_udp_sent{node=%q} series", leader.Cluster().NodeName())
	}

	// Stop the leader: a survivor counts the new leader.
	var rest []*agent.Agent
	for _, a := range servers {
		if a != leader {
			rest = append(rest, a)
		}
	}
	s0 := mustScrape(t, rest[0])
	changes0, term0 := s0.get("neutrino_raft_leader_changes_total", nil), s0.get("neutrino_raft_term", nil)
	shutdown(t, leader)
	eventually(t, 90*time.Second, func() error {
		if _, err := leaderOf(rest); err != nil {
			return err
		}
		s, err := scrapeMetrics(rest[0].HTTPAddr())
		if err != nil {
			return err
		}
		if c, term := s.get("neutrino_raft_leader_changes_total", nil), s.get("neutrino_raft_term", nil); c <= changes0 || term <= term0 {
			return fmt.Errorf("leader changes %v (before %v), term %v (before %v)", c, changes0, term, term0)
		}
		return nil
	})
}
