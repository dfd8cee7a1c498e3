package node

import (
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/sessiond/sessiond/fsm"
	"github.com/sessiond/sessiond/transport"
)

// A raftGroup is one Raft group a node takes part in: one log, its stores
// and snapshots in a directory of its own, the Raft instance, the state
// machine it feeds, and what the write and read paths keep per log — the
// proposer's queue and time stamps, batch-entry support, leadership and the
// freshness this node vouches with. A node hosts one group today, the
// default group, whose files are the data dir's top level (raft.db and
// snapshots/, as before groups had a name). Regions add a group per region
// and a global group; each is a raftGroup of its own on the node's one
// transport, chosen by name in the connection preamble, and nothing on a
// group's write path is shared with another group.
//
// The write path (write, propose, forward), the reads' freshness (vouch.go,
// consistency.go), leadership (leaderwatch.go), membership changes, the
// expiry sweep, touches and the event tail are the group's methods; the
// node's own API reaches the default group's through the embedding, and
// node-to-node RPCs reach the group they name (groups.go). What a second
// group still needs: its own loops started and stopped, its own
// reconciliation of members, and routing from a client's request to it.
type raftGroup struct {
	// node is the node hosting the group: its configuration, logger,
	// transport, metrics and lifetime (stop, wg) are shared by its groups.
	node *Node
	// name is the group's name on the wire; defaultGroup for the group
	// whose connections carry no name.
	name string
	// dir holds the group's raft.db and snapshots/.
	dir string

	fsm     *fsm.FSM
	raft    *raft.Raft
	trans   *raft.NetworkTransport
	store   *raftboltdb.BoltStore
	snaps   *raft.FileSnapshotStore
	carrier *commitCarrier // tells followers of new commits (commitcarrier.go)

	// bootstrapped is set once this node knows the group exists (it had
	// Raft state, bootstrapped it, or heard from a leader).
	bootstrapped atomic.Bool
	// leaderReady is true while this node leads and has applied everything
	// committed before its term (a Barrier after the election).
	leaderReady atomic.Bool
	leaderGen   atomic.Uint64
	// leaders wakes waiters on Raft's leader changes (leaderwatch.go).
	leaders *leaderWatch
	// fresh says how current this node's copy of the group's state is:
	// whether it may vouch for tokens from it (vouch.go).
	fresh *freshness

	// proposals queue the leader's writes for proposeLoop.
	proposals chan *proposal
	// batchEntries is true while every server in the Raft configuration
	// reads batch entries, so proposeLoop may pack writes into them.
	batchEntries atomic.Bool
	// batchMu: proposeLoop holds it shared from reading batchEntries until
	// its entries are handed to Raft; updateBatchEntries holds it to decide,
	// and AddServer to turn packing off and note a server in adding.
	batchMu   sync.RWMutex
	adding    map[string]int // servers AddServer adds that do not read batch entries (batchMu)
	stampMu   sync.Mutex
	lastStamp int64 // event times never go back within one log

	// touches are uses of the group's sessions with an idle timeout seen
	// here and not yet replicated.
	touches *touchTracker
	// events is the tail of the group's applied events for GET /v1/events.
	events *eventTail
}

// defaultGroup names the group a node hosted before groups had names: its
// connections use transport.KindRaft and its files sit at the top of the
// data dir, so data dirs and peers of earlier versions keep working.
const defaultGroup = ""

func newRaftGroup(n *Node, name, dir string) *raftGroup {
	return &raftGroup{
		node:      n,
		name:      name,
		dir:       dir,
		proposals: make(chan *proposal, maxProposalBatch),
		adding:    make(map[string]int),
		touches:   newTouchTracker(),
		fresh:     newFreshness(),
		events:    newEventTail(EventTailSize, 0),
	}
}

// openStores opens the group's log and stable store (raft.db) and its
// snapshot store. A raft.db another process holds open is ErrDataDirInUse.
func (g *raftGroup) openStores(retainSnapshots int, hlog hclog.Logger, log *slog.Logger) error {
	var err error
	g.store, err = raftboltdb.New(raftboltdb.Options{
		Path: filepath.Join(g.dir, "raft.db"),
		BoltOptions: &bbolt.Options{
			Timeout:        time.Second,
			NoFreelistSync: true,
			FreelistType:   bbolt.FreelistMapType,
		},
	})
	if err != nil {
		if errors.Is(err, bolterrors.ErrTimeout) {
			return fmt.Errorf("%w: %s", ErrDataDirInUse, g.dir)
		}
		return fmt.Errorf("node: open raft log: %w", err)
	}
	// Under the bolt lock, before Raft lists its snapshots.
	removeLeftoverSnapshots(g.dir, log)
	g.snaps, err = raft.NewFileSnapshotStoreWithLogger(g.dir, retainSnapshots, hlog.Named("snapshots"))
	if err != nil {
		return fmt.Errorf("node: open snapshots: %w", err)
	}
	return nil
}

// streamLayer is the group's share of the node's transport: the default
// group's connections carry no name, a named group's name them.
func (g *raftGroup) streamLayer(mux *transport.Transport) (raft.StreamLayer, error) {
	if g.name == defaultGroup {
		return mux.RaftLayer(), nil
	}
	return mux.RaftGroupLayer(g.name)
}

// openFSM creates the group's state machine; what it applies feeds the
// group's event tail and the node's metrics.
func (g *raftGroup) openFSM() {
	g.fsm = fsm.New(fsm.Config{
		OnApply: func(applied []fsm.AppliedEvent) {
			records := make([]EventRecord, len(applied))
			for i, a := range applied {
				records[i] = recordOf(a)
				records[i].Group = g.name
				g.node.metrics.applied(a)
			}
			g.events.add(records)
		},
		OnRestore:     func(index uint64) { g.events.reset(index) },
		RefuseBatches: g.node.cfg.noBatchEntries,
	})
}

// startRaft starts the group's Raft over stream, on the stores openStores
// opened. It reports whether the group had Raft state already, and the
// channel on which Raft announces this node's leadership changes.
func (g *raftGroup) startRaft(hlog hclog.Logger, stream raft.StreamLayer) (hasState bool, leadership chan bool, err error) {
	cfg := g.node.cfg
	g.trans = raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream:  stream,
		MaxPool: 3,
		// 1: no pipelined replication. hashicorp/raft's pipeline can
		// deadlock: when its response decoder stops (a follower refused an
		// append, or answered with a newer term, as in a leadership
		// transfer) one more send can park on the pipeline's unbuffered
		// channel for good, and the leader then never replicates to that
		// follower again, nor shuts down. It hung a node's shutdown in a
		// test. With one batch in flight (group commit) pipelining gained
		// nothing measurable: 3,080–3,460 creates/s without it against
		// 2,740–3,500/s with it, in alternating runs.
		MaxRPCsInFlight: 1,
		Timeout:         10 * time.Second,
		Logger:          hlog.Named("transport"),
	})

	rc := raft.DefaultConfig()
	rc.LocalID = g.node.nodeID
	rc.Logger = hlog
	rc.HeartbeatTimeout = cfg.HeartbeatTimeout
	rc.ElectionTimeout = cfg.ElectionTimeout
	rc.LeaderLeaseTimeout = cfg.HeartbeatTimeout / 2
	// A follower that forwarded a write answers only once it has applied
	// it, and it learns of the commit from the leader's next append. Raft
	// sends an empty one each commit timeout, committed or not: at 1 ms
	// that was most of an idle cluster's CPU. The carrier sends it as soon
	// as the leader has applied something (commitcarrier.go), so the
	// commit timeout is only a fallback.
	rc.CommitTimeout = commitTimeout
	rc.SnapshotInterval = cfg.SnapshotInterval
	rc.SnapshotThreshold = cfg.SnapshotThreshold
	rc.TrailingLogs = cfg.TrailingLogs
	// Batched applies reach the FSM through BatchingFSM.ApplyBatch.
	rc.BatchApplyCh = true
	rc.MaxAppendEntries = maxProposalBatch
	leadership = make(chan bool, 16)
	rc.NotifyCh = leadership

	logs, err := raft.NewLogCache(4096, g.store)
	if err != nil {
		return false, nil, err
	}
	hasState, err = raft.HasExistingState(logs, g.store, g.snaps)
	if err != nil {
		return false, nil, fmt.Errorf("node: read raft state: %w", err)
	}
	g.carrier = newCommitCarrier(g.trans)
	g.raft, err = raft.NewRaft(rc, appliedHook{BatchingFSM: observedFSM{FSM: g.fsm, m: g.node.metrics}, carrier: g.carrier},
		logs, g.store, g.snaps, g.carrier)
	if err != nil {
		return false, nil, fmt.Errorf("node: start raft: %w", err)
	}
	g.carrier.raft.Store(g.raft)
	g.leaders = newLeaderWatch()
	g.raft.RegisterObserver(raft.NewObserver(nil, false, g.leaders.observe))
	return hasState, leadership, nil
}

// bootstrapAlone makes the group a new one of this node alone, at addr.
func (g *raftGroup) bootstrapAlone(addr string) error {
	boot := raft.Configuration{Servers: []raft.Server{{
		ID: g.node.nodeID, Address: raft.ServerAddress(addr), Suffrage: raft.Voter,
	}}}
	if err := g.raft.BootstrapCluster(boot).Error(); err != nil && !errors.Is(err, raft.ErrCantBootstrap) {
		return fmt.Errorf("node: bootstrap: %w", err)
	}
	return nil
}

// startLoops starts the group's background work, which ends when the node
// stops: the leader's proposer and expiry sweep, the replication of
// session uses, leadership and freshness tracking, and the watch on a
// silent leader.
func (g *raftGroup) startLoops(leadership <-chan bool) {
	g.node.wg.Add(6)
	go g.proposeLoop()
	go g.sweepExpired()
	go g.flushTouches()
	go g.observeLeadership(leadership)
	go g.keepFresh()
	go g.watchLeader()
	if g.node.cfg.regional() && g.isRegionGroup() {
		g.node.wg.Add(2)
		go g.mirrorPolicy()
		go g.importLegacyUsers()
	}
}

// logger is Raft's logger for the group: the node's, naming the group when
// the node hosts several.
func (g *raftGroup) logger(hlog hclog.Logger) hclog.Logger {
	if g.name == defaultGroup {
		return hlog
	}
	return hlog.With("group", g.name)
}

// shutdown stops the group's Raft and its network transport.
func (g *raftGroup) shutdown() error {
	var errs []error
	if g.raft != nil {
		errs = append(errs, g.raft.Shutdown().Error())
	}
	if g.trans != nil {
		errs = append(errs, g.trans.Close())
	}
	return errors.Join(errs...)
}

// closeStores closes the group's log and stable store.
func (g *raftGroup) closeStores() error {
	if g.store == nil {
		return nil
	}
	return g.store.Close()
}
