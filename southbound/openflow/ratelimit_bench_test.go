package openflow

import (
	"encoding/hex"
	"io"
	"log/slog"
	"strings"
	"testing"
)

// BenchmarkHandlePacketIn is the read loop's cost per packet-in: one
// decoded and queued, against one dropped by the rate limit (what a
// flooding switch costs the controller).
func BenchmarkHandlePacketIn(b *testing.B) {
	msg, err := hex.DecodeString(strings.NewReplacer(" ", "", "\n", "", "\t", "").Replace(samplePacketIn))
	if err != nil {
		b.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	for _, bc := range []struct {
		name string
		rate float64
	}{{"decoded", 0}, {"limited", 1e-9}} {
		b.Run(bc.name, func(b *testing.B) {
			c := &Conn{opts: Options{PacketInRate: bc.rate}, packetIns: make(chan PacketIn, 1),
				piBucket: newTokenBucket(bc.rate, 1)}
			c.logp.Store(log)
			c.piBucket.take(c.piBucket.last) // spend the burst
			b.ReportAllocs()
			for b.Loop() {
				c.handlePacketIn(msg)
				select {
				case <-c.packetIns:
				default:
				}
			}
		})
	}
}
