package northbound_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"reflect"
	"sort"
	"strings"
	"sync"
	"testing"

	"neutrino/fsm"
	"neutrino/northbound"
)

// idOf returns the id of the object a create or update answered with.
func idOf(out map[string]any) string {
	for _, v := range out {
		if m, ok := v.(map[string]any); ok {
			if id, ok := m["id"].(string); ok {
				return id
			}
		}
	}
	return ""
}

// TestReplayEveryResourceKind sends every kind of write twice with one
// Idempotency-Key: the repeat answers the same status and objects, says
// it is a replay, and changes nothing.
func TestReplayEveryResourceKind(t *testing.T) {
	s, be := newLocalAPI(t)
	ids := map[string]string{}
	type step struct {
		name, method, path string
		body               func() any
		status             int
		save               string // name to keep the answer's id under
	}
	p := func(name string) string { return ids[name] }
	steps := []step{
		{"network create", "POST", "/v2.0/networks", func() any { return map[string]any{"network": map[string]any{"name": "n"}} }, 201, "net"},
		{"network bulk create", "POST", "/v2.0/networks", func() any {
			return map[string]any{"networks": []any{map[string]any{"name": "b1"}, map[string]any{"name": "b2"}}}
		}, 201, ""},
		{"network update", "PUT", "/v2.0/networks/{net}", func() any { return map[string]any{"network": map[string]any{"name": "n2"}} }, 200, ""},
		{"external network create", "POST", "/v2.0/networks", func() any {
			return map[string]any{"network": map[string]any{"name": "ext", "router:external": true}}
		}, 201, "ext"},
		{"subnet create", "POST", "/v2.0/subnets", func() any {
			return map[string]any{"subnet": map[string]any{"network_id": p("net"), "cidr": "10.0.0.0/24", "ip_version": 4}}
		}, 201, "sub"},
		{"external subnet create", "POST", "/v2.0/subnets", func() any {
			return map[string]any{"subnet": map[string]any{"network_id": p("ext"), "cidr": "203.0.113.0/24", "ip_version": 4}}
		}, 201, ""},
		{"subnet update", "PUT", "/v2.0/subnets/{sub}", func() any { return map[string]any{"subnet": map[string]any{"name": "s2"}} }, 200, ""},
		{"port create", "POST", "/v2.0/ports", func() any { return map[string]any{"port": map[string]any{"network_id": p("net")}} }, 201, "port"},
		{"port update", "PUT", "/v2.0/ports/{port}", func() any { return map[string]any{"port": map[string]any{"name": "p2"}} }, 200, ""},
		{"security group create", "POST", "/v2.0/security-groups", func() any {
			return map[string]any{"security_group": map[string]any{"name": "g"}}
		}, 201, "sg"},
		{"security group update", "PUT", "/v2.0/security-groups/{sg}", func() any {
			return map[string]any{"security_group": map[string]any{"description": "d"}}
		}, 200, ""},
		{"security group rule create", "POST", "/v2.0/security-group-rules", func() any {
			return map[string]any{"security_group_rule": map[string]any{"security_group_id": p("sg"), "direction": "ingress",
				"protocol": "tcp", "port_range_min": 22, "port_range_max": 22}}
		}, 201, "rule"},
		{"security group rule delete", "DELETE", "/v2.0/security-group-rules/{rule}", nil, 204, ""},
		{"router create", "POST", "/v2.0/routers", func() any {
			return map[string]any{"router": map[string]any{"name": "r", "external_gateway_info": map[string]any{"network_id": p("ext")}}}
		}, 201, "router"},
		{"router update", "PUT", "/v2.0/routers/{router}", func() any { return map[string]any{"router": map[string]any{"name": "r2"}} }, 200, ""},
		{"router interface add", "PUT", "/v2.0/routers/{router}/add_router_interface", func() any { return map[string]any{"subnet_id": p("sub")} }, 200, ""},
		{"floating IP create", "POST", "/v2.0/floatingips", func() any {
			return map[string]any{"floatingip": map[string]any{"floating_network_id": p("ext")}}
		}, 201, "fip"},
		{"floating IP update", "PUT", "/v2.0/floatingips/{fip}", func() any { return map[string]any{"floatingip": map[string]any{"port_id": p("port")}} }, 200, ""},
		{"tag add", "PUT", "/v2.0/networks/{net}/tags/red", nil, 201, ""},
		{"tags replace", "PUT", "/v2.0/networks/{net}/tags", func() any { return map[string]any{"tags": []string{"a", "b"}} }, 200, ""},
		{"tag remove", "DELETE", "/v2.0/networks/{net}/tags/a", nil, 204, ""},
		{"tags clear", "DELETE", "/v2.0/networks/{net}/tags", nil, 204, ""},
		{"floating IP delete", "DELETE", "/v2.0/floatingips/{fip}", nil, 204, ""},
		{"router interface remove", "PUT", "/v2.0/routers/{router}/remove_router_interface", func() any { return map[string]any{"subnet_id": p("sub")} }, 200, ""},
		{"router delete", "DELETE", "/v2.0/routers/{router}", nil, 204, ""},
		{"port delete", "DELETE", "/v2.0/ports/{port}", nil, 204, ""},
		{"security group delete", "DELETE", "/v2.0/security-groups/{sg}", nil, 204, ""},
		{"subnet delete", "DELETE", "/v2.0/subnets/{sub}", nil, 204, ""},
		{"network delete", "DELETE", "/v2.0/networks/{net}", nil, 204, ""},
	}
	for i, st := range steps {
		path := st.path
		for k, v := range ids {
			path = strings.ReplaceAll(path, "{"+k+"}", v)
		}
		var body any
		if st.body != nil {
			body = st.body()
		}
		hdr := map[string]string{"Idempotency-Key": fmt.Sprintf("key-%d", i)}
		var first, again map[string]any
		code, h1 := s.doRaw(st.method, path, hdr, body, &first)
		if code != st.status || h1.Get(northbound.HeaderReplayed) != "" || h1.Get(northbound.HeaderRequestID) != hdr["Idempotency-Key"] {
			t.Fatalf("%s: first answer %d %v %v, want %d", st.name, code, first, h1, st.status)
		}
		rev := be.f.State().Read().Revision()
		code2, h2 := s.doRaw(st.method, path, hdr, body, &again)
		if code2 != code || h2.Get(northbound.HeaderReplayed) != "true" {
			t.Fatalf("%s: repeat answered %d %v (replayed %q), want %d", st.name, code2, again, h2.Get(northbound.HeaderReplayed), code)
		}
		if !reflect.DeepEqual(normalize(first), normalize(again)) {
			t.Fatalf("%s: repeat answer differs:\nfirst %v\nagain %v", st.name, first, again)
		}
		if now := be.f.State().Read().Revision(); now != rev {
			t.Fatalf("%s: the repeat changed the state (revision %d -> %d)", st.name, rev, now)
		}
		if st.save != "" {
			ids[st.save] = idOf(first)
		}
	}
}

func TestIdempotencyKeyScopeAndMismatch(t *testing.T) {
	s, _ := newLocalAPI(t)
	hdr := map[string]string{"Idempotency-Key": "k1"}
	a := s.create("networks", "network", map[string]any{"name": "a"}, hdr)

	// Same key, another body: 422.
	var out map[string]any
	code := s.do("POST", "/v2.0/networks", hdr, map[string]any{"network": map[string]any{"name": "other"}}, &out)
	checkNeutronError(t, code, http.StatusUnprocessableEntity, out, "IdempotencyKeyMismatch")
	// Same key, another path: 422.
	code = s.do("PUT", "/v2.0/networks/"+a["id"].(string), hdr, map[string]any{"network": map[string]any{"name": "a"}}, &out)
	checkNeutronError(t, code, http.StatusUnprocessableEntity, out, "IdempotencyKeyMismatch")

	// Same key in another project: another request.
	b := s.create("networks", "network", map[string]any{"name": "a"}, map[string]string{"Idempotency-Key": "k1", "X-Project-Id": "p2"})
	if b["id"] == a["id"] {
		t.Fatal("a key of another project replayed this project's request")
	}

	// No key: the server assigns one, and a retry with it replays.
	var first, again map[string]any
	code, h := s.doRaw("POST", "/v2.0/networks", nil, map[string]any{"network": map[string]any{"name": "c"}}, &first)
	key := h.Get(northbound.HeaderRequestID)
	if code != 201 || key == "" {
		t.Fatalf("create without key: %d, request id %q", code, key)
	}
	code, h = s.doRaw("POST", "/v2.0/networks", map[string]string{"Idempotency-Key": key}, map[string]any{"network": map[string]any{"name": "c"}}, &again)
	if code != 201 || h.Get(northbound.HeaderReplayed) != "true" || idOf(first) != idOf(again) {
		t.Fatalf("retry with the assigned key: %d %v %v", code, h, again)
	}

	// Bad keys: 400.
	for _, k := range []string{strings.Repeat("x", 256), "tab\there"} {
		code = s.do("POST", "/v2.0/networks", map[string]string{"Idempotency-Key": k}, map[string]any{"network": map[string]any{}}, &out)
		checkNeutronError(t, code, http.StatusBadRequest, out, "")
	}
}

// lossyBackend applies commands like localBackend, but the first
// lose-many answers are lost: the command applied and the backend reports
// that its outcome is unknown, as a leader does that lost leadership
// after appending.
type lossyBackend struct {
	localBackend
	mu   sync.Mutex
	lose int
}

func (b *lossyBackend) Apply(ctx context.Context, cmd []byte) (*fsm.Result, error) {
	res, err := b.localBackend.Apply(ctx, cmd)
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.lose > 0 {
		b.lose--
		return nil, fmt.Errorf("leadership lost: %w", northbound.ErrUnknownOutcome)
	}
	return res, err
}

// TestCommittedButAnswerLostIsOutcomeUnknown: a write that applied but
// whose answer was lost is reported as OutcomeUnknown naming the key,
// never as "not committed"; the retry with the key answers the first
// outcome and nothing is applied twice (issue 11, case 3).
func TestCommittedButAnswerLostIsOutcomeUnknown(t *testing.T) {
	f := fsm.New(slog.New(slog.NewTextHandler(io.Discard, nil)))
	be := &lossyBackend{localBackend: localBackend{f: f}, lose: 1}
	cfg := northbound.DefaultConfig()
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	hs := httptest.NewServer(northbound.New(cfg, be, f).Handler())
	t.Cleanup(hs.Close)
	s := &apiServer{t: t, base: hs.URL}

	var out map[string]any
	code, h := s.doRaw("POST", "/v2.0/networks", nil, map[string]any{"network": map[string]any{"name": "lost"}}, &out)
	key := h.Get(northbound.HeaderRequestID)
	checkNeutronError(t, code, http.StatusServiceUnavailable, out, northbound.ErrTypeOutcomeUnknown)
	msg := out["NeutronError"].(map[string]any)["message"].(string)
	if key == "" || !strings.Contains(msg, key) || strings.Contains(msg, "not committed") || h.Get("Retry-After") != "1" {
		t.Fatalf("outcome unknown answer: key %q, Retry-After %q, message %q", key, h.Get("Retry-After"), msg)
	}
	var again map[string]any
	code, h = s.doRaw("POST", "/v2.0/networks", map[string]string{"Idempotency-Key": key}, map[string]any{"network": map[string]any{"name": "lost"}}, &again)
	if code != 201 || h.Get(northbound.HeaderReplayed) != "true" {
		t.Fatalf("retry: %d %v %v", code, h, again)
	}
	if n := len(f.State().Read().Networks()); n != 1 {
		t.Fatalf("%d networks, want 1", n)
	}
}

// TestConcurrentRepeatAppliesOnce: copies of one request in flight at once
// (a forwarder's resend while the first is still running) apply once, and
// every copy answers with the same object.
func TestConcurrentRepeatAppliesOnce(t *testing.T) {
	s, be := newLocalAPI(t)
	var wg sync.WaitGroup
	codes := make([]int, 8)
	outs := make([]map[string]any, 8)
	for i := range codes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			codes[i], _ = s.doRaw("POST", "/v2.0/networks", map[string]string{"Idempotency-Key": "same"},
				map[string]any{"network": map[string]any{"name": "once"}}, &outs[i])
		}()
	}
	wg.Wait()
	for i := range codes {
		if codes[i] != 201 || idOf(outs[i]) != idOf(outs[0]) {
			t.Fatalf("attempt %d: %d %v (first %v)", i, codes[i], outs[i], outs[0])
		}
	}
	if n := len(be.f.State().Read().Networks()); n != 1 {
		t.Fatalf("%d networks, want 1", n)
	}
}

// normalize orders lists of objects by id: a replay renders from the
// state, which lists an object's members in its own order.
func normalize(v any) any {
	switch x := v.(type) {
	case map[string]any:
		out := map[string]any{}
		for k, e := range x {
			out[k] = normalize(e)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = normalize(e)
		}
		sort.SliceStable(out, func(i, j int) bool {
			a, _ := out[i].(map[string]any)
			b, _ := out[j].(map[string]any)
			return fmt.Sprint(a["id"]) < fmt.Sprint(b["id"])
		})
		return out
	}
	return v
}
