package node

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/sessiond/sessiond/transport"
)

// Leader-confirmed reads. A node answers a read from its own state; when the
// caller asks for consistency=leader, or when this node may not vouch from
// its state (vouch.go), it first learns the leader's read index — the leader
// confirming with a quorum that it still leads — and waits until it has
// applied that far. Such a read sees every write acknowledged before it
// started, on any node.

const rpcReadIndex = "read_index"

// readIndexRequest names the group whose read index is asked; empty is the
// default group (earlier versions send an empty map).
type readIndexRequest struct {
	Group string `msgpack:"group,omitempty"`
}

type readIndexResponse struct {
	Index uint64 `msgpack:"index"`
}

// observeLeadership keeps leaderReady: true once this node leads and a
// Barrier has applied everything earlier leaders committed, so that its
// state is current enough to serve leader reads.
func (g *raftGroup) observeLeadership(notify <-chan bool) {
	defer g.node.wg.Done()
	var generation uint64
	for {
		select {
		case <-g.node.stop:
			return
		case leading := <-notify:
			generation++
			g.leaderReady.Store(false)
			gen := generation
			// Packing is decided afresh for each term, after the barrier:
			// another leader may have changed the configuration meanwhile.
			// The new generation makes decisions still running from the
			// last term drop theirs.
			g.batchMu.Lock()
			g.batchEntries.Store(false)
			g.leaderGen.Store(gen)
			g.batchMu.Unlock()
			if !leading {
				continue
			}
			go func() {
				if err := g.raft.Barrier(10 * time.Second).Error(); err != nil {
					g.node.log.Warn("barrier after winning the election failed", "error", err)
					return
				}
				if g.leaderGen.Load() == gen && g.IsLeader() {
					g.updateBatchEntries(gen)
					g.leaderReady.Store(true)
				}
			}()
		}
	}
}

// leaderReadIndex is the leader's side: the index its state machine has
// applied, once a quorum has confirmed that it still leads. Every write
// acknowledged to anyone was applied on the leader before it was
// acknowledged, so that index covers them all; and unlike Raft's commit
// index it never points at an entry (a no-op) that state machines do not
// see, so a follower can wait for it.
func (g *raftGroup) leaderReadIndex(ctx context.Context) (uint64, error) {
	if !g.IsLeader() || !g.leaderReady.Load() {
		return 0, ErrNotLeader
	}
	index := g.fsm.AppliedIndex()
	done := make(chan error, 1)
	go func() { done <- g.raft.VerifyLeader().Error() }()
	select {
	case err := <-done:
		if err != nil {
			return 0, fmt.Errorf("%w: leadership not confirmed: %v", ErrUnavailable, err)
		}
	case <-ctx.Done():
		return 0, fmt.Errorf("%w: leadership not confirmed in time", ErrUnavailable)
	}
	return index, nil
}

func (n *Node) serveReadIndex(ctx context.Context, _ string, dec *msgpack.Decoder) (any, error) {
	var req readIndexRequest
	if err := dec.Decode(&req); err != nil {
		return nil, err
	}
	g, err := n.hostedGroup(req.Group)
	if err != nil {
		return nil, err
	}
	return g.readIndexAnswer(ctx)
}

// readIndexAnswer answers another node's read-index request.
func (g *raftGroup) readIndexAnswer(ctx context.Context) (any, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	index, err := g.leaderReadIndex(ctx)
	if errors.Is(err, ErrNotLeader) {
		return nil, &transport.RemoteError{Code: rpcCodeNotLeader, Message: "not the leader, or not ready to serve reads yet"}
	}
	if err != nil {
		return nil, &transport.RemoteError{Code: rpcCodeUnavailable, Message: err.Error()}
	}
	return readIndexResponse{Index: index}, nil
}

// waitApplied waits until this node's state machine has applied index.
func (g *raftGroup) waitApplied(ctx context.Context, index uint64) error {
	return g.fsm.WaitForIndex(ctx, index)
}
