package harness

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"neutrino/northbound/client"
	"neutrino/scenarios"
)

// Settled reports why the lab is not as a scenario expects to find it, or
// nil: the cluster has a leader, every server is a Raft voter, every
// server, chassis and gateway of the lab is alive in gossip, and every
// chassis and gateway is connected to the leader with the current
// revision realized. A scenario that killed, cut or restarted nodes and
// undid it leaves the lab settled only once all of that is true again.
func (e *Env) Settled(ctx context.Context) error {
	c, err := client.New(e.D.Endpoint())
	if err != nil {
		return err
	}
	c.HTTPClient.Transport = Transport(0)
	st, err := c.Cluster(ctx)
	if err != nil {
		return fmt.Errorf("cluster: %w", err)
	}
	if st.Leader == "" {
		return errors.New("no leader")
	}
	servers := e.Lab.ByKind(scenarios.KindServer)
	for _, n := range servers {
		if !slices.ContainsFunc(st.Servers, func(s client.Server) bool { return s.Name == n.Name && s.Voter }) {
			return fmt.Errorf("server %s is not a voter: %+v", n.Name, st.Servers)
		}
	}
	ms, err := c.Members(ctx)
	if err != nil {
		return fmt.Errorf("members: %w", err)
	}
	status := map[string]string{}
	for _, m := range ms {
		status[m.Name] = m.Status
	}
	dataPath := append(e.Lab.ByKind(scenarios.KindChassis), e.Lab.ByKind(scenarios.KindGateway)...)
	for _, n := range append(servers, dataPath...) {
		if status[n.Name] != "alive" {
			return fmt.Errorf("%s is %q in gossip", n.Name, status[n.Name])
		}
	}
	rs, err := c.Realization(ctx)
	if err != nil {
		return fmt.Errorf("realization: %w", err)
	}
	for _, n := range dataPath {
		i := slices.IndexFunc(rs.Chassis, func(r client.ChassisRealization) bool { return r.Chassis == n.Name })
		switch {
		case i < 0:
			return fmt.Errorf("chassis %s: not in the leader's realization status", n.Name)
		case !rs.Chassis[i].Connected || rs.Chassis[i].RealizedRevision < rs.Revision:
			return fmt.Errorf("chassis %s: connected %v, realized %d of %d %s", n.Name, rs.Chassis[i].Connected,
				rs.Chassis[i].RealizedRevision, rs.Revision, rs.Chassis[i].Error)
		}
	}
	return nil
}

// WaitSettled waits until Settled is nil, for at most timeout.
func (e *Env) WaitSettled(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := e.Settled(ctx)
		cancel()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the lab did not settle within %v: %w", timeout, err)
		}
		time.Sleep(250 * time.Millisecond)
	}
}
