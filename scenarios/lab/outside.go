package lab

import (
	"context"
	"fmt"
	"net/netip"
	"path/filepath"
	"strconv"
	"time"

	"neutrino/southbound/hostnet"
	"neutrino/southbound/ovsproc"
)

// outsideBridge is the outside node's netdev OVS bridge on the VLAN physnet.
const outsideBridge = "br-out"

// vlanPhysnet is the physnet that carries 802.1Q.
func vlanPhysnet() Physnet {
	for _, pn := range physnets {
		if pn.VLAN {
			return pn
		}
	}
	panic("lab: no VLAN physnet in the plan")
}

// outsideOVS starts the outside node's own OVS: this kernel cannot tag
// 802.1Q, OVS's userspace datapath can. ovsdb-server listens on its unix
// socket only (nothing reaches the node but the physnets) and the bridge
// br-out is a standalone learning switch (no controller) whose one uplink
// is the VLAN physnet NIC, a trunk; OutsideVLAN adds access ports to it.
// The daemons are recorded in Processes like a chassis' so Down ends them.
func (b *builder) outsideOVS(ctx context.Context) error {
	st := b.store.snapshot()
	o := st.Outside
	inst, err := ovsproc.Start(ctx, ovsproc.Options{
		Name: OutsideName, Namespace: o.Namespace, Dir: filepath.Join(b.o.Dir, OutsideName, "ovs"),
		Logger: b.log,
	})
	if err != nil {
		return err
	}
	dbPID, vsPID := inst.DBPID(), inst.VswitchdPID()
	if err := b.store.update(func(st *State) {
		o := st.Outside
		o.Bridge, o.OVSDir, o.OVSDBUnix = outsideBridge, inst.RunDir(), inst.DBEndpoint()
		o.OVSDBPID, o.VswitchdPID = dbPID, vsPID
		st.Processes = append(st.Processes,
			processOf(dbPID, "ovsdb-server "+OutsideName),
			processOf(vsPID, "ovs-vswitchd "+OutsideName))
	}); err != nil {
		return err
	}
	_, err = inst.Vsctl(ctx,
		"add-br", outsideBridge, "--", "set", "Bridge", outsideBridge,
		"datapath_type=netdev", "fail_mode=standalone",
		"--", "add-port", outsideBridge, vlanPhysnet().OutsideNIC)
	return err
}

// OutsideVLAN gives the outside node the address cidr (e.g.
// 203.0.113.1/24) on VLAN vid of the VLAN physnet: an internal port
// vlan<vid> with tag=<vid> on its bridge br-out (OVS tags what leaves on
// the trunk NIC and untags what comes in), the address on it, the link
// up, TX checksum offload off (the netdev datapath never completes partial
// checksums: TCP and UDP would fail while ping works). Calling it again
// for the same vid converges: the port stays, the address becomes cidr.
func OutsideVLAN(ctx context.Context, dir string, vid int, cidr string) error {
	if vid < 1 || vid > 4094 {
		return fmt.Errorf("lab: VLAN id %d out of 1-4094", vid)
	}
	pfx, err := netip.ParsePrefix(cidr)
	if err != nil {
		return fmt.Errorf("lab: outside VLAN address: %w", err)
	}
	cidr = pfx.String()
	s, lk, err := openLab(dir)
	if err != nil {
		return err
	}
	defer lk.release()
	st := s.snapshot()
	o := st.Outside
	if o == nil || o.OVSDBUnix == "" {
		return fmt.Errorf("lab: the outside node of %s has no OVS (a lab from an older neutrino? `lab down`, then `lab up`)", st.Dir)
	}
	port := "vlan" + strconv.Itoa(vid)
	var old string
	if v := o.VLAN(vid); v != nil {
		old = v.Address
	}
	// Tagged access port; set again on an existing port, so a half-done
	// earlier call converges.
	if _, err := vsctlDB(ctx, o.OVSDBUnix,
		"--may-exist", "add-port", o.Bridge, port,
		"--", "set", "Port", port, "tag="+strconv.Itoa(vid),
		"--", "set", "Interface", port, "type=internal"); err != nil {
		return fmt.Errorf("lab: outside VLAN %d: %w", vid, err)
	}
	// ovs-vsctl returned after ovs-vswitchd applied it, tap included;
	// wait anyway rather than trust it.
	if !waitUntil(ctx, 10*time.Second, func() bool {
		ok, err := hostnet.LinkExists(o.Namespace, port)
		return err == nil && ok
	}) {
		return fmt.Errorf("lab: outside VLAN %d: ovs-vswitchd made no %s", vid, port)
	}
	if err := hostnet.DisableTxOffload(ctx, o.Namespace, port); err != nil {
		return err
	}
	if old != "" && old != cidr {
		if _, err := hostnet.Exec(ctx, o.Namespace, "ip", "addr", "del", old, "dev", port); err != nil {
			return fmt.Errorf("lab: outside VLAN %d: drop old address: %w", vid, err)
		}
	}
	if err := hostnet.AddAddress(o.Namespace, port, cidr); err != nil {
		return err
	}
	if err := hostnet.SetLinkUp(o.Namespace, port); err != nil {
		return err
	}
	mac, err := hostnet.LinkMAC(o.Namespace, port)
	if err != nil {
		return err
	}
	return s.update(func(st *State) {
		v := OutsideVLANPort{VID: vid, Port: port, Address: cidr, MAC: mac}
		if cur := st.Outside.VLAN(vid); cur != nil {
			*cur = v
		} else {
			st.Outside.VLANs = append(st.Outside.VLANs, v)
		}
	})
}
