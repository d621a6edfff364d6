package main

import (
	"bytes"
	"context"
	"crypto/x509"
	"fmt"
	"path/filepath"
	"testing"

	"neutrino/cluster/tlsutil"
)

// TestTLSCommands makes a CA and node certificates with the CLI and reads
// them back: names, roles, and that each verifies against the CA.
func TestTLSCommands(t *testing.T) {
	dir := t.TempDir()
	noEnv := func(string) (string, bool) { return "", false }
	cli := func(args ...string) (string, int) {
		var out, errOut bytes.Buffer
		code := run(context.Background(), args, &out, &errOut, noEnv)
		return out.String() + errOut.String(), code
	}
	if out, code := cli("tls", "ca", "create", "--dir", dir); code != 0 {
		t.Fatalf("ca create: %s", out)
	}
	if out, code := cli("tls", "ca", "create", "--dir", dir); code == 0 {
		t.Fatalf("a second ca create succeeded: %s", out)
	}
	if out, code := cli("tls", "cert", "create", "--dir", dir, "--node", "s1", "--server", "--ip", "10.1.2.3"); code != 0 {
		t.Fatalf("cert create server: %s", out)
	}
	if out, code := cli("tls", "cert", "create", "--dir", dir, "--node", "c1", "--chassis"); code != 0 {
		t.Fatalf("cert create chassis: %s", out)
	}
	if out, code := cli("tls", "cert", "create", "--dir", dir, "--node", "x", "--server", "--chassis"); code == 0 {
		t.Fatalf("both roles accepted: %s", out)
	}
	ca := filepath.Join(dir, tlsutil.CAFile)
	for _, want := range []struct {
		node string
		role tlsutil.Role
	}{{"s1", tlsutil.RoleServer}, {"c1", tlsutil.RoleChassis}} {
		c, k := tlsutil.NodeFiles(want.node, want.role)
		b, err := tlsutil.Load(filepath.Join(dir, c), filepath.Join(dir, k), ca)
		if err != nil {
			t.Fatal(err)
		}
		if b.Name != want.node || b.Role != want.role || b.Cert.Leaf.Subject.CommonName != want.node {
			t.Errorf("%s: loaded %q %q CN %q", c, b.Name, b.Role, b.Cert.Leaf.Subject.CommonName)
		}
		if want.role == tlsutil.RoleServer {
			if ips := fmt.Sprint(b.Cert.Leaf.IPAddresses); ips != "[10.1.2.3 127.0.0.1]" {
				t.Errorf("server certificate IPs %s, want [10.1.2.3 127.0.0.1]", ips)
			}
		}
		if err := b.VerifyPeer(nil, "", ""); err == nil {
			t.Error("an empty chain verified")
		}
		if err := b.VerifyPeer([]*x509.Certificate{b.Cert.Leaf}, want.node, want.role); err != nil {
			t.Errorf("%s does not verify against its CA: %v", c, err)
		}
	}
}
