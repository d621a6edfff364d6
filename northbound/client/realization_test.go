package client

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"
)

func TestWaitAndRealization(t *testing.T) {
	var (
		mu   sync.Mutex
		seen []http.Header
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.Header.Clone())
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		switch r.Method + " " + r.URL.Path {
		case "GET /v1/realization":
			_, _ = io.WriteString(w, `{"revision": 12, "leader": "s1", "chassis": [
				{"chassis": "ch1", "realized_revision": 12, "connected": true, "master": true, "error": ""},
				{"chassis": "ch2", "realized_revision": 9, "connected": false, "master": false, "error": "boom"}]}`)
		case "POST /v2.0/networks":
			w.Header().Set(HeaderRevision, "13")
			w.WriteHeader(http.StatusGatewayTimeout)
			_, _ = io.WriteString(w, `{"NeutronError": {"type": "RealizationTimeout", "message": "committed at revision 13", "detail": ""}}`)
		case "DELETE /v2.0/networks/n1":
			w.WriteHeader(http.StatusNoContent)
		default:
			w.WriteHeader(http.StatusNotFound)
		}
	}))
	defer srv.Close()
	c, err := New(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()

	st, err := c.WithWait(0).Realization(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Revision != 12 || st.Leader != "s1" || len(st.Chassis) != 2 || st.Chassis[1].RealizedRevision != 9 ||
		st.Chassis[1].Error != "boom" || !st.Chassis[0].Master {
		t.Fatalf("realization: %+v", st)
	}

	_, err = c.WithWait(2500*time.Millisecond).Create(ctx, "networks", "network", map[string]any{"name": "a"})
	var apiErr *Error
	if !errors.As(err, &apiErr) || !IsRealizationTimeout(err) || apiErr.Status != http.StatusGatewayTimeout || apiErr.Revision != 13 {
		t.Fatalf("create: %v (%+v)", err, apiErr)
	}
	if err := c.WithWait(0).Delete(ctx, "networks", "n1"); err != nil {
		t.Fatal(err)
	}
	if err := c.Delete(ctx, "networks", "n1"); err != nil {
		t.Fatal(err)
	}
	if c.Wait {
		t.Fatal("WithWait changed the original client")
	}

	mu.Lock()
	defer mu.Unlock()
	want := []struct{ wait, timeout string }{{"", ""}, {"realized", "2.5"}, {"realized", ""}, {"", ""}}
	if len(seen) != len(want) {
		t.Fatalf("%d requests", len(seen))
	}
	for i, w := range want {
		if got := seen[i].Get(HeaderWait); got != w.wait {
			t.Errorf("request %d: %s %q, want %q", i, HeaderWait, got, w.wait)
		}
		if got := seen[i].Get(HeaderWaitTimeout); got != w.timeout {
			t.Errorf("request %d: %s %q, want %q", i, HeaderWaitTimeout, got, w.timeout)
		}
	}
}
