package ovsproc_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"neutrino/southbound/hostnet"
	"neutrino/southbound/ovsproc"
)

func skipUnlessAvailable(t *testing.T) {
	t.Helper()
	if err := ovsproc.Available(); err != nil {
		t.Skipf("skipping: %v", err)
	}
}

// start launches an instance with a name unique to this test process, so
// test binaries running in parallel never share a namespace.
func start(t *testing.T, ctx context.Context, name string) *ovsproc.Instance {
	t.Helper()
	inst, err := ovsproc.Start(ctx, ovsproc.Options{Name: fmt.Sprintf("tp%d-%s", os.Getpid(), name)})
	if err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	t.Cleanup(func() {
		if err := inst.Stop(); err != nil {
			t.Errorf("stop %s: %v", name, err)
		}
	})
	return inst
}

func TestTwoInstancesConcurrently(t *testing.T) {
	skipUnlessAvailable(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	insts := make([]*ovsproc.Instance, 2)
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for n := range insts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			inst, err := ovsproc.Start(ctx, ovsproc.Options{Name: fmt.Sprintf("tp%d-c%d", os.Getpid(), n)})
			insts[n], errs[n] = inst, err
		}()
	}
	wg.Wait()
	for n, inst := range insts {
		if inst != nil {
			t.Cleanup(func() { _ = inst.Stop() })
		}
		if errs[n] != nil {
			t.Fatalf("start %d: %v", n, errs[n])
		}
	}

	type leftover struct {
		pids []int
		ns   string
		dir  string
	}
	var left []leftover
	for _, inst := range insts {
		if _, err := inst.Vsctl(ctx, "add-br", "br0", "--", "set", "Bridge", "br0", "datapath_type=netdev",
			"protocols=OpenFlow13"); err != nil {
			t.Fatalf("add-br on %s: %v", inst.Name(), err)
		}
		out, err := inst.Ofctl(ctx, "dump-flows", "br0")
		if err != nil {
			t.Fatalf("dump-flows on %s: %v", inst.Name(), err)
		}
		if !strings.Contains(out, "actions=NORMAL") {
			t.Errorf("%s: default flow missing: %q", inst.Name(), out)
		}
		if _, err := inst.Appctl(ctx, "version"); err != nil {
			t.Errorf("appctl on %s: %v", inst.Name(), err)
		}
		// The netdev datapath's bridge device must be in the namespace, not here.
		if ok, err := hostnet.LinkExists(inst.Namespace(), "br0"); err != nil || !ok {
			t.Errorf("%s: br0 not in namespace %s (%v)", inst.Name(), inst.Namespace(), err)
		}
		if ok, _ := hostnet.LinkExists("", "br0"); ok {
			t.Errorf("br0 leaked into the root namespace")
		}
		left = append(left, leftover{[]int{inst.DBPID(), inst.VswitchdPID()}, inst.Namespace(), inst.RunDir()})
	}

	for _, inst := range insts {
		if err := inst.Stop(); err != nil {
			t.Errorf("stop %s: %v", inst.Name(), err)
		}
	}
	for _, l := range left {
		for _, pid := range l.pids {
			if pid == 0 {
				t.Errorf("a daemon was not running before Stop")
				continue
			}
			if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
				t.Errorf("pid %d still exists after Stop (kill 0: %v)", pid, err)
			}
		}
		if hostnet.NamespaceExists(l.ns) {
			t.Errorf("namespace %s left after Stop", l.ns)
		}
		if _, err := os.Stat(l.dir); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("dir %s left after Stop (%v)", l.dir, err)
		}
	}
}

func TestPlugVMsPing(t *testing.T) {
	skipUnlessAvailable(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	inst := start(t, ctx, "vm")
	if _, err := inst.Vsctl(ctx, "add-br", "br-int", "--", "set", "Bridge", "br-int", "datapath_type=netdev",
		"protocols=OpenFlow13"); err != nil {
		t.Fatal(err)
	}
	a, err := inst.PlugVM(ctx, ovsproc.VMSpec{Name: "vm-a", Bridge: "br-int", MAC: "02:00:00:00:00:0a",
		CIDR: "192.0.2.10/24", IfaceID: "port-a"})
	if err != nil {
		t.Fatal(err)
	}
	b, err := inst.PlugVM(ctx, ovsproc.VMSpec{Name: "vm-b", Bridge: "br-int", MAC: "02:00:00:00:00:0b",
		CIDR: "192.0.2.11/24", IfaceID: "port-b"})
	if err != nil {
		t.Fatal(err)
	}
	pa, err := a.OFPort(ctx)
	if err != nil || pa <= 0 {
		t.Fatalf("ofport a = %d, %v", pa, err)
	}
	pb, err := b.OFPort(ctx)
	if err != nil || pb <= 0 || pb == pa {
		t.Fatalf("ofport b = %d (a = %d), %v", pb, pa, err)
	}
	if id, err := inst.Vsctl(ctx, "get", "Interface", "vm-a", "external_ids:iface-id"); err != nil ||
		strings.Trim(strings.TrimSpace(id), `"`) != "port-a" {
		t.Errorf("iface-id of vm-a = %q, %v", id, err)
	}
	if mac, err := hostnet.LinkMAC(a.Namespace(), "eth0"); err != nil || mac != "02:00:00:00:00:0a" {
		t.Errorf("vm-a eth0 mac = %q, %v", mac, err)
	}
	// The bridge has no controller and fail_mode standalone: NORMAL switches.
	if out, err := a.Exec(ctx, "ping", "-c", "1", "-W", "2", "192.0.2.11"); err != nil {
		t.Fatalf("ping a -> b: %v\n%s", err, out)
	}

	// TCP too: with TX checksum offload left on, ping works and TCP fails.
	if err := tcpEcho(ctx, b, a, "192.0.2.11"); err != nil {
		t.Fatalf("tcp a -> b: %v", err)
	}

	ns := b.Namespace()
	if err := b.Unplug(ctx); err != nil {
		t.Fatal(err)
	}
	if hostnet.NamespaceExists(ns) {
		t.Errorf("namespace %s left after Unplug", ns)
	}
	if out, err := inst.Vsctl(ctx, "list-ports", "br-int"); err != nil || strings.Contains(out, "vm-b") {
		t.Errorf("vm-b still a port after Unplug: %q, %v", out, err)
	}
	nsA := a.Namespace()
	if err := inst.Stop(); err != nil {
		t.Fatal(err)
	}
	if hostnet.NamespaceExists(nsA) {
		t.Errorf("VM namespace %s left after Stop", nsA)
	}
}

// tcpEcho sends a line over TCP from client to server (at ip) with netcat.
func tcpEcho(ctx context.Context, server, client *ovsproc.VM, ip string) error {
	if _, err := exec.LookPath("nc"); err != nil {
		return nil // netcat-openbsd comes with 'make deps'; ping already passed
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	srv := hostnet.Command(ctx, server.Namespace(), "nc", "-l", "5000")
	var got bytes.Buffer
	srv.Stdout = &got
	if err := srv.Start(); err != nil {
		return err
	}
	waited := false
	defer func() {
		if !waited {
			_ = srv.Process.Kill()
			_ = srv.Wait()
		}
	}()
	// Retry until the listener is up; each try is bounded by nc -w.
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, err := hostnet.Exec(ctx, client.Namespace(), "sh", "-c", "echo hello-tcp | nc -N -w 2 "+ip+" 5000")
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			return err
		}
		time.Sleep(50 * time.Millisecond)
	}
	waited = true
	if err := srv.Wait(); err != nil {
		return fmt.Errorf("listener: %w", err)
	}
	if strings.TrimSpace(got.String()) != "hello-tcp" {
		return fmt.Errorf("server got %q", got.String())
	}
	return nil
}

func TestRestartDaemons(t *testing.T) {
	skipUnlessAvailable(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	inst := start(t, ctx, "rs")
	if _, err := inst.Vsctl(ctx, "add-br", "br0", "--", "set", "Bridge", "br0", "datapath_type=netdev"); err != nil {
		t.Fatal(err)
	}
	old := inst.DBPID()
	if err := inst.StopDB(); err != nil {
		t.Fatal(err)
	}
	if inst.DBPID() != 0 {
		t.Fatal("ovsdb-server still reported running")
	}
	if err := inst.StartDB(ctx); err != nil {
		t.Fatal(err)
	}
	if inst.DBPID() == old {
		t.Error("ovsdb-server PID unchanged after restart")
	}
	if out, err := inst.Vsctl(ctx, "list-br"); err != nil || strings.TrimSpace(out) != "br0" {
		t.Errorf("after db restart list-br = %q, %v", out, err)
	}
	if err := inst.StopVswitchd(); err != nil {
		t.Fatal(err)
	}
	if err := inst.StartVswitchd(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := inst.Appctl(ctx, "dpif/show"); err != nil {
		t.Error(err)
	}
}
