package transport

import (
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/hashicorp/memberlist"
)

// recordingGossip is memberlist's transport as far as FaultyGossip uses it:
// it records when each packet was handed to it.
type recordingGossip struct {
	memberlist.Transport
	packets chan *memberlist.Packet
	mu      sync.Mutex
	sent    map[string]time.Time
}

func (r *recordingGossip) PacketCh() <-chan *memberlist.Packet { return r.packets }
func (r *recordingGossip) Shutdown() error                     { return nil }
func (r *recordingGossip) WriteTo(b []byte, addr string) (time.Time, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.sent[string(b)] = time.Now()
	return time.Now(), nil
}

func (r *recordingGossip) sentAt(packet string) (time.Time, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	at, ok := r.sent[packet]
	return at, ok
}

// In a synctest bubble time is the bubble's: the delays below are exact and
// the test does not wait for them.
func TestFaultyGossip_DelayedPacketsAreSentLater(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const d = 60 * time.Millisecond
		faults := NewFaults()
		inner := &recordingGossip{packets: make(chan *memberlist.Packet), sent: map[string]time.Time{}}
		g := FaultyGossip(inner, "10.0.0.1:7946", faults)
		faults.SetDelay("10.0.0.1:7946", "10.0.0.2:7946", d)

		start := time.Now()
		for _, p := range []struct{ packet, to string }{{"to-far", "10.0.0.2:7946"}, {"to-near", "10.0.0.3:7946"}} {
			if _, err := g.WriteTo([]byte(p.packet), p.to); err != nil {
				t.Fatal(err)
			}
		}
		if _, ok := inner.sentAt("to-near"); !ok {
			t.Error("a packet to an undelayed peer was not sent at once")
		}
		if _, ok := inner.sentAt("to-far"); ok {
			t.Error("the packet to the delayed peer was sent at once")
		}
		time.Sleep(d)
		synctest.Wait()
		if far, ok := inner.sentAt("to-far"); !ok || far.Sub(start) != d {
			t.Errorf("the delayed packet: sent %v, after %v; want after exactly %v", ok, far.Sub(start), d)
		}

		// A packet still held when the transport shuts down is lost, as
		// UDP would lose it.
		if _, err := g.WriteTo([]byte("late"), "10.0.0.2:7946"); err != nil {
			t.Fatal(err)
		}
		if err := g.Shutdown(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * d)
		synctest.Wait()
		if _, ok := inner.sentAt("late"); ok {
			t.Error("a packet was sent after the transport shut down")
		}
	})
}
