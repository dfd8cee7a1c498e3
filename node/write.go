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

// errRetry marks an attempt that certainly or possibly did not apply and may
// be repeated with the same request id.
var errRetry = errors.New("retry")

// errStopping: the node stopped before the write was proposed or resolved.
var errStopping = errors.New("node is stopping")

// errEncode: the event could not be encoded; retrying cannot help.
var errEncode = errors.New("cannot encode the event")

// enqueueTimeout bounds how long Raft may take to accept a proposal; the
// commit itself is bounded by the caller's context.
const enqueueTimeout = 2 * time.Second

// stamp returns the time for a new event: the wall clock, but never earlier
// than any event this node stamped or applied before.
func (g *raftGroup) stamp() int64 {
	g.stampMu.Lock()
	defer g.stampMu.Unlock()
	t := max(g.node.cfg.Clock().UnixNano(), g.lastStamp, g.fsm.LastEventTime())
	g.lastStamp = t
	return t
}

// write proposes one event through the leader (this node, or the one it
// forwards to) and waits until this node has applied it, so that a read here
// right after sees the write. It returns the state machine's result; a
// business failure comes back both as res.Err and as the error. Attempts
// whose outcome is unknown are retried with the same request id, which the
// state machine applies at most once.
func (g *raftGroup) write(ctx context.Context, ev events.Event) (*fsm.Result, error) {
	env := events.Envelope{RequestID: newRequestID(), Event: ev}
	if key, ok := ctx.Value(idempotencyKey{}).(string); ok && key != "" {
		// The client's key names the write, per event type (one request may
		// make writes of several types, such as a failed login's count).
		env.RequestID = "key:" + ev.EventType().String() + ":" + key
	}
	backoff := 10 * time.Millisecond
	for {
		// Taken before the attempt: a new leader known by the time it
		// fails ends the wait before the next one at once.
		changed := g.leaders.next()
		leaderAddr, err := g.waitForLeader(ctx)
		if err != nil {
			return nil, err
		}
		var res *fsm.Result
		if leaderAddr == "" {
			res, err = g.applyLocal(ctx, env)
		} else {
			res, err = g.forwardObserved(ctx, leaderAddr, env)
		}
		switch {
		case err == nil:
			if res.Duplicate && res.Err == nil && !issuedHere(ev, res.Session) {
				// A client's retry of a write that already applied, whose
				// tokens went to the first attempt: they are not known here.
				return res, &DuplicateError{Index: res.Index}
			}
			return res, res.Err
		case errors.Is(err, errRetry):
			g.node.log.Debug("retrying write", "event", ev.EventType().String(), "error", err)
		default:
			return nil, err
		}
		// The leader refused, is gone or changing: try again once another
		// is known, or after the backoff (the same leader may answer then).
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("%w: write not confirmed in time (it may still apply)", ErrUnavailable)
		case <-g.node.stop:
			return nil, fmt.Errorf("%w: node is shutting down", ErrUnavailable)
		case <-changed:
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 200*time.Millisecond)
	}
}

// applyLocal proposes env on this node, which believes it leads. Errors that
// allow a retry wrap errRetry.
func (g *raftGroup) applyLocal(ctx context.Context, env events.Envelope) (*fsm.Result, error) {
	response, err := g.propose(ctx, env)
	switch {
	case err == nil:
		res, ok := response.(*fsm.Result)
		if !ok {
			return nil, fmt.Errorf("node: unexpected apply response %T", response)
		}
		return res, nil
	case errors.Is(err, raft.ErrNotLeader),
		errors.Is(err, raft.ErrEnqueueTimeout),
		errors.Is(err, raft.ErrLeadershipTransferInProgress),
		errors.Is(err, raft.ErrLeadershipLost):
		// Not applied, or (lost leadership) maybe applied: the same request
		// id makes the retry safe either way.
		return nil, fmt.Errorf("%w: %v", errRetry, err)
	case errors.Is(err, raft.ErrRaftShutdown), errors.Is(err, errStopping):
		return nil, fmt.Errorf("%w: node is shutting down (the write may still apply)", ErrUnavailable)
	case errors.Is(err, errEncode):
		return nil, err
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return nil, fmt.Errorf("%w: write not confirmed in time (it may still apply)", ErrUnavailable)
	}
	return nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
}

// waitForLeader waits, up to LeaderWait and ctx, until a leader is known,
// and returns the moment Raft learns of one (leaderwatch.go). It returns ""
// when this node leads, else the leader's address.
func (g *raftGroup) waitForLeader(ctx context.Context) (string, error) {
	var deadline *time.Timer // started once there is something to wait for
	defer func() {
		if deadline != nil {
			deadline.Stop()
		}
	}()
	for {
		changed := g.leaders.next()
		if g.IsLeader() {
			return "", nil
		}
		if addr, _ := g.Leader(); addr != "" {
			return addr, nil
		}
		if deadline == nil {
			deadline = time.NewTimer(g.node.cfg.LeaderWait)
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("%w: no leader", ErrUnavailable)
		case <-deadline.C:
			return "", fmt.Errorf("%w: no leader within %s", ErrUnavailable, g.node.cfg.LeaderWait)
		case <-g.node.stop:
			return "", fmt.Errorf("%w: node is shutting down", ErrUnavailable)
		case <-changed:
		}
	}
}

// sweepExpired is the leader's garbage collection: when sessions are due,
// it proposes a SessionsExpired event up to now.
func (g *raftGroup) sweepExpired() {
	g.node.every(g.node.cfg.SweepInterval, func(now int64) {
		if !g.IsLeader() || g.fsm.NextExpiry() > now {
			return
		}
		ctx, cancel := context.WithTimeout(g.node.stopCtx, g.node.cfg.SweepInterval)
		res, err := g.write(ctx, &events.SessionsExpired{Until: now})
		cancel()
		if err != nil {
			g.node.log.Warn("expiry sweep failed", "error", err)
			return
		}
		g.node.log.Debug("expired sessions removed", "count", res.Count, "index", res.Index)
	})
}

// every calls do with the node's clock on each tick of interval until the
// node stops. It runs as one of the node's background loops (wg).
func (n *Node) every(interval time.Duration, do func(now int64)) {
	defer n.wg.Done()
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-n.stop:
			return
		case <-tick.C:
			do(n.now())
		}
	}
}

// idempotencyKey carries a client's Idempotency-Key in a context.
type idempotencyKey struct{}

// WithIdempotencyKey makes the writes made under ctx carry the client's
// key as their request id, so that a client retrying a request after an
// unknown outcome has it applied at most once (within the last 16,384
// writes the state machine remembers).
func WithIdempotencyKey(ctx context.Context, key string) context.Context {
	return context.WithValue(ctx, idempotencyKey{}, key)
}

// DuplicateError answers a retried create, login or refresh whose first
// attempt already applied: the tokens it minted went to that attempt and
// cannot be shown again.
type DuplicateError struct {
	Index uint64
}

func (e *DuplicateError) Error() string {
	return fmt.Sprintf("this request was already applied at index %d; its tokens are not shown again", e.Index)
}

// issuedHere reports whether the session in a duplicate's result holds the
// tokens this attempt minted (the node's own retry of the same envelope),
// or ev mints no tokens at all.
func issuedHere(ev events.Event, s *fsm.Session) bool {
	switch ev := ev.(type) {
	case *events.SessionCreated:
		return s != nil && s.ID() == ev.SessionID && s.AccessHash == ev.AccessHash
	case *events.SessionRefreshed:
		return s != nil && s.AccessHash == ev.NewAccessHash
	}
	return true
}
