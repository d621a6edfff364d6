package cluster

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"time"

	"github.com/hashicorp/raft"

	"neutrino/cluster/tlsutil"
)

// tlsStreamLayer carries Raft over mutual TLS: both ends present a server
// certificate of the cluster CA, so a node with another CA's certificate
// or a chassis certificate can neither join Raft nor pose as a server to
// one (tlsutil.PeerServerConfig, PeerClientConfig).
type tlsStreamLayer struct {
	net.Listener
	adv    net.Addr
	dialer *tls.Dialer
}

// handshakeTimeout bounds a peer's TLS handshake, so a connection that
// never speaks does not hold one of Raft's connection handlers.
const handshakeTimeout = 10 * time.Second

func newTLSStreamLayer(bind string, adv net.Addr, b *tlsutil.Bundle) (*tlsStreamLayer, error) {
	ln, err := net.Listen("tcp", bind)
	if err != nil {
		return nil, err
	}
	return &tlsStreamLayer{
		Listener: tlsListener{ln, b.PeerServerConfig()},
		adv:      adv,
		dialer:   &tls.Dialer{Config: b.PeerClientConfig()},
	}, nil
}

// Dial opens a mutually authenticated connection to another server.
func (l *tlsStreamLayer) Dial(addr raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	d := *l.dialer
	d.NetDialer = &net.Dialer{Timeout: timeout}
	c, err := d.Dial("tcp", string(addr))
	if err != nil {
		return nil, fmt.Errorf("cluster: raft TLS dial %s: %w", addr, err)
	}
	return c, nil
}

// Addr is the advertised address (raft sends it to its peers).
func (l *tlsStreamLayer) Addr() net.Addr { return l.adv }

// tlsListener wraps accepted connections in TLS with a bounded handshake
// deadline; the handshake runs on the first read, in Raft's per-connection
// goroutine, so a slow peer never blocks Accept.
type tlsListener struct {
	net.Listener
	cfg *tls.Config
}

func (l tlsListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &deadlineConn{Conn: tls.Server(c, l.cfg)}, nil
}

// deadlineConn clears the handshake deadline once the handshake is done.
type deadlineConn struct {
	*tls.Conn
	done bool
}

func (c *deadlineConn) Read(p []byte) (int, error) {
	if !c.done {
		_ = c.Conn.SetDeadline(time.Now().Add(handshakeTimeout))
		err := c.Conn.Handshake()
		_ = c.Conn.SetDeadline(time.Time{})
		if err != nil {
			return 0, err
		}
		c.done = true
	}
	return c.Conn.Read(p)
}

// verifyServerCert dials a server's Raft address over TLS and checks that
// its certificate is a server certificate of our CA naming name; nil
// without TLS.
func (c *Cluster) verifyServerCert(name string, addr raft.ServerAddress) error {
	if c.cfg.TLS == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	d := tls.Dialer{NetDialer: &net.Dialer{}, Config: c.cfg.TLS.PeerClientConfig()}
	conn, err := d.DialContext(ctx, "tcp", string(addr))
	if err != nil {
		return err
	}
	defer conn.Close()
	return c.cfg.TLS.VerifyPeer(conn.(*tls.Conn).ConnectionState().PeerCertificates, name, tlsutil.RoleServer)
}
