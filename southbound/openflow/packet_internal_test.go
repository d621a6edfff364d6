package openflow

import (
	"bytes"
	"encoding/hex"
	"strings"
	"testing"
)

func unhex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.NewReplacer(" ", "", "\n", "", "\t", "").Replace(s))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// A PACKET_IN as OVS 3.1 writes it (in_port, reg0, metadata), plus an
// OpenFlow 1.5 xreg (class 0x8001) to check it splits into two registers.
const samplePacketIn = `
	04 0a 0074 00000000
	ffffffff 002a 01 05 00000000000000ab
	0001 002c
	  80000004 00000003
	  00010004 c0000201
	  80000408 0000000000000077
	  80010208 0000000100000002
	  00000000
	0000
	ffffffffffff0200000000010806 0001 0800 0604 0001 020000000001 c0000201 000000000000 c0000201`

func TestDecodePacketIn(t *testing.T) {
	msg := unhex(t, samplePacketIn)
	pi, err := decodePacketIn(msg)
	if err != nil {
		t.Fatal(err)
	}
	want := [16]uint32{0: 0xc0000201, 2: 1, 3: 2}
	if pi.BufferID != 0xffffffff || pi.TotalLen != 42 || pi.Reason != ReasonAction || pi.TableID != 5 || pi.Cookie != 0xab ||
		pi.InPort != 3 || pi.Metadata != 0x77 || pi.Regs != want || len(pi.Data) != 42 || pi.Data[12] != 0x08 {
		t.Errorf("decoded %+v", pi)
	}
	// No truncation panics; each fails or decodes less data.
	for n := range len(msg) {
		m := append([]byte(nil), msg[:n]...)
		if _, err := decodePacketIn(m); err == nil && n < 24+48+2 {
			t.Errorf("truncated to %d bytes: decoded", n)
		}
	}
}

func TestEncodePacketOut(t *testing.T) {
	po := PacketOut{Actions: []Action{SetReg(0, 1), Resubmit{Table: 7}, Output{Port: 2}}, Data: []byte{1, 2, 3}}
	b, err := po.encode(9)
	if err != nil {
		t.Fatal(err)
	}
	want := unhex(t, `
		04 0d 004b 00000009
		ffffffff fffffffd 0030 000000000000
		0019 0010 00010004 00000001 00000000
		ffff 0010 00002320 000e fff8 07 000000
		0000 0010 00000002 0000 000000000000
		010203`)
	if !bytes.Equal(b, want) {
		t.Errorf("packet-out\n got %x\nwant %x", b, want)
	}
}
