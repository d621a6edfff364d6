package northbound_test

import (
	"context"
	"testing"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/extradhcpopts"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/ports"
)

// TestExtraDHCPOpts: extra_dhcp_opts through gophercloud's extension:
// set on create, merged on update (a null opt_value removes one), listed
// in /v2.0/extensions; bad options are 400 with nothing written.
func TestExtraDHCPOpts(t *testing.T) {
	s := newAPIServer(t, nil)
	n := s.create("networks", "network", map[string]any{"name": "n"}, nil)
	nid := n["id"].(string)
	s.create("subnets", "subnet", map[string]any{"ip_version": 4, "network_id": nid, "cidr": "10.0.0.0/24"}, nil)
	nc := gopher(s, "", "")
	ctx := context.Background()

	var exts struct {
		Extensions []struct{ Alias string } `json:"extensions"`
	}
	s.do("GET", "/v2.0/extensions", nil, nil, &exts)
	found := false
	for _, e := range exts.Extensions {
		found = found || e.Alias == "extra_dhcp_opt"
	}
	if !found {
		t.Fatal("extra_dhcp_opt not in /v2.0/extensions")
	}

	var p struct {
		ports.Port
		extradhcpopts.ExtraDHCPOptsExt
	}
	err := ports.Create(ctx, nc, extradhcpopts.CreateOptsExt{
		CreateOptsBuilder: ports.CreateOpts{NetworkID: nid},
		ExtraDHCPOpts: []extradhcpopts.CreateExtraDHCPOpt{
			{OptName: "ntp-server", OptValue: "10.0.0.123"},
			{OptName: "250", OptValue: "custom"},
			{OptName: "dns-server", OptValue: "fd00::53", IPVersion: gophercloud.IPv6},
		},
	}).ExtractInto(&p)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.ExtraDHCPOpts) != 3 || p.ExtraDHCPOpts[0].OptName != "ntp-server" || p.ExtraDHCPOpts[0].IPVersion != 4 ||
		p.ExtraDHCPOpts[2].IPVersion != 6 {
		t.Fatalf("created with %+v", p.ExtraDHCPOpts)
	}
	newNTP := "10.0.0.124"
	err = ports.Update(ctx, nc, p.ID, extradhcpopts.UpdateOptsExt{
		UpdateOptsBuilder: ports.UpdateOpts{},
		ExtraDHCPOpts: []extradhcpopts.UpdateExtraDHCPOpt{
			{OptName: "ntp-server", OptValue: &newNTP},
			{OptName: "250", OptValue: nil},
		},
	}).ExtractInto(&p)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, o := range p.ExtraDHCPOpts {
		got[o.OptName] = o.OptValue
	}
	if len(got) != 2 || got["ntp-server"] != newNTP || got["dns-server"] != "fd00::53" {
		t.Fatalf("after update: %+v", p.ExtraDHCPOpts)
	}

	for name, opts := range map[string][]any{
		"unknown name":      {map[string]any{"opt_name": "no-such-option", "opt_value": "x"}},
		"code out of range": {map[string]any{"opt_name": "255", "opt_value": "x"}},
		"no name":           {map[string]any{"opt_value": "x"}},
		"bad ip_version":    {map[string]any{"opt_name": "42", "opt_value": "10.0.0.1", "ip_version": 5}},
		"duplicate": {map[string]any{"opt_name": "42", "opt_value": "10.0.0.1"},
			map[string]any{"opt_name": "42", "opt_value": "10.0.0.2"}},
	} {
		t.Run(name, func(t *testing.T) {
			before := s.revision()
			var ne neutronError
			code := s.do("PUT", "/v2.0/ports/"+p.ID, nil, map[string]any{"port": map[string]any{"extra_dhcp_opts": opts}}, &ne)
			if code != 400 || ne.NeutronError.Message == "" {
				t.Fatalf("got %d %+v, want 400", code, ne.NeutronError)
			}
			if s.revision() != before {
				t.Fatal("a rejected request changed state")
			}
		})
	}
}
