package node

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sessiond/sessiond/transport"
)

// Vouching: when a node may answer a token validation from its own state.
//
// The rule: a node answers from its local state at time t only if it has
// applied every write the leader had applied (so every write acknowledged to
// anyone) by t − max-stale. Hearing from the leader is not enough: a node
// that starts, regains contact after a partition, or lags behind a backlog
// still hears heartbeats while its state is old.
//
// So a node learns it, the way a linearizable read does: it notes the time T
// (this process's monotonic clock), asks the leader for its read index C (the
// leader confirms with a quorum that it still leads, then answers what it has
// applied), and once it has applied C itself, its state holds every write
// acknowledged before T. It may then vouch locally until T + max-stale. A
// background loop repeats this every max-stale/4, so in steady state a
// validation costs one atomic load; a request for a tighter ?max_stale=, a
// leader-confirmed read and a node that lost its lease run the same
// confirmation on demand. The leader confirms itself the same way
// (VerifyLeader): a leader cut off from its quorum stops vouching once its
// last confirmation is max-stale old.
//
// Concurrent confirmations share one read-index call: a caller joins the call
// in flight if it started after the caller's own request did, else the next
// one, so a burst of callers costs the leader one call at a time per node.

// freshness is what this node knows of how current its state is.
type freshness struct {
	// epoch is the origin of the monotonic times below.
	epoch time.Time
	// confirmed is the start (ns since epoch) of the newest confirmation
	// whose read index has been applied here; math.MinInt64 when none.
	confirmed atomic.Int64

	mu sync.Mutex
	// inFlight is the read-index call under way, queued the one that
	// starts when it ends (its waiters arrived after inFlight started).
	inFlight, queued *readIndexCall
}

// readIndexCall is one read-index call shared by its waiters.
type readIndexCall struct {
	started int64 // ns since epoch, set when the call starts
	done    chan struct{}
	index   uint64
	err     error
}

func newFreshness() *freshness {
	f := &freshness{epoch: time.Now()}
	f.confirmed.Store(math.MinInt64)
	return f
}

// now is the monotonic time since epoch, in ns.
func (f *freshness) now() int64 { return int64(time.Since(f.epoch)) }

// within reports whether a confirmation started no longer than bound ago
// has been applied here.
func (f *freshness) within(bound time.Duration) bool {
	return f.now()-int64(bound) <= f.confirmed.Load()
}

// age is the time since the newest confirmation applied here started; -1s
// when there has been none.
func (f *freshness) age() time.Duration {
	confirmed := f.confirmed.Load()
	if confirmed == math.MinInt64 {
		return -time.Second
	}
	return time.Duration(f.now() - confirmed)
}

// advance records that a confirmation started at started has been applied.
func (f *freshness) advance(started int64) {
	for {
		old := f.confirmed.Load()
		if started <= old || f.confirmed.CompareAndSwap(old, started) {
			return
		}
	}
}

// MaxStale is this node's bound on how old the state it vouches from may be.
func (n *Node) MaxStale() time.Duration { return n.cfg.MaxStale }

// Vouch returns nil when this node may answer a token validation from its
// local state under the bound maxStale (the node's own MaxStale or a
// tighter one a caller asked for). Otherwise it confirms through the leader
// and catches up first (a read barrier), and returns ErrUnavailable when that
// cannot be done before ctx ends.
func (g *raftGroup) Vouch(ctx context.Context, maxStale time.Duration) error {
	if g.fresh.within(maxStale) {
		return nil
	}
	_, err := g.ReadBarrier(ctx)
	return err
}

// Fresh reports whether this node vouches from its local state now: it has
// applied what the leader had applied MaxStale ago.
func (g *raftGroup) Fresh() bool { return g.fresh.within(g.node.cfg.MaxStale) }

// ReadBarrier makes the local reads that follow linearizable: it obtains the
// leader's read index through a call that started after ReadBarrier was
// called, and waits until this node has applied it. It returns that index,
// or ErrUnavailable when no leader confirms in time or this node cannot catch
// up before ctx ends.
func (g *raftGroup) ReadBarrier(ctx context.Context) (uint64, error) {
	call, err := g.readIndexSince(ctx, g.fresh.now())
	if err != nil {
		return 0, err
	}
	if err := g.waitApplied(ctx, call.index); err != nil {
		return 0, fmt.Errorf("%w: index %d not applied here in time", ErrUnavailable, call.index)
	}
	g.fresh.advance(call.started)
	return call.index, nil
}

// readIndexSince waits for a read-index call that started at or after since,
// joining the one in flight or the next.
func (g *raftGroup) readIndexSince(ctx context.Context, since int64) (*readIndexCall, error) {
	f := g.fresh
	f.mu.Lock()
	var call *readIndexCall
	switch {
	case f.inFlight == nil:
		call = &readIndexCall{started: f.now(), done: make(chan struct{})}
		f.inFlight = call
		go g.runReadIndexCalls(call)
	case f.inFlight.started >= since:
		call = f.inFlight
	default:
		if f.queued == nil {
			f.queued = &readIndexCall{done: make(chan struct{})}
		}
		call = f.queued
	}
	f.mu.Unlock()
	select {
	case <-call.done:
		return call, call.err
	case <-ctx.Done():
		return nil, fmt.Errorf("%w: no leader confirmed in time", ErrUnavailable)
	}
}

// confirmWait bounds how long a validation waits for the leader's
// confirmation before it answers ErrUnavailable.
const confirmWait = 2 * time.Second

// confirm runs a read barrier bounded by confirmWait (and ctx).
func (g *raftGroup) confirm(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, confirmWait)
	defer cancel()
	_, err := g.ReadBarrier(ctx)
	return err
}

// readIndexCallTimeout bounds one shared read-index call; its waiters give up
// on their own deadlines.
const readIndexCallTimeout = 5 * time.Second

// runReadIndexCalls runs call, then each call queued meanwhile, until none is.
func (g *raftGroup) runReadIndexCalls(call *readIndexCall) {
	f := g.fresh
	for call != nil {
		ctx, cancel := context.WithTimeout(g.node.stopCtx, readIndexCallTimeout)
		call.index, call.err = g.leaderIndex(ctx)
		cancel()
		close(call.done)
		f.mu.Lock()
		call = f.queued
		f.queued = nil
		f.inFlight = call
		if call != nil {
			call.started = f.now()
		}
		f.mu.Unlock()
	}
}

// leaderIndex obtains the leader's read index, locally when this node leads
// or over RPC, retrying while the leader is unknown or changing.
func (g *raftGroup) leaderIndex(ctx context.Context) (uint64, error) {
	backoff := 10 * time.Millisecond
	for {
		leaderAddr, err := g.waitForLeader(ctx)
		if err != nil {
			return 0, err
		}
		var index uint64
		if leaderAddr == "" {
			index, err = g.leaderReadIndex(ctx)
		} else {
			var resp readIndexResponse
			err = g.node.rpc.Call(ctx, leaderAddr, rpcReadIndex, readIndexRequest{Group: g.name}, &resp)
			index = resp.Index
		}
		if err == nil {
			return index, nil
		}
		var re *transport.RemoteError
		if !errors.Is(err, ErrNotLeader) && !(errors.As(err, &re) && re.Code == rpcCodeNotLeader) {
			return 0, fmt.Errorf("%w: cannot reach a leader: %v", ErrUnavailable, err)
		}
		select {
		case <-ctx.Done():
			return 0, fmt.Errorf("%w: no leader confirmed in time", ErrUnavailable)
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 200*time.Millisecond)
	}
}

// keepFresh renews this node's confirmation every MaxStale/4, so that in
// steady state validations never wait for one; after a failure (no leader,
// cut off) it tries again sooner. A confirmation waits at most MaxStale for
// this node to apply the leader's index: applied any later, it would be too
// old to vouch with anyway.
func (g *raftGroup) keepFresh() {
	defer g.node.wg.Done()
	renew := max(g.node.cfg.MaxStale/4, time.Millisecond)
	backoff := 50 * time.Millisecond
	for {
		wait := backoff
		if age := g.fresh.age(); age >= 0 && age < renew {
			wait = renew - age
		} else {
			ctx, cancel := context.WithTimeout(g.node.stopCtx, g.node.cfg.MaxStale)
			_, err := g.ReadBarrier(ctx)
			cancel()
			if err == nil {
				backoff = 50 * time.Millisecond
				continue
			}
			g.node.log.Debug("cannot confirm this node's state with the leader", "error", err)
			backoff = min(2*backoff, time.Second)
		}
		select {
		case <-g.node.stop:
			return
		case <-time.After(wait):
		}
	}
}
