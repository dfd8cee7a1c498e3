package transport

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"testing"
	"time"
)

// faultyNode is one transport of a test cluster sharing a fault layer.
type faultyNode struct {
	*Transport
	rpc *rpcRecorder
}

func faultyCluster(t *testing.T, n int, identity func(string) *MutualTLS) (*Faults, []faultyNode) {
	t.Helper()
	faults := NewFaults()
	nodes := make([]faultyNode, n)
	for i := range nodes {
		tr := listen(t, Config{TLS: identity("node"), Faults: faults})
		nodes[i] = faultyNode{Transport: tr, rpc: newRPCRecorder(tr)}
	}
	return faults, nodes
}

func noTLS(string) *MutualTLS { return nil }

// dialCut asserts that a Dial fails with ErrCut.
func dialCut(t *testing.T, from, to *Transport, kind Kind) {
	t.Helper()
	c, err := from.Dial(to.Addr(), kind, time.Second)
	if err == nil {
		c.Close()
		t.Fatalf("Dial %s -> %s (%c) succeeded across a cut", from.Addr(), to.Addr(), kind)
	}
	if !errors.Is(err, ErrCut) {
		t.Fatalf("Dial %s -> %s (%c) = %v, want ErrCut", from.Addr(), to.Addr(), kind, err)
	}
}

func TestFaults_PartitionRefusesDialsBothWays(t *testing.T) {
	faults, n := faultyCluster(t, 2, noTLS)
	a, b := n[0], n[1]
	faults.Partition(a.Addr(), b.Addr())
	for _, kind := range []Kind{KindRPC, KindRaft} {
		dialCut(t, a.Transport, b.Transport, kind)
		dialCut(t, b.Transport, a.Transport, kind)
	}
	if _, err := a.RaftLayer().Dial(srvAddr(b.Transport), time.Second); !errors.Is(err, ErrCut) {
		t.Errorf("RaftLayer().Dial across a partition = %v, want ErrCut", err)
	}
	if !faults.Cut(a.Addr(), b.Addr()) || !faults.Cut(b.Addr(), a.Addr()) {
		t.Error("Cut does not report the partition")
	}
	if a.rpc.count()+b.rpc.count() != 0 {
		t.Error("a handler was called across the partition")
	}
}

func TestFaults_PartitionClosesEstablishedConnections(t *testing.T) {
	modes(t, func(t *testing.T, identity func(string) *MutualTLS) {
		faults, n := faultyCluster(t, 2, identity)
		a, b := n[0], n[1]

		rpcA := dial(t, a.Transport, b.Addr(), KindRPC)
		rpcB := b.rpc.next(t).conn
		raftB := dial(t, b.Transport, a.Addr(), KindRaft)
		raftA := acceptRaft(t, a.Transport)
		roundTrip(t, rpcA, "before")
		exchange(t, raftA, raftB)

		// A Read already waiting must be woken, not just later ones.
		waiting := make(chan error, 1)
		go func() {
			_, err := raftA.Read(make([]byte, 1))
			waiting <- err
		}()

		faults.Partition(a.Addr(), b.Addr())

		select {
		case err := <-waiting:
			if err == nil {
				t.Error("a waiting Read succeeded across the partition")
			}
		case <-time.After(2 * time.Second):
			t.Fatal("a waiting Read was not woken by the partition")
		}
		// Every end of both connections, dialer's and acceptor's.
		for name, c := range map[string]net.Conn{"rpc dialer": rpcA, "rpc handler": rpcB, "raft dialer": raftB} {
			t.Run(name, func(t *testing.T) { waitClosed(t, c, 2*time.Second) })
		}
	})
}

// A cut in one direction alone stops TCP in both (documented in faults.go).
func TestFaults_BlockOneWayStopsBothDirections(t *testing.T) {
	faults, n := faultyCluster(t, 2, noTLS)
	a, b := n[0], n[1]
	est := dial(t, a.Transport, b.Addr(), KindRPC)
	b.rpc.next(t)

	faults.Block(a.Addr(), b.Addr())

	dialCut(t, a.Transport, b.Transport, KindRPC)
	dialCut(t, b.Transport, a.Transport, KindRPC)
	dialCut(t, b.Transport, a.Transport, KindRaft)
	waitClosed(t, est, 2*time.Second)
}

func TestFaults_HealRestoresDialing(t *testing.T) {
	faults, n := faultyCluster(t, 2, noTLS)
	a, b := n[0], n[1]
	faults.Partition(a.Addr(), b.Addr())
	dialCut(t, a.Transport, b.Transport, KindRPC)

	faults.Heal()

	if faults.Cut(a.Addr(), b.Addr()) {
		t.Fatal("Cut still reports the pair after Heal")
	}
	c := dial(t, a.Transport, b.Addr(), KindRPC)
	if call := b.rpc.next(t); call.peer != a.Addr() {
		t.Errorf("peer = %q, want %q", call.peer, a.Addr())
	}
	roundTrip(t, c, "healed")
	r := dial(t, b.Transport, a.Addr(), KindRaft)
	exchange(t, r, acceptRaft(t, a.Transport))
}

func TestFaults_UnblockRestoresOnlyWhenBothDirectionsAreOpen(t *testing.T) {
	faults, n := faultyCluster(t, 2, noTLS)
	a, b := n[0], n[1]
	faults.Partition(a.Addr(), b.Addr())

	faults.Unblock(a.Addr(), b.Addr())
	// b -> a is still blocked, which stops TCP both ways.
	dialCut(t, a.Transport, b.Transport, KindRPC)
	dialCut(t, b.Transport, a.Transport, KindRPC)

	faults.Unblock(b.Addr(), a.Addr())
	roundTrip(t, dial(t, a.Transport, b.Addr(), KindRPC), "unblocked")
}

func TestFaults_CutLeavesOtherPairsAlone(t *testing.T) {
	modes(t, func(t *testing.T, identity func(string) *MutualTLS) {
		faults, n := faultyCluster(t, 3, identity)
		a, b, c := n[0], n[1], n[2]
		acEst := dial(t, a.Transport, c.Addr(), KindRPC)
		c.rpc.next(t)
		bcEst := dial(t, b.Transport, c.Addr(), KindRaft)
		cbEst := acceptRaft(t, c.Transport)

		faults.Partition(a.Addr(), b.Addr())

		// Established connections to the third node still carry traffic.
		roundTrip(t, acEst, "a to c, established")
		exchange(t, bcEst, cbEst)
		// New ones are still made, every way round.
		for _, p := range []struct{ from, to faultyNode }{{a, c}, {c, a}, {b, c}, {c, b}} {
			conn := dial(t, p.from.Transport, p.to.Addr(), KindRPC)
			if call := p.to.rpc.next(t); call.peer != p.from.Addr() {
				t.Errorf("peer = %q, want %q", call.peer, p.from.Addr())
			}
			roundTrip(t, conn, "still connected")
		}
		dialCut(t, a.Transport, b.Transport, KindRPC)
	})
}

// The accepting side enforces cuts too: a dialer whose own fault layer lets
// the connection through (another process, or no fault layer) is still
// refused by a node that has the pair cut.
func TestFaults_AcceptorRefusesPeerItHasCut(t *testing.T) {
	faults, n := faultyCluster(t, 1, noTLS)
	srv := n[0]
	cli := listen(t, Config{}) // no fault layer of its own
	faults.Block(cli.Addr(), srv.Addr())

	for _, kind := range []Kind{KindRPC, KindRaft} {
		c, err := cli.Dial(srv.Addr(), kind, time.Second)
		refused(t, c, err)
	}
	assertNoServedConnections(t, srv.Transport, srv.rpc)
}

// Bug: Dial checks the cut before dialing and registers the connection with
// the fault layer only after the TLS handshake and preamble
// (transport.go, Dial; faults.go, track). A Partition made in between is
// missed: Dial returns a live connection between a cut pair, which a test
// harness would then pool and keep using across the "partition". The cut
// check and the registration must be one step under Faults.mu.
func TestFaults_PartitionDuringDialIsNotMissed(t *testing.T) {
	ca := newTestCA(t, "cluster-a")
	faults := NewFaults()
	cli := listen(t, Config{TLS: ca.mutualTLS("client"), Faults: faults})

	// A peer we drive by hand, so the cut can land mid-handshake.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	serverTLS := ca.mutualTLS("server").Server
	served := make(chan net.Conn, 1)
	go func() {
		raw, err := ln.Accept()
		if err != nil {
			served <- nil
			return
		}
		faults.Partition(cli.Addr(), ln.Addr().String())
		c := tls.Server(raw, serverTLS)
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.ReadFull(c, make([]byte, 2+len(cli.Addr()))); err != nil {
			raw.Close()
			served <- nil
			return
		}
		_ = c.SetDeadline(time.Time{})
		served <- c
	}()

	c, err := cli.Dial(ln.Addr().String(), KindRaft, 5*time.Second)
	s := <-served
	if s != nil {
		defer s.Close()
	}
	if err != nil {
		if !errors.Is(err, ErrCut) {
			t.Fatalf("Dial = %v, want ErrCut or a closed connection", err)
		}
		return
	}
	defer c.Close()
	if s == nil {
		t.Fatal("the hand-driven peer failed its handshake")
	}
	if _, err := s.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	waitClosed(t, c, 2*time.Second)
}
