package ovsdb_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netns"

	"neutrino/cluster/tlsutil"
	"neutrino/southbound/ovsdb"
	"neutrino/southbound/ovsproc"
)

// connectIn runs Connect from inside network namespace ns (where the
// chassis' ovsdb-server listens on 127.0.0.1), as the leader dials a
// chassis across the underlay. The dialing thread moves to ns and ends
// with its goroutine; the established session works from any thread.
func connectIn(ns, endpoint string, cfg ovsdb.Config) (*ovsdb.Client, error) {
	type res struct {
		c   *ovsdb.Client
		err error
	}
	ch := make(chan res)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread dies with us
		h, err := netns.GetFromName(ns)
		if err == nil {
			err = netns.Set(h)
			h.Close()
		}
		if err != nil {
			ch <- res{err: err}
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		c, err := ovsdb.Connect(ctx, endpoint, cfg)
		ch <- res{c, err}
	}()
	r := <-ch
	return r.c, r.err
}

// TestOVSDBOverTLS runs a real ovsdb-server with a `pssl:` remote and a
// chassis certificate (hv1's), and dials it as the leader does (our
// server certificate, expecting the chassis hv1):
//   - that session works;
//   - the leader refuses an ovsdb-server whose certificate names another
//     chassis than the one it dials (hv1's switch cannot stand in for
//     hv2's);
//   - ovsdb-server refuses a client with another CA's certificate, or
//     with none, and a plaintext client.
func TestOVSDBOverTLS(t *testing.T) {
	if err := ovsproc.Available(); err != nil {
		t.Skipf("skipping: %v", err)
	}
	dir := t.TempDir()
	otherDir := t.TempDir()
	ca, caKey, err := tlsutil.CreateCA(dir)
	if err != nil {
		t.Fatal(err)
	}
	otherCA, otherKey, err := tlsutil.CreateCA(otherDir)
	if err != nil {
		t.Fatal(err)
	}
	cert := func(dir, ca, caKey, node string, role tlsutil.Role) ovsproc.SSLFiles {
		t.Helper()
		c, k, err := tlsutil.CreateCert(dir, ca, caKey, tlsutil.CertRequest{Node: node, Role: role})
		if err != nil {
			t.Fatal(err)
		}
		return ovsproc.SSLFiles{Cert: c, Key: k, CA: ca}
	}
	load := func(p ovsproc.SSLFiles) *tlsutil.Bundle {
		t.Helper()
		b, err := tlsutil.Load(p.Cert, p.Key, p.CA)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	hv1 := cert(dir, ca, caKey, "hv1", tlsutil.RoleChassis)
	leader := load(cert(dir, ca, caKey, "s1", tlsutil.RoleServer))
	impostor := load(cert(otherDir, otherCA, otherKey, "s1", tlsutil.RoleServer))

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	const port = 6640 // the instance's own namespace: nothing else binds it
	start := func(files ovsproc.SSLFiles) *ovsproc.Instance {
		t.Helper()
		inst, err := ovsproc.Start(ctx, ovsproc.Options{
			Name:      fmt.Sprintf("tdbtls%d-%d", os.Getpid(), instSeq.Add(1)),
			DBRemotes: []string{fmt.Sprintf("pssl:%d:127.0.0.1", port)},
			DBSSL:     &files,
		})
		if err != nil {
			t.Fatalf("start ovs: %v", err)
		}
		t.Cleanup(func() {
			if err := inst.Stop(); err != nil {
				t.Errorf("stop ovs: %v", err)
			}
		})
		return inst
	}
	ep := fmt.Sprintf("ssl:127.0.0.1:%d", port)

	inst := start(hv1)
	// The leader's session to hv1: works, reads and writes.
	var good *ovsdb.Client
	eventually(t, 20*time.Second, func() (err error) {
		good, err = connectIn(inst.Namespace(), ep, ovsdb.Config{TLS: leader.NodeClientConfig("hv1", tlsutil.RoleChassis)})
		return err
	})
	defer good.Close()
	if id, err := good.SystemID(ctx); err != nil || id != inst.Name() {
		t.Fatalf("system-id over TLS: %q, %v; want %q", id, err, inst.Name())
	}
	if err := good.SetSSL(ctx, hv1.Key, hv1.Cert, hv1.CA); err != nil {
		t.Fatalf("write over TLS: %v", err)
	}

	// refused dials and wants an error saying want (the reason).
	refused := func(what string, cfg *tls.Config, endpoint, want string) {
		t.Helper()
		c, err := connectIn(inst.Namespace(), endpoint, ovsdb.Config{TLS: cfg})
		if err == nil {
			c.Close()
			t.Errorf("%s: connected, want refused", what)
			return
		}
		t.Logf("%s: %v", what, err)
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want an error with %q", what, err, want)
		}
	}
	// The address is hv1's, but the leader expects hv2 there: refused by
	// the leader's own check of the ovsdb-server's certificate.
	refused("expecting hv2 at hv1's ovsdb-server", leader.NodeClientConfig("hv2", tlsutil.RoleChassis), ep,
		"certificate names")
	// ovsdb-server refuses clients: another CA's certificate (the client
	// itself trusts ours, so only the server can be the one refusing),
	// no certificate, and plaintext on the ssl port. TLS 1.2 for these:
	// under 1.3 the server's alert arrives after the client's handshake
	// is done, and the client may see only a closed connection.
	otherCert := leader.NodeClientConfig("hv1", tlsutil.RoleChassis)
	otherCert.Certificates = []tls.Certificate{impostor.Cert}
	otherCert.MaxVersion = tls.VersionTLS12
	refused("another CA's client certificate", otherCert, ep, "unknown certificate authority")
	noCert := leader.NodeClientConfig("hv1", tlsutil.RoleChassis)
	noCert.Certificates = nil
	noCert.MaxVersion = tls.VersionTLS12
	refused("no client certificate", noCert, ep, "handshake failure")
	refused("plaintext", nil, fmt.Sprintf("tcp:127.0.0.1:%d", port), "EOF")
	// Without a TLS configuration an ssl: endpoint is refused up front.
	if _, err := ovsdb.Connect(ctx, ep, ovsdb.Config{}); err == nil || !strings.Contains(err.Error(), "TLS configuration") {
		t.Errorf("ssl: without TLS: %v, want a clear error", err)
	}
	// The good session was never disturbed.
	if _, err := good.SystemID(ctx); err != nil {
		t.Errorf("the leader's session after the refusals: %v", err)
	}

}
