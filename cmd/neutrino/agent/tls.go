package agent

import (
	"crypto/tls"
	"errors"
	"net/http"

	"neutrino/cluster/tlsutil"
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
