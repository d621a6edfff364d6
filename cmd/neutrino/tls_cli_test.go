package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/networks"

	"neutrino/cluster"
	"neutrino/cluster/clustertest"
	"neutrino/cluster/tlsutil"
	"neutrino/cmd/neutrino/agent"
	"neutrino/northbound"
)

// tlsCluster is servers and chassis agents with TLS on every channel and
// encrypted gossip, certificates made by the CLI's `neutrino tls`.
type tlsCluster struct {
	t        *testing.T
	dir      string // CA and node files
	servers  []*agent.Agent
	chassis  []*agent.Agent
	leader   *agent.Agent
	endpoint string
}

func cliRun(t *testing.T, args ...string) (string, int) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := run(context.Background(), args, &out, &errOut, func(string) (string, bool) { return "", false })
	return out.String() + errOut.String(), code
}

func startTLSCluster(t *testing.T, nServers, nChassis int, gossipKey []byte) *tlsCluster {
	t.Helper()
	tc := &tlsCluster{t: t, dir: t.TempDir()}
	if out, code := cliRun(t, "tls", "ca", "create", "--dir", tc.dir); code != 0 {
		t.Fatal(out)
	}
	bundle := func(node string, role tlsutil.Role) *tlsutil.Bundle {
		if out, code := cliRun(t, "tls", "cert", "create", "--dir", tc.dir, "--node", node, "--"+string(role)); code != 0 {
			t.Fatal(out)
		}
		c, k := tlsutil.NodeFiles(node, role)
		b, err := tlsutil.Load(tc.dir+"/"+c, tc.dir+"/"+k, tc.dir+"/"+tlsutil.CAFile)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	binds := make([]string, nServers)
	for i := range binds {
		binds[i] = clustertest.FreeBind(t)
	}
	start := func(cfg agent.Config) *agent.Agent {
		cfg.DataDir, cfg.HTTP, cfg.API = t.TempDir(), "127.0.0.1:0", northbound.DefaultConfig()
		cfg.Join, cfg.GossipKeys = binds, [][]byte{gossipKey}
		// memberlist's LAN timings, not our fast ones: 8 engineers' tests
		// share 2 cores here, and with 100/50 ms probes an idle 5-node
		// pool in one process sees false deaths under that load (load
		// average 38 measured) with no rotation at all.
		cfg.ProbeInterval, cfg.ProbeTimeout, cfg.SuspicionMult = time.Second, 500*time.Millisecond, 4
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
		a, err := agent.Start(cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_ = a.Shutdown(ctx)
		})
		return a
	}
	for i, b := range binds {
		name := fmt.Sprintf("tcli-s%d", i+1)
		tc.servers = append(tc.servers, start(agent.Config{Server: true, Node: name, Bind: b,
			BootstrapExpect: nServers, TLS: bundle(name, tlsutil.RoleServer)}))
	}
	for i := range nChassis {
		name := fmt.Sprintf("tcli-c%d", i+1)
		tc.chassis = append(tc.chassis, start(agent.Config{Node: name, Bind: clustertest.FreeBind(t),
			TLS: bundle(name, tlsutil.RoleChassis)}))
	}
	clustertest.Eventually(t, 30*time.Second, func() error {
		for _, s := range tc.servers {
			if s.Cluster().IsLeader() {
				tc.leader = s
				return nil
			}
		}
		return fmt.Errorf("no leader")
	})
	tc.endpoint = "https://" + tc.leader.HTTPAddr()
	return tc
}

func (tc *tlsCluster) all() []*agent.Agent { return append(slices.Clone(tc.servers), tc.chassis...) }

// caClient is an HTTP client that trusts the cluster CA.
func (tc *tlsCluster) caClient() http.Client {
	pem, err := os.ReadFile(tc.dir + "/" + tlsutil.CAFile)
	if err != nil {
		tc.t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	return http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
}

// TestHTTPSClients: the CLI (--ca) and gophercloud (its HTTP client with
// the CA) work against the HTTPS API; without the CA both refuse it.
func TestHTTPSClients(t *testing.T) {
	tc := startTLSCluster(t, 1, 0, bytes.Repeat([]byte{3}, 32))
	ca := tc.dir + "/" + tlsutil.CAFile
	clustertest.Eventually(t, 30*time.Second, func() error {
		if out, code := cliRun(t, "--endpoint", tc.endpoint, "--ca", ca, "network", "create", "cli-https"); code != 0 {
			return fmt.Errorf("network create over HTTPS: %s", out)
		}
		return nil
	})
	if out, code := cliRun(t, "--endpoint", tc.endpoint, "network", "list"); code == 0 || !strings.Contains(out, "certificate") {
		t.Fatalf("the CLI without --ca accepted the cluster's certificate: %d %s", code, out)
	}
	sc := &gophercloud.ServiceClient{
		ProviderClient: &gophercloud.ProviderClient{HTTPClient: tc.caClient()},
		Endpoint:       tc.endpoint + "/",
		ResourceBase:   tc.endpoint + "/v2.0/",
		Type:           "network",
	}
	ctx := context.Background()
	n, err := networks.Create(ctx, sc, networks.CreateOpts{Name: "gopher-https"}).Extract()
	if err != nil {
		t.Fatalf("gophercloud create over HTTPS: %v", err)
	}
	got, err := networks.Get(ctx, sc, n.ID).Extract()
	if err != nil || got.Name != "gopher-https" {
		t.Fatalf("gophercloud get over HTTPS: %+v %v", got, err)
	}
	pages, err := networks.List(sc, networks.ListOpts{Name: "cli-https"}).AllPages(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if l, _ := networks.ExtractNetworks(pages); len(l) != 1 {
		t.Fatalf("gophercloud lists %d networks named cli-https, want 1", len(l))
	}
	plain := *sc
	plain.ProviderClient = &gophercloud.ProviderClient{HTTPClient: http.Client{Timeout: 10 * time.Second}}
	if _, err := networks.Get(ctx, &plain, n.ID).Extract(); err == nil {
		t.Fatal("gophercloud without the CA accepted the cluster's certificate")
	}
}

// TestGossipKeyRotationNoFalseDeath rotates the gossip key of a running
// 3-server + 2-chassis cluster with `neutrino gossip keyring install|use|
// remove` and checks that no node saw any other declared dead, every node
// ends with the new key alone, and the pool still works. As a control, a
// chassis that sends with a key the others lack is declared dead.
func TestGossipKeyRotationNoFalseDeath(t *testing.T) {
	k1, k2, k3 := bytes.Repeat([]byte{1}, 32), bytes.Repeat([]byte{2}, 32), bytes.Repeat([]byte{9}, 32)
	b64 := base64.StdEncoding.EncodeToString
	tc := startTLSCluster(t, 3, 2, k1)
	ca := tc.dir + "/" + tlsutil.CAFile
	all := tc.all()
	allAlive := func(a *agent.Agent) error {
		n := 0
		for _, m := range a.Cluster().Members() {
			if m.Status != "alive" {
				return fmt.Errorf("%s sees %s %s", a.Cluster().NodeName(), m.Name, m.Status)
			}
			n++
		}
		if n != len(all) {
			return fmt.Errorf("%s sees %d members, want %d", a.Cluster().NodeName(), n, len(all))
		}
		return nil
	}
	clustertest.Eventually(t, 30*time.Second, func() error {
		for _, a := range all {
			if err := allAlive(a); err != nil {
				return err
			}
		}
		return nil
	})
	dead := func() uint64 {
		var n uint64
		for _, a := range all {
			n += a.Cluster().DeadEvents()
		}
		return n
	}
	before := dead()
	keyring := func(args ...string) string {
		t.Helper()
		out, code := cliRun(t, append([]string{"--endpoint", tc.endpoint, "--ca", ca, "gossip", "keyring"}, args...)...)
		if code != 0 {
			t.Fatalf("gossip keyring %v: %s", args, out)
		}
		if n := strings.Count(out, "\n"); n != len(all) {
			t.Fatalf("gossip keyring %v answered for %d nodes, want %d:\n%s", args, n, len(all), out)
		}
		return out
	}
	keyring("install", b64(k2))
	keyring("use", b64(k2))
	keyring("remove", b64(k1))
	out := keyring("list")
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if _, keys, _ := strings.Cut(line, "\t"); keys != b64(k2) {
			t.Errorf("after rotation: %s", line)
		}
	}
	for _, a := range all {
		if keys, err := a.Cluster().Keyring(); err != nil || !slices.Equal(keys, []string{b64(k2)}) {
			t.Errorf("%s keyring %v %v", a.Cluster().NodeName(), keys, err)
		}
	}
	// Gossip goes on with the new key alone: a metadata change reaches
	// everyone, and nobody was declared dead at any point.
	if err := tc.chassis[0].Cluster().UpdateMeta(func(m *cluster.NodeMeta) { m.TunnelIP = "192.0.2.77" }); err != nil {
		t.Fatal(err)
	}
	clustertest.Eventually(t, 30*time.Second, func() error {
		for _, a := range all {
			for _, m := range a.Cluster().Members() {
				if m.Name == "tcli-c1" && m.Meta.TunnelIP != "192.0.2.77" {
					return fmt.Errorf("%s has not heard c1's new metadata", a.Cluster().NodeName())
				}
			}
		}
		return nil
	})
	for _, a := range all {
		if err := allAlive(a); err != nil {
			t.Error(err)
		}
	}
	if n := dead() - before; n != 0 {
		t.Fatalf("%d false deaths during the rotation", n)
	}

	// Control: c2 sends with a key nobody else has; it is declared dead.
	c2 := tc.chassis[1].Cluster()
	if err := c2.KeyringInstall(b64(k3)); err != nil {
		t.Fatal(err)
	}
	if err := c2.KeyringUse(b64(k3)); err != nil {
		t.Fatal(err)
	}
	clustertest.Eventually(t, 30*time.Second, func() error {
		for _, m := range tc.leader.Cluster().Members() {
			if m.Name == "tcli-c2" && m.Status == "dead" {
				return nil
			}
		}
		return fmt.Errorf("c2, sending with an unknown key, is not declared dead")
	})
}
