package node

import (
	"errors"
	"slices"
	"strings"

	"github.com/hashicorp/raft"
)

// Bootstrapping a cluster of BootstrapExpect nodes that start together, none
// with Raft state (with regions: BootstrapExpect voters in each region,
// each group bootstrapped on its own, see bootstrapVoters). (A lone node bootstraps itself in New: BootstrapSelf.)
// Each announces the number it expects in its gossip metadata; once that
// many alive voters announcing the same number are seen, the one with the
// lowest id bootstraps Raft with exactly those voters and the others wait
// for its AppendEntries. One fixed choice rather than a race: nodes that see
// the same members agree on who bootstraps, so they form one cluster, not
// several. A node stops waiting once it hears of a leader or finds a Raft
// configuration. reconcileLoop (reconcile.go) calls in here while
// awaitingBootstrap holds.

// awaitingBootstrap reports whether this node waits for BootstrapExpect
// voters before group rg exists.
func (g *gossip) awaitingBootstrap(rg *raftGroup) bool {
	if g.n.cfg.BootstrapExpect == 0 || rg.bootstrapped.Load() {
		return false
	}
	if addr, _ := rg.Leader(); addr != "" {
		rg.bootstrapped.Store(true)
		return false
	}
	servers, err := rg.Servers()
	if err == nil && len(servers) > 0 {
		rg.bootstrapped.Store(true)
		return false
	}
	return true
}

// tryBootstrap: once the voters group rg starts with are seen (see
// bootstrapVoters), the one with the lowest id bootstraps Raft with exactly
// them. The others wait for its AppendEntries.
func (g *gossip) tryBootstrap(rg *raftGroup) {
	voters := g.bootstrapVoters(rg)
	if len(voters) == 0 || voters[0].ID != g.n.cfg.NodeID {
		return // the lowest id bootstraps
	}
	cfg := raft.Configuration{}
	for _, m := range voters {
		cfg.Servers = append(cfg.Servers, raft.Server{ID: raft.ServerID(m.ID), Address: raft.ServerAddress(m.RaftAddr), Suffrage: raft.Voter})
	}
	err := rg.raft.BootstrapCluster(cfg).Error()
	switch {
	case err == nil:
		g.n.log.Info("bootstrapped the cluster", "group", rg.name, "voters", len(cfg.Servers))
		rg.bootstrapped.Store(true)
	case errors.Is(err, raft.ErrCantBootstrap):
		rg.bootstrapped.Store(true)
	default:
		g.n.log.Warn("bootstrap failed", "group", rg.name, "error", err)
	}
}

// bootstrapVoters are the voters group rg starts with, sorted by id, or
// nil while too few alive voters announcing this node's BootstrapExpect
// are seen. In a single-region cluster that is BootstrapExpect of them.
// With regions BootstrapExpect counts the voters of each region: a region's
// group starts with its region's, and the global group, once every region
// has its voters, with those pickGlobalVoters chooses among them.
func (g *gossip) bootstrapVoters(rg *raftGroup) []Member {
	expect := g.n.cfg.BootstrapExpect
	byRegion := make(map[string][]Member)
	var all []Member
	for _, m := range g.members() { // sorted by id
		if m.Status == "alive" && m.Voter && g.expectOf(m.ID) == expect && g.sameRegions(m.ID) {
			byRegion[m.Region] = append(byRegion[m.Region], m)
			all = append(all, m)
		}
	}
	switch {
	case !g.n.cfg.regional():
		if len(all) < expect {
			return nil
		}
		return all[:expect]
	case rg.isRegionGroup():
		if len(byRegion[rg.name]) < expect {
			return nil
		}
		return byRegion[rg.name][:expect]
	}
	var candidates []Member
	for _, region := range g.n.cfg.Regions {
		if len(byRegion[region]) < expect {
			return nil
		}
		candidates = append(candidates, byRegion[region][:expect]...)
	}
	return pickGlobalVoters(candidates, nil)
}

// maxGlobalVoters caps the global group's voters.
const maxGlobalVoters = 5

// pickGlobalVoters chooses the global group's voters: every current one
// (a voter is never dropped here; one dead for long is removed as any
// member is, deadmembers.go), then candidates one at a time from the
// region with the fewest chosen so far (ties by region name, within a
// region by id), up to maxGlobalVoters. Spread so, losing any one region of
// three or more leaves a quorum. The result is sorted by id; every node
// seeing the same members picks the same.
func pickGlobalVoters(candidates []Member, current []Member) []Member {
	chosen := make(map[string]bool)
	count := make(map[string]int)
	out := slices.Clone(current)
	for _, m := range current {
		chosen[m.ID] = true
		count[m.Region]++
	}
	waiting := make(map[string][]Member)
	var regions []string
	for _, m := range candidates {
		if chosen[m.ID] {
			continue
		}
		if _, ok := waiting[m.Region]; !ok {
			regions = append(regions, m.Region)
		}
		waiting[m.Region] = append(waiting[m.Region], m)
	}
	for _, r := range regions {
		slices.SortFunc(waiting[r], func(a, b Member) int { return strings.Compare(a.ID, b.ID) })
	}
	for len(out) < maxGlobalVoters {
		best := ""
		for _, r := range regions {
			if len(waiting[r]) == 0 {
				continue
			}
			if best == "" || count[r] < count[best] || (count[r] == count[best] && r < best) {
				best = r
			}
		}
		if best == "" {
			break
		}
		m := waiting[best][0]
		waiting[best] = waiting[best][1:]
		out = append(out, m)
		chosen[m.ID] = true
		count[best]++
	}
	slices.SortFunc(out, func(a, b Member) int { return strings.Compare(a.ID, b.ID) })
	return out
}
