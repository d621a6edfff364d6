package agent_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"neutrino/cluster"
	"neutrino/cluster/clustertest"
	"neutrino/cluster/tlsutil"
	"neutrino/cmd/neutrino/agent"
	"neutrino/fsm"
	"neutrino/northbound"
)

// testPKI is a CA in a temp dir, as `neutrino tls ca create` makes it.
type testPKI struct {
	t             testing.TB
	caCert, caKey string
}

func newTestPKI(t testing.TB) *testPKI {
	t.Helper()
	c, k, err := tlsutil.CreateCA(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return &testPKI{t: t, caCert: c, caKey: k}
}

func (p *testPKI) bundle(node string, role tlsutil.Role) *tlsutil.Bundle {
	p.t.Helper()
	dir := p.t.TempDir()
	c, k, err := tlsutil.CreateCert(dir, p.caCert, p.caKey, tlsutil.CertRequest{Node: node, Role: role,
		IPs: []net.IP{net.IPv4(127, 0, 0, 1)}})
	if err != nil {
		p.t.Fatal(err)
	}
	b, err := tlsutil.Load(c, k, p.caCert)
	if err != nil {
		p.t.Fatal(err)
	}
	return b
}

// client is an HTTPS client that trusts the CA and presents cert (if any).
func (p *testPKI) client(cert *tlsutil.Bundle) *http.Client {
	pem, err := os.ReadFile(p.caCert)
	if err != nil {
		p.t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	cfg := &tls.Config{RootCAs: pool}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{cert.Cert}
	}
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg}}
}

func gossipKey(b byte) []byte { return bytes.Repeat([]byte{b}, 32) }

// postNetwork creates a network through base and returns the status and
// the answer's revision header.
func postNetwork(c *http.Client, base, name string, hdr map[string]string) (int, string, error) {
	body, _ := json.Marshal(map[string]any{"network": map[string]any{"name": name}})
	req, err := http.NewRequest(http.MethodPost, base+"/v2.0/networks", bytes.NewReader(body))
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), nil
}

func revisionOf(a *agent.Agent) uint64 { return a.FSM().State().Read().Revision() }

// TestTLSClusterRefusesImpostors runs three servers with TLS on every
// channel (HTTPS API, Raft over mutual TLS, forwarding over HTTPS with
// server certificates, encrypted gossip) and shows that:
//   - the API answers HTTPS with the cluster's CA, and a write sent to a
//     follower is forwarded to the leader;
//   - a request claiming to be forwarded is refused unless it comes with a
//     server certificate (a chassis certificate gets 403, another CA's
//     certificate fails the handshake);
//   - a chassis agent watches the state over mutual TLS;
//   - a server with another CA's certificate, a chassis certificate or
//     another server's certificate holds the gossip key but is refused
//     as a member (its gossip identity does not check: cluster/identity.go),
//     is never added to Raft and never gets its state, while a correctly
//     certified fourth server does.
func TestTLSClusterRefusesImpostors(t *testing.T) {
	pki := newTestPKI(t)
	other := newTestPKI(t)
	key := [][]byte{gossipKey(7)}
	binds := []string{clustertest.FreeBind(t), clustertest.FreeBind(t), clustertest.FreeBind(t)}
	var servers []*agent.Agent
	for i, b := range binds {
		name := fmt.Sprintf("tls-s%d", i+1)
		servers = append(servers, startAgent(t, agent.Config{Server: true, Node: name, Bind: b,
			BootstrapExpect: 3, Join: binds, TLS: pki.bundle(name, tlsutil.RoleServer), GossipKeys: key}))
	}
	var leader, follower *agent.Agent
	clustertest.Eventually(t, 30*time.Second, func() error {
		leader, follower = nil, nil
		for _, s := range servers {
			if s.Cluster().IsLeader() {
				leader = s
			} else {
				follower = s
			}
		}
		if leader == nil {
			return fmt.Errorf("no leader")
		}
		return nil
	})
	hc := pki.client(nil)

	// HTTPS with the CA, through a follower: forwarded over mutual TLS.
	clustertest.Eventually(t, 30*time.Second, func() error {
		code, body, err := postNetwork(hc, "https://"+follower.HTTPAddr(), "via-follower", nil)
		if err != nil || code != http.StatusCreated {
			return fmt.Errorf("POST through the follower: %d %s %v", code, body, err)
		}
		return nil
	})
	// Plain HTTP gets no API.
	if code, _, err := postNetwork(http.DefaultClient, "http://"+leader.HTTPAddr(), "plain", nil); err == nil && code < 400 {
		t.Fatalf("plaintext POST answered %d", code)
	}
	// A client that does not trust the CA refuses the server.
	if _, _, err := postNetwork(other.client(nil), "https://"+leader.HTTPAddr(), "untrusted", nil); err == nil {
		t.Fatal("a client trusting another CA accepted the API's certificate")
	}

	// Forged forwards straight to the leader.
	fwd := map[string]string{northbound.HeaderForwarded: "tls-s9"}
	if code, body, err := postNetwork(pki.client(pki.bundle("c1", tlsutil.RoleChassis)), "https://"+leader.HTTPAddr(), "forged", fwd); err != nil || code != http.StatusForbidden {
		t.Fatalf("forward with a chassis certificate: %d %s %v, want 403", code, body, err)
	}
	if code, body, err := postNetwork(hc, "https://"+leader.HTTPAddr(), "forged", fwd); err != nil || code != http.StatusForbidden {
		t.Fatalf("forward with no certificate: %d %s %v, want 403", code, body, err)
	}
	if code, _, err := postNetwork(pki.client(other.bundle("tls-s2", tlsutil.RoleServer)), "https://"+leader.HTTPAddr(), "forged", fwd); err == nil {
		t.Fatalf("forward with another CA's server certificate answered %d", code)
	}
	// With a server certificate it is taken, by whichever server leads
	// now (a forwarded request is not forwarded again, so a leader change
	// in between answers 503 and we ask the new leader).
	srvClient := pki.client(pki.bundle("tls-s2", tlsutil.RoleServer))
	clustertest.Eventually(t, 30*time.Second, func() error {
		for _, s := range servers {
			if s.Cluster().IsLeader() {
				leader = s
			}
		}
		code, body, err := postNetwork(srvClient, "https://"+leader.HTTPAddr(), "server-fwd", fwd)
		if err != nil || code != http.StatusCreated {
			return fmt.Errorf("forward with a server certificate: %d %s %v, want 201", code, body, err)
		}
		return nil
	})

	// A chassis agent watches the servers' state over mutual TLS.
	ch := startAgent(t, agent.Config{Node: "tls-c1", Bind: clustertest.FreeBind(t), Join: binds,
		TLS: pki.bundle("tls-c1", tlsutil.RoleChassis), GossipKeys: key})
	w, err := ch.Watch(fsm.TableNetworks)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := w.WaitRevision(ctx, revisionOf(leader)); err != nil {
		t.Fatalf("chassis watch over TLS: %v", err)
	}
	if nets, _ := w.List(fsm.TableNetworks); len(nets) < 2 {
		t.Fatalf("chassis watch sees %d networks, want at least 2", len(nets))
	}

	// Impostors and a good fourth server join.
	badCA := startAgent(t, agent.Config{Server: true, Node: "tls-bad-ca", Bind: clustertest.FreeBind(t), Join: binds,
		TLS: other.bundle("tls-bad-ca", tlsutil.RoleServer), GossipKeys: key})
	badRole := startAgent(t, agent.Config{Server: true, Node: "tls-bad-role", Bind: clustertest.FreeBind(t), Join: binds,
		TLS: pki.bundle("tls-bad-role", tlsutil.RoleChassis), GossipKeys: key})
	// A server certificate of our CA, but naming another server.
	badName := startAgent(t, agent.Config{Server: true, Node: "tls-bad-name", Bind: clustertest.FreeBind(t), Join: binds,
		TLS: pki.bundle("tls-s2", tlsutil.RoleServer), GossipKeys: key})
	good := startAgent(t, agent.Config{Server: true, Node: "tls-s4", Bind: clustertest.FreeBind(t), Join: binds,
		TLS: pki.bundle("tls-s4", tlsutil.RoleServer), GossipKeys: key})
	alive := func(a *agent.Agent) bool {
		for _, m := range leader.Cluster().Members() {
			if m.Name == a.Cluster().NodeName() && m.Status == "alive" {
				return true
			}
		}
		return false
	}
	rejected := leader.Cluster().IdentityRejections()
	clustertest.Eventually(t, 30*time.Second, func() error {
		if !alive(good) {
			return fmt.Errorf("tls-s4 not alive in the leader's gossip")
		}
		refused := leader.Cluster().RefusedMembers()
		for _, a := range []*agent.Agent{badCA, badRole, badName} {
			if _, ok := refused[a.Cluster().NodeName()]; !ok {
				return fmt.Errorf("the leader has not refused %s (refused: %v)", a.Cluster().NodeName(), refused)
			}
		}
		if leader.Cluster().IdentityRejections() == rejected {
			return fmt.Errorf("no gossip identity refused")
		}
		return nil
	})
	clustertest.Eventually(t, 30*time.Second, func() error {
		for _, s := range servers {
			if s.Cluster().IsLeader() {
				leader = s
			}
		}
		code, body, err := postNetwork(hc, "https://"+leader.HTTPAddr(), "after-join", nil)
		if err != nil || code != http.StatusCreated {
			return fmt.Errorf("POST: %d %s %v", code, body, err)
		}
		return nil
	})
	want := revisionOf(leader)
	clustertest.Eventually(t, 60*time.Second, func() error {
		if got := revisionOf(good); got < want {
			return fmt.Errorf("the certified fourth server is at revision %d, want %d", got, want)
		}
		return nil
	})
	var voters []string
	for _, sv := range leader.Cluster().Status().Servers {
		voters = append(voters, sv.Name)
	}
	if !slices.Contains(voters, "tls-s4") || slices.Contains(voters, "tls-bad-ca") || slices.Contains(voters, "tls-bad-role") || slices.Contains(voters, "tls-bad-name") {
		t.Errorf("raft configuration %v: want tls-s4 and no impostor", voters)
	}
	for _, a := range []*agent.Agent{badCA, badRole, badName} {
		if alive(a) {
			t.Errorf("%s counted as a member by the leader's gossip", a.Cluster().NodeName())
		}
		if got := revisionOf(a); got != 0 {
			t.Errorf("%s got Raft state (revision %d)", a.Cluster().NodeName(), got)
		}
		if name, _ := a.Cluster().Leader(); name != "" {
			t.Errorf("%s knows leader %s through Raft", a.Cluster().NodeName(), name)
		}
	}
}

// TestGossipKeyMismatchIsRefused: an agent with another gossip key, or
// none, does not get into an encrypted pool; once each side has the
// other's key installed (the keyring accepts every installed key), the
// mismatched agent gets in.
func TestGossipKeyMismatchIsRefused(t *testing.T) {
	k1, k2 := gossipKey(1), gossipKey(2)
	b64 := base64.StdEncoding.EncodeToString
	bind := clustertest.FreeBind(t)
	srv := startAgent(t, agent.Config{Server: true, Node: "gk-s1", Bind: bind, BootstrapExpect: 1, Join: []string{bind},
		GossipKeys: [][]byte{k1}})
	// The mismatched agents start first: by the time the good one is in,
	// their first join attempts are long over.
	bad := startAgent(t, agent.Config{Node: "gk-bad", Bind: clustertest.FreeBind(t), Join: []string{bind},
		GossipKeys: [][]byte{k2}})
	plain := startAgent(t, agent.Config{Node: "gk-plain", Bind: clustertest.FreeBind(t), Join: []string{bind}})
	good := startAgent(t, agent.Config{Node: "gk-good", Bind: clustertest.FreeBind(t), Join: []string{bind},
		GossipKeys: [][]byte{k1}})
	alive := func(a *agent.Agent) bool {
		for _, m := range srv.Cluster().Members() {
			if m.Name == a.Cluster().NodeName() && m.Status == "alive" {
				return true
			}
		}
		return false
	}
	clustertest.Eventually(t, 30*time.Second, func() error {
		if !alive(good) {
			return fmt.Errorf("gk-good not in the pool")
		}
		return nil
	})
	for _, a := range []*agent.Agent{bad, plain} {
		if alive(a) || len(a.Cluster().Members()) > 1 {
			t.Errorf("%s got into the encrypted pool", a.Cluster().NodeName())
		}
	}
	if err := srv.Cluster().KeyringInstall(b64(k2)); err != nil {
		t.Fatal(err)
	}
	if err := bad.Cluster().KeyringInstall(b64(k1)); err != nil {
		t.Fatal(err)
	}
	clustertest.Eventually(t, 30*time.Second, func() error {
		if !alive(bad) {
			return fmt.Errorf("gk-bad not in the pool after the keys were installed")
		}
		return nil
	})
	if alive(plain) {
		t.Error("gk-plain got into the encrypted pool")
	}
	keys, err := srv.Cluster().Keyring()
	if err != nil || len(keys) != 2 || keys[0] != b64(k1) || keys[1] != b64(k2) {
		t.Fatalf("server keyring %v %v, want [k1 k2]", keys, err)
	}
}

// TestOVSDBSSLNeedsTLSAndLocal: a chassis announcing an ssl: OVSDB is
// refused at start without its TLS material, and without a local endpoint
// for its own sessions (which would otherwise need a client certificate).
func TestOVSDBSSLNeedsTLSAndLocal(t *testing.T) {
	pki := newTestPKI(t)
	cfg := agent.Config{Node: "ssl-hv1", DataDir: t.TempDir(), HTTP: "127.0.0.1:0",
		Chassis: cluster.NodeMeta{OVSDB: "ssl:127.0.0.1:6640"}}
	if _, err := agent.Start(cfg); err == nil || !strings.Contains(err.Error(), "--tls-cert") {
		t.Errorf("ssl: without TLS: %v, want a --tls-* error", err)
	}
	cfg.TLS = pki.bundle("ssl-hv1", tlsutil.RoleChassis)
	if _, err := agent.Start(cfg); err == nil || !strings.Contains(err.Error(), "--ovsdb-local") {
		t.Errorf("ssl: without --ovsdb-local: %v, want an --ovsdb-local error", err)
	}
	cfg.OVSDBLocal = "ssl:127.0.0.1:6641"
	if _, err := agent.Start(cfg); err == nil || !strings.Contains(err.Error(), "--ovsdb-local") {
		t.Errorf("ssl: --ovsdb-local: %v, want an --ovsdb-local error", err)
	}
}
