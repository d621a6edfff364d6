package harness

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"os"
	"sync"
)

// trust is every CA of the labs this test process talks to: each lab
// makes its own (TLS is on by default), and one process runs several
// labs at once, so a client checks a server against all of them.
var trust struct {
	mu   sync.Mutex
	pool *x509.CertPool
	seen map[string]bool
}

// TrustCA adds a lab's CA certificate (PEM file) to what the harness's
// HTTP clients (APIHTTP, NetworkClient, Transport) accept.
func TrustCA(file string) error {
	pem, err := os.ReadFile(file)
	if err != nil {
		return fmt.Errorf("harness: CA: %w", err)
	}
	trust.mu.Lock()
	defer trust.mu.Unlock()
	if trust.seen[string(pem)] {
		return nil
	}
	// A new pool each time: clients verify against the old one meanwhile.
	pool := x509.NewCertPool()
	if trust.pool != nil {
		pool = trust.pool.Clone()
	}
	if !pool.AppendCertsFromPEM(pem) {
		return fmt.Errorf("harness: %s holds no PEM certificate", file)
	}
	if trust.seen == nil {
		trust.seen = map[string]bool{}
	}
	trust.pool, trust.seen[string(pem)] = pool, true
	return nil
}

// verifyServer checks an API's certificate against the trusted CAs and
// the host name (an IP for the lab's 127.0.0.1 sockets) dialed.
func verifyServer(cs tls.ConnectionState) error {
	trust.mu.Lock()
	pool := trust.pool
	trust.mu.Unlock()
	if pool == nil {
		return errors.New("harness: https endpoint but no lab CA trusted (TrustCA)")
	}
	if len(cs.PeerCertificates) == 0 {
		return errors.New("harness: server sent no certificate")
	}
	inter := x509.NewCertPool()
	for _, c := range cs.PeerCertificates[1:] {
		inter.AddCert(c)
	}
	_, err := cs.PeerCertificates[0].Verify(x509.VerifyOptions{Roots: pool, Intermediates: inter, DNSName: cs.ServerName})
	return err
}

// clientTLS verifies with verifyServer: the standard check needs one
// fixed pool.
var clientTLS = &tls.Config{
	MinVersion:         tls.VersionTLS12,
	InsecureSkipVerify: true, // verifyServer does it, against every lab CA
	VerifyConnection:   verifyServer,
}

// Transport is an HTTP transport for a lab's API, https or not; idle is
// its MaxIdleConnsPerHost (0: the default).
func Transport(idle int) *http.Transport {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	// A copy each: net/http adds "h2" to a transport's config the first
	// time it is used, so transports sharing one config race.
	tr.TLSClientConfig = clientTLS.Clone()
	if idle > 0 {
		tr.MaxIdleConnsPerHost = idle
	}
	return tr
}

// OpenStackArgs are the `openstack` CLI's flags for the lab of d: noauth
// at its first endpoint, and its CA when it has one.
func OpenStackArgs(d interface{ Endpoint() string }) []string {
	args := []string{"--os-auth-type", "none", "--os-endpoint", d.Endpoint()}
	if ca, ok := d.(interface{ CAFile() string }); ok && ca.CAFile() != "" {
		args = append(args, "--os-cacert", ca.CAFile())
	}
	return args
}
