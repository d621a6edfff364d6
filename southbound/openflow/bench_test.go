package openflow_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"neutrino/southbound/openflow"
	"neutrino/southbound/openflow/oftest"
)

// BenchmarkBundleInstall installs n flows into an empty bridge in one
// bundle through our layer, and the same flows with
// `ovs-ofctl --bundle add-flows` for comparison. Reports flows/s.
func BenchmarkBundleInstall(b *testing.B) {
	for _, n := range []int{10000, 100000} {
		b.Run(fmt.Sprintf("%dk", n/1000), func(b *testing.B) {
			sw := oftest.StartSwitch(b, "bench")
			conn := sw.Connect(b, oftest.NewController(b, openflow.Options{}))[0]
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
			defer cancel()
			if _, _, err := conn.RequestRole(ctx, openflow.RoleMaster, 1); err != nil {
				b.Fatal(err)
			}
			flows := genFlows(n, 1, 0)
			mods := adds(flows)
			var text strings.Builder
			for i := range flows {
				text.WriteString(flows[i].String())
				text.WriteByte('\n')
			}
			file := filepath.Join(b.TempDir(), "flows.txt")
			if err := os.WriteFile(file, []byte(text.String()), 0o644); err != nil {
				b.Fatal(err)
			}
			clearFlows := func(b *testing.B) {
				b.StopTimer()
				if _, err := sw.Ofctl(ctx, "del-flows", oftest.Bridge); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
			}
			b.Run("neutrino", func(b *testing.B) {
				for b.Loop() {
					clearFlows(b)
					if err := conn.Bundle(ctx, mods); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "flows/s")
			})
			b.Run("ovs-ofctl", func(b *testing.B) {
				for b.Loop() {
					clearFlows(b)
					if out, err := sw.Ofctl(ctx, "--bundle", "add-flows", oftest.Bridge, file); err != nil {
						b.Fatalf("%v: %s", err, out)
					}
				}
				b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "flows/s")
			})
			if got := len(sw.OfctlFlows(b)); got != n {
				b.Fatalf("switch has %d flows, want %d", got, n)
			}
		})
	}
}
