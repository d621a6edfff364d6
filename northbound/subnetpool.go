package northbound

import (
	"encoding/json"
	"math/big"
	"net/http"
	"net/netip"
	"slices"
	"sync"

	"neutrino/fsm"
)

// Subnet pools (Neutron's subnet_allocation and default-subnetpools
// extensions). A subnet created with subnetpool_id, or with
// use_default_subnetpool, gets the first free prefix of the requested
// length (prefixlen, else the pool's default) unless it names a cidr of
// its own inside the pool. Policy as Neutron's defaults: shared and
// is_default need the admin role; a member sees its own pools and shared
// ones. Address scopes are accepted and shown but not enforced.

var subnetPoolAttrs = map[string]attrSpec{
	"id":                {Kind: attrString},
	"name":              {Kind: attrString, Post: true, Put: true, MaxLen: 255},
	"description":       {Kind: attrString, Post: true, Put: true, MaxLen: 255},
	"project_id":        {Kind: attrString, Post: true, MaxLen: 255},
	"tenant_id":         {Kind: attrString, Post: true, MaxLen: 255},
	"prefixes":          {Kind: attrStrings, Post: true, Put: true},
	"default_prefixlen": {Kind: attrInt, Post: true, Put: true},
	"min_prefixlen":     {Kind: attrInt, Post: true, Put: true},
	"max_prefixlen":     {Kind: attrInt, Post: true, Put: true},
	"is_default":        {Kind: attrBool, Post: true, Put: true},
	"shared":            {Kind: attrBool, Post: true},
	"address_scope_id":  {Kind: attrString, Post: true, Put: true, Nullable: true},
	"default_quota":     {Kind: attrInt, Post: true, Put: true, Nullable: true},
	"ip_version":        {Kind: attrInt},
	"tags":              {Kind: attrStrings, Post: true},
	"revision_number":   {Kind: attrInt},
	"created_at":        {Kind: attrString},
	"updated_at":        {Kind: attrString},
}

func (s *Server) subnetPoolRoutes() {
	s.neutron("GET /v2.0/subnetpools", s.listSubnetPools)
	s.neutron("POST /v2.0/subnetpools", s.createSubnetPool)
	s.neutron("GET /v2.0/subnetpools/{id}", s.showSubnetPool)
	s.neutron("PUT /v2.0/subnetpools/{id}", s.updateSubnetPool)
	s.neutron("DELETE /v2.0/subnetpools/{id}", s.deleteSubnetPool)
}

func renderSubnetPool(p *fsm.SubnetPool) map[string]any {
	return map[string]any{
		"id":                p.ID,
		"name":              p.Name,
		"description":       p.Description,
		"project_id":        p.ProjectID,
		"tenant_id":         p.ProjectID,
		"prefixes":          nonNil(p.Prefixes),
		"default_prefixlen": p.DefaultPrefixLen,
		"min_prefixlen":     p.MinPrefixLen,
		"max_prefixlen":     p.MaxPrefixLen,
		"is_default":        p.IsDefault,
		"shared":            p.Shared,
		"address_scope_id":  strOrNil(p.AddressScopeID),
		"default_quota":     nil,
		"ip_version":        p.IPVersion,
		"tags":              nonNil(p.Tags),
		"revision_number":   p.RevisionNumber,
		"created_at":        p.CreatedAt,
		"updated_at":        p.UpdatedAt,
	}
}

func subnetPoolVisible(ident Identity, p *fsm.SubnetPool) bool {
	return ident.Admin || p.ProjectID == ident.ProjectID || p.Shared
}

func subnetPoolNotFound(id string) error {
	return newError(http.StatusNotFound, fsm.ErrTypeSubnetPoolNotFound, "Subnet pool %s could not be found.", id)
}

func lookupSubnetPool(v *fsm.View, ident Identity, id string) (*fsm.SubnetPool, error) {
	p := v.SubnetPool(id)
	if p == nil || !subnetPoolVisible(ident, p) {
		return nil, subnetPoolNotFound(id)
	}
	return p, nil
}

func (s *Server) listSubnetPools(w http.ResponseWriter, r *http.Request) error {
	lq, err := parseListQuery(r.URL.Query(), "subnetpools", subnetPoolAttrs)
	if err != nil {
		return err
	}
	ident := identityFrom(r.Context())
	var objs []map[string]any
	for _, p := range s.view(w).SubnetPools() {
		if subnetPoolVisible(ident, p) {
			objs = append(objs, renderSubnetPool(p))
		}
	}
	return writeList(w, r, lq, "subnetpools", objs)
}

func (s *Server) showSubnetPool(w http.ResponseWriter, r *http.Request) error {
	p, err := lookupSubnetPool(s.view(w), identityFrom(r.Context()), r.PathValue("id"))
	if err != nil {
		return err
	}
	return writeShow(w, r, "subnetpool", "subnetpools", subnetPoolAttrs, renderSubnetPool(p))
}

// setPoolAttrs applies the settable attributes to a pool and validates the
// result as Neutron does.
func setPoolAttrs(ident Identity, p *fsm.SubnetPool, a attrs, action string) error {
	for _, k := range []string{"shared", "is_default"} {
		if _, ok := a[k]; ok && !ident.Admin {
			return forbidden("(rule:%s_subnetpool and rule:%s_subnetpool:%s) is disallowed by policy", action, action, k)
		}
	}
	if v, ok := a.str("name"); ok {
		p.Name = v
	}
	if v, ok := a.str("description"); ok {
		p.Description = v
	}
	if v, ok := a.boolean("shared"); ok {
		p.Shared = v
	}
	if v, ok := a.boolean("is_default"); ok {
		p.IsDefault = v
	}
	if v, ok := a.str("address_scope_id"); ok {
		p.AddressScopeID = v
	}
	if tags, ok := a.strings("tags"); ok {
		if err := validTags(tags); err != nil {
			return err
		}
		p.Tags = dedupTags(tags)
	}
	if list, ok := a.strings("prefixes"); ok {
		if len(list) == 0 {
			return badRequest("Invalid input for prefixes. Reason: a subnet pool needs at least one prefix.")
		}
		var parsed []netip.Prefix
		for _, str := range list {
			pr, err := netip.ParsePrefix(str)
			if err != nil || pr.Addr().Zone() != "" {
				return badRequest("Invalid input for prefixes. Reason: '%s' is not a valid IP subnet.", str)
			}
			pr = pr.Masked()
			family := 4
			if pr.Addr().Is6() {
				family = 6
			}
			if p.IPVersion != 0 && p.IPVersion != family {
				return badRequest("Illegal subnetpool prefix: Cannot mix IPv4 and IPv6 prefixes in a subnet pool.")
			}
			p.IPVersion = family
			parsed = append(parsed, pr)
		}
		// A pool's prefixes are kept disjoint: a prefix inside another is
		// dropped, as Neutron compacts them.
		var keep []string
		for i, pr := range parsed {
			inside := false
			for j, o := range parsed {
				if i != j && o.Bits() <= pr.Bits() && o.Contains(pr.Addr()) && (o.Bits() < pr.Bits() || j < i) {
					inside = true
				}
			}
			if !inside {
				keep = append(keep, pr.String())
			}
		}
		slices.Sort(keep)
		if action == "update" {
			for _, old := range p.ParsedPrefixes() {
				np := &fsm.SubnetPool{Prefixes: keep}
				if !np.Contains(old) {
					return badRequest("Illegal update to prefixes: %s is no longer covered; existing prefixes must be a subset of the new prefixes.", old)
				}
			}
		}
		p.Prefixes = keep
	}
	if len(p.Prefixes) == 0 {
		return badRequest("Failed to parse request. Required attribute 'prefixes' not specified")
	}
	maxLen := 32
	if p.IPVersion == 6 {
		maxLen = 128
	}
	minPool := maxLen
	for _, pr := range p.ParsedPrefixes() {
		minPool = min(minPool, pr.Bits())
	}
	if action == "create" {
		p.MinPrefixLen, p.MaxPrefixLen = minPool, maxLen
	}
	if v, ok := a.integer("min_prefixlen"); ok {
		p.MinPrefixLen = v
	}
	if v, ok := a.integer("max_prefixlen"); ok {
		p.MaxPrefixLen = v
	}
	if action == "create" {
		p.DefaultPrefixLen = p.MinPrefixLen
	}
	if v, ok := a.integer("default_prefixlen"); ok {
		p.DefaultPrefixLen = v
	}
	if p.MinPrefixLen < minPool || p.MaxPrefixLen > maxLen || p.MinPrefixLen > p.MaxPrefixLen {
		return badRequest("Illegal prefix bounds: min_prefixlen=%d, max_prefixlen=%d (the pool's prefixes allow %d to %d).",
			p.MinPrefixLen, p.MaxPrefixLen, minPool, maxLen)
	}
	if p.DefaultPrefixLen < p.MinPrefixLen || p.DefaultPrefixLen > p.MaxPrefixLen {
		return badRequest("Illegal prefix bounds: default_prefixlen=%d, min_prefixlen=%d, max_prefixlen=%d.",
			p.DefaultPrefixLen, p.MinPrefixLen, p.MaxPrefixLen)
	}
	return nil
}

func (s *Server) createSubnetPool(w http.ResponseWriter, r *http.Request) error {
	a, err := readOne(r, "subnetpool", "subnetpools", subnetPoolAttrs, true)
	if err != nil {
		return err
	}
	ident := identityFrom(r.Context())
	project, err := projectFor(ident, a)
	if err != nil {
		return err
	}
	if name, _ := a.str("name"); name == "" {
		return badRequest("Failed to parse request. Required attribute 'name' not specified")
	}
	ts := now()
	p := &fsm.SubnetPool{Meta: fsm.Meta{ID: newID(r.Context()), ProjectID: project, RevisionNumber: 1, CreatedAt: ts, UpdatedAt: ts}}
	if err := setPoolAttrs(ident, p, a, "create"); err != nil {
		return err
	}
	return s.createOne(w, r, "subnetpool", "subnetpools", p.ID, fsm.CmdSubnetPool,
		fsm.SubnetPoolRequest{Op: fsm.OpCreate, Pool: p}, func() map[string]any { return renderSubnetPool(p) })
}

func (s *Server) updateSubnetPool(w http.ResponseWriter, r *http.Request) error {
	a, err := readOne(r, "subnetpool", "subnetpools", subnetPoolAttrs, false)
	if err != nil {
		return err
	}
	ident := identityFrom(r.Context())
	for attempt := 0; ; attempt++ {
		cur, err := lookupSubnetPool(s.fsm.State().Read(), ident, r.PathValue("id"))
		if err != nil {
			return err
		}
		if !ident.Admin && cur.ProjectID != ident.ProjectID {
			return forbidden("(rule:update_subnetpool) is disallowed by policy")
		}
		if err := checkIfMatch(r, cur.RevisionNumber); err != nil {
			return err
		}
		p := cur.Copy()
		if err := setPoolAttrs(ident, p, a, "update"); err != nil {
			return err
		}
		p.RevisionNumber, p.UpdatedAt = cur.RevisionNumber+1, now()
		rev, err := s.propose(r.Context(), fsm.CmdSubnetPool, fsm.SubnetPoolRequest{Op: fsm.OpUpdate, Pool: p, PrevIndex: cur.ModifyIndex})
		if fe, ok := fsm.AsError(err); ok && fe.Type == fsm.ErrTypeStaleUpdate && attempt < maxUpdateRetries {
			continue
		}
		if err != nil {
			return err
		}
		setRevision(w, rev)
		writeJSON(w, http.StatusOK, map[string]any{"subnetpool": renderSubnetPool(p)})
		return nil
	}
}

func (s *Server) deleteSubnetPool(w http.ResponseWriter, r *http.Request) error {
	ident := identityFrom(r.Context())
	id := r.PathValue("id")
	cur, err := lookupSubnetPool(s.fsm.State().Read(), ident, id)
	if err != nil {
		return err
	}
	if !ident.Admin && cur.ProjectID != ident.ProjectID {
		return forbidden("(rule:delete_subnetpool) is disallowed by policy")
	}
	return s.commitAnswer(w, r, fsm.CmdSubnetPool, fsm.SubnetPoolRequest{Op: fsm.OpDelete, ID: id}, http.StatusNoContent, nil)
}

// prefixAllocator hands out pool prefixes on the leader. Prefixes chosen
// by creates still in flight are held so that two concurrent creates do
// not pick the same one; the state machine re-checks at apply time.
type prefixAllocator struct {
	mu      sync.Mutex
	pending map[string][]netip.Prefix // pool id -> held prefixes
}

func newPrefixAllocator() *prefixAllocator {
	return &prefixAllocator{pending: map[string][]netip.Prefix{}}
}

// prefixHold is what one request holds; release it once the command was
// applied or refused.
type prefixHold struct {
	a    *prefixAllocator
	held map[string][]netip.Prefix
}

func (a *prefixAllocator) begin() *prefixHold {
	return &prefixHold{a: a, held: map[string][]netip.Prefix{}}
}

func (h *prefixHold) release() {
	h.a.mu.Lock()
	defer h.a.mu.Unlock()
	for pool, list := range h.held {
		h.a.pending[pool] = slices.DeleteFunc(h.a.pending[pool], func(p netip.Prefix) bool { return slices.Contains(list, p) })
	}
	h.held = map[string][]netip.Prefix{}
}

// allocate picks the first free prefix of length bits in the pool, or
// claims want when it is valid.
func (h *prefixHold) allocate(v *fsm.View, pool *fsm.SubnetPool, bits int, want netip.Prefix) (netip.Prefix, error) {
	h.a.mu.Lock()
	defer h.a.mu.Unlock()
	used := slices.Clone(h.a.pending[pool.ID])
	for _, sub := range v.SubnetsOfPool(pool.ID) {
		used = append(used, sub.Prefix())
	}
	if want.IsValid() {
		bits = want.Bits()
	}
	if bits < pool.MinPrefixLen || bits > pool.MaxPrefixLen {
		return netip.Prefix{}, badRequest("Unable to allocate subnet with prefix length %d, minimum allowed prefix is %d, maximum %d.",
			bits, pool.MinPrefixLen, pool.MaxPrefixLen)
	}
	var got netip.Prefix
	if want.IsValid() {
		if !pool.Contains(want) {
			return netip.Prefix{}, badRequest("Cidr %s is not in subnet pool %s.", want, pool.ID)
		}
		if slices.ContainsFunc(used, want.Overlaps) {
			return netip.Prefix{}, newError(http.StatusConflict, fsm.ErrTypeSubnetPoolOverlap,
				"Failed to allocate subnet: %s overlaps with a subnet of subnet pool %s.", want, pool.ID)
		}
		got = want
	} else {
		for _, pr := range pool.ParsedPrefixes() {
			if p, ok := firstFree(pr, bits, used); ok {
				got = p
				break
			}
		}
		if !got.IsValid() {
			return netip.Prefix{}, newError(http.StatusConflict, fsm.ErrTypeSubnetPoolOverlap,
				"Failed to allocate subnet: Insufficient prefix space to allocate subnet size /%d.", bits)
		}
	}
	h.a.pending[pool.ID] = append(h.a.pending[pool.ID], got)
	h.held[pool.ID] = append(h.held[pool.ID], got)
	return got, nil
}

// firstFree finds the lowest prefix of length bits inside pr that overlaps
// none of used: one sweep over the used prefixes sorted by address, the
// candidate moving to the first aligned place after each one it meets, so
// the cost is that of the sort, not of the pool's size.
func firstFree(pr netip.Prefix, bits int, used []netip.Prefix) (netip.Prefix, bool) {
	if bits < pr.Bits() {
		return netip.Prefix{}, false
	}
	total := pr.Addr().BitLen()
	toInt := func(a netip.Addr) *big.Int { return new(big.Int).SetBytes(a.AsSlice()) }
	span := func(bits int) *big.Int { return new(big.Int).Lsh(big.NewInt(1), uint(total-bits)) }
	sorted := slices.Clone(used)
	slices.SortFunc(sorted, func(a, b netip.Prefix) int { return a.Masked().Addr().Compare(b.Masked().Addr()) })
	size := span(bits)
	cur := toInt(pr.Masked().Addr())
	end := new(big.Int).Add(cur, span(pr.Bits()))
	for _, u := range sorted {
		if u.Addr().BitLen() != total {
			continue
		}
		uStart := toInt(u.Masked().Addr())
		uEnd := new(big.Int).Add(uStart, span(u.Bits()))
		if uEnd.Cmp(cur) <= 0 {
			continue
		}
		if new(big.Int).Add(cur, size).Cmp(uStart) <= 0 {
			break // the candidate ends before u starts: free
		}
		// Overlap: the next aligned candidate at or after u's end.
		q := new(big.Int).Add(uEnd, new(big.Int).Sub(size, big.NewInt(1)))
		cur = q.Mul(q.Div(q, size), size)
	}
	if new(big.Int).Add(cur, size).Cmp(end) > 0 {
		return netip.Prefix{}, false
	}
	b := make([]byte, total/8)
	cur.FillBytes(b)
	a, _ := netip.AddrFromSlice(b)
	return netip.PrefixFrom(a, bits), true
}

// poolSubnet resolves a subnet create's pool (subnetpool_id, or the
// default pool with use_default_subnetpool) and, without a cidr, picks one
// and writes it into the request object. It returns the pool ("" when
// none).
func (s *Server) poolSubnet(v *fsm.View, hold *prefixHold, ident Identity, obj map[string]json.RawMessage) (string, error) {
	var poolID string
	var useDefault bool
	var prefixLen *int
	var ipVersion int
	for k, dst := range map[string]any{"subnetpool_id": &poolID, "use_default_subnetpool": &useDefault, "ip_version": &ipVersion} {
		if raw, ok := obj[k]; ok && !isNull(raw) {
			if err := json.Unmarshal(raw, dst); err != nil {
				return "", badRequest("Invalid input for %s. Reason: '%s' is not valid.", k, string(raw))
			}
		}
	}
	delete(obj, "use_default_subnetpool")
	if raw, ok := obj["prefixlen"]; ok && !isNull(raw) {
		n, err := parseValue("prefixlen", raw, attrSpec{Kind: attrInt})
		if err != nil {
			return "", err
		}
		l := n.(int)
		prefixLen = &l
	}
	delete(obj, "prefixlen")
	if poolID == "" && !useDefault {
		if prefixLen != nil {
			return "", badRequest("Invalid input for prefixlen: a prefix length needs a subnet pool.")
		}
		return "", nil
	}
	var pool *fsm.SubnetPool
	if poolID != "" {
		p, err := lookupSubnetPool(v, ident, poolID)
		if err != nil {
			return "", err
		}
		pool = p
	} else {
		if ipVersion != 4 && ipVersion != 6 {
			return "", badRequest("Failed to parse request. Required attribute 'ip_version' not specified")
		}
		if pool = v.DefaultSubnetPool(ipVersion); pool == nil || !subnetPoolVisible(ident, pool) {
			return "", badRequest("No default subnetpool found for IPv%d", ipVersion)
		}
	}
	if ipVersion != 0 && ipVersion != pool.IPVersion {
		return "", badRequest("Invalid input: ip_version %d does not match subnet pool %s (IPv%d).", ipVersion, pool.ID, pool.IPVersion)
	}
	var want netip.Prefix
	if raw, ok := obj["cidr"]; ok && !isNull(raw) {
		var str string
		if json.Unmarshal(raw, &str) != nil {
			return "", badRequest("Invalid input for cidr. Reason: '%s' is not a valid IP subnet.", string(raw))
		}
		pr, err := netip.ParsePrefix(str)
		if err != nil {
			return "", badRequest("Invalid input for cidr. Reason: '%s' is not a valid IP subnet.", str)
		}
		want = pr.Masked()
	}
	bits := pool.DefaultPrefixLen
	if prefixLen != nil {
		bits = *prefixLen
	}
	got, err := hold.allocate(v, pool, bits, want)
	if err != nil {
		return "", err
	}
	cidr, _ := json.Marshal(got.String())
	obj["cidr"] = cidr
	return pool.ID, nil
}
