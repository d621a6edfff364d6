package lbaas

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vishvananda/netns"

	"neutrino/southbound/hostnet"
)

// The manager's tests run a real HAProxy in a namespace of their own, with
// Go HTTP members and clients whose sockets are opened inside it.

// nsThread runs functions on one OS thread inside a namespace; sockets
// opened there belong to the namespace, wherever they are used after.
type nsThread struct{ reqs chan func() }

func newNSThread(t *testing.T, name string) *nsThread {
	n := &nsThread{reqs: make(chan func())}
	ready := make(chan error)
	go func() {
		// Never unlocked: the thread, switched to another namespace, ends
		// with the goroutine.
		runtime.LockOSThread()
		h, err := netns.GetFromName(name)
		if err == nil {
			err = netns.Set(h)
			h.Close()
		}
		ready <- err
		if err != nil {
			return
		}
		for f := range n.reqs {
			f()
		}
	}()
	if err := <-ready; err != nil {
		t.Fatalf("enter namespace %s: %v", name, err)
	}
	t.Cleanup(func() { close(n.reqs) })
	return n
}

func (n *nsThread) do(f func()) {
	done := make(chan struct{})
	n.reqs <- func() { f(); close(done) }
	<-done
}

func (n *nsThread) listen(t *testing.T, addr string) net.Listener {
	var ln net.Listener
	var err error
	n.do(func() { ln, err = net.Listen("tcp", addr) })
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

// client is an HTTP client whose connections are opened in the namespace.
func (n *nsThread) client(keepAlive bool) *http.Client {
	tr := &http.Transport{DisableKeepAlives: !keepAlive, MaxIdleConnsPerHost: 64,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			var c net.Conn
			var err error
			n.do(func() { c, err = (&net.Dialer{Timeout: 2 * time.Second}).DialContext(ctx, network, addr) })
			return c, err
		}}
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

// member is an HTTP server in the namespace answering its name.
type member struct {
	name string
	ln   net.Listener
	srv  *http.Server
	port int
}

func startMember(t *testing.T, ns *nsThread, name string, delay time.Duration) *member {
	ln := ns.listen(t, "127.0.0.1:0")
	m := &member{name: name, ln: ln, port: ln.Addr().(*net.TCPAddr).Port}
	m.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if d := r.URL.Query().Get("sleep"); d != "" {
			pd, _ := time.ParseDuration(d)
			time.Sleep(pd)
		}
		time.Sleep(delay)
		fmt.Fprint(w, name)
	})}
	go func() { _ = m.srv.Serve(ln) }()
	t.Cleanup(func() { m.srv.Close() })
	return m
}

func needHAProxy(t *testing.T) {
	t.Helper()
	if os.Getuid() != 0 {
		t.Skip("needs root (network namespaces)")
	}
	if _, err := exec.LookPath("haproxy"); err != nil {
		t.Skip("haproxy not installed")
	}
}

// testNS creates a namespace for one test and removes it after.
func testNS(t *testing.T) string {
	name := fmt.Sprintf("lbt%d-%s", os.Getpid()%100000, strings.ToLower(strings.NewReplacer("/", "-", "_", "-").Replace(t.Name())))
	if len(name) > 40 {
		name = name[:40]
	}
	ctx := context.Background()
	_ = hostnet.DeleteNamespace(ctx, name)
	if err := hostnet.CreateNamespace(ctx, name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = hostnet.DeleteNamespace(context.Background(), name) })
	return name
}

func newManager(t *testing.T, ns string) *Manager {
	m := &Manager{Namespace: ns, Paths: Paths{Dir: t.TempDir()}}
	t.Cleanup(m.Stop)
	return m
}

func freePort(t *testing.T, ns *nsThread) int {
	ln := ns.listen(t, "127.0.0.1:0")
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func spec(port int, members []*member, monitor bool) Spec {
	p := Pool{ID: "pool", Protocol: "HTTP", Algorithm: "ROUND_ROBIN", AdminStateUp: true}
	if monitor {
		p.Monitor = &Monitor{Type: "HTTP", Delay: 1, Timeout: 1, MaxRetries: 1, MaxRetriesDown: 1, URLPath: "/", AdminStateUp: true}
	}
	for _, m := range members {
		p.Members = append(p.Members, Member{ID: m.name, Address: "127.0.0.1", Port: m.port, Weight: 1, AdminStateUp: true})
	}
	return Spec{ID: "lb", VIP: "127.0.0.1",
		Listeners: []Listener{{ID: "http", Protocol: "HTTP", Port: port, DefaultPool: "pool", AdminStateUp: true}},
		Pools:     []Pool{p}}
}

func get(c *http.Client, url string) (string, error) {
	res, err := c.Get(url)
	if err != nil {
		return "", err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		return "", err
	}
	if res.StatusCode != http.StatusOK {
		return "", fmt.Errorf("%s: %s", res.Status, b)
	}
	return string(b), nil
}

func eventually(t *testing.T, timeout time.Duration, what string, cond func() error) {
	t.Helper()
	if err := waitUntil(context.Background(), timeout, cond); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// TestManagerLifecycle: start, round robin, an unchanged config reloads
// nothing, health from the stats socket, and a config haproxy -c refuses
// leaves the running HAProxy serving with the reason in the error.
func TestManagerLifecycle(t *testing.T) {
	needHAProxy(t)
	if _, err := CheckVersion(context.Background(), ""); err != nil {
		t.Fatal(err)
	}
	nsName := testNS(t)
	ns := newNSThread(t, nsName)
	a, b := startMember(t, ns, "a", 0), startMember(t, ns, "b", 0)
	port := freePort(t, ns)
	m := newManager(t, nsName)
	s := spec(port, []*member{a, b}, true)
	cfg := Render(s, m.Paths)
	ctx := context.Background()
	if changed, err := m.Apply(ctx, cfg); err != nil || !changed {
		t.Fatalf("first apply: changed %v, %v", changed, err)
	}
	pid := m.PID()
	c := ns.client(false)
	url := fmt.Sprintf("http://127.0.0.1:%d/", port)
	seen := map[string]int{}
	for range 10 {
		got, err := get(c, url)
		if err != nil {
			t.Fatal(err)
		}
		seen[got]++
	}
	if seen["a"] != 5 || seen["b"] != 5 {
		t.Fatalf("round robin over a, b: %v", seen)
	}
	if changed, err := m.Apply(ctx, cfg); err != nil || changed || m.Reloads() != 0 {
		t.Fatalf("same config again: changed %v, reloads %d, %v", changed, m.Reloads(), err)
	}
	eventually(t, 10*time.Second, "every object ONLINE", func() error {
		rows, err := m.Stats(ctx)
		if err != nil {
			return err
		}
		op := Operating(s, rows)
		for _, id := range []string{"lb", "http", "pool", "a", "b"} {
			if op[id] != Online {
				return fmt.Errorf("%s is %s (%v)", id, op[id], op)
			}
		}
		return nil
	})
	b.srv.Close()
	eventually(t, 10*time.Second, "b ERROR, pool and lb DEGRADED", func() error {
		rows, err := m.Stats(ctx)
		if err != nil {
			return err
		}
		op := Operating(s, rows)
		if op["b"] != Error || op["pool"] != Degraded || op["lb"] != Degraded || op["a"] != Online {
			return fmt.Errorf("%v", op)
		}
		return nil
	})
	for range 4 {
		if got, err := get(c, url); err != nil || got != "a" {
			t.Fatalf("with b down: %q, %v", got, err)
		}
	}

	bad := strings.Replace(cfg, "balance roundrobin", "balance no-such-algorithm", 1)
	_, err := m.Apply(ctx, bad)
	if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), "balance only supports") {
		t.Fatalf("invalid config: %v, want ErrInvalidConfig naming the problem", err)
	}
	t.Logf("refused: %v", err)
	if m.PID() != pid || m.Reloads() != 0 {
		t.Fatalf("after a refused config: pid %d (was %d), reloads %d", m.PID(), pid, m.Reloads())
	}
	if got, err := get(c, url); err != nil || got != "a" {
		t.Fatalf("after a refused config: %q, %v", got, err)
	}
	on, err := os.ReadFile(m.Paths.Config())
	if err != nil || string(on) != cfg {
		t.Fatalf("the config file changed after a refused config (%v)", err)
	}
	m.Stop()
	if m.Running() {
		t.Fatal("still running after Stop")
	}
}

// TestReloadUnderLoad reloads HAProxy five times while clients send
// requests on keep-alive and fresh connections and slow requests are in
// flight: no request fails.
func TestReloadUnderLoad(t *testing.T) {
	needHAProxy(t)
	nsName := testNS(t)
	ns := newNSThread(t, nsName)
	a, b := startMember(t, ns, "a", 0), startMember(t, ns, "b", 0)
	port := freePort(t, ns)
	m := newManager(t, nsName)
	s := spec(port, []*member{a, b}, false)
	ctx := context.Background()
	if _, err := m.Apply(ctx, Render(s, m.Paths)); err != nil {
		t.Fatal(err)
	}
	url := fmt.Sprintf("http://127.0.0.1:%d/", port)
	var ok, failed atomic.Int64
	var firstErr atomic.Value
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i := range 6 {
		c := ns.client(i%2 == 0)
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				u := url
				if i == 5 {
					u += "?sleep=700ms" // in flight across a reload
				}
				if _, err := get(c, u); err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
				} else {
					ok.Add(1)
				}
			}
		})
	}
	for i := range 5 {
		time.Sleep(300 * time.Millisecond) // load between reloads, not a wait for a condition
		s.Pools[0].Members[0].Weight = i + 2
		changed, err := m.Apply(ctx, Render(s, m.Paths))
		if err != nil || !changed {
			t.Fatalf("reload %d: changed %v, %v", i, changed, err)
		}
	}
	time.Sleep(300 * time.Millisecond)
	close(stop)
	wg.Wait()
	t.Logf("%d requests across %d reloads, %d failed", ok.Load(), m.Reloads(), failed.Load())
	if failed.Load() > 0 {
		t.Fatalf("%d requests failed across reloads; first: %v", failed.Load(), firstErr.Load())
	}
	if ok.Load() < 50 {
		t.Fatalf("only %d requests: no load", ok.Load())
	}
}

// TestConnectionLimit: a listener's connection_limit refuses (closes) the
// connections beyond it instead of queueing them.
func TestConnectionLimit(t *testing.T) {
	needHAProxy(t)
	nsName := testNS(t)
	ns := newNSThread(t, nsName)
	a := startMember(t, ns, "a", 0)
	port := freePort(t, ns)
	m := newManager(t, nsName)
	s := spec(port, []*member{a}, false)
	s.Listeners[0].Protocol, s.Pools[0].Protocol, s.Listeners[0].ConnectionLimit = "TCP", "TCP", 2
	if _, err := m.Apply(context.Background(), Render(s, m.Paths)); err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	dialErr := func() (net.Conn, error) {
		var c net.Conn
		var err error
		ns.do(func() { c, err = net.DialTimeout("tcp", addr, 2*time.Second) })
		return c, err
	}
	dial := func() net.Conn {
		c, err := dialErr()
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	// closed says whether HAProxy closed c without an answer to a
	// request; a connection left waiting (queued) is not closed.
	var last string // what the last connection got, for failures
	closed := func(c net.Conn) bool {
		_ = c.SetDeadline(time.Now().Add(2 * time.Second))
		if _, err := c.Write([]byte("GET / HTTP/1.0\r\n\r\n")); err != nil {
			last = "write: " + err.Error()
			return true
		}
		b, err := io.ReadAll(c)
		last = fmt.Sprintf("read %q, %v", b, err)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return false
		}
		return err != nil || !strings.Contains(string(b), "a")
	}
	idle := []net.Conn{dial(), dial()}
	refused := func() bool {
		c, err := dialErr()
		if err != nil {
			return true // reset during the handshake
		}
		defer c.Close()
		return closed(c)
	}
	eventually(t, 5*time.Second, "a third connection is refused", func() error {
		if !refused() {
			return errors.New("served")
		}
		return nil
	})
	for i := range 3 {
		if !refused() {
			t.Fatalf("over the limit, attempt %d: served (%s)", i+1, last)
		}
	}
	idle[0].Close()
	eventually(t, 5*time.Second, "a connection is served once one of the two closed", func() error {
		if refused() {
			return errors.New("refused")
		}
		return nil
	})
	idle[1].Close()
}

// TestCheckVersionMissing: a gateway without HAProxy is told what to
// install.
func TestCheckVersionMissing(t *testing.T) {
	_, err := CheckVersion(context.Background(), "/nonexistent/haproxy")
	if err == nil || !strings.Contains(err.Error(), "install Debian's haproxy package") {
		t.Fatalf("missing haproxy: %v", err)
	}
	// A binary that prints no HAProxy version.
	if _, err := CheckVersion(context.Background(), "true"); err == nil || !strings.Contains(err.Error(), "no version") {
		t.Fatalf("not haproxy: %v", err)
	}
}
