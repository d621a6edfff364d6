// Package lbaas runs the data path of load balancers on a gateway chassis:
// one HAProxy (master-worker, Debian's package) per load balancer, in a
// network namespace of its own plugged into br-int as the load balancer's
// VIP port. It renders HAProxy's configuration from a Spec, checks it with
// `haproxy -c` before anything replaces a running one, reloads seamlessly
// through the master socket, and reads health from the stats socket.
//
// The package knows nothing of the replicated state: the agent turns the
// fsm's load balancer tree into a Spec (FromTree) and decides what runs
// where.
package lbaas

// Spec is everything HAProxy must run for one load balancer.
type Spec struct {
	ID        string
	VIP       string // the VIP address HAProxy binds
	Listeners []Listener
	Pools     []Pool
}

// Listener is a frontend: one protocol port on the VIP.
type Listener struct {
	ID           string
	Protocol     string // HTTP, TCP, HTTPS (pass-through: TCP mode)
	Port         int
	DefaultPool  string // pool id, "" for none
	AdminStateUp bool
	// ConnectionLimit refuses connections beyond it (-1 or 0: unlimited).
	ConnectionLimit int
	// Timeouts in milliseconds (0: HAProxy defaults of this package).
	TimeoutClientData    int
	TimeoutMemberConnect int
	TimeoutMemberData    int
	TimeoutTCPInspect    int
	// InsertHeaders is Octavia's insert_headers (X-Forwarded-For,
	// X-Forwarded-Port, X-Forwarded-Proto: "true").
	InsertHeaders map[string]string
	Policies      []Policy // in position order
}

// Policy is an L7 policy of a listener; it applies when all its rules match.
type Policy struct {
	ID               string
	Action           string // REDIRECT_TO_POOL, REDIRECT_TO_URL, REDIRECT_PREFIX, REJECT
	Position         int
	RedirectPool     string
	RedirectURL      string
	RedirectPrefix   string
	RedirectHTTPCode int
	AdminStateUp     bool
	Rules            []Rule
}

// Rule is one L7 matcher.
type Rule struct {
	ID           string
	Type         string // PATH, HOST_NAME, HEADER, COOKIE, FILE_TYPE
	CompareType  string // REGEX, STARTS_WITH, ENDS_WITH, CONTAINS, EQUAL_TO
	Key          string // header or cookie name
	Value        string
	Invert       bool
	AdminStateUp bool
}

// Pool is a backend.
type Pool struct {
	ID           string
	Protocol     string // HTTP, TCP, HTTPS, PROXY
	Algorithm    string // ROUND_ROBIN, LEAST_CONNECTIONS, SOURCE_IP
	AdminStateUp bool
	Persistence  *Persistence
	Monitor      *Monitor
	Members      []Member
}

// Persistence is a pool's session persistence.
type Persistence struct {
	Type       string // SOURCE_IP, HTTP_COOKIE, APP_COOKIE
	CookieName string // APP_COOKIE
}

// Monitor is a pool's health monitor (Delay and Timeout in seconds).
type Monitor struct {
	ID             string
	Type           string // PING, TCP, HTTP, HTTPS, TLS-HELLO
	Delay          int
	Timeout        int
	MaxRetries     int
	MaxRetriesDown int
	HTTPMethod     string
	URLPath        string
	ExpectedCodes  string // "200", "200,202", "200-204"
	AdminStateUp   bool
}

// Member is a backend server.
type Member struct {
	ID             string
	Address        string
	Port           int
	Weight         int
	AdminStateUp   bool
	Backup         bool
	MonitorAddress string
	MonitorPort    int
}
