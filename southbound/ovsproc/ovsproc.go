// Package ovsproc runs one Open vSwitch instance (ovsdb-server plus
// ovs-vswitchd with the userspace netdev datapath) inside a network
// namespace. Tests and the multi-node lab use it to get a real switch per
// chassis on one machine.
//
// Every daemon gets an explicit --pidfile, --unixctl and --log-file and
// OVS_RUNDIR points at the instance's directory, so instances never share a
// socket, and Stop kills exactly the processes it started, by PID. The
// netdev datapath leaves tap devices behind when ovs-vswitchd exits; they
// live in the instance's namespace and go away with it.
package ovsproc

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"neutrino/southbound/hostnet"
)

// SchemaPath is where Debian's openvswitch-common ships the vswitchd schema.
const SchemaPath = "/usr/share/openvswitch/vswitch.ovsschema"

// Binaries are the programs an instance needs; Available reports on them.
var Binaries = []string{"ovsdb-server", "ovsdb-tool", "ovsdb-client", "ovs-vswitchd", "ovs-vsctl", "ovs-ofctl", "ovs-appctl", "ip", "ethtool"}

// maxSocketPath keeps unix socket paths under sun_path's 108 bytes with room
// for the longest name we put in the rundir (<bridge>.mgmt, bridge <= 15).
const maxSocketPath = 108 - len("/ovs-vswitchd.ctl") - 8

// Available returns nil when this process can run instances (root, binaries
// and schema present), or an error saying what is missing; tests skip on it.
func Available() error {
	if os.Geteuid() != 0 {
		return errors.New("ovsproc: needs root (network namespaces, ovs-vswitchd)")
	}
	var missing []string
	for _, b := range Binaries {
		if _, err := exec.LookPath(b); err != nil {
			missing = append(missing, b)
		}
	}
	if _, err := os.Stat(SchemaPath); err != nil {
		missing = append(missing, SchemaPath)
	}
	if len(missing) > 0 {
		return fmt.Errorf("ovsproc: missing %s (run 'make deps')", strings.Join(missing, ", "))
	}
	return nil
}

// Options configures an instance.
type Options struct {
	// Name identifies the instance (logs, Open_vSwitch external_ids:system-id).
	Name string
	// Namespace to run in; created if missing (and then deleted by Stop).
	// Defaults to Name. Must be unique among concurrently running instances.
	Namespace string
	// Dir holds the rundir sockets, the database file and the logs. If empty
	// a short temporary directory is created and Stop removes it; a
	// caller-supplied Dir is left in place (logs survive for inspection).
	Dir string
	// DBRemotes are extra ovsdb-server --remote values (e.g. ptcp:6640:IP,
	// opened inside the namespace); the unix socket is always there.
	DBRemotes []string
	// DBSSL, when set, gives ovsdb-server the key, certificate and CA
	// certificate its pssl: remotes (in DBRemotes) use; OVS requires every
	// client of such a remote to present a certificate of that CA.
	DBSSL *SSLFiles
	// KeepDB starts on the database file already in Dir, if there is one,
	// instead of a fresh one: bridges and ports come back (a machine
	// rebooting). The lab's revive uses it.
	KeepDB bool
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

// SSLFiles are the PEM files of an OVS daemon's TLS side.
type SSLFiles struct{ Key, Cert, CA string }

// Instance is one running OVS. Its methods are safe for concurrent use.
type Instance struct {
	name      string
	namespace string
	dir       string
	dbRemotes []string
	dbSSL     *SSLFiles
	ownNS     bool
	ownDir    bool
	log       *slog.Logger

	mu       sync.Mutex
	db       *daemon
	vswitchd *daemon
	vms      map[string]*VM
	stopped  bool
}

// daemon is one child process and the channel closed when it exits.
type daemon struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}
}

// Start creates a fresh database from the schema (or, with KeepDB, reuses
// the one in Dir), starts ovsdb-server and ovs-vswitchd in the namespace
// and returns once ovs-vswitchd has applied the database (or ctx ends). On failure everything started is undone.
func Start(ctx context.Context, o Options) (_ *Instance, err error) {
	if err := Available(); err != nil {
		return nil, err
	}
	if o.Name == "" {
		return nil, errors.New("ovsproc: Options.Name is required")
	}
	i := &Instance{
		name:      o.Name,
		namespace: o.Namespace,
		dir:       o.Dir,
		dbRemotes: o.DBRemotes,
		dbSSL:     o.DBSSL,
		log:       o.Logger,
		vms:       map[string]*VM{},
	}
	if i.namespace == "" {
		i.namespace = o.Name
	}
	if i.log == nil {
		i.log = slog.Default()
	}
	i.log = i.log.With("component", "ovsproc", "instance", o.Name)
	defer func() {
		if err != nil {
			if stopErr := i.Stop(); stopErr != nil {
				i.log.Warn("cleanup after failed start", "err", stopErr)
			}
		}
	}()

	if i.dir == "" {
		// Short on purpose: unix socket paths are limited to 108 bytes.
		if i.dir, err = os.MkdirTemp("", "ovs-"+o.Name+"-"); err != nil {
			return nil, fmt.Errorf("ovsproc %s: %w", o.Name, err)
		}
		i.ownDir = true
	} else if err := os.MkdirAll(i.dir, 0o755); err != nil {
		return nil, fmt.Errorf("ovsproc %s: %w", o.Name, err)
	}
	if i.dir, err = filepath.Abs(i.dir); err != nil {
		return nil, fmt.Errorf("ovsproc %s: %w", o.Name, err)
	}
	if len(i.dir) > maxSocketPath {
		return nil, fmt.Errorf("ovsproc %s: dir %q too long for unix socket paths (max %d)", o.Name, i.dir, maxSocketPath)
	}

	if !hostnet.NamespaceExists(i.namespace) {
		if err := hostnet.CreateNamespace(ctx, i.namespace); err != nil {
			return nil, fmt.Errorf("ovsproc %s: %w", o.Name, err)
		}
		i.ownNS = true
	}

	dbFile := i.DBFile()
	if _, statErr := os.Stat(dbFile); !o.KeepDB || statErr != nil {
		_ = os.Remove(dbFile)
		if _, err := run(ctx, nil, "ovsdb-tool", "create", dbFile, SchemaPath); err != nil {
			return nil, fmt.Errorf("ovsproc %s: create db: %w", o.Name, err)
		}
	}
	if err := i.StartDB(ctx); err != nil {
		return nil, err
	}
	// system-id names the chassis; --no-wait because vswitchd is not up yet.
	if _, err := i.Vsctl(ctx, "--no-wait", "init", "--", "set", "Open_vSwitch", ".",
		"external_ids:system-id="+o.Name); err != nil {
		return nil, fmt.Errorf("ovsproc %s: init db: %w", o.Name, err)
	}
	if err := i.StartVswitchd(ctx); err != nil {
		return nil, err
	}
	i.log.Info("started", "namespace", i.namespace, "dir", i.dir)
	return i, nil
}

// Name returns the instance name.
func (i *Instance) Name() string { return i.name }

// Namespace returns the network namespace the daemons run in.
func (i *Instance) Namespace() string { return i.namespace }

// RunDir returns OVS_RUNDIR: sockets, pidfiles, logs and the database.
func (i *Instance) RunDir() string { return i.dir }

// DBFile returns the path of the database file.
func (i *Instance) DBFile() string { return filepath.Join(i.dir, "conf.db") }

// DBSocket returns the ovsdb-server unix socket path; it is usable from any
// namespace because path sockets ignore network namespaces.
func (i *Instance) DBSocket() string { return filepath.Join(i.dir, "db.sock") }

// DBEndpoint returns DBSocket as an OVSDB endpoint ("unix:<path>").
func (i *Instance) DBEndpoint() string { return "unix:" + i.DBSocket() }

// VswitchdCtl returns the ovs-vswitchd unixctl socket path.
func (i *Instance) VswitchdCtl() string { return filepath.Join(i.dir, "ovs-vswitchd.ctl") }

// VswitchdPID returns the PID of ovs-vswitchd, or 0 when it is not running.
func (i *Instance) VswitchdPID() int { return i.pid(func() *daemon { return i.vswitchd }) }

// DBPID returns the PID of ovsdb-server, or 0 when it is not running.
func (i *Instance) DBPID() int { return i.pid(func() *daemon { return i.db }) }

func (i *Instance) pid(get func() *daemon) int {
	i.mu.Lock()
	defer i.mu.Unlock()
	d := get()
	if d == nil || d.exited() {
		return 0
	}
	return d.cmd.Process.Pid
}

// StartDB starts ovsdb-server on the existing database file and waits until
// its socket answers. Used by Start and by tests that restart the server.
func (i *Instance) StartDB(ctx context.Context) error {
	i.mu.Lock()
	defer i.mu.Unlock()
	if i.db != nil && !i.db.exited() {
		return fmt.Errorf("ovsproc %s: ovsdb-server already running", i.name)
	}
	// In the namespace so DBRemotes like ptcp:6640:IP bind there.
	args := []string{"ip", "netns", "exec", i.namespace, "ovsdb-server", i.DBFile(),
		"--remote=punix:" + i.DBSocket(),
		"--remote=db:Open_vSwitch,Open_vSwitch,manager_options",
		"--pidfile=" + filepath.Join(i.dir, "ovsdb-server.pid"),
		"--unixctl=" + filepath.Join(i.dir, "ovsdb-server.ctl"),
		"--log-file=" + filepath.Join(i.dir, "ovsdb-server.log"),
	}
	for _, r := range i.dbRemotes {
		args = append(args, "--remote="+r)
	}
	if s := i.dbSSL; s != nil {
		args = append(args, "--private-key="+s.Key, "--certificate="+s.Cert, "--ca-cert="+s.CA)
	}
	d, err := i.spawn("ovsdb-server", args)
	if err != nil {
		return err
	}
	i.db = d
	err = waitFor(ctx, 10*time.Second, func() (bool, error) {
		if d.exited() {
			return false, fmt.Errorf("ovsdb-server exited: %s", i.logTail("ovsdb-server.log"))
		}
		_, err := run(ctx, i.env(), "ovs-vsctl", "--db="+i.DBEndpoint(), "--timeout=1", "--no-wait", "show")
		return err == nil, nil
	})
	if err != nil {
		return fmt.Errorf("ovsproc %s: ovsdb-server not ready: %w", i.name, err)
	}
	return nil
}

// StopDB kills ovsdb-server (SIGTERM, then SIGKILL) and waits for it to exit.
func (i *Instance) StopDB() error {
	i.mu.Lock()
	d := i.db
	i.mu.Unlock()
	return d.stop()
}

// StartVswitchd starts ovs-vswitchd inside the namespace and waits until it
// has completed a reconfiguration after starting: it bumps
// Open_vSwitch.next_cfg and waits for cur_cfg to reach it, which only a
// live ovs-vswitchd writes. (`ovs-vsctl init` cannot serve: with nothing
// to change it bumps nothing and returns at once.)
func (i *Instance) StartVswitchd(ctx context.Context) error {
	i.mu.Lock()
	defer i.mu.Unlock()
	if i.vswitchd != nil && !i.vswitchd.exited() {
		return fmt.Errorf("ovsproc %s: ovs-vswitchd already running", i.name)
	}
	next, err := i.bumpCfg(ctx)
	if err != nil {
		return fmt.Errorf("ovsproc %s: %w", i.name, err)
	}
	args := []string{"ip", "netns", "exec", i.namespace,
		"ovs-vswitchd", i.DBEndpoint(),
		"--disable-system",
		"--pidfile=" + filepath.Join(i.dir, "ovs-vswitchd.pid"),
		"--unixctl=" + i.VswitchdCtl(),
		"--log-file=" + filepath.Join(i.dir, "ovs-vswitchd.log"),
	}
	d, err := i.spawn("ovs-vswitchd", args)
	if err != nil {
		return err
	}
	i.vswitchd = d
	if err := i.waitCfg(ctx, d, next); err != nil {
		return fmt.Errorf("ovsproc %s: ovs-vswitchd not ready: %w", i.name, err)
	}
	return nil
}

// Sync returns once ovs-vswitchd has applied everything written to the
// database so far (what `ovs-vsctl` without --no-wait does after a change):
// tests call it before reading state ovs-vswitchd writes back (ofport,
// datapath_id, mac_in_use, interface status).
func (i *Instance) Sync(ctx context.Context) error {
	i.mu.Lock()
	d := i.vswitchd
	i.mu.Unlock()
	if d == nil || d.exited() {
		return fmt.Errorf("ovsproc %s: sync: ovs-vswitchd not running", i.name)
	}
	next, err := i.bumpCfg(ctx)
	if err != nil {
		return fmt.Errorf("ovsproc %s: sync: %w", i.name, err)
	}
	if err := i.waitCfg(ctx, d, next); err != nil {
		return fmt.Errorf("ovsproc %s: sync: %w", i.name, err)
	}
	return nil
}

// bumpCfg atomically increments Open_vSwitch.next_cfg (one transaction:
// mutate, then select) and returns the new value, so concurrent Syncs each
// wait for a configuration that includes their own earlier writes.
func (i *Instance) bumpCfg(ctx context.Context) (int, error) {
	const txn = `["Open_vSwitch",
		{"op":"mutate","table":"Open_vSwitch","where":[],"mutations":[["next_cfg","+=",1]]},
		{"op":"select","table":"Open_vSwitch","where":[],"columns":["next_cfg"]}]`
	out, err := run(ctx, i.env(), "ovsdb-client", "transact", i.DBEndpoint(), txn)
	if err != nil {
		return 0, err
	}
	var res []struct {
		Rows []struct {
			NextCfg int `json:"next_cfg"`
		} `json:"rows"`
		Error string `json:"error"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		return 0, fmt.Errorf("bump next_cfg: %q: %w", out, err)
	}
	if len(res) != 2 || res[0].Error != "" || res[1].Error != "" || len(res[1].Rows) != 1 {
		return 0, fmt.Errorf("bump next_cfg: unexpected reply %q", out)
	}
	return res[1].Rows[0].NextCfg, nil
}

// waitCfg waits until cur_cfg reaches n, which only a live ovs-vswitchd
// writes after a reconfiguration.
func (i *Instance) waitCfg(ctx context.Context, d *daemon, n int) error {
	return waitFor(ctx, 15*time.Second, func() (bool, error) {
		if d.exited() {
			return false, fmt.Errorf("ovs-vswitchd exited: %s", i.logTail("ovs-vswitchd.log"))
		}
		cur, err := i.cfgColumn(ctx, "cur_cfg")
		return err == nil && cur >= n, nil
	})
}

// cfgColumn reads Open_vSwitch.next_cfg or cur_cfg.
func (i *Instance) cfgColumn(ctx context.Context, col string) (int, error) {
	out, err := i.Vsctl(ctx, "--no-wait", "get", "Open_vSwitch", ".", col)
	if err != nil {
		return 0, err
	}
	n, err := strconv.Atoi(strings.TrimSpace(out))
	if err != nil {
		return 0, fmt.Errorf("%s: %q: %w", col, out, err)
	}
	return n, nil
}

// StopVswitchd kills ovs-vswitchd (SIGTERM, then SIGKILL) and waits for it.
// Flows are lost; bridges and ports come back from OVSDB on StartVswitchd.
func (i *Instance) StopVswitchd() error {
	i.mu.Lock()
	d := i.vswitchd
	i.mu.Unlock()
	return d.stop()
}

// Stop unplugs every VM, kills both daemons by PID, deletes the namespace
// if Start created it and the directory if Start created it. It is
// idempotent and keeps going past errors, returning them joined.
func (i *Instance) Stop() error {
	i.mu.Lock()
	if i.stopped {
		i.mu.Unlock()
		return nil
	}
	i.stopped = true
	vms := make([]*VM, 0, len(i.vms))
	for _, vm := range i.vms {
		vms = append(vms, vm)
	}
	vswitchd, db := i.vswitchd, i.db
	i.mu.Unlock()

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var errs []error
	for _, vm := range vms {
		// The daemons are about to go: only the workload namespace matters.
		if err := hostnet.DeleteNamespace(ctx, vm.namespace); err != nil {
			errs = append(errs, err)
		}
	}
	errs = append(errs, vswitchd.stop(), db.stop())
	if i.ownNS {
		if err := hostnet.DeleteNamespace(ctx, i.namespace); err != nil {
			errs = append(errs, err)
		}
	}
	if i.ownDir && i.dir != "" {
		if err := os.RemoveAll(i.dir); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("ovsproc %s: stop: %w", i.name, err)
	}
	i.log.Info("stopped")
	return nil
}

// Vsctl runs ovs-vsctl against this instance's database. Without
// --no-wait, it also waits for ovs-vswitchd to apply the change.
func (i *Instance) Vsctl(ctx context.Context, args ...string) (string, error) {
	a := append([]string{"--db=" + i.DBEndpoint(), "--timeout=" + timeoutSeconds(ctx)}, args...)
	return run(ctx, i.env(), "ovs-vsctl", a...)
}

// Ofctl runs ovs-ofctl -O OpenFlow13 with OVS_RUNDIR set, so a bridge name
// argument reaches <rundir>/<bridge>.mgmt (e.g. Ofctl(ctx, "dump-flows",
// "br-int")). The bridge must allow OpenFlow13.
func (i *Instance) Ofctl(ctx context.Context, args ...string) (string, error) {
	return run(ctx, i.env(), "ovs-ofctl", append([]string{"-O", "OpenFlow13"}, args...)...)
}

// Appctl runs ovs-appctl against this instance's ovs-vswitchd.
func (i *Instance) Appctl(ctx context.Context, args ...string) (string, error) {
	return run(ctx, i.env(), "ovs-appctl", append([]string{"-t", i.VswitchdCtl()}, args...)...)
}

// Exec runs a command inside the instance's namespace with OVS_RUNDIR set.
func (i *Instance) Exec(ctx context.Context, args ...string) (string, error) {
	return run(ctx, i.env(), "ip", append([]string{"netns", "exec", i.namespace}, args...)...)
}

func (i *Instance) env() []string {
	return append(os.Environ(), "OVS_RUNDIR="+i.dir, "OVS_DBDIR="+i.dir, "OVS_LOGDIR="+i.dir)
}

// spawn starts a daemon in the foreground (no --detach), so the child's PID
// is the daemon's PID (ip netns exec execs in place) and Wait tells us when
// it dies.
func (i *Instance) spawn(name string, args []string) (*daemon, error) {
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Env = i.env()
	cmd.Dir = i.dir
	// Own process group: a Ctrl-C aimed at `go test` must not race our
	// orderly Stop.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("ovsproc %s: start %s: %w", i.name, name, err)
	}
	d := &daemon{name: name, cmd: cmd, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		close(d.done)
	}()
	i.log.Debug("spawned", "daemon", name, "pid", cmd.Process.Pid)
	return d, nil
}

func (d *daemon) exited() bool {
	select {
	case <-d.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM, gives the daemon a few seconds to clean up, then
// SIGKILLs it. Signals go to the PID we started and nothing else.
func (d *daemon) stop() error {
	if d == nil || d.exited() {
		return nil
	}
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.done:
		return nil
	case <-time.After(5 * time.Second):
	}
	_ = d.cmd.Process.Kill()
	select {
	case <-d.done:
		return nil
	case <-time.After(5 * time.Second):
		return fmt.Errorf("%s (pid %d) did not exit after SIGKILL", d.name, d.cmd.Process.Pid)
	}
}

func (i *Instance) logTail(file string) string {
	b, err := os.ReadFile(filepath.Join(i.dir, file))
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > 5 {
		lines = lines[len(lines)-5:]
	}
	return strings.Join(lines, " | ")
}

func run(ctx context.Context, env []string, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "),
			err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

// timeoutSeconds turns ctx's deadline into ovs-vsctl's --timeout, so the
// tool gives up (with a message) before the context kills it (without one).
func timeoutSeconds(ctx context.Context) string {
	dl, ok := ctx.Deadline()
	if !ok {
		return "30"
	}
	s := int(time.Until(dl).Seconds())
	if s < 1 {
		s = 1
	}
	return strconv.Itoa(s)
}

// waitFor polls cond until it reports true, returns an error, ctx ends or
// timeout passes.
func waitFor(ctx context.Context, timeout time.Duration, cond func() (bool, error)) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		ok, err := cond()
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("timed out: %w", ctx.Err())
		case <-tick.C:
		}
	}
}
