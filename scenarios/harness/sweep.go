package harness

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"time"
)

// Sweep removes what a scenario made, so that the next one can run on the
// same lab: the VMs plugged through e, then through the API (as admin,
// every project) load balancers (cascade), VPN and firewall objects,
// floating IPs, routers (interfaces and gateway first), ports, networks
// (their subnets with them) and security groups other than the projects'
// default ones. It reports what it could not remove.
func (e *Env) Sweep() error {
	var errs []error
	e.vms.mu.Lock()
	names := make([]string, 0, len(e.vms.m))
	for n := range e.vms.m {
		names = append(names, n)
	}
	e.vms.m = map[string]VM{}
	e.vms.mu.Unlock()
	slices.Sort(names)
	for _, n := range names {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		if err := e.D.DelVM(ctx, n); err != nil {
			// A scenario may have removed its VM itself.
			if _, execErr := e.D.Exec(ctx, n, "true"); execErr == nil {
				errs = append(errs, fmt.Errorf("del VM %s: %w", n, err))
			}
		}
		cancel()
	}
	api := e.D.Endpoint() + "/v2.0/"
	// A scenario that restarted a server may end before the cluster has
	// a leader again: wait (with a deadline) until it serves reads.
	if err := waitServing(api+"networks", time.Minute); err != nil {
		return errors.Join(append(errs, err)...)
	}
	del := func(what, url string, body any) {
		method := http.MethodDelete
		if body != nil {
			method = http.MethodPut
		}
		r, err := Call(method, url, nil, body)
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("%s: %w", what, err))
		case r.Status >= 300 && r.Status != http.StatusNotFound:
			errs = append(errs, fmt.Errorf("%s: %d %s", what, r.Status, r.Body))
		}
	}
	// Services first: a load balancer holds its VIP port, a VPN service
	// its router, a firewall group its ports.
	e.sweepServices(api, del, &errs)
	// A trunk keeps its parent and subports from being deleted.
	for _, t := range e.list(api+"trunks", "trunks", &errs) {
		del("delete trunk "+t.ID, api+"trunks/"+t.ID, nil)
	}
	for _, f := range e.list(api+"floatingips", "floatingips", &errs) {
		del("delete floating IP "+f.ID, api+"floatingips/"+f.ID, nil)
	}
	ports := e.list(api+"ports", "ports", &errs)
	for _, rt := range e.list(api+"routers", "routers", &errs) {
		// Extra routes first: an interface a route's next hop needs
		// cannot go (RouterInterfaceInUseByRoute).
		del("clear the routes of router "+rt.ID, api+"routers/"+rt.ID, map[string]any{"router": map[string]any{"routes": []any{}}})
		for _, p := range ports {
			if p.DeviceID == rt.ID && p.DeviceOwner == "network:router_interface" {
				del("remove interface "+p.ID+" of router "+rt.ID, api+"routers/"+rt.ID+"/remove_router_interface", map[string]any{"port_id": p.ID})
			}
		}
		del("clear the gateway of router "+rt.ID, api+"routers/"+rt.ID, map[string]any{"router": map[string]any{"external_gateway_info": map[string]any{}}})
		del("delete router "+rt.ID, api+"routers/"+rt.ID, nil)
	}
	for _, p := range e.list(api+"ports", "ports", &errs) {
		del("delete port "+p.ID, api+"ports/"+p.ID, nil)
	}
	for _, n := range e.list(api+"networks", "networks", &errs) {
		del("delete network "+n.ID, api+"networks/"+n.ID, nil)
	}
	for _, g := range e.list(api+"security-groups", "security_groups", &errs) {
		if g.Name != "default" {
			del("delete security group "+g.ID, api+"security-groups/"+g.ID, nil)
		}
	}
	for _, q := range e.list(api+"qos/policies", "policies", &errs) {
		del("delete QoS policy "+q.ID, api+"qos/policies/"+q.ID, nil)
	}
	// What is left is a leak the next scenario would trip on.
	for _, c := range []struct{ url, key string }{{"floatingips", "floatingips"}, {"routers", "routers"}, {"ports", "ports"}, {"networks", "networks"}} {
		if left := e.list(api+c.url, c.key, &errs); len(left) > 0 {
			errs = append(errs, fmt.Errorf("%d %s left: %+v", len(left), c.key, left))
		}
	}
	return errors.Join(errs...)
}

// sweepServices removes the LBaaS, VPNaaS and FWaaS objects of every
// project; del reports a failed removal into errs.
func (e *Env) sweepServices(api string, del func(what, url string, body any), errs *[]error) {
	lbs := e.D.Endpoint() + "/v2/lbaas/loadbalancers"
	for _, lb := range e.list(lbs, "loadbalancers", errs) {
		del("delete load balancer "+lb.ID, lbs+"/"+lb.ID+"?cascade=true", nil)
	}
	// A load balancer goes through PENDING_DELETE while its gateway stops
	// HAProxy; its VIP port goes with it.
	deadline := time.Now().Add(2 * time.Minute)
	for len(e.list(lbs, "loadbalancers", errs)) > 0 {
		if time.Now().After(deadline) {
			*errs = append(*errs, fmt.Errorf("load balancers still listed 2 min after their cascade delete"))
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
	for _, c := range []struct{ path, key string }{
		{"vpn/ipsec-site-connections", "ipsec_site_connections"}, {"vpn/vpnservices", "vpnservices"},
		{"vpn/ikepolicies", "ikepolicies"}, {"vpn/ipsecpolicies", "ipsecpolicies"}, {"vpn/endpoint-groups", "endpoint_groups"},
	} {
		for _, o := range e.list(api+c.path, c.key, errs) {
			del("delete "+c.path+" "+o.ID, api+c.path+"/"+o.ID, nil)
		}
	}
	// A project's default firewall group and policies are protected (as
	// in neutron-fwaas) and stay, like its default security group.
	for _, g := range e.list(api+"fwaas/firewall_groups", "firewall_groups", errs) {
		if g.Name == "default" {
			continue
		}
		del("clear the ports of firewall group "+g.ID, api+"fwaas/firewall_groups/"+g.ID, map[string]any{"firewall_group": map[string]any{"ports": []string{}}})
		del("delete firewall group "+g.ID, api+"fwaas/firewall_groups/"+g.ID, nil)
	}
	kept := map[string]bool{} // the default policies' rules
	for _, p := range e.list(api+"fwaas/firewall_policies", "firewall_policies", errs) {
		if p.Name == "default ingress" || p.Name == "default egress" {
			for _, r := range p.FirewallRules {
				kept[r] = true
			}
			continue
		}
		del("delete firewall policy "+p.ID, api+"fwaas/firewall_policies/"+p.ID, nil)
	}
	for _, r := range e.list(api+"fwaas/firewall_rules", "firewall_rules", errs) {
		if !kept[r.ID] {
			del("delete firewall rule "+r.ID, api+"fwaas/firewall_rules/"+r.ID, nil)
		}
	}
}

// waitServing polls url until it answers 200 or timeout passes.
func waitServing(url string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		r, err := Call(http.MethodGet, url, nil, nil)
		if err == nil && r.Status == http.StatusOK {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the cluster did not serve GET %s within %v: %v %d %s", url, timeout, err, r.Status, r.Body)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// apiObject is what Sweep reads of a listed object.
type apiObject struct {
	ID          string `json:"id"`
	Name        string `json:"name"`
	DeviceID    string `json:"device_id"`
	DeviceOwner string `json:"device_owner"`
	// FirewallRules: a firewall policy's rules.
	FirewallRules []string `json:"firewall_rules"`
}

// list lists a collection; a failure is added to errs.
func (e *Env) list(url, key string, errs *[]error) []apiObject {
	r, err := Call(http.MethodGet, url, nil, nil)
	if err != nil || r.Status != http.StatusOK {
		*errs = append(*errs, fmt.Errorf("GET %s: %v %d %s", url, err, r.Status, r.Body))
		return nil
	}
	var body map[string][]apiObject
	if err := json.Unmarshal(r.Body, &body); err != nil {
		*errs = append(*errs, fmt.Errorf("GET %s: %w", url, err))
		return nil
	}
	return body[key]
}
