package northbound_test

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"neutrino/northbound"
)

// neutronErr is the body of a Neutron error.
type neutronErr struct {
	NeutronError struct {
		Type    string `json:"type"`
		Message string `json:"message"`
	} `json:"NeutronError"`
}

// TestLimitsBodyTooLarge: a body over the limit is refused with 413 in
// Neutron's format, by Content-Length and chunked alike, and nothing is
// created; one at the limit reaches validation.
func TestLimitsBodyTooLarge(t *testing.T) {
	s := newAPIServer(t, nil)
	body := func(n int) string {
		pre, post := `{"network": {"name": "`, `"}}`
		return pre + strings.Repeat("a", n-len(pre)-len(post)) + post
	}
	var e neutronErr
	if code := s.do("POST", "/v2.0/networks", nil, body(int(northbound.DefaultMaxBodyBytes)+1), &e); code != http.StatusRequestEntityTooLarge {
		t.Fatalf("body one byte over: status %d, want 413", code)
	}
	if e.NeutronError.Type != "RequestEntityTooLarge" {
		t.Fatalf("413 body: %+v", e)
	}
	// Chunked: no Content-Length, so only reading finds out.
	req, err := http.NewRequest("POST", s.base+"/v2.0/networks", io.MultiReader(strings.NewReader(body(int(northbound.DefaultMaxBodyBytes)+1))))
	if err != nil {
		t.Fatal(err)
	}
	req.ContentLength = -1
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("chunked body over the limit: status %d, want 413", resp.StatusCode)
	}
	// At the limit: the name is too long for Neutron (400), not too large.
	e = neutronErr{}
	if code := s.do("POST", "/v2.0/networks", nil, body(int(northbound.DefaultMaxBodyBytes)), &e); code != http.StatusBadRequest {
		t.Fatalf("body at the limit: status %d (%+v), want 400 from validation", code, e)
	}
	var list struct {
		Networks []any `json:"networks"`
	}
	if code := s.do("GET", "/v2.0/networks", nil, nil, &list); code != 200 || len(list.Networks) != 0 {
		t.Fatalf("after refused creates: %d, %d networks", code, len(list.Networks))
	}
}

// TestLimitsHeaderTooLarge: headers over MaxHeaderBytes are refused (431).
func TestLimitsHeaderTooLarge(t *testing.T) {
	s := newAPIServer(t, func(c *northbound.Config) { c.Limits.MaxHeaderBytes = 8 << 10 })
	if code := s.do("GET", "/v2.0/networks", map[string]string{"X-Big": strings.Repeat("b", 4<<10)}, nil, nil); code != 200 {
		t.Fatalf("4 KiB header: %d, want 200", code)
	}
	if code := s.do("GET", "/v2.0/networks", map[string]string{"X-Big": strings.Repeat("b", 16<<10)}, nil, nil); code != http.StatusRequestHeaderFieldsTooLarge {
		t.Fatalf("16 KiB header with an 8 KiB limit: %d, want 431", code)
	}
}

// closedWithin reads from c until the server closes it and fails unless
// that happens within d; meanwhile trickle writes one byte per tick.
func closedWithin(t *testing.T, c net.Conn, d time.Duration, trickle func() error) time.Duration {
	t.Helper()
	start := time.Now()
	closed := make(chan error, 1)
	go func() {
		_, err := io.Copy(io.Discard, c)
		closed <- err
	}()
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	for {
		select {
		case <-closed:
			return time.Since(start)
		case <-deadline.C:
			t.Fatalf("connection still open after %v of trickling", d)
		case <-tick.C:
			// A write may fail once the server closed: the reader sees it.
			_ = trickle()
		}
	}
}

// TestLimitsSlowloris: a client that trickles its headers, or its body,
// one byte at a time is disconnected once the read timeouts pass, and
// the server keeps serving others meanwhile.
func TestLimitsSlowloris(t *testing.T) {
	s := newAPIServer(t, func(c *northbound.Config) {
		c.Limits.ReadHeaderTimeout = time.Second
		c.Limits.ReadTimeout = 2 * time.Second
	})
	addr := strings.TrimPrefix(s.base, "http://")
	t.Run("headers", func(t *testing.T) {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := io.WriteString(c, "GET /v2.0/networks HTTP/1.1\r\nHost: x\r\nX-Slow: "); err != nil {
			t.Fatal(err)
		}
		took := closedWithin(t, c, 5*time.Second, func() error { _, err := c.Write([]byte("a")); return err })
		t.Logf("trickled headers: closed after %v (ReadHeaderTimeout 1s)", took)
		if took < 900*time.Millisecond {
			t.Fatalf("closed after %v, before the 1 s timeout: not the timeout", took)
		}
		if code := s.do("GET", "/v2.0/networks", nil, nil, nil); code != 200 {
			t.Fatalf("another client meanwhile: %d", code)
		}
	})
	t.Run("body", func(t *testing.T) {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := io.WriteString(c, "POST /v2.0/networks HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"); err != nil {
			t.Fatal(err)
		}
		took := closedWithin(t, c, 6*time.Second, func() error { _, err := c.Write([]byte(" ")); return err })
		t.Logf("trickled body: closed after %v (ReadTimeout 2s)", took)
		if took < 1800*time.Millisecond {
			t.Fatalf("closed after %v, before the 2 s timeout: not the timeout", took)
		}
	})
	t.Run("watch outlives ReadTimeout", func(t *testing.T) {
		// A long poll holds longer than ReadTimeout and still answers.
		start := time.Now()
		var ans map[string]any
		code := s.do("GET", "/v1/watch?tables=networks&since=999999&timeout=3", nil, nil, &ans)
		if code != 200 {
			t.Fatalf("watch: %d %v", code, ans)
		}
		if took := time.Since(start); took < 2500*time.Millisecond {
			t.Fatalf("watch answered after %v, before its 3 s timeout", took)
		}
	})
}

// holdRequest opens a request from local address from that stays in
// progress: its headers promise a body that never comes. It returns once
// the server reads the body (it answers 100 Continue): the request is
// then in the handler, counted.
func holdRequest(t *testing.T, addr, from string) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if _, err := io.WriteString(c, "POST /v2.0/networks HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"+
		"Expect: 100-continue\r\nContent-Length: 100\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil || !strings.Contains(line, " 100 ") {
		t.Fatalf("held request from %s: %q %v, want 100 Continue", from, line, err)
	}
	if _, err := io.WriteString(c, "{"); err != nil {
		t.Fatal(err)
	}
	return c
}

// getFrom sends GET path from local address from and returns the status
// and the Neutron error type.
func getFrom(t *testing.T, addr, from, path string) (int, string) {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}, Timeout: 5 * time.Second}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", path); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	typ := ""
	if i := strings.Index(string(data), `"type": "`); i >= 0 {
		typ = strings.SplitN(string(data[i+9:]), `"`, 2)[0]
	} else if i := strings.Index(string(data), `"type":"`); i >= 0 {
		typ = strings.SplitN(string(data[i+8:]), `"`, 2)[0]
	}
	return resp.StatusCode, typ
}

// TestLimitsPerClient: a client with MaxPerClient requests in progress
// gets 429 in Neutron's format for one more; another client address is
// served; a watch is exempt; the slots come back when the requests end.
func TestLimitsPerClient(t *testing.T) {
	s := newAPIServer(t, func(c *northbound.Config) { c.Limits.MaxPerClient = 2 })
	addr := strings.TrimPrefix(s.base, "http://")
	held := []net.Conn{holdRequest(t, addr, "127.0.0.1"), holdRequest(t, addr, "127.0.0.1")}
	if code, typ := getFrom(t, addr, "127.0.0.1", "/v2.0/networks"); code != http.StatusTooManyRequests || typ != "TooManyRequests" {
		t.Fatalf("third request from 127.0.0.1: %d %q, want 429 TooManyRequests", code, typ)
	}
	if code, _ := getFrom(t, addr, "127.0.0.2", "/v2.0/networks"); code != 200 {
		t.Fatalf("a request from 127.0.0.2: %d, want 200", code)
	}
	if code, typ := getFrom(t, addr, "127.0.0.1", "/v1/watch?tables=networks&since=0&timeout=0"); code != 200 {
		t.Fatalf("a watch from the limited client: %d %s, want 200 (exempt)", code, typ)
	}
	for _, c := range held {
		c.Close()
	}
	eventually(t, 5*time.Second, func() error {
		if code, _ := getFrom(t, addr, "127.0.0.1", "/v2.0/networks"); code != 200 {
			return errors.New("127.0.0.1 still refused after its requests ended")
		}
		return nil
	})
}
