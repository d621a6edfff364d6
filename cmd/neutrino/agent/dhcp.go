package agent

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"neutrino/cluster/watch"
	"neutrino/fsm"
	"neutrino/southbound/dhcp"
)

// DHCPConfig configures a chassis agent's DHCP, DHCPv6 and router
// advertisement responder (southbound/dhcp).
type DHCPConfig struct {
	// Socket is br-int's service socket; empty: <OVS_RUNDIR or
	// /var/run/openvswitch>/br-int.mgmt. "off" disables the responder.
	Socket    string
	LeaseTime time.Duration
	Domain    string
	// RAInterval is the period of unsolicited router advertisements.
	RAInterval time.Duration
}

// dhcpService is a running responder and its watch.
type dhcpService struct {
	r      *dhcp.Responder
	w      *watch.Watcher
	cancel context.CancelFunc
	done   chan struct{}
}

// watchSource reads the responder's state from the agent's watch.
type watchSource struct{ w *watch.Watcher }

func (s watchSource) Ports() []*fsm.Port     { return watch.List[*fsm.Port](s.w, fsm.TablePorts) }
func (s watchSource) Subnets() []*fsm.Subnet { return watch.List[*fsm.Subnet](s.w, fsm.TableSubnets) }
func (s watchSource) Networks() []*fsm.Network {
	return watch.List[*fsm.Network](s.w, fsm.TableNetworks)
}

// dhcpSocket is where br-int's service socket is.
func dhcpSocket(cfg DHCPConfig) string {
	if cfg.Socket != "" {
		return cfg.Socket
	}
	dir := os.Getenv("OVS_RUNDIR")
	if dir == "" {
		dir = "/var/run/openvswitch"
	}
	return filepath.Join(dir, "br-int.mgmt")
}

// startDHCP starts the responder of a chassis (a node with an OVSDB
// endpoint): it answers from the watched ports, subnets and networks, so a
// request costs no Raft write and goes on being answered while the
// servers elect a leader.
func (a *Agent) startDHCP() error {
	if a.cfg.Chassis.OVSDB == "" || a.cfg.DHCP.Socket == "off" {
		return nil
	}
	w, err := a.Watch(fsm.TablePorts, fsm.TableSubnets, fsm.TableNetworks)
	if err != nil {
		return fmt.Errorf("agent: dhcp watch: %w", err)
	}
	r := dhcp.New(dhcp.Config{Socket: dhcpSocket(a.cfg.DHCP), Chassis: a.cfg.Node, Source: watchSource{w},
		Settings:   dhcp.Settings{LeaseTime: a.cfg.DHCP.LeaseTime, Domain: a.cfg.DHCP.Domain},
		RAInterval: a.cfg.DHCP.RAInterval, Logger: a.log})
	w.Subscribe(func(watch.Batch) { r.Invalidate() })
	ctx, cancel := context.WithCancel(context.Background())
	s := &dhcpService{r: r, w: w, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		r.Run(ctx)
	}()
	a.dhcp = s
	return nil
}

func (a *Agent) stopDHCP() {
	if a.dhcp == nil {
		return
	}
	a.dhcp.cancel()
	<-a.dhcp.done
	a.dhcp.w.Close()
}

// DHCP returns the chassis' DHCP responder (nil when it runs none).
func (a *Agent) DHCP() *dhcp.Responder {
	if a.dhcp == nil {
		return nil
	}
	return a.dhcp.r
}
