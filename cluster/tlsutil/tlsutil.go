// Package tlsutil makes and loads Neutrino's certificates and checks who a
// peer is: a node's name and role (server or chassis) travel in its
// certificate, signed by the cluster's own CA (`neutrino tls ca create`,
// `neutrino tls cert create`, in the style of Consul's `consul tls`).
//
// A node certificate carries its name twice: as the subject's CommonName
// (what OVS and people read) and as the URI SAN neutrino://node/NAME (what
// VerifyPeer checks: a URI cannot be confused with a host name the API's
// clients verify). Its role is the subject's OrganizationalUnit, "server" or
// "chassis": both roles need client and server authentication (mutual TLS
// both ways), so the extended key usage cannot tell them apart.
package tlsutil

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"time"
)

// Role is what a node is allowed to be in the cluster.
type Role string

// Roles a node certificate names in its OrganizationalUnit.
const (
	RoleServer  Role = "server"
	RoleChassis Role = "chassis"
)

// Validity of what `neutrino tls` makes, Consul's defaults.
const (
	CAValidity   = 5 * 365 * 24 * time.Hour
	CertValidity = 365 * 24 * time.Hour
)

// File names `neutrino tls` writes; the CA files sit beside the node files.
const (
	CAFile    = "neutrino-ca.pem"
	CAKeyFile = "neutrino-ca-key.pem"
)

// uriScheme and uriHost make a node's URI SAN: neutrino://node/NAME.
const (
	uriScheme = "neutrino"
	uriHost   = "node"
)

// Errors VerifyPeer wraps, for callers that branch on them.
var (
	ErrNoCertificate = errors.New("tls: peer presented no certificate")
	ErrUntrusted     = errors.New("tls: peer certificate not signed by the cluster CA or not valid now")
	ErrWrongName     = errors.New("tls: peer certificate names another node")
	ErrWrongRole     = errors.New("tls: peer certificate has another role")
)

// NodeFiles are the certificate and key file names of a node's role.
func NodeFiles(node string, role Role) (cert, key string) {
	return node + "-" + string(role) + ".pem", node + "-" + string(role) + "-key.pem"
}

// CreateCA writes a new CA certificate and key (ECDSA P-256, valid for
// CAValidity) to dir and returns their paths. Existing files are kept: an
// operator who overwrites a CA locks every node out.
func CreateCA(dir string) (certPath, keyPath string, err error) {
	certPath, keyPath = filepath.Join(dir, CAFile), filepath.Join(dir, CAKeyFile)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", "", fmt.Errorf("tls: generate CA key: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "Neutrino CA", Organization: []string{"Neutrino"}},
		NotBefore:             now.Add(-time.Minute),
		NotAfter:              now.Add(CAValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return "", "", fmt.Errorf("tls: sign CA: %w", err)
	}
	if err := writePair(certPath, keyPath, der, key); err != nil {
		return "", "", err
	}
	return certPath, keyPath, nil
}

// CertRequest describes a node certificate.
type CertRequest struct {
	Node string
	Role Role
	// IPs and DNS are the addresses clients dial this node's API (or
	// switches its OpenFlow listener) at; they are checked by standard
	// TLS clients (gophercloud, curl), not by VerifyPeer.
	IPs []net.IP
	DNS []string
	// NotBefore and Validity default to now and CertValidity.
	NotBefore time.Time
	Validity  time.Duration
}

// CreateCert signs a node certificate with the CA in caCert/caKey and
// writes it and its key (NodeFiles) to dir, returning their paths.
func CreateCert(dir, caCert, caKey string, req CertRequest) (certPath, keyPath string, err error) {
	ca, caPriv, err := loadCA(caCert, caKey)
	if err != nil {
		return "", "", err
	}
	der, key, err := signNode(ca, caPriv, req)
	if err != nil {
		return "", "", err
	}
	c, k := NodeFiles(req.Node, req.Role)
	certPath, keyPath = filepath.Join(dir, c), filepath.Join(dir, k)
	if err := writePair(certPath, keyPath, der, key); err != nil {
		return "", "", err
	}
	return certPath, keyPath, nil
}

func signNode(ca *x509.Certificate, caKey *ecdsa.PrivateKey, req CertRequest) ([]byte, *ecdsa.PrivateKey, error) {
	if req.Node == "" {
		return nil, nil, errors.New("tls: a node certificate needs a node name")
	}
	if req.Role != RoleServer && req.Role != RoleChassis {
		return nil, nil, fmt.Errorf("tls: role %q: want %s or %s", req.Role, RoleServer, RoleChassis)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("tls: generate key: %w", err)
	}
	nb := req.NotBefore
	if nb.IsZero() {
		nb = time.Now().Add(-time.Minute)
	}
	validity := req.Validity
	if validity == 0 {
		validity = CertValidity
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject: pkix.Name{CommonName: req.Node, Organization: []string{"Neutrino"},
			OrganizationalUnit: []string{string(req.Role)}},
		NotBefore:   nb,
		NotAfter:    nb.Add(validity),
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		URIs:        []*url.URL{NodeURI(req.Node)},
		IPAddresses: req.IPs,
		DNSNames:    req.DNS,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return nil, nil, fmt.Errorf("tls: sign %s: %w", req.Node, err)
	}
	return der, key, nil
}

// NodeURI is the URI SAN naming a node.
func NodeURI(node string) *url.URL {
	return &url.URL{Scheme: uriScheme, Host: uriHost, Path: "/" + node}
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		panic(err) // crypto/rand does not fail on Linux
	}
	return n
}

// writePair writes a certificate and its key, refusing to overwrite.
func writePair(certPath, keyPath string, der []byte, key *ecdsa.PrivateKey) error {
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return fmt.Errorf("tls: encode key: %w", err)
	}
	for _, p := range []string{certPath, keyPath} {
		if _, err := os.Stat(p); err == nil {
			return fmt.Errorf("tls: %s exists; remove it first or choose another --dir", p)
		}
	}
	if err := os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		return fmt.Errorf("tls: write key: %w", err)
	}
	if err := os.WriteFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		os.Remove(keyPath)
		return fmt.Errorf("tls: write certificate: %w", err)
	}
	return nil
}

func loadCA(certPath, keyPath string) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	pair, err := tls.LoadX509KeyPair(certPath, keyPath)
	if err != nil {
		return nil, nil, fmt.Errorf("tls: load CA: %w", err)
	}
	ca, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		return nil, nil, fmt.Errorf("tls: parse CA: %w", err)
	}
	key, ok := pair.PrivateKey.(*ecdsa.PrivateKey)
	if !ok || !ca.IsCA {
		return nil, nil, fmt.Errorf("tls: %s is not an ECDSA CA made by `neutrino tls ca create`", certPath)
	}
	return ca, key, nil
}

// Bundle is a node's loaded TLS material: its certificate and the CA it
// trusts peers by.
type Bundle struct {
	Cert  tls.Certificate
	Roots *x509.CertPool
	// Name and Role are read from the node's own certificate.
	Name string
	Role Role
}

// Load reads a node's certificate, key and CA file.
func Load(certFile, keyFile, caFile string) (*Bundle, error) {
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("tls: load %s: %w", certFile, err)
	}
	leaf, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		return nil, fmt.Errorf("tls: parse %s: %w", certFile, err)
	}
	pair.Leaf = leaf
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("tls: read CA: %w", err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("tls: %s holds no PEM certificate", caFile)
	}
	name, role := Identity(leaf)
	return &Bundle{Cert: pair, Roots: roots, Name: name, Role: role}, nil
}

// Identity reads the node name (from the URI SAN) and role of a node
// certificate; both are empty when it names none.
func Identity(c *x509.Certificate) (string, Role) {
	name := ""
	for _, u := range c.URIs {
		if u.Scheme == uriScheme && u.Host == uriHost && len(u.Path) > 1 {
			name = u.Path[1:]
			break
		}
	}
	var role Role
	if len(c.Subject.OrganizationalUnit) == 1 {
		role = Role(c.Subject.OrganizationalUnit[0])
	}
	return name, role
}

// VerifyPeer checks a peer's certificate chain (leaf first) against the
// CA, now, and that it names node name (any node when name is "") with
// role role (any role when role is "").
func (b *Bundle) VerifyPeer(chain []*x509.Certificate, name string, role Role) error {
	if len(chain) == 0 {
		return ErrNoCertificate
	}
	inter := x509.NewCertPool()
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	if _, err := chain[0].Verify(x509.VerifyOptions{Roots: b.Roots, Intermediates: inter,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		return fmt.Errorf("%w: %w", ErrUntrusted, err)
	}
	got, gotRole := Identity(chain[0])
	if got == "" || (name != "" && got != name) {
		return fmt.Errorf("%w: want %q, certificate names %q", ErrWrongName, name, got)
	}
	if role != "" && gotRole != role {
		return fmt.Errorf("%w: want %s, certificate of %s is %q", ErrWrongRole, role, got, gotRole)
	}
	return nil
}

// verifyRaw is VerifyPeer for tls.Config.VerifyPeerCertificate.
func (b *Bundle) verifyRaw(raw [][]byte, name string, role Role) error {
	chain := make([]*x509.Certificate, 0, len(raw))
	for _, r := range raw {
		c, err := x509.ParseCertificate(r)
		if err != nil {
			return fmt.Errorf("tls: peer certificate: %w", err)
		}
		chain = append(chain, c)
	}
	return b.VerifyPeer(chain, name, role)
}

// PeerServerConfig is the listener side of mutual TLS between servers
// (Raft): the peer must present a server certificate of our CA.
func (b *Bundle) PeerServerConfig() *tls.Config {
	return &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{b.Cert},
		// The chain is checked in VerifyPeerCertificate, with the role.
		ClientAuth: tls.RequireAnyClientCert,
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			return b.verifyRaw(raw, "", RoleServer)
		},
	}
}

// PeerClientConfig is the dialing side of mutual TLS to a server (Raft,
// forwarding): peers are dialed by address, which a node certificate need
// not name, so the standard host name check is replaced by the CA and
// role check.
func (b *Bundle) PeerClientConfig() *tls.Config {
	return &tls.Config{
		MinVersion:         tls.VersionTLS12,
		Certificates:       []tls.Certificate{b.Cert},
		InsecureSkipVerify: true, // verified below: CA, validity, role
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			return b.verifyRaw(raw, "", RoleServer)
		},
	}
}

// NodeClientConfig dials one named node, presenting our certificate: the
// peer must hold a certificate of our CA naming node name with role role.
// Used where the address dialed belongs to a known node (the leader's
// OVSDB session to a chassis), so an impostor at that address is refused.
func (b *Bundle) NodeClientConfig(name string, role Role) *tls.Config {
	return &tls.Config{
		MinVersion:         tls.VersionTLS12,
		Certificates:       []tls.Certificate{b.Cert},
		InsecureSkipVerify: true, // verified below: CA, validity, name, role
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			return b.verifyRaw(raw, name, role)
		},
	}
}

// APIServerConfig is the API's HTTPS listener: clients (the CLI,
// gophercloud) need no certificate, but one they present must be of our
// CA; a forwarding server's is checked for its role by the API.
func (b *Bundle) APIServerConfig() *tls.Config {
	return &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{b.Cert},
		ClientAuth:   tls.VerifyClientCertIfGiven,
		ClientCAs:    b.Roots,
	}
}
