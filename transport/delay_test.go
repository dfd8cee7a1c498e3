package transport

import (
	"io"
	"net"
	"testing"
	"time"
)

// delayedPair returns the two ends of an RPC-kind connection from a to b
// through one fault layer.
func delayedPair(t *testing.T, faults *Faults) (a, b *Transport, atA, atB net.Conn) {
	t.Helper()
	a = listen(t, Config{Faults: faults})
	b = listen(t, Config{Faults: faults})
	accepted := make(chan net.Conn, 1)
	b.HandleRPC(func(conn net.Conn, peer string) { accepted <- conn })
	atA = dial(t, a, b.Addr(), KindRPC)
	select {
	case atB = <-accepted:
		t.Cleanup(func() { atB.Close() })
	case <-time.After(5 * time.Second):
		t.Fatal("the RPC connection was not accepted")
	}
	return a, b, atA, atB
}

// delayedLink is a connection from a to b with d added one way, a to b.
func delayedLink(t *testing.T, d time.Duration) (faults *Faults, a, b *Transport, atA, atB net.Conn) {
	t.Helper()
	faults = NewFaults()
	a, b, atA, atB = delayedPair(t, faults)
	faults.SetDelay(a.Addr(), b.Addr(), d)
	return faults, a, b, atA, atB
}

func mustWrite(t *testing.T, c net.Conn, msg string) {
	t.Helper()
	if _, err := c.Write([]byte(msg)); err != nil {
		t.Fatalf("write %q: %v", msg, err)
	}
}

// readN reads n bytes from c and returns them with the time the last one
// arrived.
func readN(t *testing.T, c net.Conn, n int) ([]byte, time.Time) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, n)
	if _, err := io.ReadFull(c, buf); err != nil {
		t.Fatalf("read: %v", err)
	}
	return buf, time.Now()
}

func TestSetDelay_DelaysOneDirectionOnly(t *testing.T) {
	const d = 80 * time.Millisecond
	faults := NewFaults()
	a, b, atA, atB := delayedPair(t, faults)
	faults.SetDelay(a.Addr(), b.Addr(), d)
	if got := faults.Delay(a.Addr(), b.Addr()); got != d {
		t.Fatalf("Delay = %v, want %v", got, d)
	}

	sent := time.Now()
	if _, err := atA.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	if wrote := time.Since(sent); wrote >= d {
		t.Errorf("the writer was held up %v: a delay must not block the sender", wrote)
	}
	got, arrived := readN(t, atB, 4)
	if string(got) != "ping" {
		t.Fatalf("read %q", got)
	}
	if took := arrived.Sub(sent); took < d {
		t.Errorf("a→b arrived after %v, want at least %v", took, d)
	}

	// b→a has no delay of its own; its round trip is one delay, not two.
	sent = time.Now()
	if _, err := atB.Write([]byte("pong")); err != nil {
		t.Fatal(err)
	}
	if _, arrived = readN(t, atA, 4); arrived.Sub(sent) >= d {
		t.Errorf("b→a took %v although only a→b is delayed", arrived.Sub(sent))
	}
}

// A delayed link keeps its throughput: writes sent back to back arrive
// about one delay after each was sent, not one delay after the previous.
func TestSetDelay_PipelinedWritesEachPayTheDelayOnce(t *testing.T) {
	const d, writes = 100 * time.Millisecond, 40
	faults := NewFaults()
	a, b, atA, atB := delayedPair(t, faults)
	faults.SetDelay(a.Addr(), b.Addr(), d)
	start := time.Now()
	for i := range writes {
		if _, err := atA.Write([]byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
	}
	got, arrived := readN(t, atB, writes)
	for i, v := range got {
		if int(v) != i {
			t.Fatalf("byte %d is %d: order lost", i, v)
		}
	}
	// Serial delivery would take writes×d = 4 s; generous slack for a
	// loaded machine still tells the two apart.
	if took := arrived.Sub(start); took < d || took > writes*d/2 {
		t.Errorf("%d writes took %v to arrive, want about %v", writes, took, d)
	}
}

func TestSetDelay_RemovingItKeepsTheOrder(t *testing.T) {
	faults, a, b, atA, atB := delayedLink(t, 150*time.Millisecond)
	mustWrite(t, atA, "first ")
	faults.SetDelay(a.Addr(), b.Addr(), 0)
	mustWrite(t, atA, "second")
	if got, _ := readN(t, atB, 12); string(got) != "first second" {
		t.Fatalf("read %q, want %q", got, "first second")
	}
}

func TestSetDelay_CloseDeliversWhatWasWritten(t *testing.T) {
	_, _, _, atA, atB := delayedLink(t, 50*time.Millisecond)
	mustWrite(t, atA, "last words")
	if err := atA.Close(); err != nil {
		t.Fatal(err)
	}
	if got, _ := readN(t, atB, 10); string(got) != "last words" {
		t.Fatalf("read %q", got)
	}
	waitClosed(t, atB, 5*time.Second)
}

func TestSetDelay_PartitionStillCutsADelayedConnection(t *testing.T) {
	faults, a, b, atA, atB := delayedLink(t, 50*time.Millisecond)
	mustWrite(t, atA, "x")
	faults.Partition(a.Addr(), b.Addr())
	waitClosed(t, atB, 5*time.Second)
}
