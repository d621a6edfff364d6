//go:build race

package cluster

// raceBuild: a race-detector build (tests only; the binaries are built
// without it) stalls whole processes for hundreds of milliseconds on a
// loaded machine.
const raceBuild = true
