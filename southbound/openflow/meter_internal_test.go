package openflow

import (
	"encoding/binary"
	"errors"
	"slices"
	"testing"
)

// meterConfigEntry is the ofp_meter_config the switch reports for a meter
// made by m: the meter-mod's body with the entry length where the command
// was (both are flags, meter id, then bands).
func meterConfigEntry(m MeterMod) []byte {
	e := m.encode(1)[8:]
	binary.BigEndian.PutUint16(e, uint16(len(e)))
	return e
}

// TestMeterConfigRoundTrip: meters encoded as a meter-mod writes them
// decode from a meter-config body to the same bands; other shapes decode
// but are not taken for ours.
func TestMeterConfigRoundTrip(t *testing.T) {
	mods := []MeterMod{
		{Command: MeterAdd, ID: 1, Band: MeterBand{RateKbps: 20000, BurstKbit: 2000}},
		{Command: MeterModify, ID: 0xfffe0000, Band: MeterBand{RateKbps: 1, BurstKbit: 0}},
		{Command: MeterAdd, ID: 7, Band: MeterBand{RateKbps: 0xffffffff, BurstKbit: 0xffffffff}},
	}
	var body []byte
	for _, m := range mods {
		body = append(body, meterConfigEntry(m)...)
	}
	// Split across two multipart parts as a switch may.
	got, err := decodeMeterConfig(body[:24], nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, err = decodeMeterConfig(body[24:], got); err != nil {
		t.Fatal(err)
	}
	if len(got) != len(mods) {
		t.Fatalf("decoded %d meters, want %d", len(got), len(mods))
	}
	for i, m := range mods {
		band, ok := got[i].Band()
		if got[i].ID != m.ID || !ok || band != m.Band {
			t.Errorf("meter %d: decoded %+v (band %+v, ours %v), want id %d band %+v", i, got[i], band, ok, m.ID, m.Band)
		}
	}

	// Packets per second, two bands, or a DSCP-remark band: decoded as
	// they are, not ours.
	pktps := meterConfigEntry(mods[0])
	binary.BigEndian.PutUint16(pktps[2:], 1<<1)
	two := append(meterConfigEntry(mods[0]), meterConfigEntry(mods[2])[8:]...)
	binary.BigEndian.PutUint16(two, uint16(len(two)))
	remark := meterConfigEntry(mods[0])
	binary.BigEndian.PutUint16(remark[8:], 2)
	for name, e := range map[string][]byte{"pktps": pktps, "two bands": two, "dscp remark": remark} {
		ms, err := decodeMeterConfig(e, nil)
		if err != nil || len(ms) != 1 {
			t.Fatalf("%s: %v, %d meters", name, err, len(ms))
		}
		if _, ok := ms[0].Band(); ok {
			t.Errorf("%s: %+v taken for our meter shape", name, ms[0])
		}
	}
	if ms, _ := decodeMeterConfig(two, nil); !slices.Equal(ms[0].Bands, []MeterBandConfig{
		{Type: meterBandDrop, Rate: 20000, Burst: 2000}, {Type: meterBandDrop, Rate: 0xffffffff, Burst: 0xffffffff}}) {
		t.Errorf("two bands decoded as %+v", ms[0].Bands)
	}
}

// TestMeterConfigBad: truncated or inconsistent lengths are decode errors.
func TestMeterConfigBad(t *testing.T) {
	good := meterConfigEntry(MeterMod{Command: MeterAdd, ID: 3, Band: MeterBand{RateKbps: 100}})
	set := func(b []byte, off int, v uint16) []byte {
		b = slices.Clone(b)
		binary.BigEndian.PutUint16(b[off:], v)
		return b
	}
	for name, body := range map[string][]byte{
		"short":             good[:7],
		"entry too long":    set(good, 0, uint16(len(good)+8)),
		"entry too short":   set(good, 0, 4),
		"band cut":          set(good, 0, 16),
		"band length 0":     set(good, 10, 0),
		"band past entry":   set(good, 10, 24),
		"trailing garbage":  append(slices.Clone(good), 0, 1, 2),
		"band header short": set(good[:8+11], 0, 19),
	} {
		if ms, err := decodeMeterConfig(body, nil); !errors.Is(err, ErrDecode) {
			t.Errorf("%s: got %+v, %v; want a decode error", name, ms, err)
		}
	}
}
