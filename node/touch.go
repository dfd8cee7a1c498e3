package node

import (
	"context"
	"hash/maphash"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/sessiond/sessiond/events"
)

// Idle timeout (SPEC §3): every validation counts as a use of the session,
// but a Raft write per validation would cost far too much. Each node keeps
// the latest use it saw of each session that has an idle timeout and
// replicates them in batched SessionsTouched events, at most every
// idle_timeout/10 and no more often than once a second. Until a use is
// applied, the node that saw it counts it itself.

// touchShards spreads the tracker's lock over the validating goroutines.
const touchShards = 64

// maxTouchesPerEvent bounds one SessionsTouched event (about 40 bytes a touch).
const maxTouchesPerEvent = 8192

type touchTracker struct {
	seed   maphash.Seed
	shards [touchShards]touchShard
}

type touchShard struct {
	mu sync.Mutex
	// pending are uses not yet sent; inflight are uses being replicated,
	// still counted here until the write has applied.
	pending  map[events.SessionID]int64
	inflight map[events.SessionID]int64
	// minIdle is the shortest idle timeout among pending sessions.
	minIdle int64
}

func newTouchTracker() *touchTracker {
	t := &touchTracker{seed: maphash.MakeSeed()}
	for i := range t.shards {
		t.shards[i].pending = make(map[events.SessionID]int64)
	}
	return t
}

func (t *touchTracker) shard(id events.SessionID) *touchShard {
	return &t.shards[maphash.String(t.seed, string(id))%touchShards]
}

// record notes a use of session id at `at`; idle is the session's idle
// timeout.
func (t *touchTracker) record(id events.SessionID, at, idle int64) {
	sh := t.shard(id)
	sh.mu.Lock()
	if at > sh.pending[id] {
		sh.pending[id] = at
	}
	if sh.minIdle == 0 || idle < sh.minIdle {
		sh.minIdle = idle
	}
	sh.mu.Unlock()
}

// lastUse is the latest use of id seen here and not yet applied (0: none).
func (t *touchTracker) lastUse(id events.SessionID) int64 {
	sh := t.shard(id)
	sh.mu.Lock()
	at := max(sh.pending[id], sh.inflight[id])
	sh.mu.Unlock()
	return at
}

// due reports whether a flush is due at now, last flushed at last: some
// use is pending and max(idle/10, 1s) has passed for the shortest idle
// timeout among them.
func (t *touchTracker) due(now, last int64) bool {
	minIdle := int64(-1)
	for i := range t.shards {
		sh := &t.shards[i]
		sh.mu.Lock()
		if len(sh.pending) > 0 && (minIdle < 0 || sh.minIdle < minIdle) {
			minIdle = sh.minIdle
		}
		sh.mu.Unlock()
	}
	return minIdle >= 0 && now-last >= max(minIdle/10, int64(time.Second))
}

// take moves every pending use to inflight and returns them sorted by
// session id (the order the event carries).
func (t *touchTracker) take() []events.Touch {
	var out []events.Touch
	for i := range t.shards {
		sh := &t.shards[i]
		sh.mu.Lock()
		for id, at := range sh.pending {
			out = append(out, events.Touch{SessionID: id, At: at})
		}
		if sh.inflight == nil {
			sh.inflight = sh.pending
		} else {
			for id, at := range sh.pending {
				sh.inflight[id] = max(sh.inflight[id], at)
			}
		}
		sh.pending = make(map[events.SessionID]int64)
		sh.minIdle = 0
		sh.mu.Unlock()
	}
	slices.SortFunc(out, func(a, b events.Touch) int { return strings.Compare(string(a.SessionID), string(b.SessionID)) })
	return out
}

// settle forgets inflight uses once they are applied.
func (t *touchTracker) settle() {
	for i := range t.shards {
		sh := &t.shards[i]
		sh.mu.Lock()
		sh.inflight = nil
		sh.mu.Unlock()
	}
}

// retry puts uses whose replication failed back into pending, due again
// at the next chance.
func (t *touchTracker) retry(touches []events.Touch) {
	for _, tc := range touches {
		t.record(tc.SessionID, tc.At, int64(10*time.Second))
	}
}

// flushTouches replicates the uses this node saw, batched.
func (n *Node) flushTouches() {
	defer n.wg.Done()
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	var last int64
	for {
		select {
		case <-n.stop:
			return
		case <-tick.C:
		}
		now := n.now()
		if !n.touches.due(now, last) {
			continue
		}
		last = now
		touches := n.touches.take()
		for len(touches) > 0 {
			batch := touches[:min(len(touches), maxTouchesPerEvent)]
			touches = touches[len(batch):]
			ctx, cancel := context.WithTimeout(n.stopCtx, 10*time.Second)
			res, err := n.write(ctx, &events.SessionsTouched{Touches: batch})
			cancel()
			if err != nil {
				n.log.Warn("replicating session uses failed", "sessions", len(batch), "error", err)
				n.touches.retry(batch)
				continue
			}
			n.log.Debug("replicated session uses", "sessions", len(batch), "updated", res.Count, "index", res.Index)
		}
		n.touches.settle()
	}
}
