package main

import (
	"runtime"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestTaggedRecvSurvivesSignals: signals that interrupt the wait of the
// lab's VLAN answerer (the Go runtime sends its own) do not end it before
// its deadline. They did: TestTrunkVLANSubport's answerer exited silently
// and the peer's pings went unanswered.
func TestTaggedRecvSurvivesSignals(t *testing.T) {
	s, err := openTagged("lo")
	if err != nil {
		t.Skipf("no packet socket here: %v", err) // needs root, as the lab does
	}
	defer unix.Close(s.fd)
	const wait = 600 * time.Millisecond
	tid := make(chan int, 1)
	done := make(chan time.Duration, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		tid <- unix.Gettid()
		start := time.Now()
		for {
			// Traffic on lo (none is sent here, but other tests may) is
			// read and ignored: only the end of the wait counts.
			f, err := s.recv(start.Add(wait))
			if err != nil {
				t.Error(err)
				break
			}
			if f == nil {
				break
			}
		}
		done <- time.Since(start)
	}()
	thread := <-tid
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case took := <-done:
			if took < wait {
				t.Fatalf("the wait ended after %s of %s: a signal ended it", took, wait)
			}
			return
		case <-tick.C:
			_ = unix.Tgkill(unix.Getpid(), thread, unix.SIGURG)
		}
	}
}
