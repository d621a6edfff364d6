package northbound

import (
	"bytes"
	"encoding/json"
	"net/http"
	"slices"
	"strconv"

	"neutrino/fsm"
)

// Trunks (Neutron's trunk and trunk-details extensions). Policy as
// Neutron's defaults: admin or owner for every action; the parent and the
// subports must be ports the caller owns (another project's port is not
// found, as Neutron's trunk validator finds it through the core plugin).
// The state machine checks the rest (fsm/trunk.go). A trunk's status
// follows its parent port's: ACTIVE once the parent is plugged and up,
// DOWN otherwise.

var trunkAttrs = map[string]attrSpec{
	"id":              {Kind: attrString},
	"name":            {Kind: attrString, Post: true, Put: true, MaxLen: 255},
	"description":     {Kind: attrString, Post: true, Put: true, MaxLen: 255},
	"project_id":      {Kind: attrString, Post: true, MaxLen: 255},
	"tenant_id":       {Kind: attrString, Post: true, MaxLen: 255},
	"port_id":         {Kind: attrString, Post: true, UUID: true},
	"admin_state_up":  {Kind: attrBool, Post: true, Put: true},
	"status":          {Kind: attrString},
	"tags":            {Kind: attrStrings, Post: true},
	"revision_number": {Kind: attrInt},
	"created_at":      {Kind: attrString},
	"updated_at":      {Kind: attrString},
}

var trunkStructured = map[string]attrSpec{"sub_ports": {Post: true}}

var trunkKnown = merged(trunkAttrs, trunkStructured)

func (s *Server) trunkRoutes() {
	s.neutron("GET /v2.0/trunks", s.listTrunks)
	s.neutron("POST /v2.0/trunks", s.createTrunk)
	s.neutron("GET /v2.0/trunks/{id}", s.showTrunk)
	s.neutron("PUT /v2.0/trunks/{id}", s.updateTrunk)
	s.neutron("DELETE /v2.0/trunks/{id}", s.deleteTrunk)
	s.neutron("PUT /v2.0/trunks/{id}/add_subports", s.addSubports)
	s.neutron("PUT /v2.0/trunks/{id}/remove_subports", s.removeSubports)
	s.neutron("GET /v2.0/trunks/{id}/get_subports", s.getSubports)
}

func renderSubPorts(subs []fsm.SubPort) []map[string]any {
	out := make([]map[string]any, 0, len(subs))
	for _, sp := range subs {
		out = append(out, map[string]any{"port_id": sp.PortID, "segmentation_type": sp.SegmentationType, "segmentation_id": sp.SegmentationID})
	}
	return out
}

// trunkStatus follows the parent port.
func trunkStatus(v *fsm.View, t *fsm.Trunk) string {
	if p := v.Port(t.PortID); p != nil && p.Status == "ACTIVE" && t.AdminStateUp {
		return "ACTIVE"
	}
	return "DOWN"
}

func renderTrunk(v *fsm.View, t *fsm.Trunk) map[string]any {
	return map[string]any{
		"id":              t.ID,
		"name":            t.Name,
		"description":     t.Description,
		"project_id":      t.ProjectID,
		"tenant_id":       t.ProjectID,
		"port_id":         t.PortID,
		"admin_state_up":  t.AdminStateUp,
		"status":          trunkStatus(v, t),
		"sub_ports":       renderSubPorts(t.SubPorts),
		"tags":            nonNil(t.Tags),
		"revision_number": t.RevisionNumber,
		"created_at":      t.CreatedAt,
		"updated_at":      t.UpdatedAt,
	}
}

// renderPortIn is renderPort with the trunk-details extension's
// trunk_details on a trunk's parent port.
func renderPortIn(v *fsm.View, p *fsm.Port) map[string]any {
	m := renderPort(p)
	t := v.TrunkOfParent(p.ID)
	if t == nil {
		return m
	}
	subs := renderSubPorts(t.SubPorts)
	for _, sp := range subs {
		if sub := v.Port(sp["port_id"].(string)); sub != nil {
			sp["mac_address"] = sub.MACAddress
		}
	}
	m["trunk_details"] = map[string]any{"trunk_id": t.ID, "sub_ports": subs}
	return m
}

func trunkNotFound(id string) error {
	return newError(http.StatusNotFound, fsm.ErrTypeTrunkNotFound, "Trunk %s could not be found.", id)
}

// lookupTrunk returns a trunk the caller owns (or any, for an admin).
func lookupTrunk(v *fsm.View, ident Identity, id string) (*fsm.Trunk, error) {
	t := v.Trunk(id)
	if t == nil || !(ident.Admin || t.ProjectID == ident.ProjectID) {
		return nil, trunkNotFound(id)
	}
	return t, nil
}

// trunkPort finds a port the caller may put on a trunk.
func trunkPort(v *fsm.View, ident Identity, id string) error {
	p := v.Port(id)
	if p == nil || !(ident.Admin || p.ProjectID == ident.ProjectID) {
		return portNotFound(id)
	}
	return nil
}

func (s *Server) listTrunks(w http.ResponseWriter, r *http.Request) error {
	lq, err := parseListQuery(r.URL.Query(), "trunks", trunkAttrs)
	if err != nil {
		return err
	}
	ident := identityFrom(r.Context())
	v := s.view(w)
	var objs []map[string]any
	for _, t := range v.Trunks() {
		if ident.Admin || t.ProjectID == ident.ProjectID {
			objs = append(objs, renderTrunk(v, t))
		}
	}
	return writeList(w, r, lq, "trunks", objs)
}

func (s *Server) showTrunk(w http.ResponseWriter, r *http.Request) error {
	v := s.view(w)
	t, err := lookupTrunk(v, identityFrom(r.Context()), r.PathValue("id"))
	if err != nil {
		return err
	}
	return writeShow(w, r, "trunk", "trunks", trunkKnown, renderTrunk(v, t))
}

// parseSubPorts reads a sub_ports list; a remove needs only port_id.
func parseSubPorts(raw json.RawMessage, remove bool) ([]fsm.SubPort, error) {
	var items []map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(raw))
	if err := dec.Decode(&items); err != nil {
		return nil, badRequest("Invalid input for sub_ports. Reason: %s is not a list of objects.", string(raw))
	}
	out := make([]fsm.SubPort, 0, len(items))
	for _, it := range items {
		var sp fsm.SubPort
		for k, v := range it {
			switch k {
			case "port_id":
				if err := json.Unmarshal(v, &sp.PortID); err != nil || !validUUID(sp.PortID) {
					return nil, badRequest("Invalid input for port_id. Reason: '%s' is not a valid UUID.", string(v))
				}
			case "segmentation_type":
				if err := json.Unmarshal(v, &sp.SegmentationType); err != nil {
					return nil, badRequest("Invalid input for segmentation_type. Reason: '%s' is not a valid string.", string(v))
				}
			case "segmentation_id":
				id, err := parseSegID(v)
				if err != nil {
					return nil, err
				}
				sp.SegmentationID = id
			default:
				return nil, badRequest("Invalid input for sub_ports. Reason: Unrecognized attribute '%s'.", k)
			}
		}
		if sp.PortID == "" {
			return nil, badRequest("Invalid input for sub_ports. Reason: A valid port UUID must be specified.")
		}
		if !remove {
			if sp.SegmentationType == "" || sp.SegmentationID == 0 {
				return nil, badRequest("Invalid input for sub_ports. Reason: Invalid subport details '%s': missing segmentation information. Must specify both segmentation_id and segmentation_type.", sp.PortID)
			}
			if sp.SegmentationType != fsm.SegmentationVLAN {
				return nil, badRequest("Invalid input for sub_ports. Reason: segmentation_type %q is not supported (only vlan).", sp.SegmentationType)
			}
			if sp.SegmentationID < 1 || sp.SegmentationID > 4094 {
				return nil, badRequest("Invalid input for sub_ports. Reason: Invalid segmentation_id %d: not in the range 1-4094.", sp.SegmentationID)
			}
		}
		out = append(out, sp)
	}
	return out, nil
}

// parseSegID accepts a number or a numeric string, as Neutron converts it.
func parseSegID(v json.RawMessage) (int, error) {
	var n json.Number
	dec := json.NewDecoder(bytes.NewReader(v))
	dec.UseNumber()
	var x any
	if err := dec.Decode(&x); err == nil {
		switch t := x.(type) {
		case json.Number:
			n = t
		case string:
			n = json.Number(t)
		}
	}
	id, err := strconv.Atoi(n.String())
	if err != nil {
		return 0, badRequest("Invalid input for segmentation_id. Reason: '%s' is not an integer.", string(v))
	}
	return id, nil
}

func (s *Server) createTrunk(w http.ResponseWriter, r *http.Request) error {
	body, err := readBody(r)
	if err != nil {
		return err
	}
	objs, err := objectsFromBody(body, "trunk", "trunks", false)
	if err != nil {
		return err
	}
	a, raw, err := parseObject(objs[0], trunkAttrs, trunkStructured, true)
	if err != nil {
		return err
	}
	ident := identityFrom(r.Context())
	project, err := projectFor(ident, a)
	if err != nil {
		return err
	}
	portID, _ := a.str("port_id")
	if portID == "" {
		return badRequest("Failed to parse request. Required attribute 'port_id' not specified")
	}
	var subs []fsm.SubPort
	if rs, ok := raw["sub_ports"]; ok {
		if subs, err = parseSubPorts(rs, false); err != nil {
			return err
		}
	}
	v := s.fsm.State().Read()
	for _, id := range append([]string{portID}, subportIDs(subs)...) {
		if err := trunkPort(v, ident, id); err != nil {
			return err
		}
	}
	ts := now()
	t := &fsm.Trunk{Meta: fsm.Meta{ID: newID(r.Context()), ProjectID: project, RevisionNumber: 1, CreatedAt: ts, UpdatedAt: ts},
		PortID: portID, AdminStateUp: true, SubPorts: subs}
	t.Name, _ = a.str("name")
	t.Description, _ = a.str("description")
	if up, ok := a.boolean("admin_state_up"); ok {
		t.AdminStateUp = up
	}
	if tags, ok := a.strings("tags"); ok {
		if err := validTags(tags); err != nil {
			return err
		}
		t.Tags = dedupTags(tags)
	}
	// Check against the state now, so that a conflict is answered without
	// a log entry; the state machine checks again on apply.
	if v.Port(portID) != nil {
		if err := fsmCheckTrunk(v, t); err != nil {
			return err
		}
	}
	return s.createOne(w, r, "trunk", "trunks", t.ID, fsm.CmdTrunk, fsm.TrunkRequest{Op: fsm.OpCreate, Trunk: t},
		func() map[string]any { return renderTrunk(s.fsm.State().Read(), t) })
}

// fsmCheckTrunk runs the state machine's checks of a new trunk.
func fsmCheckTrunk(v *fsm.View, t *fsm.Trunk) error {
	if v.TrunkOfParent(t.PortID) != nil || v.TrunkOfSubport(t.PortID) != nil {
		return newError(http.StatusConflict, fsm.ErrTypeTrunkPortInUse, "Port %s is in use by another trunk.", t.PortID)
	}
	empty := *t
	empty.SubPorts = nil
	return v.CheckSubPorts(&empty, t.SubPorts)
}

func subportIDs(subs []fsm.SubPort) []string {
	out := make([]string, 0, len(subs))
	for _, sp := range subs {
		out = append(out, sp.PortID)
	}
	return out
}

func (s *Server) updateTrunk(w http.ResponseWriter, r *http.Request) error {
	a, err := readOne(r, "trunk", "trunks", trunkAttrs, false)
	if err != nil {
		return err
	}
	v := s.fsm.State().Read()
	cur, err := lookupTrunk(v, identityFrom(r.Context()), r.PathValue("id"))
	if err != nil {
		return err
	}
	if err := checkIfMatch(r, cur.RevisionNumber); err != nil {
		return err
	}
	t := cur.Copy()
	if name, ok := a.str("name"); ok {
		t.Name = name
	}
	if d, ok := a.str("description"); ok {
		t.Description = d
	}
	if up, ok := a.boolean("admin_state_up"); ok {
		t.AdminStateUp = up
	}
	t.RevisionNumber++
	t.UpdatedAt = now()
	return s.commitAnswer(w, r, fsm.CmdTrunk, fsm.TrunkRequest{Op: fsm.OpUpdate, Trunk: t}, http.StatusOK,
		func() map[string]any { return map[string]any{"trunk": renderTrunk(s.fsm.State().Read(), t)} })
}

func (s *Server) deleteTrunk(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	if _, err := lookupTrunk(s.fsm.State().Read(), identityFrom(r.Context()), id); err != nil {
		return err
	}
	return s.commitAnswer(w, r, fsm.CmdTrunk, fsm.TrunkRequest{Op: fsm.OpDelete, ID: id}, http.StatusNoContent, nil)
}

func (s *Server) addSubports(w http.ResponseWriter, r *http.Request) error {
	return s.changeSubports(w, r, fsm.OpAddSubports)
}

func (s *Server) removeSubports(w http.ResponseWriter, r *http.Request) error {
	return s.changeSubports(w, r, fsm.OpRemoveSubports)
}

// changeSubports serves add_subports and remove_subports: the body is
// {"sub_ports": [...]}, the answer the whole trunk.
func (s *Server) changeSubports(w http.ResponseWriter, r *http.Request, op string) error {
	body, err := readBody(r)
	if err != nil {
		return err
	}
	raw, ok := body["sub_ports"]
	if !ok || len(body) != 1 {
		return badRequest("Failed to parse request. Required attribute 'sub_ports' not specified")
	}
	subs, err := parseSubPorts(raw, op == fsm.OpRemoveSubports)
	if err != nil {
		return err
	}
	ident := identityFrom(r.Context())
	v := s.fsm.State().Read()
	t, err := lookupTrunk(v, ident, r.PathValue("id"))
	if err != nil {
		return err
	}
	if op == fsm.OpAddSubports {
		for _, id := range subportIDs(subs) {
			if err := trunkPort(v, ident, id); err != nil {
				return err
			}
		}
	}
	rev, err := s.propose(r.Context(), fsm.CmdTrunkSubports, fsm.TrunkSubportsRequest{Op: op, TrunkID: t.ID, SubPorts: subs, UpdatedAt: now()})
	if err != nil {
		return err
	}
	setRevision(w, rev)
	// The trunk as the command left it (the state machine applied the
	// same change to the one read above).
	out := t.Copy()
	if op == fsm.OpAddSubports {
		out.SubPorts = append(out.SubPorts, subs...)
	} else {
		out.SubPorts = slices.DeleteFunc(out.SubPorts, func(sp fsm.SubPort) bool { return slices.Contains(subportIDs(subs), sp.PortID) })
	}
	out.RevisionNumber++
	writeJSON(w, http.StatusOK, renderTrunk(v, out))
	return nil
}

func (s *Server) getSubports(w http.ResponseWriter, r *http.Request) error {
	v := s.view(w)
	t, err := lookupTrunk(v, identityFrom(r.Context()), r.PathValue("id"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"sub_ports": renderSubPorts(t.SubPorts)})
	return nil
}
