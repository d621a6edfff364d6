// Package keystonetest runs a real Keystone (Debian's keystone package)
// on loopback for tests: SQLite database, fernet keys and configuration in
// a temporary directory, served by uwsgi, stopped by PID at cleanup.
package keystonetest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"neutrino/cluster/clustertest"
)

// AdminPassword is the bootstrap admin's password (user admin, project
// admin, domain Default).
const AdminPassword = "admin-secret"

// Region is the region bootstrap creates and services are registered in.
const Region = "RegionOne"

// Keystone is a running Keystone.
type Keystone struct {
	// URL is the identity endpoint, http://127.0.0.1:PORT/v3.
	URL string
	t   testing.TB
	dir string
	hc  *http.Client
	// admin is a cached admin token for the helper's own calls.
	admin    string
	adminExp time.Time
}

// Options tune a Keystone.
type Options struct {
	// Expiration is the lifetime of the tokens it issues (an hour when
	// zero, Keystone's default).
	Expiration time.Duration
}

// manageScript runs keystone-manage db_sync, then the keystone-manage
// command in its arguments (after the config file), in one process.
const manageScript = `import sys
from keystone.cmd import cli
conf = sys.argv[1]
cli.main(argv=['keystone-manage', '--config-file', conf, 'db_sync'])
cli.CONF.clear()
cli.main(argv=['keystone-manage', '--config-file', conf] + sys.argv[2:])
`

// Binaries Start needs.
var binaries = []string{"keystone-manage", "uwsgi", "keystone-wsgi-public"}

// Start sets up and starts a Keystone and waits (up to 3 minutes: a loaded machine) until
// it answers; the test fails when the package is not installed (.ci/deps).
func Start(t testing.TB, opts Options) *Keystone {
	t.Helper()
	for _, b := range binaries {
		if _, err := exec.LookPath(b); err != nil {
			t.Fatalf("keystonetest: %s is not installed (.ci/deps installs keystone, uwsgi-core, uwsgi-plugin-python3): %v", b, err)
		}
	}
	exp := opts.Expiration
	if exp == 0 {
		exp = time.Hour
	}
	dir := t.TempDir()
	port := clustertest.FreePort(t)
	k := &Keystone{URL: fmt.Sprintf("http://127.0.0.1:%d/v3", port), t: t, dir: dir, hc: &http.Client{Timeout: 60 * time.Second}}
	conf := filepath.Join(dir, "keystone.conf")
	// bcrypt's fewest rounds: users are made by tests, and hashing at
	// the default cost would be most of a test's time. Keystone's own
	// cache in memory: without it a token validation costs about 1.5 s
	// of CPU (every role and catalog lookup goes to SQLite); one uwsgi
	// process with one thread keeps it coherent and SQLite unshared.
	text := fmt.Sprintf(`[DEFAULT]
use_stderr = true
log_file =
[database]
connection = sqlite:///%[1]s/keystone.db
[token]
provider = fernet
expiration = %[2]d
[fernet_tokens]
key_repository = %[1]s/fernet-keys
[fernet_receipts]
key_repository = %[1]s/fernet-keys
[credential]
key_repository = %[1]s/credential-keys
[identity]
password_hash_rounds = 4
[cache]
enabled = true
backend = dogpile.cache.memory
[oslo_policy]
policy_file = %[1]s/policy.yaml
`, dir, int(exp/time.Second))
	if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "policy.yaml"), []byte("{}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	// db_sync and bootstrap in one Python process: each keystone-manage
	// start imports Keystone anew (15 to 60 s on a loaded machine).
	// fernet_setup and credential_setup only write keys: done here.
	for _, repo := range []string{"fernet-keys", "credential-keys"} {
		writeFernetKeys(t, filepath.Join(dir, repo))
	}
	manage := exec.Command("/usr/bin/python3", "-c", manageScript, conf, "bootstrap", "--bootstrap-password", AdminPassword,
		"--bootstrap-admin-url", k.URL, "--bootstrap-internal-url", k.URL, "--bootstrap-public-url", k.URL,
		"--bootstrap-region-id", Region)
	if out, err := manage.CombinedOutput(); err != nil {
		t.Fatalf("keystone-manage db_sync, bootstrap: %v\n%s", err, out)
	}
	t.Logf("keystone db_sync and bootstrap: %s", time.Since(start).Round(time.Millisecond))

	logf, err := os.Create(filepath.Join(dir, "uwsgi.log"))
	if err != nil {
		t.Fatal(err)
	}
	// One process, one thread (see the conf). uwsgi's --http-socket
	// closes every connection after its answer: the header says so, else
	// clients reuse a closed connection.
	cmd := exec.Command("uwsgi", "--plugin", "python3", "--http-socket", fmt.Sprintf("127.0.0.1:%d", port),
		"--wsgi-file", "/usr/bin/keystone-wsgi-public", "--master", "--processes", "1", "--threads", "1",
		"--die-on-term", "--need-app", "--lazy-apps", "--add-header", "Connection: close", "--env", "OS_KEYSTONE_CONFIG_FILES="+conf)
	cmd.Stdout, cmd.Stderr = logf, logf
	// Its own process group: cleanup ends the master and its workers.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("uwsgi: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-exited
		}
		logf.Close()
	})
	deadline := time.Now().Add(3 * time.Minute)
	for {
		select {
		case err := <-exited:
			exited <- err
			t.Fatalf("uwsgi exited: %v\n%s", err, k.log())
		default:
		}
		resp, err := k.hc.Get(k.URL)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("keystone did not answer on %s within 3 minutes: %v\n%s", k.URL, err, k.log())
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("keystone answers on %s after %s", k.URL, time.Since(start).Round(time.Millisecond))
	return k
}

// writeFernetKeys makes a key repository as keystone-manage fernet_setup
// does: files 0 and 1, each the URL-safe base64 of 32 random bytes.
func writeFernetKeys(t testing.TB, repo string) {
	t.Helper()
	if err := os.Mkdir(repo, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"0", "1"} {
		key := make([]byte, 32)
		if _, err := rand.Read(key); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(repo, name), []byte(base64.URLEncoding.EncodeToString(key)), 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// log is the tail of uwsgi's log, for failures.
func (k *Keystone) log() string {
	data, _ := os.ReadFile(filepath.Join(k.dir, "uwsgi.log"))
	if len(data) > 4000 {
		data = data[len(data)-4000:]
	}
	return string(data)
}

// Token authenticates with a password, scoped to a project (all in the
// Default domain), and returns the token and its expiry.
func (k *Keystone) Token(user, password, project string) (string, time.Time, error) {
	body := map[string]any{"auth": map[string]any{
		"identity": map[string]any{"methods": []string{"password"}, "password": map[string]any{
			"user": map[string]any{"name": user, "domain": map[string]any{"name": "Default"}, "password": password}}},
		"scope": map[string]any{"project": map[string]any{"name": project, "domain": map[string]any{"name": "Default"}}},
	}}
	var out struct {
		Token struct {
			ExpiresAt string `json:"expires_at"`
		} `json:"token"`
	}
	hdr, err := k.call("", "POST", "/auth/tokens", body, &out, http.StatusCreated)
	if err != nil {
		return "", time.Time{}, err
	}
	exp, err := ParseTime(out.Token.ExpiresAt)
	return hdr.Get("X-Subject-Token"), exp, err
}

// AdminToken is a token of the bootstrap admin (project admin), reused
// while it has 30 s left. Not safe for concurrent use.
func (k *Keystone) AdminToken() string {
	k.t.Helper()
	if k.admin != "" && time.Now().Add(30*time.Second).Before(k.adminExp) {
		return k.admin
	}
	tok, exp, err := k.Token("admin", AdminPassword, "admin")
	if err != nil {
		k.t.Fatalf("keystone admin token: %v", err)
	}
	k.admin, k.adminExp = tok, exp
	return tok
}

// CreateProject creates a project in the Default domain and returns its id.
func (k *Keystone) CreateProject(name string) string {
	k.t.Helper()
	var out struct {
		Project struct{ ID string } `json:"project"`
	}
	k.must("POST", "/projects", map[string]any{"project": map[string]any{"name": name, "domain_id": "default"}}, &out, http.StatusCreated)
	return out.Project.ID
}

// CreateUser creates a user with a password and grants it roles (by name:
// admin, member, reader, service, ...) on a project; it returns the user id.
func (k *Keystone) CreateUser(name, password, projectID string, roles ...string) string {
	k.t.Helper()
	var out struct {
		User struct{ ID string } `json:"user"`
	}
	k.must("POST", "/users", map[string]any{"user": map[string]any{"name": name, "password": password, "domain_id": "default"}}, &out, http.StatusCreated)
	for _, r := range roles {
		k.must("PUT", "/projects/"+projectID+"/users/"+out.User.ID+"/roles/"+k.roleID(r), nil, nil, http.StatusNoContent)
	}
	return out.User.ID
}

// roleID finds a role by name, creating it when missing (service).
func (k *Keystone) roleID(name string) string {
	k.t.Helper()
	var out struct {
		Roles []struct{ ID string } `json:"roles"`
	}
	k.must("GET", "/roles?name="+name, nil, &out, http.StatusOK)
	if len(out.Roles) > 0 {
		return out.Roles[0].ID
	}
	var created struct {
		Role struct{ ID string } `json:"role"`
	}
	k.must("POST", "/roles", map[string]any{"role": map[string]any{"name": name}}, &created, http.StatusCreated)
	return created.Role.ID
}

// Revoke revokes a token (DELETE /v3/auth/tokens).
func (k *Keystone) Revoke(token string) {
	k.t.Helper()
	if _, err := k.call(token, "DELETE", "/auth/tokens", nil, nil, http.StatusNoContent, "X-Subject-Token", token); err != nil {
		k.t.Fatalf("revoke: %v", err)
	}
}

// RegisterService adds a service of a type (network) with public,
// internal and admin endpoints at url in Region, so that clients find it
// in their token's catalog.
func (k *Keystone) RegisterService(typ, name, url string) {
	k.t.Helper()
	var out struct {
		Service struct{ ID string } `json:"service"`
	}
	k.must("POST", "/services", map[string]any{"service": map[string]any{"type": typ, "name": name}}, &out, http.StatusCreated)
	for _, iface := range []string{"public", "internal", "admin"} {
		k.must("POST", "/endpoints", map[string]any{"endpoint": map[string]any{
			"service_id": out.Service.ID, "interface": iface, "url": url, "region_id": Region}}, nil, http.StatusCreated)
	}
}

// must is call as the admin, failing the test on error.
func (k *Keystone) must(method, path string, body, out any, want int) {
	k.t.Helper()
	if _, err := k.call(k.AdminToken(), method, path, body, out, want); err != nil {
		k.t.Fatal(err)
	}
}

// call sends a request to Keystone (with a token unless it is "") and
// decodes the answer into out; extra are header name/value pairs.
func (k *Keystone) call(token, method, path string, body, out any, want int, extra ...string) (http.Header, error) {
	var rd io.Reader
	if body != nil {
		data, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(data)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, k.URL+path, rd)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("X-Auth-Token", token)
	}
	for i := 0; i+1 < len(extra); i += 2 {
		req.Header.Set(extra[i], extra[i+1])
	}
	resp, err := k.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("keystone %s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("keystone %s %s: %w", method, path, err)
	}
	if resp.StatusCode != want {
		return nil, fmt.Errorf("keystone %s %s: %d (want %d): %s", method, path, resp.StatusCode, want, data)
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return nil, fmt.Errorf("keystone %s %s: %w", method, path, err)
		}
	}
	return resp.Header, nil
}

// ShortToken returns a token of a user that expires at about expires,
// sooner than the configured lifetime: Keystone caps the lifetime of a
// token issued for an application credential at the credential's expiry.
func (k *Keystone) ShortToken(user, password, project string, expires time.Time) (string, time.Time, error) {
	tok, _, err := k.Token(user, password, project)
	if err != nil {
		return "", time.Time{}, err
	}
	var self struct {
		Token struct {
			User struct{ ID string } `json:"user"`
		} `json:"token"`
	}
	if _, err := k.call(tok, "GET", "/auth/tokens", nil, &self, http.StatusOK, "X-Subject-Token", tok); err != nil {
		return "", time.Time{}, err
	}
	var cred struct {
		Cred struct {
			ID     string `json:"id"`
			Secret string `json:"secret"`
		} `json:"application_credential"`
	}
	body := map[string]any{"application_credential": map[string]any{
		"name": fmt.Sprintf("short-%d", time.Now().UnixNano()), "expires_at": expires.UTC().Format("2006-01-02T15:04:05")}}
	if _, err := k.call(tok, "POST", "/users/"+self.Token.User.ID+"/application_credentials", body, &cred, http.StatusCreated); err != nil {
		return "", time.Time{}, err
	}
	auth := map[string]any{"auth": map[string]any{"identity": map[string]any{
		"methods":                []string{"application_credential"},
		"application_credential": map[string]any{"id": cred.Cred.ID, "secret": cred.Cred.Secret}}}}
	var out struct {
		Token struct {
			ExpiresAt string `json:"expires_at"`
		} `json:"token"`
	}
	hdr, err := k.call("", "POST", "/auth/tokens", auth, &out, http.StatusCreated)
	if err != nil {
		return "", time.Time{}, err
	}
	exp, err := ParseTime(out.Token.ExpiresAt)
	return hdr.Get("X-Subject-Token"), exp, err
}

// ParseTime reads Keystone's times: RFC 3339, or without a zone (UTC) as
// it renders an application credential's expiry.
func ParseTime(s string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	return time.Parse("2006-01-02T15:04:05.999999999", s)
}
