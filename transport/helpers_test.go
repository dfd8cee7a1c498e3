package transport

import (
	"errors"
	"io"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/sessiond/sessiond/transport/testkit"
)

// listen starts a transport on 127.0.0.1:0 with a test logger and closes it
// when the test ends.
func listen(t *testing.T, cfg Config) *Transport {
	t.Helper()
	cfg.BindAddr = "127.0.0.1:0"
	if cfg.Logger == nil {
		cfg.Logger = testkit.Logger(t, slog.LevelDebug)
	}
	tr, err := Listen(cfg)
	if err != nil {
		t.Fatalf("Listen: %v", err)
	}
	t.Cleanup(func() { closeWithin(t, tr, 10*time.Second) })
	return tr
}

// closeWithin closes the transport, failing the test rather than hanging
// if Close does not return in time.
func closeWithin(t *testing.T, tr *Transport, d time.Duration) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- tr.Close() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Close: %v", err)
		}
	case <-time.After(d):
		t.Errorf("Close did not return within %v", d)
	}
}

// rpcCall is one invocation of an RPC handler.
type rpcCall struct {
	conn net.Conn
	peer string
}

// rpcRecorder is an RPC handler that reports every call and then echoes
// what it reads until the peer closes the connection.
type rpcRecorder struct {
	calls chan rpcCall
	mu    sync.Mutex
	n     int
}

func newRPCRecorder(tr *Transport) *rpcRecorder {
	r := &rpcRecorder{calls: make(chan rpcCall, 16)}
	tr.HandleRPC(r.serve)
	return r
}

func (r *rpcRecorder) serve(conn net.Conn, peer string) {
	r.mu.Lock()
	r.n++
	r.mu.Unlock()
	r.calls <- rpcCall{conn: conn, peer: peer}
	_, _ = io.Copy(conn, conn)
	conn.Close()
}

func (r *rpcRecorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.n
}

// next waits for the next call.
func (r *rpcRecorder) next(t *testing.T) rpcCall {
	t.Helper()
	select {
	case c := <-r.calls:
		return c
	case <-time.After(5 * time.Second):
		t.Fatal("the RPC handler was not called")
		return rpcCall{}
	}
}

// acceptRaft waits for the next Raft connection on tr.
func acceptRaft(t *testing.T, tr *Transport) net.Conn {
	t.Helper()
	type result struct {
		conn net.Conn
		err  error
	}
	ch := make(chan result, 1)
	go func() {
		c, err := tr.RaftLayer().Accept()
		ch <- result{c, err}
	}()
	select {
	case r := <-ch:
		if r.err != nil {
			t.Fatalf("Accept: %v", r.err)
		}
		t.Cleanup(func() { r.conn.Close() })
		return r.conn
	case <-time.After(5 * time.Second):
		t.Fatal("Accept did not return a Raft connection")
		return nil
	}
}

// dial dials and fails the test on error; the connection is closed at the
// end of the test.
func dial(t *testing.T, from *Transport, to string, kind Kind) net.Conn {
	t.Helper()
	c, err := from.Dial(to, kind, 5*time.Second)
	if err != nil {
		t.Fatalf("Dial %s -> %s (%c): %v", from.Addr(), to, kind, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// roundTrip writes msg on c and expects the echo handler to send it back.
func roundTrip(t *testing.T, c net.Conn, msg string) {
	t.Helper()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	defer c.SetDeadline(time.Time{})
	if _, err := c.Write([]byte(msg)); err != nil {
		t.Fatalf("write: %v", err)
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatalf("read echo: %v", err)
	}
	if string(got) != msg {
		t.Fatalf("echo = %q, want %q", got, msg)
	}
}

// exchange sends one message each way between the two ends of a connection.
func exchange(t *testing.T, a, b net.Conn) {
	t.Helper()
	send := func(from, to net.Conn, msg string) {
		t.Helper()
		_ = from.SetWriteDeadline(time.Now().Add(5 * time.Second))
		_ = to.SetReadDeadline(time.Now().Add(5 * time.Second))
		defer from.SetWriteDeadline(time.Time{})
		defer to.SetReadDeadline(time.Time{})
		errc := make(chan error, 1)
		go func() {
			_, err := from.Write([]byte(msg))
			errc <- err
		}()
		got := make([]byte, len(msg))
		if _, err := io.ReadFull(to, got); err != nil {
			t.Fatalf("read: %v", err)
		}
		if err := <-errc; err != nil {
			t.Fatalf("write: %v", err)
		}
		if string(got) != msg {
			t.Fatalf("read %q, want %q", got, msg)
		}
	}
	send(a, b, "ping")
	send(b, a, "pong")
}

// waitClosed asserts that the peer closes c promptly: a Read fails with
// something other than our own deadline.
func waitClosed(t *testing.T, c net.Conn, within time.Duration) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(within))
	buf := make([]byte, 64)
	n, err := c.Read(buf)
	if err == nil {
		t.Fatalf("read %q from a connection that should be closed", buf[:n])
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("connection still open after %v", within)
	}
}

// refused asserts that a Dial was refused: it failed, or the connection it
// returned is closed by the server.
func refused(t *testing.T, c net.Conn, err error) {
	t.Helper()
	if err != nil {
		t.Logf("dial refused: %v", err)
		return
	}
	defer c.Close()
	waitClosed(t, c, 5*time.Second)
}

// srvAddr is tr's address as Raft names it.
func srvAddr(tr *Transport) raft.ServerAddress { return raft.ServerAddress(tr.Addr()) }
