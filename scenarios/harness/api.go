package harness

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// APIHTTP is the client of raw API calls.
var APIHTTP = &http.Client{Timeout: 60 * time.Second, Transport: Transport(0)}

// quickHTTP is for status polls: a cut-off server must not stall them.
var quickHTTP = &http.Client{Timeout: 3 * time.Second, Transport: Transport(0)}

// APIResult is one raw API call.
type APIResult struct {
	Status int
	Header http.Header
	Body   []byte
	Took   time.Duration
}

// Call sends a JSON request (body may be nil) and returns the answer.
func Call(method, url string, header map[string]string, body any) (APIResult, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return APIResult{}, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		return APIResult{}, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	for k, v := range header {
		req.Header.Set(k, v)
	}
	start := time.Now()
	resp, err := APIHTTP.Do(req)
	if err != nil {
		return APIResult{}, fmt.Errorf("%s %s: %w", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	r := APIResult{Status: resp.StatusCode, Header: resp.Header, Body: b, Took: time.Since(start)}
	if err != nil {
		return r, fmt.Errorf("%s %s: read body: %w", method, url, err)
	}
	return r, nil
}

// MustCall is Call that fails tb unless the status is want.
func (e *Env) MustCall(want int, method, url string, header map[string]string, body any) APIResult {
	e.TB.Helper()
	r, err := Call(method, url, header, body)
	if err != nil {
		e.TB.Fatal(err)
	}
	if r.Status != want {
		e.TB.Fatalf("%s %s: %d %s, want %d", method, url, r.Status, strings.TrimSpace(string(r.Body)), want)
	}
	return r
}

// ClusterView is GET /v1/cluster of one server.
type ClusterView struct {
	Node         string `json:"node"`
	Leader       string `json:"leader"`
	Term         uint64 `json:"term"`
	CommitIndex  uint64 `json:"commit_index"`
	AppliedIndex uint64 `json:"applied_index"`
	Servers      []struct {
		Name  string `json:"name"`
		State string `json:"state"`
	} `json:"servers"`
}

// API is a server's API URL now: a driver may give a restarted server
// another one (the lab does when its port was taken meanwhile), so it
// comes from Driver.Endpoints, not from the Lab of Up.
func (e *Env) API(server string) string {
	eps := e.D.Endpoints()
	for i, s := range e.Servers() {
		if s == server && i < len(eps) {
			return eps[i]
		}
	}
	return ""
}

// Cluster asks one server for its Raft view.
func (e *Env) Cluster(server string) (ClusterView, error) {
	var v ClusterView
	api := e.API(server)
	if api == "" {
		return v, fmt.Errorf("no server %s", server)
	}
	resp, err := quickHTTP.Get(api + "/v1/cluster")
	if err != nil {
		return v, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return v, fmt.Errorf("%s: GET /v1/cluster: %s", server, resp.Status)
	}
	return v, json.NewDecoder(resp.Body).Decode(&v)
}

// LeaderOf waits until every server of among reports the same leader, one
// of among, and returns it with that server's term.
func (e *Env) LeaderOf(among []string, timeout time.Duration) (string, uint64) {
	e.TB.Helper()
	var leader string
	var term uint64
	Poll(e.TB, timeout, fmt.Sprintf("%v agree on a leader among them", among), func() error {
		leader, term = "", 0
		for _, s := range among {
			v, err := e.Cluster(s)
			if err != nil {
				return err
			}
			if v.Leader == "" || (leader != "" && v.Leader != leader) {
				return fmt.Errorf("%s sees leader %q, others %q", s, v.Leader, leader)
			}
			leader = v.Leader
			if v.Node == leader {
				term = v.Term
			}
		}
		if !slices.Contains(among, leader) {
			return fmt.Errorf("leader %s is not among %v", leader, among)
		}
		if term == 0 {
			return fmt.Errorf("leader %s did not report its term", leader)
		}
		return nil
	})
	return leader, term
}

// Without returns xs without x.
func Without(xs []string, x string) []string {
	var out []string
	for _, y := range xs {
		if y != x {
			out = append(out, y)
		}
	}
	return out
}

// ServerMetric sums one metric (every series: counter or gauge) over the
// servers' /metrics, parsed with Prometheus' own text parser: e.g.
// neutrino_gossip_dead_events_total, the false deaths a stalled machine
// causes. A server that does not answer is an error.
func (e *Env) ServerMetric(name string) (float64, error) {
	var sum float64
	for _, s := range e.Servers() {
		resp, err := quickHTTP.Get(e.API(s) + "/metrics")
		if err != nil {
			return 0, fmt.Errorf("%s: %w", s, err)
		}
		if resp.StatusCode != http.StatusOK {
			resp.Body.Close()
			return 0, fmt.Errorf("%s: GET /metrics: %s", s, resp.Status)
		}
		parser := expfmt.NewTextParser(model.UTF8Validation)
		families, err := parser.TextToMetricFamilies(resp.Body)
		resp.Body.Close()
		if err != nil {
			return 0, fmt.Errorf("%s: /metrics: %w", s, err)
		}
		for _, m := range families[name].GetMetric() {
			sum += m.GetCounter().GetValue() + m.GetGauge().GetValue()
		}
	}
	return sum, nil
}
