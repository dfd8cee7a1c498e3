package node

import "time"

// Removing dead members from the Raft configuration, on the leader, as part
// of each reconcile (reconcile.go). A member is removed once it has been
// dead, gone or unknown to gossip for DeadNodeTimeout: gossip declares a
// member dead within seconds, and a node that is restarting or briefly cut
// off must not lose its place for that. The cap keeps a flapping network
// from shrinking the cluster unsafely: a voter is removed only while the
// voters left keep a quorum of live ones and number three or more (or as
// many as the cluster had, if fewer), and at most one server goes per
// round, so each removal is decided on a configuration that includes the
// previous one.
//
// deadSince, under gossip.mu, is used only here.

// trackDead notes when each member not alive was first seen so, and
// forgets the members alive again.
func (g *gossip) trackDead(members []Member, now time.Time) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, m := range members {
		if m.Status == "alive" {
			delete(g.deadSince, m.ID)
		} else if _, ok := g.deadSince[m.ID]; !ok {
			g.deadSince[m.ID] = now
		}
	}
}

// removeLongDead removes from group rg's Raft configuration the servers whose member has been dead,
// left or unknown to gossip for longer than DeadNodeTimeout. A voter is
// removed only if the remaining voters keep a quorum of live ones and stay
// at three or more (or as many as the cluster had, if fewer), one removal
// per round, so a flapping network cannot shrink the cluster unsafely.
func (g *gossip) removeLongDead(rg *raftGroup, servers []Server, members map[string]Member, now time.Time) {
	g.mu.Lock()
	defer g.mu.Unlock()
	voters, aliveVoters := 0, 0
	for _, s := range servers {
		if !s.Voter {
			continue
		}
		voters++
		if m, ok := members[s.ID]; (ok && m.Status == "alive") || s.ID == g.n.cfg.NodeID {
			aliveVoters++
		}
	}
	for _, s := range servers {
		if s.ID == g.n.cfg.NodeID {
			continue
		}
		if m, ok := members[s.ID]; ok && m.Status == "alive" {
			continue
		}
		since, ok := g.deadSince[s.ID]
		if !ok {
			g.deadSince[s.ID] = now // unknown to gossip: start counting
			continue
		}
		if now.Sub(since) < g.n.cfg.DeadNodeTimeout {
			continue
		}
		if s.Voter {
			remaining := voters - 1
			if remaining < min(3, voters) || aliveVoters <= remaining/2 {
				continue
			}
		}
		if err := rg.RemoveServer(s.ID); err != nil {
			g.n.log.Warn("removing a dead member", "group", rg.name, "member", s.ID, "error", err)
			return
		}
		// deadSince keeps the member: the node's other groups remove it
		// too, on the same clock. It goes when the member is alive again.
		return
	}
}
