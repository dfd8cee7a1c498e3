package node

import (
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/sessiond/sessiond/events"
	"github.com/sessiond/sessiond/transport/testkit"
)

func TestLeaderWatch_WakesWaitersOnEveryLeaderChange(t *testing.T) {
	w := newLeaderWatch()
	first := w.next()
	if w.observe(&raft.Observation{Data: raft.PeerObservation{}}) {
		t.Error("the observer passed an observation on: it has no channel")
	}
	select {
	case <-first:
		t.Fatal("woken by a peer change")
	default:
	}
	w.observe(&raft.Observation{Data: raft.LeaderObservation{LeaderID: "b"}})
	select {
	case <-first:
	default:
		t.Fatal("a leader change did not wake the waiter")
	}
	second := w.next()
	select {
	case <-second:
		t.Fatal("the next change's channel is already closed")
	default:
	}
	w.observe(&raft.Observation{Data: raft.Candidate})
	select {
	case <-second:
	default:
		t.Fatal("a change of role did not wake the waiter")
	}
	w.observe(&raft.Observation{Data: raft.RequestPreVoteRequest{}})
	select {
	case <-w.asked:
	default:
		t.Fatal("a request for this node's vote was not signalled")
	}
}

// Raft's follower looks for its leader only when its heartbeat timer fires,
// 1 to 2 timeouts apart; watchLeader makes a follower cut off from its
// leader stand about one heartbeat timeout after it last heard from it.
func TestLeaderWatch_CutOffFollowerStandsAfterOneHeartbeatTimeout(t *testing.T) {
	nodes, faults := startCluster(t, 3)
	leader, cut := nodes[0], nodes[2]
	hb := cut.cfg.HeartbeatTimeout
	lastContact := cut.raft.LastContact()
	faults.Partition(leader.RaftAddr(), cut.RaftAddr())
	defer faults.Heal()
	// The contact just before the cut, or the cut itself if later.
	testkit.Eventually(t, 10*time.Second, "the cut-off follower standing", func() bool {
		if c := cut.raft.LastContact(); c.After(lastContact) {
			lastContact = c
		}
		return cut.raft.State() == raft.Candidate
	})
	// A fifth of a timeout of jitter, then a margin for a loaded machine.
	if after, limit := time.Since(lastContact), hb+hb/5+150*time.Millisecond; after > limit {
		t.Errorf("the follower stood %s after its last contact, want at most %s (heartbeat timeout %s)", after, limit, hb)
	}
	// Pre-vote: the other follower still hears from the leader and refuses,
	// so the leader keeps leading.
	if !leader.IsLeader() {
		t.Error("a cut-off follower disrupted the leader")
	}
}

// A write held while the leader is gone moves the moment its node learns of
// the next leader, not at its next retry.
func TestLeaderWatch_HeldWriteMovesOnceTheNextLeaderIsKnown(t *testing.T) {
	nodes, faults := startCluster(t, 3)
	old, follower := nodes[0], nodes[2]
	for _, n := range nodes[1:] {
		faults.Partition(old.RaftAddr(), n.RaftAddr())
	}
	type result struct {
		at  time.Time
		err error
	}
	done := make(chan result, 1)
	go func() {
		_, err := follower.CreateSession(ctx(t), CreateRequest{UserID: "held", App: "default", AuthMethod: events.AuthImpersonation})
		done <- result{time.Now(), err}
	}()
	var known time.Time
	testkit.Eventually(t, 10*time.Second, "a new leader known to the follower", func() bool {
		_, id := follower.Leader()
		if id != "" && id != old.ID() {
			known = time.Now()
			return true
		}
		return false
	})
	r := <-done
	if r.err != nil {
		t.Fatalf("held write: %v", r.err)
	}
	// Commit and apply take a few ms; the old retry loop backed off up to
	// 200 ms between attempts.
	if after := r.at.Sub(known); after > 150*time.Millisecond {
		t.Errorf("the held write was answered %s after the new leader was known", after)
	}
	faults.Heal()
}
