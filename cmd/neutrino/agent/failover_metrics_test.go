package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	dto "github.com/prometheus/client_model/go"

	"neutrino/cluster/clustertest"
	"neutrino/fsm"
	"neutrino/northbound"
)

// fsmBackend applies commands straight to an FSM (one replica, no Raft),
// so the test can also commit chassis states, which only the leader's
// gossip handling proposes.
type fsmBackend struct {
	mu    sync.Mutex
	f     *fsm.FSM
	index uint64
}

func (b *fsmBackend) Apply(_ context.Context, cmd []byte) (*fsm.Result, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.index++
	return b.f.Apply(&raft.Log{Index: b.index, Type: raft.LogCommand, Data: cmd}).(*fsm.Result), nil
}

func (b *fsmBackend) IsLeader() bool                     { return true }
func (b *fsmBackend) LeaderHTTPAddr() string             { return "" }
func (b *fsmBackend) VerifyLeader(context.Context) error { return nil }
func (b *fsmBackend) WaitReady(context.Context) error    { return nil }

func (b *fsmBackend) must(t *testing.T, typ fsm.CommandType, body any) {
	t.Helper()
	cmd, err := fsm.Encode(typ, body)
	if err != nil {
		t.Fatal(err)
	}
	if res, _ := b.Apply(context.Background(), cmd); res.Err != nil {
		t.Fatalf("%s: %v", typ, res.Err)
	}
}

// TestGatewayFailoverCounter: the failover counter follows the state
// machine's gateway moves: a gateway leaving a chassis that went down
// counts, a chassis coming back (no preemption) moves nothing, and a
// second chassis down moves both routers.
func TestGatewayFailoverCounter(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	f := fsm.New(log)
	be := &fsmBackend{f: f}
	cfg := northbound.DefaultConfig()
	cfg.FlatNetworks, cfg.Logger = []string{"physnet1"}, log
	hs := httptest.NewServer(northbound.New(cfg, be, f).Handler())
	t.Cleanup(hs.Close)

	a := &Agent{fsm: f}
	a.metrics = newAgentMetrics(a)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); a.watchFailovers(ctx) }()
	t.Cleanup(func() { cancel(); <-done })

	var chassis []*fsm.Chassis
	for _, n := range []string{"gw1", "gw2"} {
		chassis = append(chassis, &fsm.Chassis{Meta: fsm.Meta{ID: n, Name: n, RevisionNumber: 1, UpdatedAt: "2026-12-06T00:00:00Z"},
			TunnelIP: "192.0.2.1", Roles: []string{fsm.ChassisRoleCompute, fsm.ChassisRoleGateway},
			BridgeMappings: map[string]string{"physnet1": "br-ex"}, Encaps: []string{"geneve"},
			DatapathID: fsm.ChassisDatapathID(n), Up: true})
	}
	be.must(t, fsm.CmdChassisUpsert, fsm.ChassisUpsertRequest{Chassis: chassis})
	create := func(collection, kind string, attrs map[string]any) map[string]any {
		t.Helper()
		body, _ := json.Marshal(map[string]any{kind: attrs})
		resp, err := http.Post(hs.URL+"/v2.0/"+collection, "application/json", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]map[string]any
		if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != http.StatusCreated {
			t.Fatalf("create %s: %s %v %v", kind, resp.Status, err, out)
		}
		return out[kind]
	}
	ext := create("networks", "network", map[string]any{"name": "public", "router:external": true,
		"provider:network_type": "flat", "provider:physical_network": "physnet1"})
	create("subnets", "subnet", map[string]any{"network_id": ext["id"], "cidr": "203.0.113.0/24", "ip_version": 4})
	gw := map[string]any{"network_id": ext["id"]}
	r1 := create("routers", "router", map[string]any{"name": "r1", "external_gateway_info": gw})
	r2 := create("routers", "router", map[string]any{"name": "r2", "external_gateway_info": gw})
	if r1["neutrino:active_gateway_chassis"] != "gw1" || r2["neutrino:active_gateway_chassis"] != "gw2" {
		t.Fatalf("scheduled: r1 on %v, r2 on %v; want gw1, gw2", r1["neutrino:active_gateway_chassis"], r2["neutrino:active_gateway_chassis"])
	}
	failovers := func(want float64) {
		t.Helper()
		clustertest.Eventually(t, 5*time.Second, func() error {
			var m dto.Metric
			if err := a.metrics.failovers.Write(&m); err != nil {
				return err
			}
			if v := m.GetCounter().GetValue(); v != want {
				return fmt.Errorf("%v failovers counted, want %v", v, want)
			}
			return nil
		})
	}
	failovers(0)
	setUp := func(name string, up bool) {
		be.must(t, fsm.CmdChassisSetState, fsm.ChassisSetStateRequest{Names: []string{name}, Up: up, At: "2026-12-06T01:00:00Z"})
	}
	setUp("gw1", false) // r1 -> gw2
	failovers(1)
	setUp("gw1", true)  // nothing moves back
	setUp("gw2", false) // r1 and r2 -> gw1
	failovers(3)
	v := f.State().Read()
	if g1, g2 := v.ActiveGatewayChassis(r1["id"].(string)), v.ActiveGatewayChassis(r2["id"].(string)); g1 != "gw1" || g2 != "gw1" {
		t.Fatalf("after gw2 down: r1 on %s, r2 on %s; want gw1", g1, g2)
	}
}
