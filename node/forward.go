package node

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/sessiond/sessiond/events"
	"github.com/sessiond/sessiond/fsm"
	"github.com/sessiond/sessiond/transport"
)

// Forwarding: a follower hands a write to the leader over the cluster
// transport (the Raft port, mutual TLS when configured); the leader stamps,
// proposes and answers with the index and the business outcome; the
// follower then waits until it has applied that index itself before it
// answers its client. The client never needs to find the leader.

// RPC method names and error codes between nodes.
const (
	rpcApply = "apply"

	rpcCodeNotLeader   = "not_leader"
	rpcCodeUnavailable = "unavailable"
)

type applyRequest struct {
	// Group names the group to write to; empty is the default group (and
	// is left out on the wire, as earlier versions send it).
	Group string `msgpack:"group,omitempty"`
	// Entry is the encoded envelope; the leader replaces its time.
	Entry []byte `msgpack:"entry"`
	// TimeoutMillis is what is left of the follower's deadline.
	TimeoutMillis int64 `msgpack:"timeout_ms"`
}

type applyResponse struct {
	Index uint64 `msgpack:"index"`
	Error string `msgpack:"error"` // fsm.ErrorName of the business outcome
	Count int    `msgpack:"count"`
	// Duplicate: the request id had been applied before (at Index).
	Duplicate bool `msgpack:"duplicate"`
}

// forward sends env to the leader at leaderAddr.
func (g *raftGroup) forward(ctx context.Context, leaderAddr string, env events.Envelope) (*fsm.Result, error) {
	data, err := events.Encode(env)
	if err != nil {
		return nil, fmt.Errorf("node: encode %s: %w", env.Type(), err)
	}
	timeout := g.node.cfg.LeaderWait
	if deadline, ok := ctx.Deadline(); ok {
		timeout = time.Until(deadline)
	}
	var resp applyResponse
	err = g.node.rpc.Call(ctx, leaderAddr, rpcApply, applyRequest{Group: g.name, Entry: data, TimeoutMillis: timeout.Milliseconds()}, &resp)
	if err != nil {
		var re *transport.RemoteError
		switch {
		case errors.As(err, &re) && (re.Code == rpcCodeNotLeader || re.Code == rpcCodeUnavailable):
			return nil, fmt.Errorf("%w: leader %s: %s", errRetry, leaderAddr, re.Message)
		case ctx.Err() != nil:
			return nil, fmt.Errorf("%w: write not confirmed in time (it may still apply)", ErrUnavailable)
		case errors.As(err, &re):
			return nil, fmt.Errorf("%w: leader %s refused the write: %s", ErrUnavailable, leaderAddr, re.Message)
		}
		// The connection failed: the write may or may not have applied.
		return nil, fmt.Errorf("%w: forward to %s: %v", errRetry, leaderAddr, err)
	}
	// Acknowledge only once this node has applied the write too.
	if err := g.fsm.WaitForIndex(ctx, resp.Index); err != nil {
		return nil, fmt.Errorf("%w: write committed at %d but not yet applied here", ErrUnavailable, resp.Index)
	}
	res := &fsm.Result{Index: resp.Index, Err: fsm.ErrorFromName(resp.Error), Count: resp.Count, Duplicate: resp.Duplicate}
	if id := events.SessionOf(env.Event); id != "" {
		if s, ok := g.fsm.Session(id); ok {
			res.Session = &s
		}
	}
	if res.Err == nil && res.Session == nil && needsSession(env.Event) && !res.Duplicate {
		return nil, fmt.Errorf("%w: session %s gone before it could be read", ErrUnavailable, events.SessionOf(env.Event))
	}
	return res, nil
}

// needsSession reports whether the caller of a write of this event needs
// the resulting session.
func needsSession(ev events.Event) bool {
	switch ev.(type) {
	case *events.SessionCreated, *events.SessionRefreshed:
		return true
	}
	return false
}

// serveApply is the leader's side of forwarding.
func (n *Node) serveApply(ctx context.Context, peer string, dec *msgpack.Decoder) (any, error) {
	var req applyRequest
	if err := dec.Decode(&req); err != nil {
		return nil, fmt.Errorf("decode apply request: %w", err)
	}
	g, err := n.hostedGroup(req.Group)
	if err != nil {
		return nil, err
	}
	return g.applyForwarded(ctx, peer, req)
}

// applyForwarded proposes a write another node forwarded, if this node
// leads the group.
func (g *raftGroup) applyForwarded(ctx context.Context, peer string, req applyRequest) (any, error) {
	env, err := events.Decode(req.Entry)
	if err != nil {
		return nil, &transport.RemoteError{Code: "bad_request", Message: err.Error()}
	}
	if !g.IsLeader() {
		return nil, &transport.RemoteError{Code: rpcCodeNotLeader, Message: "not the leader"}
	}
	timeout := min(time.Duration(req.TimeoutMillis)*time.Millisecond, 30*time.Second)
	if timeout <= 0 {
		timeout = time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	res, err := g.applyLocal(ctx, env)
	if err != nil {
		if errors.Is(err, errRetry) {
			return nil, &transport.RemoteError{Code: rpcCodeNotLeader, Message: err.Error()}
		}
		return nil, &transport.RemoteError{Code: rpcCodeUnavailable, Message: err.Error()}
	}
	g.node.log.Debug("applied a forwarded write", "peer", peer, "event", env.Type().String(), "index", res.Index)
	return applyResponse{Index: res.Index, Error: fsm.ErrorName(res.Err), Count: res.Count, Duplicate: res.Duplicate}, nil
}
