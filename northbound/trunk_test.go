package northbound_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/trunk_details"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/trunks"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/networks"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/ports"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/subnets"
)

// wantGopherError checks a failed call's status and NeutronError type.
func wantGopherError(t *testing.T, what string, err error, code int, typ string) {
	t.Helper()
	var e gophercloud.ErrUnexpectedResponseCode
	if !errors.As(err, &e) || e.Actual != code {
		t.Fatalf("%s: want %d %s, got %v", what, code, typ, err)
	}
	var body struct{ NeutronError struct{ Type string } }
	if json.Unmarshal(e.Body, &body) != nil || body.NeutronError.Type != typ {
		t.Fatalf("%s: want error type %s, body %s", what, typ, e.Body)
	}
}

// TestGophercloudTrunks drives trunks (create, subports, details, the
// in-use checks, update, delete) through gophercloud against a 3-server
// cluster, each call through some server.
func TestGophercloudTrunks(t *testing.T) {
	servers := newAPICluster(t, 3, nil)
	ctx := context.Background()
	pa := func(i int) *gophercloud.ServiceClient { return gopher(servers[i%3], "pa", "member") }
	pb := gopher(servers[1], "pb", "member")

	var netIDs []string
	for i, cidr := range []string{"10.61.0.0/24", "10.62.0.0/24", "10.63.0.0/24"} {
		n, err := networks.Create(ctx, pa(i), networks.CreateOpts{Name: "trunk-net"}).Extract()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := subnets.Create(ctx, pa(i), subnets.CreateOpts{NetworkID: n.ID, CIDR: cidr, IPVersion: 4}).Extract(); err != nil {
			t.Fatal(err)
		}
		netIDs = append(netIDs, n.ID)
	}
	parent, err := ports.Create(ctx, pa(0), ports.CreateOpts{NetworkID: netIDs[0], Name: "parent"}).Extract()
	if err != nil {
		t.Fatal(err)
	}
	// Subports inherit the parent's MAC, as `openstack port create
	// --mac-address` lets them.
	sub1, err := ports.Create(ctx, pa(1), ports.CreateOpts{NetworkID: netIDs[1], MACAddress: parent.MACAddress}).Extract()
	if err != nil {
		t.Fatal(err)
	}
	sub2, err := ports.Create(ctx, pa(2), ports.CreateOpts{NetworkID: netIDs[2]}).Extract()
	if err != nil {
		t.Fatal(err)
	}
	other, err := ports.Create(ctx, pb, ports.CreateOpts{NetworkID: mustNet(t, pb, ctx)}).Extract()
	if err != nil {
		t.Fatal(err)
	}

	tr, err := trunks.Create(ctx, pa(0), trunks.CreateOpts{PortID: parent.ID, Name: "t1",
		Subports: []trunks.Subport{{PortID: sub1.ID, SegmentationType: "vlan", SegmentationID: 100}}}).Extract()
	if err != nil {
		t.Fatal(err)
	}
	if tr.PortID != parent.ID || len(tr.Subports) != 1 || tr.Subports[0].SegmentationID != 100 || tr.Status != "DOWN" || !tr.AdminStateUp {
		t.Fatalf("created trunk: %+v", tr)
	}
	_, err = trunks.Create(ctx, pa(1), trunks.CreateOpts{PortID: parent.ID}).Extract()
	wantGopherError(t, "second trunk on a parent", err, http.StatusConflict, "TrunkPortInUse")
	_, err = trunks.Create(ctx, pa(1), trunks.CreateOpts{PortID: sub1.ID}).Extract()
	wantGopherError(t, "subport as a parent", err, http.StatusConflict, "TrunkPortInUse")
	_, err = trunks.Create(ctx, pa(1), trunks.CreateOpts{PortID: other.ID}).Extract()
	wantGopherError(t, "another project's port", err, http.StatusNotFound, "PortNotFound")

	add := func(port string, vlan int) error {
		_, err := trunks.AddSubports(ctx, pa(2), tr.ID, trunks.AddSubportsOpts{Subports: []trunks.Subport{{PortID: port, SegmentationType: "vlan", SegmentationID: vlan}}}).Extract()
		return err
	}
	wantGopherError(t, "VLAN in use", add(sub2.ID, 100), http.StatusConflict, "DuplicateSubPort")
	wantGopherError(t, "VLAN 4095", add(sub2.ID, 4095), http.StatusBadRequest, "HTTPBadRequest")
	wantGopherError(t, "subport twice", add(sub1.ID, 101), http.StatusConflict, "TrunkPortInUse")
	if err := add(sub2.ID, 200); err != nil {
		t.Fatal(err)
	}
	subs, err := trunks.GetSubports(ctx, pa(0), tr.ID).Extract()
	if err != nil || len(subs) != 2 || subs[1].PortID != sub2.ID || subs[1].SegmentationID != 200 {
		t.Fatalf("get_subports: %+v %v", subs, err)
	}

	// The parent port shows its trunk (trunk-details).
	var withDetails struct {
		ports.Port
		trunk_details.TrunkDetailsExt
	}
	if err := ports.Get(ctx, pa(1), parent.ID).ExtractInto(&withDetails); err != nil {
		t.Fatal(err)
	}
	if d := withDetails.TrunkDetails; d.TrunkID != tr.ID || len(d.SubPorts) != 2 || d.SubPorts[0].MACAddress != parent.MACAddress {
		t.Fatalf("trunk_details: %+v", withDetails.TrunkDetails)
	}
	sp, err := ports.Get(ctx, pa(1), sub1.ID).Extract()
	if err != nil || sp.DeviceOwner != "trunk:subport" || sp.DeviceID != tr.ID {
		t.Fatalf("subport: %+v %v", sp, err)
	}

	wantGopherError(t, "delete a parent", ports.Delete(ctx, pa(0), parent.ID).ExtractErr(), http.StatusConflict, "PortInUseAsTrunkParent")
	wantGopherError(t, "delete a subport", ports.Delete(ctx, pa(0), sub2.ID).ExtractErr(), http.StatusConflict, "PortInUseAsSubPort")

	rm, err := trunks.RemoveSubports(ctx, pa(1), tr.ID, trunks.RemoveSubportsOpts{Subports: []trunks.RemoveSubport{{PortID: sub1.ID}}}).Extract()
	if err != nil || len(rm.Subports) != 1 || rm.Subports[0].PortID != sub2.ID {
		t.Fatalf("remove_subports: %+v %v", rm, err)
	}
	_, err = trunks.RemoveSubports(ctx, pa(1), tr.ID, trunks.RemoveSubportsOpts{Subports: []trunks.RemoveSubport{{PortID: sub1.ID}}}).Extract()
	wantGopherError(t, "remove a removed subport", err, http.StatusNotFound, "SubPortNotFound")

	down, name := false, "renamed"
	upd, err := trunks.Update(ctx, pa(2), tr.ID, trunks.UpdateOpts{Name: &name, AdminStateUp: &down}).Extract()
	if err != nil || upd.Name != name || upd.AdminStateUp || upd.RevisionNumber <= tr.RevisionNumber {
		t.Fatalf("update: %+v %v", upd, err)
	}
	wantGopherError(t, "add to a disabled trunk", add(sub1.ID, 300), http.StatusConflict, "TrunkDisabled")

	// Another project sees nothing of it.
	if _, err := trunks.Get(ctx, pb, tr.ID).Extract(); !isStatus(err, http.StatusNotFound) {
		t.Fatalf("pb show: %v", err)
	}
	pages, err := trunks.List(pb, trunks.ListOpts{}).AllPages(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if l, _ := trunks.ExtractTrunks(pages); len(l) != 0 {
		t.Fatalf("pb lists %d trunks", len(l))
	}
	pages, err = trunks.List(pa(0), trunks.ListOpts{Name: name}).AllPages(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if l, _ := trunks.ExtractTrunks(pages); len(l) != 1 || l[0].ID != tr.ID {
		t.Fatalf("pa lists %+v", l)
	}

	if err := trunks.Delete(ctx, pa(0), tr.ID).ExtractErr(); err != nil {
		t.Fatal(err)
	}
	if _, err := trunks.Get(ctx, pa(1), tr.ID).Extract(); !isStatus(err, http.StatusNotFound) {
		t.Fatalf("deleted trunk: %v", err)
	}
	for _, id := range []string{parent.ID, sub1.ID, sub2.ID} {
		if err := ports.Delete(ctx, pa(1), id).ExtractErr(); err != nil {
			t.Fatalf("delete port %s after the trunk: %v", id, err)
		}
	}

	// The extensions are advertised.
	resp, err := http.Get(servers[0].base + "/v2.0/extensions")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var exts struct{ Extensions []struct{ Alias string } }
	if err := json.NewDecoder(resp.Body).Decode(&exts); err != nil {
		t.Fatal(err)
	}
	var aliases []string
	for _, e := range exts.Extensions {
		aliases = append(aliases, e.Alias)
	}
	if all := strings.Join(aliases, ","); !strings.Contains(all, "trunk,") && !strings.HasSuffix(all, "trunk") || !strings.Contains(all, "trunk-details") {
		t.Fatalf("extensions: %s", all)
	}
}

// mustNet creates a network with a subnet for a project.
func mustNet(t *testing.T, c *gophercloud.ServiceClient, ctx context.Context) string {
	t.Helper()
	n, err := networks.Create(ctx, c, networks.CreateOpts{Name: "other"}).Extract()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := subnets.Create(ctx, c, subnets.CreateOpts{NetworkID: n.ID, CIDR: "10.64.0.0/24", IPVersion: 4}).Extract(); err != nil {
		t.Fatal(err)
	}
	return n.ID
}
