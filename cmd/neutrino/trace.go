package main

import (
	"fmt"
	"net/url"
	"strings"

	"github.com/spf13/cobra"

	"neutrino/northbound/trace"
)

// newTraceCmd is `neutrino trace`: the logical path of a packet (GET
// /v1/trace), and with --ofproto what the source chassis' switch does with
// it (ovs-appctl ofproto/trace, run by that chassis' agent).
func newTraceCmd(a *app) *cobra.Command {
	var port, to, src, srcMAC string
	var ofproto bool
	cmd := &cobra.Command{
		Use:   "trace --port PORT --to IP[:PROTO/PORT]",
		Short: "Explain the path of a packet from a port (like ovn-trace): port security, security groups, routing, NAT, tunnel",
		Long: `Explain the logical path the first packet of a new connection from a port
takes to an IPv4 address, as the pipeline compiles it: port security,
security group rules (the rule that allows it, or that none does), routing
(router, next hop), NAT (floating IP, SNAT on the gateway chassis), the
tunnel to the destination's chassis and delivery. PROTO is icmp (echo
request, the default), tcp/PORT or udp/PORT. --src and --src-mac ask about a
spoofed packet. --ofproto (admin) also runs ovs-appctl ofproto/trace on the
source chassis and shows the switch's datapath actions.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if port == "" || to == "" {
				return fmt.Errorf("trace needs --port and --to")
			}
			if _, _, _, err := trace.ParseTo(to); err != nil {
				return err
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			p, err := c.Find(cmd.Context(), "ports", "port", port)
			if err != nil {
				return err
			}
			id, _ := p["id"].(string)
			q := url.Values{"port": {id}, "to": {to}}
			if src != "" {
				q.Set("src", src)
			}
			if srcMAC != "" {
				q.Set("src_mac", srcMAC)
			}
			if ofproto {
				q.Set("ofproto", "true")
			}
			var out struct {
				Trace trace.Result `json:"trace"`
			}
			if err := c.Do(cmd.Context(), "GET", "/v1/trace", q, nil, &out); err != nil {
				return err
			}
			if a.opts.output == outputJSON {
				return printJSON(a.stdout, out.Trace)
			}
			printTrace(a, &out.Trace, ofproto)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&port, "port", "", "the port (id or name) the packet enters from")
	f.StringVar(&to, "to", "", "destination: IP, IP:icmp, IP:tcp/PORT or IP:udp/PORT")
	f.StringVar(&src, "src", "", "source IPv4 address (default: the port's)")
	f.StringVar(&srcMAC, "src-mac", "", "source MAC (default: the port's)")
	f.BoolVar(&ofproto, "ofproto", false, "also run ovs-appctl ofproto/trace on the source chassis (admin)")
	return cmd
}

func printTrace(a *app, r *trace.Result, ofproto bool) {
	w := a.stdout
	fmt.Fprintf(w, "Packet: %s from port %s\n\n", r.Packet, r.PortID)
	for i, s := range r.Steps {
		where := ""
		if s.Chassis != "" {
			where = " on " + s.Chassis
		}
		fmt.Fprintf(w, "%2d. table %d %s%s: %s\n    %s\n", i+1, s.Table, s.Stage, where, strings.ToUpper(s.Verdict), s.Detail)
		if s.Object != "" {
			fmt.Fprintf(w, "    (%s)\n", s.Object)
		}
	}
	fmt.Fprintf(w, "\nVerdict: %s\n", r.Verdict)
	if !ofproto {
		return
	}
	for _, o := range r.OFProto {
		fmt.Fprintf(w, "\nofproto/trace on %s: ovs-appctl ofproto/trace br-int '%s'\n", o.Chassis, o.Flow)
		if o.Error != "" {
			fmt.Fprintf(w, "  error: %s\n", o.Error)
			continue
		}
		fmt.Fprintln(w, strings.TrimRight(o.Output, "\n"))
		fmt.Fprintf(w, "Switch verdict on %s: datapath actions %q\n", o.Chassis, o.Actions)
	}
}
