package node

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/raft"

	"github.com/sessiond/sessiond/events"
	"github.com/sessiond/sessiond/fsm"
)

// ErrUnavailable means the write could not be committed in time: no leader,
// no quorum, the node shutting down, or an outcome still unknown when the
// caller's deadline passed. Answered as 503; the caller may retry.
var ErrUnavailable = errors.New("unavailable")

// enqueueTimeout bounds how long Raft may take to accept a proposal; the
// commit itself is bounded by the caller's context.
const enqueueTimeout = 2 * time.Second

// stamp returns the time for a new event: the wall clock, but never earlier
// than any event this node stamped or applied before.
func (n *Node) stamp() int64 {
	n.stampMu.Lock()
	defer n.stampMu.Unlock()
	t := max(n.cfg.Clock().UnixNano(), n.lastStamp, n.fsm.LastEventTime())
	n.lastStamp = t
	return t
}

// write proposes one event and waits until this node has applied it. It
// returns the state machine's result; a business failure comes back both as
// res.Err and as the error. Retries after an unknown outcome reuse the
// request id, so the event applies at most once.
func (n *Node) write(ctx context.Context, ev events.Event) (*fsm.Result, error) {
	env := events.Envelope{RequestID: newRequestID(), Event: ev}
	backoff := 10 * time.Millisecond
	for {
		if err := n.waitForLeader(ctx); err != nil {
			return nil, err
		}
		env.Time = n.stamp()
		data, err := events.Encode(env)
		if err != nil {
			return nil, fmt.Errorf("node: encode %s: %w", ev.EventType(), err)
		}
		future := n.raft.Apply(data, enqueueTimeout)
		err = waitFuture(ctx, future)
		if err == nil {
			res, ok := future.Response().(*fsm.Result)
			if !ok {
				return nil, fmt.Errorf("node: unexpected apply response %T", future.Response())
			}
			return res, res.Err
		}
		switch {
		case errors.Is(err, raft.ErrNotLeader),
			errors.Is(err, raft.ErrEnqueueTimeout),
			errors.Is(err, raft.ErrLeadershipTransferInProgress),
			errors.Is(err, raft.ErrLeadershipLost):
			// Not applied (or, for a lost leadership, maybe applied: the same
			// request id makes the retry safe either way).
			n.log.Debug("retrying write", "event", ev.EventType().String(), "error", err)
		case errors.Is(err, raft.ErrRaftShutdown):
			return nil, fmt.Errorf("%w: node is shutting down", ErrUnavailable)
		case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
			return nil, fmt.Errorf("%w: write not confirmed in time (it may still apply)", ErrUnavailable)
		default:
			return nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("%w: write not confirmed in time (it may still apply)", ErrUnavailable)
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 200*time.Millisecond)
	}
}

// waitFuture waits for a Raft future without outliving ctx. Raft resolves
// every future eventually (at the latest on shutdown), so the helper
// goroutine ends.
func waitFuture(ctx context.Context, f raft.ApplyFuture) error {
	done := make(chan error, 1)
	go func() { done <- f.Error() }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// waitForLeader waits, up to LeaderWait and ctx, until this node leads.
// (This build runs a single voter, so the leader is this node.)
func (n *Node) waitForLeader(ctx context.Context) error {
	if n.IsLeader() {
		return nil
	}
	deadline := time.NewTimer(n.cfg.LeaderWait)
	defer deadline.Stop()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w: no leader", ErrUnavailable)
		case <-deadline.C:
			return fmt.Errorf("%w: no leader within %s", ErrUnavailable, n.cfg.LeaderWait)
		case <-n.stop:
			return fmt.Errorf("%w: node is shutting down", ErrUnavailable)
		case <-tick.C:
			if n.IsLeader() {
				return nil
			}
		}
	}
}

// sweepExpired is the leader's garbage collection: when sessions are due,
// it proposes a SessionsExpired event up to now.
func (n *Node) sweepExpired() {
	defer n.wg.Done()
	tick := time.NewTicker(n.cfg.SweepInterval)
	defer tick.Stop()
	for {
		select {
		case <-n.stop:
			return
		case <-tick.C:
		}
		now := n.now()
		if !n.IsLeader() || n.fsm.NextExpiry() > now {
			continue
		}
		ctx, cancel := context.WithTimeout(n.stopCtx, n.cfg.SweepInterval)
		res, err := n.write(ctx, &events.SessionsExpired{Until: now})
		cancel()
		if err != nil {
			n.log.Warn("expiry sweep failed", "error", err)
			continue
		}
		n.log.Debug("expired sessions removed", "count", res.Count, "index", res.Index)
	}
}
