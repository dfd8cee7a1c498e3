package fsm

import (
	"fmt"
	"io"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/raft"

	"github.com/sessiond/sessiond/events"
)

// FSM implements raft.FSM and raft.BatchingFSM over the session state.
type FSM struct {
	mu sync.RWMutex
	st *state

	applied atomic.Uint64 // index of the last applied log entry
	// anyMoved is set while the state holds a user frozen for a move, so
	// that a validation asks MovedTo at the cost of one atomic load.
	anyMoved atomic.Bool

	// waitMu guards appliedCh, which is closed (and replaced) whenever the
	// applied index moves, waking WaitForIndex callers.
	waitMu    sync.Mutex
	appliedCh chan struct{}

	// onApply, if set, is called with the events of each ApplyBatch, outside
	// the lock.
	onApply func([]AppliedEvent)
	// onRestore, if set, is called with the snapshot's index after a restore.
	onRestore func(index uint64)

	refuseBatches bool // see Config.RefuseBatches
}

// AppliedEvent describes one applied event for observers (metrics, the
// event stream). It carries no token material beyond what the event has,
// which is hashes only.
type AppliedEvent struct {
	Index    uint64
	Envelope events.Envelope
	Result   *Result
}

// Config configures an FSM.
type Config struct {
	// OnApply, if set, is called with the events applied by one ApplyBatch
	// call, in log order, on the apply goroutine and outside the state lock.
	// A log entry's events always come in one call (a batch entry holds
	// several, all at the entry's index). It must not block.
	OnApply func([]AppliedEvent)
	// OnRestore, if set, is called with the snapshot's index after the state
	// was replaced by a snapshot (events before it were not seen one by one).
	OnRestore func(index uint64)
	// RefuseBatches makes the state machine meet a batch entry as a version
	// before batch entries would: it stops. For tests of mixed versions.
	RefuseBatches bool
}

// New returns an empty FSM with the default policy.
func New(cfg Config) *FSM {
	return &FSM{st: newState(0), appliedCh: make(chan struct{}), onApply: cfg.OnApply, onRestore: cfg.OnRestore, refuseBatches: cfg.RefuseBatches}
}

// Result is what applying one entry produced. It is the response of the
// raft.ApplyFuture for that entry.
type Result struct {
	// Index is the Raft index the entry was applied at. For a duplicate it is
	// the index at which the request was first applied.
	Index uint64
	// Err is the business outcome: nil or one of the package's sentinels.
	Err error
	// Session is a copy of the session the entry created or changed, when
	// there is one.
	Session *Session
	// Count is how many sessions the entry revoked or removed. For the
	// directory's events (UserHomed, EmailClaimed) it is 1 when the entry
	// changed the directory and 0 when it found it so already.
	Count int
	// Duplicate is true when the request id had been applied before and this
	// entry changed nothing.
	Duplicate bool
	// LockedUntil is when a login identifier's lockout ends (Unix
	// nanoseconds), for ErrLocked and for a LoginFailed that locked it.
	LockedUntil int64
}

var (
	_ raft.FSM         = (*FSM)(nil)
	_ raft.BatchingFSM = (*FSM)(nil)
)

// Apply applies one log entry.
func (f *FSM) Apply(l *raft.Log) any {
	return f.ApplyBatch([]*raft.Log{l})[0]
}

// BatchResult is the response of the raft.ApplyFuture for a batch entry
// (events.EncodeBatch): one *Result per event, in the batch's order.
type BatchResult []*Result

// ApplyBatch applies committed entries in order and returns one response per
// entry: a *Result for an event, a BatchResult for a batch of events, nil
// for anything else (configuration changes and the like).
func (f *FSM) ApplyBatch(logs []*raft.Log) []any {
	out := make([]any, len(logs))
	var applied []AppliedEvent
	f.mu.Lock()
	for i, l := range logs {
		if l.Type != raft.LogCommand {
			continue
		}
		if events.IsBatch(l.Data) {
			if f.refuseBatches {
				f.mu.Unlock()
				panic(fmt.Sprintf("fsm: cannot apply log entry %d: a batch entry, and this state machine refuses them", l.Index))
			}
			envs, err := events.DecodeBatch(l.Data)
			if err != nil {
				f.mu.Unlock()
				panic(fmt.Sprintf("fsm: cannot apply log entry %d: %v", l.Index, err))
			}
			results := make(BatchResult, len(envs))
			for j, env := range envs {
				results[j] = f.st.apply(l.Index, env)
				if f.onApply != nil {
					applied = append(applied, AppliedEvent{Index: l.Index, Envelope: env, Result: results[j]})
				}
			}
			out[i] = results
			continue
		}
		env, err := events.Decode(l.Data)
		if err != nil {
			// Skipping an entry would let this node diverge from its peers.
			f.mu.Unlock()
			panic(fmt.Sprintf("fsm: cannot apply log entry %d: %v", l.Index, err))
		}
		res := f.st.apply(l.Index, env)
		out[i] = res
		if f.onApply != nil {
			applied = append(applied, AppliedEvent{Index: l.Index, Envelope: env, Result: res})
		}
	}
	if n := len(logs); n > 0 {
		f.applied.Store(logs[n-1].Index)
	}
	f.anyMoved.Store(len(f.st.moved) > 0)
	f.mu.Unlock()
	f.notifyApplied()
	if f.onApply != nil && len(applied) > 0 {
		f.onApply(applied)
	}
	return out
}

func (f *FSM) notifyApplied() {
	f.waitMu.Lock()
	close(f.appliedCh)
	f.appliedCh = make(chan struct{})
	f.waitMu.Unlock()
}

// Snapshot captures the state for raft. It runs on the apply goroutine and
// only copies pointers; Persist does the encoding while applies continue.
func (f *FSM) Snapshot() (raft.FSMSnapshot, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.st.capture(f.applied.Load()), nil
}

// Restore replaces the state with a snapshot's. It is all or nothing: the new
// state is built aside and swapped in only when the whole stream decoded.
func (f *FSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	st, index, err := readSnapshot(rc)
	if err != nil {
		return err
	}
	f.mu.Lock()
	f.st = st
	f.applied.Store(index)
	f.anyMoved.Store(len(st.moved) > 0)
	f.mu.Unlock()
	if f.onRestore != nil {
		f.onRestore(index)
	}
	f.notifyApplied()
	return nil
}

// WriteSnapshot writes the current state in snapshot format to w: for
// comparing the state of two nodes, and for backups.
func (f *FSM) WriteSnapshot(w io.Writer) error {
	f.mu.RLock()
	snap := f.st.capture(f.applied.Load())
	f.mu.RUnlock()
	return snap.encode(w)
}
