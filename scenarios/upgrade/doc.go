// Package upgrade holds the rolling-upgrade test (upgrade_test.go): a lab
// of the previous release's servers and chassis with traffic between VMs,
// upgraded to this tree one node at a time under API writes. The previous
// release's source is built from git history or, in a clone without it
// (shallow), from the copy in testdata (README: Upgrades).
package upgrade
