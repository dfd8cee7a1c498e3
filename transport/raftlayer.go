package transport

import (
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// RaftLayer is the transport as the default group's stream layer. Closing
// it closes the whole transport, as when a node hosted one group only.
func (t *Transport) RaftLayer() raft.StreamLayer { return raftLayer{t} }

type raftLayer struct{ t *Transport }

func (l raftLayer) Accept() (net.Conn, error) {
	select {
	case c := <-l.t.raftConns:
		return c, nil
	case <-l.t.closed:
		return nil, ErrClosed
	}
}

// Close closes the whole transport: Raft owns its lifetime.
func (l raftLayer) Close() error { return l.t.Close() }

// Addr is the advertised address, so peers are told a reachable one (a host
// name works, which survives container IP changes).
func (l raftLayer) Addr() net.Addr { return advertisedAddr(l.t.Addr()) }

func (l raftLayer) Dial(addr raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	return l.t.Dial(string(addr), KindRaft, timeout)
}

type advertisedAddr string

func (a advertisedAddr) Network() string { return "tcp" }
func (a advertisedAddr) String() string  { return string(a) }

// maxGroupNameLen bounds a group's name in a connection's preamble.
const maxGroupNameLen = 64

// ValidGroupName checks a Raft group's name: 1 to 64 bytes of lower-case
// letters, digits, '-' and '.'.
func ValidGroupName(name string) error {
	if name == "" || len(name) > maxGroupNameLen {
		return fmt.Errorf("transport: group name must be 1 to %d bytes, got %d", maxGroupNameLen, len(name))
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '.') {
			return fmt.Errorf("transport: group name %q: only a-z, 0-9, '-' and '.'", name)
		}
	}
	return nil
}

// RaftGroupLayer is the stream layer of one named Raft group: its dials name
// the group in the preamble and its Accept returns only connections that
// name it, so several groups share the one port. Closing it detaches the
// group (its Accept returns ErrClosed, connections queued for it are
// closed) and leaves the transport and the other groups running. A group
// can be attached once at a time.
func (t *Transport) RaftGroupLayer(group string) (raft.StreamLayer, error) {
	if err := ValidGroupName(group); err != nil {
		return nil, err
	}
	select {
	case <-t.closed:
		return nil, ErrClosed
	default:
	}
	t.groupsMu.Lock()
	defer t.groupsMu.Unlock()
	if _, ok := t.groups[group]; ok {
		return nil, fmt.Errorf("transport: group %q is already attached", group)
	}
	l := &groupLayer{t: t, group: group, conns: make(chan net.Conn, 16), detached: make(chan struct{})}
	t.groups[group] = l
	return l, nil
}

type groupLayer struct {
	t        *Transport
	group    string
	conns    chan net.Conn
	once     sync.Once
	detached chan struct{}
}

// hand queues an inbound connection for the group's Raft.
func (l *groupLayer) hand(conn net.Conn) {
	select {
	case l.conns <- conn:
		select {
		case <-l.detached: // detached meanwhile: nobody will take it
			closeQueued(l.conns)
		default:
		}
	case <-l.detached:
		conn.Close()
	case <-l.t.closed:
		conn.Close()
	}
}

func (l *groupLayer) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.detached:
		return nil, ErrClosed
	case <-l.t.closed:
		return nil, ErrClosed
	}
}

func (l *groupLayer) Close() error {
	l.once.Do(func() {
		l.t.groupsMu.Lock()
		delete(l.t.groups, l.group)
		l.t.groupsMu.Unlock()
		close(l.detached)
		closeQueued(l.conns)
	})
	return nil
}

func (l *groupLayer) Addr() net.Addr { return advertisedAddr(l.t.Addr()) }

func (l *groupLayer) Dial(addr raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	select {
	case <-l.detached:
		return nil, ErrClosed
	default:
	}
	return l.t.dial(string(addr), KindRaftGroup, l.group, timeout)
}
