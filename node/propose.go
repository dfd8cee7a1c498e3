package node

import (
	"context"
	"fmt"

	"github.com/hashicorp/raft"

	"github.com/sessiond/sessiond/events"
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
// docs/architecture.md#measured). A lone write still goes out at once.

// maxProposalBatch is the most writes proposed together, and Raft's
// MaxAppendEntries: one batch is one append. Raft's queue holds as many,
// and the previous batch has left it, so proposing finds room.
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
func (n *Node) propose(ctx context.Context, env events.Envelope) (any, error) {
	p := &proposal{ctx: ctx, env: env, done: make(chan proposed, 1)}
	select {
	case n.proposals <- p:
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-n.stop:
		return nil, errStopping
	}
	select {
	case pr := <-p.done:
		return pr.response, pr.err
	case <-ctx.Done():
	case <-n.stop:
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
func (n *Node) proposeLoop() {
	defer n.wg.Done()
	inFlight := make(chan struct{}, 1) // holds a token while a batch is unapplied
	batch := make([]*proposal, 0, maxProposalBatch)
	for {
		select {
		case p := <-n.proposals:
			batch = append(batch[:0], p)
		case <-n.stop:
			return
		}
		select {
		case inFlight <- struct{}{}:
		case <-n.stop:
			return
		}
	collect:
		for len(batch) < maxProposalBatch {
			select {
			case p := <-n.proposals:
				batch = append(batch, p)
			default:
				break collect
			}
		}
		futures := make([]raft.ApplyFuture, 0, len(batch))
		proposals := make([]*proposal, 0, len(batch))
		for i, p := range batch {
			batch[i] = nil
			if p.ctx.Err() != nil {
				continue // nobody waits for it: never proposed
			}
			// Stamped here, in proposal order, so that times rise with
			// the log.
			p.env.Time = n.stamp()
			data, err := events.Encode(p.env)
			if err != nil {
				p.done <- proposed{err: fmt.Errorf("node: %w %s: %v", errEncode, p.env.Type(), err)}
				continue
			}
			futures = append(futures, n.raft.Apply(data, enqueueTimeout))
			proposals = append(proposals, p)
		}
		// The batch's slot frees once its last future resolves (applied, or
		// failed with the leadership). Only this goroutine waits on them: a
		// Raft future must not be waited on by two goroutines at once. Raft
		// leaves unanswered the futures still queued when it shuts down, so
		// on a node stopped under load this goroutine stays blocked; its
		// callers have returned, released by n.stop.
		go func() {
			for i, f := range futures {
				var pr proposed
				if pr.err = f.Error(); pr.err == nil {
					pr.response = f.Response()
				}
				proposals[i].done <- pr
			}
			<-inFlight
		}()
	}
}
