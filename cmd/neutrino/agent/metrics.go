package agent

// Prometheus metrics of one agent, served at GET /metrics on its API
// listener (docs/metrics.md lists every series).
//
// Each agent has its own registry, so tests that run several agents in
// one process scrape each one apart. Events (requests, applies, compiles,
// failovers) are counted as they happen; levels (Raft indexes, gossip
// members, flows and realized revisions per chassis) are read from the
// cluster and the controller at scrape time, so they cost nothing between
// scrapes. hashicorp/raft and memberlist report through go-metrics, one
// sink per process: its memberlist series (labelled with the node) and
// Raft's state transitions are bridged in too (goMetricsGatherer).

import (
	"context"
	"net/http"
	"strconv"
	"sync"
	"time"

	gometrics "github.com/hashicorp/go-metrics/compat"
	gmprom "github.com/hashicorp/go-metrics/compat/prometheus"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"neutrino/cluster"
	"neutrino/fsm"
)

// latencyBuckets (seconds) span a local read (sub-millisecond) to a write
// that waited through an election (seconds).
var latencyBuckets = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

// compileBuckets (seconds) span an incremental compile of one port
// (tens of microseconds) to a full compile of 150k flows (about a second).
var compileBuckets = prometheus.ExponentialBuckets(0.00005, 4, 10)

// agentMetrics are the metrics an agent counts as things happen.
type agentMetrics struct {
	reg       *prometheus.Registry
	requests  *prometheus.CounterVec
	latency   *prometheus.HistogramVec
	apply     prometheus.Histogram
	compile   *prometheus.HistogramVec
	failovers prometheus.Counter
}

func newAgentMetrics(a *Agent) *agentMetrics {
	m := &agentMetrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "neutrino_api_requests_total",
			Help: "API requests answered by this agent, by collection, method and status code.",
		}, []string{"resource", "method", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "neutrino_api_request_duration_seconds",
			Help:    "Time to answer an API request, by collection and method.",
			Buckets: latencyBuckets,
		}, []string{"resource", "method"}),
		apply: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "neutrino_raft_apply_duration_seconds",
			Help:    "Time from proposing a command on this leader to its result (committed and applied here).",
			Buckets: latencyBuckets,
		}),
		compile: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "neutrino_compile_duration_seconds",
			Help:    "Time to compile one chassis' flows on the leader, by kind (full or incremental).",
			Buckets: compileBuckets,
		}, []string{"kind"}),
		failovers: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "neutrino_gateway_failovers_total",
			Help: "Router gateways this replica saw move off a chassis that stopped being usable.",
		}),
	}
	m.reg.MustRegister(m.requests, m.latency, m.apply, m.compile, m.failovers, stateCollector{a})
	return m
}

// handler serves this agent's registry and the process' go-metrics bridge.
func (m *agentMetrics) handler() http.Handler {
	return promhttp.HandlerFor(prometheus.Gatherers{m.reg, goMetricsGatherer()},
		promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
}

// observeRequest is the API's RequestObserver.
func (m *agentMetrics) observeRequest(resource, method string, code int, took time.Duration) {
	m.requests.WithLabelValues(resource, method, codeLabel(code)).Inc()
	m.latency.WithLabelValues(resource, method).Observe(took.Seconds())
}

// observeCompile is the controller's OnCompile.
func (m *agentMetrics) observeCompile(took time.Duration, full bool) {
	kind := "incremental"
	if full {
		kind = "full"
	}
	m.compile.WithLabelValues(kind).Observe(took.Seconds())
}

// codeLabel formats a status code; the usual ones without allocating.
func codeLabel(code int) string {
	switch code {
	case http.StatusOK:
		return "200"
	case http.StatusCreated:
		return "201"
	case http.StatusNoContent:
		return "204"
	case http.StatusNotFound:
		return "404"
	}
	return strconv.Itoa(code)
}

var (
	goMetricsOnce sync.Once
	goMetricsReg  = prometheus.NewRegistry()
)

// goMetricsGatherer installs, once per process, a go-metrics sink that
// feeds goMetricsReg, and returns that registry. Only memberlist's series
// and Raft's state transitions pass the filter: Raft's per-entry timings
// would put a summary update on every commit, and
// neutrino_raft_apply_duration_seconds covers them.
func goMetricsGatherer() prometheus.Gatherer {
	goMetricsOnce.Do(func() {
		sink, err := gmprom.NewPrometheusSinkFrom(gmprom.PrometheusOpts{Registerer: goMetricsReg, Expiration: 5 * time.Minute})
		if err != nil {
			return
		}
		cfg := gometrics.DefaultConfig("")
		cfg.EnableHostname = false
		cfg.EnableRuntimeMetrics = false
		cfg.EnableServiceLabel = false
		cfg.FilterDefault = false
		cfg.AllowedPrefixes = []string{"memberlist.", "raft.state.", "raft.transition."}
		_, _ = gometrics.NewGlobal(cfg, sink)
	})
	return goMetricsReg
}

// stateCollector reads the levels at scrape time.
type stateCollector struct{ a *Agent }

var (
	descTerm = prometheus.NewDesc("neutrino_raft_term",
		"Current Raft term as this server sees it.", nil, nil)
	descCommit = prometheus.NewDesc("neutrino_raft_commit_index",
		"Highest Raft log index this server knows committed.", nil, nil)
	descApplied = prometheus.NewDesc("neutrino_raft_applied_index",
		"Highest Raft log index applied to this server's state machine.", nil, nil)
	descSnapshot = prometheus.NewDesc("neutrino_raft_last_snapshot_index",
		"Raft log index of this server's latest snapshot.", nil, nil)
	descLeader = prometheus.NewDesc("neutrino_raft_leader",
		"1 while this server is the Raft leader, else 0.", nil, nil)
	descLeaderChanges = prometheus.NewDesc("neutrino_raft_leader_changes_total",
		"Leaders this server learned of since it started (the first one included).", nil, nil)
	descRevision = prometheus.NewDesc("neutrino_state_revision",
		"Revision of this server's replica of the state.", nil, nil)
	descMembers = prometheus.NewDesc("neutrino_gossip_members",
		"Nodes this agent's gossip knows, by state.", []string{"state"}, nil)
	descHealth = prometheus.NewDesc("neutrino_gossip_health_score",
		"memberlist's Lifeguard health of this agent: 0 is healthy; failed probes raise it.", nil, nil)
	descDeaths = prometheus.NewDesc("neutrino_gossip_dead_events_total",
		"Members this agent's gossip declared dead (not left) since it started.", nil, nil)
	descMismatches = prometheus.NewDesc("neutrino_compile_mismatches_total",
		"Periodic checks on this server where the incremental compile differed from a full one (each a bug).", nil, nil)
	descFlows = prometheus.NewDesc("neutrino_chassis_flows",
		"Flows the leader wants on each chassis (its desired set).", []string{"chassis"}, nil)
	descBundles = prometheus.NewDesc("neutrino_flowsync_bundles_total",
		"OpenFlow bundles committed to each chassis while this server led.", []string{"chassis"}, nil)
	descSyncErrors = prometheus.NewDesc("neutrino_flowsync_errors_total",
		"Failed flow sync passes (retried) per chassis while this server led.", []string{"chassis"}, nil)
	descRealized = prometheus.NewDesc("neutrino_flowsync_realized_revision",
		"Highest state revision each chassis' switch acknowledged.", []string{"chassis"}, nil)
	descLag = prometheus.NewDesc("neutrino_flowsync_revision_lag",
		"State revision minus each chassis' realized revision (0 when in sync).", []string{"chassis"}, nil)
)

// memberStates are the gossip states always reported (0 when none).
var memberStates = []cluster.MemberStatus{cluster.StatusAlive, cluster.StatusDead, cluster.StatusLeft}

func (c stateCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descTerm, descCommit, descApplied, descSnapshot, descLeader,
		descLeaderChanges, descRevision, descMembers, descHealth, descDeaths, descMismatches, descFlows,
		descBundles, descSyncErrors, descRealized, descLag} {
		ch <- d
	}
}

func (c stateCollector) Collect(ch chan<- prometheus.Metric) {
	a := c.a
	if !a.up.Load() {
		return // the cluster is not started: nothing may ask it yet
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, labels...)
	}
	byState := map[cluster.MemberStatus]int{}
	for _, m := range a.cluster.Members() {
		byState[m.Status]++
	}
	for _, s := range memberStates {
		gauge(descMembers, float64(byState[s]), string(s))
	}
	gauge(descHealth, float64(a.cluster.HealthScore()))
	counter(descDeaths, float64(a.cluster.DeadEvents()))
	if !a.cfg.Server {
		return
	}
	st := a.cluster.Status()
	gauge(descTerm, float64(st.Term))
	gauge(descCommit, float64(st.CommitIndex))
	gauge(descApplied, float64(st.AppliedIndex))
	gauge(descSnapshot, float64(st.LastSnapshotIndex))
	gauge(descRevision, float64(st.Revision))
	leader := 0.0
	if a.cluster.IsLeader() {
		leader = 1
	}
	gauge(descLeader, leader)
	counter(descLeaderChanges, float64(a.cluster.LeaderChanges()))
	ctrl := a.Controller()
	if ctrl == nil {
		return
	}
	counter(descMismatches, float64(ctrl.CompileMismatches()))
	for _, cs := range ctrl.Status() {
		if cs.Round == 0 {
			continue // a connection only: this server runs no worker for it
		}
		gauge(descFlows, float64(cs.Flows), cs.Chassis)
		counter(descBundles, float64(cs.Sync.Bundles), cs.Chassis)
		counter(descSyncErrors, float64(cs.Sync.Errors), cs.Chassis)
		gauge(descRealized, float64(cs.Realized), cs.Chassis)
		lag := 0.0
		if st.Revision > cs.Realized {
			lag = float64(st.Revision - cs.Realized)
		}
		gauge(descLag, lag, cs.Chassis)
	}
}

// watchFailovers counts gateway failovers in this replica's state until
// ctx ends: a router whose active gateway chassis moved off a chassis
// that is no longer usable (down, deleted, no longer a gateway). A move
// back to a preferred chassis (preemption) is not a failover.
func (a *Agent) watchFailovers(ctx context.Context) {
	var active map[string]string
	var portsIndex uint64
	for {
		v := a.fsm.State().Read()
		watch := v.RevisionWatch()
		if idx := v.TableIndex(fsm.TablePorts); active == nil || idx != portsIndex {
			portsIndex = idx
			next := map[string]string{}
			for _, r := range v.Routers() {
				if r.Gateway == nil {
					continue
				}
				host := v.ActiveGatewayChassis(r.ID)
				next[r.ID] = host
				if prev := active[r.ID]; prev != "" && host != prev && !v.GatewayUsable(prev) {
					a.metrics.failovers.Inc()
				}
			}
			active = next
		}
		select {
		case <-ctx.Done():
			return
		case <-watch:
		case <-a.fsm.State().AbandonCh():
		}
	}
}
