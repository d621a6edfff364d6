package cluster

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/hashicorp/memberlist"
)

// keyringFile holds the gossip keys (base64, the primary first) in
// DataDir, so a rotated keyring survives a restart (Consul's
// local.keyring).
const keyringFile = "gossip-keyring.json"

// ErrGossipPlaintext: the keyring was asked about on a node whose gossip
// is not encrypted (no --gossip-key).
var ErrGossipPlaintext = errors.New("gossip encryption is off on this node (no --gossip-key)")

// DecodeGossipKey reads a gossip key as given on the command line: base64
// of 16, 24 or 32 bytes (AES-128, -192, -256).
func DecodeGossipKey(s string) ([]byte, error) {
	k, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("gossip key: not base64: %w", err)
	}
	if n := len(k); n != 16 && n != 24 && n != 32 {
		return nil, fmt.Errorf("gossip key: %d bytes, want 16, 24 or 32 (e.g. `head -c32 /dev/urandom | base64`)", n)
	}
	return k, nil
}

// loadKeyring builds the gossip keyring: the one saved in DataDir when
// there is one, else Config.GossipKeys; nil when gossip is plaintext.
func (c *Cluster) loadKeyring() (*memberlist.Keyring, error) {
	keys := c.cfg.GossipKeys
	if c.cfg.DataDir != "" {
		buf, err := os.ReadFile(filepath.Join(c.cfg.DataDir, keyringFile))
		switch {
		case err == nil:
			var saved []string
			if err := json.Unmarshal(buf, &saved); err != nil {
				return nil, fmt.Errorf("cluster: %s: %w", keyringFile, err)
			}
			keys = nil
			for _, s := range saved {
				k, err := DecodeGossipKey(s)
				if err != nil {
					return nil, fmt.Errorf("cluster: %s: %w", keyringFile, err)
				}
				keys = append(keys, k)
			}
			if len(c.cfg.GossipKeys) > 0 {
				c.log.Info("gossip keyring loaded from the data dir; --gossip-key is ignored", "keys", len(keys))
			}
		case !errors.Is(err, os.ErrNotExist):
			return nil, fmt.Errorf("cluster: read gossip keyring: %w", err)
		}
	}
	if len(keys) == 0 {
		return nil, nil
	}
	kr, err := memberlist.NewKeyring(keys, keys[0])
	if err != nil {
		return nil, fmt.Errorf("cluster: gossip keyring: %w", err)
	}
	c.keyring = kr
	return kr, c.saveKeyring()
}

// saveKeyring writes the keyring to DataDir (when there is one).
func (c *Cluster) saveKeyring() error {
	if c.cfg.DataDir == "" || c.keyring == nil {
		return nil
	}
	var out []string
	for _, k := range c.keyring.GetKeys() { // the primary first
		out = append(out, base64.StdEncoding.EncodeToString(k))
	}
	buf, err := json.Marshal(out)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(c.cfg.DataDir, 0o750); err != nil {
		return err
	}
	if err := writeFileAtomic(filepath.Join(c.cfg.DataDir, keyringFile), buf); err != nil {
		return fmt.Errorf("cluster: save gossip keyring: %w", err)
	}
	return os.Chmod(filepath.Join(c.cfg.DataDir, keyringFile), 0o600)
}

// Keyring lists this node's gossip keys (base64), the primary (the one
// it sends with) first.
func (c *Cluster) Keyring() ([]string, error) {
	if c.keyring == nil {
		return nil, ErrGossipPlaintext
	}
	var out []string
	for _, k := range c.keyring.GetKeys() {
		out = append(out, base64.StdEncoding.EncodeToString(k))
	}
	return out, nil
}

// KeyringInstall adds a key this node accepts gossip with. Rotation
// without downtime: install the new key on every node, then use it on
// every node, then remove the old one everywhere; each node accepts every
// installed key, so no message is lost at any step.
func (c *Cluster) KeyringInstall(key string) error {
	return c.keyringOp(key, (*memberlist.Keyring).AddKey)
}

// KeyringUse makes an installed key the one this node sends with.
func (c *Cluster) KeyringUse(key string) error {
	return c.keyringOp(key, (*memberlist.Keyring).UseKey)
}

// KeyringRemove removes a key that is not the primary.
func (c *Cluster) KeyringRemove(key string) error {
	return c.keyringOp(key, (*memberlist.Keyring).RemoveKey)
}

func (c *Cluster) keyringOp(key string, op func(*memberlist.Keyring, []byte) error) error {
	if c.keyring == nil {
		return ErrGossipPlaintext
	}
	k, err := DecodeGossipKey(key)
	if err != nil {
		return err
	}
	c.keyringMu.Lock()
	defer c.keyringMu.Unlock()
	if err := op(c.keyring, k); err != nil {
		return fmt.Errorf("gossip keyring: %w", err)
	}
	return c.saveKeyring()
}
