//go:build race

package sim_test

// raceEnabled: the race detector slows every goroutine several times over,
// and this test holds 3 servers and every chassis in one process: under
// it the default size is smaller, so Raft's 1 s heartbeats still arrive.
const raceEnabled = true
