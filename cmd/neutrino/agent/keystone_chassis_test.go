package agent_test

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"neutrino/cluster/clustertest"
	"neutrino/cmd/neutrino/agent"
	"neutrino/fsm"
	"neutrino/northbound"
	"neutrino/northbound/keystonetest"
)

// TestChassisAgentUnderKeystone runs a server with --auth-strategy
// keystone against a real Keystone and a chassis agent that
// authenticates its own calls as a service user: its watch (which needs
// the admin role) follows a network an admin creates. A chassis agent
// whose password is wrong does not start, and says why.
func TestChassisAgentUnderKeystone(t *testing.T) {
	ks := keystonetest.Start(t, keystonetest.Options{})
	svc := ks.CreateProject("service")
	ks.CreateUser("neutrino", "neutrino-pw", svc, "service", "admin")
	ksCfg := northbound.KeystoneConfig{URL: ks.URL, Username: "neutrino", Password: "neutrino-pw", ProjectName: "service",
		// A loaded machine's Keystone (one uwsgi thread) can take seconds.
		Timeout: time.Minute}
	api := northbound.DefaultConfig()
	api.AuthStrategy, api.Keystone = northbound.AuthKeystone, ksCfg

	bind := clustertest.FreeBind(t)
	srv := startAgent(t, agent.Config{Server: true, Node: "ks-s1", Bind: bind, BootstrapExpect: 1, Join: []string{bind}, API: api})
	clustertest.Eventually(t, 30*time.Second, func() error {
		if !srv.Cluster().IsLeader() {
			return fmt.Errorf("no leader")
		}
		return nil
	})

	tokens, err := northbound.NewKeystoneTokens(ksCfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	ch := startAgent(t, agent.Config{Node: "ks-c1", Bind: clustertest.FreeBind(t), Join: []string{bind}, API: api,
		AuthToken: tokens.Token})
	w, err := ch.Watch(fsm.TableNetworks)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()

	// The API itself wants a token: none is a 401.
	if code, body, err := postNetwork(http.DefaultClient, "http://"+srv.HTTPAddr(), "no-token", nil); err != nil || code != http.StatusUnauthorized {
		t.Fatalf("POST without a token: %d %s %v, want 401", code, body, err)
	}
	admin := map[string]string{"X-Auth-Token": ks.AdminToken()}
	if code, body, err := postNetwork(http.DefaultClient, "http://"+srv.HTTPAddr(), "ks-net", admin); err != nil || code != http.StatusCreated {
		t.Fatalf("POST as admin: %d %s %v", code, body, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := w.WaitRevision(ctx, revisionOf(srv)); err != nil {
		t.Fatalf("chassis watch under keystone: %v", err)
	}
	nets, _ := w.List(fsm.TableNetworks)
	if !slices.ContainsFunc(nets, func(o any) bool { n, ok := o.(*fsm.Network); return ok && n.Name == "ks-net" }) {
		t.Fatalf("chassis watch does not see ks-net: %d networks", len(nets))
	}

	bad := ksCfg
	bad.Password = "wrong"
	badTokens, err := northbound.NewKeystoneTokens(bad, nil)
	if err != nil {
		t.Fatal(err)
	}
	a, err := agent.Start(agent.Config{Node: "ks-c2", Bind: clustertest.FreeBind(t), Join: []string{bind}, DataDir: t.TempDir(),
		HTTP: "127.0.0.1:0", API: api, Logger: testLogger(), AuthToken: badTokens.Token})
	if err == nil {
		shutdown(t, a)
		t.Fatal("a chassis agent with a wrong Keystone password started")
	}
	if !strings.Contains(err.Error(), "authenticate") || !strings.Contains(err.Error(), "401") {
		t.Fatalf("wrong password: %v, want an authentication error naming the 401", err)
	}
}
