package node

import (
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/raft"
)

// ErrNotLeader is returned by configuration changes on a follower.
var ErrNotLeader = errors.New("node: not the leader")

// membershipTimeout bounds one Raft configuration change.
const membershipTimeout = 10 * time.Second

// AddServer adds a node to the Raft configuration as a voter or, for a read
// replica, a non-voter. Only the leader can; adding a server already present
// with the same address and role changes nothing.
func (n *Node) AddServer(id, addr string, voter bool) error {
	if !n.IsLeader() {
		return ErrNotLeader
	}
	var f raft.IndexFuture
	if voter {
		f = n.raft.AddVoter(raft.ServerID(id), raft.ServerAddress(addr), 0, membershipTimeout)
	} else {
		f = n.raft.AddNonvoter(raft.ServerID(id), raft.ServerAddress(addr), 0, membershipTimeout)
	}
	if err := f.Error(); err != nil {
		return fmt.Errorf("node: add %s at %s: %w", id, addr, err)
	}
	n.log.Info("added a server to the cluster", "server_id", id, "addr", addr, "voter", voter)
	return nil
}

// RemoveServer removes a node from the Raft configuration. Only the leader can.
func (n *Node) RemoveServer(id string) error {
	if !n.IsLeader() {
		return ErrNotLeader
	}
	if err := n.raft.RemoveServer(raft.ServerID(id), 0, membershipTimeout).Error(); err != nil {
		return fmt.Errorf("node: remove %s: %w", id, err)
	}
	n.log.Info("removed a server from the cluster", "server_id", id)
	return nil
}

// Server is one entry of the Raft configuration.
type Server struct {
	ID    string
	Addr  string
	Voter bool
}

// Servers is the current Raft configuration.
func (n *Node) Servers() ([]Server, error) {
	f := n.raft.GetConfiguration()
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
