package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/hashicorp/raft"

	"github.com/sessiond/sessiond/fsm"
	"github.com/sessiond/sessiond/node/password"
	"github.com/sessiond/sessiond/transport"
)

// ErrDataDirInUse reports that another process holds the data dir's Raft
// database open.
var ErrDataDirInUse = errors.New("node: data dir is in use by another process")

// Node is one running sessiond node: the shared transport, gossip and
// metrics, and the Raft group it takes part in (raftgroup.go).
type Node struct {
	cfg    Config
	log    *slog.Logger
	mux    *transport.Transport // Raft and forwarding traffic on one port
	rpc    *transport.RPCClient // forwarding to the leader
	gossip *gossip              // nil when discovery is off
	nodeID raft.ServerID

	// The node's own group: the one group of a single-region cluster, or
	// with regions this node's region's group. Its fields (raft, fsm,
	// proposals, fresh, ...) read as the node's own.
	*raftGroup
	// groups are the groups hosted here by name, the own group included
	// (groups.go), and groupList the same in a fixed order (regions by
	// name, then the global group).
	groups    map[string]*raftGroup
	groupList []*raftGroup
	// global is the global group (policy and directory) of a cluster with
	// regions; nil without (regions.go).
	global *raftGroup
	// legacyHere: this node's region's group is the data a single-region
	// cluster left at the top of the data dir (regions.go).
	legacyHere bool

	// metrics is the node's Prometheus registry and instruments.
	metrics *metrics

	stop     chan struct{} // closed by Close
	stopCtx  context.Context
	stopNow  context.CancelFunc
	wg       sync.WaitGroup
	closeMu  sync.Mutex
	closed   bool
	closeErr error
}

// New opens the data dir, starts Raft and, when this node has no Raft state
// yet, bootstraps a single-node cluster of itself.
func New(cfg Config) (*Node, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	log := cfg.Logger.With("subsystem", "node")
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("node: create data dir: %w", err)
	}
	n := &Node{cfg: cfg, log: log, nodeID: raft.ServerID(cfg.NodeID), stop: make(chan struct{})}
	n.stopCtx, n.stopNow = context.WithCancel(context.Background())
	if n.cfg.Passwords == nil {
		n.cfg.Passwords = password.NewHasher(password.DefaultParams, 0)
	}
	if n.cfg.Clock == nil {
		n.cfg.Clock = time.Now
	}
	if cfg.regional() {
		if err := n.openRegionGroups(); err != nil {
			return nil, err
		}
	} else {
		if _, err := os.Stat(filepath.Join(cfg.DataDir, "groups")); err == nil {
			return nil, fmt.Errorf("node: %s holds the groups of a cluster with regions: start this node with the same --regions as before", cfg.DataDir)
		}
		n.raftGroup = newRaftGroup(n, defaultGroup, cfg.DataDir)
		n.groups = map[string]*raftGroup{defaultGroup: n.raftGroup}
		n.groupList = []*raftGroup{n.raftGroup}
	}
	n.metrics = newMetrics(n)

	// The groups' files first: a data dir another process holds is
	// refused before this node binds its port.
	hlog := newHCLog(cfg.Logger, "raft")
	ok := false
	defer func() {
		if !ok {
			n.stopNow()
			n.closeResources()
		}
	}()
	for _, g := range n.groupList {
		g.openFSM()
		if err := os.MkdirAll(g.dir, 0o700); err != nil {
			return nil, fmt.Errorf("node: create group dir: %w", err)
		}
		if err := g.openStores(cfg.SnapshotsRetained, g.logger(hlog), log); err != nil {
			return nil, err
		}
	}

	var err error
	n.mux, err = transport.Listen(transport.Config{
		BindAddr: cfg.RaftAddr,
		TLS:      cfg.TLS,
		Faults:   cfg.Faults,
		Logger:   cfg.Logger,
	})
	if err != nil {
		return nil, fmt.Errorf("node: raft listener: %w", err)
	}
	advertise, err := cfg.advertiseFor(n.mux.Addr())
	if err != nil {
		return nil, err
	}
	if err := n.mux.SetAdvertise(advertise); err != nil {
		return nil, err
	}
	n.rpc = transport.NewRPCClient(n.mux)
	localAddr := advertise
	leaderships := make([]chan bool, len(n.groupList))
	hasState := false
	for i, g := range n.groupList {
		stream, err := g.streamLayer(n.mux)
		if err != nil {
			return nil, err
		}
		groupHasState, leadership, err := g.startRaft(g.logger(hlog), stream)
		if err != nil {
			return nil, err
		}
		leaderships[i] = leadership
		g.bootstrapped.Store(groupHasState || cfg.BootstrapSelf)
		hasState = hasState || groupHasState
	}
	// Served only from here on: the handlers need Raft. A peer calling
	// earlier finds its connection closed and retries.
	n.mux.HandleRPC(transport.NewRPCServer(n.stopCtx, map[string]transport.Handler{
		rpcApply:        n.serveApply,
		rpcHello:        n.serveHello,
		rpcReadIndex:    n.serveReadIndex,
		rpcRemoveMember: n.serveRemoveMember,
	}).ServeConn)
	if !hasState && cfg.BootstrapSelf {
		log.Info("bootstrapping a new single-node cluster", "node_id", cfg.NodeID, "raft_addr", localAddr)
		if err := n.bootstrapAlone(localAddr); err != nil {
			return nil, err
		}
	}
	lastIndex := n.raft.LastIndex()
	if cfg.GossipAddr != "" {
		if err := n.startGossip(); err != nil {
			return nil, err
		}
	}
	log.Info("node started", "node_id", cfg.NodeID, "raft_addr", localAddr,
		"data_dir", cfg.DataDir, "last_index", lastIndex, "existing_state", hasState, "regions", cfg.Regions)

	for i, g := range n.groupList {
		g.startLoops(leaderships[i])
	}
	ok = true
	return n, nil
}

// FSM is the node's state machine, for reads.
func (g *raftGroup) FSM() *fsm.FSM { return g.fsm }

// ID is the node's id.
func (n *Node) ID() string { return n.cfg.NodeID }

// IsLeader reports whether this node is the Raft leader.
func (g *raftGroup) IsLeader() bool { return g.raft.State() == raft.Leader }

// Leader is the leader's Raft address and id, empty when none is known.
func (g *raftGroup) Leader() (addr, id string) {
	a, i := g.raft.LeaderWithID()
	return string(a), string(i)
}

// AppliedIndex is the last index applied to the local state machine.
func (g *raftGroup) AppliedIndex() uint64 { return g.fsm.AppliedIndex() }

// LastContact is the time since this node last heard from the leader: zero
// on the leader itself, and the time since start when it never has.
func (g *raftGroup) LastContact() time.Duration {
	if g.IsLeader() {
		return 0
	}
	last := g.raft.LastContact()
	if last.IsZero() {
		return -1
	}
	return time.Since(last)
}

// Ready reports whether the node can serve validations from its own state: a
// leader is known and the node vouches (Fresh). A node that starts, replays
// its log, receives a snapshot, has been cut off or lags behind a backlog is
// not ready until it has caught up.
func (g *raftGroup) Ready() bool {
	if addr, _ := g.Leader(); addr == "" {
		return false
	}
	return g.Fresh()
}

// RaftState is the node's Raft role, term and indexes.
type RaftState struct {
	State        string
	Term         uint64
	CommitIndex  uint64
	AppliedIndex uint64
	LastIndex    uint64
}

// RaftStatus reports the node's Raft role and indexes.
func (g *raftGroup) RaftStatus() RaftState {
	stats := g.raft.Stats()
	var term, commit uint64
	fmt.Sscan(stats["term"], &term)
	fmt.Sscan(stats["commit_index"], &commit)
	return RaftState{
		State:        g.raft.State().String(),
		Term:         term,
		CommitIndex:  commit,
		AppliedIndex: g.raft.AppliedIndex(),
		LastIndex:    g.raft.LastIndex(),
	}
}

// Snapshot asks Raft to take a snapshot now (operators, tests).
func (g *raftGroup) Snapshot() error { return g.raft.Snapshot().Error() }

// Close shuts the node down: background work, Raft, the transport and the
// log store, in that order. It is safe to call more than once.
func (n *Node) Close() error {
	n.closeMu.Lock()
	defer n.closeMu.Unlock()
	if n.closed {
		return n.closeErr
	}
	n.closed = true
	for _, g := range n.groupList {
		if g.IsLeader() {
			g.handOverLeadership()
		}
	}
	if n.gossip != nil {
		n.gossip.stop()
	}
	close(n.stop)
	n.stopNow()
	n.wg.Wait()
	n.closeErr = n.closeResources()
	n.log.Info("node stopped")
	return n.closeErr
}

// handOverLeadership asks Raft to make another voter leader before this one
// stops, so that writes pause for a transfer instead of an election.
func (g *raftGroup) handOverLeadership() {
	servers, err := g.Servers()
	if err != nil {
		return
	}
	voters := 0
	for _, s := range servers {
		if s.Voter {
			voters++
		}
	}
	if voters < 2 {
		return
	}
	if err := g.raft.LeadershipTransfer().Error(); err != nil {
		g.node.log.Warn("leadership transfer before shutdown failed", "error", err)
		return
	}
	g.node.log.Info("handed leadership over before shutting down")
}

func (n *Node) closeResources() error {
	var errs []error
	if n.rpc != nil {
		n.rpc.Close()
	}
	for _, g := range n.groupList {
		errs = append(errs, g.shutdown())
	}
	if n.mux != nil {
		errs = append(errs, n.mux.Close()) // a second Close is harmless
	}
	for _, g := range n.groupList {
		errs = append(errs, g.closeStores())
	}
	return errors.Join(errs...)
}

// LastSnapshotIndex is the index of the newest snapshot this node holds
// (taken itself or installed from the leader); 0 when none.
func (g *raftGroup) LastSnapshotIndex() uint64 {
	var idx uint64
	fmt.Sscan(g.raft.Stats()["last_snapshot_index"], &idx)
	return idx
}
