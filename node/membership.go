package node

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/raft"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/sessiond/sessiond/transport"
)

// ErrNotLeader is returned by configuration changes on a follower.
var ErrNotLeader = errors.New("node: not the leader")

// membershipTimeout bounds one Raft configuration change.
const membershipTimeout = 10 * time.Second

// AddServer adds a node to the Raft configuration as a voter or, for a read
// replica, a non-voter. Only the leader can; adding a server already present
// with the same address and role changes nothing.
func (g *raftGroup) AddServer(id, addr string, voter bool) error {
	if !g.IsLeader() {
		return ErrNotLeader
	}
	if id != g.node.cfg.NodeID && (g.node.gossip == nil || !g.node.gossip.readsBatches(id)) {
		// Stop packing before the server can receive entries written from
		// now on, and until it is in the configuration, where
		// updateBatchEntries sees it (see there).
		g.batchMu.Lock()
		g.adding[id]++
		if g.batchEntries.Swap(false) {
			g.node.log.Warn("adding a server not known to read batch entries: writes are no longer packed", "server_id", id)
		}
		g.batchMu.Unlock()
		defer func() {
			g.batchMu.Lock()
			if g.adding[id]--; g.adding[id] == 0 {
				delete(g.adding, id)
			}
			g.batchMu.Unlock()
		}()
	}
	var f raft.IndexFuture
	if voter {
		f = g.raft.AddVoter(raft.ServerID(id), raft.ServerAddress(addr), 0, membershipTimeout)
	} else {
		f = g.raft.AddNonvoter(raft.ServerID(id), raft.ServerAddress(addr), 0, membershipTimeout)
	}
	if err := f.Error(); err != nil {
		return fmt.Errorf("node: add %s at %s: %w", id, addr, err)
	}
	g.node.log.Info("added a server to the cluster", "server_id", id, "addr", addr, "voter", voter)
	return nil
}

// RemoveServer removes a node from the Raft configuration. Only the leader can.
func (g *raftGroup) RemoveServer(id string) error {
	if !g.IsLeader() {
		return ErrNotLeader
	}
	if err := g.raft.RemoveServer(raft.ServerID(id), 0, membershipTimeout).Error(); err != nil {
		return fmt.Errorf("node: remove %s: %w", id, err)
	}
	g.node.log.Info("removed a server from the cluster", "server_id", id)
	return nil
}

// Server is one entry of the Raft configuration.
type Server struct {
	ID    string
	Addr  string
	Voter bool
}

// Servers is the current Raft configuration.
func (g *raftGroup) Servers() ([]Server, error) {
	f := g.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return nil, err
	}
	var out []Server
	for _, s := range f.Configuration().Servers {
		out = append(out, Server{ID: string(s.ID), Addr: string(s.Address), Voter: s.Suffrage == raft.Voter})
	}
	return out, nil
}

// RaftAddr is the address other nodes reach this node's Raft and RPC at.
func (n *Node) RaftAddr() string { return n.mux.Addr() }

// ClusterStatus is this node's view of the cluster.
type ClusterStatus struct {
	NodeID       string
	Region       string
	LeaderID     string
	LeaderAddr   string
	State        string
	Term         uint64
	AppliedIndex uint64
	CommitIndex  uint64
	LastContact  time.Duration // -1 when never heard from a leader
	Members      []MemberStatus
	// Groups lists every Raft group this node hosts, in a cluster with
	// regions (the fields above are then its own region's group); nil in
	// a single-region cluster.
	Groups []GroupStatus
	// ImportRegion, when not empty, is the region whose group a
	// single-region cluster's data became; ImportDone says whether its users
	// are all listed in the directory (docs/regions.md#upgrading).
	ImportRegion string
	ImportDone   bool
}

// GroupStatus is this node's view of one Raft group.
type GroupStatus struct {
	// Name is the region, or "global".
	Name         string
	LeaderID     string
	LeaderAddr   string
	State        string // this node's role in the group
	Term         uint64
	AppliedIndex uint64
	CommitIndex  uint64
	LastContact  time.Duration // -1 when never heard from a leader
	// Fresh: this node vouches from its copy of the group (vouch.go).
	Fresh bool
	// Voters and Replicas (non-voters) are the group's configuration, by
	// id.
	Voters   []string
	Replicas []string
}

// status is this node's view of the group.
func (g *raftGroup) status() GroupStatus {
	rs := g.RaftStatus()
	addr, id := g.Leader()
	st := GroupStatus{Name: g.name, LeaderID: id, LeaderAddr: addr, State: rs.State, Term: rs.Term,
		AppliedIndex: rs.AppliedIndex, CommitIndex: rs.CommitIndex, LastContact: g.LastContact(), Fresh: g.Fresh()}
	servers, _ := g.Servers()
	for _, s := range servers {
		if s.Voter {
			st.Voters = append(st.Voters, s.ID)
		} else {
			st.Replicas = append(st.Replicas, s.ID)
		}
	}
	slices.Sort(st.Voters)
	slices.Sort(st.Replicas)
	return st
}

// MemberStatus merges a node's Raft role with what gossip says of it.
type MemberStatus struct {
	ID       string
	RaftAddr string
	HTTPAddr string
	Region   string
	Voter    bool
	// InRaft: part of the Raft configuration (a member seen by gossip may
	// not be added yet).
	InRaft bool
	Leader bool
	// Status is alive or dead (gossip reports no suspicion to its users, and a
	// member that left shows as dead); a Raft server that gossip does
	// not know is dead.
	Status string
}

// ClusterStatus reports the node's Raft state and the members.
func (n *Node) ClusterStatus() ClusterStatus {
	rs := n.RaftStatus()
	leaderAddr, leaderID := n.Leader()
	st := ClusterStatus{
		NodeID: n.cfg.NodeID, Region: n.cfg.Region, LeaderID: leaderID, LeaderAddr: leaderAddr,
		State: rs.State, Term: rs.Term, AppliedIndex: rs.AppliedIndex, CommitIndex: rs.CommitIndex,
		LastContact: n.LastContact(),
	}
	byID := map[string]*MemberStatus{}
	servers, _ := n.Servers()
	for _, s := range servers {
		m := &MemberStatus{ID: s.ID, RaftAddr: s.Addr, Voter: s.Voter, InRaft: true, Leader: s.ID == leaderID, Status: "dead"}
		if s.ID == n.cfg.NodeID {
			m.Status, m.Region, m.HTTPAddr = "alive", n.cfg.Region, n.cfg.HTTPAddr
		}
		byID[s.ID] = m
	}
	for _, g := range n.Members() {
		m, ok := byID[g.ID]
		if !ok {
			m = &MemberStatus{ID: g.ID, RaftAddr: g.RaftAddr, Voter: g.Voter}
			byID[g.ID] = m
		}
		m.HTTPAddr, m.Region, m.Status = g.HTTPAddr, g.Region, g.Status
		if n.cfg.regional() {
			// With regions a member votes in its own region's group, not
			// in this node's: say what it announced.
			m.Voter = g.Voter
		}
	}
	for _, m := range byID {
		st.Members = append(st.Members, *m)
	}
	slices.SortFunc(st.Members, func(a, b MemberStatus) int { return strings.Compare(a.ID, b.ID) })
	if n.cfg.regional() {
		for _, g := range n.groupList {
			st.Groups = append(st.Groups, g.status())
		}
		st.ImportRegion = n.legacyRegion()
		_, st.ImportDone = n.global.fsm.Import()
	}
	return st
}

const rpcRemoveMember = "remove_member"

type removeMemberRequest struct {
	// Group names the group to remove the member from; empty is the default
	// group (and is left out on the wire, as earlier versions send it).
	Group string `msgpack:"group,omitempty"`
	ID    string `msgpack:"id"`
}

// ErrUnknownMember: no server with that id in the Raft configuration.
var ErrUnknownMember = errors.New("node: no such member")

// RemoveMember removes a server from the Raft configuration, through the
// leader wherever it is called; with regions, from every group that has it.
// A node that is still running and gossiping is added back by the leader:
// stop a node before removing it.
func (n *Node) RemoveMember(ctx context.Context, id string) error {
	found := false
	for _, g := range n.groupList {
		servers, err := g.Servers()
		if err != nil {
			return fmt.Errorf("%w: %v", ErrUnavailable, err)
		}
		if !slices.ContainsFunc(servers, func(s Server) bool { return s.ID == id }) {
			continue
		}
		found = true
		if err := g.removeMember(ctx, id); err != nil {
			return err
		}
	}
	if !found {
		return ErrUnknownMember
	}
	return nil
}

// removeMember removes a server from the group's configuration through its
// leader.
func (g *raftGroup) removeMember(ctx context.Context, id string) error {
	leaderAddr, err := g.waitForLeader(ctx)
	if err != nil {
		return err
	}
	if leaderAddr == "" {
		if err := g.RemoveServer(id); err != nil {
			return fmt.Errorf("%w: %v", ErrUnavailable, err)
		}
		return nil
	}
	if err := g.node.rpc.Call(ctx, leaderAddr, rpcRemoveMember, removeMemberRequest{Group: g.name, ID: id}, nil); err != nil {
		return fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	return nil
}

func (n *Node) serveRemoveMember(_ context.Context, _ string, dec *msgpack.Decoder) (any, error) {
	var req removeMemberRequest
	if err := dec.Decode(&req); err != nil {
		return nil, err
	}
	g, err := n.hostedGroup(req.Group)
	if err != nil {
		return nil, err
	}
	if err := g.RemoveServer(req.ID); err != nil {
		if errors.Is(err, ErrNotLeader) {
			return nil, &transport.RemoteError{Code: rpcCodeNotLeader, Message: err.Error()}
		}
		return nil, &transport.RemoteError{Code: rpcCodeUnavailable, Message: err.Error()}
	}
	return struct{}{}, nil
}
