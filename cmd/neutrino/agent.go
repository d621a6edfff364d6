package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"neutrino/southbound/dhcp"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"neutrino/cluster"
	"neutrino/cluster/tlsutil"
	"neutrino/cmd/neutrino/agent"
	"neutrino/fsm"
	"neutrino/northbound"
)

// newAgentCmd is `neutrino agent`: the daemon of every node.
func newAgentCmd() *cobra.Command {
	var (
		cfg        agent.Config
		logLevel   string
		vniRanges  []string
		greRanges  []string
		vlanRanges []string
		mappings   []string
		httpFDs    []int
		httpAlso   []string
		tokensFile string
		tlsCert    string
		tlsKey     string
		tlsCA      string
		gossipKey  string
		ksPassFile string
	)
	api := northbound.DefaultConfig()
	cmd := &cobra.Command{
		Use:   "agent",
		Short: "Run a Neutrino agent (a controller server with --server)",
		Long: `Run a Neutrino agent.

With --server the agent is a controller: a Raft voter that keeps the
replicated state and serves the Neutron API. --bind ADDR:PORT is the gossip
(memberlist, TCP and UDP) address; Raft listens on PORT+1 of the same
address. --http is the API address.

Servers find each other through gossip (--join) and bootstrap Raft once
--bootstrap-expect servers are seen. A restarted server rejoins from its
--data-dir with no manual step.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			lvl := new(slog.LevelVar)
			if err := lvl.UnmarshalText([]byte(logLevel)); err != nil {
				return fmt.Errorf("--log-level: %w", err)
			}
			cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lvl}))
			var err error
			if api.VNIRanges, err = parseRanges(vniRanges); err != nil {
				return fmt.Errorf("--vni-ranges: %w", err)
			}
			if api.GRERanges, err = parseRanges(greRanges); err != nil {
				return fmt.Errorf("--gre-ranges: %w", err)
			}
			if api.VLANRanges, err = parseVLANRanges(vlanRanges); err != nil {
				return fmt.Errorf("--vlan-ranges: %w", err)
			}
			if tokensFile != "" {
				if api.Tokens, err = northbound.LoadTokens(tokensFile); err != nil {
					return err
				}
			}
			if api.AuthStrategy != northbound.AuthNoAuth && api.AuthStrategy != northbound.AuthToken && api.AuthStrategy != northbound.AuthKeystone {
				return fmt.Errorf("--auth-strategy %q: want noauth, token or keystone", api.AuthStrategy)
			}
			if api.AuthStrategy == northbound.AuthKeystone {
				if err := keystoneFlags(&api.Keystone, ksPassFile); err != nil {
					return err
				}
				if !cfg.Server {
					// The same service user authenticates a chassis
					// agent's own calls (watch, status reports).
					ks, err := northbound.NewKeystoneTokens(api.Keystone, nil)
					if err != nil {
						return err
					}
					cfg.AuthToken = ks.Token
				}
			}
			if api.AuthStrategy == northbound.AuthToken && tokensFile == "" {
				return fmt.Errorf("--auth-strategy token needs --tokens-file")
			}
			if err := fsm.CheckQuotaLimits(api.QuotaDefaults); err != nil {
				return fmt.Errorf("--quota-defaults: %w", err)
			}
			cfg.API = api
			if cfg.Chassis.BridgeMappings, err = parseMappings(mappings); err != nil {
				return fmt.Errorf("--bridge-mappings: %w", err)
			}
			for _, fd := range httpFDs {
				l, err := net.FileListener(os.NewFile(uintptr(fd), fmt.Sprintf("http-fd-%d", fd)))
				if err != nil {
					return fmt.Errorf("--http-fd %d: %w", fd, err)
				}
				cfg.ExtraHTTP = append(cfg.ExtraHTTP, l)
			}
			for _, addr := range httpAlso {
				l, err := net.Listen("tcp", addr)
				if err != nil {
					return fmt.Errorf("--http-also %s: %w", addr, err)
				}
				cfg.ExtraHTTP = append(cfg.ExtraHTTP, l)
			}
			if tlsCert != "" || tlsKey != "" || tlsCA != "" {
				if tlsCert == "" || tlsKey == "" || tlsCA == "" {
					return fmt.Errorf("--tls-cert, --tls-key and --tls-ca go together")
				}
				if cfg.TLS, err = tlsutil.Load(tlsCert, tlsKey, tlsCA); err != nil {
					return err
				}
				cfg.TLSFiles = agent.TLSFiles{Key: tlsKey, Cert: tlsCert, CA: tlsCA}
				want := tlsutil.RoleChassis
				if cfg.Server {
					want = tlsutil.RoleServer
				}
				if cfg.TLS.Role != want {
					return fmt.Errorf("--tls-cert is a %q certificate; this agent needs a %s one (neutrino tls cert create --%s)", cfg.TLS.Role, want, want)
				}
			}
			if gossipKey != "" {
				k, err := cluster.DecodeGossipKey(gossipKey)
				if err != nil {
					return fmt.Errorf("--gossip-key: %w", err)
				}
				cfg.GossipKeys = [][]byte{k}
			}
			if cfg.DeadServerCleanup == 0 {
				cfg.DeadServerCleanup = -1 // the flag's 0 is "never"; the config's is "default"
			}
			a, err := agent.Start(cfg)
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			select {
			case <-ctx.Done():
			case err := <-a.Done():
				if err != nil {
					return err
				}
			}
			sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			return a.Shutdown(sctx)
		},
	}
	f := cmd.Flags()
	f.BoolVar(&cfg.Server, "server", false, "run as a controller server (Raft voter, API)")
	f.StringVar(&cfg.Node, "node", "", "node name, unique in the cluster (default: hostname)")
	f.StringVar(&cfg.DataDir, "data-dir", "", "directory for the Raft log, snapshots and peers")
	f.StringVar(&cfg.Bind, "bind", "127.0.0.1:7301", "gossip address; Raft uses the next port")
	f.StringVar(&cfg.Advertise, "advertise", "", "address other nodes reach this one at (default: --bind's host)")
	f.StringVar(&cfg.HTTP, "http", "127.0.0.1:9696", "API listen address")
	f.StringVar(&cfg.OpenFlow, "openflow", "", "server: OpenFlow listen address for the chassis' switches, tcp:IP:PORT or unix:PATH (default: --bind host, --bind port + 2)")
	f.Float64Var(&cfg.PacketInRate, "packet-in-rate", agent.DefaultPacketInRate, "server: packet-ins per second taken from each chassis' switch; the excess is dropped (-1: no limit)")
	f.IntVar(&cfg.PacketInBurst, "packet-in-burst", agent.DefaultPacketInBurst, "server: burst of --packet-in-rate")
	f.StringSliceVar(&cfg.Join, "join", nil, "gossip address of a node to join (repeatable)")
	f.IntVar(&cfg.BootstrapExpect, "bootstrap-expect", 0, "bootstrap Raft once this many servers are seen")
	f.Uint64Var(&cfg.SnapshotThreshold, "snapshot-threshold", 0, "Raft log entries between snapshots (0: default)")
	f.Uint64Var(&cfg.TrailingLogs, "trailing-logs", 0, "Raft log entries kept after a snapshot (0: default)")
	f.IntVar(&cfg.RaftMultiplier, "raft-multiplier", cluster.DefaultRaftMultiplier,
		"server: scale the LAN Raft timeouts (heartbeat, election, lease 200 ms x N, 1..10; 5: hashicorp/raft's 1 s, for slow or loaded networks)")
	f.DurationVar(&cfg.DeadServerCleanup, "dead-server-cleanup", cluster.DefaultDeadServerCleanup,
		"server: the leader removes a server from Raft once gossip has seen it dead this long (0: never)")
	f.IntVar(&cfg.MinQuorum, "min-quorum", 0, "server: the fewest voters dead-server cleanup leaves (0: a quorum of --bootstrap-expect)")
	f.StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
	f.StringVar(&api.AuthStrategy, "auth-strategy", api.AuthStrategy, "noauth (identity from X-Project-Id/X-Roles), token (X-Auth-Token, see --tokens-file) or keystone (X-Auth-Token validated by Keystone, see --keystone-url)")
	f.StringVar(&api.Keystone.URL, "keystone-url", "", "keystone: Keystone's identity endpoint (http://HOST:5000/v3) tokens are validated against")
	f.StringVar(&api.Keystone.Username, "keystone-user", "neutrino", "keystone: service user that validates tokens (needs the service or admin role); on a chassis agent, the user its own calls authenticate as (needs admin)")
	f.StringVar(&ksPassFile, "keystone-password-file", "", "keystone: file holding the service user's password")
	f.StringVar(&api.Keystone.ProjectName, "keystone-project", "service", "keystone: the service user's project")
	f.StringVar(&api.Keystone.UserDomain, "keystone-user-domain", "Default", "keystone: the service user's domain")
	f.StringVar(&api.Keystone.ProjectDomain, "keystone-project-domain", "Default", "keystone: the service user's project's domain")
	f.DurationVar(&api.Keystone.CacheTTL, "token-cache-ttl", northbound.DefaultTokenCacheTTL, "keystone: how long a token validation is reused (a revoked token is refused after at most this)")
	f.StringVar(&tokensFile, "tokens-file", "", `JSON file {"tokens": {"TOKEN": {"project_id": "...", "user_id": "...", "roles": ["member"]}}}`)
	f.StringVar(&api.DefaultProject, "default-project", api.DefaultProject, "project of requests that name none (noauth)")
	f.StringVar(&api.TenantNetworkType, "tenant-network-type", api.TenantNetworkType, "type of networks created without provider attributes: vxlan, geneve or gre")
	f.StringSliceVar(&vniRanges, "vni-ranges", []string{"1000:99999"}, "VXLAN/Geneve ids to allocate, MIN:MAX (repeatable)")
	f.StringSliceVar(&greRanges, "gre-ranges", []string{"1000:99999"}, "GRE keys to allocate, MIN:MAX (repeatable)")
	f.StringSliceVar(&vlanRanges, "vlan-ranges", nil, "VLAN physical networks and ids, PHYSNET or PHYSNET:MIN:MAX (repeatable)")
	f.StringSliceVar(&api.FlatNetworks, "flat-networks", nil, "physical networks flat networks may use ('*' for any)")
	f.IntVar(&api.PhysicalMTU, "physical-mtu", api.PhysicalMTU, "underlay MTU overlay network MTUs are derived from")
	f.Int64Var(&api.Limits.MaxBodyBytes, "api-max-body", northbound.DefaultMaxBodyBytes, "API: largest request body in bytes (larger: 413)")
	f.IntVar(&api.Limits.MaxHeaderBytes, "api-max-header", northbound.DefaultMaxHeaderBytes, "API: largest request line and headers in bytes (larger: 431)")
	f.DurationVar(&api.Limits.ReadHeaderTimeout, "api-read-header-timeout", northbound.DefaultReadHeaderTimeout, "API: time a client has to send a request's headers")
	f.DurationVar(&api.Limits.ReadTimeout, "api-read-timeout", northbound.DefaultReadTimeout, "API: time a client has to send a whole request with its body")
	f.DurationVar(&api.Limits.IdleTimeout, "api-idle-timeout", northbound.DefaultIdleTimeout, "API: a kept-alive connection idle this long is closed")
	f.IntVar(&api.Limits.MaxPerClient, "api-max-per-client", northbound.DefaultMaxPerClient, "API: requests one client IP may have in progress (more: 429; watches and forwarded requests exempt; -1: no limit)")
	f.IntSliceVar(&httpFDs, "http-fd", nil, "also serve the API on this inherited listening socket fd (used by the lab)")
	f.StringSliceVar(&httpAlso, "http-also", nil, "also serve the API on this address, not announced to other nodes (e.g. a management network; repeatable)")
	f.StringVar(&tlsCert, "tls-cert", "", "node certificate (neutrino tls cert create): HTTPS API, mutual TLS for Raft and calls between nodes")
	f.StringVar(&tlsKey, "tls-key", "", "key of --tls-cert")
	f.StringVar(&tlsCA, "tls-ca", "", "the cluster CA certificate peers are verified with")
	f.StringVar(&gossipKey, "gossip-key", "", "encrypt gossip with this key (base64 of 32 bytes); a keyring saved in --data-dir wins")
	f.DurationVar(&cfg.ProbeInterval, "gossip-probe-interval", 0, "gossip probe interval (0: the LAN default, 100ms; raise it when many nodes share a few cores, e.g. the simulator)")
	f.DurationVar(&cfg.ProbeTimeout, "gossip-probe-timeout", 0, "gossip probe timeout (0: the LAN default, 50ms)")
	f.IntVar(&cfg.SuspicionMult, "gossip-suspicion-mult", 0, "gossip suspicion multiplier (0: the LAN default, 2)")
	f.BoolVar(&cfg.GossipAllowUnsigned, "gossip-allow-unsigned", false, "with TLS, also admit gossip members whose metadata is not signed (a rolling upgrade from a release before gossip identity); signed metadata is still checked")
	// Chassis: what this node announces to the servers.
	f.StringVar(&cfg.Chassis.TunnelIP, "tunnel-ip", "", "chassis: overlay tunnel endpoint IP")
	f.StringVar(&cfg.Chassis.OVSDB, "ovsdb", "", "chassis: OVSDB endpoint the leader manages this chassis through (ssl:IP:6640 with --tls-*, tcp:IP:6640 or unix:PATH)")
	f.StringVar(&cfg.OVSDBLocal, "ovsdb-local", "", "chassis: this agent's own endpoint of its ovsdb-server (e.g. unix:/run/openvswitch/db.sock; default --ovsdb; required with an ssl: --ovsdb)")
	f.StringSliceVar(&cfg.Chassis.Roles, "chassis-roles", nil, "chassis: roles, compute and/or gateway")
	f.StringSliceVar(&mappings, "bridge-mappings", nil, "chassis: PHYSNET:BRIDGE pairs (repeatable)")
	f.StringSliceVar(&cfg.Chassis.Encaps, "encaps", []string{"vxlan", "gre", "geneve"}, "chassis: supported encapsulations")
	f.StringVar(&cfg.Chassis.DatapathType, "datapath-type", "system", "chassis: OVS datapath type, system or netdev")
	f.StringVar(&cfg.Chassis.AvailabilityZone, "availability-zone", "nova", "availability zone of this node (its chassis and server agents)")
	f.StringToIntVar(&api.QuotaDefaults, "quota-defaults", nil, "server: default quota limits, RESOURCE=N pairs (network, subnet, port, router, floatingip, security_group, security_group_rule; -1 unlimited, the default)")
	f.StringVar(&cfg.VPNNamespacePrefix, "vpn-namespace-prefix", "nvpn-", "gateway: name prefix of the per-router VPN namespaces")
	f.BoolVar(&cfg.VPNDisabled, "no-vpn", false, "gateway: run no VPN (IPsec) connections")
	f.StringVar(&cfg.HAProxy, "haproxy", "haproxy", "gateway chassis: the haproxy binary load balancers run with")
	f.StringVar(&cfg.LBNamespacePrefix, "lb-netns-prefix", "", "gateway chassis: prefix of load balancer namespace names (default nlb-NODE-)")
	f.BoolVar(&cfg.DisableLBaaS, "no-lbaas", false, "gateway chassis: run no load balancers here")
	f.StringVar(&cfg.DHCP.Socket, "dhcp-socket", "", "chassis: br-int's service socket the DHCP/RA responder connects to (default $OVS_RUNDIR/br-int.mgmt; off: no responder)")
	f.DurationVar(&cfg.DHCP.LeaseTime, "dhcp-lease-time", dhcp.DefaultLeaseTime, "chassis: DHCP and DHCPv6 lease time")
	f.StringVar(&cfg.DHCP.Domain, "dns-domain", dhcp.DefaultDomain, "chassis: DNS domain given to VMs by DHCP")
	f.DurationVar(&cfg.DHCP.RAInterval, "ra-interval", dhcp.DefaultRAInterval, "chassis: period of unsolicited router advertisements")
	return cmd
}

func parseMappings(specs []string) (map[string]string, error) {
	if len(specs) == 0 {
		return nil, nil
	}
	out := map[string]string{}
	for _, s := range specs {
		physnet, bridge, ok := strings.Cut(s, ":")
		if !ok || physnet == "" || bridge == "" {
			return nil, fmt.Errorf("%q: want PHYSNET:BRIDGE", s)
		}
		out[physnet] = bridge
	}
	return out, nil
}

func parseRanges(specs []string) ([]northbound.Range, error) {
	var out []northbound.Range
	for _, s := range specs {
		lo, hi, ok := strings.Cut(s, ":")
		if !ok {
			return nil, fmt.Errorf("%q: want MIN:MAX", s)
		}
		r, err := parseRange(lo, hi)
		if err != nil {
			return nil, fmt.Errorf("%q: %w", s, err)
		}
		out = append(out, r)
	}
	return out, nil
}

func parseRange(lo, hi string) (northbound.Range, error) {
	min, err1 := strconv.Atoi(lo)
	max, err2 := strconv.Atoi(hi)
	if err1 != nil || err2 != nil || min < 1 || max < min {
		return northbound.Range{}, fmt.Errorf("want 1 <= MIN <= MAX")
	}
	return northbound.Range{Min: min, Max: max}, nil
}

// parseVLANRanges reads Neutron's network_vlan_ranges syntax: a physical
// network alone may carry provider VLANs but has none to allocate.
func parseVLANRanges(specs []string) (map[string][]northbound.Range, error) {
	out := map[string][]northbound.Range{}
	for _, s := range specs {
		parts := strings.Split(s, ":")
		switch len(parts) {
		case 1:
			if _, ok := out[parts[0]]; !ok {
				out[parts[0]] = nil
			}
		case 3:
			r, err := parseRange(parts[1], parts[2])
			if err != nil || r.Max > 4094 {
				return nil, fmt.Errorf("%q: want PHYSNET:MIN:MAX with 1 <= MIN <= MAX <= 4094", s)
			}
			out[parts[0]] = append(out[parts[0]], r)
		default:
			return nil, fmt.Errorf("%q: want PHYSNET or PHYSNET:MIN:MAX", s)
		}
	}
	return out, nil
}

// keystoneFlags completes the Keystone configuration: the password comes
// from a file so that it is not on the command line.
func keystoneFlags(k *northbound.KeystoneConfig, passFile string) error {
	if k.URL == "" {
		return fmt.Errorf("--auth-strategy keystone needs --keystone-url")
	}
	if passFile == "" {
		return fmt.Errorf("--auth-strategy keystone needs --keystone-password-file")
	}
	data, err := os.ReadFile(passFile)
	if err != nil {
		return fmt.Errorf("--keystone-password-file: %w", err)
	}
	k.Password = strings.TrimRight(string(data), "\r\n")
	if k.Password == "" {
		return fmt.Errorf("--keystone-password-file %s is empty", passFile)
	}
	if k.CacheTTL <= 0 {
		return fmt.Errorf("--token-cache-ttl must be positive")
	}
	return nil
}
