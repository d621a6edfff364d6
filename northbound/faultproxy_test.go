package northbound_test

import (
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
)

// faultProxy is a TCP proxy in front of a server's API that can lose an
// answer or stall, to stand for a leader that dies after committing or
// stops (SIGSTOP) without stopping the test process.
type faultProxy struct {
	ln     net.Listener
	target atomic.Value // string: the server's real address

	// dropNext: the next answer from the server is not relayed; the
	// connection is cut and the listener closed, so that re-dials are
	// refused as they are by a dead process.
	dropNext atomic.Bool
	dropped  chan struct{}
	// stall: requests are swallowed and never answered.
	stall atomic.Bool
	held  atomic.Int32

	mu     sync.Mutex
	conns  []net.Conn
	closed chan struct{}
	once   sync.Once
}

func newFaultProxy(t testing.TB) *faultProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &faultProxy{ln: ln, dropped: make(chan struct{}), closed: make(chan struct{})}
	go p.serve()
	t.Cleanup(p.close)
	return p
}

func (p *faultProxy) addr() string { return p.ln.Addr().String() }

func (p *faultProxy) close() {
	p.once.Do(func() {
		close(p.closed)
		p.ln.Close()
		p.mu.Lock()
		for _, c := range p.conns {
			c.Close()
		}
		p.mu.Unlock()
	})
}

func (p *faultProxy) track(c net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.conns = append(p.conns, c)
}

func (p *faultProxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.track(c)
		go p.relay(c)
	}
}

func (p *faultProxy) relay(client net.Conn) {
	if p.stall.Load() {
		// A stopped process's kernel still accepts connections; nothing
		// answers on them.
		if n, _ := client.Read(make([]byte, 1)); n > 0 {
			p.held.Add(1)
		}
		<-p.closed
		client.Close()
		return
	}
	target, _ := p.target.Load().(string)
	server, err := net.Dial("tcp", target)
	if err != nil {
		client.Close()
		return
	}
	p.track(server)
	go func() {
		buf := make([]byte, 32<<10)
		for {
			n, err := client.Read(buf)
			if n > 0 && p.stall.Load() {
				p.held.Add(1)
				<-p.closed
				return
			}
			if n > 0 {
				if _, werr := server.Write(buf[:n]); werr != nil {
					return
				}
			}
			if err != nil {
				server.Close()
				return
			}
		}
	}()
	buf := make([]byte, 32<<10)
	for {
		n, err := server.Read(buf)
		if n > 0 && p.dropNext.CompareAndSwap(true, false) {
			// The server answered (so it applied the request): lose the
			// answer and play dead.
			p.ln.Close()
			client.Close()
			server.Close()
			close(p.dropped)
			return
		}
		if n > 0 {
			if _, werr := client.Write(buf[:n]); werr != nil {
				server.Close()
				return
			}
		}
		if err != nil && p.stall.Load() {
			// A stopped process does not close its connections either.
			<-p.closed
			client.Close()
			return
		}
		if err != nil {
			if !errors.Is(err, io.EOF) {
				server.Close()
			}
			client.Close()
			return
		}
	}
}
