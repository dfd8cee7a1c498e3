package node

import (
	"context"
	"fmt"
	"time"

	"github.com/vmihailenco/msgpack/v5"
)

// The leader's reconciliation of the Raft configuration with the members
// gossip sees. reconcileLoop runs on every node, on each membership change
// and every ReconcileInterval; before a cluster exists it bootstraps
// (bootstrap.go), after that only the leader acts. It adds each alive
// member missing from Raft, or there with another address or role, and
// removes members dead for too long (deadmembers.go).
//
// Gossip metadata only says who a member claims to be. Before adding one,
// the leader dials the announced Raft address over the cluster transport
// (mutual TLS when configured) and checks that the node there answers with
// the announced id (rpcHello): a stale or mistaken record, such as an
// address now used by another node, never goes into the Raft
// configuration, and with mutual TLS neither does a node without the
// cluster's certificates. A member that does not read batch entries is not
// added (unless this node, too, predates them): it would stop at the first
// one it receives.

// reconcileLoop bootstraps the cluster's groups when BootstrapExpect says
// so and, on each group's leader, keeps the group's Raft configuration in
// line with the members.
func (g *gossip) reconcileLoop() {
	defer g.n.wg.Done()
	tick := time.NewTicker(g.n.cfg.ReconcileInterval)
	defer tick.Stop()
	fast := time.NewTicker(100 * time.Millisecond) // only while bootstrapping
	defer fast.Stop()
	bootstrapping := true
	for {
		select {
		case <-g.n.stop:
			return
		case <-g.events:
		case <-tick.C:
		case <-fast.C:
			if !bootstrapping {
				continue
			}
		}
		g.trackDead(g.members(), time.Now())
		waiting := false
		for _, rg := range g.n.groupList {
			if g.awaitingBootstrap(rg) {
				g.tryBootstrap(rg)
				waiting = true
				continue
			}
			if rg.IsLeader() {
				g.reconcile(rg)
			}
		}
		if bootstrapping && !waiting {
			bootstrapping = false
			fast.Stop()
		}
	}
}

// reconcile runs on the leader of group rg: add live members missing from
// its Raft configuration or there in another role (after confirming who
// they are over the authenticated RPC), remove members dead for too long
// when quorum allows.
func (g *gossip) reconcile(rg *raftGroup) {
	gen := rg.leaderGen.Load()
	servers, err := rg.Servers()
	if err != nil {
		return
	}
	inRaft := make(map[string]Server, len(servers))
	for _, s := range servers {
		inRaft[s.ID] = s
	}
	rg.updateBatchEntries(gen)
	members := g.members()
	byID := make(map[string]Member, len(members))
	for _, m := range members {
		byID[m.ID] = m
	}
	votes := g.voterRule(rg, servers, members)

	for _, m := range members {
		if m.Status != "alive" || m.ID == g.n.cfg.NodeID {
			continue
		}
		voter := votes(m)
		s, ok := inRaft[m.ID]
		if ok && s.Addr == m.RaftAddr && s.Voter == voter {
			continue
		}
		if !g.sameRegions(m.ID) {
			g.warnOnce(m.ID, "not adding a member whose --regions differ from this node's: start every node with the same list", "member", m.ID, "regions", g.n.cfg.Regions)
			continue
		}
		if !g.readsBatches(m.ID) && !g.n.cfg.noBatchEntries {
			// A version without batch entries would stop at the first one
			// in the log it receives; there may be some already.
			g.warnOnce(m.ID, "not adding a member of an older version: it cannot read batch entries; upgrade it", "member", m.ID)
			continue
		}
		if err := g.confirmIdentity(m); err != nil {
			g.n.log.Warn("not adding a member that did not confirm its identity", "member", m.ID, "error", err)
			continue
		}
		if ok && s.Voter && !voter {
			// Raft cannot demote in place; remove and add with the new role.
			if err := rg.RemoveServer(m.ID); err != nil {
				g.n.log.Warn("changing a member's role", "group", rg.name, "member", m.ID, "error", err)
				continue
			}
		}
		if err := rg.AddServer(m.ID, m.RaftAddr, voter); err != nil {
			g.n.log.Warn("adding a member", "group", rg.name, "member", m.ID, "error", err)
		}
	}
	g.removeLongDead(rg, servers, byID, time.Now())
}

// voterRule says which members vote in group rg. In a single-region
// cluster every member started as a voter does. A region's group has its
// region's voters vote and replicates to every other member. The global
// group keeps its voters and adds live ones, picked across the regions
// (pickGlobalVoters), while it has fewer than maxGlobalVoters.
func (g *gossip) voterRule(rg *raftGroup, servers []Server, members []Member) func(Member) bool {
	switch {
	case !g.n.cfg.regional():
		return func(m Member) bool { return m.Voter }
	case rg.isRegionGroup():
		return func(m Member) bool { return m.Voter && m.Region == rg.name }
	}
	byID := make(map[string]Member, len(members))
	var candidates []Member
	for _, m := range members {
		byID[m.ID] = m
		if m.Status == "alive" && m.Voter {
			candidates = append(candidates, m)
		}
	}
	var current []Member
	for _, s := range servers {
		if s.Voter {
			m, ok := byID[s.ID]
			if !ok {
				m = Member{ID: s.ID}
			}
			current = append(current, m)
		}
	}
	picked := make(map[string]bool)
	for _, m := range pickGlobalVoters(candidates, current) {
		picked[m.ID] = true
	}
	return func(m Member) bool { return picked[m.ID] }
}

const rpcHello = "hello"

type helloResponse struct {
	ID string `msgpack:"id"`
}

// confirmIdentity dials a member's Raft address (mutual TLS when
// configured) and checks that the node there has the id it announced.
func (g *gossip) confirmIdentity(m Member) error {
	ctx, cancel := context.WithTimeout(g.n.stopCtx, 3*time.Second)
	defer cancel()
	var resp helloResponse
	if err := g.n.rpc.Call(ctx, m.RaftAddr, rpcHello, struct{}{}, &resp); err != nil {
		return err
	}
	if resp.ID != m.ID {
		return fmt.Errorf("announced id %q, answered %q", m.ID, resp.ID)
	}
	return nil
}

// serveHello answers confirmIdentity with this node's id.
func (n *Node) serveHello(_ context.Context, _ string, dec *msgpack.Decoder) (any, error) {
	if err := dec.Skip(); err != nil {
		return nil, err
	}
	return helloResponse{ID: n.cfg.NodeID}, nil
}
