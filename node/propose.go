package node

import (
	"context"
	"fmt"

	"github.com/hashicorp/raft"

	"github.com/sessiond/sessiond/events"
	"github.com/sessiond/sessiond/fsm"
)

// Group commit. The leader's writes reach Raft through one goroutine,
// proposeLoop, which keeps one batch in flight: while a batch is stored,
// replicated and applied, new writes queue; once it has applied, all that
// queued goes to Raft together and leaves as one append.
//
// Without the gate, hashicorp/raft dispatches whatever arrived since its
// own last disk write: many small appends, each a disk sync on every node.
// A follower stores each append it receives separately, so under load the
// followers fall behind the leader and appends queue on them, which
// lengthens every commit. With one batch in flight the followers store a
// few large appends instead of many small ones (measured in
// docs/benchmarks.md#2026-12-06-group-commit). A lone write still goes
// out at once.
//
// Batch entries. While every server reads them (updateBatchEntries), the
// writes of a batch are packed into one log entry, or a few, rather than
// one entry each: Raft, raft-boltdb and bbolt pay per entry.

// maxProposalBatch is the most writes proposed together, and Raft's
// MaxAppendEntries: a batch is one append whether or not its writes are
// packed (see entry). Raft's queue holds as many, and the previous batch
// has left it, so proposing finds room.
const maxProposalBatch = 512

// proposal is one write waiting for proposeLoop.
type proposal struct {
	ctx  context.Context // the caller's: a proposal whose caller gave up is dropped
	env  events.Envelope
	done chan proposed // buffered; receives exactly one value
}

// proposed is the outcome of a proposal: the state machine's response, or
// why there is none.
type proposed struct {
	response any
	err      error
}

// propose hands env to proposeLoop and waits until it has applied here
// (this node leads) and returns the state machine's response. It fails
// with ctx's error or errStopping when ctx ends or the node stops first;
// the write may then still apply, so the caller must treat the outcome as
// unknown.
func (g *raftGroup) propose(ctx context.Context, env events.Envelope) (any, error) {
	p := &proposal{ctx: ctx, env: env, done: make(chan proposed, 1)}
	select {
	case g.proposals <- p:
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-g.node.stop:
		return nil, errStopping
	}
	select {
	case pr := <-p.done:
		return pr.response, pr.err
	case <-ctx.Done():
	case <-g.node.stop:
	}
	// An outcome that arrived together with the end is still the outcome.
	select {
	case pr := <-p.done:
		return pr.response, pr.err
	default:
	}
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	return nil, errStopping
}

// proposeLoop stamps, encodes and proposes the queued writes, one batch at
// a time, until the node stops.
func (g *raftGroup) proposeLoop() {
	defer g.node.wg.Done()
	inFlight := make(chan struct{}, 1) // holds a token while a batch is unapplied
	batch := make([]*proposal, 0, maxProposalBatch)
	for {
		select {
		case p := <-g.proposals:
			batch = append(batch[:0], p)
		case <-g.node.stop:
			return
		}
		select {
		case inFlight <- struct{}{}:
		case <-g.node.stop:
			return
		}
	collect:
		for len(batch) < maxProposalBatch {
			select {
			case p := <-g.proposals:
				batch = append(batch, p)
			default:
				break collect
			}
		}
		var entries []*entry
		var pending *entry
		// Shared until the entries are handed to Raft: a server being added
		// never gets in between deciding to pack and proposing.
		g.batchMu.RLock()
		pack := g.batchEntries.Load()
		for i, p := range batch {
			batch[i] = nil
			if p.ctx.Err() != nil {
				continue // nobody waits for it: never proposed
			}
			// Stamped here, in proposal order, so that times rise with
			// the log.
			p.env.Time = g.stamp()
			data, err := events.Encode(p.env)
			if err != nil {
				p.done <- proposed{err: fmt.Errorf("node: %w %s: %v", errEncode, p.env.Type(), err)}
				continue
			}
			if pending == nil || !pack || pending.size+len(data) > maxBatchEntryBytes {
				pending = &entry{}
				entries = append(entries, pending)
			}
			pending.add(p, data)
		}
		for _, e := range entries {
			e.propose(g.raft)
		}
		g.batchMu.RUnlock()
		// The batch's slot frees once its last future resolves (applied, or
		// failed with the leadership). Only this goroutine waits on them: a
		// Raft future must not be waited on by two goroutines at once. Raft
		// leaves unanswered the futures still queued when it shuts down, so
		// on a node stopped under load this goroutine stays blocked; its
		// callers have returned, released by g.node.stop.
		go func() {
			for _, e := range entries {
				e.deliver()
			}
			<-inFlight
		}()
	}
}

// maxBatchEntryBytes bounds a batch entry: writes beyond it go into the
// next entry of the same append. About 50 typical creates fit. With
// maxProposalBatch it bounds what a catching-up follower receives and
// stores in one append to about 8 MiB of packed writes.
const maxBatchEntryBytes = 16 << 10

// entry is one Raft log entry of a batch: one write, or several packed
// into a batch entry (events.EncodeBatch) that the state machine applies
// in order at one index.
type entry struct {
	proposals []*proposal
	data      [][]byte
	size      int
	future    raft.ApplyFuture
	err       error // why the entry was never proposed
}

func (e *entry) add(p *proposal, data []byte) {
	e.proposals = append(e.proposals, p)
	e.data = append(e.data, data)
	e.size += len(data)
}

func (e *entry) propose(r *raft.Raft) {
	if len(e.data) == 1 {
		e.future = r.Apply(e.data[0], enqueueTimeout)
		return
	}
	packed, err := events.EncodeBatch(e.data)
	if err != nil {
		e.err = fmt.Errorf("node: %w batch: %v", errEncode, err)
		return
	}
	e.future = r.Apply(packed, enqueueTimeout)
}

// deliver waits for the entry's outcome and hands each write its own.
func (e *entry) deliver() {
	if e.err == nil {
		e.err = e.future.Error()
	}
	if e.err != nil {
		for _, p := range e.proposals {
			p.done <- proposed{err: e.err}
		}
		return
	}
	response := e.future.Response()
	if len(e.proposals) == 1 {
		e.proposals[0].done <- proposed{response: response}
		return
	}
	results, ok := response.(fsm.BatchResult)
	if !ok || len(results) != len(e.proposals) {
		err := fmt.Errorf("node: unexpected response %T to a batch of %d", response, len(e.proposals))
		for _, p := range e.proposals {
			p.done <- proposed{err: err}
		}
		return
	}
	for i, p := range e.proposals {
		p.done <- proposed{response: results[i]}
	}
}

// updateBatchEntries decides, on the leader, whether proposeLoop may pack
// writes into batch entries: only while every server in the Raft
// configuration reads them. A node of an older version stops at the first
// batch entry it meets, so during a rolling upgrade the leader packs
// nothing until the last node runs this version (and never re-adds a node
// that does not read them: see reconcile). Without gossip the leader knows
// no other node's version and packs only when alone.
//
// gen is the leadership generation the caller started under: a decision
// made on a configuration read in an earlier term is dropped, since another
// leader may have changed the configuration meanwhile.
func (g *raftGroup) updateBatchEntries(gen uint64) {
	g.batchMu.Lock()
	defer g.batchMu.Unlock()
	if g.leaderGen.Load() != gen || !g.IsLeader() {
		return
	}
	servers, err := g.Servers()
	if err != nil {
		return
	}
	all := !g.node.cfg.noBatchEntries && len(g.adding) == 0
	for _, s := range servers {
		if all && s.ID != g.node.cfg.NodeID {
			all = g.node.gossip != nil && g.node.gossip.readsBatches(s.ID)
		}
	}
	if g.batchEntries.Swap(all) != all {
		g.node.log.Info("packing writes into batch entries", "enabled", all)
	}
}
