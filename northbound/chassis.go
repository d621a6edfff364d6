package northbound

import (
	"fmt"
	"net/http"

	"neutrino/fsm"
)

// chassisAttrs are the attributes of our chassis extension resource
// (read-only: chassis records come from gossip through the leader).
var chassisAttrs = map[string]attrSpec{
	"id":              {Kind: attrString},
	"name":            {Kind: attrString},
	"tunnel_ip":       {Kind: attrString},
	"ovsdb":           {Kind: attrString},
	"roles":           {Kind: attrStrings},
	"bridge_mappings": {Kind: attrString},
	"encaps":          {Kind: attrStrings},
	"datapath_type":   {Kind: attrString},
	"datapath_id":     {Kind: attrString},
	"status":          {Kind: attrString},
	"up":              {Kind: attrBool},
	"last_seen":       {Kind: attrString},
	"revision_number": {Kind: attrInt},
	"created_at":      {Kind: attrString},
	"updated_at":      {Kind: attrString},
}

// The zone (issue 19) is added outside the literal so that the literal's
// alignment, which other branches change too, stays as it was.
func init() { chassisAttrs["availability_zone"] = attrSpec{Kind: attrString} }

func (s *Server) chassisRoutes() {
	s.neutron("GET /v2.0/chassis", s.listChassis)
	s.neutron("GET /v2.0/chassis/{id}", s.showChassis)
}

func renderChassis(c *fsm.Chassis) map[string]any {
	status := "DOWN"
	if c.Up {
		status = "UP"
	}
	bm := map[string]string{}
	for k, v := range c.BridgeMappings {
		bm[k] = v
	}
	out := map[string]any{
		"id":              c.ID,
		"name":            c.Name,
		"tunnel_ip":       c.TunnelIP,
		"ovsdb":           c.OVSDB,
		"roles":           nonNil(c.Roles),
		"bridge_mappings": bm,
		"encaps":          nonNil(c.Encaps),
		"datapath_type":   c.DatapathType,
		"datapath_id":     fmt.Sprintf("%016x", c.DatapathID),
		"status":          status,
		"up":              c.Up,
		"last_seen":       c.LastSeen,
		"revision_number": c.RevisionNumber,
		"created_at":      c.CreatedAt,
		"updated_at":      c.UpdatedAt,
	}
	out["availability_zone"] = c.Zone()
	return out
}

// listChassis is GET /v2.0/chassis, admin only: chassis are
// infrastructure, not a project's resource.
func (s *Server) listChassis(w http.ResponseWriter, r *http.Request) error {
	if !identityFrom(r.Context()).Admin {
		return forbidden("rule:get_chassis is disallowed by policy")
	}
	lq, err := parseListQuery(r.URL.Query(), "chassis", chassisAttrs)
	if err != nil {
		return err
	}
	v := s.view(w)
	var objs []map[string]any
	for _, c := range v.ChassisList() {
		objs = append(objs, renderChassis(c))
	}
	return writeList(w, r, lq, "chassis", objs)
}

func (s *Server) showChassis(w http.ResponseWriter, r *http.Request) error {
	if !identityFrom(r.Context()).Admin {
		return forbidden("rule:get_chassis is disallowed by policy")
	}
	c := s.view(w).Chassis(r.PathValue("id"))
	if c == nil {
		return newError(http.StatusNotFound, fsm.ErrTypeChassisNotFound, "Chassis %s could not be found.", r.PathValue("id"))
	}
	return writeShow(w, r, "chassis", "chassis", chassisAttrs, renderChassis(c))
}
