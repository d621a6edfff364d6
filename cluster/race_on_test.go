//go:build race

package cluster

// raceEnabled: the race detector slows every goroutine several times over.
const raceEnabled = true
