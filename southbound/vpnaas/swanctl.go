package vpnaas

import (
	"fmt"
	"slices"
	"strings"
)

// Conn is one IPsec site connection as a charon runs it: the Neutron
// attributes resolved (policies, endpoint groups, the router's address).
type Conn struct {
	// ID is the connection's id; charon's connection and child are named
	// after it.
	ID string
	// LocalAddr is the router's external IPv4 address, where IKE ends.
	LocalAddr string
	// PeerAddress is the peer gateway's address.
	PeerAddress string
	// LocalID and PeerID are the IKE identities; empty means the address.
	LocalID, PeerID string
	// PSK is the pre-shared key: rendered into the secrets file only,
	// never logged.
	PSK string
	// LocalCIDRs and PeerCIDRs are the traffic selectors.
	LocalCIDRs, PeerCIDRs []string
	// IKEVersion is "v1" or "v2"; Phase1Mode "main" or "aggressive".
	IKEVersion, Phase1Mode string
	// IKE* are the IKE policy: Neutron algorithm names and lifetime (s).
	IKEEncryption, IKEAuth, IKEPFS string
	IKELifetime                    int
	// ESP* are the IPsec policy.
	ESPEncryption, ESPAuth, ESPPFS string
	ESPLifetime                    int
	// Transform is esp, ah or ah-esp; Mode tunnel or transport.
	Transform, Mode string
	// Initiator is bi-directional (charon starts the SA) or response-only.
	Initiator string
	// DPDAction, DPDInterval, DPDTimeout (s) are Neutron's dead peer
	// detection settings.
	DPDAction               string
	DPDInterval, DPDTimeout int
}

// Name is the charon connection (and child) name of a connection.
func (c Conn) Name() string { return "c-" + c.ID }

// encAlgs maps Neutron's encryption names to strongSwan's; AEAD ciphers
// (GCM, CCM) take no separate integrity algorithm in ESP.
var encAlgs = map[string]string{
	"3des": "3des", "aes-128": "aes128", "aes-192": "aes192", "aes-256": "aes256",
	"aes-128-ctr": "aes128ctr", "aes-192-ctr": "aes192ctr", "aes-256-ctr": "aes256ctr",
}

func encAlg(n string) (alg string, aead bool, err error) {
	if a, ok := encAlgs[n]; ok {
		return a, false, nil
	}
	// aes-128-gcm-16 -> aes128gcm16, aes-256-ccm-8 -> aes256ccm8.
	var bits, mode, icv string
	if p := strings.Split(n, "-"); len(p) == 4 && p[0] == "aes" {
		bits, mode, icv = p[1], p[2], p[3]
	}
	if (mode == "gcm" || mode == "ccm") && (bits == "128" || bits == "192" || bits == "256") &&
		(icv == "8" || icv == "12" || icv == "16") {
		return "aes" + bits + mode + icv, true, nil
	}
	return "", false, fmt.Errorf("vpnaas: unsupported encryption algorithm %q", n)
}

var authAlgs = map[string]string{
	"sha1": "sha1", "sha256": "sha256", "sha384": "sha384", "sha512": "sha512",
	"aes-xcbc": "aesxcbc", "aes-cmac": "aescmac",
}

// dhGroups maps Neutron's PFS groups to strongSwan's DH names; the gmp
// plugin gives the MODP groups.
var dhGroups = map[string]string{
	"group2": "modp1024", "group5": "modp1536", "group14": "modp2048", "group15": "modp3072",
	"group16": "modp4096", "group17": "modp6144", "group18": "modp8192",
	"group22": "modp1024s160", "group23": "modp2048s224", "group24": "modp2048s256",
	"group19": "ecp256", "group20": "ecp384", "group21": "ecp521", "group31": "curve25519",
}

// proposal renders one strongSwan proposal; ike adds the PRF an AEAD IKE
// proposal needs.
func proposal(enc, auth, pfs string, ike bool) (string, error) {
	e, aead, err := encAlg(enc)
	if err != nil {
		return "", err
	}
	parts := []string{e}
	a, ok := authAlgs[auth]
	if !ok {
		return "", fmt.Errorf("vpnaas: unsupported auth algorithm %q", auth)
	}
	switch {
	case !aead:
		parts = append(parts, a)
	case ike:
		parts = append(parts, "prf"+a)
	}
	if pfs != "" {
		g, ok := dhGroups[pfs]
		if !ok {
			return "", fmt.Errorf("vpnaas: unsupported PFS group %q", pfs)
		}
		parts = append(parts, g)
	}
	return strings.Join(parts, "-"), nil
}

// dpdAction maps Neutron's DPD action to swanctl's.
func dpdAction(a string) string {
	switch a {
	case "restart":
		return "restart"
	case "hold":
		return "trap"
	}
	return "clear" // clear, restart-by-peer
}

// quote renders a swanctl string value.
func quote(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

// Render returns the swanctl.conf of a router's connections (connections
// and their secrets). The text holds the PSKs: write it 0600, never log it.
func Render(conns []Conn) (string, error) {
	conns = slices.Clone(conns)
	slices.SortFunc(conns, func(a, b Conn) int { return strings.Compare(a.ID, b.ID) })
	var b strings.Builder
	b.WriteString("connections {\n")
	for _, c := range conns {
		if err := renderConn(&b, c); err != nil {
			return "", fmt.Errorf("connection %s: %w", c.ID, err)
		}
	}
	b.WriteString("}\nsecrets {\n")
	for i, c := range conns {
		fmt.Fprintf(&b, "  ike-%d {\n    id-local = %s\n    id-remote = %s\n    secret = %s\n  }\n",
			i, quote(orAddr(c.LocalID, c.LocalAddr)), quote(orAddr(c.PeerID, c.PeerAddress)), quote(c.PSK))
	}
	b.WriteString("}\n")
	return b.String(), nil
}

func orAddr(id, addr string) string {
	if id != "" {
		return id
	}
	return addr
}

func renderConn(b *strings.Builder, c Conn) error {
	ike, err := proposal(c.IKEEncryption, c.IKEAuth, c.IKEPFS, true)
	if err != nil {
		return err
	}
	esp, err := proposal(c.ESPEncryption, c.ESPAuth, c.ESPPFS, false)
	if err != nil {
		return err
	}
	version := "2"
	if c.IKEVersion == "v1" {
		version = "1"
	}
	w := func(indent int, k, v string) { fmt.Fprintf(b, "%s%s = %s\n", strings.Repeat("  ", indent), k, v) }
	fmt.Fprintf(b, "  %s {\n", c.Name())
	w(2, "version", version)
	if c.Phase1Mode == "aggressive" {
		w(2, "aggressive", "yes")
	}
	w(2, "local_addrs", c.LocalAddr)
	w(2, "remote_addrs", c.PeerAddress)
	w(2, "proposals", ike)
	if c.IKELifetime > 0 {
		w(2, "rekey_time", fmt.Sprintf("%ds", c.IKELifetime))
	}
	// A new SA from the peer (its restart, our failover) replaces the old.
	w(2, "unique", "replace")
	if c.DPDAction != "disabled" && c.DPDInterval > 0 {
		w(2, "dpd_delay", fmt.Sprintf("%ds", c.DPDInterval))
		if c.IKEVersion == "v1" && c.DPDTimeout > 0 {
			w(2, "dpd_timeout", fmt.Sprintf("%ds", c.DPDTimeout))
		}
	}
	fmt.Fprintf(b, "    local {\n      auth = psk\n      id = %s\n    }\n", quote(orAddr(c.LocalID, c.LocalAddr)))
	fmt.Fprintf(b, "    remote {\n      auth = psk\n      id = %s\n    }\n", quote(orAddr(c.PeerID, c.PeerAddress)))
	fmt.Fprintf(b, "    children {\n      %s {\n", c.Name())
	w(4, "local_ts", strings.Join(c.LocalCIDRs, ","))
	w(4, "remote_ts", strings.Join(c.PeerCIDRs, ","))
	switch c.Transform {
	case "ah", "ah-esp":
		w(4, "ah_proposals", esp)
	default:
		w(4, "esp_proposals", esp)
	}
	if c.Mode == "transport" {
		w(4, "mode", "transport")
	}
	if c.ESPLifetime > 0 {
		w(4, "rekey_time", fmt.Sprintf("%ds", c.ESPLifetime))
	}
	if c.DPDAction != "disabled" && c.DPDInterval > 0 {
		w(4, "dpd_action", dpdAction(c.DPDAction))
	}
	if c.Initiator == "response-only" {
		w(4, "start_action", "none")
	} else {
		w(4, "start_action", "start")
		// A lost SA (peer gone, DPD) comes back on traffic or by itself.
		w(4, "close_action", "start")
	}
	b.WriteString("      }\n    }\n  }\n")
	return nil
}
