package controller_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"neutrino/cluster/tlsutil"
	"neutrino/southbound/controller"
	"neutrino/southbound/openflow"
	"neutrino/southbound/openflow/oftest"
)

// TestChassisCertificateMustNameChassis: the switch of chassis hv1
// connects over TLS (`ssl:` target, real ovs-vswitchd) with a certificate
// naming hv2; the controller matches it to hv1 by datapath id, refuses it
// (VerifyChassis) and never programs it. With hv1's own certificate the
// same switch gets its MASTER role and its flows.
func TestChassisCertificateMustNameChassis(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	inst, f, ap, _ := oneChassis(ctx, t, "tls")
	dir, err := os.MkdirTemp("", "ctltls")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	ca, caKey, err := tlsutil.CreateCA(dir)
	if err != nil {
		t.Fatal(err)
	}
	sc, sk, err := tlsutil.CreateCert(dir, ca, caKey, tlsutil.CertRequest{Node: "s1", Role: tlsutil.RoleServer})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := tlsutil.Load(sc, sk, ca)
	if err != nil {
		t.Fatal(err)
	}
	useCert := func(node string) {
		t.Helper()
		c, k, err := tlsutil.CreateCert(dir, ca, caKey, tlsutil.CertRequest{Node: node, Role: tlsutil.RoleChassis})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := inst.Vsctl(ctx, "set-ssl", k, c, ca); err != nil {
			t.Fatalf("set-ssl: %v", err)
		}
	}
	useCert("hv2")

	ln := openflow.NewListener(oftest.ListenTCPIn(t, inst.Namespace()), openflow.Options{TLS: &tls.Config{
		MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{srv.Cert},
		ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: srv.Roots,
	}})
	target := "ssl:" + ln.Addr().String()
	var refused atomic.Int32
	c := controller.New(controller.Config{
		FSM: f, Apply: ap.apply, Listener: ln, Term: func() uint64 { return 1 }, ResyncInterval: 200 * time.Millisecond,
		Controllers: func() []string { return []string{target} },
		VerifyChassis: func(certs []*x509.Certificate, chassis string) error {
			err := srv.VerifyPeer(certs, chassis, tlsutil.RoleChassis)
			if err != nil {
				refused.Add(1)
			}
			return err
		},
	})
	runCtx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.Run(runCtx)
	}()
	t.Cleanup(func() { stop(); <-done })
	c.SetLeadership(true, 1)

	connected := func() bool {
		for _, st := range c.Status() {
			if st.Chassis == "hv1" && st.Connected {
				return true
			}
		}
		return false
	}
	waitFor(t, 60*time.Second, "the controller refuses hv2's certificate for hv1 twice", func() error {
		if connected() {
			return fmt.Errorf("hv1 connected with hv2's certificate")
		}
		if n := refused.Load(); n < 2 {
			return fmt.Errorf("%d refusals", n)
		}
		return nil
	})
	if connected() {
		t.Fatal("hv1 connected with hv2's certificate")
	}
	if out, err := inst.Ofctl(ctx, "dump-flows", "br-int"); err == nil && strings.Contains(out, "cookie=") {
		t.Fatalf("the impersonating switch got flows:\n%s", out)
	}

	useCert("hv1")
	waitFor(t, 60*time.Second, "hv1 with its own certificate is MASTER and realized", func() error {
		for _, st := range c.Status() {
			if st.Chassis == "hv1" && st.Master && st.Realized > 0 {
				return nil
			}
		}
		return fmt.Errorf("status %+v", c.Status())
	})
}
