package dhcp

import (
	"context"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"neutrino/southbound/openflow/oftest"
	"neutrino/southbound/ovsproc"
)

// TestPeriodicRA: on a real ovs-vswitchd, with no flow at all in the
// bridge (fail_mode=secure), the responder's unsolicited router
// advertisements reach a local VM port straight out of its ofport.
func TestPeriodicRA(t *testing.T) {
	sw := oftest.StartSwitch(t, "ra")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	vm, err := sw.PlugVM(ctx, ovsproc.VMSpec{Name: "vm1", Bridge: oftest.Bridge, MAC: clientMAC.String(), IfaceID: "vm"})
	if err != nil {
		t.Fatal(err)
	}
	ofport, err := vm.OFPort(ctx)
	if err != nil {
		t.Fatal(err)
	}
	_, src := newTestResponder(true)
	src.ports[0].BindingOFPort = ofport
	s, err := openRaw(vm.Namespace())
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(s.fd)
	r := New(Config{Socket: filepath.Join(sw.RunDir(), oftest.Bridge+".mgmt"), Chassis: "ch", Source: src,
		RAInterval: 200 * time.Millisecond})
	rctx, rcancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); r.Run(rctx) }()
	defer func() { rcancel(); <-done }()

	buf := make([]byte, 2048)
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		n, err := syscall.Read(s.fd, buf)
		if err != nil {
			continue // read timeout: wait for the next period
		}
		f, err := ParseFrame(buf[:n])
		if err == nil && f.Proto == protoICMP6 && f.Payload[0] == 134 {
			if f.DstIP.String() != "ff02::1" || f.Payload[5]&0xc0 != 0xc0 {
				t.Fatalf("RA to %v flags %x: want ff02::1 with M and O (stateful subnet)", f.DstIP, f.Payload[5])
			}
			return
		}
	}
	t.Fatalf("no router advertisement within 20 s (stats %+v)", r.Stats())
}
