package clustertest

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sessiond/sessiond/node"
	"github.com/sessiond/sessiond/transport/testkit"
)

// The nemesis of the bounded-staleness check and its faults: cuts that
// heal, restarts with and without a snapshot, backlogs (staleness_test.go).

// node returns node i's *node.Node while it runs, else nil.
func (r *stRun) node(i int) *node.Node {
	var n *node.Node
	r.c.eachRunning(func(m *Member) {
		if m.Index == i {
			n = m.Node
		}
	})
	return n
}

// waitCaughtUp waits until every node runs, one leads, and every node has
// applied what the leader had applied when the wait began; it records how
// long that took.
func (r *stRun) waitCaughtUp(what string) {
	began := time.Now()
	if len(r.cfg.regions) > 1 {
		r.waitGroupsCaughtUp(what, began)
		return
	}
	var target uint64
	ok := testkit.Wait(30*time.Second, func() bool {
		if len(r.c.Running()) != len(r.c.Nodes) {
			return false
		}
		if target == 0 {
			l := r.c.Leader()
			if l < 0 {
				return false
			}
			n := r.node(l)
			if n == nil {
				return false
			}
			target = n.AppliedIndex()
		}
		caughtUp := true
		r.c.eachRunning(func(m *Member) {
			if m.Node.AppliedIndex() < target {
				caughtUp = false
			}
		})
		return caughtUp
	})
	if !ok {
		r.problem("the cluster did not catch up after the %s within 30s", what)
		return
	}
	took := time.Since(began)
	r.mu.Lock()
	r.catchUps = append(r.catchUps, took)
	r.mu.Unlock()
	r.logf("nemesis: every node applied index %d %v after the %s healed", target, took.Round(time.Millisecond), what)
}

// waitGroupsCaughtUp is waitCaughtUp on a cluster with regions: every
// group led, every node vouching from its copy of each, and every node
// has applied, in each group, what the most advanced node had when the
// wait began.
func (r *stRun) waitGroupsCaughtUp(what string, began time.Time) {
	targets := map[string]uint64{}
	ok := testkit.Wait(30*time.Second, func() bool {
		if len(r.c.Running()) != len(r.c.Nodes) || !r.c.groupsSettled() {
			return false
		}
		if len(targets) == 0 {
			r.c.eachRunning(func(m *Member) {
				for _, g := range m.Node.Groups() {
					targets[g] = max(targets[g], m.Node.GroupFSM(g).AppliedIndex())
				}
			})
		}
		caughtUp := true
		r.c.eachRunning(func(m *Member) {
			for g, target := range targets {
				if m.Node.GroupFSM(g).AppliedIndex() < target {
					caughtUp = false
				}
			}
		})
		return caughtUp
	})
	if !ok {
		r.problem("the cluster did not catch up after the %s within 30s", what)
		return
	}
	took := time.Since(began)
	r.mu.Lock()
	r.catchUps = append(r.catchUps, took)
	r.mu.Unlock()
	r.logf("nemesis: every node caught up in every group %v after the %s healed", took.Round(time.Millisecond), what)
}

func (r *stRun) cutLength(rng *rand.Rand) time.Duration {
	return r.cfg.cutMin + time.Duration(rng.Int64N(int64(r.cfg.cutMax-r.cfg.cutMin)+1))
}

func (r *stRun) heal(node int) {
	r.c.Heal()
	r.mu.Lock()
	r.heals++
	r.mu.Unlock()
	r.event(node, "heal")
}

// kill stops node i like a crash and records it down. The node is cut off
// at once; the rest of the kill, which waits for the node's requests in
// flight, goes on in the background until the returned wait.
func (r *stRun) kill(i int) (wait func()) {
	r.mu.Lock()
	r.down[i] = append(r.down[i], stInterval{from: time.Now()})
	r.mu.Unlock()
	r.c.Isolate(i)
	done := make(chan struct{})
	go func() {
		defer close(done)
		r.c.Kill(i)
	}()
	return func() { <-done }
}

// restart starts node i again on its data dir.
func (r *stRun) restart(i int) bool {
	err := r.c.start(r.c.Nodes[i])
	r.mu.Lock()
	r.down[i][len(r.down[i])-1].to = time.Now()
	r.restarts++
	r.mu.Unlock()
	if err != nil {
		r.problem("restart node%d: %v", i, err)
		return false
	}
	r.event(i, "node%d restarted", i)
	return true
}

// snapshotsOnDisk counts node i's complete snapshots.
func (r *stRun) snapshotsOnDisk(i int) int {
	entries, err := os.ReadDir(filepath.Join(r.c.Nodes[i].DataDir, "snapshots"))
	if err != nil {
		return 0
	}
	n := 0
	for _, e := range entries {
		if _, err := os.Stat(filepath.Join(r.c.Nodes[i].DataDir, "snapshots", e.Name(), "meta.json")); err == nil && !strings.HasSuffix(e.Name(), ".tmp") {
			n++
		}
	}
	return n
}

// bulk runs the backlog: first revokes, through m, the sessions of pre,
// then creates and revokes sessions until the run has made count writes
// or limit has passed. Six workers write at once.
func (r *stRun) bulk(m *Member, pre []*stToken, count int, limit time.Duration) int {
	var made atomic.Int64
	deadline := time.Now().Add(limit)
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := range 6 {
		wg.Go(func() {
			for time.Now().Before(deadline) && made.Load() < int64(count) && r.write() {
				if i := next.Add(1) - 1; i < int64(len(pre)) {
					r.revoke(m, pre[i])
					made.Add(1)
					continue
				}
				tok, _, _ := r.create(m, fmt.Sprintf("bulk%d-%d", w, next.Load()%50))
				made.Add(1)
				if tok != nil && made.Load()%2 == 0 && r.write() {
					r.revoke(m, tok)
					made.Add(1)
				}
			}
		})
	}
	wg.Wait()
	return int(made.Load())
}

// held makes count sessions through the leader and waits until node i has
// applied them, so that they can be revoked behind its back.
func (r *stRun) held(i, count int, rng *rand.Rand) ([]*stToken, bool) {
	leader := r.c.Leader()
	if leader < 0 {
		return nil, false
	}
	var pre []*stToken
	var top uint64
	for range count {
		if !r.write() {
			break
		}
		if tok, _, index := r.create(r.c.Nodes[leader], fmt.Sprintf("held%d", rng.IntN(20))); tok != nil {
			pre = append(pre, tok)
			top = max(top, index)
		}
	}
	if !testkit.Wait(10*time.Second, func() bool { n := r.node(i); return n != nil && n.AppliedIndex() >= top }) {
		r.problem("node%d did not apply the sessions made before the fault", i)
		return nil, false
	}
	return pre, true
}

// writeTarget is the leader, or when node i leads, another running node
// (which forwards to the next leader).
func (r *stRun) writeTarget(i int) *Member {
	if l := r.c.Leader(); l >= 0 && l != i {
		return r.c.Nodes[l]
	}
	for _, m := range r.c.Running() {
		if m.Index != i {
			return m
		}
	}
	return r.c.Nodes[(i+1)%len(r.c.Nodes)]
}

// restartNode kills node i, deletes its snapshots or makes sure it has one,
// writes behind its back while it is down, and restarts it. It reports
// whether the node restarted with a snapshot on disk as asked.
func (r *stRun) restartNode(i int, withSnapshot bool, rng *rand.Rand) (bool, error) {
	pre, ok := r.held(i, 100, rng)
	if !ok {
		return false, nil
	}
	if withSnapshot && r.snapshotsOnDisk(i) == 0 {
		if n := r.node(i); n != nil {
			_ = n.Snapshot()
		}
	}
	down := r.cfg.downMin + time.Duration(rng.Int64N(int64(r.cfg.downMax-r.cfg.downMin)+1))
	r.event(i, "kill node%d for %v", i, down.Round(time.Millisecond))
	killed := time.Now()
	target := r.writeTarget(i)
	killing := r.kill(i)
	made := r.bulk(target, pre, r.cfg.restartBacklog, down)
	killing()
	if !withSnapshot {
		if err := r.c.DropSnapshots(i); err != nil {
			r.problem("drop the snapshots of node%d: %v", i, err)
		}
	}
	snaps := r.snapshotsOnDisk(i)
	r.logf("nemesis: node%d has %d snapshots on disk; %d writes made while it was down", i, snaps, made)
	r.pause(down - time.Since(killed))
	if !r.restart(i) {
		return false, errors.New("restart failed")
	}
	r.waitCaughtUp("restart")
	return withSnapshot == (snaps > 0), nil
}

// backlog makes a follower catch up on thousands of writes: sessions it
// has applied are revoked, and others created and revoked, while it is cut
// off or down.
func (r *stRun) backlog(rng *rand.Rand) (bool, error) {
	leader := r.c.Leader()
	if leader < 0 {
		return false, nil
	}
	f := (leader + 1 + rng.IntN(len(r.c.Nodes)-1)) % len(r.c.Nodes)
	pre, ok := r.held(f, 200, rng)
	if !ok {
		return false, nil
	}
	down := rng.IntN(2) == 0
	cut := r.cutLength(rng)
	began := time.Now()
	target := r.writeTarget(f)
	killing := func() {}
	if down {
		r.event(f, "backlog: kill node%d for %v while the majority writes", f, cut.Round(time.Millisecond))
		killing = r.kill(f)
	} else {
		r.event(f, "backlog: isolate node%d for %v while the majority writes", f, cut.Round(time.Millisecond))
		r.c.Isolate(f)
	}
	made := r.bulk(target, pre, r.cfg.backlog, r.cfg.backlogTime)
	killing()
	r.logf("nemesis: backlog of %d writes made in %v", made, time.Since(began).Round(time.Millisecond))
	r.pause(cut - time.Since(began))
	if down {
		if !r.restart(f) {
			return false, errors.New("restart failed")
		}
	} else {
		r.heal(f)
	}
	r.waitCaughtUp("backlog")
	return made >= r.cfg.backlog/2, nil
}

// nemesis injects one fault at a time, each healed, in shuffled rounds of
// one of each kind, until duration has passed and every kind has been
// injected (within twice duration).
func (r *stRun) nemesis(rng *rand.Rand) {
	var round []int
	first := true
	everyKind := func() bool { return !slices.ContainsFunc(r.cfg.kinds, func(k int) bool { return r.injected[k] == 0 }) }
	for {
		elapsed := time.Since(r.begin)
		if elapsed >= 2*r.cfg.duration || (elapsed >= r.cfg.duration && everyKind()) {
			return
		}
		gap := time.Duration(200+rng.IntN(300)) * time.Millisecond
		if first {
			gap += 300 * time.Millisecond // the clients first make some sessions
			first = false
		}
		r.pause(gap)
		if len(round) == 0 {
			for _, i := range rng.Perm(len(r.cfg.kinds)) {
				round = append(round, r.cfg.kinds[i])
			}
		}
		kind := round[0]
		round = round[1:]
		done, err := true, error(nil)
		switch kind {
		case stIsolate:
			i := rng.IntN(len(r.c.Nodes))
			cut := r.cutLength(rng)
			r.event(i, "isolate node%d for %v", i, cut.Round(time.Millisecond))
			r.c.Isolate(i)
			r.pause(cut)
			r.heal(i)
			r.waitCaughtUp("isolation")
		case stPartition:
			i := rng.IntN(len(r.c.Nodes))
			j := (i + 1 + rng.IntN(len(r.c.Nodes)-1)) % len(r.c.Nodes)
			cut := r.cutLength(rng)
			r.event(i, "partition node%d from node%d for %v", i, j, cut.Round(time.Millisecond))
			r.event(j, "partition node%d from node%d", j, i)
			r.c.Partition(i, j)
			r.pause(cut)
			r.heal(-1)
			r.waitCaughtUp("partition")
		case stRestart, stRestartNoSnapshot:
			done, err = r.restartNode(rng.IntN(len(r.c.Nodes)), kind == stRestart, rng)
		case stBacklog:
			done, err = r.backlog(rng)
		case stIsolateRegion:
			region := r.cfg.regions[rng.IntN(len(r.cfg.regions))]
			cut := r.cutLength(rng)
			for i := range r.c.Nodes {
				if r.c.RegionOf(i) == region {
					r.event(i, "cut region %s off for %v", region, cut.Round(time.Millisecond))
				}
			}
			r.c.IsolateRegion(region)
			r.pause(cut)
			r.heal(-1)
			r.waitCaughtUp("region isolation")
		}
		if err != nil {
			return
		}
		if done {
			r.injected[kind]++
		} else {
			round = append(round, kind) // again later in the round
		}
	}
}
