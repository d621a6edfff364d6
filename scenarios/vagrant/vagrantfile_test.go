package vagrant

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// vagrantCmd runs vagrant on the repository's Vagrantfile with env added,
// in a state dir of the test's own.
func vagrantCmd(t *testing.T, env []string, args ...string) (string, error) {
	t.Helper()
	if _, err := exec.LookPath("vagrant"); err != nil {
		t.Skip("vagrant is not installed (.ci/deps-vagrant installs it)")
	}
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("vagrant", args...)
	cmd.Dir = t.TempDir()
	cmd.Env = append(append(os.Environ(), "VAGRANT_CWD="+root,
		"VAGRANT_DOTFILE_PATH="+filepath.Join(cmd.Dir, ".vagrant"), "VAGRANT_NO_COLOR=1"), env...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// TestVagrantfileValidates is what CI can check of the providers it cannot
// run: `vagrant validate` of the Vagrantfile with the libvirt provider
// (the plugin's own option checks; every `vagrant up` of the scenarios
// validates the docker provider), and that a bad topology is refused.
func TestVagrantfileValidates(t *testing.T) {
	// The libvirt provider uploads the binary with a file provisioner, whose
	// validation only asks that the source exists; a fresh clone has no
	// bin/neutrino, and validate must not depend on a build.
	bin := filepath.Join(t.TempDir(), "neutrino")
	if err := os.WriteFile(bin, nil, 0o755); err != nil {
		t.Fatal(err)
	}
	out, err := vagrantCmd(t, []string{"VAGRANT_DEFAULT_PROVIDER=libvirt", "NEUTRINO_VAGRANT_BINARY=" + bin}, "validate")
	if err != nil || !strings.Contains(out, "validated successfully") {
		t.Errorf("vagrant validate (libvirt): %v\n%s", err, out)
	}
	out, err = vagrantCmd(t, []string{"NEUTRINO_VAGRANT_SERVERS=x", "NEUTRINO_VAGRANT_BINARY=" + bin}, "validate")
	if err == nil || !strings.Contains(out, "Integer") {
		t.Errorf("NEUTRINO_VAGRANT_SERVERS=x: validate passed or said something else: %v\n%s", err, out)
	}
}

// TestScriptsParse checks the shell scripts' syntax (bash -n): the
// libvirt provider runs provision.sh where CI cannot.
func TestScriptsParse(t *testing.T) {
	for _, s := range []string{"provision.sh", "image.sh", "dockerd.sh", "../../.ci/deps-vagrant"} {
		if out, err := exec.Command("bash", "-n", s).CombinedOutput(); err != nil {
			t.Errorf("bash -n %s: %v\n%s", s, err, out)
		}
	}
}

// TestAgentFlags checks the agent command lines provision.sh builds, on a
// VM (kernel datapath): the flags of README "Running a cluster".
func TestAgentFlags(t *testing.T) {
	run := func(env ...string) string {
		cmd := exec.Command("bash", "provision.sh", "agent-args")
		cmd.Env = append(os.Environ(), env...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("provision.sh agent-args %v: %v\n%s", env, err, out)
		}
		return strings.Join(strings.Fields(string(out)), " ")
	}
	servers := "NV_SERVERS=10.0.1.11 10.0.1.12 10.0.1.13"
	got := run("NV_NAME=server-2", "NV_KIND=server", "NV_UNDERLAY_IP=10.0.1.12", "NV_MGMT_IP=10.0.0.12", servers)
	want := "agent --node server-2 --data-dir /var/lib/neutrino --bind 10.0.1.12:7301 " +
		"--join 10.0.1.11:7301 --join 10.0.1.12:7301 --join 10.0.1.13:7301 " +
		"--server --bootstrap-expect 3 --http 10.0.1.12:9696 --http-also 10.0.0.12:9696 " +
		"--flat-networks external --vlan-ranges external-vlan:100:199"
	if got != want {
		t.Errorf("server:\n got %s\nwant %s", got, want)
	}
	got = run("NV_NAME=gateway-1", "NV_KIND=gateway", "NV_UNDERLAY_IP=10.0.1.201", "NV_EXTERNAL_IP=10.0.2.201",
		"NV_VLAN_IP=10.0.3.201", servers)
	want = "agent --node gateway-1 --data-dir /var/lib/neutrino --bind 10.0.1.201:7301 " +
		"--join 10.0.1.11:7301 --join 10.0.1.12:7301 --join 10.0.1.13:7301 " +
		"--http 10.0.1.201:9696 --tunnel-ip 10.0.1.201 --ovsdb tcp:10.0.1.201:6640 " +
		"--chassis-roles gateway --datapath-type system --bridge-mappings external:br-ex " +
		"--bridge-mappings external-vlan:br-vlan"
	if got != want {
		t.Errorf("gateway:\n got %s\nwant %s", got, want)
	}

	// With the cluster's TLS files (what the Vagrantfile's trigger makes
	// with neutrino tls): the node's certificate, the gossip key, and a
	// chassis' OVSDB on ssl: with its own socket for the agent.
	dir := t.TempDir()
	for _, f := range []string{"neutrino-ca.pem", "gateway-1-chassis.pem", "gateway-1-chassis-key.pem", "server-2-server.pem", "server-2-server-key.pem"} {
		if err := os.WriteFile(filepath.Join(dir, f), []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "gossip.key"), []byte("S0VZ"), 0o600); err != nil {
		t.Fatal(err)
	}
	got = run("NV_NAME=gateway-1", "NV_KIND=gateway", "NV_UNDERLAY_IP=10.0.1.201", servers, "NV_TLS_DIR="+dir)
	want = "agent --node gateway-1 --data-dir /var/lib/neutrino --bind 10.0.1.201:7301 " +
		"--join 10.0.1.11:7301 --join 10.0.1.12:7301 --join 10.0.1.13:7301 " +
		"--tls-key " + dir + "/gateway-1-chassis-key.pem --tls-cert " + dir + "/gateway-1-chassis.pem " +
		"--tls-ca " + dir + "/neutrino-ca.pem --gossip-key S0VZ " +
		"--http 10.0.1.201:9696 --tunnel-ip 10.0.1.201 --ovsdb ssl:10.0.1.201:6640 " +
		"--ovsdb-local unix:/var/run/openvswitch/db.sock --chassis-roles gateway --datapath-type system"
	if got != want {
		t.Errorf("gateway with TLS:\n got %s\nwant %s", got, want)
	}
	got = run("NV_NAME=server-2", "NV_KIND=server", "NV_UNDERLAY_IP=10.0.1.12", "NV_MGMT_IP=10.0.0.12", servers, "NV_TLS_DIR="+dir)
	if !strings.Contains(got, "--tls-cert "+dir+"/server-2-server.pem") {
		t.Errorf("server with TLS: %s", got)
	}
	// A missing file is a loud failure, not a plaintext agent.
	cmd := exec.Command("bash", "provision.sh", "agent-args")
	cmd.Env = append(os.Environ(), "NV_NAME=chassis-9", "NV_KIND=chassis", "NV_UNDERLAY_IP=10.0.1.109", servers, "NV_TLS_DIR="+dir)
	if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), "TLS:") {
		t.Errorf("agent-args without the node's TLS files: %v\n%s", err, out)
	}
}
