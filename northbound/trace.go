package northbound

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"neutrino/northbound/trace"
)

// traceRoutes serves `neutrino trace`: GET /v1/trace evaluates a packet's
// logical path against the replicated state (any server, leader-read like
// the API); with ofproto=true the server also asks the agent of the source
// chassis (GET /v1/ofproto/trace, admin only) to run `ovs-appctl
// ofproto/trace` on its switch.
func (s *Server) traceRoutes() {
	s.neutron("GET /v1/trace", s.trace)
	s.mux.HandleFunc("GET /v1/ofproto/trace", s.ofprotoTrace)
}

// traceHeaders are the identity headers passed on to a chassis agent.
var traceHeaders = []string{"X-Auth-Token", "X-Project-Id", "X-Tenant-Id", "X-Roles", "X-User-Id"}

func (s *Server) trace(w http.ResponseWriter, r *http.Request) error {
	qv := r.URL.Query()
	q := trace.Query{PortID: qv.Get("port"), SrcMAC: qv.Get("src_mac")}
	if q.PortID == "" || qv.Get("to") == "" {
		return badRequest("trace needs port=PORT_ID and to=IP[:PROTO[/PORT]]")
	}
	var err error
	if q.Dst, q.Proto, q.DstPort, err = trace.ParseTo(qv.Get("to")); err != nil {
		return badRequest("%v", err)
	}
	if src := qv.Get("src"); src != "" {
		if q.Src, err = netip.ParseAddr(src); err != nil || !q.Src.Is4() {
			return badRequest("src %q: want an IPv4 address", src)
		}
	}
	ofproto := false
	if o := qv.Get("ofproto"); o != "" {
		if ofproto = o == "true" || o == "1"; !ofproto && o != "false" && o != "0" {
			return badRequest("ofproto %q: want true or false", o)
		}
	}
	ident := identityFrom(r.Context())
	if ofproto && !ident.Admin {
		return forbidden("ofproto/trace runs on a chassis: it needs the admin role")
	}
	v := s.view(w)
	notFound := newError(http.StatusNotFound, "PortNotFound", "Port %s could not be found.", q.PortID)
	if p := v.Port(q.PortID); p == nil || (!ident.Admin && p.ProjectID != ident.ProjectID) {
		return notFound
	}
	res, err := trace.Run(v, q)
	if errors.Is(err, trace.ErrNoPort) {
		return notFound
	}
	if err != nil {
		return badRequest("%v", err)
	}
	if ofproto {
		for i := range res.OFProto {
			s.runOFProto(r, &res.OFProto[i])
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"trace": res})
	return nil
}

// runOFProto asks the chassis' agent (its API address from gossip) to run
// the trace, with the caller's identity.
func (s *Server) runOFProto(r *http.Request, o *trace.OFProto) {
	addr := ""
	if s.cfg.Members != nil {
		for _, m := range s.cfg.Members() {
			if m.Name == o.Chassis {
				addr, _ = m.Meta["http"].(string)
			}
		}
	}
	if addr == "" {
		o.Error = "no API address known for chassis " + o.Chassis + " (not in gossip)"
		return
	}
	scheme, hc := "http", s.forwarder
	if s.cfg.ChassisTLS != nil {
		// The chassis' own certificate, not a server's (PeerTLS).
		scheme = "https"
		hc = &http.Client{Transport: &http.Transport{TLSClientConfig: s.cfg.ChassisTLS(o.Chassis)}}
		defer hc.CloseIdleConnections()
	}
	ctx, cancel := context.WithTimeout(r.Context(), 15*time.Second)
	defer cancel()
	u := scheme + "://" + addr + "/v1/ofproto/trace?flow=" + url.QueryEscape(o.Flow)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		o.Error = err.Error()
		return
	}
	for _, h := range traceHeaders {
		if v := r.Header.Get(h); v != "" {
			req.Header.Set(h, v)
		}
	}
	resp, err := hc.Do(req)
	if err != nil {
		o.Error = fmt.Sprintf("chassis %s agent at %s: %v", o.Chassis, addr, err)
		return
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	var out struct {
		Output  string `json:"output"`
		Actions string `json:"datapath_actions"`
	}
	if resp.StatusCode != http.StatusOK || json.Unmarshal(body, &out) != nil {
		o.Error = fmt.Sprintf("chassis %s agent: %s: %s", o.Chassis, resp.Status, strings.TrimSpace(string(body)))
		return
	}
	o.Output, o.Actions = out.Output, out.Actions
}

// validTraceFlow: a flow for ofproto/trace is what trace.Run writes
// (fields, numbers, addresses); nothing else reaches ovs-appctl.
func validTraceFlow(f string) bool {
	if !strings.HasPrefix(f, "in_port=") || len(f) > 512 {
		return false
	}
	for _, c := range f {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || strings.ContainsRune("_=,:./-", c)) {
			return false
		}
	}
	return true
}

// ofprotoTrace is GET /v1/ofproto/trace?flow=FLOW on an agent that runs a
// chassis: `ovs-appctl ofproto/trace br-int FLOW` on its own switch. It
// is not forwarded: the chassis named is this one.
func (s *Server) ofprotoTrace(w http.ResponseWriter, r *http.Request) {
	ident, err := s.identify(r)
	if err != nil {
		writeError(w, err)
		return
	}
	if !ident.Admin {
		writeError(w, forbidden("ofproto/trace needs the admin role"))
		return
	}
	if s.cfg.OFProtoTrace == nil {
		writeError(w, newError(http.StatusNotFound, "HTTPNotFound", "This agent runs no chassis."))
		return
	}
	flow := r.URL.Query().Get("flow")
	if !validTraceFlow(flow) {
		writeError(w, badRequest("flow %q: want an OpenFlow match starting in_port=, of letters, digits and _=,:./-", flow))
		return
	}
	out, err := s.cfg.OFProtoTrace(r.Context(), flow)
	if err != nil {
		writeError(w, newError(http.StatusInternalServerError, "OFProtoTraceFailed", "ofproto/trace: %v: %s", err, out))
		return
	}
	actions := ""
	for _, line := range strings.Split(out, "\n") {
		if a, ok := strings.CutPrefix(strings.TrimSpace(line), "Datapath actions:"); ok {
			actions = strings.TrimSpace(a)
		}
	}
	w.Header().Set(HeaderServedBy, s.cfg.NodeName)
	writeJSON(w, http.StatusOK, map[string]any{"output": out, "datapath_actions": actions})
}
