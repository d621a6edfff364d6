// Command neutrino is Neutrino's one binary: the agent (daemon) and the
// command-line client of its Neutron v2.0 compatible API.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	servePprof()
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr, os.LookupEnv)
	stop()
	os.Exit(code)
}

// run executes one command line and returns the exit status. It is main
// without the process: tests call it with their own output and environment.
func run(ctx context.Context, args []string, stdout, stderr io.Writer, lookupEnv func(string) (string, bool)) int {
	a := &app{stdout: stdout, stderr: stderr, lookupEnv: lookupEnv}
	root := newRootCmd(a)
	root.SetArgs(args)
	if err := root.ExecuteContext(ctx); err != nil {
		// An API error reads "NeutronErrorType: message", as openstack prints it.
		fmt.Fprintln(stderr, "Error:", err)
		return 1
	}
	return 0
}
