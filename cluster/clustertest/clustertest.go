// Package clustertest has what tests of clustered agents share: picking
// free loopback ports for an agent and waiting for a condition.
package clustertest

import (
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Eventually polls cond until it returns nil, failing t with cond's last
// error once timeout has passed.
func Eventually(t testing.TB, timeout time.Duration, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(25 * time.Millisecond)
	defer tick.Stop()
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %s: %v", timeout, err)
		}
		<-tick.C
	}
}

var (
	mu    sync.Mutex
	taken = map[int]bool{}
)

// ephemeralLow is the bottom of the kernel's ephemeral port range. Test
// ports are picked below it: an ephemeral port may be taken by any outgoing
// connection between an agent's kill and its restart.
func ephemeralLow() int {
	buf, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err == nil {
		if f := strings.Fields(string(buf)); len(f) == 2 {
			if lo, err := strconv.Atoi(f[0]); err == nil && lo > 12000 {
				return lo
			}
		}
	}
	return 32768
}

// FreePort returns a loopback port p such that p, p+1 and p+2 are free for
// TCP and UDP right now and were not handed out before in this process: an
// agent's --bind p uses p (gossip), p+1 (Raft) and p+2 (OpenFlow).
func FreePort(t testing.TB) int {
	t.Helper()
	mu.Lock()
	defer mu.Unlock()
	hi := ephemeralLow() - 3
	for range 500 {
		p := 10000 + rand.IntN(hi-10000)
		if taken[p] || taken[p+1] || taken[p+2] || !free(p) || !free(p+1) || !free(p+2) {
			continue
		}
		taken[p], taken[p+1], taken[p+2] = true, true, true
		return p
	}
	t.Fatal("no three free consecutive ports found")
	return 0
}

// FreeBind returns "127.0.0.1:p" for a FreePort p.
func FreeBind(t testing.TB) string {
	t.Helper()
	return "127.0.0.1:" + strconv.Itoa(FreePort(t))
}

func free(p int) bool {
	addr := "127.0.0.1:" + strconv.Itoa(p)
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return false
	}
	defer l.Close()
	u, err := net.ListenPacket("udp", addr)
	if err != nil {
		return false
	}
	return u.Close() == nil
}
