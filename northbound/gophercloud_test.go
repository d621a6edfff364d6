package northbound_test

import (
	"context"
	"errors"
	"net/http"
	"testing"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/networks"
	"github.com/gophercloud/gophercloud/v2/pagination"
)

// gopher returns a gophercloud networking client for a server, acting as
// the given project (admin when project is "", as noauth does).
func gopher(s *apiServer, project string, roles string) *gophercloud.ServiceClient {
	sc := &gophercloud.ServiceClient{
		ProviderClient: &gophercloud.ProviderClient{HTTPClient: http.Client{}},
		Endpoint:       s.base + "/",
		ResourceBase:   s.base + "/v2.0/",
		Type:           "network",
	}
	if project != "" {
		sc.MoreHeaders = map[string]string{"X-Project-Id": project, "X-Roles": roles}
	}
	return sc
}

func isStatus(err error, code int) bool {
	var e gophercloud.ErrUnexpectedResponseCode
	return errors.As(err, &e) && e.Actual == code
}

// TestGophercloudNetworks drives networks through gophercloud against a
// 3-server cluster, each call through a different server.
func TestGophercloudNetworks(t *testing.T) {
	servers := newAPICluster(t, 3, nil)
	ctx := context.Background()
	c := func(i int) *gophercloud.ServiceClient { return gopher(servers[i%3], "", "") }

	var ids []string
	for i, name := range []string{"g-1", "g-2", "g-3", "g-4", "g-5"} {
		up := true
		n, err := networks.Create(ctx, c(i), networks.CreateOpts{Name: name, AdminStateUp: &up, Description: "via gophercloud"}).Extract()
		if err != nil {
			t.Fatalf("create %s: %v", name, err)
		}
		if n.Name != name || n.Status != "ACTIVE" || n.CreatedAt.IsZero() || n.RevisionNumber != 1 {
			t.Fatalf("created %+v", n)
		}
		ids = append(ids, n.ID)
	}

	// Filtered list.
	all, err := networks.List(c(1), networks.ListOpts{Name: "g-3"}).AllPages(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got, err := networks.ExtractNetworks(all)
	if err != nil || len(got) != 1 || got[0].ID != ids[2] {
		t.Fatalf("filter by name: %v %+v", err, got)
	}

	// Paging: limit 2 walks all five through the next links.
	pages, seen := 0, 0
	err = networks.List(c(2), networks.ListOpts{Limit: 2, SortKey: "name", SortDir: "asc"}).EachPage(ctx, func(_ context.Context, p pagination.Page) (bool, error) {
		ns, err := networks.ExtractNetworks(p)
		if err != nil {
			return false, err
		}
		pages++
		seen += len(ns)
		return true, nil
	})
	if err != nil || seen != 5 || pages < 3 {
		t.Fatalf("paging: err %v, %d networks in %d pages", err, seen, pages)
	}

	// Update with If-Match: the right revision wins, a stale one gets 412.
	name := "g-1-renamed"
	rev := 1
	n, err := networks.Update(ctx, c(0), ids[0], networks.UpdateOpts{Name: &name, RevisionNumber: &rev}).Extract()
	if err != nil || n.Name != name || n.RevisionNumber != 2 {
		t.Fatalf("update: %v %+v", err, n)
	}
	_, err = networks.Update(ctx, c(1), ids[0], networks.UpdateOpts{Name: &name, RevisionNumber: &rev}).Extract()
	if !isStatus(err, http.StatusPreconditionFailed) {
		t.Fatalf("stale If-Match: %v", err)
	}

	for i, id := range ids {
		if err := networks.Delete(ctx, c(i), id).ExtractErr(); err != nil {
			t.Fatalf("delete: %v", err)
		}
	}
	if _, err := networks.Get(ctx, c(0), ids[0]).Extract(); !isStatus(err, http.StatusNotFound) {
		t.Fatalf("get deleted: %v", err)
	}
}
