package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
)

// seen is one request the fake API received.
type seen struct {
	Line   string // "METHOD /path?query"
	Header http.Header
	Body   any
}

// fakeAPI answers "METHOD /path" (query ignored) with canned replies
// ("STATUS BODY") and records every request. Unknown routes are 404 in
// Neutron's format, as a real server answers a missing object.
type fakeAPI struct {
	t       *testing.T
	replies map[string]string
	mu      sync.Mutex
	reqs    []seen
}

func (f *fakeAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	raw, _ := io.ReadAll(r.Body)
	var body any
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &body); err != nil {
			f.t.Errorf("%s %s: body is not JSON: %s", r.Method, r.URL, raw)
		}
	}
	line := r.Method + " " + r.URL.EscapedPath()
	if r.URL.RawQuery != "" {
		line += "?" + r.URL.RawQuery
	}
	f.mu.Lock()
	f.reqs = append(f.reqs, seen{Line: line, Header: r.Header.Clone(), Body: body})
	f.mu.Unlock()
	rep, ok := f.replies[r.Method+" "+r.URL.EscapedPath()]
	if !ok {
		rep = `404 {"NeutronError": {"type": "HTTPNotFound", "message": "The resource could not be found.", "detail": ""}}`
	}
	status, resp, _ := strings.Cut(rep, " ")
	code := map[string]int{"200": 200, "201": 201, "204": 204, "400": 400, "404": 404, "409": 409}[status]
	if code == 0 {
		f.t.Fatalf("bad canned status in %q", rep)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_, _ = io.WriteString(w, resp)
}

func (f *fakeAPI) lines() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, r := range f.reqs {
		out = append(out, r.Line)
	}
	return out
}

func (f *fakeAPI) bodies() []any {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []any
	for _, r := range f.reqs {
		if r.Body != nil {
			out = append(out, r.Body)
		}
	}
	return out
}

// cli runs one command line in-process against a fake API named by
// NEUTRINO_ENDPOINT, as a user's shell would set it.
func cli(t *testing.T, replies map[string]string, env map[string]string, args ...string) (f *fakeAPI, stdout, stderr string, code int) {
	t.Helper()
	f = &fakeAPI{t: t, replies: replies}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	allEnv := map[string]string{"NEUTRINO_ENDPOINT": srv.URL}
	for k, v := range env {
		allEnv[k] = v
	}
	lookup := func(k string) (string, bool) { v, ok := allEnv[k]; return v, ok }
	var out, errOut bytes.Buffer
	code = run(context.Background(), args, &out, &errOut, lookup)
	return f, out.String(), errOut.String(), code
}

func jsonValue(t *testing.T, s string) any {
	t.Helper()
	var v any
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, s)
	}
	return v
}

const net1 = `{"id": "n1", "name": "a", "description": "", "project_id": "p1", "tenant_id": "p1",
	"status": "ACTIVE", "admin_state_up": true, "shared": false, "router:external": false, "mtu": 1450,
	"provider:network_type": "vxlan", "provider:segmentation_id": 1001, "provider:physical_network": null,
	"subnets": [], "tags": ["blue"], "revision_number": 1,
	"created_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-01T00:00:00Z"}`

const net2 = `{"id": "n2", "name": "b", "project_id": "p2", "status": "ACTIVE", "admin_state_up": false,
	"shared": true, "router:external": true, "mtu": 1500, "provider:network_type": "vlan",
	"provider:segmentation_id": 101, "provider:physical_network": "physnet1", "subnets": ["s1", "s2"], "tags": []}`

const notFound = `404 {"NeutronError": {"type": "NetworkNotFound", "message": "Network x could not be found.", "detail": ""}}`

const showNet1 = `Field                      Value
id                         n1
name                       a
description
project_id                 p1
status                     ACTIVE
admin_state_up             UP
shared                     False
router:external            Internal
mtu                        1450
provider:network_type      vxlan
provider:segmentation_id   1001
provider:physical_network
subnets
tags                       blue
revision_number            1
created_at                 2026-01-01T00:00:00Z
updated_at                 2026-01-01T00:00:00Z
tenant_id                  p1
`

func TestCommands(t *testing.T) {
	tests := []struct {
		name       string
		replies    map[string]string
		env        map[string]string
		args       []string
		wantReqs   []string // request lines, in order
		wantBodies []string // JSON bodies of the requests that had one, in order
		wantCode   int
		wantOut    string // exact, unless wantOutHas
		wantOutHas []string
		wantJSON   string // stdout parsed as JSON
		wantErrHas string
		wantNoReqs bool
	}{
		{
			name:       "create with a name only",
			replies:    map[string]string{"POST /v2.0/networks": "201 {\"network\": " + net1 + "}"},
			args:       []string{"network", "create", "a"},
			wantReqs:   []string{"POST /v2.0/networks"},
			wantBodies: []string{`{"network": {"name": "a"}}`},
			wantOut:    showNet1,
		},
		{
			name:    "create with every attribute",
			replies: map[string]string{"POST /v2.0/networks": "201 {\"network\": " + net2 + "}"},
			args: []string{"network", "create", "b", "--project-id", "p2", "--shared", "--external", "--mtu", "1500",
				"--provider-network-type", "vlan", "--provider-segment", "101", "--provider-physical-network", "physnet1",
				"--tag", "x", "--tag", "y", "--disable", "--description", "d"},
			wantBodies: []string{`{"network": {"name": "b", "project_id": "p2", "shared": true, "router:external": true,
				"mtu": 1500, "provider:network_type": "vlan", "provider:segmentation_id": 101,
				"provider:physical_network": "physnet1", "tags": ["x", "y"], "admin_state_up": false, "description": "d"}}`},
			wantOutHas: []string{"admin_state_up             DOWN", "router:external            External", "subnets                    s1, s2"},
		},
		{
			// The API requires ip_version; like the openstack CLI, ours
			// sends one: the CIDR's family unless --ip-version says.
			name: "subnet create sends ip_version from the CIDR",
			replies: map[string]string{"GET /v2.0/networks/n1": "200 {\"network\": " + net1 + "}",
				"POST /v2.0/subnets": `201 {"subnet": {"id": "s6", "name": "v6", "cidr": "fd00::/64", "ip_version": 6}}`},
			args:       []string{"subnet", "create", "v6", "--network", "n1", "--subnet-range", "fd00::/64"},
			wantReqs:   []string{"GET /v2.0/networks/n1", "POST /v2.0/subnets"},
			wantBodies: []string{`{"subnet": {"name": "v6", "network_id": "n1", "cidr": "fd00::/64", "ip_version": 6}}`},
			wantOutHas: []string{"ip_version"},
		},
		{
			name:       "subnet create keeps an explicit ip_version",
			replies:    map[string]string{"POST /v2.0/subnets": `201 {"subnet": {"id": "s4", "name": "v4"}}`, "GET /v2.0/networks/n1": "200 {\"network\": " + net1 + "}"},
			args:       []string{"subnet", "create", "v4", "--network", "n1", "--subnet-range", "10.0.0.0/24", "--ip-version", "6"},
			wantBodies: []string{`{"subnet": {"name": "v4", "network_id": "n1", "cidr": "10.0.0.0/24", "ip_version": 6}}`},
			wantOutHas: []string{"s4"},
		},
		{
			name:     "create prints raw JSON with -o json",
			replies:  map[string]string{"POST /v2.0/networks": "201 {\"network\": " + net1 + "}"},
			args:     []string{"network", "create", "a", "-o", "json"},
			wantJSON: net1,
		},
		{
			name:       "enable and disable exclude each other",
			args:       []string{"network", "create", "a", "--enable", "--disable"},
			wantCode:   1,
			wantErrHas: "none of the others can be",
			wantNoReqs: true,
		},
		{
			name:       "create needs a name",
			args:       []string{"network", "create"},
			wantCode:   1,
			wantErrHas: "accepts 1 arg(s)",
			wantNoReqs: true,
		},
		{
			name:       "API errors show the Neutron type and message",
			replies:    map[string]string{"POST /v2.0/networks": `400 {"NeutronError": {"type": "InvalidInput", "message": "Invalid input for operation: MTU 99 is too small.", "detail": ""}}`},
			args:       []string{"network", "create", "a", "--mtu", "99"},
			wantCode:   1,
			wantErrHas: "Error: InvalidInput: Invalid input for operation: MTU 99 is too small.\n",
		},
		{
			name:     "list with filters",
			replies:  map[string]string{"GET /v2.0/networks": "200 {\"networks\": [" + net1 + ", " + net2 + "]}"},
			args:     []string{"network", "list", "--name", "a", "--tag", "x", "--tag", "y"},
			wantReqs: []string{"GET /v2.0/networks?name=a&tags=x%2Cy"},
			wantOut: `ID  Name  Subnets
n1  a
n2  b     s1, s2
`,
		},
		{
			name:    "list --long",
			replies: map[string]string{"GET /v2.0/networks": "200 {\"networks\": [" + net1 + ", " + net2 + "]}"},
			args:    []string{"network", "list", "--long"},
			wantOut: `ID  Name  Subnets  Status  Project  State  Shared  External  MTU   Network Type  Segment  Physical Network  Tags
n1  a              ACTIVE  p1       UP     False   Internal  1450  vxlan         1001                       blue
n2  b     s1, s2   ACTIVE  p2       DOWN   True    External  1500  vlan          101      physnet1
`,
		},
		{
			name:     "empty list in JSON is an empty array",
			replies:  map[string]string{"GET /v2.0/networks": `200 {"networks": []}`},
			args:     []string{"network", "list", "-o", "json"},
			wantJSON: `[]`,
		},
		{
			name:     "stale reads ask for it",
			replies:  map[string]string{"GET /v2.0/networks": `200 {"networks": []}`},
			args:     []string{"network", "list", "--stale"},
			wantReqs: []string{"GET /v2.0/networks?stale=true"},
		},
		{
			name:     "the environment does not set attribute filters",
			replies:  map[string]string{"GET /v2.0/networks": `200 {"networks": []}`},
			env:      map[string]string{"NEUTRINO_NAME": "a", "NEUTRINO_STALE": "true"},
			args:     []string{"network", "list"},
			wantReqs: []string{"GET /v2.0/networks?stale=true"},
		},
		{
			name: "show by name",
			replies: map[string]string{
				"GET /v2.0/networks/a": notFound,
				"GET /v2.0/networks":   "200 {\"networks\": [" + net1 + "]}",
			},
			args:     []string{"network", "show", "a"},
			wantReqs: []string{"GET /v2.0/networks/a", "GET /v2.0/networks?name=a"},
			wantOut:  showNet1,
		},
		{
			name: "show with an ambiguous name",
			replies: map[string]string{
				"GET /v2.0/networks": "200 {\"networks\": [" + net1 + ", " + net1 + "]}",
			},
			args:       []string{"network", "show", "a"},
			wantCode:   1,
			wantErrHas: `Error: no unique match: 2 networks are named "a"; use an id`,
		},
		{
			name:       "show nothing",
			replies:    map[string]string{"GET /v2.0/networks": `200 {"networks": []}`},
			args:       []string{"network", "show", "zz"},
			wantCode:   1,
			wantErrHas: `Error: not found: no network with id or name "zz"`,
		},
		{
			name: "update attributes and add a tag",
			replies: map[string]string{
				"GET /v2.0/networks/n1":      "200 {\"network\": " + net1 + "}",
				"PUT /v2.0/networks/n1":      "200 {\"network\": " + net1 + "}",
				"PUT /v2.0/networks/n1/tags": `200 {"tags": ["blue", "z"]}`,
			},
			args:     []string{"network", "update", "n1", "--mtu", "1400", "--no-shared", "--name", "c", "--tag", "z", "--tag", "blue"},
			wantReqs: []string{"GET /v2.0/networks/n1", "PUT /v2.0/networks/n1", "PUT /v2.0/networks/n1/tags"},
			wantBodies: []string{
				`{"network": {"mtu": 1400, "shared": false, "name": "c"}}`,
				`{"tags": ["blue", "z"]}`,
			},
			wantOutHas: []string{"tags                       blue, z"},
		},
		{
			name: "update replaces tags with --no-tag",
			replies: map[string]string{
				"GET /v2.0/networks/n1":      "200 {\"network\": " + net1 + "}",
				"PUT /v2.0/networks/n1/tags": `200 {"tags": ["z"]}`,
			},
			args:       []string{"network", "update", "n1", "--no-tag", "--tag", "z"},
			wantReqs:   []string{"GET /v2.0/networks/n1", "PUT /v2.0/networks/n1/tags"},
			wantBodies: []string{`{"tags": ["z"]}`},
			wantOutHas: []string{"tags                       z\n"},
		},
		{
			name: "switch flags given false mean the opposite",
			replies: map[string]string{
				"GET /v2.0/networks/n1": "200 {\"network\": " + net1 + "}",
				"PUT /v2.0/networks/n1": "200 {\"network\": " + net1 + "}",
			},
			args:       []string{"network", "set", "n1", "--shared=false", "--external", "-o", "json"},
			wantBodies: []string{`{"network": {"shared": false, "router:external": true}}`},
			wantJSON:   net1,
		},
		{
			name:       "update with nothing to change sends nothing",
			args:       []string{"network", "update", "n1"},
			wantCode:   1,
			wantErrHas: "nothing to update",
			wantNoReqs: true,
		},
		{
			name: "delete several, reporting each failure",
			replies: map[string]string{
				"GET /v2.0/networks/n1":    "200 {\"network\": " + net1 + "}",
				"DELETE /v2.0/networks/n1": "204 ",
				"GET /v2.0/networks":       `200 {"networks": []}`,
			},
			args:       []string{"network", "delete", "n1", "gone"},
			wantReqs:   []string{"GET /v2.0/networks/n1", "DELETE /v2.0/networks/n1", "GET /v2.0/networks/gone", "GET /v2.0/networks?name=gone"},
			wantCode:   1,
			wantErrHas: "Failed to delete network with name or ID \"gone\": not found: no network with id or name \"gone\"\nError: 1 of 2 networks failed to delete\n",
		},
		{
			name:     "cluster status",
			replies:  map[string]string{"GET /v1/cluster": `200 {"node": "s2", "leader": "s1", "term": 3, "commit_index": 120, "applied_index": 119, "revision": 118, "epoch": 1795000000, "servers": [{"name": "s1", "address": "127.0.0.1:7302", "voter": true, "state": "leader"}, {"name": "s2", "address": "127.0.0.1:7312", "voter": true, "state": "follower"}]}`},
			args:     []string{"cluster", "status"},
			wantReqs: []string{"GET /v1/cluster"},
			wantOut: `Answered by:    s2
Leader:         s1
Term:           3
Commit index:   120
Applied index:  119
Revision:       118
Epoch:          1795000000

Name  Address         Voter  State
s1    127.0.0.1:7302  True   leader
s2    127.0.0.1:7312  True   follower
`,
		},
		{
			name:     "cluster status as JSON",
			replies:  map[string]string{"GET /v1/cluster": `200 {"leader": "", "term": 0, "commit_index": 0, "applied_index": 0, "revision": 0, "epoch": 1, "servers": []}`},
			args:     []string{"cluster", "status", "-o", "json"},
			wantJSON: `{"leader": "", "term": 0, "commit_index": 0, "applied_index": 0, "revision": 0, "epoch": 1, "servers": []}`,
		},
		{
			name:    "cluster members, sorted",
			replies: map[string]string{"GET /v1/cluster/members": `200 {"members": [{"name": "c1", "address": "127.0.0.1:7321", "status": "failed", "role": "chassis", "meta": {"tunnel_ip": "10.0.0.3", "roles": ["compute", "gateway"]}}, {"name": "s1", "address": "127.0.0.1:7301", "status": "alive", "role": "server"}]}`},
			args:    []string{"cluster", "members"},
			wantOut: `Name  Address         Status  Role     Meta
c1    127.0.0.1:7321  failed  chassis  roles=compute, gateway, tunnel_ip=10.0.0.3
s1    127.0.0.1:7301  alive   server
`,
		},
		{
			name:       "bad output format",
			args:       []string{"cluster", "status", "-o", "yaml"},
			wantCode:   1,
			wantErrHas: `--output "yaml": want table or json`,
			wantNoReqs: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, out, errOut, code := cli(t, tt.replies, tt.env, tt.args...)
			if code != tt.wantCode {
				t.Fatalf("exit %d, want %d; stderr:\n%s", code, tt.wantCode, errOut)
			}
			if tt.wantErrHas != "" && !strings.Contains(errOut, tt.wantErrHas) {
				t.Errorf("stderr = %q, want it to contain %q", errOut, tt.wantErrHas)
			}
			if tt.wantErrHas == "" && errOut != "" {
				t.Errorf("stderr = %q, want none", errOut)
			}
			if tt.wantReqs != nil && !reflect.DeepEqual(f.lines(), tt.wantReqs) {
				t.Errorf("requests = %q, want %q", f.lines(), tt.wantReqs)
			}
			if tt.wantBodies != nil {
				got := f.bodies()
				if len(got) != len(tt.wantBodies) {
					t.Fatalf("got %d bodies %v, want %d", len(got), got, len(tt.wantBodies))
				}
				for i, want := range tt.wantBodies {
					if w := jsonValue(t, want); !reflect.DeepEqual(got[i], w) {
						t.Errorf("body %d = %v, want %v", i, got[i], w)
					}
				}
			}
			if tt.wantNoReqs && len(f.lines()) != 0 {
				t.Errorf("requests %q sent by a command that should fail before calling the API", f.lines())
			}
			switch {
			case tt.wantJSON != "":
				if got, want := jsonValue(t, out), jsonValue(t, tt.wantJSON); !reflect.DeepEqual(got, want) {
					t.Errorf("stdout JSON = %v, want %v", got, want)
				}
			case tt.wantOutHas != nil:
				for _, s := range tt.wantOutHas {
					if !strings.Contains(out, s) {
						t.Errorf("stdout does not contain %q:\n%s", s, out)
					}
				}
			case tt.wantOut != "" || tt.wantCode != 0:
				if out != tt.wantOut {
					t.Errorf("stdout:\n%s\nwant:\n%s", out, tt.wantOut)
				}
			}
		})
	}
}

func TestIdentityFromFlagsEnvAndConfig(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "cli.json")
	if err := os.WriteFile(cfg, []byte(`{"project": "p-file", "roles": ["reader"], "token": "t-file"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		env     map[string]string
		args    []string
		project string
		roles   string
		token   string
	}{
		{"none: noauth admin", nil, nil, "", "", ""},
		{"flags", nil, []string{"--project", "p", "--roles", "member,reader", "--token", "t"}, "p", "member,reader", "t"},
		{"environment", map[string]string{"NEUTRINO_PROJECT": "p-env", "NEUTRINO_ROLES": "admin", "NEUTRINO_TOKEN": "t-env"}, nil, "p-env", "admin", "t-env"},
		{"config file", nil, []string{"--config", cfg}, "p-file", "reader", "t-file"},
		{"flag over env over file", map[string]string{"NEUTRINO_PROJECT": "p-env", "NEUTRINO_CONFIG": cfg}, []string{"--token", "t"}, "p-env", "reader", "t"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"network", "list"}, tt.args...)
			f, _, errOut, code := cli(t, map[string]string{"GET /v2.0/networks": `200 {"networks": []}`}, tt.env, args...)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errOut)
			}
			h := f.reqs[0].Header
			for name, want := range map[string]string{"X-Project-Id": tt.project, "X-Roles": tt.roles, "X-Auth-Token": tt.token} {
				if got := h.Get(name); got != want {
					t.Errorf("%s = %q, want %q", name, got, want)
				}
			}
		})
	}
}

func TestEndpointErrors(t *testing.T) {
	var out, errOut bytes.Buffer
	env := func(k string) (string, bool) {
		if k == "NEUTRINO_ENDPOINT" {
			return "localhost:9696", true
		}
		return "", false
	}
	if code := run(context.Background(), []string{"network", "list"}, &out, &errOut, env); code != 1 {
		t.Fatalf("exit %d, want 1", code)
	}
	if !strings.Contains(errOut.String(), `endpoint "localhost:9696"`) {
		t.Errorf("stderr = %q", errOut.String())
	}
}

func TestCompletion(t *testing.T) {
	tests := []struct {
		name    string
		replies map[string]string
		args    []string
		want    []string // lines before the directive
	}{
		{
			name: "output flag values",
			args: []string{"__complete", "network", "list", "-o", ""},
			want: []string{"table", "json"},
		},
		{
			name:    "network names and ids",
			replies: map[string]string{"GET /v2.0/networks": "200 {\"networks\": [" + net1 + ", " + net2 + "]}"},
			args:    []string{"__complete", "network", "show", ""},
			want:    []string{"a\tn1", "n1\ta", "b\tn2", "n2\tb"},
		},
		{
			name: "bash script",
			args: []string{"completion", "bash"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, out, errOut, code := cli(t, tt.replies, nil, tt.args...)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errOut)
			}
			if tt.want == nil {
				if !strings.Contains(out, "neutrino") {
					t.Errorf("completion script does not mention the binary:\n%.200s", out)
				}
				return
			}
			lines := strings.Split(strings.TrimSpace(out), "\n")
			if got := lines[:len(lines)-1]; !reflect.DeepEqual(got, tt.want) {
				t.Errorf("completions = %q, want %q", got, tt.want)
			}
		})
	}
}

// TestResourceDescriptor shows what a new resource costs: a descriptor.
// Its reference flag is resolved by name to an id.
func TestResourceDescriptor(t *testing.T) {
	widget := &resource{
		collection:  "widgets",
		singular:    "widget",
		nameArg:     true,
		listColumns: []column{{"ID", "id"}, {"Name", "name"}, {"Network", "network_id"}, {"Subnet", "cidr"}},
		showFields:  []string{"id", "name", "network_id", "cidr"},
		createFlags: []attrFlag{
			{name: "network", key: "network_id", kind: kindRef, ref: networkResource, usage: "network"},
			{name: "subnet-range", key: "cidr", kind: kindString, usage: "CIDR"},
			{name: "ip-version", key: "ip_version", kind: kindInt, usage: "4 or 6"},
		},
	}
	resources = append(resources, widget)
	t.Cleanup(func() { resources = resources[:len(resources)-1] })

	f, out, errOut, code := cli(t, map[string]string{
		"GET /v2.0/networks":  "200 {\"networks\": [" + net1 + "]}",
		"POST /v2.0/widgets":  `201 {"widget": {"id": "s1", "name": "sn", "network_id": "n1", "cidr": "10.0.0.0/24"}}`,
		"GET /v2.0/networks/": notFound,
	}, nil, "widget", "create", "sn", "--network", "a", "--subnet-range", "10.0.0.0/24", "--ip-version", "4")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	wantReqs := []string{"GET /v2.0/networks/a", "GET /v2.0/networks?name=a", "POST /v2.0/widgets"}
	if !reflect.DeepEqual(f.lines(), wantReqs) {
		t.Errorf("requests = %q, want %q", f.lines(), wantReqs)
	}
	want := jsonValue(t, `{"widget": {"name": "sn", "network_id": "n1", "cidr": "10.0.0.0/24", "ip_version": 4}}`)
	if got := f.bodies()[0]; !reflect.DeepEqual(got, want) {
		t.Errorf("body = %v, want %v", got, want)
	}
	wantOut := `Field       Value
id          s1
name        sn
network_id  n1
cidr        10.0.0.0/24
`
	if out != wantOut {
		t.Errorf("stdout:\n%s\nwant:\n%s", out, wantOut)
	}
}
