package transport

import (
	"bytes"
	"fmt"
	"net"
	"time"

	"github.com/hashicorp/memberlist"
)

// FaultyGossip wraps memberlist's transport so that the fault layer cuts
// and delays gossip between chosen addresses too: packets to or from a cut
// peer are dropped, packets to a delayed one are sent that much later, and
// streams to a cut peer cannot be dialled (those dialled are closed by a
// later cut and delayed on the dialling side). Inbound streams carry no
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
	if d := g.faults.delay(g.self, addr); d > 0 {
		// Sent later, as a datagram on a long link arrives later; one sent
		// after the transport shut down is lost, as UDP would lose it.
		packet := bytes.Clone(b)
		time.AfterFunc(d, func() {
			select {
			case <-g.done:
			default:
				_, _ = g.Transport.WriteTo(packet, addr)
			}
		})
		return time.Now(), nil
	}
	return g.Transport.WriteTo(b, addr)
}

func (g *faultyGossip) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	if g.faults.Cut(g.self, addr) {
		return nil, fmt.Errorf("dial %s: %w", addr, ErrCut)
	}
	conn, err := g.Transport.DialTimeout(addr, timeout)
	if err != nil {
		return nil, err
	}
	// Tracked like the cluster's connections: a later cut closes it and a
	// delay holds back what this side writes. Inbound streams carry no
	// sender address, so the answers on them are not delayed.
	return g.faults.track(conn, g.self, addr)
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
