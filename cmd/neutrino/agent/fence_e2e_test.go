package agent_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"neutrino/cluster"
	"neutrino/cmd/neutrino/agent"
)

// TestGatewaySelfFence: a gateway chassis with a bridge mapping gets its
// patch ports from the leader; when it loses the majority of the servers
// (two of three stop, without leaving) it removes them itself; when they
// come back, it unfences and the new leader's worker restores them.
func TestGatewaySelfFence(t *testing.T) {
	inst := startOVS(t, "gw")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if _, err := inst.Vsctl(ctx, "add-br", "br-ex", "--", "set", "Bridge", "br-ex", "datapath_type=netdev"); err != nil {
		t.Fatal(err)
	}
	taken := map[int]bool{}
	var cfgs []agent.Config
	var servers []*agent.Agent
	var join string
	for i := 1; i <= 3; i++ {
		bind := fmt.Sprintf("127.0.0.1:%d", freePort(t, taken))
		if join == "" {
			join = bind
		}
		cfg := agent.Config{Server: true, Node: fmt.Sprintf("srv%d", i), Bind: bind, BootstrapExpect: 3,
			Join: []string{join}, DataDir: t.TempDir(), OpenFlow: "unix:" + ofSocket(t)}
		cfgs = append(cfgs, cfg)
		servers = append(servers, startAgent(t, cfg))
	}
	gw := startAgent(t, agent.Config{
		Node: "gw1", Bind: fmt.Sprintf("127.0.0.1:%d", freePort(t, taken)), Join: []string{join},
		Chassis: cluster.NodeMeta{TunnelIP: "192.0.2.1", OVSDB: inst.DBEndpoint(), Roles: []string{"gateway"},
			Encaps: []string{"geneve"}, DatapathType: "netdev", BridgeMappings: map[string]string{"external": "br-ex"}},
	})
	ports := func(br string) string {
		out, err := inst.Vsctl(ctx, "list-ports", br)
		if err != nil {
			return err.Error()
		}
		return strings.Join(strings.Fields(out), ",")
	}
	patched := func() error {
		if p := ports("br-ex"); p != "phy-br-ex" {
			return fmt.Errorf("br-ex ports %q", p)
		}
		if p := ports("br-int"); !strings.Contains(p, "int-br-ex") {
			return fmt.Errorf("br-int ports %q", p)
		}
		return nil
	}
	eventually(t, 30*time.Second, patched)

	start := time.Now()
	shutdown(t, servers[0])
	shutdown(t, servers[1])
	eventually(t, 10*time.Second, func() error {
		if !gw.Fenced() {
			return fmt.Errorf("not fenced")
		}
		if p := ports("br-ex"); p != "" {
			return fmt.Errorf("br-ex ports %q", p)
		}
		if p := ports("br-int"); strings.Contains(p, "int-br-ex") {
			return fmt.Errorf("br-int ports %q", p)
		}
		return nil
	})
	t.Logf("fenced and patch ports gone %v after two of three servers stopped", time.Since(start).Round(time.Millisecond))

	start = time.Now()
	for i := range 2 {
		cfg := cfgs[i]
		cfg.BootstrapExpect = 0
		servers[i] = startAgent(t, cfg)
	}
	eventually(t, 30*time.Second, func() error {
		if gw.Fenced() {
			return fmt.Errorf("still fenced")
		}
		return patched()
	})
	t.Logf("unfenced and patch ports back %v after the servers restarted", time.Since(start).Round(time.Millisecond))
}
