package node

import (
	"context"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sessiond/sessiond/events"
)

// Idle timeout (docs/logins.md#idle-timeout): every validation counts as a use
// of the session, but a Raft write per validation would cost far too much. Each
// node keeps the latest use it saw of each session that has an idle timeout and
// replicates them in batched SessionsTouched events, at most every
// idle_timeout/10 and no more often than once a second. Until a use is applied,
// the node that saw it counts it itself.

// touchResolution is how much later a use must be than the one already
// pending for the session before it is recorded again. Recording is then a
// lock-free read on almost every validation, and a store about once a
// second per busy session. Idle expiry is only accurate to idle/10 (at
// least 6 s) anyway.
const touchResolution = int64(time.Second)

// maxTouchesPerEvent bounds one SessionsTouched event (about 40 bytes a touch).
const maxTouchesPerEvent = 8192

type touchTracker struct {
	// pending maps a session id to its latest unsent use (int64).
	pending  sync.Map
	nPending atomic.Int64
	// minIdle is the shortest idle timeout among pending sessions (0: none).
	minIdle atomic.Int64

	// inflight are uses being replicated, still counted here until the
	// write has applied.
	mu       sync.Mutex
	inflight map[events.SessionID]int64
}

func newTouchTracker() *touchTracker { return &touchTracker{} }

// record notes a use of session id at `at`; idle is the session's idle
// timeout.
func (t *touchTracker) record(id events.SessionID, at, idle int64) {
	if v, ok := t.pending.Load(id); ok && v.(int64)+touchResolution > at {
		return
	}
	for {
		v, loaded := t.pending.LoadOrStore(id, at)
		if !loaded {
			t.nPending.Add(1)
			break
		}
		prev := v.(int64)
		if prev >= at || t.pending.CompareAndSwap(id, prev, at) {
			break
		}
	}
	for {
		m := t.minIdle.Load()
		if (m != 0 && m <= idle) || t.minIdle.CompareAndSwap(m, idle) {
			return
		}
	}
}

// lastUse is the latest use of id seen here and not yet applied (0: none).
func (t *touchTracker) lastUse(id events.SessionID) int64 {
	var at int64
	if v, ok := t.pending.Load(id); ok {
		at = v.(int64)
	}
	t.mu.Lock()
	at = max(at, t.inflight[id])
	t.mu.Unlock()
	return at
}

// due reports whether a flush is due at now, last flushed at last: some
// use is pending and max(idle/10, 1s) has passed for the shortest idle
// timeout among them.
func (t *touchTracker) due(now, last int64) bool {
	return t.nPending.Load() > 0 && now-last >= max(t.minIdle.Load()/10, int64(time.Second))
}

// take moves every pending use to inflight and returns them sorted by
// session id (the order the event carries). A use recorded meanwhile stays
// pending for the next flush.
func (t *touchTracker) take() []events.Touch {
	t.minIdle.Store(0)
	var out []events.Touch
	t.mu.Lock()
	if t.inflight == nil {
		t.inflight = make(map[events.SessionID]int64)
	}
	t.pending.Range(func(k, v any) bool {
		id, at := k.(events.SessionID), v.(int64)
		out = append(out, events.Touch{SessionID: id, At: at})
		t.inflight[id] = max(t.inflight[id], at)
		if t.pending.CompareAndDelete(id, at) {
			t.nPending.Add(-1)
		}
		return true
	})
	t.mu.Unlock()
	slices.SortFunc(out, func(a, b events.Touch) int { return strings.Compare(string(a.SessionID), string(b.SessionID)) })
	return out
}

// settle forgets inflight uses once they are applied.
func (t *touchTracker) settle() {
	t.mu.Lock()
	t.inflight = nil
	t.mu.Unlock()
}

// retry puts uses whose replication failed back into pending, due again
// at the next chance.
func (t *touchTracker) retry(touches []events.Touch) {
	for _, tc := range touches {
		t.record(tc.SessionID, tc.At, int64(10*time.Second))
	}
}

// flushTouches replicates the uses this node saw, batched.
func (g *raftGroup) flushTouches() {
	var last int64
	g.node.every(250*time.Millisecond, func(now int64) {
		if !g.touches.due(now, last) {
			return
		}
		last = now
		touches := g.touches.take()
		for len(touches) > 0 {
			batch := touches[:min(len(touches), maxTouchesPerEvent)]
			touches = touches[len(batch):]
			ctx, cancel := context.WithTimeout(g.node.stopCtx, 10*time.Second)
			res, err := g.write(ctx, &events.SessionsTouched{Touches: batch})
			cancel()
			if err != nil {
				g.node.log.Warn("replicating session uses failed", "sessions", len(batch), "error", err)
				g.touches.retry(batch)
				continue
			}
			g.node.metrics.touchesFlushed(len(batch))
			g.node.log.Debug("replicated session uses", "sessions", len(batch), "updated", res.Count, "index", res.Index)
		}
		g.touches.settle()
	})
}
