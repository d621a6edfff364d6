package agent

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"neutrino/fsm"
	"neutrino/northbound"
)

// BenchmarkAPIMetrics is what the request metrics add to the API's hot
// path: the same request (GET /healthz, the cheapest route, so the
// difference shows) through the API handler without and with the agent's
// observer (status-recording writer, route label, counter and histogram);
// and the observer alone.
func BenchmarkAPIMetrics(b *testing.B) {
	b.Run("observer", func(b *testing.B) {
		obs := newAgentMetrics(&Agent{}).observeRequest
		b.ReportAllocs()
		for b.Loop() {
			obs("networks", http.MethodGet, http.StatusOK, 1500)
		}
	})
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	for _, bc := range []struct {
		name string
		on   bool
	}{{"off", false}, {"on", true}} {
		b.Run(bc.name, func(b *testing.B) {
			cfg := northbound.DefaultConfig()
			cfg.Logger, cfg.NoReplica = log, true
			if bc.on {
				cfg.ObserveRequest = newAgentMetrics(&Agent{}).observeRequest
			}
			h := northbound.New(cfg, nil, fsm.New(log)).Handler()
			req := httptest.NewRequest(http.MethodGet, "/healthz", nil)
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				w := httptest.NewRecorder()
				h.ServeHTTP(w, req)
				if w.Code != http.StatusOK {
					b.Fatalf("status %d", w.Code)
				}
			}
		})
	}
}
