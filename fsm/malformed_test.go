package fsm

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/hashicorp/raft"
)

// TestApplyMissingObjects sends every registered command a body whose
// objects are all absent (an empty map, msgpack nil in each slot, nil
// list elements): none may crash, and a refused one changes nothing. The
// check is the generic one in mustDecode, so this covers commands added
// later without a line here.
func TestApplyMissingObjects(t *testing.T) {
	types := slices.Sorted(func(yield func(CommandType) bool) {
		for t := range New(nil).handlers {
			if !yield(t) {
				return
			}
		}
	})
	bodies := map[string]any{
		"empty map": map[string]any{},
		"nil slots": map[string]any{"Network": nil, "Port": nil, "Router": nil, "Subnet": nil, "Group": nil, "Rule": nil,
			"Policy": nil, "Service": nil, "Connection": nil, "LoadBalancer": nil, "VipPort": nil, "FloatingIP": nil, "Chassis": nil},
		"nil elements": map[string]any{"Networks": []any{nil}, "Ports": []any{nil}, "Subnets": []any{nil}, "Groups": []any{nil},
			"Defaults": []any{nil}, "Rules": []any{nil}, "Policies": []any{nil}, "Chassis": []any{nil}, "Agents": []any{nil}},
	}
	for _, typ := range types {
		for name, body := range bodies {
			t.Run(typ.String()+"/"+name, func(t *testing.T) {
				st := New(nil)
				last := fuzzFixture(t, st)
				buf, err := Encode(typ, body)
				if err != nil {
					t.Fatal(err)
				}
				res, stopped := applyOrStop(t, st, &raft.Log{Index: last + 1, Type: raft.LogCommand, Data: buf})
				if stopped || res.Err == nil {
					return
				}
				if got := st.State().Read().Revision(); got != last {
					t.Fatalf("refused command moved the revision to %d, want %d", got, last)
				}
			})
		}
	}
}

// TestMissingObjectRefused checks the refusal itself: a 400 naming the
// missing object, identical on every replica, with the state unchanged,
// both bare and inside a request envelope.
func TestMissingObjectRefused(t *testing.T) {
	cases := []struct {
		typ  CommandType
		body any
		want string
	}{
		{CmdPortUpdate, map[string]any{"Port": nil, "PrevIndex": 3}, "PortUpdateRequest without Port"},
		{CmdNetworkCreate, NetworkCreateRequest{Networks: []*Network{testNetwork("n2", 4001), nil}}, "NetworkCreateRequest without Networks[1]"},
		{CmdPortCreate, PortCreateRequest{Ports: []*Port{{Meta: Meta{ID: "p9"}, NetworkID: "core-net"}}, Defaults: []*SecurityGroupBundle{{Group: nil}}}, "PortCreateRequest without Defaults[0].Group"},
		{CmdRouterCreate, RouterCreateRequest{}, "RouterCreateRequest without Router"},
	}
	for _, c := range cases {
		t.Run(c.want, func(t *testing.T) {
			var texts []string
			for replica := range 2 {
				st := New(nil)
				last := fuzzFixture(t, st)
				r := apply(t, st, last+1, c.typ, c.body)
				var e *Error
				if !errors.As(r.Err, &e) || e.Code != CodeBadRequest || e.Type != ErrTypeInvalidInput {
					t.Fatalf("replica %d: got %v, want a bad request", replica, r.Err)
				}
				if !strings.Contains(e.Msg, c.want) {
					t.Fatalf("replica %d: message %q does not name %q", replica, e.Msg, c.want)
				}
				if r.Revision != last || st.State().Read().Revision() != last || st.State().Read().Port("p9") != nil || st.State().Read().Network("n2") != nil {
					t.Fatalf("replica %d: refused command changed the state", replica)
				}
				texts = append(texts, e.Msg)
				inner, err := Encode(c.typ, c.body)
				if err != nil {
					t.Fatal(err)
				}
				env := apply(t, st, last+2, CmdRequest, RequestEnvelope{ID: "req-1", Command: inner, Time: 1})
				if env.Err == nil || st.State().Read().Request("req-1") != nil {
					t.Fatalf("replica %d: enveloped command not refused cleanly: %v", replica, env.Err)
				}
			}
			if texts[0] != texts[1] {
				t.Fatalf("replicas disagree: %q vs %q", texts[0], texts[1])
			}
		})
	}
}
