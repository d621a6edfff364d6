package cluster

import (
	"bytes"
	"fmt"
	"net"
	"strconv"
	"testing"

	"github.com/hashicorp/memberlist"

	"neutrino/cluster/clustertest"
	"neutrino/cluster/tlsutil"
	"neutrino/fsm"
)

// gossipNode is the node as members see it in gossip (memberlist.Node).
func (c *Cluster) gossipNode() memberlist.Node {
	c.mu.Lock()
	defer c.mu.Unlock()
	return memberlist.Node{Name: c.cfg.NodeName, Addr: net.ParseIP(c.addrs.advertiseHost), Port: uint16(c.addrs.gossipPort), Meta: bytes.Clone(c.metaBuf)}
}

// testCA is a cluster CA in a temp dir that issues node bundles.
type testCA struct {
	t         *testing.T
	cert, key string
}

func newTestCA(t *testing.T) *testCA {
	dir := t.TempDir()
	cert, key, err := tlsutil.CreateCA(dir)
	if err != nil {
		t.Fatal(err)
	}
	return &testCA{t: t, cert: cert, key: key}
}

func (ca *testCA) bundle(node string, role tlsutil.Role) *tlsutil.Bundle {
	dir := ca.t.TempDir() // one dir per bundle: file names are per node
	cert, key, err := tlsutil.CreateCert(dir, ca.cert, ca.key, tlsutil.CertRequest{Node: node, Role: role})
	if err != nil {
		ca.t.Fatal(err)
	}
	b, err := tlsutil.Load(cert, key, ca.cert)
	if err != nil {
		ca.t.Fatal(err)
	}
	return b
}

// TestGossipIdentityImpostors runs a TLS server and, on one gossip
// address in turn, nodes holding the gossip key that claim to be chassis
// gid-x with a gateway role: one with the certificate of another node of
// the cluster CA, one with a certificate named gid-x by another CA. The
// server refuses both (they never reach Members(), so no chassis record,
// no gateway); then the genuine gid-x joins from the same address and
// becomes an up chassis.
func TestGossipIdentityImpostors(t *testing.T) {
	ca, other := newTestCA(t), newTestCA(t)
	key := []byte("0123456789abcdef0123456789abcdef")
	tc := newTestCluster(t, 1, func(c *Config) {
		c.TLS = ca.bundle(c.NodeName, tlsutil.RoleServer)
		c.GossipKeys = [][]byte{key}
	})
	srv := tc.leader()
	port := freePortPair(t)
	bind := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	chassis := func(b *tlsutil.Bundle) *Cluster {
		t.Helper()
		c, err := New(Config{NodeName: "gid-x", BindAddr: bind, Join: []string{srv.gossipAddr()}, Logger: testLogger(),
			TLS: b, GossipKeys: [][]byte{key},
			Meta: NodeMeta{TunnelIP: "192.0.2.66", OVSDB: "tcp:127.0.0.1:6640", Roles: []string{"gateway"}}})
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Shutdown() })
		return c
	}
	inMembers := func(c *Cluster, name string) bool {
		_, ok := c.member(name)
		return ok
	}

	for _, imp := range []struct {
		name string
		cert *tlsutil.Bundle
	}{
		{"certificate of another node", ca.bundle("gid-other", tlsutil.RoleChassis)},
		{"certificate of another CA", other.bundle("gid-x", tlsutil.RoleChassis)},
	} {
		before := srv.c.IdentityRejections()
		c := chassis(imp.cert)
		// The impostor is in the server's gossip pool (memberlist's
		// count), not in its members.
		eventually(t, convergeWait, func() error {
			if n := srv.c.gossip.NumMembers(); n < 2 {
				return fmt.Errorf("%s: impostor not in the server's gossip pool (%d nodes)", imp.name, n)
			}
			if srv.c.IdentityRejections() == before {
				return fmt.Errorf("%s: server has not refused the impostor yet", imp.name)
			}
			return nil
		})
		if _, ok := srv.c.RefusedMembers()["gid-x"]; !ok {
			t.Fatalf("%s: impostor not among the refused members", imp.name)
		}
		if inMembers(srv.c, "gid-x") {
			t.Fatalf("%s: impostor counted as a member", imp.name)
		}
		if ch := srv.fsm.State().Read().Chassis("gid-x"); ch != nil {
			t.Fatalf("%s: impostor got a chassis record: %+v", imp.name, ch)
		}
		if err := c.Leave(convergeWait); err != nil {
			t.Fatal(err)
		}
		if err := c.Shutdown(); err != nil {
			t.Fatal(err)
		}
	}

	rejected := srv.c.IdentityRejections()
	chassis(ca.bundle("gid-x", tlsutil.RoleChassis))
	eventually(t, convergeWait, func() error {
		ch := srv.fsm.State().Read().Chassis("gid-x")
		if ch == nil || !ch.Up || ch.TunnelIP != "192.0.2.66" {
			return fmt.Errorf("genuine chassis not up: %+v", ch)
		}
		return nil
	})
	if _, ok := srv.c.RefusedMembers()["gid-x"]; ok {
		t.Fatal("genuine chassis still listed as refused")
	}
	if got := srv.c.IdentityRejections(); got != rejected {
		t.Fatalf("genuine chassis refused %d times", got-rejected)
	}
}

// TestGossipIdentitySignature checks the signature's binding: a member's
// metadata verifies only under its own name, address and bytes, and a
// chassis certificate cannot back a server's claims.
func TestGossipIdentitySignature(t *testing.T) {
	ca := newTestCA(t)
	node := func(name string, role tlsutil.Role, server bool) *Cluster {
		cfg := Config{NodeName: name, BindAddr: clustertest.FreeBind(t), Logger: testLogger(), TLS: ca.bundle(name, role)}
		if server {
			cfg.Server, cfg.DataDir, cfg.FSM = true, t.TempDir(), fsm.New(testLogger())
		}
		c, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	a := node("sig-a", tlsutil.RoleChassis, false)
	b := node("sig-b", tlsutil.RoleChassis, false)
	b.certs[a.ownFP] = a.cfg.TLS.Cert.Leaf
	self := a.gossipNode()
	meta, err := DecodeMeta(self.Meta)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.checkIdentity(&self, meta); err != nil {
		t.Fatalf("genuine metadata refused: %v", err)
	}
	moved := self
	moved.Port++
	if err := b.checkIdentity(&moved, meta); err == nil {
		t.Fatal("metadata replayed from another address accepted")
	}
	renamed := self
	renamed.Name = "sig-b"
	if err := b.checkIdentity(&renamed, meta); err == nil {
		t.Fatal("metadata under another name accepted")
	}
	edited := self
	edited.Meta = bytes.Replace(self.Meta, []byte(`"r":"chassis"`), []byte(`"r":"server"`), 1)
	em, err := DecodeMeta(edited.Meta)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.checkIdentity(&edited, em); err == nil {
		t.Fatal("edited metadata accepted")
	}
	// Unsigned metadata (an older release) is refused unless allowed;
	// signed metadata is checked either way.
	unsigned := self
	if unsigned.Meta, err = EncodeMeta(meta); err != nil {
		t.Fatal(err)
	}
	if b.admit(&unsigned, meta, StatusAlive) {
		t.Fatal("unsigned metadata admitted")
	}
	b.cfg.AllowUnsignedGossip = true
	if !b.admit(&unsigned, meta, StatusAlive) {
		t.Fatal("unsigned metadata refused with AllowUnsignedGossip")
	}
	if b.admit(&renamed, meta, StatusAlive) {
		t.Fatal("signed metadata under another name admitted with AllowUnsignedGossip")
	}
	b.cfg.AllowUnsignedGossip = false
	// A server's claims need a server certificate.
	s := node("sig-s", tlsutil.RoleChassis, true)
	b.certs[s.ownFP] = s.cfg.TLS.Cert.Leaf
	sn := s.gossipNode()
	sm, err := DecodeMeta(sn.Meta)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.checkIdentity(&sn, sm); err == nil {
		t.Fatal("server metadata backed by a chassis certificate accepted")
	}
}

// BenchmarkCheckIdentity is the cost a gossip event pays with TLS on:
// the certificate chain check and the signature verification.
func BenchmarkCheckIdentity(b *testing.B) {
	dir := b.TempDir()
	caCert, caKey, err := tlsutil.CreateCA(dir)
	if err != nil {
		b.Fatal(err)
	}
	mk := func(name string) *Cluster {
		cert, key, err := tlsutil.CreateCert(b.TempDir(), caCert, caKey, tlsutil.CertRequest{Node: name, Role: tlsutil.RoleChassis})
		if err != nil {
			b.Fatal(err)
		}
		bundle, err := tlsutil.Load(cert, key, caCert)
		if err != nil {
			b.Fatal(err)
		}
		c, err := New(Config{NodeName: name, BindAddr: clustertest.FreeBind(b), Logger: testLogger(), TLS: bundle,
			Meta: NodeMeta{TunnelIP: "192.0.2.7", OVSDB: "ssl:192.0.2.7:6640", Roles: []string{"compute", "gateway"}}})
		if err != nil {
			b.Fatal(err)
		}
		return c
	}
	a, r := mk("bench-a"), mk("bench-r")
	r.certs[a.ownFP] = a.cfg.TLS.Cert.Leaf
	n := a.gossipNode()
	meta, err := DecodeMeta(n.Meta)
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if err := r.checkIdentity(&n, meta); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(n.Meta)), "meta-bytes")
}
