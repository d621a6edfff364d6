package agent

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"time"

	"neutrino/cluster/tlsutil"
	"neutrino/southbound/ovsdb"
)

// peerTLS is the client side of this node's calls to the servers' APIs:
// its own certificate, and the server's checked against the cluster CA
// and the server role. Nil without TLS.
func (a *Agent) peerTLS() *tls.Config {
	if a.cfg.TLS == nil {
		return nil
	}
	return a.cfg.TLS.PeerClientConfig()
}

// peerTransport is an http.RoundTripper for calls to the servers' APIs;
// nil (http.DefaultTransport) without TLS.
func (a *Agent) peerTransport() http.RoundTripper {
	if a.cfg.TLS == nil {
		return nil
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = a.peerTLS()
	return tr
}

// forwarderCheck accepts a forwarded request only from a server: the
// connection must carry a server certificate of the cluster CA (the
// listener already checked the chain of any certificate given).
func forwarderCheck(b *tlsutil.Bundle) func(*tls.ConnectionState) error {
	return func(cs *tls.ConnectionState) error {
		if cs == nil {
			return errors.New("forwarded over plaintext")
		}
		return b.VerifyPeer(cs.PeerCertificates, "", tlsutil.RoleServer)
	}
}

// TLSFiles are the paths of a node's key, certificate and CA certificate.
type TLSFiles struct{ Key, Cert, CA string }

// openFlowTLS is the server's OpenFlow listener over TLS: switches must
// present a chassis certificate of the cluster CA; which chassis it names
// is checked against the switch's datapath id once known (chassisCheck).
func openFlowTLS(b *tlsutil.Bundle) *tls.Config {
	return &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{b.Cert},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    b.Roots,
	}
}

// chassisCheck is the controller's VerifyChassis: the switch's
// certificate must name the chassis its datapath id belongs to.
func chassisCheck(b *tlsutil.Bundle) func([]*x509.Certificate, string) error {
	return func(certs []*x509.Certificate, chassis string) error {
		return b.VerifyPeer(certs, chassis, tlsutil.RoleChassis)
	}
}

// configureSwitchSSL points the chassis' switch at this node's TLS files,
// so its `ssl:` controller targets work; nothing without TLS or a switch.
func (a *Agent) configureSwitchSSL() error {
	f := a.cfg.TLSFiles
	if a.cfg.TLS == nil || a.cfg.Chassis.OVSDB == "" || f.Cert == "" {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := ovsdb.Connect(ctx, a.localOVSDB(), ovsdb.Config{Logger: a.log})
	if err != nil {
		return fmt.Errorf("agent: switch SSL: %w", err)
	}
	defer c.Close()
	abs := func(p string) string {
		if q, err := filepath.Abs(p); err == nil {
			return q
		}
		return p
	}
	if err := c.SetSSL(ctx, abs(f.Key), abs(f.Cert), abs(f.CA)); err != nil {
		return fmt.Errorf("agent: switch SSL: %w", err)
	}
	return nil
}

// localOVSDB is the endpoint of this chassis' own ovsdb-server for the
// agent's own sessions and ovs-vsctl calls: --ovsdb-local, else --ovsdb.
func (a *Agent) localOVSDB() string {
	if a.cfg.OVSDBLocal != "" {
		return a.cfg.OVSDBLocal
	}
	return a.cfg.Chassis.OVSDB
}

// checkOVSDBTLS refuses an "ssl:" OVSDB endpoint without what it needs:
// the node's TLS material (the leader dials it with mutual TLS, and the
// announced endpoint is then for the leader only) and a local endpoint
// for the agent's own use (ovs-vsctl and the agent's sessions would need
// the certificate too; the local socket needs none).
func checkOVSDBTLS(cfg Config) error {
	if !strings.HasPrefix(cfg.Chassis.OVSDB, "ssl:") {
		return nil
	}
	if cfg.TLS == nil {
		return fmt.Errorf("agent: --ovsdb %s needs --tls-cert, --tls-key and --tls-ca", cfg.Chassis.OVSDB)
	}
	if cfg.OVSDBLocal == "" || strings.HasPrefix(cfg.OVSDBLocal, "ssl:") {
		return fmt.Errorf("agent: --ovsdb %s needs --ovsdb-local (unix:PATH or tcp:IP:PORT of the same ovsdb-server) for the agent's own use", cfg.Chassis.OVSDB)
	}
	return nil
}

// ovsdbTLS is the leader's side of its OVSDB session to a chassis over
// "ssl:": this server's certificate, and the ovsdb-server must hold a
// chassis certificate of our CA naming that chassis, so an address taken
// over by another node does not get the chassis' switch configuration.
func ovsdbTLS(b *tlsutil.Bundle) func(string) *tls.Config {
	return func(chassis string) *tls.Config {
		return b.NodeClientConfig(chassis, tlsutil.RoleChassis)
	}
}
