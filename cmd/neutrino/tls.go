package main

import (
	"fmt"
	"net"
	"path/filepath"

	"github.com/spf13/cobra"

	"neutrino/cluster/tlsutil"
)

// newTLSCmd is `neutrino tls`: the cluster's own CA and node certificates,
// so an operator needs no other tool (Consul's `consul tls`).
func newTLSCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{Use: "tls", Short: "Create the cluster's CA and node certificates"}
	ca := &cobra.Command{Use: "ca", Short: "The cluster's certificate authority"}
	var caDir string
	caCreate := &cobra.Command{
		Use:   "create",
		Short: "Create a CA (ECDSA P-256, valid 5 years): neutrino-ca.pem and neutrino-ca-key.pem",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			c, k, err := tlsutil.CreateCA(caDir)
			if err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "==> CA certificate: %s\n==> CA key: %s (keep it off the nodes)\n", c, k)
			return nil
		},
	}
	caCreate.Flags().StringVar(&caDir, "dir", ".", "directory to write the files to")
	ca.AddCommand(caCreate)

	cert := &cobra.Command{Use: "cert", Short: "Node certificates"}
	var (
		dir, caFile, caKey, node string
		server, chassis          bool
		ips                      []net.IP
		dns                      []string
	)
	certCreate := &cobra.Command{
		Use:   "create --node NAME (--server | --chassis)",
		Short: "Create a node certificate (valid 1 year): NAME-server.pem or NAME-chassis.pem and its key",
		Long: `Create a node certificate signed by the CA. The node name is the
certificate's CommonName and its URI SAN neutrino://node/NAME; its role
(--server or --chassis) is the subject's OrganizationalUnit. The
certificate also names localhost and 127.0.0.1, for API clients on the node.`,
		Args: cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			if server == chassis {
				return fmt.Errorf("give one of --server or --chassis")
			}
			role := tlsutil.RoleChassis
			if server {
				role = tlsutil.RoleServer
			}
			// Every agent serves the API (a chassis its keyring and
			// health), so local clients can verify it.
			ips = append(ips, net.IPv4(127, 0, 0, 1))
			dns = append(dns, "localhost")
			if caFile == "" {
				caFile = filepath.Join(dir, tlsutil.CAFile)
			}
			if caKey == "" {
				caKey = filepath.Join(dir, tlsutil.CAKeyFile)
			}
			c, k, err := tlsutil.CreateCert(dir, caFile, caKey,
				tlsutil.CertRequest{Node: node, Role: role, IPs: ips, DNS: dns})
			if err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "==> %s certificate for %s: %s\n==> key: %s\n", role, node, c, k)
			return nil
		},
	}
	f := certCreate.Flags()
	f.StringVar(&dir, "dir", ".", "directory of the CA files and where to write the node's files")
	f.StringVar(&caFile, "ca-cert", "", "CA certificate (default DIR/neutrino-ca.pem)")
	f.StringVar(&caKey, "ca-key", "", "CA key (default DIR/neutrino-ca-key.pem)")
	f.StringVar(&node, "node", "", "node name (required): the agent's --node")
	f.BoolVar(&server, "server", false, "a controller server's certificate")
	f.BoolVar(&chassis, "chassis", false, "a chassis agent's certificate")
	f.IPSliceVar(&ips, "ip", nil, "IP address clients reach the node at (repeatable)")
	f.StringSliceVar(&dns, "dns", nil, "DNS name clients reach the node at (repeatable)")
	_ = certCreate.MarkFlagRequired("node")
	cert.AddCommand(certCreate)
	cmd.AddCommand(ca, cert)
	return cmd
}
