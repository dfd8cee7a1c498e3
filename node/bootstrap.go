package node

import (
	"errors"

	"github.com/hashicorp/raft"
)

// Bootstrapping a cluster of BootstrapExpect nodes that start together, none
// with Raft state. (A lone node bootstraps itself in New: BootstrapSelf.)
// Each announces the number it expects in its gossip metadata; once that
// many alive voters announcing the same number are seen, the one with the
// lowest id bootstraps Raft with exactly those voters and the others wait
// for its AppendEntries. One fixed choice rather than a race: nodes that see
// the same members agree on who bootstraps, so they form one cluster, not
// several. A node stops waiting once it hears of a leader or finds a Raft
// configuration. reconcileLoop (reconcile.go) calls in here while
// awaitingBootstrap holds.

// awaitingBootstrap reports whether this node waits for BootstrapExpect
// voters before a cluster exists.
func (g *gossip) awaitingBootstrap() bool {
	if g.n.cfg.BootstrapExpect == 0 || g.n.bootstrapped.Load() {
		return false
	}
	if addr, _ := g.n.Leader(); addr != "" {
		g.n.bootstrapped.Store(true)
		return false
	}
	servers, err := g.n.Servers()
	if err == nil && len(servers) > 0 {
		g.n.bootstrapped.Store(true)
		return false
	}
	return true
}

// tryBootstrap: once BootstrapExpect alive voters announcing the same
// expectation are seen, the one with the lowest id bootstraps Raft with
// exactly those voters. The others wait for its AppendEntries.
func (g *gossip) tryBootstrap() {
	expect := g.n.cfg.BootstrapExpect
	var voters []Member
	for _, m := range g.members() {
		if m.Status == "alive" && m.Voter {
			voters = append(voters, m)
		}
	}
	var agreeing []Member
	for _, m := range voters {
		if g.expectOf(m.ID) == expect {
			agreeing = append(agreeing, m)
		}
	}
	if len(agreeing) < expect {
		return
	}
	agreeing = agreeing[:expect] // sorted by id
	if agreeing[0].ID != g.n.cfg.NodeID {
		return // the lowest id bootstraps
	}
	cfg := raft.Configuration{}
	for _, m := range agreeing {
		cfg.Servers = append(cfg.Servers, raft.Server{ID: raft.ServerID(m.ID), Address: raft.ServerAddress(m.RaftAddr), Suffrage: raft.Voter})
	}
	err := g.n.raft.BootstrapCluster(cfg).Error()
	switch {
	case err == nil:
		g.n.log.Info("bootstrapped the cluster", "voters", len(cfg.Servers))
		g.n.bootstrapped.Store(true)
	case errors.Is(err, raft.ErrCantBootstrap):
		g.n.bootstrapped.Store(true)
	default:
		g.n.log.Warn("bootstrap failed", "error", err)
	}
}
