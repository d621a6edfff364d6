package controller_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"neutrino/southbound/controller"
	"neutrino/southbound/openflow"
)

// TestFollowerSlaveAfterStaleRefusal: a follower still on an old term
// (a deposed leader right after a partition heals) connects to a switch
// whose MASTER already has a higher generation id. OVS refuses its SLAVE
// request as stale and leaves the connection EQUAL, which may write
// flows. Once the follower learns the current term it must ask again and
// end up SLAVE, while the leader's connection stays MASTER.
func TestFollowerSlaveAfterStaleRefusal(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	inst, f, ap, dir := oneChassis(ctx, t, "role")

	const leaderTerm = 5
	var followerTerm atomic.Uint64
	followerTerm.Store(leaderTerm - 2)
	// The follower's target is handed to the switch only once the leader
	// is MASTER, so its first SLAVE request is sure to be stale.
	var withFollower atomic.Bool
	sockL, sockF := filepath.Join(dir, "leader.sock"), filepath.Join(dir, "follower.sock")
	run := func(sock string, term func() uint64) *controller.Controller {
		ln, err := openflow.Listen("unix", sock, openflow.Options{})
		if err != nil {
			t.Fatal(err)
		}
		c := controller.New(controller.Config{
			FSM: f, Apply: ap.apply, Listener: ln, Term: term, ResyncInterval: 200 * time.Millisecond,
			Controllers: func() []string {
				if withFollower.Load() {
					return []string{"unix:" + sockL, "unix:" + sockF}
				}
				return []string{"unix:" + sockL}
			},
		})
		runCtx, stop := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() {
			defer close(done)
			c.Run(runCtx)
		}()
		t.Cleanup(func() { stop(); <-done })
		return c
	}
	leader := run(sockL, func() uint64 { return leaderTerm })
	run(sockF, followerTerm.Load)
	leader.SetLeadership(true, leaderTerm)
	waitFor(t, 30*time.Second, "the leader's MASTER connection", func() error {
		for _, st := range leader.Status() {
			if st.Chassis == "hv1" && st.Master && st.Realized > 0 {
				return nil
			}
		}
		return fmt.Errorf("status %+v", leader.Status())
	})

	// Where the switch's Controller rows name each socket (the worker
	// links them into the run directory).
	linkOf := func(sock string) string {
		sum := sha256.Sum256([]byte(sock))
		return "unix:" + filepath.Join(filepath.Dir(strings.TrimPrefix(inst.DBEndpoint(), "unix:")), "of-"+hex.EncodeToString(sum[:4])+".sock")
	}
	roles := func() (map[string]string, error) {
		out, err := inst.Vsctl(ctx, "--format=json", "--columns=target,role,is_connected", "list", "Controller")
		if err != nil {
			return nil, err
		}
		var tbl struct {
			Data [][]json.RawMessage `json:"data"`
		}
		if err := json.Unmarshal([]byte(out), &tbl); err != nil {
			return nil, fmt.Errorf("%w: %s", err, out)
		}
		m := map[string]string{}
		for _, row := range tbl.Data {
			var target, role string
			var connected bool
			_ = json.Unmarshal(row[0], &target)
			_ = json.Unmarshal(row[1], &role)
			_ = json.Unmarshal(row[2], &connected)
			if connected {
				m[target] = role
			}
		}
		return m, nil
	}
	withFollower.Store(true)
	waitFor(t, 30*time.Second, "the follower connected, refused as stale (EQUAL)", func() error {
		m, err := roles()
		if err != nil {
			return err
		}
		if m[linkOf(sockF)] != "other" || m[linkOf(sockL)] != "master" {
			return fmt.Errorf("roles %v", m)
		}
		return nil
	})
	followerTerm.Store(leaderTerm)
	waitFor(t, 10*time.Second, "the follower asks again and is SLAVE, the leader MASTER", func() error {
		m, err := roles()
		if err != nil {
			return err
		}
		if m[linkOf(sockF)] != "slave" || m[linkOf(sockL)] != "master" {
			return fmt.Errorf("roles %v", m)
		}
		return nil
	})
}
