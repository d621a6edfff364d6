package vpnaas

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// CharonPath is the charon daemon strongSwan's Debian package installs.
const CharonPath = "/usr/lib/ipsec/charon"

// strongswanConf is a charon's configuration. Paths under /run are the
// charon's own directory, bind-mounted there. The plugin list is fixed
// (load_modular off): kernel-libipsec for userspace ESP, kdf (IKE key
// derivation fails without it here), gmp for the MODP groups, vici for
// swanctl. Retransmits start at 0.5 s (4 s by default): a first IKE packet
// lost while the pipeline learns the namespace's port (a new namespace, a
// failover) costs half a second, not four; 8 tries still wait ~23 s.
const strongswanConf = `charon {
  load_modular = no
  load = random nonce aes sha1 sha2 hmac xcbc kdf gmp pem pkcs1 x509 pubkey kernel-libipsec kernel-netlink socket-default vici
  install_virtual_ip = no
  # Neutron lets a policy ask for IKEv1 aggressive mode with a PSK, which
  # charon refuses as a responder unless told.
  i_dont_care_about_security_and_use_aggressive_mode_psk = yes
  retransmit_timeout = 0.5
  retransmit_base = 1.4
  retransmit_tries = 8
  filelog {
    charon {
      path = /run/charon.log
      default = 1
      time_format = %b %e %T
    }
  }
  syslog {
    daemon {
      default = -1
    }
  }
  plugins {
    vici {
      socket = unix:///run/charon.vici
    }
  }
}
`

// StrongswanConf is the configuration of every charon here (the agent's,
// and a scenario's remote site's): paths under /run are the charon's own
// directory, bind-mounted there.
const StrongswanConf = strongswanConf

// Charon is one charon daemon in a network namespace, with its own
// directory (its /run): strongswan.conf, vici socket, pid file, log.
type Charon struct {
	// Namespace is the network namespace it runs in.
	Namespace string
	// Dir is its directory; its unix socket paths must stay under 108
	// bytes.
	Dir string
}

// URI is the vici socket as swanctl names it.
func (c *Charon) URI() string { return "unix://" + filepath.Join(c.Dir, "charon.vici") }

func (c *Charon) pidFile() string { return filepath.Join(c.Dir, "charon.pid") }

// LogFile is the charon's log.
func (c *Charon) LogFile() string { return filepath.Join(c.Dir, "charon.log") }

// PID returns the running charon's pid from its pid file, or 0.
func (c *Charon) PID() int {
	b, err := os.ReadFile(c.pidFile())
	if err != nil {
		return 0
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return 0
	}
	if syscall.Kill(pid, 0) != nil {
		return 0
	}
	// A recycled pid is not ours: charon's environment names our conf.
	env, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
	if err != nil || !strings.Contains(string(env), "STRONGSWAN_CONF="+c.conf()) {
		return 0
	}
	return pid
}

func (c *Charon) conf() string { return filepath.Join(c.Dir, "strongswan.conf") }

// Start starts the charon unless it runs, and returns once its vici
// socket answers.
func (c *Charon) Start(ctx context.Context) error {
	if c.PID() != 0 {
		return nil
	}
	if len(c.URI()) > 100 {
		return fmt.Errorf("vpnaas: charon dir %s too long for a unix socket path", c.Dir)
	}
	if err := os.MkdirAll(c.Dir, 0o700); err != nil {
		return fmt.Errorf("vpnaas: %w", err)
	}
	for _, f := range []string{"charon.vici", "charon.pid", "charon.ctl"} {
		_ = os.Remove(filepath.Join(c.Dir, f))
	}
	if err := os.WriteFile(c.conf(), []byte(strongswanConf), 0o600); err != nil {
		return fmt.Errorf("vpnaas: %w", err)
	}
	// `ip netns exec` gives a private mount namespace: /run bound to our
	// directory there is charon's alone (its pid file path is fixed).
	cmd := exec.Command("ip", "netns", "exec", c.Namespace, "sh", "-c",
		`mount --bind "$1" /run && exec "$2"`, "sh", c.Dir, CharonPath)
	cmd.Env = append(os.Environ(), "STRONGSWAN_CONF="+c.conf())
	out, err := os.OpenFile(filepath.Join(c.Dir, "charon.out"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("vpnaas: %w", err)
	}
	defer out.Close()
	cmd.Stdout, cmd.Stderr = out, out
	// Its own session: signals to the agent's group do not reach it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("vpnaas: start charon in %s: %w", c.Namespace, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	deadline := time.Now().Add(15 * time.Second)
	for {
		if _, err := c.swanctl(ctx, "--stats"); err == nil {
			return nil
		}
		select {
		case err := <-exited:
			return fmt.Errorf("vpnaas: charon in %s exited: %v: %s", c.Namespace, err, tailFile(filepath.Join(c.Dir, "charon.out"), 5))
		case <-ctx.Done():
			_ = cmd.Process.Kill()
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			return fmt.Errorf("vpnaas: charon in %s: vici socket not up after 15 s", c.Namespace)
		}
	}
}

// Stop ends the charon (SIGTERM, SIGKILL after 3 s).
func (c *Charon) Stop(ctx context.Context) error {
	pid := c.PID()
	if pid == 0 {
		return nil
	}
	_ = syscall.Kill(pid, syscall.SIGTERM)
	deadline := time.Now().Add(3 * time.Second)
	for syscall.Kill(pid, 0) == nil {
		if time.Now().After(deadline) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
			deadline = time.Now().Add(time.Hour)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	return nil
}

// Load replaces the charon's connections and secrets with conf (swanctl
// --load-all semantics: what conf lacks is unloaded). The file holds PSKs:
// it is written 0600 and removed after loading.
func (c *Charon) Load(ctx context.Context, conf string) error {
	f := filepath.Join(c.Dir, "swanctl.conf")
	if err := os.WriteFile(f, []byte(conf), 0o600); err != nil {
		return fmt.Errorf("vpnaas: %w", err)
	}
	defer os.Remove(f)
	if _, err := c.swanctl(ctx, "--load-all", "--noprompt", "--file", f); err != nil {
		return err
	}
	return nil
}

// Initiate starts a connection's child SA and waits (at most 10 s) for
// the outcome.
func (c *Charon) Initiate(ctx context.Context, name string) error {
	_, err := c.swanctl(ctx, "--initiate", "--child", name, "--timeout", "10")
	return err
}

// Terminate closes a connection's IKE SA (and its child SAs).
func (c *Charon) Terminate(ctx context.Context, name string) error {
	_, err := c.swanctl(ctx, "--terminate", "--ike", name, "--timeout", "3", "--force")
	return err
}

// SA states of a connection as charon lists them.
type SAState struct {
	// IKE is the IKE SA's state (ESTABLISHED, CONNECTING, ...), "" none.
	IKE string
	// Child is the child SA's state (INSTALLED, ...), "" none.
	Child string
}

// Up reports an established IKE SA with an installed child SA.
func (s SAState) Up() bool { return s.IKE == "ESTABLISHED" && s.Child == "INSTALLED" }

// SAs lists the IKE and child SAs by connection name (the best state of
// each when there are several, as during a rekey).
func (c *Charon) SAs(ctx context.Context) (map[string]SAState, error) {
	out, err := c.swanctl(ctx, "--list-sas", "--noblock")
	if err != nil {
		return nil, err
	}
	return parseSAs(out), nil
}

// parseSAs reads `swanctl --list-sas`: an IKE SA line starts in column 0
// ("name: #1, ESTABLISHED, IKEv2, ..."), its child SAs are indented
// ("  name: #2, reqid 1, INSTALLED, TUNNEL-in-UDP, ...").
func parseSAs(out string) map[string]SAState {
	res := map[string]SAState{}
	var ike string
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		line := sc.Text()
		trimmed := strings.TrimLeft(line, " ")
		name, rest, ok := strings.Cut(trimmed, ": #")
		if !ok || strings.ContainsAny(name, " '") {
			continue
		}
		fields := strings.Split(rest, ", ")
		if len(trimmed) == len(line) { // IKE SA
			ike = name
			if len(fields) > 1 {
				s := res[name]
				if s.IKE != "ESTABLISHED" {
					s.IKE = fields[1]
				}
				res[name] = s
			}
			continue
		}
		if len(line)-len(trimmed) == 2 && len(fields) > 2 && ike != "" {
			s := res[name]
			if s.Child != "INSTALLED" {
				s.Child = fields[2]
			}
			if s.IKE == "" {
				s.IKE = res[ike].IKE
			}
			res[name] = s
		}
	}
	return res
}

func (c *Charon) swanctl(ctx context.Context, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "swanctl", append(args, "--uri", c.URI())...)
	b, err := cmd.CombinedOutput()
	if err != nil {
		// swanctl's output may echo secrets' names, never their values.
		return "", fmt.Errorf("vpnaas: swanctl %s: %w: %s", args[0], err, lastLines(string(b), 3))
	}
	return string(b), nil
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}

func tailFile(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	return lastLines(string(b), n)
}
