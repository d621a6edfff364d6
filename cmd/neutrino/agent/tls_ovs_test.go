package agent_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"neutrino/cluster"
	"neutrino/cluster/clustertest"
	"neutrino/cluster/tlsutil"
	"neutrino/cmd/neutrino/agent"
	"neutrino/southbound/openflow/oftest"
)

// TestSwitchTLSChassisIdentity: with TLS the server announces an `ssl:`
// OpenFlow target and the chassis agent points its switch (a real
// ovs-vswitchd) at its own certificate. A chassis agent whose certificate
// names another chassis is refused at gossip already (cluster/identity.go):
// no chassis record, its switch never connected nor programmed (the
// OpenFlow check behind it is TestChassisCertificateMustNameChassis's);
// the same switch under an agent with its own certificate is MASTER and
// realized.
func TestSwitchTLSChassisIdentity(t *testing.T) {
	ovs := startOVS(t, "tls")
	pki := newTestPKI(t)
	dir := t.TempDir()
	files := func(node string) (agent.TLSFiles, *tlsutil.Bundle) {
		c, k, err := tlsutil.CreateCert(dir, pki.caCert, pki.caKey, tlsutil.CertRequest{Node: node, Role: tlsutil.RoleChassis})
		if err != nil {
			t.Fatal(err)
		}
		b, err := tlsutil.Load(c, k, pki.caCert)
		if err != nil {
			t.Fatal(err)
		}
		return agent.TLSFiles{Key: k, Cert: c, CA: pki.caCert}, b
	}
	srvBind := clustertest.FreeBind(t)
	srv := startAgent(t, agent.Config{Server: true, Node: "tls-srv", Bind: srvBind, BootstrapExpect: 1,
		Join: []string{srvBind}, TLS: pki.bundle("tls-srv", tlsutil.RoleServer),
		OpenFlowListener: oftest.ListenTCPIn(t, ovs.Namespace())})
	if !strings.HasPrefix(srv.OpenFlowAddr(), "ssl:") {
		t.Fatalf("server announces %q, want an ssl: target", srv.OpenFlowAddr())
	}
	chassisCfg := func(tf agent.TLSFiles, b *tlsutil.Bundle) agent.Config {
		return agent.Config{Node: "tls-hv1", Bind: clustertest.FreeBind(t), Join: []string{srvBind}, TLS: b, TLSFiles: tf,
			Chassis: cluster.NodeMeta{TunnelIP: "172.31.9.1", OVSDB: ovs.DBEndpoint(), Roles: []string{"compute"},
				Encaps: []string{"vxlan"}, DatapathType: "netdev"}}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()

	// An agent named tls-hv1 holding tls-hv9's certificate.
	badFiles, badBundle := files("tls-hv9")
	bad := startAgent(t, chassisCfg(badFiles, badBundle))
	eventually(t, 60*time.Second, func() error {
		if _, ok := srv.Cluster().RefusedMembers()["tls-hv1"]; !ok {
			return fmt.Errorf("the server has not refused tls-hv1's gossip identity yet (refused: %v)", srv.Cluster().RefusedMembers())
		}
		return nil
	})
	if ch := srv.FSM().State().Read().Chassis("tls-hv1"); ch != nil {
		t.Fatalf("the agent under tls-hv9's certificate got a chassis record: %+v", ch)
	}
	if out, err := ovs.Vsctl(ctx, "--bare", "--columns=is_connected", "list", "Controller"); err != nil || strings.Contains(out, "true") {
		t.Fatalf("the switch under tls-hv9's certificate is connected: %s %v", out, err)
	}
	for _, st := range srv.Controller().Status() {
		if st.Chassis == "tls-hv1" && (st.Connected || st.Realized > 0) {
			t.Fatalf("the switch under tls-hv9's certificate was taken for tls-hv1: %+v", st)
		}
	}
	shutdown(t, bad)

	goodFiles, goodBundle := files("tls-hv1")
	startAgent(t, chassisCfg(goodFiles, goodBundle))
	eventually(t, 60*time.Second, func() error { return realized(srv, "tls-hv1", 1) })
}
