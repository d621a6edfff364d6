package northbound_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"neutrino/internal/benchfig"
	"neutrino/northbound"
)

// The 10k-port topology of the compile benchmarks
// (southbound/pipeline/topology.DefaultSpec(10000)): tenants of 10
// networks behind one router with an external gateway (SNAT), 10 ports a
// network, a security group per tenant with 3 rules and a remote-group
// rule, and a floating IP per tenant.
const (
	buildTenants        = 100
	buildNetsPerTenant  = 10
	buildPortsPerNet    = 10
	buildRulesPerGroup  = 4
	buildClients        = 8 // concurrent API clients, as an orchestrator runs them
	buildPortsPerBulk   = 100
	envBuildTenantsName = "NEUTRINO_BUILD_BENCH_TENANTS"
)

// BenchmarkAPIBuild10k builds the 10k-port topology through the API of a
// 3-server cluster, with the requests a Neutron client sends and bulk
// creates where Neutron has them (networks, subnets, security group rules,
// ports: a tenant's 100 ports in one request, 7 kB, far below Neutron's
// 112 KiB max_request_body_size), 8 clients in parallel, one tenant at a
// time each. It reports the time until the last request is answered (every
// write is committed on a quorum when answered), the process CPU (3
// servers and the clients) per request and per port, and the number of
// requests, and the allocations per port. No chassis is attached: realization is the simulator's figure
// (BenchmarkSimPortRealized). NEUTRINO_BUILD_BENCH_TENANTS scales it down
// (100 ports a tenant).
func BenchmarkAPIBuild10k(b *testing.B) {
	tenants := buildTenants
	if v := os.Getenv(envBuildTenantsName); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 250 {
			b.Fatalf("%s=%q: want 1..250", envBuildTenantsName, v)
		}
		tenants = n
	}
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		servers := newAPICluster(b, 3, func(c *northbound.Config) {
			c.VNIRanges = []northbound.Range{{Min: 1000, Max: 1000 + 2*tenants*buildNetsPerTenant}}
		})
		s := apiLeader(b, servers)
		writable(b, s)
		ext, _ := externalNet(s, nil, "172.16.0.0/16")
		b.StartTimer()

		var requests, retries atomic.Int64
		c := &buildClient{base: s.base, requests: &requests, retries: &retries}
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		mallocs0, cpu0, start := ms.Mallocs, processCPU(), time.Now()
		next := make(chan int)
		errs := make(chan error, buildClients)
		var wg sync.WaitGroup
		for range buildClients {
			wg.Go(func() {
				for t := range next {
					if err := c.tenant(t, ext["id"].(string)); err != nil {
						errs <- fmt.Errorf("tenant %d: %w", t, err)
						for range next { // drain so the feeder ends
						}
						return
					}
				}
			})
		}
		for t := range tenants {
			next <- t
		}
		close(next)
		wg.Wait()
		elapsed, cpu := time.Since(start), processCPU()-cpu0
		runtime.ReadMemStats(&ms)
		mallocs := ms.Mallocs - mallocs0
		b.StopTimer()
		close(errs)
		for err := range errs {
			b.Fatal(err)
		}
		// The build is committed: check it is all there.
		var ports struct {
			Ports []struct {
				DeviceOwner string `json:"device_owner"`
			} `json:"ports"`
		}
		if code := s.do("GET", "/v2.0/ports?fields=device_owner", nil, nil, &ports); code != 200 {
			b.Fatalf("list ports: %d", code)
		}
		vms := 0
		for _, p := range ports.Ports {
			if p.DeviceOwner == "" {
				vms++
			}
		}
		want := tenants * buildNetsPerTenant * buildPortsPerNet
		if vms != want {
			b.Fatalf("%d VM ports after the build, want %d", vms, want)
		}
		n := requests.Load()
		benchfig.Report(b, elapsed.Seconds(), "build-s")
		benchfig.Report(b, float64(n), "requests")
		benchfig.Report(b, float64(retries.Load()), "retried-503")
		benchfig.Report(b, float64(cpu.Microseconds())/float64(n), "cpu-us/request")
		benchfig.Report(b, float64(cpu.Microseconds())/float64(want), "cpu-us/port")
		benchfig.Report(b, float64(mallocs)/float64(want), "allocs/port")
		b.StartTimer()
	}
}

// buildClient sends one tenant's requests, as its project's member.
type buildClient struct {
	base              string
	requests, retries *atomic.Int64
}

func (c *buildClient) tenant(t int, extNet string) error {
	hdr := map[string]string{"X-Project-Id": fmt.Sprintf("build-%03d", t), "X-Roles": "member"}
	var rt struct{ Router map[string]any }
	if err := c.send("POST", "/v2.0/routers", hdr, map[string]any{"router": map[string]any{
		"name": fmt.Sprintf("r%d", t), "external_gateway_info": map[string]any{"network_id": extNet}}}, 201, &rt); err != nil {
		return err
	}
	var sg struct {
		SecurityGroup map[string]any `json:"security_group"`
	}
	if err := c.send("POST", "/v2.0/security-groups", hdr, map[string]any{"security_group": map[string]any{"name": fmt.Sprintf("sg%d", t)}}, 201, &sg); err != nil {
		return err
	}
	sgID := sg.SecurityGroup["id"].(string)
	rules := make([]map[string]any, 0, buildRulesPerGroup)
	for j := range buildRulesPerGroup - 1 {
		rules = append(rules, map[string]any{"security_group_id": sgID, "direction": "ingress", "ethertype": "IPv4",
			"protocol": "tcp", "port_range_min": 22 + j, "port_range_max": 22 + j, "remote_ip_prefix": "0.0.0.0/0"})
	}
	rules = append(rules, map[string]any{"security_group_id": sgID, "direction": "ingress", "ethertype": "IPv4", "remote_group_id": sgID})
	if err := c.send("POST", "/v2.0/security-group-rules", hdr, map[string]any{"security_group_rules": rules}, 201, nil); err != nil {
		return err
	}
	nets := make([]map[string]any, buildNetsPerTenant)
	for j := range nets {
		nets[j] = map[string]any{"name": fmt.Sprintf("n%d-%d", t, j)}
	}
	var nr struct{ Networks []map[string]any }
	if err := c.send("POST", "/v2.0/networks", hdr, map[string]any{"networks": nets}, 201, &nr); err != nil {
		return err
	}
	subs := make([]map[string]any, len(nr.Networks))
	for j, n := range nr.Networks {
		subs[j] = map[string]any{"network_id": n["id"], "ip_version": 4, "cidr": fmt.Sprintf("10.%d.%d.0/24", t, j)}
	}
	var sr struct{ Subnets []map[string]any }
	if err := c.send("POST", "/v2.0/subnets", hdr, map[string]any{"subnets": subs}, 201, &sr); err != nil {
		return err
	}
	for _, sub := range sr.Subnets {
		if err := c.send("PUT", "/v2.0/routers/"+rt.Router["id"].(string)+"/add_router_interface", hdr,
			map[string]any{"subnet_id": sub["id"]}, 200, nil); err != nil {
			return err
		}
	}
	var ports []map[string]any
	for _, n := range nr.Networks {
		for range buildPortsPerNet {
			ports = append(ports, map[string]any{"network_id": n["id"], "security_groups": []string{sgID}})
		}
	}
	var first string
	for len(ports) > 0 {
		k := min(len(ports), buildPortsPerBulk)
		var pr struct{ Ports []map[string]any }
		if err := c.send("POST", "/v2.0/ports", hdr, map[string]any{"ports": ports[:k]}, 201, &pr); err != nil {
			return err
		}
		if first == "" {
			first = pr.Ports[0]["id"].(string)
		}
		ports = ports[k:]
	}
	return c.send("POST", "/v2.0/floatingips", hdr, map[string]any{"floatingip": map[string]any{
		"floating_network_id": extNet, "port_id": first}}, 201, nil)
}

// send makes one request and decodes the answer into out, or says why it
// did not get the status it wants (callable from any goroutine). Like a
// careful client it retries a 503 for up to 30 s: one that was not applied
// as it is, one whose outcome is unknown with the Idempotency-Key the
// answer names (a leader change under the shared machine's load).
func (c *buildClient) send(method, path string, hdr map[string]string, body any, want int, out any) error {
	data, err := json.Marshal(body)
	if err != nil {
		return err
	}
	key := ""
	deadline := time.Now().Add(30 * time.Second)
	for {
		code, got, err := c.do(method, path, hdr, key, data)
		if err != nil {
			return err
		}
		if code == http.StatusServiceUnavailable && time.Now().Before(deadline) {
			var ne struct {
				NeutronError struct{ Type, Message string }
			}
			_ = json.Unmarshal(got, &ne)
			if ne.NeutronError.Type == "OutcomeUnknown" {
				if i := strings.Index(ne.NeutronError.Message, "Idempotency-Key: "); i >= 0 {
					key = strings.Fields(ne.NeutronError.Message[i+len("Idempotency-Key: "):])[0]
				}
			}
			c.retries.Add(1)
			time.Sleep(100 * time.Millisecond) // back off, then retry
			continue
		}
		if code != want {
			return fmt.Errorf("%s %s: %d %s", method, path, code, got)
		}
		if out != nil {
			return json.Unmarshal(got, out)
		}
		return nil
	}
}

func (c *buildClient) do(method, path string, hdr map[string]string, key string, data []byte) (int, []byte, error) {
	req, err := http.NewRequest(method, c.base+path, bytes.NewReader(data))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	if key != "" {
		req.Header.Set("Idempotency-Key", key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	got, err := io.ReadAll(resp.Body)
	c.requests.Add(1)
	return resp.StatusCode, got, err
}
