package northbound

import (
	"context"
	"net/http"
	"slices"

	"neutrino/fsm"
)

// networkAttrs are the network attributes of Neutron's attribute map with
// the provider, external-net, net-mtu, port-security and standard
// attribute extensions.
var networkAttrs = map[string]attrSpec{
	"id":                        {Kind: attrString},
	"name":                      {Kind: attrString, Post: true, Put: true, MaxLen: 255},
	"description":               {Kind: attrString, Post: true, Put: true, MaxLen: 255},
	"project_id":                {Kind: attrString, Post: true, MaxLen: 255},
	"tenant_id":                 {Kind: attrString, Post: true, MaxLen: 255},
	"admin_state_up":            {Kind: attrBool, Post: true, Put: true},
	"status":                    {Kind: attrString},
	"shared":                    {Kind: attrBool, Post: true, Put: true},
	"mtu":                       {Kind: attrInt, Post: true, Put: true},
	"provider:network_type":     {Kind: attrString, Post: true, Nullable: true},
	"provider:physical_network": {Kind: attrString, Post: true, Nullable: true},
	"provider:segmentation_id":  {Kind: attrInt, Post: true, Nullable: true},
	"router:external":           {Kind: attrBool, Post: true, Put: true},
	"port_security_enabled":     {Kind: attrBool, Post: true, Put: true},
	"availability_zone_hints":   {Kind: attrStrings, Post: true},
	"qos_policy_id":             {Kind: attrString, Post: true, Put: true, Nullable: true, UUID: true},
	"availability_zones":        {Kind: attrStrings},
	"tags":                      {Kind: attrStrings, Post: true},
	"subnets":                   {Kind: attrStrings},
	"revision_number":           {Kind: attrInt},
	"created_at":                {Kind: attrString},
	"updated_at":                {Kind: attrString},
}

// Encapsulation overheads (outer IPv4 + tunnel header + inner Ethernet) that
// overlay MTUs are derived from; Geneve keeps 8 bytes for one option.
var encapOverhead = map[string]int{
	fsm.NetTypeVXLAN:  50,
	fsm.NetTypeGeneve: 58,
	fsm.NetTypeGRE:    42,
	fsm.NetTypeVLAN:   0,
	fsm.NetTypeFlat:   0,
}

// Segmentation id limits per type.
var segmentLimits = map[string]Range{
	fsm.NetTypeVXLAN:  {1, 1<<24 - 1},
	fsm.NetTypeGeneve: {1, 1<<24 - 1},
	fsm.NetTypeGRE:    {1, 1<<32 - 1},
	fsm.NetTypeVLAN:   {1, 4094},
}

func (s *Server) maxMTU(netType string) int { return s.cfg.PhysicalMTU - encapOverhead[netType] }

// renderNetwork renders a network as project sees it; v gives its subnets
// and RBAC policies (nil: none yet). As in Neutron, `shared` is per
// request: true when the network is shared with all, or an
// access_as_shared policy targets project or `*` (so the owner sees false
// for a network shared with other projects only), and `?shared=` filters
// on that value.
func renderNetwork(v *fsm.View, n *fsm.Network, project string) map[string]any {
	shared := n.Shared
	if v != nil {
		shared = v.NetworkSharedWith(n, project)
	}
	var segID, physnet any
	if n.NetworkType != fsm.NetTypeFlat {
		segID = n.SegmentationID
	}
	if n.PhysicalNetwork != "" {
		physnet = n.PhysicalNetwork
	}
	return map[string]any{
		"id":                        n.ID,
		"name":                      n.Name,
		"description":               n.Description,
		"project_id":                n.ProjectID,
		"tenant_id":                 n.ProjectID,
		"admin_state_up":            n.AdminStateUp,
		"status":                    n.Status,
		"shared":                    shared,
		"mtu":                       n.MTU,
		"provider:network_type":     n.NetworkType,
		"provider:physical_network": physnet,
		"provider:segmentation_id":  segID,
		"router:external":           n.External,
		"port_security_enabled":     n.PortSecurityEnabled,
		"availability_zone_hints":   nonNil(n.AvailabilityZoneHints),
		"qos_policy_id":             strOrNil(n.QoSPolicyID),
		"availability_zones":        networkZones(v, n.ID),
		"tags":                      nonNil(n.Tags),
		"subnets":                   subnetIDs(v, n.ID),
		"revision_number":           n.RevisionNumber,
		"created_at":                n.CreatedAt,
		"updated_at":                n.UpdatedAt,
	}
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// networkVisible: a member sees its own networks, shared ones and external
// ones, as in Neutron's policy, RBAC policies included.
func networkVisible(v *fsm.View, id Identity, n *fsm.Network) bool {
	return id.Admin || n.ProjectID == id.ProjectID || v.NetworkSharedWith(n, id.ProjectID) || v.NetworkExternalFor(n, id.ProjectID)
}

func networkNotFound(id string) *apiError {
	return newError(http.StatusNotFound, fsm.ErrTypeNetworkNotFound, "Network %s could not be found.", id)
}

// lookupNetwork returns a network the caller may see, or a 404.
func lookupNetwork(v *fsm.View, ident Identity, id string) (*fsm.Network, error) {
	n := v.Network(id)
	if n == nil || !networkVisible(v, ident, n) {
		return nil, networkNotFound(id)
	}
	return n, nil
}

func (s *Server) listNetworks(w http.ResponseWriter, r *http.Request) error {
	lq, err := parseListQuery(r.URL.Query(), "networks", networkAttrs)
	if err != nil {
		return err
	}
	ident := identityFrom(r.Context())
	v := s.view(w)
	var objs []map[string]any
	for _, n := range v.Networks() {
		if networkVisible(v, ident, n) {
			objs = append(objs, renderNetwork(v, n, ident.ProjectID))
		}
	}
	return writeList(w, r, lq, "networks", objs)
}

func nonNilObjs(o []map[string]any) []map[string]any {
	if o == nil {
		return []map[string]any{}
	}
	return o
}

func (s *Server) showNetwork(w http.ResponseWriter, r *http.Request) error {
	v := s.view(w)
	ident := identityFrom(r.Context())
	n, err := lookupNetwork(v, ident, r.PathValue("id"))
	if err != nil {
		return err
	}
	return writeShow(w, r, "network", "networks", networkAttrs, renderNetwork(v, n, ident.ProjectID))
}

// selectFields applies ?fields= to one object; like a list, it ignores
// names that are no attribute of the collection.
func selectFields(obj map[string]any, r *http.Request, specs map[string]attrSpec, collection string) (map[string]any, error) {
	fields, project := knownFields(r.URL.Query()["fields"], specs)
	if !project {
		return obj, nil
	}
	out := make(map[string]any, len(fields))
	for _, f := range fields {
		out[f] = obj[f]
	}
	return out, nil
}

func (s *Server) createNetworks(w http.ResponseWriter, r *http.Request) error {
	body, err := readBody(r)
	if err != nil {
		return err
	}
	objs, err := objectsFromBody(body, "network", "networks", true)
	if err != nil {
		return err
	}
	_, bulk := body["networks"]
	ident := identityFrom(r.Context())
	res := s.segments.begin()
	defer res.release()
	v := s.fsm.State().Read()
	ts := now()
	nets := make([]*fsm.Network, 0, len(objs))
	for _, obj := range objs {
		a, err := parseAttrs(obj, networkAttrs, true)
		if err != nil {
			return err
		}
		n, err := s.newNetwork(r.Context(), v, res, ident, a, ts)
		if err != nil {
			return err
		}
		nets = append(nets, n)
	}
	ids := make([]string, len(nets))
	for i, n := range nets {
		ids[i] = n.ID
	}
	declareCreated(r.Context(), "networks", "network", bulk, ids...)
	rev, err := s.propose(r.Context(), fsm.CmdNetworkCreate, fsm.NetworkCreateRequest{Networks: nets})
	if err != nil {
		return err
	}
	setRevision(w, rev)
	out := make([]map[string]any, len(nets))
	for i, n := range nets {
		out[i] = renderNetwork(nil, n, "")
	}
	writeCreated(w, "network", "networks", bulk, out)
	return nil
}

// projectFor resolves project_id/tenant_id of a create request: only an
// admin may create for another project.
func projectFor(ident Identity, a attrs) (string, error) {
	p, hasP := a.str("project_id")
	t, hasT := a.str("tenant_id")
	if hasP && hasT && p != t {
		return "", badRequest("'project_id' and 'tenant_id' do not match")
	}
	if !hasP {
		p = t
	}
	if p == "" {
		return ident.ProjectID, nil
	}
	if p != ident.ProjectID && !ident.Admin {
		return "", forbidden("Specifying 'project_id' or 'tenant_id' other than the authenticated project in request requires admin privileges")
	}
	return p, nil
}

// adminOnlyNetworkAttrs need the admin role to be set, as Neutron's policy.
var adminOnlyNetworkAttrs = []string{"shared", "router:external",
	"provider:network_type", "provider:physical_network", "provider:segmentation_id"}

// checkAdminAttrs takes parsed attributes or, on update, the raw object:
// provider attributes cannot be updated (400), but a member is told 403
// first, as Neutron (whose provider attributes allow PUT) does.
func checkAdminAttrs[V any](ident Identity, a map[string]V, action string) error {
	if ident.Admin {
		return nil
	}
	for _, k := range adminOnlyNetworkAttrs {
		if _, ok := a[k]; ok {
			return forbidden("(rule:%s_network and rule:%s_network:%s) is disallowed by policy", action, action, k)
		}
	}
	return nil
}

func validTags(tags []string) error {
	if len(tags) > 50 {
		return badRequest("Invalid input for tags. Reason: a resource can have at most 50 tags.")
	}
	for _, t := range tags {
		if t == "" || len(t) > 60 {
			return badRequest("Invalid input for tags. Reason: '%s' is not a valid tag (1 to 60 characters).", t)
		}
	}
	return nil
}

func dedupTags(tags []string) []string {
	out := slices.Clone(tags)
	slices.Sort(out)
	return slices.Compact(out)
}

func (s *Server) newNetwork(ctx context.Context, v *fsm.View, res *reservation, ident Identity, a attrs, ts string) (*fsm.Network, error) {
	if err := checkAdminAttrs(ident, a, "create"); err != nil {
		return nil, err
	}
	project, err := projectFor(ident, a)
	if err != nil {
		return nil, err
	}
	n := &fsm.Network{
		Meta:                fsm.Meta{ID: newID(ctx), ProjectID: project, RevisionNumber: 1, CreatedAt: ts, UpdatedAt: ts},
		AdminStateUp:        true,
		Status:              "ACTIVE",
		PortSecurityEnabled: true,
	}
	n.Name, _ = a.str("name")
	n.Description, _ = a.str("description")
	if b, ok := a.boolean("admin_state_up"); ok {
		n.AdminStateUp = b
	}
	n.Shared, _ = a.boolean("shared")
	n.External, _ = a.boolean("router:external")
	if b, ok := a.boolean("port_security_enabled"); ok {
		n.PortSecurityEnabled = b
	}
	n.AvailabilityZoneHints, _ = a.strings("availability_zone_hints")
	if err := checkZoneHints(v, n.AvailabilityZoneHints); err != nil {
		return nil, err
	}
	if id, ok := a.str("qos_policy_id"); ok {
		n.QoSPolicyID = id
	} else if d := v.DefaultQoSPolicy(project); d != nil {
		n.QoSPolicyID = d.ID // qos-default: the project's default policy
	}
	if err := checkQoSAttach(v, ident, project, n.QoSPolicyID); err != nil {
		return nil, err
	}
	if tags, ok := a.strings("tags"); ok {
		if err := validTags(tags); err != nil {
			return nil, err
		}
		n.Tags = dedupTags(tags)
	}
	if err := s.segment(v, res, n, a); err != nil {
		return nil, err
	}
	n.MTU = s.maxMTU(n.NetworkType)
	if mtu, ok := a.integer("mtu"); ok {
		if err := s.checkMTU(n.NetworkType, mtu); err != nil {
			return nil, err
		}
		n.MTU = mtu
	}
	return n, nil
}

func (s *Server) checkMTU(netType string, mtu int) error {
	if mtu < 68 {
		return invalidInput("Requested MTU %d is too small, minimum is 68.", mtu)
	}
	if max := s.maxMTU(netType); mtu > max {
		return invalidInput("Requested MTU %d is too big, maximum is %d for %s networks.", mtu, max, netType)
	}
	return nil
}

// segment validates the provider attributes and fills in the network's
// segment, allocating a segmentation id from the configured ranges when
// none was given.
func (s *Server) segment(v *fsm.View, res *reservation, n *fsm.Network, a attrs) error {
	netType, _ := a.str("provider:network_type")
	physnet, _ := a.str("provider:physical_network")
	segID, hasSeg := a.integer("provider:segmentation_id")
	if a["provider:segmentation_id"] == nil {
		hasSeg = false
	}
	if netType == "" {
		if physnet != "" || hasSeg {
			return invalidInput("provider:network_type required")
		}
		netType = s.cfg.TenantNetworkType
	}
	n.NetworkType, n.PhysicalNetwork = netType, physnet
	switch netType {
	case fsm.NetTypeVXLAN, fsm.NetTypeGeneve, fsm.NetTypeGRE:
		if physnet != "" {
			return invalidInput("provider:physical_network specified for %s network", netType)
		}
	case fsm.NetTypeVLAN:
		if physnet == "" {
			return invalidInput("provider:physical_network required for vlan provider network")
		}
		if _, ok := s.cfg.VLANRanges[physnet]; !ok {
			return invalidInput("physical_network '%s' unknown for vlan provider network", physnet)
		}
	case fsm.NetTypeFlat:
		if physnet == "" {
			return invalidInput("provider:physical_network required for flat provider network")
		}
		if hasSeg {
			return invalidInput("provider:segmentation_id specified for flat network")
		}
		if !slices.Contains(s.cfg.FlatNetworks, physnet) && !slices.Contains(s.cfg.FlatNetworks, "*") {
			return invalidInput("physical_network '%s' unknown for flat provider network", physnet)
		}
		if !res.claim(v, n.SegmentKey()) {
			return newError(http.StatusConflict, fsm.ErrTypeFlatNetworkInUse,
				"Unable to create the flat network. Physical network %s is in use.", physnet)
		}
		return nil
	default:
		return invalidInput("network_type value '%s' not supported", netType)
	}
	lim := segmentLimits[netType]
	if hasSeg {
		if segID < lim.Min || segID > lim.Max {
			return invalidInput("segmentation_id %d out of range (%d through %d) for %s", segID, lim.Min, lim.Max, netType)
		}
		n.SegmentationID = segID
		if !res.claim(v, n.SegmentKey()) {
			if netType == fsm.NetTypeVLAN {
				return newError(http.StatusConflict, fsm.ErrTypeVlanIDInUse,
					"Unable to create the network. The VLAN %d on physical network %s is in use.", segID, physnet)
			}
			return newError(http.StatusConflict, fsm.ErrTypeTunnelIDInUse,
				"Unable to create the network. The tunnel ID %d is in use.", segID)
		}
		return nil
	}
	var ranges []Range
	switch netType {
	case fsm.NetTypeVLAN:
		ranges = s.cfg.VLANRanges[physnet]
	case fsm.NetTypeGRE:
		ranges = s.cfg.GRERanges
	default:
		ranges = s.cfg.VNIRanges
	}
	id, ok := res.allocate(v, netType, physnet, ranges)
	if !ok {
		return newError(http.StatusServiceUnavailable, "NoNetworkAvailable",
			"Unable to create the network. No tenant network is available for allocation.")
	}
	n.SegmentationID = id
	return nil
}

// maxUpdateRetries bounds compare-and-set retries of one update under
// contention on the same object.
const maxUpdateRetries = 8

// changeNetwork applies change to a copy of the network and commits it with
// compare-and-set, retrying when a concurrent write won the race.
func (s *Server) changeNetwork(ctx context.Context, r *http.Request, id string, change func(*fsm.Network) error) (*fsm.Network, uint64, error) {
	ident := identityFrom(ctx)
	for attempt := 0; ; attempt++ {
		v := s.fsm.State().Read()
		cur, err := lookupNetwork(v, ident, id)
		if err != nil {
			return nil, 0, err
		}
		if !ident.Admin && cur.ProjectID != ident.ProjectID {
			return nil, 0, forbidden("(rule:update_network) is disallowed by policy")
		}
		if err := checkIfMatch(r, cur.RevisionNumber); err != nil {
			return nil, 0, err
		}
		n := cur.Copy()
		if err := change(n); err != nil {
			return nil, 0, err
		}
		n.RevisionNumber = cur.RevisionNumber + 1
		n.UpdatedAt = now()
		rev, err := s.propose(ctx, fsm.CmdNetworkUpdate, fsm.NetworkUpdateRequest{Network: n, PrevIndex: cur.ModifyIndex})
		if fe, ok := fsm.AsError(err); ok && fe.Type == fsm.ErrTypeStaleUpdate && attempt < maxUpdateRetries {
			continue
		}
		if err != nil {
			return nil, 0, err
		}
		return n, rev, nil
	}
}

func (s *Server) updateNetwork(w http.ResponseWriter, r *http.Request) error {
	body, err := readBody(r)
	if err != nil {
		return err
	}
	objs, err := objectsFromBody(body, "network", "networks", false)
	if err != nil {
		return err
	}
	if err := checkAdminAttrs(identityFrom(r.Context()), objs[0], "update"); err != nil {
		return err
	}
	a, err := parseAttrs(objs[0], networkAttrs, false)
	if err != nil {
		return err
	}
	n, rev, err := s.changeNetwork(r.Context(), r, r.PathValue("id"), func(n *fsm.Network) error {
		if v, ok := a.str("name"); ok {
			n.Name = v
		}
		if v, ok := a.str("description"); ok {
			n.Description = v
		}
		if v, ok := a.boolean("admin_state_up"); ok {
			n.AdminStateUp = v
		}
		if v, ok := a.boolean("shared"); ok {
			n.Shared = v
		}
		if v, ok := a.boolean("router:external"); ok {
			// Set through the network API, it is external for all.
			n.External, n.ExternalRestricted = v, false
		}
		if v, ok := a.boolean("port_security_enabled"); ok {
			n.PortSecurityEnabled = v
		}
		if id, ok := a.str("qos_policy_id"); ok {
			if err := checkQoSAttach(s.fsm.State().Read(), identityFrom(r.Context()), n.ProjectID, id); err != nil {
				return err
			}
			n.QoSPolicyID = id
		}
		if v, ok := a.integer("mtu"); ok {
			if err := s.checkMTU(n.NetworkType, v); err != nil {
				return err
			}
			n.MTU = v
		}
		return nil
	})
	if err != nil {
		return err
	}
	setRevision(w, rev)
	writeJSON(w, http.StatusOK, map[string]any{"network": renderNetwork(s.fsm.State().Read(), n, identityFrom(r.Context()).ProjectID)})
	return nil
}

func (s *Server) deleteNetwork(w http.ResponseWriter, r *http.Request) error {
	ident := identityFrom(r.Context())
	id := r.PathValue("id")
	v := s.fsm.State().Read()
	cur, err := lookupNetwork(v, ident, id)
	if err != nil {
		return err
	}
	if !ident.Admin && cur.ProjectID != ident.ProjectID {
		return forbidden("(rule:delete_network) is disallowed by policy")
	}
	if err := checkIfMatch(r, cur.RevisionNumber); err != nil {
		return err
	}
	if err := v.CheckNetworkDelete(id); err != nil {
		return err
	}
	rev, err := s.propose(r.Context(), fsm.CmdNetworkDelete, fsm.NetworkDeleteRequest{ID: id})
	if err != nil {
		return err
	}
	setRevision(w, rev)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) networkTags(ctx context.Context, r *http.Request, id string, change func([]string) ([]string, error)) ([]string, uint64, error) {
	if change == nil {
		n, err := lookupNetwork(s.fsm.State().Read(), identityFrom(ctx), id)
		if err != nil {
			return nil, 0, err
		}
		return n.Tags, 0, nil
	}
	n, rev, err := s.changeNetwork(ctx, r, id, func(n *fsm.Network) error {
		tags, err := change(n.Tags)
		if err != nil {
			return err
		}
		n.Tags = tags
		return nil
	})
	if err != nil {
		return nil, 0, err
	}
	return n.Tags, rev, nil
}
