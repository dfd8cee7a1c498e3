package transport

import (
	"crypto/tls"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/sessiond/sessiond/transport/testkit"
)

// modes runs a test over plain TCP and over mutual TLS with one cluster CA.
func modes(t *testing.T, run func(t *testing.T, identity func(name string) *MutualTLS)) {
	t.Run("plain", func(t *testing.T) {
		run(t, func(string) *MutualTLS { return nil })
	})
	t.Run("mutual TLS", func(t *testing.T) {
		ca := newTestCA(t, "cluster-a")
		run(t, ca.mutualTLS)
	})
}

func TestDial_RPCReachesHandlerWithDialersAdvertisedAddress(t *testing.T) {
	modes(t, func(t *testing.T, identity func(string) *MutualTLS) {
		srv := listen(t, Config{TLS: identity("server")})
		rec := newRPCRecorder(srv)
		cli := listen(t, Config{TLS: identity("client")})

		c := dial(t, cli, srv.Addr(), KindRPC)
		call := rec.next(t)
		if call.peer != cli.Addr() {
			t.Errorf("peer = %q, want the dialer's advertised address %q", call.peer, cli.Addr())
		}
		// Both ways: the handler echoes what we send.
		roundTrip(t, c, "hello over rpc")
		roundTrip(t, c, strings.Repeat("x", 64<<10))
	})
}

func TestDial_PeerIsTheAdvertisedNotTheSourceAddress(t *testing.T) {
	srv := listen(t, Config{})
	rec := newRPCRecorder(srv)
	cli := listen(t, Config{AdvertiseAddr: "node-a.cluster.test:7000"})
	if got := cli.Addr(); got != "node-a.cluster.test:7000" {
		t.Fatalf("Addr = %q, want the configured advertise address", got)
	}
	dial(t, cli, srv.Addr(), KindRPC)
	if call := rec.next(t); call.peer != "node-a.cluster.test:7000" {
		t.Errorf("peer = %q, want node-a.cluster.test:7000", call.peer)
	}

	// SetAdvertise, as a node does once the OS has picked its port.
	if err := cli.SetAdvertise("node-a.cluster.test:7001"); err != nil {
		t.Fatal(err)
	}
	dial(t, cli, srv.Addr(), KindRPC)
	if call := rec.next(t); call.peer != "node-a.cluster.test:7001" {
		t.Errorf("after SetAdvertise, peer = %q, want node-a.cluster.test:7001", call.peer)
	}
}

func TestDial_RaftConnectionIsReturnedByAccept(t *testing.T) {
	modes(t, func(t *testing.T, identity func(string) *MutualTLS) {
		srv := listen(t, Config{TLS: identity("server")})
		rec := newRPCRecorder(srv)
		cli := listen(t, Config{TLS: identity("client")})

		c, err := cli.RaftLayer().Dial(srvAddr(srv), 5*time.Second)
		if err != nil {
			t.Fatalf("RaftLayer().Dial: %v", err)
		}
		defer c.Close()
		s := acceptRaft(t, srv)
		exchange(t, c, s)
		if n := rec.count(); n != 0 {
			t.Errorf("a Raft connection reached the RPC handler (%d calls)", n)
		}
	})
}

func TestDial_RPCWithoutHandlerIsClosed(t *testing.T) {
	srv := listen(t, Config{})
	cli := listen(t, Config{})
	c := dial(t, cli, srv.Addr(), KindRPC)
	waitClosed(t, c, 5*time.Second)
}

func TestDial_UnreachableAddressFails(t *testing.T) {
	// A port that was just free.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()

	cli := listen(t, Config{})
	c, err := cli.Dial(addr, KindRPC, time.Second)
	if err == nil {
		c.Close()
		t.Fatal("Dial to a closed port succeeded")
	}
	if errors.Is(err, ErrCut) || errors.Is(err, ErrClosed) {
		t.Errorf("err = %v, want a network error", err)
	}
}

func TestRaftLayer_AddrIsTheAdvertisedAddress(t *testing.T) {
	tr := listen(t, Config{AdvertiseAddr: "raft-1.cluster.test:7000"})
	a := tr.RaftLayer().Addr()
	if a.String() != "raft-1.cluster.test:7000" || a.Network() != "tcp" {
		t.Errorf("Addr = %s/%s, want tcp/raft-1.cluster.test:7000", a.Network(), a)
	}
	bound := listen(t, Config{})
	if got := bound.RaftLayer().Addr().String(); got != bound.ln.Addr().String() {
		t.Errorf("without an advertise address Addr = %s, want the bound %s", got, bound.ln.Addr())
	}
}

func TestAdvertiseAddress_LongerThanPreambleAllowsIsRejected(t *testing.T) {
	long := strings.Repeat("a", maxAddrLen-4) + ":7000" // 256 bytes
	if tr, err := Listen(Config{BindAddr: "127.0.0.1:0", AdvertiseAddr: long}); err == nil {
		tr.Close()
		t.Error("Listen accepted a 256-byte advertise address")
	}
	tr := listen(t, Config{})
	if err := tr.SetAdvertise(long); err == nil {
		t.Error("SetAdvertise accepted a 256-byte advertise address")
	}
	// The longest allowed one still fits the preamble and reaches the peer.
	longest := strings.Repeat("a", maxAddrLen-5) + ":7000"
	if err := tr.SetAdvertise(longest); err != nil {
		t.Fatalf("SetAdvertise(255 bytes): %v", err)
	}
	srv := listen(t, Config{})
	rec := newRPCRecorder(srv)
	dial(t, tr, srv.Addr(), KindRPC)
	if call := rec.next(t); call.peer != longest {
		t.Errorf("peer = %q, want the 255-byte advertise address", call.peer)
	}
}

func TestHandshake_UnknownKindIsClosedWithoutCallingHandler(t *testing.T) {
	modes(t, func(t *testing.T, identity func(string) *MutualTLS) {
		srv := listen(t, Config{TLS: identity("server")})
		rec := newRPCRecorder(srv)
		c, err := net.Dial("tcp", srv.Addr())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if m := identity("client"); m != nil {
			tc := tls.Client(c, m.Client)
			_ = tc.SetDeadline(time.Now().Add(5 * time.Second))
			if err := tc.Handshake(); err != nil {
				t.Fatalf("TLS handshake: %v", err)
			}
			c = tc
		}
		if _, err := c.Write(preamble('X', "127.0.0.1:1")); err != nil {
			t.Fatal(err)
		}
		waitClosed(t, c, 5*time.Second)
		assertNoServedConnections(t, srv, rec)
	})
}

func TestHandshake_StalledConnectionIsClosedAfterHandshakeTimeout(t *testing.T) {
	const timeout = 200 * time.Millisecond
	ca := newTestCA(t, "cluster-a")
	clientTLS := ca.mutualTLS("client")
	tests := []struct {
		name string
		tls  bool
		// overTLS makes the client finish its TLS handshake first.
		overTLS bool
		send    []byte
	}{
		{"plain, sends nothing", false, false, nil},
		{"plain, kind byte only", false, false, []byte{byte(KindRPC)}},
		{"plain, address cut short", false, false, preamble(KindRaft, "127.0.0.1:1")[:5]},
		{"TLS, sends nothing", true, false, nil},
		{"TLS, half a ClientHello", true, false, []byte{0x16, 0x03, 0x01, 0x02, 0x00, 0x01}},
		{"TLS, no preamble after the handshake", true, true, nil},
		{"TLS, address cut short", true, true, preamble(KindRPC, "127.0.0.1:1")[:4]},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := Config{HandshakeTimeout: timeout}
			if tt.tls {
				cfg.TLS = ca.mutualTLS("server")
			}
			srv := listen(t, cfg)
			rec := newRPCRecorder(srv)

			start := time.Now()
			c, err := net.Dial("tcp", srv.Addr())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if tt.overTLS {
				tc := tls.Client(c, clientTLS.Client)
				if err := tc.Handshake(); err != nil {
					// Only on a machine so loaded that TLS outlasts the
					// timeout: the server closed us, which is still right.
					t.Logf("TLS handshake cut short: %v", err)
					assertNoServedConnections(t, srv, rec)
					return
				}
				c = tc
			}
			if len(tt.send) > 0 {
				if _, err := c.Write(tt.send); err != nil {
					// As above: on a loaded machine the timeout can pass
					// before the write, and the server has closed us.
					t.Logf("write after the handshake: %v", err)
					assertNoServedConnections(t, srv, rec)
					return
				}
			}
			waitClosed(t, c, 5*time.Second)
			if elapsed := time.Since(start); elapsed < timeout {
				t.Errorf("closed after %v, before the %v handshake timeout", elapsed, timeout)
			}
			assertNoServedConnections(t, srv, rec)
		})
	}
}

func TestClose_DialAndAcceptReturnErrClosed(t *testing.T) {
	peer := listen(t, Config{})
	tr := listen(t, Config{})

	// An Accept already waiting is released by Close.
	accepted := make(chan error, 1)
	go func() {
		c, err := tr.RaftLayer().Accept()
		if c != nil {
			c.Close()
		}
		accepted <- err
	}()

	if err := tr.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	select {
	case err := <-accepted:
		if !errors.Is(err, ErrClosed) {
			t.Errorf("waiting Accept returned %v, want ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not release a waiting Accept")
	}
	if _, err := tr.RaftLayer().Accept(); !errors.Is(err, ErrClosed) {
		t.Errorf("Accept after Close = %v, want ErrClosed", err)
	}
	for _, kind := range []Kind{KindRPC, KindRaft} {
		if c, err := tr.Dial(peer.Addr(), kind, time.Second); !errors.Is(err, ErrClosed) {
			if c != nil {
				c.Close()
			}
			t.Errorf("Dial (%c) after Close = %v, want ErrClosed", kind, err)
		}
	}
	if _, err := tr.RaftLayer().Dial(srvAddr(peer), time.Second); !errors.Is(err, ErrClosed) {
		t.Errorf("RaftLayer().Dial after Close = %v, want ErrClosed", err)
	}
}

func TestClose_TwiceIsFine(t *testing.T) {
	tr := listen(t, Config{})
	if err := tr.Close(); err != nil {
		t.Fatalf("first Close: %v", err)
	}
	if err := tr.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := tr.RaftLayer().Close(); err != nil {
		t.Fatalf("RaftLayer().Close after Close: %v", err)
	}
}

func TestClose_RaftLayerCloseClosesTheTransport(t *testing.T) {
	peer := listen(t, Config{})
	tr := listen(t, Config{})
	if err := tr.RaftLayer().Close(); err != nil {
		t.Fatalf("RaftLayer().Close: %v", err)
	}
	if _, err := tr.Dial(peer.Addr(), KindRPC, time.Second); !errors.Is(err, ErrClosed) {
		t.Errorf("Dial after RaftLayer().Close = %v, want ErrClosed", err)
	}
}

func TestClose_LeavesHandedOutConnectionsOpen(t *testing.T) {
	srv := listen(t, Config{})
	cli := listen(t, Config{})
	c := dial(t, cli, srv.Addr(), KindRaft)
	s := acceptRaft(t, srv)
	closeWithin(t, srv, 5*time.Second)
	closeWithin(t, cli, 5*time.Second)
	// Raft owns its connections: they outlive the transport's Close.
	exchange(t, c, s)
}

// Bug: Close waits (t.wg.Wait) for the goroutine that runs the RPC handler,
// because handshake calls serve(conn, peer) inside the goroutine the accept
// loop counts in t.wg (transport.go, acceptLoop/handshake). A handler that
// serves a connection until the peer hangs up keeps Close, and therefore
// raft.Shutdown (which closes the stream layer), blocked forever.
func TestClose_ReturnsWhileAnRPCHandlerIsServing(t *testing.T) {
	srv := listen(t, Config{})
	rec := newRPCRecorder(srv) // echoes until the peer closes
	cli := listen(t, Config{})
	c, err := cli.Dial(srv.Addr(), KindRPC, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	rec.next(t)

	done := make(chan error, 1)
	go func() { done <- srv.Close() }()
	select {
	case <-done:
	case <-time.After(2 * time.Second):
		c.Close() // let the handler, and so Close, return
		<-done
		t.Fatal("Close blocked while an RPC handler was serving a connection")
	}
}

// Bug: Raft connections that completed their handshake but were never taken
// by Accept stay in t.raftConns after Close and are never closed, so the
// dialer waits on a connection nobody will ever read (transport.go, Close).
func TestClose_ClosesRaftConnectionsNeverAccepted(t *testing.T) {
	srv := listen(t, Config{})
	cli := listen(t, Config{})
	c := dial(t, cli, srv.Addr(), KindRaft)
	testkit.Eventually(t, 5*time.Second, "the Raft connection to be queued", func() bool { return len(srv.raftConns) == 1 })

	closeWithin(t, srv, 5*time.Second)
	waitClosed(t, c, 2*time.Second)
}

// Bug: Close waits for connections still in their handshake, so a peer that
// opens a connection and sends nothing delays Close by up to
// HandshakeTimeout (5 s by default) (transport.go, Close and handshake).
func TestClose_DoesNotWaitForStalledHandshakes(t *testing.T) {
	ca := newTestCA(t, "cluster-a")
	srv := listen(t, Config{TLS: ca.mutualTLS("server"), HandshakeTimeout: 3 * time.Second})
	raw, err := net.Dial("tcp", srv.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	// Completing TLS proves the server is now handling this connection; it
	// then waits for a preamble that never comes.
	c := tls.Client(raw, ca.mutualTLS("client").Client)
	if err := c.Handshake(); err != nil {
		t.Fatalf("TLS handshake: %v", err)
	}
	start := time.Now()
	closeWithin(t, srv, 10*time.Second)
	if d := time.Since(start); d > time.Second {
		t.Errorf("Close took %v: it waited for a stalled handshake", d)
	}
}
