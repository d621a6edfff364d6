package lbaas

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"neutrino/southbound/hostnet"
)

// MinVersion is the oldest HAProxy this package drives: master CLI
// `reload` and listener hand-over between workers.
var MinVersion = [2]int{2, 0}

// ErrInvalidConfig means `haproxy -c` refused a rendered configuration;
// the running one, if any, was left in place.
var ErrInvalidConfig = errors.New("haproxy refused the configuration")

var alertPrefix = regexp.MustCompile(`^\[ALERT\]\s+\(\d+\) : (config : )?`)

// alertWhere is the file position of an alert: the file is ours, the
// line is what helps.
var alertWhere = regexp.MustCompile(`parsing \[[^\]]*:(\d+)\] : `)

var versionRE = regexp.MustCompile(`(?m)^HA-?Proxy version (\d+)\.(\d+)(\.\d+)?`)

// CheckVersion runs `haproxy -v` and returns the version, or an error that
// says what is missing.
func CheckVersion(ctx context.Context, binary string) (string, error) {
	if binary == "" {
		binary = "haproxy"
	}
	path, err := exec.LookPath(binary)
	if err != nil {
		return "", fmt.Errorf("lbaas: %s not found (install Debian's haproxy package, >= %d.%d, on every gateway chassis): %w",
			binary, MinVersion[0], MinVersion[1], err)
	}
	out, err := exec.CommandContext(ctx, path, "-v").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("lbaas: %s -v: %w: %s", path, err, strings.TrimSpace(string(out)))
	}
	m := versionRE.FindStringSubmatch(string(out))
	if m == nil {
		return "", fmt.Errorf("lbaas: %s -v printed no version: %q", path, firstLine(string(out)))
	}
	major, _ := strconv.Atoi(m[1])
	minor, _ := strconv.Atoi(m[2])
	v := m[1] + "." + m[2] + m[3]
	if major < MinVersion[0] || (major == MinVersion[0] && minor < MinVersion[1]) {
		return v, fmt.Errorf("lbaas: %s is HAProxy %s; load balancers need >= %d.%d (master-worker reload)",
			path, v, MinVersion[0], MinVersion[1])
	}
	return v, nil
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(strings.TrimSpace(s), "\n")
	return l
}

// Check runs `haproxy -c` on a configuration file.
func Check(ctx context.Context, binary, path string) error {
	if binary == "" {
		binary = "haproxy"
	}
	out, err := exec.CommandContext(ctx, binary, "-c", "-f", path).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%w: %s", ErrInvalidConfig, alerts(string(out), err))
	}
	return nil
}

// alerts keeps the [ALERT] lines of haproxy's output, the reason a check
// failed, without the noise around them.
func alerts(out string, err error) string {
	var keep []string
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, "[ALERT]") && !strings.Contains(l, "Fatal errors found") &&
			!strings.Contains(l, "Error(s) found in configuration file") {
			l = alertPrefix.ReplaceAllString(strings.TrimSpace(l), "")
			keep = append(keep, alertWhere.ReplaceAllString(l, "line $1: "))
		}
	}
	if len(keep) == 0 {
		if s := strings.TrimSpace(out); s != "" {
			return s
		}
		return err.Error()
	}
	return strings.Join(keep, "; ")
}

// Manager runs one HAProxy in master-worker mode inside a network
// namespace and replaces its configuration without dropping connections.
type Manager struct {
	Namespace string // "" runs it in the caller's namespace
	Paths     Paths
	Binary    string // default "haproxy"
	Logger    *slog.Logger

	mu      sync.Mutex
	cmd     *exec.Cmd
	done    chan struct{}
	loaded  string // the configuration the running HAProxy loaded
	reloads int
}

func (m *Manager) binary() string {
	if m.Binary == "" {
		return "haproxy"
	}
	return m.Binary
}

func (m *Manager) log() *slog.Logger {
	if m.Logger == nil {
		return slog.Default()
	}
	return m.Logger
}

// Running reports whether the master process runs.
func (m *Manager) Running() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.runningLocked()
}

func (m *Manager) runningLocked() bool {
	if m.done == nil {
		return false
	}
	select {
	case <-m.done:
		return false
	default:
		return true
	}
}

// Reloads counts the reloads this manager did (not the first start).
func (m *Manager) Reloads() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.reloads
}

// PID is the master's process id (0 when not running).
func (m *Manager) PID() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.runningLocked() {
		return 0
	}
	return m.cmd.Process.Pid
}

// Apply makes HAProxy run cfg: nothing happens when it already does; a
// configuration `haproxy -c` refuses returns ErrInvalidConfig and leaves
// the running HAProxy (and its file) untouched; otherwise the file is
// replaced and HAProxy started, or reloaded through the master socket
// (the new worker takes the listening sockets over, the old one finishes
// its connections). changed says whether anything was started or reloaded.
func (m *Manager) Apply(ctx context.Context, cfg string) (changed bool, err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	running := m.runningLocked()
	if running && cfg == m.loaded {
		return false, nil
	}
	if err := os.MkdirAll(m.Paths.Dir, 0o700); err != nil {
		return false, fmt.Errorf("lbaas: %w", err)
	}
	cand := m.Paths.Candidate()
	if err := os.WriteFile(cand, []byte(cfg), 0o600); err != nil {
		return false, fmt.Errorf("lbaas: %w", err)
	}
	if err := Check(ctx, m.binary(), cand); err != nil {
		os.Remove(cand)
		return false, err
	}
	if err := os.Rename(cand, m.Paths.Config()); err != nil {
		return false, fmt.Errorf("lbaas: %w", err)
	}
	if !running {
		if err := m.startLocked(ctx); err != nil {
			return false, err
		}
	} else if err := m.reloadLocked(ctx); err != nil {
		return false, err
	}
	m.loaded = cfg
	return true, nil
}

func (m *Manager) startLocked(ctx context.Context) error {
	os.Remove(m.Paths.Master())
	os.Remove(m.Paths.Stats())
	args := []string{m.binary(), "-W", "-S", m.Paths.Master() + ",mode,600", "-f", m.Paths.Config(), "-p", m.Paths.PIDFile()}
	// Not CommandContext: HAProxy outlives the request that started it.
	cmd := hostnet.Command(context.Background(), m.Namespace, args...)
	logf, err := os.OpenFile(m.Paths.Dir+"/haproxy.log", os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("lbaas: %w", err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	// HAProxy dies with the agent, as it would with the machine: a
	// restarted agent starts from a clean namespace, and nothing of a dead
	// agent goes on answering for a VIP that moved.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	if err := startPinned(cmd); err != nil {
		logf.Close()
		return fmt.Errorf("lbaas: start haproxy: %w", err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		logf.Close()
		close(done)
	}()
	m.cmd, m.done = cmd, done
	err = waitUntil(ctx, 10*time.Second, func() error {
		select {
		case <-done:
			return errStop{fmt.Errorf("haproxy exited: %s", tail(m.Paths.Dir+"/haproxy.log"))}
		default:
		}
		_, err := m.workers(ctx)
		if err != nil {
			return err
		}
		_, err = query(ctx, m.Paths.Stats(), "show info")
		return err
	})
	if err != nil {
		m.killLocked()
		return fmt.Errorf("lbaas: start haproxy in %s: %w", m.Namespace, err)
	}
	m.log().Info("haproxy started", "namespace", m.Namespace, "pid", cmd.Process.Pid)
	return nil
}

// reloadLocked asks the master to reload and waits for a new worker.
func (m *Manager) reloadLocked(ctx context.Context) error {
	before, err := m.workers(ctx)
	if err != nil {
		return fmt.Errorf("lbaas: reload: %w", err)
	}
	// HAProxy 2.6 closes the master CLI connection on reload without an
	// answer: success is a worker that was not there before.
	_, _ = query(ctx, m.Paths.Master(), "reload; quit")
	err = waitUntil(ctx, 10*time.Second, func() error {
		ws, err := m.workers(ctx)
		if err != nil {
			return err
		}
		for _, w := range ws {
			if w.Current && !before[w.PID].Current {
				return nil
			}
		}
		return errors.New("no new worker yet")
	})
	if err != nil {
		return fmt.Errorf("lbaas: reload haproxy in %s: %w (log: %s)", m.Namespace, err, tail(m.Paths.Dir+"/haproxy.log"))
	}
	m.reloads++
	m.log().Info("haproxy reloaded", "namespace", m.Namespace)
	return nil
}

// worker is one worker process in the master's `show proc`.
type worker struct {
	PID     int
	Current bool // the newest (not an old worker finishing connections)
}

// workers lists the master's workers by pid.
func (m *Manager) workers(ctx context.Context) (map[int]worker, error) {
	// "; quit": after a reload, HAProxy 2.6's master keeps a
	// non-interactive CLI connection open after answering.
	out, err := query(ctx, m.Paths.Master(), "show proc; quit")
	if err != nil {
		return nil, err
	}
	ws := map[int]worker{}
	section := ""
	for _, l := range strings.Split(out, "\n") {
		l = strings.TrimSpace(l)
		if strings.HasPrefix(l, "#") {
			section = l
			continue
		}
		f := strings.Fields(l)
		if len(f) < 2 || f[1] != "worker" {
			continue
		}
		pid, err := strconv.Atoi(f[0])
		if err != nil {
			continue
		}
		ws[pid] = worker{PID: pid, Current: !strings.Contains(section, "old")}
	}
	return ws, nil
}

// Stop stops HAProxy (hard stop: its connections end) and waits for it.
func (m *Manager) Stop() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.killLocked()
}

func (m *Manager) killLocked() {
	if !m.runningLocked() {
		return
	}
	_ = m.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-m.done:
	case <-time.After(5 * time.Second):
		_ = m.cmd.Process.Kill()
		<-m.done
	}
	m.loaded = ""
}

// Pdeathsig fires when the thread that forked the child ends, not the
// process: every HAProxy is forked from one thread that never ends.
var (
	starts    = make(chan startReq)
	startOnce sync.Once
)

type startReq struct {
	cmd *exec.Cmd
	err chan error
}

func startPinned(cmd *exec.Cmd) error {
	startOnce.Do(func() {
		go func() {
			runtime.LockOSThread() // never unlocked: the thread lives as long as the process
			for r := range starts {
				r.err <- r.cmd.Start()
			}
		}()
	})
	r := startReq{cmd: cmd, err: make(chan error, 1)}
	starts <- r
	return <-r.err
}

// errStop ends a waitUntil at once.
type errStop struct{ error }

// waitUntil polls cond until it returns nil, errStop or timeout passes.
func waitUntil(ctx context.Context, timeout time.Duration, cond func() error) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		err := cond()
		if err == nil {
			return nil
		}
		var stop errStop
		if errors.As(err, &stop) {
			return stop.error
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (last: %w)", ctx.Err(), err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// query sends one command to a HAProxy CLI socket and returns the answer.
func query(ctx context.Context, sock, command string) (string, error) {
	d := net.Dialer{Timeout: 2 * time.Second}
	c, err := d.DialContext(ctx, "unix", sock)
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write([]byte(command + "\n")); err != nil {
		return "", err
	}
	var b strings.Builder
	r := bufio.NewReader(c)
	buf := make([]byte, 32<<10)
	for {
		n, err := r.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			break
		}
	}
	return b.String(), nil
}

// tail is the end of a log file, for error messages.
func tail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	s := strings.TrimSpace(string(b))
	if len(s) > 600 {
		s = "..." + s[len(s)-600:]
	}
	return s
}

// SetChecks turns the health checks of servers off (standby) or on
// (active). A standby's VIP port gets no flows, so its checks would fail
// and, once it becomes active, hold every member down for rise x inter:
// a standby keeps its checks disabled (HAProxy then counts its servers
// UP) and the new active enables them with every server forced UP, which
// the checks correct within fall x inter if a member is really down.
func (m *Manager) SetChecks(ctx context.Context, servers [][2]string, on bool) error {
	if len(servers) == 0 {
		return nil
	}
	var cmds []string
	for _, s := range servers {
		name := s[0] + "/" + s[1]
		if on {
			cmds = append(cmds, "enable health "+name, "set server "+name+" health up")
		} else {
			cmds = append(cmds, "disable health "+name)
		}
	}
	out, err := query(ctx, m.Paths.Stats(), strings.Join(cmds, ";"))
	if err != nil {
		return fmt.Errorf("lbaas: health checks: %w", err)
	}
	if s := strings.TrimSpace(out); s != "" {
		return fmt.Errorf("lbaas: health checks: %s", s)
	}
	return nil
}
