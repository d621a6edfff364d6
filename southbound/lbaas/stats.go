package lbaas

import (
	"context"
	"encoding/csv"
	"fmt"
	"strings"
)

// Operating statuses (Octavia's).
const (
	Online    = "ONLINE"
	Degraded  = "DEGRADED"
	Error     = "ERROR"
	Offline   = "OFFLINE"
	NoMonitor = "NO_MONITOR"
	Draining  = "DRAINING"
)

// StatRow is one line of HAProxy's `show stat`.
type StatRow struct {
	Proxy  string // pxname: listener or pool id
	Server string // svname: FRONTEND, BACKEND or a member id
	Status string // OPEN, UP, DOWN, MAINT, DRAIN, "no check", "UP 1/2", ...
	Type   string // 0 frontend, 1 backend, 2 server
	Cur    string // scur: current sessions
	Total  string // stot: sessions so far
}

// Stats reads `show stat` from the stats socket.
func (m *Manager) Stats(ctx context.Context) ([]StatRow, error) {
	out, err := query(ctx, m.Paths.Stats(), "show stat")
	if err != nil {
		return nil, fmt.Errorf("lbaas: show stat: %w", err)
	}
	return ParseStats(out)
}

// ParseStats parses the CSV of `show stat` by its header line.
func ParseStats(out string) ([]StatRow, error) {
	out = strings.TrimPrefix(strings.TrimSpace(out), "# ")
	if out == "" {
		return nil, fmt.Errorf("lbaas: show stat: empty answer")
	}
	r := csv.NewReader(strings.NewReader(out))
	r.FieldsPerRecord = -1
	recs, err := r.ReadAll()
	if err != nil {
		return nil, fmt.Errorf("lbaas: show stat: %w", err)
	}
	col := map[string]int{}
	for i, h := range recs[0] {
		col[h] = i
	}
	for _, need := range []string{"pxname", "svname", "status", "type"} {
		if _, ok := col[need]; !ok {
			return nil, fmt.Errorf("lbaas: show stat: no %s column in %q", need, firstLine(out))
		}
	}
	get := func(rec []string, name string) string {
		if i, ok := col[name]; ok && i < len(rec) {
			return rec[i]
		}
		return ""
	}
	var rows []StatRow
	for _, rec := range recs[1:] {
		if len(rec) < 2 {
			continue
		}
		rows = append(rows, StatRow{Proxy: get(rec, "pxname"), Server: get(rec, "svname"), Status: get(rec, "status"),
			Type: get(rec, "type"), Cur: get(rec, "scur"), Total: get(rec, "stot")})
	}
	return rows, nil
}

// memberStatus maps a server's stat status to an operating status.
func memberStatus(st string) string {
	switch {
	case st == "no check":
		return NoMonitor
	case strings.HasPrefix(st, "UP"), st == "OPEN":
		// "UP 1/3": going down but still up.
		return Online
	case strings.HasPrefix(st, "DOWN"), strings.HasPrefix(st, "NOLB"):
		// "DOWN 1/2": coming back but not yet.
		return Error
	case strings.HasPrefix(st, "DRAIN"):
		return Draining
	case strings.HasPrefix(st, "MAINT"):
		return Offline
	}
	return Offline
}

// Operating maps HAProxy's health of a load balancer to Octavia operating
// statuses by object id (load balancer, listeners, pools, members).
// Objects administratively down are OFFLINE. A pool is ONLINE when every
// enabled member is ONLINE or NO_MONITOR, ERROR when none is, DEGRADED
// otherwise; the load balancer is DEGRADED when a listener or pool is not
// ONLINE, OFFLINE when no listener is up.
func Operating(s Spec, rows []StatRow) map[string]string {
	byKey := map[[2]string]string{}
	for _, r := range rows {
		byKey[[2]string{r.Proxy, r.Server}] = r.Status
	}
	out := map[string]string{}
	lbState := Online
	worse := func(st string) {
		if st != Online && st != NoMonitor && lbState == Online {
			lbState = Degraded
		}
	}
	for _, p := range s.Pools {
		if !p.AdminStateUp {
			out[p.ID] = Offline
			for _, mb := range p.Members {
				out[mb.ID] = Offline
			}
			continue
		}
		up, enabled := 0, 0
		for _, mb := range p.Members {
			st, ok := byKey[[2]string{p.ID, mb.ID}]
			switch {
			case !mb.AdminStateUp:
				out[mb.ID] = Offline
				continue
			case !ok:
				out[mb.ID] = Offline
			default:
				out[mb.ID] = memberStatus(st)
			}
			enabled++
			if out[mb.ID] == Online || out[mb.ID] == NoMonitor {
				up++
			}
		}
		switch {
		case enabled == 0 || up == enabled:
			out[p.ID] = Online
		case up == 0:
			out[p.ID] = Error
		default:
			out[p.ID] = Degraded
		}
		worse(out[p.ID])
	}
	open := 0
	for _, l := range s.Listeners {
		st := byKey[[2]string{l.ID, "FRONTEND"}]
		if l.AdminStateUp && st == "OPEN" {
			out[l.ID] = Online
			open++
		} else {
			out[l.ID] = Offline
		}
		worse(out[l.ID])
	}
	if len(s.Listeners) > 0 && open == 0 {
		lbState = Offline
	}
	out[s.ID] = lbState
	return out
}
