package openflow_test

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"neutrino/southbound/openflow"
	"neutrino/southbound/openflow/oftest"
	"neutrino/southbound/packet"
)

// rawPeer dials the controller's socket as a misbehaving switch would.
func rawPeer(t *testing.T, path string) net.Conn {
	t.Helper()
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// ofMsg is an OpenFlow header of version v, type typ, xid, and body.
func ofMsg(v, typ uint8, xid uint32, body []byte) []byte {
	b := make([]byte, 8, 8+len(body))
	b[0], b[1] = v, typ
	binary.BigEndian.PutUint16(b[2:], uint16(8+len(body)))
	binary.BigEndian.PutUint32(b[4:], xid)
	return append(b, body...)
}

// readOF reads one OpenFlow message.
func readOF(br *bufio.Reader) ([]byte, error) {
	hdr := make([]byte, 8)
	if _, err := io.ReadFull(br, hdr); err != nil {
		return nil, err
	}
	body := make([]byte, int(binary.BigEndian.Uint16(hdr[2:]))-8)
	if _, err := io.ReadFull(br, body); err != nil {
		return nil, err
	}
	return append(hdr, body...), nil
}

// closedByServer waits (bounded) until the server closes c.
func closedByServer(t *testing.T, c net.Conn, what string) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(15 * time.Second))
	_, err := io.Copy(io.Discard, c)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Errorf("%s: still connected after 15 s", what)
	}
}

// TestListenerDropsGarbagePeers: peers that stay silent, send random
// bytes, a bad length, or a message of another version after the
// handshake are dropped, and meanwhile a real ovs-vswitchd connects and
// is programmed as usual. Handshakes run one at a time would hold the
// switch behind the silent peers' 10 s handshake timeouts (3 × 10 s, past
// Connect's 30 s deadline).
func TestListenerDropsGarbagePeers(t *testing.T) {
	ctrl := oftest.NewController(t, openflow.Options{})
	silent := []net.Conn{rawPeer(t, ctrl.Path), rawPeer(t, ctrl.Path), rawPeer(t, ctrl.Path)}
	random := rawPeer(t, ctrl.Path)
	junk := make([]byte, 4096)
	for i := range junk {
		junk[i] = byte(rand.IntN(256))
	}
	junk[0] = 0x01 // not 1.3, whatever the rest says
	if _, err := random.Write(junk); err != nil {
		t.Fatal(err)
	}
	short := rawPeer(t, ctrl.Path)
	if _, err := short.Write([]byte{4, 0, 0, 4, 0, 0, 0, 1}); err != nil { // length 4 < header
		t.Fatal(err)
	}

	// A peer that completes the handshake, then changes version.
	liar := rawPeer(t, ctrl.Path)
	accepted := make(chan *openflow.Conn, 1)
	go func() {
		c, err := ctrl.Accept(ctxFor(t, 30*time.Second))
		if err == nil {
			accepted <- c
		}
		close(accepted)
	}()
	br := bufio.NewReader(liar)
	if _, err := liar.Write(ofMsg(4, 0, 1, nil)); err != nil { // HELLO
		t.Fatal(err)
	}
	_ = liar.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		m, err := readOF(br)
		if err != nil {
			t.Fatalf("liar handshake: %v", err)
		}
		if m[1] == 5 { // FEATURES_REQUEST
			body := make([]byte, 24)
			binary.BigEndian.PutUint64(body, 0xbad)
			if _, err := liar.Write(ofMsg(4, 6, binary.BigEndian.Uint32(m[4:]), body)); err != nil {
				t.Fatal(err)
			}
			break
		}
	}
	lc, ok := <-accepted
	if !ok || lc.DatapathID() != 0xbad {
		t.Fatal("the handshaking peer was not accepted")
	}
	if _, err := liar.Write(ofMsg(1, 2, 9, []byte("hello"))); err != nil { // an OF1.0 echo request
		t.Fatal(err)
	}
	select {
	case <-lc.Done():
		if err := lc.Err(); err == nil || !strings.Contains(err.Error(), "version 1") {
			t.Errorf("liar closed with %v, want a version error", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a connection sending OpenFlow 1.0 after negotiating 1.3 is still open")
	}
	closedByServer(t, liar, "liar")

	// The real switch connects while the silent peers still handshake.
	sw := oftest.StartSwitch(t, "garb")
	conn := sw.Connect(t, ctrl)[0]
	ctx := ctxFor(t, 20*time.Second)
	if role, _, err := conn.RequestRole(ctx, openflow.RoleMaster, 1); err != nil || role != openflow.RoleMaster {
		t.Fatalf("role = %v, %v", role, err)
	}
	if err := conn.Bundle(ctx, adds([]openflow.Flow{{Table: 0, Priority: 1, Cookie: 7}})); err != nil {
		t.Fatalf("program the real switch: %v", err)
	}
	closedByServer(t, random, "random bytes")
	closedByServer(t, short, "bad length")
	for i, c := range silent {
		closedByServer(t, c, "silent peer "+string(rune('0'+i)))
	}
	if err := conn.Barrier(ctx); err != nil {
		t.Fatalf("the real switch after the garbage peers were dropped: %v", err)
	}
}

// TestPacketInRateLimitPerChassis: one switch floods packet-ins (each
// packet-out fans out to 100 of them) while another asks one at a time;
// the flooder is held to its token bucket (the excess counted, not
// queued) and every packet-in of the other arrives.
func TestPacketInRateLimitPerChassis(t *testing.T) {
	const rate, burst = 200, 50
	ctrl := oftest.NewController(t, openflow.Options{PacketInRate: rate, PacketInBurst: burst, PacketInQueue: 20000})
	flooder := oftest.StartSwitch(t, "pifl")
	fconn := flooder.Connect(t, ctrl)[0]
	quiet := oftest.StartSwitch(t, "piqt")
	qconn := quiet.Connect(t, ctrl)[0]
	ctx := ctxFor(t, 60*time.Second)
	fanout := make([]openflow.Action, 100)
	for i := range fanout {
		fanout[i] = openflow.Output{Port: openflow.PortController}
	}
	for _, c := range []*openflow.Conn{fconn, qconn} {
		if role, _, err := c.RequestRole(ctx, openflow.RoleMaster, 1); err != nil || role != openflow.RoleMaster {
			t.Fatalf("role = %v, %v", role, err)
		}
	}
	if err := fconn.Bundle(ctx, adds([]openflow.Flow{{Table: 3, Priority: 1, Cookie: 1, Actions: fanout}})); err != nil {
		t.Fatal(err)
	}
	if err := qconn.Bundle(ctx, adds([]openflow.Flow{{Table: 3, Priority: 1, Cookie: 2,
		Actions: []openflow.Action{openflow.Output{Port: openflow.PortController}}}})); err != nil {
		t.Fatal(err)
	}
	frame, _ := packet.NewGratuitousARP(routerMAC, routerIP, 0)
	po := openflow.PacketOut{Actions: []openflow.Action{openflow.Resubmit{Table: 3}}, Data: frame}

	start := time.Now()
	floodCtx, stopFlood := context.WithCancel(ctx)
	var wg sync.WaitGroup
	var sentN atomic.Int64
	wg.Add(1)
	go func() {
		defer wg.Done()
		for floodCtx.Err() == nil {
			if err := fconn.PacketOut(floodCtx, po); err != nil {
				return
			}
			sentN.Add(100)
		}
	}()
	// Every quiet packet-in arrives while the flood goes on (at least
	// 5000 of its packet-ins generated, 25 × the rate). The quiet switch
	// asks at a quarter of the rate: within its own limit.
	quietN := 0
	pace := time.NewTicker(time.Second / (rate / 4))
	defer pace.Stop()
	for i := 0; i < 20 || sentN.Load() < 5000; i++ {
		<-pace.C
		if i >= 5000 {
			t.Fatalf("the flood generated only %d packet-ins", sentN.Load())
		}
		quietN++
		if err := qconn.PacketOut(ctx, po); err != nil {
			t.Fatal(err)
		}
		nextPacketIn(t, qconn, 5*time.Second, func(pi openflow.PacketIn) bool { return pi.Cookie == 2 })
		if i == 0 {
			oftest.Eventually(t, 10*time.Second, "the flood is limited", func() (bool, error) {
				return fconn.PacketInsLimited() > 0, nil
			})
		}
	}
	stopFlood()
	wg.Wait()
	sent := int(sentN.Load())
	// The bucket's bound holds at any moment since the flood began:
	// nobody reads the flooder's queue, so its length is what got through.
	delivered := len(fconn.PacketIns())
	elapsed := time.Since(start).Seconds()
	t.Logf("flooder: %d packet-ins generated in %.1f s, %d delivered, %d limited; quiet: %d of %d, %d limited",
		sent, elapsed, delivered, fconn.PacketInsLimited(), quietN, quietN, qconn.PacketInsLimited())
	if max := burst + int(rate*elapsed) + 1; delivered > max {
		t.Errorf("flooder delivered %d packet-ins in %.1f s, more than the bucket allows (%d)", delivered, elapsed, max)
	}
	if sent <= burst+int(rate*elapsed) {
		t.Errorf("the flood (%d packet-ins in %.1f s) never exceeded the limit: the test proves nothing", sent, elapsed)
	}
	if qconn.PacketInsLimited() != 0 || qconn.PacketInDrops() != 0 {
		t.Errorf("quiet switch: %d limited, %d dropped", qconn.PacketInsLimited(), qconn.PacketInDrops())
	}
}
