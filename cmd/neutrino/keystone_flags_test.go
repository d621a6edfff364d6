package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"neutrino/northbound"
)

// TestKeystoneFlags checks what --auth-strategy keystone refuses, and that
// the password is read from its file without the trailing newline.
func TestKeystoneFlags(t *testing.T) {
	dir := t.TempDir()
	good, empty := filepath.Join(dir, "pw"), filepath.Join(dir, "empty")
	if err := os.WriteFile(good, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(empty, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		url, file string
		ttl       time.Duration
		wantErr   string
	}{
		{"", good, time.Minute, "needs --keystone-url"},
		{"http://k/v3", "", time.Minute, "needs --keystone-password-file"},
		{"http://k/v3", filepath.Join(dir, "missing"), time.Minute, "no such file"},
		{"http://k/v3", empty, time.Minute, "is empty"},
		{"http://k/v3", good, 0, "--token-cache-ttl must be positive"},
		{"http://k/v3", good, time.Minute, ""},
	} {
		k := northbound.KeystoneConfig{URL: c.url, CacheTTL: c.ttl}
		err := keystoneFlags(&k, c.file)
		if c.wantErr == "" {
			if err != nil || k.Password != "s3cret" {
				t.Fatalf("%+v: %v, password %q", c, err, k.Password)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), c.wantErr) {
			t.Fatalf("%+v: %v, want %q", c, err, c.wantErr)
		}
	}
}
