package clustertest

import (
	"context"
	"errors"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/sessiond/sessiond/events"
	"github.com/sessiond/sessiond/node"
)

// The leader keeps one batch of writes in flight and queues the rest. A
// write whose caller gives up while it waits in that queue must never be
// proposed: the caller was told it may still apply, and a proposal nobody
// waits for only adds to the log.
func TestGroupCommit_WriteAbandonedInTheQueueIsNeverProposed(t *testing.T) {
	c := Start(t, Options{Size: 3, Tweak: func(i int, cfg *node.Config) {
		// A long lease, so that the leader keeps leading through the short
		// cut below instead of stepping down.
		cfg.HeartbeatTimeout = 3 * time.Second
		cfg.ElectionTimeout = 3 * time.Second
	}})
	leader := c.Nodes[c.Leader()]
	req := func(user string) node.CreateRequest {
		return node.CreateRequest{UserID: events.UserID(user), App: "default", AuthMethod: events.AuthExchange}
	}

	// Cut the leader off: the first write is proposed at once and stays in
	// flight, uncommitted, until the cut heals.
	c.Isolate(leader.Index)
	before := leader.Node.RaftStatus().LastIndex
	first := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		_, err := leader.Node.CreateSession(ctx, req("first"))
		first <- err
	}()
	c.WaitFor(5*time.Second, "the first write in the leader's log", func() bool {
		return leader.Node.RaftStatus().LastIndex > before
	})

	// The second write queues behind it, and its caller gives up.
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	_, err := leader.Node.CreateSession(ctx, req("abandoned"))
	cancel()
	if !errors.Is(err, node.ErrUnavailable) {
		t.Fatalf("abandoned write: %v, want ErrUnavailable", err)
	}
	c.Heal()
	if err := <-first; err != nil {
		t.Fatalf("first write after the cut healed: %v", err)
	}
	// A later write through the same leader is applied after anything the
	// abandoned one could have become.
	ctx, cancel = context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	last, err := leader.Node.CreateSession(ctx, req("last"))
	if err != nil {
		t.Fatalf("write after the cut: %v", err)
	}
	c.eachRunning(func(m *Member) {
		if err := m.Node.WaitForIndex(ctx, last.Index); err != nil {
			t.Fatalf("%s: wait for index %v: %v", m.ID, last.Index, err)
		}
		if got := len(m.Node.UserSessions("first")); got != 1 {
			t.Errorf("%s: %d sessions of the first write's user, want 1", m.ID, got)
		}
		if got := m.Node.UserSessions("abandoned"); len(got) != 0 {
			t.Errorf("%s: the abandoned write was applied: %+v", m.ID, got)
		}
	})
}

// Writes waiting on a leader that stops — one in flight, one queued behind
// it — are answered "unavailable" when it stops, not when their callers'
// deadlines pass. Two things release them, either one enough: Raft failing
// the proposals when the cut-off leader's lease runs out, and the node's
// stop, which ends every wait for a proposal.
func TestGroupCommit_StoppingLeaderReleasesWaitingWrites(t *testing.T) {
	c := Start(t, Options{Size: 3, Tweak: func(i int, cfg *node.Config) {
		cfg.HeartbeatTimeout = 3 * time.Second
		cfg.ElectionTimeout = 3 * time.Second
	}})
	leader := c.Nodes[c.Leader()]
	c.Isolate(leader.Index)
	before := leader.Node.RaftStatus().LastIndex
	const deadline = 60 * time.Second
	results := make(chan error, 2)
	write := func(user string) {
		ctx, cancel := context.WithTimeout(context.Background(), deadline)
		defer cancel()
		_, err := leader.Node.CreateSession(ctx, node.CreateRequest{UserID: events.UserID(user), App: "default", AuthMethod: events.AuthExchange})
		results <- err
	}
	go write("in-flight")
	c.WaitFor(5*time.Second, "the first write in the leader's log", func() bool {
		return leader.Node.RaftStatus().LastIndex > before
	})
	go write("queued")
	c.WaitFor(5*time.Second, "the second write queued behind the first", func() bool {
		return writesWaiting(t.Name()) == 2
	})

	stopped := time.Now()
	c.Kill(leader.Index)
	for range 2 {
		select {
		case err := <-results:
			if !errors.Is(err, node.ErrUnavailable) {
				t.Errorf("write on the stopped leader: %v, want ErrUnavailable", err)
			}
		case <-time.After(20 * time.Second):
			t.Fatalf("a write still waits %s after its node was stopped", time.Since(stopped))
		}
	}
}

// writesWaiting counts the goroutines of the named test that wait in a
// node's propose for the outcome of a write they handed to the leader's
// queue: parked in its select, with the write already queued. It matches
// propose on whichever node type holds it (Node, or a Raft group).
func writesWaiting(test string) int {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	waiting := 0
	for _, g := range strings.Split(string(buf), "\n\n") {
		header, _, _ := strings.Cut(g, "\n")
		if strings.Contains(header, "[select") && strings.Contains(g, "/node.(*") && strings.Contains(g, ").propose(") && strings.Contains(g, "."+test+".") {
			waiting++
		}
	}
	return waiting
}
