package sim_test

import (
	"io"
	"log"
	"os"
	"testing"
)

// TestMain silences the standard logger unless NEUTRINO_TEST_LOG is set:
// libovsdb's server logs through it every failed update to a monitor of a
// closed connection (it never drops those monitors; docs/architecture.md,
// "Simulator"), thousands of lines a run that say nothing about the test.
func TestMain(m *testing.M) {
	if os.Getenv("NEUTRINO_TEST_LOG") == "" {
		log.SetOutput(io.Discard)
	}
	os.Exit(m.Run())
}
