package agent_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"testing"
	"time"

	"neutrino/cluster/clustertest"
	"neutrino/cluster/tlsutil"
	"neutrino/cmd/neutrino/agent"
	"neutrino/northbound"
)

// BenchmarkAPILatencyTLS measures API request latency on a one-server
// agent over plain HTTP and over HTTPS, with kept-alive connections
// (get, post) and with a new connection, hence a TLS handshake, per
// request (get-newconn). The ratio tls/plain is TLS's cost on the API.
func BenchmarkAPILatencyTLS(b *testing.B) {
	pki := newTestPKI(b)
	for _, mode := range []string{"plain", "tls"} {
		var bundle *tlsutil.Bundle
		scheme := "http"
		if mode == "tls" {
			bundle, scheme = pki.bundle("bench-s1", tlsutil.RoleServer), "https"
		}
		bind := clustertest.FreeBind(b)
		a, err := agent.Start(agent.Config{Server: true, Node: "bench-s1", DataDir: b.TempDir(), Bind: bind,
			HTTP: "127.0.0.1:0", BootstrapExpect: 1, Join: []string{bind}, API: northbound.DefaultConfig(),
			Logger: discardLogger(), TLS: bundle})
		if err != nil {
			b.Fatal(err)
		}
		base := scheme + "://" + a.HTTPAddr()
		hc := pki.client(nil)
		if mode == "plain" {
			hc = &http.Client{Timeout: 10 * time.Second}
		}
		var id string
		clustertest.Eventually(b, 30*time.Second, func() error {
			code, body, err := postNetwork(hc, base, "bench", nil)
			if err != nil || code != http.StatusCreated {
				return fmt.Errorf("%d %s %v", code, body, err)
			}
			id = networkID(body)
			return nil
		})
		get := func(c *http.Client) error {
			resp, err := c.Get(base + "/v2.0/networks/" + id)
			if err != nil {
				return err
			}
			_, _ = io.Copy(io.Discard, resp.Body) // so the connection is reused
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("GET: %d", resp.StatusCode)
			}
			return nil
		}
		measure := func(b *testing.B, op func() error) {
			lat := make([]time.Duration, 0, b.N)
			for b.Loop() {
				t0 := time.Now()
				if err := op(); err != nil {
					b.Fatal(err)
				}
				lat = append(lat, time.Since(t0))
			}
			slices.Sort(lat)
			q := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))]) / float64(time.Microsecond) }
			b.ReportMetric(q(0.5), "p50-us")
			b.ReportMetric(q(0.99), "p99-us")
		}
		b.Run(mode+"/get", func(b *testing.B) { measure(b, func() error { return get(hc) }) })
		b.Run(mode+"/get-newconn", func(b *testing.B) {
			measure(b, func() error {
				err := get(hc)
				hc.CloseIdleConnections()
				return err
			})
		})
		n := 0
		b.Run(mode+"/post", func(b *testing.B) {
			measure(b, func() error {
				n++
				code, body, err := postNetwork(hc, base, fmt.Sprintf("bench-%d", n), nil)
				if err == nil && code != http.StatusCreated {
					err = fmt.Errorf("POST: %d %s", code, body)
				}
				return err
			})
		})
		shutdownAgent(a)
	}
}

func discardLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func shutdownAgent(a *agent.Agent) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = a.Shutdown(ctx)
}

// networkID reads the id out of a network's JSON answer.
func networkID(body string) string {
	var out struct {
		Network struct {
			ID string `json:"id"`
		} `json:"network"`
	}
	_ = json.Unmarshal([]byte(body), &out)
	return out.Network.ID
}
