package ovsdb

import (
	"context"
	"fmt"

	"neutrino/southbound/ovsdb/vswitchd"
)

// SetSSL points Open_vSwitch's SSL row at a private key, certificate and
// CA certificate (files ovs-vswitchd reads), as `ovs-vsctl set-ssl` does:
// the switch's `ssl:` controller connections then use them. The old row,
// no longer referenced, is garbage-collected by ovsdb-server.
func (c *Client) SetSSL(ctx context.Context, key, cert, ca string) error {
	root, err := c.root(ctx)
	if err != nil {
		return err
	}
	row := &vswitchd.SSL{UUID: "new_ssl", PrivateKey: key, Certificate: cert, CaCert: ca}
	ops, err := c.ovs.Create(row)
	if err != nil {
		return fmt.Errorf("ovsdb %s: create SSL: %w", c.endpoint, err)
	}
	r := vswitchd.OpenvSwitch{UUID: root.UUID, SSL: &row.UUID}
	upd, err := c.ovs.Where(&r).Update(&r, &r.SSL)
	if err != nil {
		return fmt.Errorf("ovsdb %s: set Open_vSwitch ssl: %w", c.endpoint, err)
	}
	_, err = c.TransactAndCheck(ctx, append(ops, upd...)...)
	return err
}
