package lbaas

import (
	"context"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// specs are the renderer's cases: each renders to testdata/NAME.golden and
// must pass `haproxy -c` (when haproxy is installed).
var specs = map[string]Spec{
	"round-robin": {ID: "lb1", VIP: "10.0.0.10",
		Listeners: []Listener{{ID: "l1", Protocol: "HTTP", Port: 80, DefaultPool: "p1", AdminStateUp: true, ConnectionLimit: -1,
			InsertHeaders: map[string]string{"X-Forwarded-For": "true"}}},
		Pools: []Pool{{ID: "p1", Protocol: "HTTP", Algorithm: "ROUND_ROBIN", AdminStateUp: true,
			Monitor: &Monitor{Type: "HTTP", Delay: 2, Timeout: 1, MaxRetries: 2, MaxRetriesDown: 2, URLPath: "/", ExpectedCodes: "200-202", AdminStateUp: true},
			Members: []Member{
				{ID: "m2", Address: "10.0.1.5", Port: 80, Weight: 1, AdminStateUp: true},
				{ID: "m1", Address: "10.0.0.5", Port: 80, Weight: 1, AdminStateUp: true},
				{ID: "m3", Address: "10.0.0.6", Port: 80, Weight: 0, AdminStateUp: false, Backup: true},
			}}}},
	"persistence": {ID: "lb2", VIP: "10.0.0.11",
		Listeners: []Listener{
			{ID: "l1", Protocol: "HTTP", Port: 80, DefaultPool: "cookie", AdminStateUp: true, ConnectionLimit: 10,
				TimeoutClientData: 1000, TimeoutMemberConnect: 500, TimeoutMemberData: 2000},
			{ID: "l2", Protocol: "TCP", Port: 5000, DefaultPool: "src", AdminStateUp: true, TimeoutTCPInspect: 100},
			{ID: "l3", Protocol: "HTTP", Port: 8080, DefaultPool: "app", AdminStateUp: false}},
		Pools: []Pool{
			{ID: "cookie", Protocol: "HTTP", Algorithm: "LEAST_CONNECTIONS", AdminStateUp: true, Persistence: &Persistence{Type: "HTTP_COOKIE"},
				Members: []Member{{ID: "a", Address: "10.0.0.5", Port: 80, Weight: 3, AdminStateUp: true}}},
			{ID: "src", Protocol: "TCP", Algorithm: "SOURCE_IP", AdminStateUp: true, Persistence: &Persistence{Type: "SOURCE_IP"},
				Monitor: &Monitor{Type: "TCP", Delay: 5, Timeout: 3, MaxRetries: 3, AdminStateUp: true},
				Members: []Member{{ID: "b", Address: "10.0.0.6", Port: 5000, Weight: 1, AdminStateUp: true, MonitorAddress: "10.0.0.7", MonitorPort: 5001}}},
			{ID: "app", Protocol: "HTTP", Algorithm: "ROUND_ROBIN", AdminStateUp: true, Persistence: &Persistence{Type: "APP_COOKIE", CookieName: "JSESSIONID"},
				Members: []Member{{ID: "c", Address: "fd00::5", Port: 80, Weight: 1, AdminStateUp: true}}},
		}},
	"l7": {ID: "lb3", VIP: "10.0.0.12",
		Listeners: []Listener{{ID: "l1", Protocol: "HTTP", Port: 80, DefaultPool: "web", AdminStateUp: true,
			Policies: []Policy{
				{ID: "reject", Action: "REJECT", Position: 3, AdminStateUp: true,
					Rules: []Rule{{ID: "r3", Type: "HEADER", Key: "X-Bad", CompareType: "EQUAL_TO", Value: "it's bad", AdminStateUp: true}}},
				{ID: "api", Action: "REDIRECT_TO_POOL", Position: 1, RedirectPool: "api", AdminStateUp: true,
					Rules: []Rule{
						{ID: "r1", Type: "PATH", CompareType: "STARTS_WITH", Value: "/api", AdminStateUp: true},
						{ID: "r2", Type: "HOST_NAME", CompareType: "REGEX", Value: `^api\.example\.(com|org)$`, Invert: true, AdminStateUp: true},
						{ID: "off", Type: "COOKIE", Key: "x", CompareType: "CONTAINS", Value: "y", AdminStateUp: false}}},
				{ID: "url", Action: "REDIRECT_TO_URL", Position: 2, RedirectURL: "https://example.com/", RedirectHTTPCode: 301, AdminStateUp: true,
					Rules: []Rule{{ID: "r4", Type: "FILE_TYPE", CompareType: "ENDS_WITH", Value: ".php", AdminStateUp: true}}},
				{ID: "norules", Action: "REJECT", Position: 4, AdminStateUp: true},
			}}},
		Pools: []Pool{
			{ID: "web", Protocol: "HTTP", AdminStateUp: true, Members: []Member{{ID: "w", Address: "10.0.0.5", Port: 80, Weight: 1, AdminStateUp: true}}},
			{ID: "api", Protocol: "HTTP", AdminStateUp: true, Members: []Member{{ID: "x", Address: "10.0.0.6", Port: 80, Weight: 1, AdminStateUp: true}}},
		}},
	"empty": {ID: "lb4", VIP: "10.0.0.13"},
	"proxy": {ID: "lb5", VIP: "10.0.0.14",
		Listeners: []Listener{
			{ID: "http", Protocol: "HTTP", Port: 80, DefaultPool: "proxy-http", AdminStateUp: true},
			{ID: "tcp", Protocol: "TCP", Port: 81, DefaultPool: "proxy-tcp", AdminStateUp: true}},
		Pools: []Pool{
			{ID: "proxy-http", Protocol: "PROXY", AdminStateUp: true, Members: []Member{{ID: "a", Address: "10.0.0.5", Port: 80, Weight: 1, AdminStateUp: true}}},
			{ID: "proxy-tcp", Protocol: "PROXY", AdminStateUp: true, Members: []Member{{ID: "b", Address: "10.0.0.6", Port: 80, Weight: 1, AdminStateUp: true}}},
		}},
}

func TestRenderGolden(t *testing.T) {
	p := Paths{Dir: "/run/neutrino/lbaas/LB"}
	for name, s := range specs {
		t.Run(name, func(t *testing.T) {
			got := Render(s, p)
			if again := Render(s, p); again != got {
				t.Fatalf("rendering twice differs")
			}
			path := filepath.Join("testdata", name+".golden")
			if *update {
				if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run with -update to create)", err)
			}
			if got != string(want) {
				t.Fatalf("config differs from %s (run with -update if intended):\ngot:\n%s\nwant:\n%s", path, got, want)
			}
			if _, err := exec.LookPath("haproxy"); err != nil {
				t.Skip("no haproxy to check the config with")
			}
			// haproxy -c checks the stats socket's directory exists.
			dir := t.TempDir()
			cfg := filepath.Join(dir, "haproxy.cfg")
			if err := os.WriteFile(cfg, []byte(Render(s, Paths{Dir: dir})), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := Check(context.Background(), "", cfg); err != nil {
				t.Fatalf("haproxy -c: %v", err)
			}
		})
	}
}

func TestExpectCodes(t *testing.T) {
	for in, want := range map[string]string{
		"":             "status 200",
		"204":          "status 204",
		"200,202":      "rstatus ^(200|202)$",
		"200-203":      "rstatus ^(200|201|202|203)$",
		"200, 301-302": "rstatus ^(200|301|302)$",
	} {
		if got := expectCodes(in); got != want {
			t.Errorf("expectCodes(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestOperating(t *testing.T) {
	s := specs["round-robin"]
	stats := "# pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,dreq,dresp,ereq,econ,eresp,wretr,wredis,status,weight,act,bck,chkfail,chkdown,lastchg,downtime,qlimit,pid,iid,sid,throttle,lbtot,tracked,type\n" +
		"l1,FRONTEND,,,0,0,100000,0,0,0,0,0,0,,,,,OPEN,,,,,,,,,1,2,0,,,,0\n" +
		"p1,m1,0,0,0,0,,0,0,0,,0,,0,0,0,0,UP,1,1,0,0,0,5,0,,1,3,1,,0,,2\n" +
		"p1,m2,0,0,0,0,,0,0,0,,0,,0,0,0,0,DOWN 1/2,1,1,0,0,0,5,0,,1,3,2,,0,,2\n" +
		"p1,m3,0,0,0,0,,0,0,0,,0,,0,0,0,0,MAINT,0,0,1,0,0,5,0,,1,3,3,,0,,2\n" +
		"p1,BACKEND,0,0,0,0,10000,0,0,0,0,0,,0,0,0,0,UP,1,1,0,,0,5,0,,1,3,0,,0,,1\n"
	rows, err := ParseStats(stats)
	if err != nil {
		t.Fatal(err)
	}
	got := Operating(s, rows)
	want := map[string]string{"lb1": Degraded, "l1": Online, "p1": Degraded, "m1": Online, "m2": Error, "m3": Offline}
	for id, st := range want {
		if got[id] != st {
			t.Errorf("%s: %s, want %s (all: %v)", id, got[id], st, got)
		}
	}
	rows[2].Status = "UP"
	if got := Operating(s, rows); got["p1"] != Online || got["lb1"] != Online {
		t.Errorf("all enabled members up: %v", got)
	}
	rows[1].Status, rows[2].Status = "DOWN", "DOWN"
	if got := Operating(s, rows); got["p1"] != Error {
		t.Errorf("every member down: %v", got)
	}
	if !strings.Contains(stats, "DOWN 1/2") {
		t.Fatal("fixture")
	}
}
