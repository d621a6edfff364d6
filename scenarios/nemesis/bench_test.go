package nemesis

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"
)

// BenchmarkLeaderKillUnavailability measures how long writes are
// unavailable after the leader of 3 server processes is SIGKILLed: from the
// kill to the first acknowledged create among creates sent through the
// surviving servers every 10 ms after it. 10 kills (per b.N); the killed
// server is restarted and caught up before the next kill.
func BenchmarkLeaderKillUnavailability(b *testing.B) {
	c := newProcCluster(b, 3)
	hc := &http.Client{Timeout: 15 * time.Second, Transport: &http.Transport{
		DialContext:         (&net.Dialer{Timeout: time.Second}).DialContext,
		MaxIdleConnsPerHost: 64,
	}}
	b.Cleanup(hc.CloseIdleConnections)
	var samples []time.Duration
	b.ResetTimer()
	for range b.N {
		for k := range 10 {
			c.caughtUp(60 * time.Second)
			l := c.leader(60 * time.Second)
			survivors := c.followers(l)
			killed := time.Now()
			c.kill(l)
			d, err := firstWrite(hc, survivors, killed, fmt.Sprintf("kill%d-%d", len(samples), k))
			if err != nil {
				b.Fatalf("after killing leader %s: %v", l.name, err)
			}
			samples = append(samples, d)
			c.start(l)
		}
	}
	b.StopTimer()
	slices.Sort(samples)
	b.ReportMetric(float64(samples[len(samples)/2].Microseconds())/1000, "median-ms")
	b.ReportMetric(float64(samples[len(samples)-1].Microseconds())/1000, "max-ms")
	b.ReportMetric(0, "ns/op")
	b.Logf("write unavailability after a leader SIGKILL, %d kills: %v", len(samples), samples)
}

// firstWrite sends a create every 10 ms, in turn to each survivor, until
// one is acknowledged, and returns the time from since to that answer.
func firstWrite(hc *http.Client, survivors []*server, since time.Time, prefix string) (time.Duration, error) {
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	acked := make(chan time.Time, 1)
	var wg sync.WaitGroup
	defer wg.Wait()
	deadline := time.NewTimer(30 * time.Second)
	defer deadline.Stop()
	for i := 0; ; i++ {
		select {
		case at := <-acked:
			return at.Sub(since), nil
		case <-deadline.C:
			return 0, fmt.Errorf("no write acknowledged within 30 s")
		case <-tick.C:
		}
		wg.Add(1)
		go func(s *server, name string) {
			defer wg.Done()
			body, _ := json.Marshal(map[string]any{"network": map[string]any{"name": name}})
			resp, err := hc.Post("http://"+s.http+"/v2.0/networks", "application/json", bytes.NewReader(body))
			if err != nil {
				return
			}
			resp.Body.Close()
			if resp.StatusCode == http.StatusCreated {
				select {
				case acked <- time.Now():
				default:
				}
			}
		}(survivors[i%len(survivors)], fmt.Sprintf("%s-%d", prefix, i))
	}
}
