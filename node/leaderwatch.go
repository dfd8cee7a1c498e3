package node

import (
	"math/rand/v2"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// Leader changes as this node's Raft sees them, and how fast it sees them.
//
// Waking. A write held while there is no leader (write.go) waits on
// leaderWatch.next: an observer of Raft's leader and state changes closes
// that channel and puts a fresh one in its place, so the write moves the
// moment a leader is known, not at its next poll.
//
// Detection. hashicorp/raft's follower looks at whether it has heard from its
// leader only when its heartbeat timer fires: at random intervals of one to
// two heartbeat timeouts that contact does not reset. And a follower that
// still takes the dead leader for its leader refuses a candidate's pre-vote
// and vote. So after a leader dies, an election succeeds only once the later
// of two survivors' timers has fired more than a heartbeat timeout after its
// last contact: 1 to 3 timeouts, about 2.1 s on average with 1 s. watchLeader
// makes a follower look when a heartbeat timeout, plus a random fifth of
// one, has passed since its last contact, and at once when another node asks
// for its vote. Raft's rule is unchanged — a follower stands only when it has
// not heard from its leader for a heartbeat timeout — it is applied without
// the wait. The random part keeps two followers from standing at the same
// moment and splitting the vote; pre-vote keeps a follower that stands while
// the leader lives (cut off from it alone) from disrupting the cluster.
//
// Raft has no call for "look now"; lowering the heartbeat timeout through
// ReloadConfig makes a follower look at once (so that a shorter timeout takes
// effect), and the timeout is put back right after.

// leaderWatch broadcasts Raft's leader changes to waiters.
type leaderWatch struct {
	mu      sync.Mutex
	changed chan struct{} // closed at the next change
	// asked is signalled when another node asks for this node's vote.
	asked chan struct{}
}

func newLeaderWatch() *leaderWatch {
	return &leaderWatch{changed: make(chan struct{}), asked: make(chan struct{}, 1)}
}

// next returns a channel closed at the next change of leader or of this
// node's role. Take it before looking at the leader, so that a change in
// between is not missed.
func (w *leaderWatch) next() <-chan struct{} {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.changed
}

// observe is the filter of a Raft observer. It runs on Raft's goroutines and
// does its work there, briefly: nothing is ever sent to the observer's
// channel (it has none), so no observation is dropped.
func (w *leaderWatch) observe(o *raft.Observation) bool {
	switch o.Data.(type) {
	case raft.LeaderObservation, raft.RaftState:
		w.mu.Lock()
		close(w.changed)
		w.changed = make(chan struct{})
		w.mu.Unlock()
	case raft.RequestVoteRequest, raft.RequestPreVoteRequest:
		select {
		case w.asked <- struct{}{}:
		default:
		}
	}
	return false
}

// watchLeader makes this follower check for its leader's silence as soon as
// it has lasted a heartbeat timeout (see the top of the file).
func (g *raftGroup) watchLeader() {
	defer g.node.wg.Done()
	hb := g.node.cfg.HeartbeatTimeout
	spread := max(hb/5, time.Millisecond)
	jitter := rand.N(spread)
	var poked, askedAt time.Time
	timer := time.NewTimer(hb)
	defer timer.Stop()
	for {
		select {
		case <-g.node.stop:
			return
		case <-timer.C:
		case <-g.leaders.asked:
			askedAt = time.Now()
		}
		wait := hb / 2
		last := g.raft.LastContact()
		// A node that never heard from a leader here (the cluster is
		// forming, or the node has just started) waits for Raft's own timer.
		if !last.IsZero() && g.raft.State() == raft.Follower {
			due := last.Add(hb)
			if time.Since(askedAt) >= hb {
				due = due.Add(jitter)
			}
			due = latest(due, poked.Add(hb))
			if now := time.Now(); now.Before(due) {
				wait = due.Sub(now)
			} else {
				if g.votes() {
					g.lookForLeader()
				}
				poked, jitter = now, rand.N(spread)
			}
		}
		timer.Reset(wait)
	}
}

// votes reports whether this node is a voter in its Raft configuration: a
// read replica, or a node removed from the cluster, never stands.
func (g *raftGroup) votes() bool {
	servers, err := g.Servers()
	if err != nil {
		return false
	}
	for _, s := range servers {
		if s.ID == g.node.cfg.NodeID {
			return s.Voter
		}
	}
	return false
}

// lookForLeader makes Raft's follower look at once whether it has heard from
// its leader within the heartbeat timeout, and stand for election if not.
func (g *raftGroup) lookForLeader() {
	rc := g.raft.ReloadableConfig()
	shorter := rc
	shorter.HeartbeatTimeout -= time.Nanosecond
	if err := g.raft.ReloadConfig(shorter); err != nil {
		g.node.log.Debug("cannot make raft look for its leader", "error", err)
		return
	}
	if err := g.raft.ReloadConfig(rc); err != nil {
		g.node.log.Warn("cannot restore raft's heartbeat timeout", "error", err)
	}
}

func latest(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
