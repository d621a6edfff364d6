//go:build !race

package cluster

// raceBuild: see race_on.go.
const raceBuild = false
