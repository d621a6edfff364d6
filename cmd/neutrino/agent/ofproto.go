package agent

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

// ofprotoTrace runs `ovs-appctl ofproto/trace br-int FLOW` on this
// chassis' switch (GET /v1/ofproto/trace, for `neutrino trace --ofproto`).
// The switch's run directory is the one of br-int's service socket
// (dhcpSocket: <OVS_RUNDIR>/br-int.mgmt), so ovs-appctl finds the
// ovs-vswitchd of this chassis as it would on the host.
func (a *Agent) ofprotoTrace(ctx context.Context, flow string) (string, error) {
	rundir := filepath.Dir(dhcpSocket(a.cfg.DHCP))
	cmd := exec.CommandContext(ctx, "ovs-appctl", "ofproto/trace", "br-int", flow)
	cmd.Env = append(os.Environ(), "OVS_RUNDIR="+rundir)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("ovs-appctl ofproto/trace (OVS_RUNDIR %s): %w", rundir, err)
	}
	return string(out), nil
}
