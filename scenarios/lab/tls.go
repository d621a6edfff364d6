package lab

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"

	"neutrino/cluster/tlsutil"
	"neutrino/scenarios"
	"neutrino/southbound/ovsproc"
)

// EnvTLS set to "off" makes Up run a plaintext lab (Options.NoTLS).
const EnvTLS = "NEUTRINO_LAB_TLS"

// tlsDir holds the lab's CA and node certificates, inside the lab's dir.
const tlsDir = "tls"

// tlsCA makes the lab's CA (what `neutrino tls ca create` makes) and
// records it in the state.
func (b *builder) tlsCA() error {
	dir := filepath.Join(b.o.Dir, tlsDir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("lab: tls: %w", err)
	}
	ca, _, err := tlsutil.CreateCA(dir)
	if err != nil {
		return fmt.Errorf("lab: tls: %w", err)
	}
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return fmt.Errorf("lab: gossip key: %w", err)
	}
	// Kept beside the CA (0600) and handed to agents on their command
	// line: the lab is one machine's root's, and a restarted agent reads
	// its keyring from its data dir anyway.
	if err := os.WriteFile(filepath.Join(dir, "gossip.key"), []byte(base64.StdEncoding.EncodeToString(key)), 0o600); err != nil {
		return fmt.Errorf("lab: gossip key: %w", err)
	}
	return b.store.update(func(st *State) { st.CA = ca })
}

// nodeTLS makes a node's certificate (`neutrino tls cert create --node
// NAME --server|--chassis --ip IP`), records it on n and returns the
// agent's TLS and gossip key flags.
func (b *builder) nodeTLS(n *Node, p plannedNode) ([]string, error) {
	dir := filepath.Join(b.o.Dir, tlsDir)
	ca := filepath.Join(dir, tlsutil.CAFile)
	role := tlsutil.RoleChassis
	if p.kind == scenarios.KindServer {
		role = tlsutil.RoleServer
	}
	cert, key, err := tlsutil.CreateCert(dir, ca, filepath.Join(dir, tlsutil.CAKeyFile),
		// 127.0.0.1: a server's API socket in the root namespace, as the
		// CLI's certificates name it.
		tlsutil.CertRequest{Node: n.Name, Role: role, IPs: []net.IP{p.ip.AsSlice(), net.IPv4(127, 0, 0, 1)},
			DNS: []string{"localhost"}})
	if err != nil {
		return nil, fmt.Errorf("lab: tls: %w", err)
	}
	gk, err := os.ReadFile(filepath.Join(dir, "gossip.key"))
	if err != nil {
		return nil, fmt.Errorf("lab: gossip key: %w", err)
	}
	n.TLSCert, n.TLSKey = cert, key
	return []string{"--tls-cert", cert, "--tls-key", key, "--tls-ca", ca, "--gossip-key", string(gk)}, nil
}

// dbRemotes are a chassis' ovsdb-server remotes on the underlay: pssl:
// with the node's certificate in a TLS lab, ptcp: otherwise.
func dbRemotes(n *Node) ([]string, *ovsproc.SSLFiles) {
	if n.TLSCert == "" {
		return []string{fmt.Sprintf("ptcp:%d:%s", ovsdbPort, n.IP)}, nil
	}
	ca := filepath.Join(filepath.Dir(n.TLSCert), tlsutil.CAFile)
	return []string{fmt.Sprintf("pssl:%d:%s", ovsdbPort, n.IP)},
		&ovsproc.SSLFiles{Key: n.TLSKey, Cert: n.TLSCert, CA: ca}
}

// ovsdbEndpoint is the endpoint the leader reaches a chassis' OVSDB at.
func ovsdbEndpoint(n *Node) string {
	scheme := "tcp"
	if n.TLSCert != "" {
		scheme = "ssl"
	}
	return scheme + ":" + net.JoinHostPort(n.IP, strconv.Itoa(ovsdbPort))
}
