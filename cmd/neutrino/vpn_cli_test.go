package main

import (
	"reflect"
	"strings"
	"testing"
)

// TestVPNCommands: `neutrino vpn ...` reaches the nested VPNaaS
// collections, resolves references by name and reads Neutron's list keys.
func TestVPNCommands(t *testing.T) {
	replies := map[string]string{
		"GET /v2.0/vpn/vpnservices":             `200 {"vpnservices": [{"id": "s1", "name": "vpn1"}]}`,
		"GET /v2.0/vpn/ikepolicies":             `200 {"ikepolicies": [{"id": "i1", "name": "ike1"}]}`,
		"GET /v2.0/vpn/ipsecpolicies/p1":        `200 {"ipsecpolicy": {"id": "p1", "name": "ipsec1"}}`,
		"GET /v2.0/vpn/endpoint-groups":         `200 {"endpoint_groups": [{"id": "g1", "name": "local1"}, {"id": "g2", "name": "peer1"}]}`,
		"POST /v2.0/vpn/ipsec-site-connections": `201 {"ipsec_site_connection": {"id": "c1", "name": "conn1", "status": "PENDING_CREATE", "admin_state_up": true, "dpd": {"action": "hold", "interval": 30, "timeout": 120}}}`,
		"GET /v2.0/vpn/ipsec-site-connections":  `200 {"ipsec_site_connections": [{"id": "c1", "name": "conn1", "peer_address": "198.51.100.7", "auth_mode": "psk", "status": "ACTIVE"}]}`,
	}
	f, out, errOut, code := cli(t, replies, nil, "vpn", "site-connection", "create", "conn1", "--vpnservice", "vpn1",
		"--ikepolicy", "ike1", "--ipsecpolicy", "p1", "--peer-address", "198.51.100.7", "--peer-id", "198.51.100.7",
		"--psk", "secret", "--local-endpoint-group", "local1", "--peer-endpoint-group", "peer1", "--dpd-timeout", "60")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	last := f.lines()[len(f.lines())-1]
	if last != "POST /v2.0/vpn/ipsec-site-connections" {
		t.Fatalf("requests: %q", f.lines())
	}
	want := jsonValue(t, `{"ipsec_site_connection": {"name": "conn1", "vpnservice_id": "s1", "ikepolicy_id": "i1",
		"ipsecpolicy_id": "p1", "peer_address": "198.51.100.7", "peer_id": "198.51.100.7", "psk": "secret",
		"local_ep_group_id": "g1", "peer_ep_group_id": "g2", "dpd": {"timeout": 60}}}`)
	if got := f.bodies()[0]; !reflect.DeepEqual(got, want) {
		t.Errorf("body = %v, want %v", got, want)
	}
	if !strings.Contains(out, "PENDING_CREATE") || !strings.Contains(out, "UP") {
		t.Errorf("create output:\n%s", out)
	}
	_, out, errOut, code = cli(t, replies, nil, "vpn", "site-connection", "list")
	if code != 0 || !strings.Contains(out, "198.51.100.7") || !strings.Contains(out, "ACTIVE") {
		t.Fatalf("list: exit %d\n%s%s", code, out, errOut)
	}
}
