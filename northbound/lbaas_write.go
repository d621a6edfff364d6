package northbound

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/netip"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"neutrino/fsm"
)

// lbBuild is what building one object of a load balancer's tree needs:
// the state it is checked against, the caller, the request's attributes.
type lbBuild struct {
	s     *Server
	v     *fsm.View
	ident Identity
	a     attrs
	raw   map[string]json.RawMessage
	// lb is the load balancer the object belongs to.
	lb *fsm.LoadBalancer
	// change collects the tree change: the object and what else it moves
	// (a pool created for a listener sets the listener's default pool).
	change fsm.LBTreeChangeRequest
	// inTree: the object is built inside a load balancer's create (lb is
	// new, not in the state); treePool is the pool a monitor or members
	// are built for there.
	inTree   bool
	treePool *fsm.Pool
}

func (b *lbBuild) str(k string, dst *string) {
	if x, ok := b.a.str(k); ok {
		*dst = x
	}
}

func (b *lbBuild) integer(k string, dst *int) {
	if x, ok := b.a.integer(k); ok {
		*dst = x
	}
}

func (b *lbBuild) boolean(k string, dst *bool) {
	if x, ok := b.a.boolean(k); ok {
		*dst = x
	}
}

// meta applies the common attributes (name, description, tags).
func (b *lbBuild) meta(m *fsm.Meta, desc bool) error {
	b.str("name", &m.Name)
	if desc {
		b.str("description", &m.Description)
	}
	if tags, ok := b.a.strings("tags"); ok {
		if err := validTags(tags); err != nil {
			return err
		}
		m.Tags = dedupTags(tags)
	}
	return nil
}

// useLB sets the load balancer of the build: one the caller may see.
func (b *lbBuild) useLB(id string) error {
	if b.inTree && b.lb != nil && id == b.lb.ID {
		return nil
	}
	obj, err := lbLookup(b.v, b.ident, kindLB, id, "")
	if err != nil {
		return err
	}
	b.lb = obj.(*fsm.LoadBalancer)
	b.change.LoadBalancerID = b.lb.ID
	return nil
}

func (b *lbBuild) newMeta(ctx *http.Request) fsm.Meta {
	ts := now()
	return fsm.Meta{ID: newID(ctx.Context()), ProjectID: b.lb.ProjectID, CreatedAt: ts, UpdatedAt: ts}
}

func (b *lbBuild) requireAll(names ...string) error {
	for _, n := range names {
		if _, ok := b.a[n]; !ok {
			return lbInvalid("%s is a required attribute.", n)
		}
	}
	return nil
}

func oneOf(name, val string, valid ...string) error {
	if !slices.Contains(valid, val) {
		return lbInvalid("%s '%s' is not one of %s.", name, val, strings.Join(valid, ", "))
	}
	return nil
}

func inRange(name string, val, lo, hi int) error {
	if val < lo || val > hi {
		return lbInvalid("%s %d is not in %d..%d.", name, val, lo, hi)
	}
	return nil
}

// noneOf rejects attributes this provider does not implement when they are
// set to something.
func (b *lbBuild) unsupported(names ...string) error {
	for _, n := range names {
		switch x := b.a[n].(type) {
		case nil:
		case string:
			if x != "" {
				return lbInvalid("%s is not supported by the %s provider.", n, fsm.LBProvider)
			}
		case []string:
			if len(x) > 0 {
				return lbInvalid("%s is not supported by the %s provider.", n, fsm.LBProvider)
			}
		case bool:
			if x {
				return lbInvalid("%s is not supported by the %s provider.", n, fsm.LBProvider)
			}
		}
	}
	return nil
}

// maxTimeout is Octavia's bound of listener timeouts (ms, 24 h).
const maxTimeout = 24 * 60 * 60 * 1000

// listenerHeaders are the insert_headers HTTP listeners support.
var listenerHeaders = []string{"X-Forwarded-For", "X-Forwarded-Port", "X-Forwarded-Proto"}

func (b *lbBuild) listener(r *http.Request, cur *fsm.Listener) (*fsm.Listener, error) {
	l := &fsm.Listener{ConnectionLimit: -1, TimeoutClientData: 50000, TimeoutMemberConnect: 5000, TimeoutMemberData: 50000, AdminStateUp: true}
	if cur != nil {
		l = cur.Copy()
	} else {
		if err := b.requireAll("loadbalancer_id", "protocol", "protocol_port"); err != nil {
			return nil, err
		}
		id, _ := b.a.str("loadbalancer_id")
		if err := b.useLB(id); err != nil {
			return nil, err
		}
		l.Meta, l.LoadBalancerID = b.newMeta(r), b.lb.ID
		b.str("protocol", &l.Protocol)
		b.integer("protocol_port", &l.ProtocolPort)
	}
	if err := b.meta(&l.Meta, true); err != nil {
		return nil, err
	}
	if err := b.unsupported("default_tls_container_ref", "sni_container_refs", "allowed_cidrs"); err != nil {
		return nil, err
	}
	b.boolean("admin_state_up", &l.AdminStateUp)
	b.integer("connection_limit", &l.ConnectionLimit)
	for k, dst := range map[string]*int{"timeout_client_data": &l.TimeoutClientData, "timeout_member_connect": &l.TimeoutMemberConnect,
		"timeout_member_data": &l.TimeoutMemberData, "timeout_tcp_inspect": &l.TimeoutTCPInspect} {
		b.integer(k, dst)
		if err := inRange(k, *dst, 0, maxTimeout); err != nil {
			return nil, err
		}
	}
	if id, ok := b.a.str("default_pool_id"); ok {
		if id != "" {
			if _, err := lbLookup(b.v, b.ident, kindPool, id, ""); err != nil {
				return nil, err
			}
		}
		l.DefaultPoolID = id
	}
	if err := oneOf("protocol", l.Protocol, fsm.LBProtocolHTTP, fsm.LBProtocolHTTPS, fsm.LBProtocolTCP); err != nil {
		return nil, err
	}
	if err := inRange("protocol_port", l.ProtocolPort, 1, 65535); err != nil {
		return nil, err
	}
	if l.ConnectionLimit < -1 {
		return nil, lbInvalid("connection_limit %d is less than -1.", l.ConnectionLimit)
	}
	if raw, ok := b.raw["insert_headers"]; ok {
		h := map[string]string{}
		if !isNull(raw) {
			if err := json.Unmarshal(raw, &h); err != nil {
				return nil, lbInvalid("insert_headers must be an object of strings: %v", err)
			}
		}
		l.InsertHeaders = h
	}
	for k, x := range l.InsertHeaders {
		if l.Protocol != fsm.LBProtocolHTTP {
			return nil, lbInvalid("The following headers are not supported for the %s protocol: %s", l.Protocol, k)
		}
		if !slices.Contains(listenerHeaders, k) {
			return nil, lbInvalid("Header %s is not one of %s.", k, strings.Join(listenerHeaders, ", "))
		}
		if x != "true" && x != "false" && x != "True" && x != "False" {
			return nil, lbInvalid("Header %s: '%s' is not a boolean.", k, x)
		}
	}
	return l, nil
}

var cookieName = regexp.MustCompile(`^[a-zA-Z0-9!#$%&'*+.^_` + "`" + `|~-]+$`)

func (b *lbBuild) pool(r *http.Request, cur *fsm.Pool) (*fsm.Pool, error) {
	p := &fsm.Pool{AdminStateUp: true}
	if cur != nil {
		p = cur.Copy()
	} else {
		if err := b.requireAll("protocol", "lb_algorithm"); err != nil {
			return nil, err
		}
		lbID, _ := b.a.str("loadbalancer_id")
		lid, _ := b.a.str("listener_id")
		var l *fsm.Listener
		if lid != "" {
			obj, err := lbLookup(b.v, b.ident, kindListener, lid, "")
			if err != nil {
				return nil, err
			}
			l = obj.(*fsm.Listener)
			if lbID != "" && lbID != l.LoadBalancerID {
				return nil, lbInvalid("listener %s is not on load balancer %s.", lid, lbID)
			}
			lbID = l.LoadBalancerID
		}
		if lbID == "" {
			return nil, lbInvalid("loadbalancer_id or listener_id is a required attribute.")
		}
		if err := b.useLB(lbID); err != nil {
			return nil, err
		}
		p.Meta, p.LoadBalancerID = b.newMeta(r), b.lb.ID
		b.str("protocol", &p.Protocol)
		if l != nil {
			if l.DefaultPoolID != "" {
				return nil, newError(http.StatusConflict, fsm.ErrTypeLBDuplicate, "This listener already has a default pool")
			}
			nl := l.Copy()
			nl.DefaultPoolID = p.ID
			b.change.Update.Listeners = append(b.change.Update.Listeners, nl)
			b.change.PrevIndex = map[string]uint64{l.ID: l.ModifyIndex}
		}
	}
	if err := b.meta(&p.Meta, true); err != nil {
		return nil, err
	}
	if err := b.unsupported("tls_enabled"); err != nil {
		return nil, err
	}
	b.boolean("admin_state_up", &p.AdminStateUp)
	b.str("lb_algorithm", &p.LBAlgorithm)
	if err := oneOf("protocol", p.Protocol, fsm.LBProtocolHTTP, fsm.LBProtocolHTTPS, fsm.LBProtocolTCP, fsm.LBProtocolPROXY); err != nil {
		return nil, err
	}
	if err := oneOf("lb_algorithm", p.LBAlgorithm, fsm.LBRoundRobin, fsm.LBLeastConnections, fsm.LBSourceIP); err != nil {
		return nil, err
	}
	if raw, ok := b.raw["session_persistence"]; ok {
		p.SessionPersistence = nil
		if !isNull(raw) {
			var sp struct {
				Type                   string  `json:"type"`
				CookieName             *string `json:"cookie_name"`
				PersistenceTimeout     any     `json:"persistence_timeout"`
				PersistenceGranularity any     `json:"persistence_granularity"`
			}
			dec := json.NewDecoder(bytes.NewReader(raw))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&sp); err != nil {
				return nil, lbInvalid("session_persistence: %v", err)
			}
			p.SessionPersistence = &fsm.SessionPersistence{Type: sp.Type}
			if sp.CookieName != nil {
				p.SessionPersistence.CookieName = *sp.CookieName
			}
		}
	}
	if sp := p.SessionPersistence; sp != nil {
		if err := oneOf("session_persistence type", sp.Type, fsm.LBPersistSourceIP, fsm.LBPersistHTTPCookie, fsm.LBPersistAppCookie); err != nil {
			return nil, err
		}
		switch {
		case sp.Type == fsm.LBPersistAppCookie && sp.CookieName == "":
			return nil, lbInvalid("APP_COOKIE session persistence type requires a cookie_name.")
		case sp.Type != fsm.LBPersistAppCookie && sp.CookieName != "":
			return nil, lbInvalid("Cookie names are not supported for %s pools.", sp.Type)
		case sp.CookieName != "" && !cookieName.MatchString(sp.CookieName):
			return nil, lbInvalid("cookie_name '%s' is not a valid cookie name.", sp.CookieName)
		}
		if p.Protocol != fsm.LBProtocolHTTP && sp.Type != fsm.LBPersistSourceIP {
			return nil, lbInvalid("%s session persistence needs an HTTP pool.", sp.Type)
		}
	}
	return p, nil
}

func parseIP(name, s string) (string, error) {
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		return "", lbInvalid("%s '%s' is not a valid IP address.", name, s)
	}
	return a.String(), nil
}

// member builds a member of pool (path parent) from the build's attributes.
func (b *lbBuild) member(r *http.Request, pool *fsm.Pool, cur *fsm.Member) (*fsm.Member, error) {
	m := &fsm.Member{Weight: 1, AdminStateUp: true}
	if cur != nil {
		m = cur.Copy()
	} else {
		if err := b.requireAll("address", "protocol_port"); err != nil {
			return nil, err
		}
		if err := b.useLB(pool.LoadBalancerID); err != nil {
			return nil, err
		}
		m.Meta, m.PoolID, m.LoadBalancerID = b.newMeta(r), pool.ID, pool.LoadBalancerID
		addr, _ := b.a.str("address")
		var err error
		if m.Address, err = parseIP("address", addr); err != nil {
			return nil, err
		}
		b.integer("protocol_port", &m.ProtocolPort)
		b.str("subnet_id", &m.SubnetID)
		if m.SubnetID != "" {
			// The member's subnet must be one the load balancer's project
			// may use.
			sub, err := lookupSubnet(b.v, Identity{ProjectID: b.lb.ProjectID}, m.SubnetID)
			if err != nil {
				return nil, lbSubresource("Subnet", m.SubnetID)
			}
			if a, _ := netip.ParseAddr(m.Address); !sub.Prefix().Contains(a) {
				return nil, lbInvalid("address %s is not on subnet %s (%s).", m.Address, sub.ID, sub.CIDR)
			}
		}
	}
	if err := b.meta(&m.Meta, false); err != nil {
		return nil, err
	}
	b.boolean("admin_state_up", &m.AdminStateUp)
	b.boolean("backup", &m.Backup)
	b.integer("weight", &m.Weight)
	b.integer("monitor_port", &m.MonitorPort)
	if x, ok := b.a.str("monitor_address"); ok {
		m.MonitorAddress = ""
		if x != "" {
			var err error
			if m.MonitorAddress, err = parseIP("monitor_address", x); err != nil {
				return nil, err
			}
		}
	}
	if err := inRange("protocol_port", m.ProtocolPort, 1, 65535); err != nil {
		return nil, err
	}
	if err := inRange("weight", m.Weight, 0, 256); err != nil {
		return nil, err
	}
	if m.MonitorPort != 0 {
		if err := inRange("monitor_port", m.MonitorPort, 1, 65535); err != nil {
			return nil, err
		}
	}
	return m, nil
}

var (
	expectedCodes = regexp.MustCompile(`^(\d{3}(\s*,\s*\d{3})*|\d{3}-\d{3})$`)
	urlPath       = regexp.MustCompile(`^/[^\s"]*$`)
	httpMethods   = []string{"GET", "HEAD", "POST", "PUT", "DELETE", "TRACE", "OPTIONS", "CONNECT", "PATCH"}
)

func (b *lbBuild) healthMonitor(r *http.Request, cur *fsm.HealthMonitor) (*fsm.HealthMonitor, error) {
	h := &fsm.HealthMonitor{MaxRetriesDown: 3, AdminStateUp: true}
	if cur != nil {
		h = cur.Copy()
	} else {
		if b.treePool != nil {
			b.a["pool_id"] = b.treePool.ID
		}
		if err := b.requireAll("pool_id", "type", "delay", "timeout", "max_retries"); err != nil {
			return nil, err
		}
		pool := b.treePool
		if pool == nil {
			pid, _ := b.a.str("pool_id")
			obj, err := lbLookup(b.v, b.ident, kindPool, pid, "")
			if err != nil {
				return nil, err
			}
			pool = obj.(*fsm.Pool)
		}
		if err := b.useLB(pool.LoadBalancerID); err != nil {
			return nil, err
		}
		h.Meta, h.PoolID, h.LoadBalancerID = b.newMeta(r), pool.ID, pool.LoadBalancerID
		b.str("type", &h.Type)
		if h.Type == fsm.LBMonitorHTTP || h.Type == fsm.LBMonitorHTTPS {
			h.HTTPMethod, h.URLPath, h.ExpectedCodes = "GET", "/", "200"
		}
	}
	if err := b.meta(&h.Meta, false); err != nil {
		return nil, err
	}
	if err := b.unsupported("http_version", "domain_name"); err != nil {
		return nil, err
	}
	b.boolean("admin_state_up", &h.AdminStateUp)
	b.integer("delay", &h.Delay)
	b.integer("timeout", &h.Timeout)
	b.integer("max_retries", &h.MaxRetries)
	b.integer("max_retries_down", &h.MaxRetriesDown)
	if err := oneOf("type", h.Type, fsm.LBMonitorPING, fsm.LBMonitorTCP, fsm.LBMonitorHTTP, fsm.LBMonitorHTTPS, fsm.LBMonitorTLSHello); err != nil {
		return nil, err
	}
	httpType := h.Type == fsm.LBMonitorHTTP || h.Type == fsm.LBMonitorHTTPS
	for _, k := range []string{"http_method", "url_path", "expected_codes"} {
		if x, ok := b.a.str(k); ok && x != "" && !httpType {
			return nil, lbInvalid("%s is not a valid option for health monitors of type %s", k, h.Type)
		}
	}
	b.str("http_method", &h.HTTPMethod)
	b.str("url_path", &h.URLPath)
	b.str("expected_codes", &h.ExpectedCodes)
	switch {
	case h.Delay < 1:
		return nil, lbInvalid("delay %d must be at least 1 second.", h.Delay)
	case h.Timeout < 1:
		return nil, lbInvalid("timeout %d must be at least 1 second.", h.Timeout)
	case h.Timeout > h.Delay:
		return nil, lbInvalid("The timeout (%d) must be less than or equal to the delay (%d).", h.Timeout, h.Delay)
	}
	if err := inRange("max_retries", h.MaxRetries, 1, 10); err != nil {
		return nil, err
	}
	if err := inRange("max_retries_down", h.MaxRetriesDown, 1, 10); err != nil {
		return nil, err
	}
	if httpType {
		if err := oneOf("http_method", h.HTTPMethod, httpMethods...); err != nil {
			return nil, err
		}
		if !urlPath.MatchString(h.URLPath) {
			return nil, lbInvalid("url_path '%s' is not a valid URL path.", h.URLPath)
		}
		if !expectedCodes.MatchString(h.ExpectedCodes) {
			return nil, lbInvalid("expected_codes '%s' is not a code, a list of codes or a range.", h.ExpectedCodes)
		}
	}
	return h, nil
}

// maxPolicyPosition is a position past every policy: appended at the end.
const maxPolicyPosition = 2147483647

var redirectCodes = []int{301, 302, 303, 307, 308}

func (b *lbBuild) l7Policy(r *http.Request, cur *fsm.L7Policy) (*fsm.L7Policy, error) {
	p := &fsm.L7Policy{Position: maxPolicyPosition, AdminStateUp: true}
	if cur != nil {
		p = cur.Copy()
	} else {
		if err := b.requireAll("listener_id", "action"); err != nil {
			return nil, err
		}
		lid, _ := b.a.str("listener_id")
		obj, err := lbLookup(b.v, b.ident, kindListener, lid, "")
		if err != nil {
			return nil, err
		}
		l := obj.(*fsm.Listener)
		if l.Protocol != fsm.LBProtocolHTTP {
			return nil, lbInvalid("L7 policies need an HTTP listener; listener %s is %s.", l.ID, l.Protocol)
		}
		if err := b.useLB(l.LoadBalancerID); err != nil {
			return nil, err
		}
		p.Meta, p.ListenerID, p.LoadBalancerID = b.newMeta(r), l.ID, l.LoadBalancerID
	}
	if err := b.meta(&p.Meta, true); err != nil {
		return nil, err
	}
	b.boolean("admin_state_up", &p.AdminStateUp)
	b.integer("position", &p.Position)
	if _, ok := b.a["action"]; ok {
		b.str("action", &p.Action)
		p.RedirectPoolID, p.RedirectURL, p.RedirectPrefix, p.RedirectHTTPCode = "", "", "", 0
	}
	b.str("redirect_pool_id", &p.RedirectPoolID)
	b.str("redirect_url", &p.RedirectURL)
	b.str("redirect_prefix", &p.RedirectPrefix)
	b.integer("redirect_http_code", &p.RedirectHTTPCode)
	if p.Position < 1 {
		return nil, lbInvalid("position %d must be at least 1.", p.Position)
	}
	if err := oneOf("action", p.Action, fsm.LBRedirectToPool, fsm.LBRedirectToURL, fsm.LBRedirectPrefix, fsm.LBReject); err != nil {
		return nil, err
	}
	switch p.Action {
	case fsm.LBRedirectToPool:
		if p.RedirectPoolID == "" {
			return nil, lbInvalid("redirect_pool_id is required for action %s.", p.Action)
		}
		if _, err := lbLookup(b.v, b.ident, kindPool, p.RedirectPoolID, ""); err != nil {
			return nil, err
		}
		p.RedirectURL, p.RedirectPrefix, p.RedirectHTTPCode = "", "", 0
	case fsm.LBRedirectToURL, fsm.LBRedirectPrefix:
		target := p.RedirectURL
		if p.Action == fsm.LBRedirectPrefix {
			target = p.RedirectPrefix
			p.RedirectURL = ""
		} else {
			p.RedirectPrefix = ""
		}
		u, err := url.Parse(target)
		if target == "" || err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || strings.ContainsAny(target, " \"\t\r\n") {
			return nil, lbInvalid("'%s' is not a valid http(s) URL for action %s.", target, p.Action)
		}
		if p.RedirectHTTPCode == 0 {
			p.RedirectHTTPCode = 302
		}
		if !slices.Contains(redirectCodes, p.RedirectHTTPCode) {
			return nil, lbInvalid("redirect_http_code %d is not one of 301, 302, 303, 307, 308.", p.RedirectHTTPCode)
		}
		p.RedirectPoolID = ""
	case fsm.LBReject:
		p.RedirectPoolID, p.RedirectURL, p.RedirectPrefix, p.RedirectHTTPCode = "", "", "", 0
	}
	return p, nil
}

var headerName = regexp.MustCompile(`^[a-zA-Z0-9!#$%&'*+.^_` + "`" + `|~-]+$`)

func (b *lbBuild) l7Rule(r *http.Request, policy *fsm.L7Policy, cur *fsm.L7Rule) (*fsm.L7Rule, error) {
	x := &fsm.L7Rule{AdminStateUp: true}
	if cur != nil {
		x = cur.Copy()
	} else {
		if err := b.requireAll("type", "compare_type", "value"); err != nil {
			return nil, err
		}
		if err := b.useLB(policy.LoadBalancerID); err != nil {
			return nil, err
		}
		x.Meta, x.L7PolicyID, x.ListenerID, x.LoadBalancerID = b.newMeta(r), policy.ID, policy.ListenerID, policy.LoadBalancerID
		x.Meta.Name = ""
	}
	if tags, ok := b.a.strings("tags"); ok {
		if err := validTags(tags); err != nil {
			return nil, err
		}
		x.Tags = dedupTags(tags)
	}
	if _, ok := b.a["name"]; ok {
		return nil, lbInvalid("L7 rules have no name.")
	}
	b.boolean("admin_state_up", &x.AdminStateUp)
	b.boolean("invert", &x.Invert)
	b.str("type", &x.Type)
	b.str("compare_type", &x.CompareType)
	b.str("key", &x.Key)
	b.str("value", &x.Value)
	if err := oneOf("type", x.Type, fsm.LBRulePath, fsm.LBRuleHostName, fsm.LBRuleHeader, fsm.LBRuleCookie, fsm.LBRuleFileType); err != nil {
		return nil, err
	}
	if err := oneOf("compare_type", x.CompareType, fsm.LBCompareRegex, fsm.LBCompareStarts, fsm.LBCompareEnds, fsm.LBCompareContains, fsm.LBCompareEqual); err != nil {
		return nil, err
	}
	switch x.Type {
	case fsm.LBRuleHeader, fsm.LBRuleCookie:
		if !headerName.MatchString(x.Key) {
			return nil, lbInvalid("key '%s' is not a valid %s name.", x.Key, strings.ToLower(x.Type))
		}
	default:
		x.Key = ""
	}
	if x.Type == fsm.LBRuleFileType && x.CompareType != fsm.LBCompareRegex && x.CompareType != fsm.LBCompareEqual {
		return nil, lbInvalid("compare_type %s is not valid for FILE_TYPE rules (REGEX or EQUAL_TO).", x.CompareType)
	}
	if x.Value == "" || strings.ContainsFunc(x.Value, func(c rune) bool { return c < 0x20 || c == 0x7f || c == '"' }) {
		return nil, lbInvalid("value '%s' is empty or holds control characters or double quotes.", x.Value)
	}
	if x.CompareType == fsm.LBCompareRegex {
		if _, err := regexp.Compile(x.Value); err != nil {
			return nil, lbInvalid("'%s' is not a valid regular expression: %v", x.Value, err)
		}
	} else if strings.ContainsAny(x.Value, " \t") {
		return nil, lbInvalid("value '%s' must not contain whitespace.", x.Value)
	}
	return x, nil
}

// treeOf puts one object in a tree.
func treeOf(obj any) fsm.LBTree {
	var t fsm.LBTree
	switch o := obj.(type) {
	case *fsm.Listener:
		t.Listeners = append(t.Listeners, o)
	case *fsm.Pool:
		t.Pools = append(t.Pools, o)
	case *fsm.Member:
		t.Members = append(t.Members, o)
	case *fsm.HealthMonitor:
		t.HealthMonitors = append(t.HealthMonitors, o)
	case *fsm.L7Policy:
		t.L7Policies = append(t.L7Policies, o)
	case *fsm.L7Rule:
		t.L7Rules = append(t.L7Rules, o)
	}
	return t
}

// build builds an object of kind k from a request (cur nil: create).
func (b *lbBuild) build(r *http.Request, k *lbKind, cur any) (any, error) {
	parent := r.PathValue(k.parent)
	switch k {
	case kindListener:
		c, _ := cur.(*fsm.Listener)
		return b.listener(r, c)
	case kindPool:
		c, _ := cur.(*fsm.Pool)
		return b.pool(r, c)
	case kindMember:
		obj, err := lbLookup(b.v, b.ident, kindPool, parent, "")
		if err != nil {
			return nil, err
		}
		c, _ := cur.(*fsm.Member)
		return b.member(r, obj.(*fsm.Pool), c)
	case kindHM:
		c, _ := cur.(*fsm.HealthMonitor)
		return b.healthMonitor(r, c)
	case kindL7Policy:
		c, _ := cur.(*fsm.L7Policy)
		return b.l7Policy(r, c)
	case kindL7Rule:
		obj, err := lbLookup(b.v, b.ident, kindL7Policy, parent, "")
		if err != nil {
			return nil, err
		}
		c, _ := cur.(*fsm.L7Rule)
		return b.l7Rule(r, obj.(*fsm.L7Policy), c)
	}
	return nil, badRequest("unknown resource")
}

func structuredOf(k *lbKind) map[string]attrSpec {
	switch k {
	case kindListener:
		return map[string]attrSpec{"insert_headers": {Post: true, Put: true}}
	case kindPool:
		return map[string]attrSpec{"session_persistence": {Post: true, Put: true}}
	}
	return nil
}

// lbWrite is the create and update of a child: parse, build against the
// current state, propose the tree change, retry on a concurrent change.
func (s *Server) lbWrite(w http.ResponseWriter, r *http.Request, k *lbKind, create bool) error {
	body, err := readBody(r)
	if err != nil {
		return err
	}
	objs, err := objectsFromBody(body, k.singular, k.plural, false)
	if err != nil {
		return err
	}
	a, raw, err := parseObject(objs[0], k.attrs, structuredOf(k), create)
	if err != nil {
		return err
	}
	ident := identityFrom(r.Context())
	if create {
		if _, err := projectFor(ident, a); err != nil {
			return err
		}
	}
	parent := r.PathValue(k.parent)
	var id string
	for attempt := 0; ; attempt++ {
		v := s.fsm.State().Read()
		b := &lbBuild{s: s, v: v, ident: ident, a: a, raw: raw}
		var cur any
		if !create {
			if cur, err = lbLookup(v, ident, k, r.PathValue("id"), parent); err != nil {
				return err
			}
			if err := b.useLB(fsm.LoadBalancerOf(cur)); err != nil {
				return err
			}
		}
		obj, err := b.build(r, k, cur)
		if err != nil {
			return err
		}
		m := obj.(fsm.Object).GetMeta()
		id = m.ID
		if create {
			if !ident.Admin && b.lb.ProjectID != ident.ProjectID {
				return lbNotFound(fsm.TableLBLoadBalancers, b.lb.ID)
			}
			b.change.Create = treeOf(obj)
			declare(r.Context(), &outcome{Status: http.StatusCreated, Collection: lbPrefixes[0] + k.path(parent),
				Singular: k.singular, IDs: []string{id}})
		} else {
			m.UpdatedAt = now()
			b.change.Update = treeOf(obj)
			b.change.PrevIndex = map[string]uint64{id: cur.(fsm.Object).GetMeta().ModifyIndex}
		}
		b.change.At = now()
		rev, err := s.propose(r.Context(), fsm.CmdLBTreeChange, b.change)
		if fe, ok := fsm.AsError(err); ok && fe.Type == fsm.ErrTypeStaleUpdate && attempt < maxUpdateRetries {
			continue
		}
		if err != nil {
			return err
		}
		setRevision(w, rev)
		break
	}
	v := s.fsm.State().Read()
	obj := v.Object(k.table, id)
	if obj == nil {
		return lbNotFound(k.table, id)
	}
	status := http.StatusOK
	if create {
		status = http.StatusCreated
	}
	writeJSON(w, status, map[string]any{k.singular: k.render(v, obj, ident.Admin)})
	return nil
}

func (s *Server) lbCreate(k *lbKind) apiHandler {
	return func(w http.ResponseWriter, r *http.Request) error { return s.lbWrite(w, r, k, true) }
}

func (s *Server) lbUpdate(k *lbKind) apiHandler {
	return func(w http.ResponseWriter, r *http.Request) error { return s.lbWrite(w, r, k, false) }
}

// batchUpdateMembers replaces a pool's members (Octavia's batch update):
// members are matched by address and protocol port; listed ones are
// created or updated, the others deleted (unless ?additive_only=true).
func (s *Server) batchUpdateMembers(w http.ResponseWriter, r *http.Request) error {
	body, err := readBody(r)
	if err != nil {
		return err
	}
	var list []map[string]json.RawMessage
	raw, ok := body["members"]
	if !ok || len(body) != 1 || json.Unmarshal(raw, &list) != nil {
		return lbInvalid("the body must be {\"members\": [...]}.")
	}
	additive := strings.EqualFold(r.URL.Query().Get("additive_only"), "true")
	ident := identityFrom(r.Context())
	for attempt := 0; ; attempt++ {
		v := s.fsm.State().Read()
		obj, err := lbLookup(v, ident, kindPool, r.PathValue("pool_id"), "")
		if err != nil {
			return err
		}
		pool := obj.(*fsm.Pool)
		existing := map[string]*fsm.Member{}
		for _, m := range v.MembersOfPool(pool.ID) {
			existing[m.Address+"/"+strconv.Itoa(m.ProtocolPort)] = m
		}
		change := fsm.LBTreeChangeRequest{LoadBalancerID: pool.LoadBalancerID, PrevIndex: map[string]uint64{}, At: now()}
		seen := map[string]bool{}
		for _, o := range list {
			a, err := parseAttrs(o, memberAttrs, true)
			if err != nil {
				return err
			}
			b := &lbBuild{s: s, v: v, ident: ident, a: a, lb: nil}
			addr, _ := a.str("address")
			port, _ := a.integer("protocol_port")
			if ip, err := netip.ParseAddr(addr); err == nil {
				addr = ip.String()
			}
			key := addr + "/" + strconv.Itoa(port)
			if seen[key] {
				return lbInvalid("member %s is listed twice.", key)
			}
			seen[key] = true
			if cur := existing[key]; cur != nil {
				delete(a, "address")
				delete(a, "protocol_port")
				delete(a, "subnet_id")
				if err := b.useLB(pool.LoadBalancerID); err != nil {
					return err
				}
				m, err := b.member(r, pool, cur)
				if err != nil {
					return err
				}
				m.UpdatedAt = now()
				change.Update.Members = append(change.Update.Members, m)
				change.PrevIndex[m.ID] = cur.ModifyIndex
				continue
			}
			m, err := b.member(r, pool, nil)
			if err != nil {
				return err
			}
			change.Create.Members = append(change.Create.Members, m)
		}
		if !additive {
			for key, m := range existing {
				if !seen[key] && m.ProvisioningStatus != fsm.LBPendingDelete {
					change.Delete = append(change.Delete, fsm.LBRef{Table: fsm.TableLBMembers, ID: m.ID})
				}
			}
			slices.SortFunc(change.Delete, func(a, b fsm.LBRef) int { return strings.Compare(a.ID, b.ID) })
		}
		if ident.Admin || pool.ProjectID == ident.ProjectID {
			declare(r.Context(), &outcome{Status: http.StatusAccepted})
		}
		rev, err := s.propose(r.Context(), fsm.CmdLBTreeChange, change)
		if fe, ok := fsm.AsError(err); ok && fe.Type == fsm.ErrTypeStaleUpdate && attempt < maxUpdateRetries {
			continue
		}
		if err != nil {
			return err
		}
		setRevision(w, rev)
		w.WriteHeader(http.StatusAccepted)
		return nil
	}
}
