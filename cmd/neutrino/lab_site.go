package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"neutrino/scenarios/lab"
	"neutrino/southbound/vpnaas"
)

// newLabSiteCmd is `neutrino lab site add|connect`: remote VPN sites on
// the lab's external network (scenarios/lab/site.go).
func newLabSiteCmd(a *app, o *labOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "site",
		Short: "Remote VPN sites: a strongSwan gateway on the external network with a subnet behind it",
	}
	add := &cobra.Command{
		Use:   "add",
		Short: "Add the next remote site (site-N: WAN 198.51.100.(251-N), subnet 10.(98+N).0.0/24, a host at .10)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := lab.AddSite(cmd.Context(), o.dir)
			if err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "%s: WAN %s on physnet %s, subnet %s (gateway %s), host %s (lab exec %s-host -- ...)\n",
				s.Name, s.WAN, lab.PhysnetExternal, s.Subnet, s.GatewayIP, s.HostIP, s.Name)
			return nil
		},
	}
	var c vpnaas.Conn
	connect := &cobra.Command{
		Use:   "connect SITE",
		Short: "Load the site's IPsec connection to a router's gateway address (replaces what it had)",
		Long: `Load the site's one IPsec connection: to --peer (the router's external
address) with --psk, its subnet as the local selector and --peer-cidr (the
router's subnets) as the remote one; algorithms as Neutron names them.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			st, err := lab.LoadState(o.dir)
			if err != nil {
				return err
			}
			s := st.Site(args[0])
			if s == nil {
				return fmt.Errorf("no site %q", args[0])
			}
			c.ID, c.LocalAddr, c.LocalCIDRs = "lab", s.WANIP(), []string{s.Subnet}
			c.ESPEncryption, c.ESPAuth, c.ESPPFS = c.IKEEncryption, c.IKEAuth, c.IKEPFS
			c.Transform, c.Mode, c.Initiator, c.Phase1Mode = "esp", "tunnel", "bi-directional", "main"
			return lab.SiteConnect(cmd.Context(), o.dir, s.Name, []vpnaas.Conn{c})
		},
	}
	f := connect.Flags()
	f.StringVar(&c.PeerAddress, "peer", "", "the router's external address")
	f.StringVar(&c.PSK, "psk", "", "pre-shared key")
	f.StringSliceVar(&c.PeerCIDRs, "peer-cidr", nil, "subnets behind the router (repeatable)")
	f.StringVar(&c.IKEVersion, "ike-version", "v2", "v1 or v2")
	f.StringVar(&c.IKEEncryption, "encryption", "aes-128", "encryption algorithm (IKE and ESP)")
	f.StringVar(&c.IKEAuth, "auth", "sha1", "auth algorithm (IKE and ESP)")
	f.StringVar(&c.IKEPFS, "pfs", "group5", "PFS group (IKE and ESP)")
	f.StringVar(&c.DPDAction, "dpd-action", "restart", "what the site does when the router's gateway stops answering")
	f.IntVar(&c.DPDInterval, "dpd-interval", 1, "DPD interval, seconds")
	f.IntVar(&c.DPDTimeout, "dpd-timeout", 3, "DPD timeout, seconds (IKEv1)")
	for _, req := range []string{"peer", "psk", "peer-cidr"} {
		_ = connect.MarkFlagRequired(req)
	}
	cmd.AddCommand(add, connect)
	return cmd
}
