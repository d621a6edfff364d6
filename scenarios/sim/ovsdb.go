package sim

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"github.com/cenkalti/rpc2"
	"github.com/cenkalti/rpc2/jsonrpc"

	"github.com/go-logr/logr"
	"github.com/ovn-kubernetes/libovsdb/cache"
	"github.com/ovn-kubernetes/libovsdb/client"
	"github.com/ovn-kubernetes/libovsdb/database/inmemory"
	"github.com/ovn-kubernetes/libovsdb/model"
	"github.com/ovn-kubernetes/libovsdb/ovsdb"
	"github.com/ovn-kubernetes/libovsdb/server"

	"neutrino/southbound/ovsdb/vswitchd"
)

// dbServer is a chassis' ovsdb-server: libovsdb's server over an
// in-memory database with the vswitch schema the controller uses, behind
// our own listener and RPC dispatch (front).
type dbServer struct {
	srv      *server.OvsdbServer
	ln       net.Listener
	endpoint string // what the chassis announces: "tcp:IP:PORT" or "unix:PATH"
	dir      string // temporary directory of a unix socket, removed on close

	// order makes a monitor's initial snapshot and a transaction exclusive.
	// libovsdb's server sends a transaction's update to the monitors it
	// knows and only then commits it: a monitor registered in between gets
	// a snapshot without the transaction and never its update, so the
	// client's cache misses rows, a later update of such a row is "cache
	// inconsistent" and the client drops its session, reconnects and
	// fetches everything again. At 100 chassis, with the leader's sessions
	// connecting while the simulated ovs-vswitchd numbers interfaces, this
	// turned into reconnect storms (README, "Simulator").
	order sync.Mutex

	mu     sync.Mutex
	conns  map[net.Conn]bool
	closed bool
}

// startDB serves an empty Open_vSwitch database on listen ("tcp:IP:0"
// picks a free port, "unix:" a socket in a new temporary directory).
func startDB(listen string) (*dbServer, error) {
	dbModel, err := vswitchd.FullDatabaseModel()
	if err != nil {
		return nil, err
	}
	schema := vswitchd.Schema()
	logger := logr.Discard()
	db := inmemory.NewDatabase(map[string]model.ClientDBModel{schema.Name: dbModel}, &logger)
	dm, errs := model.NewDatabaseModel(schema, dbModel)
	if len(errs) > 0 {
		return nil, fmt.Errorf("sim: database model: %v", errs)
	}
	srv, err := server.NewOvsdbServer(db, &logger, dm)
	if err != nil {
		return nil, fmt.Errorf("sim: ovsdb server: %w", err)
	}
	d := &dbServer{srv: srv, conns: map[net.Conn]bool{}}
	network, addr, _ := strings.Cut(listen, ":")
	switch network {
	case "unix":
		if d.dir, err = os.MkdirTemp("", "simdb"); err != nil {
			return nil, err
		}
		addr = filepath.Join(d.dir, "db.sock")
	case "tcp":
	default:
		return nil, fmt.Errorf("sim: ovsdb listen %q: want tcp:IP:PORT or unix:DIR", listen)
	}
	if d.ln, err = net.Listen(network, addr); err != nil {
		d.close()
		return nil, fmt.Errorf("sim: ovsdb listen %s:%s: %w", network, addr, err)
	}
	d.endpoint = network + ":" + d.ln.Addr().String()
	go d.serve(d.front())
	return d, nil
}

// front is the RPC dispatch of libovsdb's server (its methods, the same
// names) with the transact/monitor ordering above.
func (d *dbServer) front() *rpc2.Server {
	o := d.srv
	r := rpc2.NewServer()
	r.Handle("list_dbs", o.ListDatabases)
	r.Handle("get_schema", o.GetSchema)
	r.Handle("transact", func(c *rpc2.Client, args []json.RawMessage, reply *[]*ovsdb.OperationResult) error {
		d.order.Lock()
		defer d.order.Unlock()
		return o.Transact(c, args, reply)
	})
	r.Handle("cancel", o.Cancel)
	r.Handle("monitor", func(c *rpc2.Client, args []json.RawMessage, reply *ovsdb.TableUpdates) error {
		d.order.Lock()
		defer d.order.Unlock()
		return o.Monitor(c, args, reply)
	})
	r.Handle("monitor_cond", func(c *rpc2.Client, args []json.RawMessage, reply *ovsdb.TableUpdates2) error {
		d.order.Lock()
		defer d.order.Unlock()
		return o.MonitorCond(c, args, reply)
	})
	r.Handle("monitor_cond_since", func(c *rpc2.Client, args []json.RawMessage, reply *ovsdb.MonitorCondSinceReply) error {
		d.order.Lock()
		defer d.order.Unlock()
		return o.MonitorCondSince(c, args, reply)
	})
	r.Handle("monitor_cancel", o.MonitorCancel)
	r.Handle("steal", o.Steal)
	r.Handle("unlock", o.Unlock)
	r.Handle("echo", o.Echo)
	return r
}

// serve accepts connections until close; every connection is closed on
// close, as a crashed ovsdb-server's are.
func (d *dbServer) serve(r *rpc2.Server) {
	for {
		conn, err := d.ln.Accept()
		if err != nil {
			return
		}
		d.mu.Lock()
		if d.closed {
			d.mu.Unlock()
			conn.Close()
			return
		}
		d.conns[conn] = true
		d.mu.Unlock()
		go func() {
			r.ServeCodec(jsonrpc.NewJSONCodec(conn))
			d.mu.Lock()
			delete(d.conns, conn)
			d.mu.Unlock()
		}()
	}
}

func (d *dbServer) close() {
	d.mu.Lock()
	d.closed = true
	for c := range d.conns {
		c.Close()
	}
	d.mu.Unlock()
	if d.ln != nil {
		d.ln.Close()
	}
	d.srv.Close()
	if d.dir != "" {
		os.RemoveAll(d.dir)
	}
}

// vswitchd is the simulated ovs-vswitchd's database side: a client of the
// chassis' own server that creates the root row, numbers every interface
// (ofport) as ovs-vswitchd does, and reports br-int's datapath id and
// controller targets to the switch.
type dbAgent struct {
	ovs  client.Client
	log  *slog.Logger
	kick chan struct{}
	next int // next ofport to hand out
}

func connectVswitchd(ctx context.Context, endpoint, chassis string, log *slog.Logger) (*dbAgent, error) {
	dbModel, err := vswitchd.FullDatabaseModel()
	if err != nil {
		return nil, err
	}
	logger := logr.Discard()
	ovs, err := client.NewOVSDBClient(dbModel, client.WithEndpoint(endpoint), client.WithLogger(&logger))
	if err != nil {
		return nil, err
	}
	if err := ovs.Connect(ctx); err != nil {
		return nil, fmt.Errorf("sim: connect to own ovsdb: %w", err)
	}
	v := &dbAgent{ovs: ovs, log: log, kick: make(chan struct{}, 1), next: 1}
	ovs.Cache().AddEventHandler(&cache.EventHandlerFuncs{
		AddFunc:    func(string, model.Model) { v.wake() },
		UpdateFunc: func(string, model.Model, model.Model) { v.wake() },
		DeleteFunc: func(string, model.Model) { v.wake() },
	})
	if _, err := ovs.MonitorAll(ctx); err != nil {
		ovs.Close()
		return nil, fmt.Errorf("sim: monitor own ovsdb: %w", err)
	}
	// The root row, as `ovs-vsctl init` and the system-id script leave it.
	root := &vswitchd.OpenvSwitch{UUID: "root", ExternalIDs: map[string]string{"system-id": chassis, "hostname": chassis}}
	ops, err := ovs.Create(root)
	if err == nil {
		err = transact(ctx, ovs, ops)
	}
	if err != nil {
		ovs.Close()
		return nil, fmt.Errorf("sim: create root row: %w", err)
	}
	return v, nil
}

func (v *dbAgent) wake() {
	select {
	case v.kick <- struct{}{}:
	default:
	}
}

func transact(ctx context.Context, ovs client.Client, ops []ovsdb.Operation) error {
	res, err := ovs.Transact(ctx, ops...)
	if err != nil {
		return err
	}
	if _, err := ovsdb.CheckOperationResults(res, ops); err != nil {
		return err
	}
	return nil
}

// bridgeState is what the switch needs from the database.
type bridgeState struct {
	dpid    uint64
	targets []string
}

// reconcile numbers unnumbered interfaces and returns br-int's state.
func (v *dbAgent) reconcile(ctx context.Context, bridge string) (bridgeState, error) {
	var st bridgeState
	var ifaces []vswitchd.Interface
	if err := v.ovs.List(ctx, &ifaces); err != nil {
		return st, err
	}
	used := map[int]bool{}
	for _, i := range ifaces {
		if i.Ofport != nil && *i.Ofport > 0 {
			used[*i.Ofport] = true
		}
	}
	var ops []ovsdb.Operation
	for _, i := range ifaces {
		if i.Ofport != nil && *i.Ofport > 0 {
			continue
		}
		n := 65534 // OFPP_LOCAL, the bridge's own internal interface
		if i.Name != bridge || i.Type != "internal" {
			for used[v.next] {
				v.next++
			}
			n = v.next
			used[n] = true
		}
		row := i
		row.Ofport = &n
		op, err := v.ovs.Where(&row).Update(&row, &row.Ofport)
		if err != nil {
			return st, err
		}
		ops = append(ops, op...)
	}
	if len(ops) > 0 {
		if err := transact(ctx, v.ovs, ops); err != nil {
			return st, fmt.Errorf("number interfaces: %w", err)
		}
	}
	var brs []vswitchd.Bridge
	if err := v.ovs.WhereCache(func(b *vswitchd.Bridge) bool { return b.Name == bridge }).List(ctx, &brs); err != nil {
		return st, err
	}
	if len(brs) == 0 {
		return st, nil
	}
	br := brs[0]
	if s := br.OtherConfig["datapath-id"]; s != "" {
		st.dpid, _ = strconv.ParseUint(s, 16, 64)
	}
	for _, id := range br.Controller {
		ctl := &vswitchd.Controller{UUID: id}
		if err := v.ovs.Get(ctx, ctl); err == nil {
			st.targets = append(st.targets, ctl.Target)
		}
	}
	return st, nil
}

// plug adds an interface with external_ids:iface-id to the bridge, as Nova's
// os-vif does when it plugs a VM's port.
func (v *dbAgent) plug(ctx context.Context, bridge, name, portID string) error {
	var brs []vswitchd.Bridge
	if err := v.ovs.WhereCache(func(b *vswitchd.Bridge) bool { return b.Name == bridge }).List(ctx, &brs); err != nil {
		return err
	}
	if len(brs) == 0 {
		return fmt.Errorf("sim: no bridge %s yet", bridge)
	}
	iface := &vswitchd.Interface{UUID: "iface", Name: name, ExternalIDs: map[string]string{"iface-id": portID, "attached-mac": ""}}
	port := &vswitchd.Port{UUID: "port", Name: name, Interfaces: []string{"iface"}}
	ops, err := v.ovs.Create(iface)
	if err != nil {
		return err
	}
	pops, err := v.ovs.Create(port)
	if err != nil {
		return err
	}
	ops = append(ops, pops...)
	br := brs[0]
	mops, err := v.ovs.Where(&br).Mutate(&br, model.Mutation{Field: &br.Ports, Mutator: ovsdb.MutateOperationInsert, Value: []string{"port"}})
	if err != nil {
		return err
	}
	return transact(ctx, v.ovs, append(ops, mops...))
}

// unplug removes the interface of a port from the bridge.
func (v *dbAgent) unplug(ctx context.Context, bridge, name string) error {
	var brs []vswitchd.Bridge
	if err := v.ovs.WhereCache(func(b *vswitchd.Bridge) bool { return b.Name == bridge }).List(ctx, &brs); err != nil {
		return err
	}
	var ports []vswitchd.Port
	if err := v.ovs.WhereCache(func(p *vswitchd.Port) bool { return p.Name == name }).List(ctx, &ports); err != nil {
		return err
	}
	if len(brs) == 0 || len(ports) == 0 {
		return nil
	}
	br := brs[0]
	ops, err := v.ovs.Where(&br).Mutate(&br, model.Mutation{Field: &br.Ports, Mutator: ovsdb.MutateOperationDelete, Value: []string{ports[0].UUID}})
	if err != nil {
		return err
	}
	return transact(ctx, v.ovs, ops)
}

// ofports maps interface names to their ofport.
func (v *dbAgent) ofports(ctx context.Context) (map[string]uint32, map[string]string, error) {
	var ifaces []vswitchd.Interface
	if err := v.ovs.List(ctx, &ifaces); err != nil {
		return nil, nil, err
	}
	byName := map[string]uint32{}
	ids := map[string]string{} // iface-id -> interface name
	for _, i := range ifaces {
		if i.Ofport != nil && *i.Ofport > 0 {
			byName[i.Name] = uint32(*i.Ofport)
		}
		if id := i.ExternalIDs["iface-id"]; id != "" {
			ids[id] = i.Name
		}
	}
	return byName, ids, nil
}
