package scenarios_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/ports"

	"neutrino/scenarios"
	"neutrino/scenarios/harness"
)

// TestTopologyPage loads the topology page (/ui/) from a follower in
// headless Chromium (Debian's package; --dump-dom after the page's own
// polling ran): it shows a network created through the API and a VM port
// on its chassis, and once a chassis agent is killed (SIGKILL of its
// process) the page marks that chassis down. A lab of its own: it kills an
// agent. The lab's HTTPS certificate is of the lab's own CA, which
// Chromium is told to accept (--ignore-certificate-errors) rather than
// installing the CA in an NSS database.
func TestTopologyPage(t *testing.T) {
	if driverName == "vagrant" {
		t.Skip("checked on the netns lab only: not yet run on the Vagrant cluster")
	}
	chromium, err := exec.LookPath("chromium")
	if err != nil {
		t.Skip("no chromium (Debian's chromium package, in .ci/deps):", err)
	}
	p := up(t, scenarios.Topology{Servers: 3, Chassis: 2})
	nc := p.Admin
	netID, _ := p.Network(nc, "ui-net", "10.29.0.0/24")
	vm := p.Plug("uivm", p.Chassis[0], p.Port(nc, ports.CreateOpts{NetworkID: netID, Name: "uivm"}))
	servers := p.Servers()
	endpoint := p.API(servers[len(servers)-1])

	// The data endpoint has the API's auth: a member may not see chassis.
	res, err := harness.Call(http.MethodGet, endpoint+"/v1/topology", map[string]string{"X-Project-Id": "p1", "X-Roles": "member"}, nil)
	if err != nil || res.Status != http.StatusForbidden || !strings.Contains(string(res.Body), "NeutronError") {
		t.Errorf("GET /v1/topology as a member: %v, status %d, body %s; want 403 NeutronError", err, res.Status, res.Body)
	}

	profile := t.TempDir()
	dump := func() (string, error) {
		// One run takes 10-25 s here, far more on a machine loaded by
		// parallel test runs: bounded, but generously.
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		cmd := exec.Command(chromium, "--headless", "--no-sandbox", "--disable-gpu", "--ignore-certificate-errors",
			"--no-first-run", "--user-data-dir="+profile, "--virtual-time-budget=5000", "--dump-dom", endpoint+"/ui/")
		cmd.Env = append(os.Environ(), "HOME="+profile)
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		var out, errb strings.Builder
		cmd.Stdout, cmd.Stderr = &out, &errb
		if err := cmd.Start(); err != nil {
			return "", err
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err = <-done:
		case <-ctx.Done():
			// Its renderer and GPU processes are in its process group.
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			err = fmt.Errorf("chromium: %w", <-done)
		}
		// Whatever it left behind in its group (zygotes) goes too.
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		if err != nil {
			// Chromium's stderr without its complaints about the absent D-Bus.
			var lines []string
			for _, l := range strings.Split(errb.String(), "\n") {
				if !strings.Contains(l, "dbus") {
					lines = append(lines, l)
				}
			}
			return out.String(), fmt.Errorf("chromium --dump-dom: %w: %s", err, strings.Join(lines, "\n"))
		}
		return out.String(), nil
	}
	expect := func(what string, want ...string) {
		t.Helper()
		var last string
		harness.Poll(t, 5*time.Minute, what, func() error {
			began := time.Now()
			dom, err := dump()
			last = dom
			if err == nil {
				for _, w := range want {
					if !strings.Contains(dom, w) {
						err = fmt.Errorf("the page has no %s", w)
						break
					}
				}
			}
			if err != nil {
				t.Logf("chromium run of %s: %v", time.Since(began).Round(time.Millisecond), err)
			}
			return err
		})
		if t.Failed() {
			t.Logf("last DOM:\n%s", last)
		}
	}

	// The state first (so each Chromium run, ~15 s here, is not spent
	// on a state that cannot pass yet), then the page.
	apiHas := func(what, want string) {
		t.Helper()
		harness.Poll(t, 60*time.Second, what, func() error {
			res, err := harness.Call(http.MethodGet, endpoint+"/v1/topology", nil, nil)
			if err != nil {
				return err
			}
			if compact := strings.ReplaceAll(string(res.Body), " ", ""); !strings.Contains(compact, want) {
				return fmt.Errorf("GET /v1/topology: %d, no %s in %s", res.Status, want, res.Body)
			}
			return nil
		})
	}
	apiHas("the VM's port bound in the state", `"id":"`+vm.PortID+`","name":"uivm","network_id":"`+netID+`","chassis":"`+vm.Chassis+`"`)
	start := time.Now()
	expect("the page shows the network, the VM's port and both chassis up",
		`data-network-name="ui-net"`, `data-port-id="`+vm.PortID+`" data-chassis="`+vm.Chassis+`"`,
		`data-chassis="`+p.Chassis[0]+`" data-state="up"`, `data-chassis="`+p.Chassis[1]+`" data-state="up"`)
	t.Logf("page loaded with the network in %s", time.Since(start).Round(time.Millisecond))

	p.NodeOp("kill the agent of", p.Chassis[1], p.D.KillAgent)
	start = time.Now()
	apiHas("the state marks "+p.Chassis[1]+" down", `{"name":"`+p.Chassis[1]+`","up":false`)
	expect("the page marks "+p.Chassis[1]+" down", `data-chassis="`+p.Chassis[1]+`" data-state="down"`,
		`data-chassis="`+p.Chassis[0]+`" data-state="up"`)
	t.Logf("page shows %s down %s after the kill", p.Chassis[1], time.Since(start).Round(time.Millisecond))
}
