package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"
)

// newLabHTTPProbeCmd is `neutrino lab http-probe URL`: a request stream
// for load balancer tests, run inside a lab VM (`lab exec`). Each request
// is a fresh connection, as from many clients; every result is a line
// "UNIX_NANOS ok BODY" or "UNIX_NANOS err REASON" on stdout, so a test
// measures an outage from the lines. Hidden: a test tool, not an
// operator's.
func newLabHTTPProbeCmd(a *app) *cobra.Command {
	var (
		interval, timeout time.Duration
		count             int
		concurrent        bool
	)
	cmd := &cobra.Command{
		Use:    "http-probe URL",
		Short:  "send HTTP GETs at an interval and print each result with a timestamp",
		Hidden: true,
		Args:   cobra.ExactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
			defer stop()
			c := &http.Client{Timeout: timeout, Transport: &http.Transport{DisableKeepAlives: true}}
			tick := time.NewTicker(interval)
			defer tick.Stop()
			var mu sync.Mutex
			var wg sync.WaitGroup
			one := func() {
				at := time.Now()
				body, err := probe(ctx, c, args[0])
				if ctx.Err() != nil {
					return
				}
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					fmt.Fprintf(a.stdout, "%d err %s\n", at.UnixNano(), strings.ReplaceAll(err.Error(), "\n", " "))
				} else {
					fmt.Fprintf(a.stdout, "%d ok %s\n", at.UnixNano(), strings.TrimSpace(body))
				}
			}
			defer wg.Wait()
			for i := 0; count == 0 || i < count; i++ {
				if concurrent {
					// A request that hangs does not delay the next: every
					// tick gets its own result, as in a ping stream.
					wg.Go(one)
				} else {
					one()
				}
				select {
				case <-ctx.Done():
					return nil
				case <-tick.C:
				}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.DurationVar(&interval, "interval", 50*time.Millisecond, "time between request starts")
	f.DurationVar(&timeout, "timeout", time.Second, "give a request up after this")
	f.IntVar(&count, "count", 0, "stop after this many requests (0: until SIGTERM)")
	f.BoolVar(&concurrent, "concurrent", false, "start a request every interval even while others are in flight")
	return cmd
}

func probe(ctx context.Context, c *http.Client, url string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	res, err := c.Do(req)
	if err != nil {
		return "", err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(io.LimitReader(res.Body, 4096))
	if err != nil {
		return "", err
	}
	if res.StatusCode != http.StatusOK {
		return "", fmt.Errorf("%s", res.Status)
	}
	return string(b), nil
}
