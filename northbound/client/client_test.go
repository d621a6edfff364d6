package client

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"sync"
	"testing"
)

// request is what the fake server saw.
type request struct {
	Method, Path, RawQuery string
	Header                 http.Header
	Body                   any
}

// reply is a canned answer.
type reply struct {
	status int
	body   string
}

// fakeAPI answers "METHOD /path" with canned replies and records requests.
type fakeAPI struct {
	t       *testing.T
	mu      sync.Mutex
	replies map[string]reply
	reqs    []request
}

func newFakeAPI(t *testing.T, replies map[string]reply) (*fakeAPI, *Client) {
	t.Helper()
	f := &fakeAPI{t: t, replies: replies}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	c, err := New(srv.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	return f, c
}

func (f *fakeAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	raw, _ := io.ReadAll(r.Body)
	var body any
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &body); err != nil {
			f.t.Errorf("request body is not JSON: %v: %s", err, raw)
		}
	}
	f.mu.Lock()
	f.reqs = append(f.reqs, request{Method: r.Method, Path: r.URL.EscapedPath(), RawQuery: r.URL.RawQuery, Header: r.Header.Clone(), Body: body})
	f.mu.Unlock()
	rep, ok := f.replies[r.Method+" "+r.URL.EscapedPath()]
	if !ok {
		rep = reply{http.StatusNotFound, `{"NeutronError": {"type": "HTTPNotFound", "message": "The resource could not be found.", "detail": ""}}`}
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(rep.status)
	_, _ = io.WriteString(w, rep.body)
}

func (f *fakeAPI) requests() []request {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]request(nil), f.reqs...)
}

func mustJSON(t *testing.T, s string) any {
	t.Helper()
	var v any
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatalf("bad test JSON %s: %v", s, err)
	}
	return v
}

// plain re-encodes v so json.Number and float64 compare equal.
func plain(t *testing.T, v any) any {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return mustJSON(t, string(b))
}

func TestNew(t *testing.T) {
	tests := []struct {
		endpoint string
		want     string
		wantErr  bool
	}{
		{"http://127.0.0.1:9696", "http://127.0.0.1:9696", false},
		{"http://127.0.0.1:9696/", "http://127.0.0.1:9696", false},
		{"https://api.example/neutron/", "https://api.example/neutron", false},
		{"127.0.0.1:9696", "", true},
		{"ftp://x", "", true},
		{"http://x?a=b", "", true},
	}
	for _, tt := range tests {
		c, err := New(tt.endpoint)
		if (err != nil) != tt.wantErr {
			t.Errorf("New(%q) err = %v, want error %v", tt.endpoint, err, tt.wantErr)
			continue
		}
		if err == nil && c.Endpoint() != tt.want {
			t.Errorf("New(%q).Endpoint() = %q, want %q", tt.endpoint, c.Endpoint(), tt.want)
		}
	}
}

func TestRequests(t *testing.T) {
	net1 := `{"id": "n1", "name": "a", "mtu": 1450, "revision_number": 1}`
	replies := map[string]reply{
		"POST /v2.0/networks":        {201, `{"network": ` + net1 + `}`},
		"GET /v2.0/networks":         {200, `{"networks": [` + net1 + `]}`},
		"GET /v2.0/networks/n1":      {200, `{"network": ` + net1 + `}`},
		"GET /v2.0/networks/a%2Fb":   {200, `{"network": ` + net1 + `}`},
		"PUT /v2.0/networks/n1":      {200, `{"network": ` + net1 + `}`},
		"DELETE /v2.0/networks/n1":   {204, ``},
		"PUT /v2.0/networks/n1/tags": {200, `{"tags": ["x"]}`},
		"GET /v1/cluster":            {200, `{"leader": "s1", "term": 3, "commit_index": 120, "applied_index": 120, "revision": 118, "epoch": 1795000000, "servers": [{"name": "s1", "address": "127.0.0.1:7302", "voter": true, "state": "leader"}]}`},
		"GET /v1/cluster/members":    {200, `{"members": [{"name": "s1", "address": "127.0.0.1:7301", "status": "alive", "role": "server", "meta": {"tunnel_ip": "10.0.0.1"}}]}`},
	}
	tests := []struct {
		name      string
		stale     bool
		replies   map[string]reply // overrides
		call      func(ctx context.Context, c *Client) (any, error)
		wantReq   request // Header unused
		wantValue string  // JSON of the returned value
	}{
		{
			name: "create",
			call: func(ctx context.Context, c *Client) (any, error) {
				return c.Create(ctx, "networks", "network", map[string]any{"name": "a", "mtu": 1450})
			},
			wantReq:   request{Method: "POST", Path: "/v2.0/networks", Body: mustJSON(t, `{"network": {"name": "a", "mtu": 1450}}`)},
			wantValue: net1,
		},
		{
			name: "create bulk",
			call: func(ctx context.Context, c *Client) (any, error) {
				return c.CreateBulk(ctx, "networks", []map[string]any{{"name": "a"}, {"name": "b"}})
			},
			replies:   map[string]reply{"POST /v2.0/networks": {201, `{"networks": [{"id": "n1"}, {"id": "n2"}]}`}},
			wantReq:   request{Method: "POST", Path: "/v2.0/networks", Body: mustJSON(t, `{"networks": [{"name": "a"}, {"name": "b"}]}`)},
			wantValue: `[{"id": "n1"}, {"id": "n2"}]`,
		},
		{
			name: "a reply without the envelope is an error",
			call: func(ctx context.Context, c *Client) (any, error) {
				return c.CreateBulk(ctx, "networks", []map[string]any{{"name": "a"}})
			},
			wantReq:   request{Method: "POST", Path: "/v2.0/networks", Body: mustJSON(t, `{"networks": [{"name": "a"}]}`)},
			wantValue: "error",
		},
		{
			name: "list with filters",
			call: func(ctx context.Context, c *Client) (any, error) {
				return c.List(ctx, "networks", url.Values{"name": {"a b"}, "tags": {"x,y"}})
			},
			wantReq:   request{Method: "GET", Path: "/v2.0/networks", RawQuery: "name=a+b&tags=x%2Cy"},
			wantValue: `[` + net1 + `]`,
		},
		{
			name:  "stale list adds stale and keeps filters",
			stale: true,
			call: func(ctx context.Context, c *Client) (any, error) {
				return c.List(ctx, "networks", url.Values{"name": {"a"}})
			},
			wantReq:   request{Method: "GET", Path: "/v2.0/networks", RawQuery: "name=a&stale=true"},
			wantValue: `[` + net1 + `]`,
		},
		{
			name:  "stale does not touch writes",
			stale: true,
			call: func(ctx context.Context, c *Client) (any, error) {
				return c.Update(ctx, "networks", "network", "n1", map[string]any{"shared": true})
			},
			wantReq:   request{Method: "PUT", Path: "/v2.0/networks/n1", Body: mustJSON(t, `{"network": {"shared": true}}`)},
			wantValue: net1,
		},
		{
			name: "get escapes the id",
			call: func(ctx context.Context, c *Client) (any, error) {
				return c.Get(ctx, "networks", "network", "a/b")
			},
			wantReq:   request{Method: "GET", Path: "/v2.0/networks/a%2Fb"},
			wantValue: net1,
		},
		{
			name: "delete",
			call: func(ctx context.Context, c *Client) (any, error) {
				return nil, c.Delete(ctx, "networks", "n1")
			},
			wantReq:   request{Method: "DELETE", Path: "/v2.0/networks/n1"},
			wantValue: `null`,
		},
		{
			name: "replace tags sends a list even when empty",
			call: func(ctx context.Context, c *Client) (any, error) {
				return c.ReplaceTags(ctx, "networks", "n1", nil)
			},
			wantReq:   request{Method: "PUT", Path: "/v2.0/networks/n1/tags", Body: mustJSON(t, `{"tags": []}`)},
			wantValue: `["x"]`,
		},
		{
			name:    "cluster",
			call:    func(ctx context.Context, c *Client) (any, error) { return c.Cluster(ctx) },
			wantReq: request{Method: "GET", Path: "/v1/cluster"},
			wantValue: `{"leader": "s1", "term": 3, "commit_index": 120, "applied_index": 120, "revision": 118, "epoch": 1795000000,
				"servers": [{"name": "s1", "address": "127.0.0.1:7302", "voter": true, "state": "leader"}]}`,
		},
		{
			name:      "members",
			call:      func(ctx context.Context, c *Client) (any, error) { return c.Members(ctx) },
			wantReq:   request{Method: "GET", Path: "/v1/cluster/members"},
			wantValue: `[{"name": "s1", "address": "127.0.0.1:7301", "status": "alive", "role": "server", "meta": {"tunnel_ip": "10.0.0.1"}}]`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			all := map[string]reply{}
			for k, v := range replies {
				all[k] = v
			}
			for k, v := range tt.replies {
				all[k] = v
			}
			f, c := newFakeAPI(t, all)
			c.ProjectID, c.Roles, c.Token, c.Stale = "p1", []string{"member", "reader"}, "tok", tt.stale
			got, err := tt.call(context.Background(), c)
			if tt.wantValue == "error" {
				if err == nil {
					t.Fatalf("want an error, got %v", got)
				}
			} else if err != nil {
				t.Fatal(err)
			} else if g, w := plain(t, got), mustJSON(t, tt.wantValue); !reflect.DeepEqual(g, w) {
				t.Errorf("value = %v, want %v", g, w)
			}
			reqs := f.requests()
			if len(reqs) != 1 {
				t.Fatalf("got %d requests, want 1", len(reqs))
			}
			r := reqs[0]
			if r.Method != tt.wantReq.Method || r.Path != tt.wantReq.Path || r.RawQuery != tt.wantReq.RawQuery {
				t.Errorf("request = %s %s?%s, want %s %s?%s", r.Method, r.Path, r.RawQuery, tt.wantReq.Method, tt.wantReq.Path, tt.wantReq.RawQuery)
			}
			if !reflect.DeepEqual(r.Body, tt.wantReq.Body) {
				t.Errorf("body = %v, want %v", r.Body, tt.wantReq.Body)
			}
			for h, want := range map[string]string{HeaderProjectID: "p1", HeaderRoles: "member,reader", HeaderToken: "tok", "Accept": "application/json"} {
				if got := r.Header.Get(h); got != want {
					t.Errorf("header %s = %q, want %q", h, got, want)
				}
			}
		})
	}
}

func TestNoIdentityHeadersWhenUnset(t *testing.T) {
	f, c := newFakeAPI(t, map[string]reply{"GET /v2.0/networks": {200, `{"networks": []}`}})
	if _, err := c.List(context.Background(), "networks", nil); err != nil {
		t.Fatal(err)
	}
	for _, h := range []string{HeaderProjectID, HeaderRoles, HeaderToken} {
		if v, ok := f.requests()[0].Header[h]; ok {
			t.Errorf("header %s sent as %q; an unset identity must not be sent (noauth admin)", h, v)
		}
	}
}

func TestErrorDecoding(t *testing.T) {
	tests := []struct {
		name string
		rep  reply
		want Error
		text string
	}{
		{
			name: "neutron error",
			rep:  reply{404, `{"NeutronError": {"type": "NetworkNotFound", "message": "Network n1 could not be found.", "detail": ""}}`},
			want: Error{Status: 404, Type: "NetworkNotFound", Message: "Network n1 could not be found."},
			text: "NetworkNotFound: Network n1 could not be found.",
		},
		{
			name: "with detail",
			rep:  reply{409, `{"NeutronError": {"type": "InUse", "message": "busy", "detail": "ports"}}`},
			want: Error{Status: 409, Type: "InUse", Message: "busy", Detail: "ports"},
			text: "InUse: busy (ports)",
		},
		{
			name: "non-string detail",
			rep:  reply{400, `{"NeutronError": {"type": "InvalidInput", "message": "bad", "detail": {"a": 1}}}`},
			want: Error{Status: 400, Type: "InvalidInput", Message: "bad", Detail: `{"a":1}`},
			text: `InvalidInput: bad ({"a":1})`,
		},
		{
			name: "plain text body",
			rep:  reply{502, "bad gateway\n"},
			want: Error{Status: 502, Message: "bad gateway"},
			text: "Bad Gateway: bad gateway",
		},
		{
			name: "empty body",
			rep:  reply{503, ""},
			want: Error{Status: 503},
			text: "Service Unavailable",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, c := newFakeAPI(t, map[string]reply{"GET /v2.0/networks/n1": tt.rep})
			_, err := c.Get(context.Background(), "networks", "network", "n1")
			var apiErr *Error
			if !errors.As(err, &apiErr) {
				t.Fatalf("err = %v (%T), want *Error", err, err)
			}
			if *apiErr != tt.want {
				t.Errorf("err = %+v, want %+v", *apiErr, tt.want)
			}
			if err.Error() != tt.text {
				t.Errorf("Error() = %q, want %q", err.Error(), tt.text)
			}
			if IsNotFound(err) != (tt.want.Status == 404) {
				t.Errorf("IsNotFound = %v", IsNotFound(err))
			}
		})
	}
}

func TestFind(t *testing.T) {
	notFound := reply{404, `{"NeutronError": {"type": "NetworkNotFound", "message": "no", "detail": ""}}`}
	tests := []struct {
		name     string
		replies  map[string]reply
		arg      string
		wantID   string
		wantErr  error
		wantReqs []string
	}{
		{
			name:     "by id",
			replies:  map[string]reply{"GET /v2.0/networks/n1": {200, `{"network": {"id": "n1", "name": "a"}}`}},
			arg:      "n1",
			wantID:   "n1",
			wantReqs: []string{"GET /v2.0/networks/n1?"},
		},
		{
			name: "by unique name",
			replies: map[string]reply{
				"GET /v2.0/networks/a": notFound,
				// The server's filter may be loose; only exact names count.
				"GET /v2.0/networks": {200, `{"networks": [{"id": "n1", "name": "a"}, {"id": "n2", "name": "ab"}]}`},
			},
			arg:      "a",
			wantID:   "n1",
			wantReqs: []string{"GET /v2.0/networks/a?", "GET /v2.0/networks?name=a"},
		},
		{
			name: "bad request on id falls back to name",
			replies: map[string]reply{
				"GET /v2.0/networks/a": {400, `{"NeutronError": {"type": "InvalidInput", "message": "bad id", "detail": ""}}`},
				"GET /v2.0/networks":   {200, `{"networks": [{"id": "n1", "name": "a"}]}`},
			},
			arg:    "a",
			wantID: "n1",
		},
		{
			name: "ambiguous name",
			replies: map[string]reply{
				"GET /v2.0/networks/a": notFound,
				"GET /v2.0/networks":   {200, `{"networks": [{"id": "n1", "name": "a"}, {"id": "n2", "name": "a"}]}`},
			},
			arg:     "a",
			wantErr: ErrNoUniqueMatch,
		},
		{
			name: "nothing",
			replies: map[string]reply{
				"GET /v2.0/networks/a": notFound,
				"GET /v2.0/networks":   {200, `{"networks": []}`},
			},
			arg:     "a",
			wantErr: ErrNotFound,
		},
		{
			name:     "other errors stop the search",
			replies:  map[string]reply{"GET /v2.0/networks/a": {403, `{"NeutronError": {"type": "PolicyNotAuthorized", "message": "no", "detail": ""}}`}},
			arg:      "a",
			wantErr:  &Error{},
			wantReqs: []string{"GET /v2.0/networks/a?"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, c := newFakeAPI(t, tt.replies)
			got, err := c.Find(context.Background(), "networks", "network", tt.arg)
			switch want := tt.wantErr.(type) {
			case nil:
				if err != nil {
					t.Fatal(err)
				}
				if got["id"] != tt.wantID {
					t.Errorf("found %v, want id %s", got, tt.wantID)
				}
			case *Error:
				var apiErr *Error
				if !errors.As(err, &apiErr) {
					t.Errorf("err = %v, want *Error", err)
				}
			default:
				if !errors.Is(err, want) {
					t.Errorf("err = %v, want %v", err, want)
				}
			}
			if tt.wantReqs != nil {
				var reqs []string
				for _, r := range f.requests() {
					reqs = append(reqs, r.Method+" "+r.Path+"?"+r.RawQuery)
				}
				if !reflect.DeepEqual(reqs, tt.wantReqs) {
					t.Errorf("requests = %q, want %q", reqs, tt.wantReqs)
				}
			}
		})
	}
}

func TestNumbersKeepPrecision(t *testing.T) {
	_, c := newFakeAPI(t, map[string]reply{"GET /v2.0/networks/n1": {200, `{"network": {"id": "n1", "revision_number": 9007199254740993}}`}})
	got, err := c.Get(context.Background(), "networks", "network", "n1")
	if err != nil {
		t.Fatal(err)
	}
	if n, ok := got["revision_number"].(json.Number); !ok || n.String() != "9007199254740993" {
		t.Errorf("revision_number = %#v, want json.Number 9007199254740993", got["revision_number"])
	}
}
