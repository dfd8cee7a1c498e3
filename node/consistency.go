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

type readIndexResponse struct {
	Index uint64 `msgpack:"index"`
}

// observeLeadership keeps leaderReady: true once this node leads and a
// Barrier has applied everything earlier leaders committed, so that its
// state is current enough to serve leader reads.
func (n *Node) observeLeadership(notify <-chan bool) {
	defer n.wg.Done()
	var generation uint64
	for {
		select {
		case <-n.stop:
			return
		case leading := <-notify:
			generation++
			n.leaderReady.Store(false)
			gen := generation
			// Packing is decided afresh for each term, after the barrier:
			// another leader may have changed the configuration meanwhile.
			// The new generation makes decisions still running from the
			// last term drop theirs.
			n.batchMu.Lock()
			n.batchEntries.Store(false)
			n.leaderGen.Store(gen)
			n.batchMu.Unlock()
			if !leading {
				continue
			}
			go func() {
				if err := n.raft.Barrier(10 * time.Second).Error(); err != nil {
					n.log.Warn("barrier after winning the election failed", "error", err)
					return
				}
				if n.leaderGen.Load() == gen && n.IsLeader() {
					n.updateBatchEntries(gen)
					n.leaderReady.Store(true)
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
func (n *Node) leaderReadIndex(ctx context.Context) (uint64, error) {
	if !n.IsLeader() || !n.leaderReady.Load() {
		return 0, ErrNotLeader
	}
	index := n.fsm.AppliedIndex()
	done := make(chan error, 1)
	go func() { done <- n.raft.VerifyLeader().Error() }()
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
	if err := dec.Skip(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	index, err := n.leaderReadIndex(ctx)
	if errors.Is(err, ErrNotLeader) {
		return nil, &transport.RemoteError{Code: rpcCodeNotLeader, Message: "not the leader, or not ready to serve reads yet"}
	}
	if err != nil {
		return nil, &transport.RemoteError{Code: rpcCodeUnavailable, Message: err.Error()}
	}
	return readIndexResponse{Index: index}, nil
}

// waitApplied waits until this node's state machine has applied index.
func (n *Node) waitApplied(ctx context.Context, index uint64) error {
	return n.fsm.WaitForIndex(ctx, index)
}
