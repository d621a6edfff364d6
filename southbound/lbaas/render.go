package lbaas

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Default timeouts (Octavia's defaults) used where a listener says 0.
const (
	defaultClientMS  = 50000
	defaultConnectMS = 5000
	defaultServerMS  = 50000
	defaultInspectMS = 0
)

// Paths are the files one HAProxy instance uses, all in one directory.
type Paths struct {
	Dir string
}

// Config is the rendered configuration file.
func (p Paths) Config() string { return p.Dir + "/haproxy.cfg" }

// Candidate is where a new configuration is written and checked before it
// replaces Config.
func (p Paths) Candidate() string { return p.Dir + "/haproxy.cfg.new" }

// Stats is the stats socket (admin level, listeners exposed).
func (p Paths) Stats() string { return p.Dir + "/stats.sock" }

// Master is the master CLI socket (master-worker mode).
func (p Paths) Master() string { return p.Dir + "/master.sock" }

// PIDFile is the master's pid file.
func (p Paths) PIDFile() string { return p.Dir + "/haproxy.pid" }

// Render renders the HAProxy configuration of a load balancer. The output
// depends only on its input (sorted, no timestamps), so an unchanged tree
// renders byte for byte the same and reloads nothing.
func Render(s Spec, p Paths) string {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	w("# load balancer %s (rendered by neutrino; do not edit)", s.ID)
	w("global")
	// Within the usual fd limits (HAProxy needs about 2 per connection).
	w("    maxconn 8000")
	// One thread: fe_conn (connection_limit below) is exact only when one
	// thread accepts; with several, a connection handed to another thread
	// is not yet counted and one over the limit slips through. A gateway
	// runs one HAProxy per load balancer, so the cores are used anyway.
	w("    nbthread 1")
	// expose-fd listeners: a reloaded worker takes the listening sockets
	// over from the old one, so no connection attempt is refused.
	w("    stats socket %s mode 600 level admin expose-fd listeners", p.Stats())
	w("    stats timeout 30s")
	w("")
	w("defaults")
	w("    retries 3")
	// A request whose member fails to connect goes to another member.
	w("    option redispatch")
	w("    timeout connect %dms", defaultConnectMS)
	w("    timeout client %dms", defaultClientMS)
	w("    timeout server %dms", defaultServerMS)
	w("    timeout http-request 10s")

	pools := map[string]Pool{}
	for _, pl := range s.Pools {
		pools[pl.ID] = pl
	}
	// A pool's member timeouts come from the first listener using it by
	// default (HAProxy has them per backend).
	poolListener := map[string]Listener{}
	ls := slices.Clone(s.Listeners)
	slices.SortFunc(ls, func(a, b Listener) int { return a.Port - b.Port })
	for _, l := range ls {
		if _, ok := poolListener[l.DefaultPool]; !ok && l.DefaultPool != "" {
			poolListener[l.DefaultPool] = l
		}
	}
	for _, l := range ls {
		renderListener(w, s.VIP, l, pools)
	}
	ps := slices.Clone(s.Pools)
	slices.SortFunc(ps, func(a, b Pool) int { return strings.Compare(a.ID, b.ID) })
	for _, pl := range ps {
		renderPool(w, pl, poolListener[pl.ID], poolMode(pl, ls))
	}
	return b.String()
}

func mode(protocol string) string {
	if protocol == "HTTP" {
		return "http"
	}
	return "tcp"
}

func orDefault(v, def int) int {
	if v <= 0 {
		return def
	}
	return v
}

func renderListener(w func(string, ...any), vip string, l Listener, pools map[string]Pool) {
	m := mode(l.Protocol)
	w("")
	w("frontend %s", l.ID)
	w("    mode %s", m)
	w("    bind %s:%d", bindAddr(vip), l.Port)
	if !l.AdminStateUp {
		w("    disabled")
	}
	if l.ConnectionLimit > 0 {
		// Refused, not queued: a frontend maxconn would leave the excess
		// waiting in the kernel's accept queue (and pause the listener,
		// so a connection right after a refused one could wait too).
		// fe_conn counts the connection being decided.
		w("    tcp-request connection reject if { fe_conn gt %d }", l.ConnectionLimit)
	}
	w("    timeout client %dms", orDefault(l.TimeoutClientData, defaultClientMS))
	if m == "tcp" && l.TimeoutTCPInspect > 0 {
		w("    tcp-request inspect-delay %dms", l.TimeoutTCPInspect)
	}
	if m == "http" {
		if isTrue(l.InsertHeaders["X-Forwarded-For"]) {
			w("    option forwardfor")
		}
		if isTrue(l.InsertHeaders["X-Forwarded-Port"]) {
			w("    http-request set-header X-Forwarded-Port %%[dst_port]")
		}
		if isTrue(l.InsertHeaders["X-Forwarded-Proto"]) {
			w("    http-request set-header X-Forwarded-Proto http")
		}
		renderPolicies(w, l, pools)
	}
	if _, ok := pools[l.DefaultPool]; ok {
		w("    default_backend %s", l.DefaultPool)
	}
}

func bindAddr(ip string) string {
	if strings.Contains(ip, ":") {
		return "[" + ip + "]"
	}
	return ip
}

func isTrue(s string) bool {
	b, err := strconv.ParseBool(s)
	return err == nil && b
}

// renderPolicies renders a listener's enabled L7 policies in position
// order; a policy with no enabled rule never matches (as in Octavia).
func renderPolicies(w func(string, ...any), l Listener, pools map[string]Pool) {
	ps := slices.Clone(l.Policies)
	slices.SortStableFunc(ps, func(a, b Policy) int { return a.Position - b.Position })
	for _, p := range ps {
		if !p.AdminStateUp {
			continue
		}
		var conds []string
		for _, r := range p.Rules {
			if !r.AdminStateUp {
				continue
			}
			name := "rule-" + r.ID
			w("    acl %s %s", name, aclExpr(r))
			if r.Invert {
				name = "!" + name
			}
			conds = append(conds, name)
		}
		if len(conds) == 0 {
			continue
		}
		cond := strings.Join(conds, " ")
		code := p.RedirectHTTPCode
		if code == 0 {
			code = 302
		}
		switch p.Action {
		case "REJECT":
			w("    http-request deny if %s", cond)
		case "REDIRECT_TO_URL":
			w("    redirect location %s code %d if %s", quote(p.RedirectURL), code, cond)
		case "REDIRECT_PREFIX":
			w("    redirect prefix %s code %d if %s", quote(p.RedirectPrefix), code, cond)
		case "REDIRECT_TO_POOL":
			if _, ok := pools[p.RedirectPool]; ok {
				w("    use_backend %s if %s", p.RedirectPool, cond)
			}
		}
	}
}

// aclExpr is the HAProxy ACL expression of an L7 rule.
func aclExpr(r Rule) string {
	var fetch string
	icase := ""
	switch r.Type {
	case "PATH":
		fetch = "path"
	case "HOST_NAME":
		fetch, icase = "req.hdr(host)", " -i"
	case "HEADER":
		fetch = "req.hdr(" + r.Key + ")"
	case "COOKIE":
		fetch = "req.cook(" + r.Key + ")"
	case "FILE_TYPE":
		fetch = "path_end"
	default:
		fetch = "path"
	}
	match := map[string]string{"REGEX": "reg", "STARTS_WITH": "beg", "ENDS_WITH": "end",
		"CONTAINS": "sub", "EQUAL_TO": "str"}[r.CompareType]
	if match == "" {
		match = "str"
	}
	return fmt.Sprintf("%s%s -m %s %s", fetch, icase, match, quote(r.Value))
}

// quote makes one HAProxy configuration word of s: single quotes keep
// everything literal (regex backslashes too); a single quote inside is
// closed, escaped and reopened.
func quote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// poolMode is a backend's mode: HTTP pools are http; a PROXY pool takes
// the mode of the listeners that use it (an http frontend needs an http
// backend; haproxy -c refuses a mix); others are tcp.
func poolMode(p Pool, ls []Listener) string {
	if p.Protocol != "PROXY" {
		return mode(p.Protocol)
	}
	for _, l := range ls {
		uses := l.DefaultPool == p.ID
		for _, pol := range l.Policies {
			uses = uses || pol.RedirectPool == p.ID
		}
		if uses {
			return mode(l.Protocol)
		}
	}
	return "tcp"
}

func renderPool(w func(string, ...any), p Pool, l Listener, m string) {
	w("")
	w("backend %s", p.ID)
	w("    mode %s", m)
	switch p.Algorithm {
	case "LEAST_CONNECTIONS":
		w("    balance leastconn")
	case "SOURCE_IP":
		w("    balance source")
	default:
		w("    balance roundrobin")
	}
	if !p.AdminStateUp {
		w("    disabled")
	}
	w("    timeout connect %dms", orDefault(l.TimeoutMemberConnect, defaultConnectMS))
	w("    timeout server %dms", orDefault(l.TimeoutMemberData, defaultServerMS))
	cookie := false
	if ps := p.Persistence; ps != nil {
		switch ps.Type {
		case "SOURCE_IP":
			w("    stick-table type ip size 10k expire 30m")
			w("    stick on src")
		case "HTTP_COOKIE":
			if m == "http" {
				w("    cookie SRV insert indirect nocache")
				cookie = true
			}
		case "APP_COOKIE":
			if m == "http" && ps.CookieName != "" {
				w("    stick-table type string len 64 size 10k expire 30m")
				w("    stick store-response res.cook(%s)", ps.CookieName)
				w("    stick match req.cook(%s)", ps.CookieName)
			}
		}
	}
	mon := p.Monitor
	if mon != nil && !mon.AdminStateUp {
		mon = nil
	}
	if mon != nil {
		w("    timeout check %ds", max(mon.Timeout, 1))
		switch mon.Type {
		case "HTTP", "HTTPS":
			method := mon.HTTPMethod
			if method == "" {
				method = "GET"
			}
			path := mon.URLPath
			if path == "" {
				path = "/"
			}
			w("    option httpchk %s %s", method, path)
			w("    http-check expect %s", expectCodes(mon.ExpectedCodes))
		case "TLS-HELLO":
			w("    option ssl-hello-chk")
		}
		// PING and TCP: a TCP connect check (HAProxy sends no ICMP).
	}
	ms := slices.Clone(p.Members)
	slices.SortFunc(ms, func(a, b Member) int { return strings.Compare(a.ID, b.ID) })
	for _, mb := range ms {
		var o []string
		o = append(o, fmt.Sprintf("server %s %s:%d weight %d", mb.ID, bindAddr(mb.Address), mb.Port, max(mb.Weight, 0)))
		if mon != nil {
			fall, rise := orDefault(mon.MaxRetriesDown, 3), orDefault(mon.MaxRetries, 3)
			o = append(o, fmt.Sprintf("check inter %ds fall %d rise %d", max(mon.Delay, 1), fall, rise))
			if mon.Type == "HTTPS" {
				o = append(o, "check-ssl verify none")
			}
			if mb.MonitorAddress != "" {
				o = append(o, "addr "+mb.MonitorAddress)
			}
			if mb.MonitorPort > 0 {
				o = append(o, "port "+strconv.Itoa(mb.MonitorPort))
			}
		}
		if cookie {
			o = append(o, "cookie "+mb.ID)
		}
		if p.Protocol == "PROXY" {
			o = append(o, "send-proxy")
		}
		if mb.Backup {
			o = append(o, "backup")
		}
		if !mb.AdminStateUp {
			o = append(o, "disabled")
		}
		w("    %s", strings.Join(o, " "))
	}
}

// expectCodes turns Octavia's expected_codes ("200", "200,202",
// "200-204") into an http-check expect argument.
func expectCodes(codes string) string {
	codes = strings.TrimSpace(codes)
	if codes == "" {
		codes = "200"
	}
	if _, err := strconv.Atoi(codes); err == nil {
		return "status " + codes
	}
	var alts []string
	for _, part := range strings.Split(codes, ",") {
		part = strings.TrimSpace(part)
		lo, hi, ok := strings.Cut(part, "-")
		a, errA := strconv.Atoi(lo)
		bb, errB := strconv.Atoi(hi)
		if ok && errA == nil && errB == nil && a <= bb && bb-a < 1000 {
			for c := a; c <= bb; c++ {
				alts = append(alts, strconv.Itoa(c))
			}
			continue
		}
		alts = append(alts, part)
	}
	return "rstatus ^(" + strings.Join(alts, "|") + ")$"
}
