package node

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
)

// Telling the followers of a commit.
//
// A follower learns that an entry has committed only from the leader's next
// AppendEntries, which carries the leader's commit index (heartbeats carry
// none). hashicorp/raft sends that append with the next entries, or, when
// none come, once its commit timeout has passed since the last append to the
// follower returned — and again after every further commit timeout, whether
// or not anything committed meanwhile. A write forwarded by a follower waits
// for it (the follower answers once it has applied the write), which is why
// the commit timeout was 1 ms; but then an idle leader sent each follower an
// empty append every 1–2 ms, about 1,300 round trips a second per follower,
// most of an idle cluster's CPU. The commit timeout cannot change at run
// time.
//
// commitCarrier keeps the quick learning without the idle traffic. Raft's
// commit timeout is long again (a fallback), and whenever the leader has
// applied entries it sends each follower that has not been told of that
// commit the append Raft would have sent: the leader's term, no entries,
// the last entry Raft's own appends have stored on that follower as the
// previous entry, and the commit index, capped at that entry. Idle, nothing
// commits and nothing is sent. Under load the carrier goes out where Raft's
// empty append used to (between batches), only sooner.
//
// Safety: the follower takes the commit index only if its log holds that
// previous entry with that term, so (Raft's log matching) its log up to there
// is the leader's; every index the carrier names is committed. A carrier from
// an older term is refused. The carrier leaves the leader's replication state
// alone: its answers are not counted as contact, so the leader's lease and
// VerifyLeader still rest on Raft's own heartbeats and appends only.

// commitCarrier is the leader's Raft transport: the network transport, whose
// successful appends it notes, plus the commit carriers it sends.
type commitCarrier struct {
	*raft.NetworkTransport
	raft atomic.Pointer[raft.Raft] // set once Raft runs
	// appends counts Raft's appends other than heartbeats, carried the
	// carriers sent (tests).
	appends, carried atomic.Uint64

	mu    sync.Mutex
	peers map[raft.ServerID]*carrierPeer
}

// carrierPeer is what Raft's appends have told one follower in one term.
type carrierPeer struct {
	addr   raft.ServerAddress
	header raft.RPCHeader
	term   uint64
	// index and indexTerm name the last entry this follower is known to
	// hold as the leader's log has it.
	index, indexTerm uint64
	// told is the highest commit index sent to it with success.
	told    uint64
	sending bool
}

func newCommitCarrier(trans *raft.NetworkTransport) *commitCarrier {
	return &commitCarrier{NetworkTransport: trans, peers: map[raft.ServerID]*carrierPeer{}}
}

// AppendEntries sends Raft's append and notes what a successful one stored
// and told.
func (c *commitCarrier) AppendEntries(id raft.ServerID, target raft.ServerAddress, args *raft.AppendEntriesRequest, resp *raft.AppendEntriesResponse) error {
	err := c.NetworkTransport.AppendEntries(id, target, args, resp)
	if args.PrevLogEntry > 0 || len(args.Entries) > 0 || args.LeaderCommitIndex > 0 {
		c.appends.Add(1)
	}
	if err == nil && resp.Success && resp.Term == args.Term && (args.PrevLogEntry > 0 || len(args.Entries) > 0) {
		c.note(id, target, args)
		if len(args.Entries) > 0 {
			// The entries may have committed already, with another
			// follower's answer: then nothing applied on the leader after
			// this note would carry the commit to this follower.
			c.tell()
		}
	}
	return err
}

func (c *commitCarrier) note(id raft.ServerID, target raft.ServerAddress, args *raft.AppendEntriesRequest) {
	index, term := args.PrevLogEntry, args.PrevLogTerm
	if k := len(args.Entries); k > 0 {
		index, term = args.Entries[k-1].Index, args.Entries[k-1].Term
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	p := c.peers[id]
	if p == nil || p.term != args.Term {
		p = &carrierPeer{term: args.Term}
		c.peers[id] = p
	}
	// The header names this leader (Addr, ID): the follower takes its
	// address from it, not from the deprecated Leader field.
	p.addr, p.header = target, args.RPCHeader
	// Within a term an entry that matched the leader's log keeps matching
	// it: only a later leader's entries make a follower drop its own.
	if index >= p.index {
		p.index, p.indexTerm = index, term
	}
	p.told = max(p.told, args.LeaderCommitIndex)
}

// tell carries the leader's commit index to every follower not yet told of
// it; it does nothing on a node that does not lead. It is called when the
// state machine has applied entries, and when Raft has stored entries on a
// follower.
func (c *commitCarrier) tell() {
	r := c.raft.Load()
	if r == nil || r.State() != raft.Leader {
		return
	}
	term, commit := r.CurrentTerm(), r.CommitIndex()
	c.mu.Lock()
	defer c.mu.Unlock()
	for id, p := range c.peers {
		to := min(commit, p.index)
		if p.term != term || p.sending || to <= p.told {
			continue
		}
		p.sending = true
		req := &raft.AppendEntriesRequest{
			RPCHeader:         p.header,
			Term:              p.term,
			PrevLogEntry:      p.index,
			PrevLogTerm:       p.indexTerm,
			LeaderCommitIndex: to,
		}
		go c.carry(id, p, p.addr, req)
	}
}

// carry sends one carrier; on success it looks again, for a commit that came
// while it was on its way. A failed carrier is left to Raft's own appends.
func (c *commitCarrier) carry(id raft.ServerID, p *carrierPeer, addr raft.ServerAddress, req *raft.AppendEntriesRequest) {
	var resp raft.AppendEntriesResponse
	c.carried.Add(1)
	err := c.NetworkTransport.AppendEntries(id, addr, req, &resp)
	ok := err == nil && resp.Success
	c.mu.Lock()
	p.sending = false
	if ok {
		p.told = max(p.told, req.LeaderCommitIndex)
	}
	c.mu.Unlock()
	if ok {
		c.tell()
	}
}

// appliedHook is the state machine as Raft runs it, telling the carrier
// after each batch it applies.
type appliedHook struct {
	raft.BatchingFSM
	carrier *commitCarrier
}

func (h appliedHook) ApplyBatch(logs []*raft.Log) []any {
	out := h.BatchingFSM.ApplyBatch(logs)
	h.carrier.tell()
	return out
}

func (h appliedHook) Apply(l *raft.Log) any {
	out := h.BatchingFSM.Apply(l)
	h.carrier.tell()
	return out
}

// commitTimeout is Raft's commit timeout: how long after its last append
// Raft sends a follower an empty one, even idle. The carrier tells the
// followers of commits; this is the fallback for a carrier lost on the way.
const commitTimeout = 250 * time.Millisecond
