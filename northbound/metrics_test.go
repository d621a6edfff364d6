package northbound

import "testing"

// TestResourceOf: the resource label is the route's collection, never an
// id, whatever the pattern's wildcards.
func TestResourceOf(t *testing.T) {
	for pattern, want := range map[string]string{
		"GET /v2.0/networks":                        "networks",
		"PUT /v2.0/networks/{id}":                   "networks",
		"PUT /v2.0/networks/{id}/tags/{tag}":        "networks/tags",
		"GET /v2.0/lbaas/loadbalancers/{id}/status": "lbaas/loadbalancers/status",
		"DELETE /v1/cluster/servers/{name}":         "v1/cluster/servers",
		"GET /healthz":                              "healthz",
		"GET /{$}":                                  "root",
		"GET /v2.0/{$}":                             "root",
		"/":                                         "unrouted",
		"":                                          "unrouted",
		"GET /v2.0/ports/{id}/bindings/{host...}":     "ports/bindings",
		"PUT /v2.0/routers/{id}/add_router_interface": "routers/add_router_interface",
	} {
		if got := resourceOf(pattern); got != want {
			t.Errorf("resourceOf(%q) = %q, want %q", pattern, got, want)
		}
	}
}
