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
// every project) floating IPs, routers (interfaces and gateway first),
// ports, networks (their subnets with them) and security groups other than
// the projects' default ones. It reports what it could not remove.
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
	// What is left is a leak the next scenario would trip on.
	for _, c := range []struct{ url, key string }{{"floatingips", "floatingips"}, {"routers", "routers"}, {"ports", "ports"}, {"networks", "networks"}} {
		if left := e.list(api+c.url, c.key, &errs); len(left) > 0 {
			errs = append(errs, fmt.Errorf("%d %s left: %+v", len(left), c.key, left))
		}
	}
	return errors.Join(errs...)
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
