package fsm

// Load balancing as a service (issue 12): the Octavia v2 model.
//
// A load balancer and everything under it (listeners, pools, members,
// health monitors, L7 policies and rules) form one tree. Every object of
// the tree carries its LoadBalancerID so a tree is read with one index
// lookup per table. The leader decides at apply time which gateway chassis
// runs the load balancer's HAProxy (placement, like router gateways) and
// the agent on that chassis reports back through CmdLBStatus: that report
// is the only way provisioning leaves PENDING_* and the only source of
// operating status.

import (
	"maps"
	"slices"
	"strings"
)

// Table names of the LBaaS model.
const (
	TableLBLoadBalancers  = "lb_loadbalancers"
	TableLBListeners      = "lb_listeners"
	TableLBPools          = "lb_pools"
	TableLBMembers        = "lb_members"
	TableLBHealthMonitors = "lb_healthmonitors"
	TableLBL7Policies     = "lb_l7policies"
	TableLBL7Rules        = "lb_l7rules"
)

// LBTables lists the LBaaS tables, parents before children.
var LBTables = []string{TableLBLoadBalancers, TableLBListeners, TableLBPools,
	TableLBMembers, TableLBHealthMonitors, TableLBL7Policies, TableLBL7Rules}

// LBaaS commands (100-119). Values are persisted in the Raft log: never
// renumber.
const (
	// CmdLBCreate creates a load balancer with its VIP port and, optionally,
	// a tree of children (LBCreateRequest).
	CmdLBCreate CommandType = 100
	// CmdLBUpdate replaces a load balancer's attributes (LBUpdateRequest).
	CmdLBUpdate CommandType = 101
	// CmdLBDelete marks a load balancer (and, with Cascade, its tree) for
	// deletion (LBDeleteRequest).
	CmdLBDelete CommandType = 102
	// CmdLBFailover moves a load balancer to its next usable gateway
	// chassis (LBFailoverRequest).
	CmdLBFailover CommandType = 103
	// CmdLBStatus applies an agent's report (LBStatusRequest).
	CmdLBStatus CommandType = 104
	// CmdLBTreeChange creates, updates and deletes children of one load
	// balancer in one step (LBTreeChangeRequest): every child write of the
	// API, including the batch member update.
	CmdLBTreeChange CommandType = 105
	// CmdLBDeleteExpire completes the deletion of a load balancer whose
	// agent did not report in time (LBDeleteExpireRequest).
	CmdLBDeleteExpire CommandType = 106
)

// Provisioning status values (Octavia's provisioning_status).
const (
	LBActive        = "ACTIVE"
	LBPendingCreate = "PENDING_CREATE"
	LBPendingUpdate = "PENDING_UPDATE"
	LBPendingDelete = "PENDING_DELETE"
	LBError         = "ERROR"
)

// Operating status values (Octavia's operating_status).
const (
	LBOnline    = "ONLINE"
	LBDegraded  = "DEGRADED"
	LBOpError   = "ERROR"
	LBOffline   = "OFFLINE"
	LBNoMonitor = "NO_MONITOR"
	LBDraining  = "DRAINING"
)

// LBProvider is the only provider: HAProxy on a gateway chassis.
const LBProvider = "neutrino"

// DeviceOwnerLBVIP is the device_owner of a load balancer's VIP port, as
// Octavia sets it; its device_id is "lb-<load balancer id>".
const DeviceOwnerLBVIP = "Octavia"

// LBGatewayChassisCount is the length of a new load balancer's gateway
// chassis list: the active one and one standby.
const LBGatewayChassisCount = 2

// LBStatusNoGateway is the StatusReason of a load balancer that has no
// usable gateway chassis to run on.
const LBStatusNoGateway = "no gateway chassis"

// LBVIPDeviceID is the device_id of a load balancer's VIP port.
func LBVIPDeviceID(lbID string) string { return "lb-" + lbID }

// LoadBalancer is an Octavia load balancer.
type LoadBalancer struct {
	Meta
	VipNetworkID string // vip_network_id
	VipSubnetID  string // vip_subnet_id
	VipPortID    string // vip_port_id
	VipAddress   string // vip_address
	// VipPortAdopted: the VIP port was the caller's (vip_port_id); it is
	// released, not deleted, with the load balancer.
	VipPortAdopted bool
	Provider       string // provider
	AdminStateUp   bool   // admin_state_up
	// ProvisioningStatus is provisioning_status, OperatingStatus
	// operating_status.
	ProvisioningStatus string
	OperatingStatus    string
	// StatusReason says why the load balancer is in ERROR.
	StatusReason string
	// GatewayChassis is the priority list of chassis that may run the
	// load balancer (admin visible); ActiveChassis the one that does now,
	// "" when none is usable. The VIP port is bound to ActiveChassis.
	GatewayChassis []string
	ActiveChassis  string
	// ConfigRevision is the Raft index of the last committed change to
	// anything in the tree that changes what HAProxy runs; an agent's
	// report names the revision it realized.
	ConfigRevision uint64
}

// Copy returns a deep copy that may be changed.
func (l *LoadBalancer) Copy() *LoadBalancer {
	c := *l
	c.Tags = slices.Clone(l.Tags)
	c.GatewayChassis = slices.Clone(l.GatewayChassis)
	return &c
}

// Listener protocols.
const (
	LBProtocolHTTP  = "HTTP"
	LBProtocolHTTPS = "HTTPS"
	LBProtocolTCP   = "TCP"
	LBProtocolUDP   = "UDP"
	// LBProtocolPROXY is a pool protocol only (PROXY protocol to members).
	LBProtocolPROXY = "PROXY"
)

// Listener is an Octavia listener: one protocol port on the VIP.
type Listener struct {
	Meta
	LoadBalancerID string // loadbalancers[0].id
	Protocol       string // protocol
	ProtocolPort   int    // protocol_port
	DefaultPoolID  string // default_pool_id
	// ConnectionLimit is connection_limit, -1 for unlimited.
	ConnectionLimit int
	// Timeouts in milliseconds: timeout_client_data,
	// timeout_member_connect, timeout_member_data, timeout_tcp_inspect.
	TimeoutClientData    int
	TimeoutMemberConnect int
	TimeoutMemberData    int
	TimeoutTCPInspect    int
	// InsertHeaders is insert_headers (e.g. X-Forwarded-For: "true").
	InsertHeaders      map[string]string
	AdminStateUp       bool
	ProvisioningStatus string
	OperatingStatus    string
}

// Copy returns a deep copy that may be changed.
func (l *Listener) Copy() *Listener {
	c := *l
	c.Tags = slices.Clone(l.Tags)
	c.InsertHeaders = maps.Clone(l.InsertHeaders)
	return &c
}

// Pool algorithms (lb_algorithm).
const (
	LBRoundRobin       = "ROUND_ROBIN"
	LBLeastConnections = "LEAST_CONNECTIONS"
	LBSourceIP         = "SOURCE_IP"
)

// Session persistence types.
const (
	LBPersistSourceIP   = "SOURCE_IP"
	LBPersistHTTPCookie = "HTTP_COOKIE"
	LBPersistAppCookie  = "APP_COOKIE"
)

// SessionPersistence is a pool's session_persistence.
type SessionPersistence struct {
	Type       string // type
	CookieName string // cookie_name (APP_COOKIE)
}

// Pool is an Octavia pool of members.
type Pool struct {
	Meta
	LoadBalancerID string
	// ListenerIDs are the listeners whose default pool this is (listeners).
	ListenerIDs        []string
	Protocol           string              // protocol
	LBAlgorithm        string              // lb_algorithm
	SessionPersistence *SessionPersistence `fsm:"optional"`
	HealthMonitorID    string              // healthmonitor_id
	AdminStateUp       bool
	ProvisioningStatus string
	OperatingStatus    string
}

// Copy returns a deep copy that may be changed.
func (p *Pool) Copy() *Pool {
	c := *p
	c.Tags = slices.Clone(p.Tags)
	c.ListenerIDs = slices.Clone(p.ListenerIDs)
	if p.SessionPersistence != nil {
		sp := *p.SessionPersistence
		c.SessionPersistence = &sp
	}
	return &c
}

// Member is an Octavia pool member.
type Member struct {
	Meta
	PoolID         string
	LoadBalancerID string
	Address        string // address
	ProtocolPort   int    // protocol_port
	Weight         int    // weight (0-256)
	SubnetID       string // subnet_id
	AdminStateUp   bool
	Backup         bool   // backup
	MonitorAddress string // monitor_address
	// MonitorPort is monitor_port, 0 for none.
	MonitorPort        int
	ProvisioningStatus string
	OperatingStatus    string
}

// Copy returns a deep copy that may be changed.
func (m *Member) Copy() *Member {
	c := *m
	c.Tags = slices.Clone(m.Tags)
	return &c
}

// Health monitor types.
const (
	LBMonitorPING     = "PING"
	LBMonitorTCP      = "TCP"
	LBMonitorHTTP     = "HTTP"
	LBMonitorHTTPS    = "HTTPS"
	LBMonitorTLSHello = "TLS-HELLO"
)

// HealthMonitor is an Octavia health monitor of one pool.
type HealthMonitor struct {
	Meta
	PoolID         string
	LoadBalancerID string
	Type           string // type
	// Delay and Timeout are in seconds; MaxRetries and MaxRetriesDown are
	// counts (max_retries, max_retries_down).
	Delay              int
	Timeout            int
	MaxRetries         int
	MaxRetriesDown     int
	HTTPMethod         string // http_method
	URLPath            string // url_path
	ExpectedCodes      string // expected_codes
	AdminStateUp       bool
	ProvisioningStatus string
	OperatingStatus    string
}

// Copy returns a deep copy that may be changed.
func (h *HealthMonitor) Copy() *HealthMonitor {
	c := *h
	c.Tags = slices.Clone(h.Tags)
	return &c
}

// L7 policy actions.
const (
	LBRedirectToPool = "REDIRECT_TO_POOL"
	LBRedirectToURL  = "REDIRECT_TO_URL"
	LBRedirectPrefix = "REDIRECT_PREFIX"
	LBReject         = "REJECT"
)

// L7Policy is an Octavia L7 policy of one listener.
type L7Policy struct {
	Meta
	ListenerID     string
	LoadBalancerID string
	Action         string // action
	// Position is the 1-based position among the listener's policies.
	Position           int
	RedirectPoolID     string // redirect_pool_id
	RedirectURL        string // redirect_url
	RedirectPrefix     string // redirect_prefix
	RedirectHTTPCode   int    // redirect_http_code
	AdminStateUp       bool
	ProvisioningStatus string
	OperatingStatus    string
}

// Copy returns a deep copy that may be changed.
func (p *L7Policy) Copy() *L7Policy {
	c := *p
	c.Tags = slices.Clone(p.Tags)
	return &c
}

// L7 rule types and compare types.
const (
	LBRulePath        = "PATH"
	LBRuleHostName    = "HOST_NAME"
	LBRuleHeader      = "HEADER"
	LBRuleCookie      = "COOKIE"
	LBRuleFileType    = "FILE_TYPE"
	LBCompareRegex    = "REGEX"
	LBCompareStarts   = "STARTS_WITH"
	LBCompareEnds     = "ENDS_WITH"
	LBCompareContains = "CONTAINS"
	LBCompareEqual    = "EQUAL_TO"
)

// L7Rule is an Octavia L7 rule of one policy.
type L7Rule struct {
	Meta
	L7PolicyID         string
	ListenerID         string
	LoadBalancerID     string
	Type               string // type
	CompareType        string // compare_type
	Key                string // key (HEADER, COOKIE)
	Value              string // value
	Invert             bool   // invert
	AdminStateUp       bool
	ProvisioningStatus string
	OperatingStatus    string
}

// Copy returns a deep copy that may be changed.
func (r *L7Rule) Copy() *L7Rule {
	c := *r
	c.Tags = slices.Clone(r.Tags)
	return &c
}

// LBTree is a set of objects of one load balancer's tree, by table.
type LBTree struct {
	Listeners      []*Listener
	Pools          []*Pool
	Members        []*Member
	HealthMonitors []*HealthMonitor
	L7Policies     []*L7Policy
	L7Rules        []*L7Rule
}

// Empty reports whether the tree holds no object.
func (t *LBTree) Empty() bool {
	return len(t.Listeners)+len(t.Pools)+len(t.Members)+len(t.HealthMonitors)+len(t.L7Policies)+len(t.L7Rules) == 0
}

// LBRef names one object of a load balancer's tree.
type LBRef struct {
	Table string
	ID    string
}

// LBCreateRequest creates a load balancer, its VIP port (VipPort, with
// VipPortPrevIndex 0) or adopts an existing port (VipPort is then the
// port's new version and VipPortPrevIndex its ModifyIndex), and the
// children in Tree, all in PENDING_CREATE. At is the leader's time.
type LBCreateRequest struct {
	LoadBalancer     *LoadBalancer
	VipPort          *Port
	VipPortPrevIndex uint64
	Tree             LBTree
	At               string
}

// LBUpdateRequest replaces a load balancer's attributes (compare-and-set
// on PrevIndex); placement and status fields are the FSM's and are kept.
type LBUpdateRequest struct {
	LoadBalancer *LoadBalancer
	PrevIndex    uint64
	At           string
}

// LBDeleteRequest marks a load balancer for deletion; without Cascade it
// must have no children.
type LBDeleteRequest struct {
	ID      string
	Cascade bool
	At      string
}

// LBFailoverRequest moves a load balancer to the next usable chassis of
// its list (or places it again) and asks its agent for a new report.
type LBFailoverRequest struct {
	ID string
	At string
}

// LBStatusRequest is an agent's report for one load balancer: applied only
// when Chassis is the load balancer's ActiveChassis. Provisioning changes
// only when ConfigRevision is the load balancer's current one: without
// Error every PENDING_CREATE/PENDING_UPDATE object becomes ACTIVE and
// every PENDING_DELETE object is removed; with Error they go to ERROR and
// the load balancer's StatusReason is Error. Operating maps object ids
// (load balancer, listener, pool, member) to operating status and applies
// whenever Chassis is the active chassis.
type LBStatusRequest struct {
	LoadBalancerID string
	Chassis        string
	ConfigRevision uint64
	Error          string
	Operating      map[string]string
	At             string
}

// LBTreeChangeRequest changes children of one load balancer in one step:
// Create (PENDING_CREATE), Update (PENDING_UPDATE; each object's
// ModifyIndex must still be PrevIndex[id]), Delete (PENDING_DELETE, with
// the object's descendants). The load balancer goes to PENDING_UPDATE and
// its ConfigRevision to the command's index.
type LBTreeChangeRequest struct {
	LoadBalancerID string
	Create         LBTree
	Update         LBTree
	PrevIndex      map[string]uint64
	Delete         []LBRef
	At             string
}

// LBDeleteExpireRequest removes a load balancer still in PENDING_DELETE at
// ConfigRevision: its agent did not report within the leader's deadline.
type LBDeleteExpireRequest struct {
	ID             string
	ConfigRevision uint64
}

// LoadBalancer returns the load balancer with the id, or nil.
func (v *View) LoadBalancer(id string) *LoadBalancer {
	return first[*LoadBalancer](v.txn, TableLBLoadBalancers, "id", id)
}

// LoadBalancers returns every load balancer, ordered by id.
func (v *View) LoadBalancers() []*LoadBalancer {
	return all[*LoadBalancer](v.txn, TableLBLoadBalancers, "id")
}

// Listener returns the listener with the id, or nil.
func (v *View) Listener(id string) *Listener {
	return first[*Listener](v.txn, TableLBListeners, "id", id)
}

// Listeners returns every listener, ordered by id.
func (v *View) Listeners() []*Listener {
	return all[*Listener](v.txn, TableLBListeners, "id")
}

// ListenersOfLB returns a load balancer's listeners, ordered by id.
func (v *View) ListenersOfLB(lbID string) []*Listener {
	return all[*Listener](v.txn, TableLBListeners, "lb", lbID)
}

// LBPool returns the pool with the id, or nil.
func (v *View) LBPool(id string) *Pool {
	return first[*Pool](v.txn, TableLBPools, "id", id)
}

// LBPools returns every pool, ordered by id.
func (v *View) LBPools() []*Pool {
	return all[*Pool](v.txn, TableLBPools, "id")
}

// PoolsOfLB returns a load balancer's pools, ordered by id.
func (v *View) PoolsOfLB(lbID string) []*Pool {
	return all[*Pool](v.txn, TableLBPools, "lb", lbID)
}

// Member returns the member with the id, or nil.
func (v *View) Member(id string) *Member {
	return first[*Member](v.txn, TableLBMembers, "id", id)
}

// Members returns every member, ordered by id.
func (v *View) Members() []*Member {
	return all[*Member](v.txn, TableLBMembers, "id")
}

// MembersOfPool returns a pool's members, ordered by id.
func (v *View) MembersOfPool(poolID string) []*Member {
	return all[*Member](v.txn, TableLBMembers, "pool", poolID)
}

// MembersOfLB returns a load balancer's members, ordered by id.
func (v *View) MembersOfLB(lbID string) []*Member {
	return all[*Member](v.txn, TableLBMembers, "lb", lbID)
}

// HealthMonitor returns the health monitor with the id, or nil.
func (v *View) HealthMonitor(id string) *HealthMonitor {
	return first[*HealthMonitor](v.txn, TableLBHealthMonitors, "id", id)
}

// HealthMonitors returns every health monitor, ordered by id.
func (v *View) HealthMonitors() []*HealthMonitor {
	return all[*HealthMonitor](v.txn, TableLBHealthMonitors, "id")
}

// HealthMonitorsOfLB returns a load balancer's health monitors.
func (v *View) HealthMonitorsOfLB(lbID string) []*HealthMonitor {
	return all[*HealthMonitor](v.txn, TableLBHealthMonitors, "lb", lbID)
}

// L7Policy returns the L7 policy with the id, or nil.
func (v *View) L7Policy(id string) *L7Policy {
	return first[*L7Policy](v.txn, TableLBL7Policies, "id", id)
}

// L7Policies returns every L7 policy, ordered by id.
func (v *View) L7Policies() []*L7Policy {
	return all[*L7Policy](v.txn, TableLBL7Policies, "id")
}

// L7PoliciesOfLB returns a load balancer's L7 policies.
func (v *View) L7PoliciesOfLB(lbID string) []*L7Policy {
	return all[*L7Policy](v.txn, TableLBL7Policies, "lb", lbID)
}

// L7PoliciesOfListener returns a listener's L7 policies by position.
func (v *View) L7PoliciesOfListener(listenerID string) []*L7Policy {
	out := all[*L7Policy](v.txn, TableLBL7Policies, "listener", listenerID)
	slices.SortStableFunc(out, func(a, b *L7Policy) int { return a.Position - b.Position })
	return out
}

// L7Rule returns the L7 rule with the id, or nil.
func (v *View) L7Rule(id string) *L7Rule {
	return first[*L7Rule](v.txn, TableLBL7Rules, "id", id)
}

// L7Rules returns every L7 rule, ordered by id.
func (v *View) L7Rules() []*L7Rule {
	return all[*L7Rule](v.txn, TableLBL7Rules, "id")
}

// L7RulesOfPolicy returns an L7 policy's rules, ordered by id.
func (v *View) L7RulesOfPolicy(policyID string) []*L7Rule {
	return all[*L7Rule](v.txn, TableLBL7Rules, "policy", policyID)
}

// L7RulesOfLB returns a load balancer's L7 rules.
func (v *View) L7RulesOfLB(lbID string) []*L7Rule {
	return all[*L7Rule](v.txn, TableLBL7Rules, "lb", lbID)
}

// LBTreeOf returns every child of a load balancer.
func (v *View) LBTreeOf(lbID string) LBTree {
	return LBTree{
		Listeners:      v.ListenersOfLB(lbID),
		Pools:          v.PoolsOfLB(lbID),
		Members:        v.MembersOfLB(lbID),
		HealthMonitors: v.HealthMonitorsOfLB(lbID),
		L7Policies:     v.L7PoliciesOfLB(lbID),
		L7Rules:        v.L7RulesOfLB(lbID),
	}
}

// LoadBalancerOf is the id of the load balancer an LBaaS object belongs
// to (its own id for a load balancer), "" for anything else.
func LoadBalancerOf(obj any) string {
	if o, ok := obj.(lbObject); ok {
		return o.lbID()
	}
	return ""
}

// LBStatusOf returns an LBaaS object's provisioning and operating status.
func LBStatusOf(obj any) (provisioning, operating string) {
	if o, ok := obj.(lbObject); ok {
		ps, os := o.lbStatus()
		return *ps, *os
	}
	return "", ""
}

// LoadBalancerOfVIP is the load balancer whose VIP port p is, or nil.
func (v *View) LoadBalancerOfVIP(p *Port) *LoadBalancer {
	if p.DeviceOwner != DeviceOwnerLBVIP || !strings.HasPrefix(p.DeviceID, "lb-") {
		return nil
	}
	lb := v.LoadBalancer(strings.TrimPrefix(p.DeviceID, "lb-"))
	if lb == nil || lb.VipPortID != p.ID {
		return nil
	}
	return lb
}
