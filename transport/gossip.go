package transport

import (
	"fmt"
	"net"
	"time"

	"github.com/hashicorp/memberlist"
)

// FaultyGossip wraps memberlist's transport so that the fault layer cuts
// gossip between chosen addresses too: packets to or from a cut peer are
// dropped and streams to it cannot be dialled. Inbound streams carry no
// sender address, so for those the dialing side's check is what counts
// (every node wraps its own transport, so a pair cut both ways is cut).
// With a nil Faults it returns inner unchanged.
func FaultyGossip(inner memberlist.Transport, self string, faults *Faults) memberlist.Transport {
	if faults == nil {
		return inner
	}
	g := &faultyGossip{Transport: inner, self: self, faults: faults, packets: make(chan *memberlist.Packet), done: make(chan struct{})}
	go g.filterPackets()
	return g
}

type faultyGossip struct {
	memberlist.Transport
	self    string
	faults  *Faults
	packets chan *memberlist.Packet
	done    chan struct{}
}

// Shutdown stops forwarding packets, then shuts the inner transport down
// while draining its packet channel: its listener goroutines may be blocked
// handing over a packet, and it waits for them.
func (g *faultyGossip) Shutdown() error {
	close(g.done)
	drained := make(chan struct{})
	go func() {
		in := g.Transport.PacketCh()
		for {
			select {
			case <-in:
			case <-drained:
				return
			}
		}
	}()
	err := g.Transport.Shutdown()
	close(drained)
	return err
}

func (g *faultyGossip) WriteTo(b []byte, addr string) (time.Time, error) {
	if g.faults.blockedOneWay(g.self, addr) {
		return time.Now(), nil // lost on the way, as UDP would be
	}
	return g.Transport.WriteTo(b, addr)
}

func (g *faultyGossip) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	if g.faults.Cut(g.self, addr) {
		return nil, fmt.Errorf("dial %s: %w", addr, ErrCut)
	}
	return g.Transport.DialTimeout(addr, timeout)
}

func (g *faultyGossip) PacketCh() <-chan *memberlist.Packet { return g.packets }

func (g *faultyGossip) filterPackets() {
	in := g.Transport.PacketCh()
	for {
		select {
		case <-g.done:
			return
		case p := <-in:
			if p.From != nil && g.faults.blockedOneWay(p.From.String(), g.self) {
				continue
			}
			select {
			case g.packets <- p:
			case <-g.done:
				return
			}
		}
	}
}

// blockedOneWay reports whether traffic from one address to another is
// blocked (datagrams can be lost in one direction only).
func (f *Faults) blockedOneWay(from, to string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.blocked[[2]string{from, to}]
}
