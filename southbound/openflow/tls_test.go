package openflow_test

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"neutrino/cluster/tlsutil"
	"neutrino/southbound/openflow"
	"neutrino/southbound/openflow/oftest"
)

// TestSwitchOverTLS connects a real ovs-vswitchd to a TLS controller
// listener through an `ssl:` target: a switch whose certificate is of
// another CA gets no connection; one with a chassis certificate of the
// cluster CA does, and its certificate names its chassis, so a controller
// can refuse a switch that claims another chassis.
func TestSwitchOverTLS(t *testing.T) {
	sw := oftest.StartSwitch(t, "tls")
	dir, err := os.MkdirTemp("", "oftls")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	mk := func(sub string) (ca, caKey string) {
		d := filepath.Join(dir, sub)
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
		ca, caKey, err := tlsutil.CreateCA(d)
		if err != nil {
			t.Fatal(err)
		}
		return ca, caKey
	}
	ca, caKey := mk("ours")
	otherCA, otherKey := mk("other")
	srvCert, srvKey, err := tlsutil.CreateCert(filepath.Join(dir, "ours"), ca, caKey, tlsutil.CertRequest{Node: "s1", Role: tlsutil.RoleServer})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := tlsutil.Load(srvCert, srvKey, ca)
	if err != nil {
		t.Fatal(err)
	}
	ctl := openflow.NewListener(oftest.ListenTCPIn(t, sw.Namespace()), openflow.Options{TLS: &tls.Config{
		MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{srv.Cert},
		ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: srv.Roots,
	}})
	t.Cleanup(func() { ctl.Close() })
	accepted := make(chan *openflow.Conn, 4)
	go func() {
		for {
			c, err := ctl.Accept(context.Background())
			if err != nil {
				return
			}
			accepted <- c
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	setSSL := func(caFile, caKeyFile string) {
		t.Helper()
		c, k, err := tlsutil.CreateCert(filepath.Dir(caFile), caFile, caKeyFile, tlsutil.CertRequest{Node: "ch1", Role: tlsutil.RoleChassis})
		if err != nil {
			t.Fatal(err)
		}
		// The switch trusts our CA for the controller either way: only
		// its own certificate differs.
		if _, err := sw.Vsctl(ctx, "set-ssl", k, c, ca); err != nil {
			t.Fatalf("set-ssl: %v", err)
		}
	}
	setSSL(otherCA, otherKey)
	target := "ssl:" + ctl.Addr().String()
	if _, err := sw.Vsctl(ctx, "--", "--id=@c", "create", "Controller", fmt.Sprintf("target=%q", target), "max_backoff=1000",
		"--", "set", "Bridge", oftest.Bridge, "controller=[@c]"); err != nil {
		t.Fatalf("set controller: %v", err)
	}
	// The switch tries and fails: OVS records the error on the row.
	oftest.Eventually(t, 30*time.Second, "the switch reports a failed connection", func() (bool, error) {
		out, err := sw.Vsctl(ctx, "--columns=is_connected,status", "list", "Controller")
		if err != nil {
			return false, err
		}
		return strings.Contains(out, "last_error") && strings.Contains(out, "is_connected        : false"), nil
	})
	select {
	case c := <-accepted:
		c.Close()
		t.Fatal("a switch with another CA's certificate was accepted")
	default:
	}

	setSSL(ca, caKey)
	var conn *openflow.Conn
	select {
	case conn = <-accepted:
	case <-ctx.Done():
		t.Fatal("the switch with a chassis certificate of our CA did not connect")
	}
	defer conn.Close()
	certs := conn.PeerCertificates()
	if len(certs) == 0 {
		t.Fatal("no peer certificate on a TLS connection")
	}
	if name, role := tlsutil.Identity(certs[0]); name != "ch1" || role != tlsutil.RoleChassis || certs[0].Subject.CommonName != "ch1" {
		t.Fatalf("switch certificate names %q %q (CN %q), want ch1 chassis", name, role, certs[0].Subject.CommonName)
	}
	if err := srv.VerifyPeer(certs, "ch1", tlsutil.RoleChassis); err != nil {
		t.Fatalf("ch1's certificate does not verify: %v", err)
	}
	if err := srv.VerifyPeer(certs, "ch2", tlsutil.RoleChassis); !errors.Is(err, tlsutil.ErrWrongName) {
		t.Fatalf("ch1's certificate passed as ch2's: %v", err)
	}
	if conn.DatapathID() == 0 {
		t.Fatal("no datapath id after the OpenFlow handshake over TLS")
	}
}
