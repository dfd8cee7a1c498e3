package transport

import (
	"net"
	"time"

	"github.com/hashicorp/raft"
)

// RaftLayer is the transport as Raft's stream layer.
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
