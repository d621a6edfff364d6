package openflow

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"strings"
	"testing"
)

// FuzzDecodePacketIn: any message decodes or fails without panicking; a
// decoded packet-in's frame is the message's tail.
func FuzzDecodePacketIn(f *testing.F) {
	f.Add(unhexF(f, samplePacketIn))
	f.Fuzz(func(t *testing.T, msg []byte) {
		pi, err := decodePacketIn(msg)
		if err != nil {
			return
		}
		if !bytes.HasSuffix(msg, pi.Data) || len(pi.Data) > len(msg)-32 {
			t.Fatalf("data (%d bytes) is not the tail of the %d-byte message", len(pi.Data), len(msg))
		}
		for _, fl := range pi.Match {
			if fl.Mask != nil && len(fl.Mask) != len(fl.Value) {
				t.Fatalf("field %v: mask %d bytes, value %d", fl.Field, len(fl.Mask), len(fl.Value))
			}
		}
	})
}

// FuzzDecodeFlowStats: any flow-stats multipart body decodes or fails
// without panicking, and decodes no more entries than it has room for.
func FuzzDecodeFlowStats(f *testing.F) {
	for _, fl := range []Flow{
		{Table: 3, Priority: 100, Cookie: 0xab, Match: Match{InPort(3), Reg(0, 5)},
			Actions: []Action{SetReg(1, 2), Resubmit{Table: 7}, Output{Port: 2}}},
		{Table: 0, Priority: 0},
	} {
		f.Add(flowStatsEntry(f, fl))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		flows, err := decodeFlowStats(body, nil)
		if len(flows) > len(body)/56 {
			t.Fatalf("%d flows from %d bytes", len(flows), len(body))
		}
		if err == nil && len(body) > 0 && len(flows) == 0 {
			t.Fatalf("no error and no flow from %d bytes", len(body))
		}
	})
}

func unhexF(f *testing.F, s string) []byte {
	f.Helper()
	b, err := hex.DecodeString(strings.NewReplacer(" ", "", "\n", "", "\t", "").Replace(s))
	if err != nil {
		f.Fatal(err)
	}
	return b
}

// flowStatsEntry is fl as an ofp_flow_stats entry: the flow-mod's match
// and instructions under a flow-stats header.
func flowStatsEntry(f *testing.F, fl Flow) []byte {
	f.Helper()
	fm, err := (&FlowMod{Command: CmdAdd, Flow: fl}).encode(1)
	if err != nil {
		f.Fatal(err)
	}
	// ofp_flow_mod: header 8, cookie 8, mask 8, table 1, command 1,
	// idle 2, hard 2, priority 2, buffer 4, out_port 4, out_group 4,
	// flags 2, pad 2 = 48, then match and instructions.
	rest := fm[48:]
	e := make([]byte, 48, 48+len(rest))
	e[2] = fl.Table
	binary.BigEndian.PutUint16(e[12:], fl.Priority)
	binary.BigEndian.PutUint64(e[24:], fl.Cookie)
	e = append(e, rest...)
	binary.BigEndian.PutUint16(e, uint16(len(e)))
	return e
}

// FuzzDecodeMeterConfig: any meter-config multipart body decodes or fails
// without panicking, with no more meters or bands than it has room for.
func FuzzDecodeMeterConfig(f *testing.F) {
	f.Add(append(meterConfigEntry(MeterMod{Command: MeterAdd, ID: 7, Band: MeterBand{RateKbps: 5000, BurstKbit: 500}}),
		meterConfigEntry(MeterMod{Command: MeterAdd, ID: 8, Band: MeterBand{RateKbps: 1}})...))
	f.Fuzz(func(t *testing.T, body []byte) {
		ms, err := decodeMeterConfig(body, nil)
		if len(ms) > len(body)/meterConfigLen {
			t.Fatalf("%d meters from %d bytes", len(ms), len(body))
		}
		bands := 0
		for _, m := range ms {
			bands += len(m.Bands)
		}
		if bands > len(body)/meterBandHeaderLen {
			t.Fatalf("%d bands from %d bytes", bands, len(body))
		}
		if err == nil && len(body) > 0 && len(ms) == 0 {
			t.Fatalf("no error and no meter from %d bytes", len(body))
		}
	})
}
