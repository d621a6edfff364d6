package cluster

import (
	"bytes"
	"encoding/base64"
	"errors"
	"net"
	"slices"
	"strconv"
	"testing"
)

// TestKeyringSurvivesRestart: a rotated keyring is saved in the data dir
// and wins over the configured keys at the next start.
func TestKeyringSurvivesRestart(t *testing.T) {
	b64 := base64.StdEncoding.EncodeToString
	k1, k2 := bytes.Repeat([]byte{1}, 32), bytes.Repeat([]byte{2}, 32)
	dir := t.TempDir()
	port := freePortPair(t)
	start := func() *Cluster {
		c, err := New(Config{NodeName: "kr", DataDir: dir, BindAddr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)),
			Logger: testLogger(), GossipKeys: [][]byte{k1}})
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		return c
	}
	c := start()
	if err := c.KeyringInstall(b64(k2)); err != nil {
		t.Fatal(err)
	}
	if err := c.KeyringUse(b64(k2)); err != nil {
		t.Fatal(err)
	}
	if err := c.KeyringRemove(b64(k2)); err == nil {
		t.Fatal("removed the key in use")
	}
	if err := c.KeyringInstall("bm90IGEga2V5"); err == nil {
		t.Fatal("installed a 9-byte key")
	}
	if err := c.Shutdown(); err != nil {
		t.Fatal(err)
	}
	c = start()
	defer c.Shutdown()
	keys, err := c.Keyring()
	if err != nil || !slices.Equal(keys, []string{b64(k2), b64(k1)}) {
		t.Fatalf("keyring after restart %v %v, want [k2 k1]", keys, err)
	}

	plain, err := New(Config{NodeName: "pl", BindAddr: net.JoinHostPort("127.0.0.1", strconv.Itoa(freePortPair(t))), Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	if err := plain.Start(); err != nil {
		t.Fatal(err)
	}
	defer plain.Shutdown()
	if _, err := plain.Keyring(); !errors.Is(err, ErrGossipPlaintext) {
		t.Fatalf("plaintext node's keyring: %v", err)
	}
}
