package dhcp

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netns"

	"neutrino/southbound/openflow/oftest"
	"neutrino/southbound/ovsproc"
	"neutrino/southbound/pipeline"
)

// BenchmarkHandle is the responder's own cost per answer (decode, look
// up, encode), without the switch: an upper bound of answers/s.
func BenchmarkHandle(b *testing.B) {
	r, _ := newTestResponder(true)
	discover := request4(Discover, netip.Addr{})
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if r.Handle(7, discover) == nil {
			b.Fatal("no answer")
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "answers/s")
}

// rawSocket is an AF_PACKET socket on eth0 of a namespace: a DHCP client
// that sends and reads whole frames.
type rawSocket struct{ fd int }

func htons(v uint16) uint16 { return v<<8 | v>>8 }

func openRaw(ns string) (*rawSocket, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	if err != nil {
		return nil, err
	}
	defer orig.Close()
	h, err := netns.GetFromName(ns)
	if err != nil {
		return nil, err
	}
	defer h.Close()
	if err := netns.Set(h); err != nil {
		return nil, err
	}
	defer func() { _ = netns.Set(orig) }()
	ifi, err := net.InterfaceByName("eth0")
	if err != nil {
		return nil, err
	}
	fd, err := syscall.Socket(syscall.AF_PACKET, syscall.SOCK_RAW, int(htons(syscall.ETH_P_ALL)))
	if err != nil {
		return nil, err
	}
	if err := syscall.Bind(fd, &syscall.SockaddrLinklayer{Protocol: htons(syscall.ETH_P_ALL), Ifindex: ifi.Index}); err != nil {
		syscall.Close(fd)
		return nil, err
	}
	tv := syscall.NsecToTimeval(int64(2 * time.Second))
	if err := syscall.SetsockoptTimeval(fd, syscall.SOL_SOCKET, syscall.SO_RCVTIMEO, &tv); err != nil {
		syscall.Close(fd)
		return nil, err
	}
	return &rawSocket{fd: fd}, nil
}

// exchange sends frame and reads until a DHCP reply of type want arrives.
func (s *rawSocket) exchange(frame []byte, want uint8) error {
	if _, err := syscall.Write(s.fd, frame); err != nil {
		return err
	}
	buf := make([]byte, 2048)
	for {
		n, err := syscall.Read(s.fd, buf)
		if err == syscall.EINTR {
			continue // a signal (the Go runtime's preemption) interrupted the blocking read
		}
		if err != nil {
			return fmt.Errorf("waiting for DHCP type %d: %w", want, err)
		}
		f, err := ParseFrame(buf[:n])
		if err != nil || f.Proto != protoUDP || f.DstPort != 68 || len(f.Payload) < 240 {
			continue // our own request, or other traffic
		}
		m, err := ParseV4(append([]byte{1}, f.Payload[1:]...))
		if err == nil && m.Type() == want {
			return nil
		}
	}
}

// BenchmarkDiscoverToAck: one full DHCP exchange (DISCOVER -> OFFER,
// REQUEST -> ACK) of a VM's raw socket through a real ovs-vswitchd, the
// steering flow and the responder on the bridge's service socket; the
// time per op is the discover-to-ack latency, answers/s counts both
// answers.
func BenchmarkDiscoverToAck(b *testing.B) {
	sw := oftest.StartSwitch(b, "db")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	vm, err := sw.PlugVM(ctx, ovsproc.VMSpec{Name: "vm1", Bridge: oftest.Bridge, MAC: clientMAC.String(), IfaceID: "vm"})
	if err != nil {
		b.Fatal(err)
	}
	ofport, err := vm.OFPort(ctx)
	if err != nil {
		b.Fatal(err)
	}
	flow := fmt.Sprintf("table=0,priority=150,udp,in_port=%d,tp_src=68,tp_dst=67,actions=controller(id=%d)", ofport, pipeline.ChassisControllerID)
	if _, err := sw.Ofctl(ctx, "add-flow", oftest.Bridge, flow); err != nil {
		b.Fatal(err)
	}
	_, src := newTestResponder(true)
	src.ports[0].BindingOFPort = ofport
	r := New(Config{Socket: filepath.Join(sw.RunDir(), oftest.Bridge+".mgmt"), Chassis: "ch", Source: src})
	rctx, rcancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); r.Run(rctx) }()
	b.Cleanup(func() { rcancel(); <-done })
	oftest.Eventually(b, 30*time.Second, "responder connected", func() (bool, error) { return r.Connected(), nil })
	s, err := openRaw(vm.Namespace())
	if err != nil {
		b.Fatalf("raw socket in %s: %v", vm.Namespace(), err)
	}
	defer syscall.Close(s.fd)
	discover := request4(Discover, netip.Addr{})
	req := request4(Request, netip.Addr{}, Option{OptRequestedIP, []byte{10, 0, 0, 5}}, Option{OptServerID, []byte{10, 0, 0, 1}})
	b.ResetTimer()
	for b.Loop() {
		if err := s.exchange(discover, Offer); err != nil {
			b.Fatal(err)
		}
		if err := s.exchange(req, Ack); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(2*b.N)/b.Elapsed().Seconds(), "answers/s")
}
