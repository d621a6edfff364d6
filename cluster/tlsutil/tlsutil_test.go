package tlsutil

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// pki is a CA in a temp dir that signs node certificates on demand.
type pki struct {
	t             *testing.T
	dir           string
	caCert, caKey string
}

func newPKI(t *testing.T) *pki {
	t.Helper()
	dir := t.TempDir()
	c, k, err := CreateCA(dir)
	if err != nil {
		t.Fatal(err)
	}
	return &pki{t: t, dir: dir, caCert: c, caKey: k}
}

func (p *pki) node(req CertRequest) *Bundle {
	p.t.Helper()
	dir := p.t.TempDir()
	c, k, err := CreateCert(dir, p.caCert, p.caKey, req)
	if err != nil {
		p.t.Fatal(err)
	}
	b, err := Load(c, k, p.caCert)
	if err != nil {
		p.t.Fatal(err)
	}
	return b
}

func TestVerifyPeer(t *testing.T) {
	ca := newPKI(t)
	other := newPKI(t)
	verifier := ca.node(CertRequest{Node: "s1", Role: RoleServer})
	good := ca.node(CertRequest{Node: "s2", Role: RoleServer})
	if good.Name != "s2" || good.Role != RoleServer {
		t.Fatalf("loaded identity %q %q, want s2 server", good.Name, good.Role)
	}
	cases := []struct {
		name  string
		peer  *Bundle
		want  string
		role  Role
		isErr error
	}{
		{"good", good, "s2", RoleServer, nil},
		{"any name", good, "", RoleServer, nil},
		{"expired", ca.node(CertRequest{Node: "s2", Role: RoleServer,
			NotBefore: time.Now().Add(-48 * time.Hour), Validity: time.Hour}), "s2", RoleServer, ErrUntrusted},
		{"not yet valid", ca.node(CertRequest{Node: "s2", Role: RoleServer,
			NotBefore: time.Now().Add(time.Hour)}), "s2", RoleServer, ErrUntrusted},
		{"other CA", other.node(CertRequest{Node: "s2", Role: RoleServer}), "s2", RoleServer, ErrUntrusted},
		{"wrong name", ca.node(CertRequest{Node: "s3", Role: RoleServer}), "s2", RoleServer, ErrWrongName},
		{"wrong role", ca.node(CertRequest{Node: "s2", Role: RoleChassis}), "s2", RoleServer, ErrWrongRole},
		{"no certificate", &Bundle{}, "s2", RoleServer, ErrNoCertificate},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var chain []*x509.Certificate
			if tc.peer.Cert.Leaf != nil {
				chain = []*x509.Certificate{tc.peer.Cert.Leaf}
			}
			err := verifier.VerifyPeer(chain, tc.want, tc.role)
			if tc.isErr == nil && err != nil {
				t.Fatalf("refused: %v", err)
			}
			if tc.isErr != nil && !errors.Is(err, tc.isErr) {
				t.Fatalf("got %v, want %v", err, tc.isErr)
			}
		})
	}
}

// TestPeerHandshake runs real TLS handshakes over loopback TCP between a
// PeerServerConfig listener and PeerClientConfig dialers: only a server
// certificate of the same CA gets through, on either side.
func TestPeerHandshake(t *testing.T) {
	ca := newPKI(t)
	other := newPKI(t)
	srv := ca.node(CertRequest{Node: "s1", Role: RoleServer})
	ln, err := tls.Listen("tcp", "127.0.0.1:0", srv.PeerServerConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_ = c.(*tls.Conn).Handshake()
				_, _ = c.Write([]byte("ok"))
			}()
		}
	}()
	dial := func(b *Bundle) error {
		d := tls.Dialer{NetDialer: &net.Dialer{Timeout: 5 * time.Second}, Config: b.PeerClientConfig()}
		c, err := d.Dial("tcp", ln.Addr().String())
		if err != nil {
			return err
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		buf := make([]byte, 2)
		_, err = c.Read(buf) // TLS 1.3: the server's verdict on our certificate arrives here
		return err
	}
	if err := dial(ca.node(CertRequest{Node: "s2", Role: RoleServer})); err != nil {
		t.Fatalf("server of the same CA refused: %v", err)
	}
	for name, b := range map[string]*Bundle{
		"chassis":  ca.node(CertRequest{Node: "c1", Role: RoleChassis}),
		"other CA": other.node(CertRequest{Node: "s2", Role: RoleServer}),
	} {
		if err := dial(b); err == nil {
			t.Errorf("%s: handshake succeeded", name)
		}
	}
	// The dialer refuses a listener whose certificate is not a server's.
	cha := ca.node(CertRequest{Node: "c1", Role: RoleChassis})
	ln2, err := tls.Listen("tcp", "127.0.0.1:0", cha.PeerServerConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer ln2.Close()
	go func() {
		c, err := ln2.Accept()
		if err == nil {
			_ = c.(*tls.Conn).Handshake()
			c.Close()
		}
	}()
	d := tls.Dialer{Config: ca.node(CertRequest{Node: "s2", Role: RoleServer}).PeerClientConfig()}
	if c, err := d.Dial("tcp", ln2.Addr().String()); err == nil {
		c.Close()
		t.Error("dialed a chassis posing as a server")
	} else if !errors.Is(err, ErrWrongRole) {
		t.Errorf("got %v, want ErrWrongRole", err)
	}
}

func TestCreateRefusesOverwrite(t *testing.T) {
	dir := t.TempDir()
	if _, _, err := CreateCA(dir); err != nil {
		t.Fatal(err)
	}
	if _, _, err := CreateCA(dir); err == nil {
		t.Fatal("second CA create overwrote the first")
	}
	st, err := os.Stat(filepath.Join(dir, CAKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("CA key mode %v, want 0600", st.Mode().Perm())
	}
	if _, _, err := CreateCert(dir, filepath.Join(dir, CAFile), filepath.Join(dir, CAKeyFile),
		CertRequest{Node: "n", Role: "admin"}); err == nil {
		t.Fatal("a certificate with an unknown role was made")
	}
}
