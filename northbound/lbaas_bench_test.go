package northbound_test

import (
	"fmt"
	"testing"
	"time"

	"neutrino/fsm"
)

// BenchmarkLBTreeCreate measures a load balancer tree (load balancer,
// HTTP listener, pool, 3 members, HTTP monitor) through the Octavia API of
// a 3-server cluster, from the first request until the whole tree is
// ACTIVE: Octavia's single-call create, and step by step (each write
// waits for ACTIVE, as Octavia requires). ACTIVE comes from the gateway's
// report (lbEnv's reporter on the agent-status endpoint, no HAProxy), so
// this is the API and Raft cost of the tree, not HAProxy's.
func BenchmarkLBTreeCreate(b *testing.B) {
	e := newLBEnv(b)
	_, subID := lbTenantNet(e.servers[0], nil, "10.60.0.0/16")
	post := func(i int, path string, body map[string]any) string {
		var out map[string]map[string]any
		if code := e.servers[i%3].do("POST", "/v2/lbaas/"+path, nil, body, &out); code != 201 {
			b.Fatalf("POST %s: %d", path, code)
		}
		for _, o := range out {
			return o["id"].(string)
		}
		return ""
	}
	// active polls until the load balancer is ACTIVE (a finer poll than
	// eventually's: it is what is measured).
	active := func(id string) {
		deadline := time.Now().Add(30 * time.Second)
		for {
			var out map[string]map[string]any
			if e.servers[0].do("GET", "/v2/lbaas/loadbalancers/"+id, nil, nil, &out) == 200 && out["loadbalancer"]["provisioning_status"] == fsm.LBActive {
				return
			}
			if time.Now().After(deadline) {
				b.Fatalf("load balancer %s not ACTIVE", id)
			}
			time.Sleep(2 * time.Millisecond)
		}
	}
	members := func(n int) []map[string]any {
		var ms []map[string]any
		for i := range 3 {
			ms = append(ms, map[string]any{"address": fmt.Sprintf("10.60.%d.%d", n%200, 10+i), "protocol_port": 8080})
		}
		return ms
	}
	n := 0
	run := func(b *testing.B, one func(n int) string) {
		var lat []time.Duration
		for i := 0; i < b.N; i++ {
			for range 10 {
				n++
				t0 := time.Now()
				id := one(n)
				lat = append(lat, time.Since(t0))
				// Keep the chassis' load constant.
				if code := e.servers[n%3].do("DELETE", "/v2/lbaas/loadbalancers/"+id+"?cascade=true", nil, nil, nil); code != 204 {
					b.Fatalf("delete: %d", code)
				}
			}
		}
		latencyMetrics(b, lat)
	}
	b.Run("single-call", func(b *testing.B) {
		run(b, func(n int) string {
			id := post(n, "loadbalancers", map[string]any{"loadbalancer": map[string]any{"vip_subnet_id": subID, "listeners": []any{map[string]any{
				"protocol": "HTTP", "protocol_port": 80, "default_pool": map[string]any{"protocol": "HTTP", "lb_algorithm": "ROUND_ROBIN",
					"members": members(n), "healthmonitor": map[string]any{"type": "HTTP", "delay": 2, "timeout": 1, "max_retries": 2}}}}}})
			active(id)
			return id
		})
	})
	b.Run("stepwise", func(b *testing.B) {
		run(b, func(n int) string {
			id := post(n, "loadbalancers", map[string]any{"loadbalancer": map[string]any{"vip_subnet_id": subID}})
			active(id)
			l := post(n+1, "listeners", map[string]any{"listener": map[string]any{"loadbalancer_id": id, "protocol": "HTTP", "protocol_port": 80}})
			active(id)
			p := post(n+2, "pools", map[string]any{"pool": map[string]any{"listener_id": l, "protocol": "HTTP", "lb_algorithm": "ROUND_ROBIN"}})
			active(id)
			for j, m := range members(n) {
				post(n+j, "pools/"+p+"/members", map[string]any{"member": m})
				active(id)
			}
			post(n, "healthmonitors", map[string]any{"healthmonitor": map[string]any{"pool_id": p, "type": "HTTP", "delay": 2, "timeout": 1, "max_retries": 2}})
			active(id)
			return id
		})
	})
}
