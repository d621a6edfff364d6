package ovsdb

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/go-logr/logr"
	"github.com/ovn-kubernetes/libovsdb/client"
	"github.com/ovn-kubernetes/libovsdb/model"
	libovsdb "github.com/ovn-kubernetes/libovsdb/ovsdb"

	"neutrino/southbound/ovsdb/vswitchd"
)

// ErrNoRoot means the database has no Open_vSwitch row yet (nothing ran
// `ovs-vsctl init`); a chassis in that state cannot be bootstrapped.
var ErrNoRoot = errors.New("ovsdb: no Open_vSwitch row")

// Client is a monitored OVSDB session to one chassis' ovsdb-server. It is
// safe for concurrent use.
type Client struct {
	endpoint string
	ovs      client.Client
	log      *slog.Logger

	// ops counts write operations sent, for callers and tests that check
	// that a converged chassis costs no writes.
	ops atomic.Uint64
	// events counts cache changes (every table), so a caller can tell that
	// nothing it read from the cache can have changed since it last looked.
	events atomic.Uint64

	resync func() time.Duration // Config.Resync

	mu        sync.Mutex
	wakeups   []chan struct{} // binding watchers, poked on cache events
	closed    chan struct{}
	closeOnce sync.Once
}

// Config tunes Connect; the zero value is usable.
type Config struct {
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// ConnectTimeout bounds each (re)connection attempt; default 5 s.
	ConnectTimeout time.Duration
	// MaxBackoff caps the wait between reconnection attempts; default 1 s,
	// so a restarted ovsdb-server is picked up within about a second.
	MaxBackoff time.Duration
	// TLS is the client side of an "ssl:" endpoint (our certificate, how
	// the server's is checked); required for one, unused otherwise.
	TLS *tls.Config
	// Resync is how long a watch (WatchBindings, WatchOwnedPorts) waits
	// for its next periodic pass, which backs up the cache's events; nil
	// waits 10 s. The controller stretches it at many chassis
	// (controller.Controller.periodic).
	Resync func() time.Duration
}

// Connect opens a session to endpoint ("unix:/path", "tcp:IP:PORT" or
// "ssl:IP:PORT" with cfg.TLS),
// monitors the tables the controller needs and returns once the cache holds
// the server's current contents. The session reconnects by itself
// (rebuilding the cache) until Close; the first connection is not retried,
// so a caller whose chassis may not be up yet retries Connect.
func Connect(ctx context.Context, endpoint string, cfg Config) (*Client, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.ConnectTimeout == 0 {
		cfg.ConnectTimeout = 5 * time.Second
	}
	if cfg.MaxBackoff == 0 {
		cfg.MaxBackoff = time.Second
	}
	log := cfg.Logger.With("component", "ovsdb", "endpoint", endpoint)

	dbModel, err := vswitchd.FullDatabaseModel()
	if err != nil {
		return nil, fmt.Errorf("ovsdb: model: %w", err)
	}
	bo := backoff.NewExponentialBackOff()
	bo.InitialInterval = 100 * time.Millisecond
	bo.MaxInterval = cfg.MaxBackoff
	bo.MaxElapsedTime = 0 // a chassis' switch may be down for long; keep trying
	logger := logr.FromSlogHandler(log.Handler())
	opts := []client.Option{
		client.WithEndpoint(endpoint),
		client.WithReconnect(cfg.ConnectTimeout, bo),
		client.WithLogger(&logger),
	}
	if strings.HasPrefix(endpoint, "ssl:") {
		if cfg.TLS == nil {
			return nil, fmt.Errorf("ovsdb %s: an ssl: endpoint needs a TLS configuration (--tls-*)", endpoint)
		}
		opts = append(opts, client.WithTLSConfig(cfg.TLS))
	}
	ovs, err := client.NewOVSDBClient(dbModel, opts...)
	if err != nil {
		return nil, fmt.Errorf("ovsdb %s: %w", endpoint, err)
	}
	if err := ovs.Connect(ctx); err != nil {
		return nil, fmt.Errorf("ovsdb %s: connect: %w", endpoint, err)
	}
	c := &Client{endpoint: endpoint, ovs: ovs, log: log, closed: make(chan struct{}), resync: cfg.Resync}
	if c.resync == nil {
		c.resync = func() time.Duration { return resyncInterval }
	}
	ovs.Cache().AddEventHandler(&eventHandler{c: c})

	// Only the columns the controller reads: Interface and Controller carry
	// statistics/status that ovs-vswitchd rewrites every few seconds, which
	// would otherwise wake every watcher on every chassis for nothing.
	var (
		ovsRoot vswitchd.OpenvSwitch
		br      vswitchd.Bridge
		port    vswitchd.Port
		iface   vswitchd.Interface
		ctl     vswitchd.Controller
	)
	mon := ovs.NewMonitor(
		client.WithTable(&ovsRoot, &ovsRoot.Bridges, &ovsRoot.ExternalIDs, &ovsRoot.CurCfg, &ovsRoot.NextCfg),
		client.WithTable(&br, &br.Name, &br.Ports, &br.Controller, &br.DatapathType, &br.FailMode,
			&br.Protocols, &br.OtherConfig, &br.ExternalIDs),
		client.WithTable(&port, &port.Name, &port.Interfaces, &port.ExternalIDs),
		client.WithTable(&iface, &iface.Name, &iface.Type, &iface.Options, &iface.ExternalIDs,
			&iface.Ofport, &iface.Error),
		client.WithTable(&ctl, &ctl.Target, &ctl.MaxBackoff, &ctl.ConnectionMode, &ctl.InactivityProbe,
			&ctl.ExternalIDs, &ctl.IsConnected),
	)
	if _, err := ovs.Monitor(ctx, mon); err != nil {
		ovs.Close()
		return nil, fmt.Errorf("ovsdb %s: monitor: %w", endpoint, err)
	}
	log.Debug("connected")
	return c, nil
}

// Close ends the session and stops its binding watchers.
func (c *Client) Close() {
	c.closeOnce.Do(func() {
		close(c.closed)
		c.ovs.Close()
		c.log.Debug("closed")
	})
}

// Endpoint returns the endpoint the client was connected to.
func (c *Client) Endpoint() string { return c.endpoint }

// LibOVSDB exposes the underlying libovsdb client (cache, op builders) for
// table helpers outside this package; writes must still go through
// TransactAndCheck.
func (c *Client) LibOVSDB() client.Client { return c.ovs }

// WriteOps returns how many write operations this client has transacted.
func (c *Client) WriteOps() uint64 { return c.ops.Load() }

// Events returns how many changes the cache has taken (rows added,
// updated or deleted in any monitored table, a reconnection's reload
// included). Equal counts before and after a read of the cache mean the
// cache was the same throughout, and the same as at the earlier count.
func (c *Client) Events() uint64 { return c.events.Load() }

// TransactAndCheck sends ops as one transaction and checks every
// operation's result: libovsdb's Transact reports only transport errors, a
// failed constraint or a failed wait shows up only in the results. No ops
// is a no-op that sends nothing.
func (c *Client) TransactAndCheck(ctx context.Context, ops ...libovsdb.Operation) ([]libovsdb.OperationResult, error) {
	if len(ops) == 0 {
		return nil, nil
	}
	if _, ok := ctx.Deadline(); !ok {
		// A transaction on a dead session blocks until reconnection: never
		// let one hang forever.
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
	}
	for _, op := range ops {
		if op.Op != libovsdb.OperationWait && op.Op != libovsdb.OperationAssert &&
			op.Op != libovsdb.OperationSelect && op.Op != libovsdb.OperationComment {
			c.ops.Add(1)
		}
	}
	res, err := c.ovs.Transact(ctx, ops...)
	if err != nil {
		return nil, fmt.Errorf("ovsdb %s: transact: %w", c.endpoint, err)
	}
	opErrs, err := libovsdb.CheckOperationResults(res, ops)
	if err != nil {
		errs := []error{err}
		for _, e := range opErrs {
			errs = append(errs, fmt.Errorf("%s on %s: %w", e.Operation().Op, e.Operation().Table, e))
		}
		return res, fmt.Errorf("ovsdb %s: transact: %w", c.endpoint, errors.Join(errs...))
	}
	return res, nil
}

// SystemID returns Open_vSwitch external_ids:system-id, the chassis name
// OVS tools agree on.
func (c *Client) SystemID(ctx context.Context) (string, error) {
	root, err := c.root(ctx)
	if err != nil {
		return "", err
	}
	return root.ExternalIDs["system-id"], nil
}

func (c *Client) root(ctx context.Context) (*vswitchd.OpenvSwitch, error) {
	var rows []vswitchd.OpenvSwitch
	if err := c.ovs.List(ctx, &rows); err != nil {
		return nil, fmt.Errorf("ovsdb %s: list Open_vSwitch: %w", c.endpoint, err)
	}
	if len(rows) == 0 {
		return nil, ErrNoRoot
	}
	return &rows[0], nil
}

// converge is the level-triggered loop behind every Ensure: plan the
// operations that move the cached state to the desired one, transact them,
// then wait until the cache shows the result, because libovsdb's cache is
// not read-your-writes and planning again on a stale cache would duplicate
// rows. It returns the number of write operations sent (0 when converged).
func (c *Client) converge(ctx context.Context, what string, plan func() ([]libovsdb.Operation, error)) (int, error) {
	total := 0
	for attempt := 0; attempt < 5; attempt++ {
		ops, err := plan()
		if err != nil {
			return total, fmt.Errorf("%s: %w", what, err)
		}
		if len(ops) == 0 {
			return total, nil
		}
		if _, err := c.TransactAndCheck(ctx, ops...); err != nil {
			return total, fmt.Errorf("%s: %w", what, err)
		}
		total += len(ops)
		c.log.Debug("transacted", "what", what, "ops", len(ops))
		err = waitFor(ctx, 2*time.Second, func() bool {
			next, err := plan()
			return err == nil && len(next) == 0
		})
		if err == nil {
			return total, nil
		}
		if ctx.Err() != nil {
			return total, fmt.Errorf("%s: waiting for the cache: %w", what, ctx.Err())
		}
		// Someone else keeps changing the same rows, or our write was
		// undone: plan again from what the cache says now.
		c.log.Warn("not converged after write, retrying", "what", what, "attempt", attempt)
	}
	return total, fmt.Errorf("%s: not converged after 5 attempts", what)
}

// waitFor polls cond until true, timeout passes or ctx ends.
func waitFor(ctx context.Context, timeout time.Duration, cond func() bool) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
	return nil
}

// eventHandler turns cache events into wake-ups for the binding watchers;
// libovsdb requires handlers to return quickly.
type eventHandler struct{ c *Client }

// OnAdd, OnUpdate and OnDelete implement cache.EventHandler.
func (h *eventHandler) OnAdd(table string, _ model.Model)       { h.c.wake(table) }
func (h *eventHandler) OnUpdate(table string, _, _ model.Model) { h.c.wake(table) }
func (h *eventHandler) OnDelete(table string, _ model.Model)    { h.c.wake(table) }

func (c *Client) wake(table string) {
	c.events.Add(1)
	switch table {
	case vswitchd.InterfaceTable, vswitchd.PortTable, vswitchd.BridgeTable:
	default:
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, ch := range c.wakeups {
		select {
		case ch <- struct{}{}:
		default: // a wake-up is already pending; the watcher recomputes everything
		}
	}
}
