package transport

import (
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Faults cuts chosen pairs of nodes for tests. One Faults is shared by every
// node of a test cluster; each node's transport consults it with its own
// advertised address and the peer's. A cut in either direction stops TCP
// between the pair (a one-way loss of packets stalls a TCP connection both
// ways), so new connections between them are refused and established ones
// are closed.
type Faults struct {
	mu      sync.Mutex
	blocked map[[2]string]bool
	delays  map[[2]string]time.Duration
	conns   map[*faultConn]struct{}
}

// NewFaults returns a fault layer that lets everything through.
func NewFaults() *Faults {
	return &Faults{
		blocked: make(map[[2]string]bool),
		delays:  make(map[[2]string]time.Duration),
		conns:   make(map[*faultConn]struct{}),
	}
}

// Block drops traffic sent from one address to another.
func (f *Faults) Block(from, to string) {
	f.mu.Lock()
	f.blocked[[2]string{from, to}] = true
	var cut []*faultConn
	for c := range f.conns {
		if (c.local == from && c.remote == to) || (c.local == to && c.remote == from) {
			cut = append(cut, c)
		}
	}
	f.mu.Unlock()
	for _, c := range cut {
		c.Conn.Close()
	}
}

// Partition blocks both directions between a and b.
func (f *Faults) Partition(a, b string) {
	f.Block(a, b)
	f.Block(b, a)
}

// Unblock lets traffic from one address to another through again.
func (f *Faults) Unblock(from, to string) {
	f.mu.Lock()
	delete(f.blocked, [2]string{from, to})
	f.mu.Unlock()
}

// Heal removes every cut.
func (f *Faults) Heal() {
	f.mu.Lock()
	clear(f.blocked)
	f.mu.Unlock()
}

// Cut reports whether a connection between a and b is impossible now.
func (f *Faults) Cut(a, b string) bool {
	if f == nil {
		return false
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.blocked[[2]string{a, b}] || f.blocked[[2]string{b, a}]
}

// track wraps an established connection so that a later cut closes it. If
// the pair was cut while the connection was being set up, it closes the
// connection and returns ErrCut: checking and registering happen under one
// lock, so no cut is missed.
func (f *Faults) track(c net.Conn, local, remote string) (net.Conn, error) {
	if f == nil {
		return c, nil
	}
	f.mu.Lock()
	if f.blocked[[2]string{local, remote}] || f.blocked[[2]string{remote, local}] {
		f.mu.Unlock()
		c.Close()
		return nil, ErrCut
	}
	fc := &faultConn{Conn: c, faults: f, local: local, remote: remote}
	f.conns[fc] = struct{}{}
	f.mu.Unlock()
	return fc, nil
}

type faultConn struct {
	net.Conn
	faults        *Faults
	local, remote string
	closeOnce     sync.Once

	delayOnce sync.Once
	delayed   atomic.Pointer[delayedWriter] // set once a write was delayed
}

func (c *faultConn) Write(b []byte) (int, error) {
	if w := c.delayed.Load(); w != nil {
		return w.write(b, c.faults.delay(c.local, c.remote))
	}
	d := c.faults.delay(c.local, c.remote)
	if d <= 0 {
		return c.Conn.Write(b)
	}
	// From the first delayed write on, every write of this connection goes
	// through the one queue, so bytes keep their order when the delay
	// changes or is removed.
	c.delayOnce.Do(func() { c.delayed.Store(newDelayedWriter(c.Conn)) })
	return c.delayed.Load().write(b, d)
}

func (c *faultConn) Close() error {
	c.closeOnce.Do(func() {
		c.faults.mu.Lock()
		delete(c.faults.conns, c)
		c.faults.mu.Unlock()
	})
	if w := c.delayed.Load(); w != nil {
		return w.close()
	}
	return c.Conn.Close()
}
