package northbound_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"
)

// The tests drive Debian's `openstack` CLI through one long-lived Python
// process (testdata/osc_driver.py) that runs openstackclient.shell.main for
// each command with a new shell, instead of one `openstack` process per
// command: the same client code, without 1-2 s of Python start-up and
// entry-point scanning a command. NEUTRINO_OSC=exec runs the plain
// `openstack` process per command instead.

// oscExit is a command's non-zero exit status.
type oscExit int

func (e oscExit) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

// oscDriver is the running driver process; one command at a time.
type oscDriver struct {
	cmd     *exec.Cmd
	in      *os.File // requests
	replies *bufio.Reader
	done    chan struct{} // closed when the process has exited
	diag    *syncBuffer   // the driver's own stdout and stderr
}

// syncBuffer is a bytes.Buffer the exec package's copier and a test can
// share.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

var (
	oscMu  sync.Mutex // serialises commands through the one driver
	oscCur *oscDriver // nil until the first command, and after a failure
)

// TestMain stops the CLI driver, if one was started, after the tests.
func TestMain(m *testing.M) {
	code := m.Run()
	oscMu.Lock()
	if oscCur != nil {
		oscCur.stop()
	}
	oscMu.Unlock()
	os.Exit(code)
}

// openstackCLI runs `openstack args...` with env (nil: this process's
// environment) and returns its stdout and stderr; err is an oscExit for a
// non-zero exit status, or the driver's failure (with its stderr), or the
// context's end (the command is killed: a hung command fails the test).
func openstackCLI(ctx context.Context, env []string, args ...string) (stdout, stderr string, err error) {
	if env == nil {
		env = os.Environ()
	}
	if os.Getenv("NEUTRINO_OSC") == "exec" {
		return openstackExec(ctx, env, args)
	}
	oscMu.Lock()
	defer oscMu.Unlock()
	if oscCur == nil {
		if oscCur, err = startOSCDriver(); err != nil {
			return "", "", err
		}
	}
	d := oscCur
	req, err := json.Marshal(map[string]any{"argv": args, "env": env})
	if err != nil {
		return "", "", err
	}
	type reply struct {
		Stdout, Stderr string
		Code           int
	}
	got := make(chan reply, 1)
	failed := make(chan error, 1)
	go func() {
		if _, err := d.in.Write(append(req, '\n')); err != nil {
			failed <- err
			return
		}
		line, err := d.replies.ReadBytes('\n')
		var r reply
		if err == nil {
			err = json.Unmarshal(line, &r)
		}
		if err != nil {
			failed <- err
			return
		}
		got <- r
	}()
	select {
	case r := <-got:
		if r.Code != 0 {
			return r.Stdout, r.Stderr, oscExit(r.Code)
		}
		return r.Stdout, r.Stderr, nil
	case err := <-failed:
		d.stop()
		oscCur = nil
		return "", "", fmt.Errorf("openstack CLI driver failed: %w\n%s", err, d.diag)
	case <-ctx.Done():
		d.stop()
		oscCur = nil
		return "", "", fmt.Errorf("openstack %s: %w (driver killed)\n%s", strings.Join(args, " "), ctx.Err(), d.diag)
	}
}

// openstackExec runs the plain `openstack` process.
func openstackExec(ctx context.Context, env, args []string) (string, string, error) {
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, "openstack", args...)
	cmd.Env, cmd.Stdout, cmd.Stderr = env, &stdout, &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case ctx.Err() != nil && err != nil:
		err = fmt.Errorf("openstack %s: %w (killed)", strings.Join(args, " "), ctx.Err())
	case errors.As(err, &ee):
		err = oscExit(ee.ExitCode())
	}
	return stdout.String(), stderr.String(), err
}

// startOSCDriver starts testdata/osc_driver.py with the interpreter that
// the installed `openstack` script names (its #! line: Debian's python3,
// not whichever python3 comes first on PATH).
func startOSCDriver() (*oscDriver, error) {
	path, err := exec.LookPath("openstack")
	if err != nil {
		return nil, err
	}
	script, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	first, _, _ := strings.Cut(string(script), "\n")
	interp := strings.Fields(strings.TrimPrefix(first, "#!"))
	if !strings.HasPrefix(first, "#!") || len(interp) == 0 {
		return nil, fmt.Errorf("%s: no #! line naming its Python", path)
	}
	reqR, reqW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	repR, repW, err := os.Pipe()
	if err != nil {
		reqR.Close()
		reqW.Close()
		return nil, err
	}
	d := &oscDriver{in: reqW, replies: bufio.NewReader(repR), done: make(chan struct{}), diag: &syncBuffer{}}
	d.cmd = exec.Command(interp[0], append(interp[1:], "testdata/osc_driver.py")...)
	d.cmd.Stdin, d.cmd.Stdout, d.cmd.Stderr = reqR, d.diag, d.diag
	d.cmd.ExtraFiles = []*os.File{repW} // fd 3
	if err := d.cmd.Start(); err != nil {
		reqR.Close()
		reqW.Close()
		repR.Close()
		repW.Close()
		return nil, fmt.Errorf("start the openstack CLI driver: %w", err)
	}
	// The child holds its ends; a reply read then sees EOF when it exits.
	reqR.Close()
	repW.Close()
	go func() {
		_ = d.cmd.Wait()
		repR.Close()
		close(d.done)
	}()
	return d, nil
}

// stop ends the driver: EOF on its stdin, then, if it has not exited
// within a second (a hung command), a kill of its PID.
func (d *oscDriver) stop() {
	d.in.Close()
	select {
	case <-d.done:
		return
	case <-time.After(time.Second):
	}
	_ = d.cmd.Process.Kill()
	<-d.done
}

// TestOpenstackCLIDriver checks what the driver must keep from a process
// per command: no state from the previous command (its endpoint: a
// command aimed at a closed port fails even right after one that reached
// a server; module state a command changed: quota set twice), the exit
// status, the environment, and that a hung
// command fails at its deadline and the next one gets a new driver.
func TestOpenstackCLIDriver(t *testing.T) {
	if _, err := exec.LookPath("openstack"); err != nil {
		t.Fatalf("the openstack CLI is not installed: %v", err)
	}
	s := newAPIServer(t, nil)
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedURL := "http://" + closed.Addr().String()
	closed.Close()
	run := func(endpoint string, args ...string) (string, string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		return openstackCLI(ctx, nil, append([]string{"--os-auth-type", "none", "--os-endpoint", endpoint}, args...)...)
	}
	for i := 0; i < 2; i++ {
		out, stderr, err := run(s.base, "network", "create", fmt.Sprintf("drv-%d", i), "-f", "value", "-c", "name")
		if err != nil || strings.TrimSpace(out) != fmt.Sprintf("drv-%d", i) {
			t.Fatalf("network create through %s: %v\n%s%s", s.base, err, out, stderr)
		}
		// volume's make_client deletes a key of a module-level map the
		// first time it runs: a second quota set in one process failed.
		if out, stderr, err := run(s.base, "quota", "set", "--networks", fmt.Sprint(5+i), "p-drv"); err != nil {
			t.Fatalf("quota set, time %d: %v\n%s%s", i+1, err, out, stderr)
		}
		out, stderr, err = run(closedURL, "network", "list")
		var exit oscExit
		if !errors.As(err, &exit) || exit != 1 || !strings.Contains(stderr, "Unable to find a version discovery document at "+closedURL) {
			t.Fatalf("network list through a closed port: want exit status 1 and no connection, got %v\n%s%s", err, out, stderr)
		}
	}
	out, _, err := run(s.base, "network", "lisst")
	if !errors.As(err, new(oscExit)) || !strings.Contains(out, "is not an openstack command") {
		t.Fatalf("unknown command: want a non-zero exit, got %v: %s", err, out)
	}
	// The command's environment is its own: OS_CLOUD names a cloud that no
	// clouds.yaml has.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	_, stderr, err := openstackCLI(ctx, append(os.Environ(), "OS_CLOUD=drv-no-such-cloud"), "network", "list")
	if err == nil || !strings.Contains(stderr, "drv-no-such-cloud") {
		t.Fatalf("OS_CLOUD in the command's environment: want an error naming the cloud, got %v: %s", err, stderr)
	}

	// A server that accepts and never answers: the command hangs until
	// its deadline, which fails it.
	hung, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer hung.Close()
	short, cancelShort := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancelShort()
	_, _, err = openstackCLI(short, nil, "--os-auth-type", "none", "--os-endpoint", "http://"+hung.Addr().String(), "network", "list")
	if err == nil || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("hung command: want its deadline, got %v", err)
	}
	if out, stderr, err := run(s.base, "network", "show", "drv-0", "-f", "value", "-c", "name"); err != nil || strings.TrimSpace(out) != "drv-0" {
		t.Fatalf("the command after a hung one: %v\n%s%s", err, out, stderr)
	}
}
