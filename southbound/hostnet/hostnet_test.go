package hostnet_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"neutrino/southbound/hostnet"
)

func TestVethBetweenNamespaces(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("skipping: needs root for network namespaces")
	}
	for _, b := range []string{"ip", "ethtool", "ping"} {
		if _, err := exec.LookPath(b); err != nil {
			t.Skipf("skipping: %s not installed (run 'make deps')", b)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// Unique per test process: other test binaries may run in parallel.
	a, b := fmt.Sprintf("thn%d-a", os.Getpid()), fmt.Sprintf("thn%d-b", os.Getpid())
	for _, ns := range []string{a, b} {
		if err := hostnet.CreateNamespace(ctx, ns); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if err := hostnet.DeleteNamespace(context.Background(), ns); err != nil {
				t.Errorf("cleanup: %v", err)
			}
		})
	}
	if err := hostnet.CreateNamespace(ctx, a); err == nil {
		t.Error("creating an existing namespace succeeded; callers could not tell they do not own it")
	}

	if err := hostnet.CreateVeth(hostnet.VethSpec{
		Name: "va", Namespace: a, MAC: "02:00:00:00:aa:01",
		PeerName: "eth0", PeerNS: b, PeerMAC: "02:00:00:00:bb:01", MTU: 1400,
	}); err != nil {
		t.Fatal(err)
	}
	// Nothing lands in the root namespace.
	if ok, _ := hostnet.LinkExists("", "va"); ok {
		t.Error("va leaked into the root namespace")
	}
	if mac, err := hostnet.LinkMAC(b, "eth0"); err != nil || mac != "02:00:00:00:bb:01" {
		t.Errorf("peer mac %q, %v", mac, err)
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(hostnet.AddAddress(a, "va", "198.51.100.1/24"))
	must(hostnet.AddAddress(a, "va", "198.51.100.1/24")) // converging twice is fine
	must(hostnet.AddAddress(b, "eth0", "198.51.100.2/24"))
	must(hostnet.AddRoute(b, "default", "198.51.100.1", "eth0"))
	must(hostnet.AddRoute(b, "default", "198.51.100.1", "eth0"))
	must(hostnet.SetMAC(a, "va", "02:00:00:00:aa:02"))
	must(hostnet.DisableTxOffload(ctx, b, "eth0"))

	if out, err := hostnet.Exec(ctx, b, "ethtool", "-k", "eth0"); err != nil || !strings.Contains(out, "tx-checksumming: off") {
		t.Errorf("tx offload still on: %v\n%s", err, out)
	}
	if out, err := hostnet.Exec(ctx, b, "ip", "-o", "link", "show", "eth0"); err != nil || !strings.Contains(out, "mtu 1400") {
		t.Errorf("mtu not set: %v %s", err, out)
	}
	if out, err := hostnet.Exec(ctx, b, "ip", "route", "show", "default"); err != nil || !strings.Contains(out, "via 198.51.100.1") {
		t.Errorf("default route: %v %s", err, out)
	}
	if out, err := hostnet.Exec(ctx, b, "ping", "-c", "1", "-W", "2", "198.51.100.1"); err != nil {
		t.Errorf("ping across the veth: %v\n%s", err, out)
	}

	must(hostnet.DeleteLink(a, "va"))
	must(hostnet.DeleteLink(a, "va")) // already gone: not an error
	if ok, err := hostnet.LinkExists(b, "eth0"); err != nil || ok {
		t.Errorf("peer survived deleting its veth: %v %v", ok, err)
	}
	must(hostnet.DeleteNamespace(ctx, a))
	if hostnet.NamespaceExists(a) {
		t.Errorf("namespace %s still exists", a)
	}
}
