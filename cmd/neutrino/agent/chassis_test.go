package agent_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"testing"
	"time"

	"neutrino/cluster"
	"neutrino/cluster/clustertest"
	"neutrino/cmd/neutrino/agent"
	"neutrino/northbound"
)

// testLogger keeps in-process agents quiet unless NEUTRINO_TEST_LOG is set.
func testLogger() *slog.Logger {
	lvl := slog.LevelWarn
	if os.Getenv("NEUTRINO_TEST_LOG") != "" {
		lvl = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lvl}))
}

// startAgent starts an in-process agent and shuts it down at cleanup.
func startAgent(t *testing.T, cfg agent.Config) *agent.Agent {
	t.Helper()
	if cfg.DataDir == "" {
		cfg.DataDir = t.TempDir()
	}
	if cfg.HTTP == "" {
		cfg.HTTP = "127.0.0.1:0"
	}
	if cfg.Server && cfg.OpenFlow == "" {
		cfg.OpenFlow = "127.0.0.1:0"
	}
	if cfg.API.DefaultProject == "" {
		cfg.API = northbound.DefaultConfig()
	}
	cfg.Logger = testLogger()
	a, err := agent.Start(cfg)
	if err != nil {
		t.Fatalf("start agent %s: %v", cfg.Node, err)
	}
	t.Cleanup(func() { shutdown(t, a) })
	return a
}

func shutdown(t *testing.T, a *agent.Agent) {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := a.Shutdown(ctx); err != nil {
		t.Logf("shutdown: %v", err)
	}
}

// getJSON GETs an API path as admin (or with the given headers).
func apiGet(addr, path string, hdr map[string]string, out any) (int, error) {
	req, err := http.NewRequest(http.MethodGet, "http://"+addr+path, nil)
	if err != nil {
		return 0, err
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, err
	}
	if out != nil {
		if err := json.Unmarshal(body, out); err != nil {
			return resp.StatusCode, fmt.Errorf("%w: %s", err, body)
		}
	}
	return resp.StatusCode, nil
}

type chassisList struct {
	Chassis []struct {
		Name     string `json:"name"`
		Status   string `json:"status"`
		TunnelIP string `json:"tunnel_ip"`
		Up       bool   `json:"up"`
	} `json:"chassis"`
}

func chassisStatus(addr string) (map[string]string, error) {
	var l chassisList
	code, err := apiGet(addr, "/v2.0/chassis", nil, &l)
	if err != nil {
		return nil, err
	}
	if code != http.StatusOK {
		return nil, fmt.Errorf("status %d", code)
	}
	out := map[string]string{}
	for _, c := range l.Chassis {
		out[c.Name] = c.Status + "/" + c.TunnelIP
	}
	return out, nil
}

// TestChassisRecords: one server and two chassis-only agents in process;
// the leader records both chassis up, then one dies (no Leave) and is
// marked down.
func TestChassisRecords(t *testing.T) {
	taken := map[int]bool{}
	srvBind := fmt.Sprintf("127.0.0.1:%d", freePort(t, taken))
	srv := startAgent(t, agent.Config{Server: true, Node: "srv1", Bind: srvBind, BootstrapExpect: 1})
	var chassis []*agent.Agent
	for i := 1; i <= 2; i++ {
		chassis = append(chassis, startAgent(t, agent.Config{
			Node: fmt.Sprintf("hv%d", i), Bind: fmt.Sprintf("127.0.0.1:%d", freePort(t, taken)), Join: []string{srvBind},
			Chassis: cluster.NodeMeta{TunnelIP: fmt.Sprintf("192.0.2.%d", i), OVSDB: "tcp:127.0.0.1:6640",
				Roles: []string{"compute"}, Encaps: []string{"vxlan"}, DatapathType: "netdev"},
		}))
	}
	eventually(t, 20*time.Second, func() error {
		st, err := chassisStatus(srv.HTTPAddr())
		if err != nil {
			return err
		}
		if st["hv1"] != "UP/192.0.2.1" || st["hv2"] != "UP/192.0.2.2" || len(st) != 2 {
			return fmt.Errorf("chassis %v", st)
		}
		return nil
	})

	// A chassis agent is ready once it sees the servers and a leader
	// announced in gossip.
	eventually(t, 20*time.Second, func() error {
		var rd map[string]any
		if code, err := apiGet(chassis[0].HTTPAddr(), "/readyz", nil, &rd); code != 200 {
			return fmt.Errorf("chassis /readyz: %d %v %v", code, rd, err)
		}
		return nil
	})

	// A member may not see chassis: PolicyNotAuthorized.
	var e struct {
		NeutronError struct{ Type string } `json:"NeutronError"`
	}
	code, err := apiGet(srv.HTTPAddr(), "/v2.0/chassis", map[string]string{"X-Project-Id": "p1", "X-Roles": "member"}, &e)
	if err != nil || code != http.StatusForbidden || e.NeutronError.Type != "PolicyNotAuthorized" {
		t.Fatalf("member list: %d %+v %v", code, e, err)
	}
	// Generic filters work on the extension.
	var l chassisList
	if code, err := apiGet(srv.HTTPAddr(), "/v2.0/chassis?name=hv2", nil, &l); err != nil || code != 200 || len(l.Chassis) != 1 {
		t.Fatalf("filtered list: %d %+v %v", code, l, err)
	}

	// Quiet: no commits while nothing changes.
	rev := srv.FSM().State().Read().Revision()
	start := time.Now()
	shutdown(t, chassis[1]) // no Leave: gossip declares it dead
	eventually(t, 20*time.Second, func() error {
		st, err := chassisStatus(srv.HTTPAddr())
		if err != nil {
			return err
		}
		if st["hv1"] != "UP/192.0.2.1" || st["hv2"] != "DOWN/192.0.2.2" {
			return fmt.Errorf("chassis %v", st)
		}
		return nil
	})
	t.Logf("chassis marked down %v after shutdown", time.Since(start).Round(10*time.Millisecond))
	if got := srv.FSM().State().Read().Revision(); got != rev+1 {
		t.Fatalf("revision moved from %d to %d: want exactly one commit (mark down)", rev, got)
	}
}

// TestLoneChassisNotReady: a chassis agent that reaches no server is alive
// but not ready, and says why; its API answers 503 with Retry-After.
func TestLoneChassisNotReady(t *testing.T) {
	a := startAgent(t, agent.Config{Node: "lone", Bind: clustertest.FreeBind(t)})
	if code, err := apiGet(a.HTTPAddr(), "/healthz", nil, nil); code != 200 {
		t.Fatalf("/healthz: %d %v", code, err)
	}
	var rd struct {
		Ready   bool `json:"ready"`
		Missing []struct {
			Condition string `json:"condition"`
		} `json:"missing"`
	}
	if code, err := apiGet(a.HTTPAddr(), "/readyz", nil, &rd); code != 503 || rd.Ready || len(rd.Missing) != 2 ||
		rd.Missing[0].Condition != "joined" || rd.Missing[1].Condition != "leader_known" {
		t.Fatalf("/readyz: %d %+v %v", code, rd, err)
	}
	resp, err := http.Get("http://" + a.HTTPAddr() + "/v2.0/networks")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") != "1" {
		t.Fatalf("API on a lone chassis: %d Retry-After %q", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
}
