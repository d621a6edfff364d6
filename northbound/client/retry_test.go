package client

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
)

// TestWriteRetriesWithSameKey: a write answered "outcome unknown" or "no
// leader" is resent with the same Idempotency-Key; another 503 is the
// answer; reads carry no key.
func TestWriteRetriesWithSameKey(t *testing.T) {
	var (
		mu   sync.Mutex
		keys []string
	)
	answers := []struct {
		status int
		body   string
	}{
		{503, `{"NeutronError":{"type":"OutcomeUnknown","message":"m","detail":""}}`},
		{503, `{"NeutronError":{"type":"ServiceUnavailable","message":"m","detail":""}}`},
		{201, `{"network":{"id":"n1"}}`},
		{503, `{"NeutronError":{"type":"NoNetworkAvailable","message":"m","detail":""}}`},
		{200, `{"networks":[]}`},
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		i := len(keys)
		keys = append(keys, r.Header.Get(HeaderIdempotencyKey))
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(answers[i].status)
		_, _ = w.Write([]byte(answers[i].body))
	}))
	t.Cleanup(srv.Close)
	c, err := New(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	n, err := c.Create(context.Background(), "networks", "network", map[string]any{"name": "x"})
	if err != nil || n["id"] != "n1" {
		t.Fatalf("create: %v %v", n, err)
	}
	if len(keys) != 3 || keys[0] == "" || keys[1] != keys[0] || keys[2] != keys[0] {
		t.Fatalf("keys of the attempts: %q", keys)
	}
	if _, err := c.Create(context.Background(), "networks", "network", map[string]any{"name": "y"}); err == nil {
		t.Fatal("NoNetworkAvailable was not returned")
	}
	if len(keys) != 4 || keys[3] == keys[0] {
		t.Fatalf("a new write reused a key or was retried: %q", keys)
	}
	if _, err := c.List(context.Background(), "networks", nil); err != nil || keys[4] != "" {
		t.Fatalf("list: %v, key %q", err, keys[4])
	}
}
