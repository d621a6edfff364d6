package vpnaas

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"neutrino/southbound/hostnet"
)

// site is one end of a two-charon test: a namespace with a WAN address
// and a "subnet" address on lo behind the tunnel (no dummy links here).
type site struct {
	ns, wan, lan, lanCIDR string
	ch                    *Charon
}

func skipUnlessRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root (namespaces)")
	}
	if _, err := os.Stat(CharonPath); err != nil {
		t.Skip("strongSwan's charon is not installed")
	}
}

// twoSites builds two namespaces joined by a veth, each with a charon.
func twoSites(t *testing.T) (a, b *site) {
	t.Helper()
	ctx := context.Background()
	pfx := fmt.Sprintf("vpnt%d-", os.Getpid()%100000)
	a = &site{ns: pfx + "a", wan: "192.0.2.10", lan: "10.1.0.1", lanCIDR: "10.1.0.0/24"}
	b = &site{ns: pfx + "b", wan: "192.0.2.20", lan: "10.2.0.1", lanCIDR: "10.2.0.0/24"}
	for _, s := range []*site{a, b} {
		if err := hostnet.CreateNamespace(ctx, s.ns); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = hostnet.DeleteNamespace(context.Background(), s.ns) })
		dir, err := os.MkdirTemp("", "vpnc")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(dir) })
		s.ch = &Charon{Namespace: s.ns, Dir: dir}
	}
	if err := hostnet.CreateVeth(hostnet.VethSpec{Name: "wan", Namespace: a.ns, PeerName: "wan", PeerNS: b.ns}); err != nil {
		t.Fatal(err)
	}
	for _, s := range []*site{a, b} {
		for _, cmd := range [][]string{
			{"ip", "addr", "add", s.wan + "/24", "dev", "wan"},
			{"ip", "addr", "add", s.lan + "/32", "dev", "lo"},
		} {
			if _, err := hostnet.Exec(ctx, s.ns, cmd...); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.ch.Start(ctx); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.ch.Stop(context.Background()) })
	}
	return a, b
}

func conn(from, to *site, psk, version string) Conn {
	return Conn{
		ID: "t1", LocalAddr: from.wan, PeerAddress: to.wan, PSK: psk,
		LocalCIDRs: []string{from.lanCIDR}, PeerCIDRs: []string{to.lanCIDR},
		IKEVersion: version, Phase1Mode: "main",
		IKEEncryption: "aes-256", IKEAuth: "sha256", IKEPFS: "group14", IKELifetime: 3600,
		ESPEncryption: "aes-128", ESPAuth: "sha1", ESPPFS: "group14", ESPLifetime: 3600,
		Transform: "esp", Mode: "tunnel", Initiator: "bi-directional",
		DPDAction: "restart", DPDInterval: 1, DPDTimeout: 5,
	}
}

func waitFor(t *testing.T, d time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(d)
	last := ""
	for time.Now().Before(deadline) {
		ok, why := cond()
		if ok {
			return
		}
		last = why
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s: not within %v (last: %s)", what, d, last)
}

func load(t *testing.T, s *site, c Conn) {
	t.Helper()
	conf, err := Render([]Conn{c})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.ch.Load(context.Background(), conf); err != nil {
		t.Fatal(err)
	}
}

// TestCharonTunnel: two charons in namespaces (kernel-libipsec) bring up
// an SA from rendered configuration, for IKEv2, IKEv1 main and aggressive
// mode, and traffic
// between the subnets behind them passes; a wrong PSK never gives an SA.
func TestCharonTunnel(t *testing.T) {
	skipUnlessRoot(t)
	for _, version := range []string{"v2", "v1", "v1-aggressive"} {
		t.Run(version, func(t *testing.T) {
			a, b := twoSites(t)
			ctx := context.Background()
			ab, ba := conn(a, b, "right-key", version), conn(b, a, "right-key", version)
			if version == "v1-aggressive" {
				ab.IKEVersion, ba.IKEVersion = "v1", "v1"
				ab.Phase1Mode, ba.Phase1Mode = "aggressive", "aggressive"
			}
			load(t, b, ba)
			load(t, a, ab)
			up := func(s *site) func() (bool, string) {
				return func() (bool, string) {
					sas, err := s.ch.SAs(ctx)
					if err != nil {
						return false, err.Error()
					}
					return sas["c-t1"].Up(), fmt.Sprint(sas)
				}
			}
			waitFor(t, 20*time.Second, "SA up on a", up(a))
			waitFor(t, 20*time.Second, "SA up on b", up(b))
			waitFor(t, 20*time.Second, "ping through the tunnel", func() (bool, string) {
				out, err := hostnet.Exec(ctx, a.ns, "ping", "-c1", "-W1", "-I", a.lan, b.lan)
				return err == nil, out
			})
			// Wrong key on b: a's new attempts fail and no SA comes back.
			ba.PSK = "wrong-key"
			load(t, b, ba)
			if _, err := b.ch.swanctl(ctx, "--terminate", "--ike", "c-t1", "--timeout", "5"); err != nil {
				t.Logf("terminate: %v", err)
			}
			waitFor(t, 20*time.Second, "SA gone on b", func() (bool, string) {
				sas, err := b.ch.SAs(ctx)
				return err == nil && !sas["c-t1"].Up(), fmt.Sprint(sas)
			})
			// A synchronous initiate fails (authentication, or no answer b
			// can decrypt) and leaves no SA on either side.
			if _, err := a.ch.swanctl(ctx, "--initiate", "--child", "c-t1", "--timeout", "8"); err == nil {
				t.Fatal("initiate with a wrong PSK succeeded")
			}
			for _, s := range []*site{a, b} {
				if sas, err := s.ch.SAs(ctx); err != nil || sas["c-t1"].Up() {
					t.Fatalf("%s: SA up with a wrong PSK: %v %v", s.ns, sas, err)
				}
			}
			if log, _ := os.ReadFile(b.ch.LogFile()); strings.Contains(string(log), "right-key") || strings.Contains(string(log), "wrong-key") {
				t.Fatal("charon's log holds the PSK")
			}
		})
	}
}

func TestParseSAs(t *testing.T) {
	out := `c-a: #1, ESTABLISHED, IKEv2, 1ee3e3ccf9ae7b1c_i* 2ff7a1e20c0ccb7b_r
  local  '198.51.100.10' @ 198.51.100.10[4500]
  remote '198.51.100.250' @ 198.51.100.250[4500]
  AES_CBC-256/HMAC_SHA2_256_128/PRF_HMAC_SHA2_256/MODP_2048
  established 1s ago, rekeying in 3300s
  c-a: #1, reqid 1, INSTALLED, TUNNEL-in-UDP, ESP:AES_CBC-128/HMAC_SHA1_96/MODP_2048
    installed 1s ago, rekeying in 3000s, expires in 3960s
    in  c1a2b3c4,      0 bytes,     0 packets
    local  10.1.0.0/24
    remote 10.2.0.0/24
c-b: #2, CONNECTING, IKEv2, 4ee3e3ccf9ae7b1c_i* 0000000000000000_r
  local  '%any' @ 198.51.100.10[500]
`
	got := parseSAs(out)
	if !got["c-a"].Up() || got["c-b"].Up() || got["c-b"].IKE != "CONNECTING" || got["c-c"].Up() {
		t.Fatalf("parseSAs = %+v", got)
	}
}

func TestRender(t *testing.T) {
	c := Conn{ID: "x", LocalAddr: "198.51.100.10", PeerAddress: "198.51.100.250", PSK: `s"e\cret`,
		LocalCIDRs: []string{"10.0.0.0/24"}, PeerCIDRs: []string{"10.99.0.0/24", "10.98.0.0/24"},
		IKEVersion: "v1", IKEEncryption: "aes-128-gcm-16", IKEAuth: "sha256", IKEPFS: "group14",
		ESPEncryption: "aes-256", ESPAuth: "sha256", ESPPFS: "group14", Initiator: "response-only", DPDAction: "hold", DPDInterval: 30, DPDTimeout: 120}
	conf, err := Render([]Conn{c})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"version = 1", "proposals = aes128gcm16-prfsha256-modp2048", "esp_proposals = aes256-sha256-modp2048",
		"remote_ts = 10.99.0.0/24,10.98.0.0/24", "start_action = none", "dpd_action = trap", "dpd_timeout = 120s", `secret = "s\"e\\cret"`} {
		if !strings.Contains(conf, want) {
			t.Errorf("conf lacks %q:\n%s", want, conf)
		}
	}
	c.ESPEncryption = "blowfish"
	if _, err := Render([]Conn{c}); err == nil {
		t.Error("unknown algorithm rendered")
	}
}
