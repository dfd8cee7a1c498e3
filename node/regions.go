package node

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"time"

	"github.com/sessiond/sessiond/events"
	"github.com/sessiond/sessiond/fsm"
	"github.com/sessiond/sessiond/transport"
)

// Regions (docs/regions.md). A cluster configured with two or more regions
// runs one Raft group per region and one global group, all on every node:
// a node votes in its own region's group and holds a non-voting replica of
// every other, so it validates any token from memory; the global group's
// voters are picked across the regions (reconcile.go). A user's sessions,
// credentials, lockout and limit live in the group of the user's home
// region; the global group holds the policy and the directory (user → home
// region, email → user). Session ids and tokens carry their region as a tag
// after the random part, so a write by token is routed with no lookup.
//
// A cluster with one region runs the one group it always ran, named
// defaultGroup, with its files at the top of the data dir, and mints
// untagged ids and tokens: it answers exactly as before regions existed.

// globalGroup names the group holding the policy and the directory.
const globalGroup = "global"

// regionTagSep separates an id's or a token's random part from its region.
const regionTagSep = '.'

// regional reports whether the configuration asks for region groups.
func (c Config) regional() bool { return len(c.Regions) > 1 }

// validateRegions checks Regions: valid group names, none twice, not the
// global group's name, and this node's own region among them.
func (c Config) validateRegions() error {
	if !c.regional() {
		return nil
	}
	seen := make(map[string]bool, len(c.Regions))
	for _, r := range c.Regions {
		if err := transport.ValidGroupName(r); err != nil {
			return fmt.Errorf("node: region %q: lower-case letters, digits, '-' and '.', at most 64 bytes", r)
		}
		if r == globalGroup {
			return fmt.Errorf("node: %q names the global group and cannot be a region", r)
		}
		if seen[r] {
			return fmt.Errorf("node: region %q is listed twice", r)
		}
		seen[r] = true
	}
	switch {
	case !seen[c.Region]:
		return fmt.Errorf("node: this node's region %q is not one of the cluster's regions %v", c.Region, c.Regions)
	case c.BootstrapSelf:
		return errors.New("node: a cluster of several regions is formed with bootstrap-expect (voters per region), not by one node alone")
	case c.GossipAddr == "":
		return errors.New("node: a cluster of several regions needs a gossip address")
	}
	return nil
}

// openRegionGroups creates the groups of a regional node: one per region
// and the global group, each under groups/<name>/ in the data dir. The
// embedded group becomes this node's own region's.
//
// A data dir a single-region node wrote (raft.db at its top) becomes this
// node's region's group, its files left where they are: the cluster it
// held is turned into that region's group, and its users are listed in the
// directory by importLegacyUsers. groups/legacy-region records which region
// that was, so that a later start in another region is refused.
func (n *Node) openRegionGroups() error {
	dirOf := func(name string) string { return filepath.Join(n.cfg.DataDir, "groups", name) }
	if _, err := os.Stat(filepath.Join(n.cfg.DataDir, "raft.db")); err == nil {
		if err := n.claimLegacyData(); err != nil {
			return err
		}
		dirOf = func(name string) string {
			if name == n.cfg.Region {
				return n.cfg.DataDir
			}
			return filepath.Join(n.cfg.DataDir, "groups", name)
		}
	}
	names := append(slices.Sorted(slices.Values(n.cfg.Regions)), globalGroup)
	n.groups = make(map[string]*raftGroup, len(names))
	for _, name := range names {
		g := newRaftGroup(n, name, dirOf(name))
		n.groups[name] = g
		n.groupList = append(n.groupList, g)
	}
	n.raftGroup = n.groups[n.cfg.Region]
	n.global = n.groups[globalGroup]
	return nil
}

// legacyMarker names the file recording which region a single-region data
// dir became.
const legacyMarker = "legacy-region"

// claimLegacyData makes the single-region data at the top of the data dir
// this node's region's group, or refuses when an earlier start made it
// another region's.
func (n *Node) claimLegacyData() error {
	marker := filepath.Join(n.cfg.DataDir, "groups", legacyMarker)
	if was, err := os.ReadFile(marker); err == nil {
		if string(was) != n.cfg.Region {
			return fmt.Errorf("node: the single-region data in %s became region %q's group: start this node with --region %s", n.cfg.DataDir, was, was)
		}
		n.legacyHere = true
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(marker), 0o700); err != nil {
		return fmt.Errorf("node: create groups dir: %w", err)
	}
	if err := os.WriteFile(marker, []byte(n.cfg.Region), 0o600); err != nil {
		return fmt.Errorf("node: record the region of the single-region data: %w", err)
	}
	n.log.Info("the single-region data in the data dir becomes this region's group; its users are listed in the directory once the cluster has formed",
		"region", n.cfg.Region, "data_dir", n.cfg.DataDir)
	n.legacyHere = true
	return nil
}

// legacyRegion is the region whose group a single-region cluster's data
// became, "" when the cluster was never one: as the directory records it
// once the import began, else as this node or a member announces it.
func (n *Node) legacyRegion() string {
	if !n.cfg.regional() {
		return ""
	}
	if region, _ := n.global.fsm.Import(); region != "" {
		return region
	}
	if n.legacyHere {
		return n.cfg.Region
	}
	if n.gossip != nil {
		return n.gossip.legacyRegion()
	}
	return ""
}

// pendingLegacyGroup is the group of the region a single-region cluster's
// data became while its users are not all in the directory yet; nil when
// there is none, or the import is done.
func (n *Node) pendingLegacyGroup() *raftGroup {
	region := n.legacyRegion()
	if region == "" {
		return nil
	}
	if _, done := n.global.fsm.Import(); done {
		return nil
	}
	g := n.groups[region]
	if g == nil || !g.isRegionGroup() {
		return nil
	}
	return g
}

// importBatch is how many users one DirectoryImported lists.
const importBatch = 256

// importLegacyUsers runs on each region group: the leader of the group a
// single-region cluster's data became lists every user it holds in the
// directory, with its email, in batches, the first one bringing the
// region's policy to the global group, until the directory says the import
// is done. Until then a node looks users it does not find in the directory
// up in that group (homeGroup), and policy changes wait.
func (g *raftGroup) importLegacyUsers() {
	n := g.node
	n.every(policyMirrorInterval, func(int64) {
		if !g.IsLeader() || !g.leaderReady.Load() || n.legacyRegion() != g.name || n.cfg.holdImport {
			return
		}
		if _, done := n.global.fsm.Import(); done {
			return
		}
		users := g.fsm.ImportCandidates()
		policy := g.fsm.Policy()
		total := len(users)
		ctx, cancel := context.WithTimeout(n.stopCtx, time.Minute)
		defer cancel()
		for first := true; ; first = false {
			batch := users[:min(len(users), importBatch)]
			users = users[len(batch):]
			ev := &events.DirectoryImported{Region: g.name, Users: batch, Done: len(users) == 0}
			if first {
				ev.Policy = &policy
			}
			if _, err := n.global.write(ctx, ev); err != nil {
				n.log.Warn("listing the single-region cluster's users in the directory stopped; it starts again", "region", g.name, "error", err)
				return
			}
			if len(users) == 0 {
				break
			}
		}
		n.log.Info("listed the single-region cluster's users in the directory", "region", g.name, "users", total)
	})
}

// isRegionGroup reports whether g holds sessions and users (a region's
// group, or the one group of a single-region cluster).
func (g *raftGroup) isRegionGroup() bool { return g.name != globalGroup }

// regionTag is what this group's ids and tokens end with: "" in a
// single-region cluster, else the separator and the region.
func (g *raftGroup) regionTag() string {
	if g.name == defaultGroup {
		return ""
	}
	return string(regionTagSep) + g.name
}

// groupOfTagged is the region group an id or token names: body is the
// length of its untagged form. In a single-region cluster that is the one
// group for untagged values; a value whose tag names no region of this
// cluster belongs to none (nil), and is then unknown.
func (n *Node) groupOfTagged(value string, body int) *raftGroup {
	if !n.cfg.regional() {
		if len(value) == body {
			return n.raftGroup
		}
		return nil
	}
	if len(value) == body {
		// Minted before the cluster had regions: the group its data
		// became holds it.
		if g := n.groups[n.legacyRegion()]; g != nil && g.isRegionGroup() {
			return g
		}
		return nil
	}
	if len(value) <= body+1 || value[body] != regionTagSep {
		return nil
	}
	g := n.groups[value[body+1:]]
	if g == nil || !g.isRegionGroup() {
		return nil
	}
	return g
}

// groupOfToken is the region group a token was minted in (nil: none).
func (n *Node) groupOfToken(token string) *raftGroup { return n.groupOfTagged(token, tokenLength) }

// groupOfSession is the region group a session id was minted in (nil:
// none).
func (n *Node) groupOfSession(id events.SessionID) *raftGroup {
	return n.groupOfTagged(string(id), sessionIDLength)
}

// TokenGroup names the group a token belongs to, for the read-consistency
// options: "" in a single-region cluster or for a token of no region.
func (n *Node) TokenGroup(token string) string {
	if g := n.groupOfToken(token); g != nil {
		return g.name
	}
	return ""
}

// SessionGroup names the group a session id belongs to (as TokenGroup).
func (n *Node) SessionGroup(id events.SessionID) string {
	if g := n.groupOfSession(id); g != nil {
		return g.name
	}
	return ""
}

// errNoHome: the user has no home region yet, and the caller did not ask
// for one to be set.
var errNoHome = errors.New("node: user has no home region")

// homeGroup is the group holding a user's state. In a single-region cluster
// it is the one group. With regions it is the user's home region's, looked
// up in this node's replica of the directory; a user it does not list may
// have been homed through another node a moment ago, so the node confirms
// with the global group's leader and looks again. A user with no home
// then is errNoHome, unless claim is set: the node proposes this node's
// region as the home, and the directory answers with the home that holds
// (the first write for a user wins; later ones find it). That costs one
// global round trip for a user's first write, none after.
func (n *Node) homeGroup(ctx context.Context, user events.UserID, claim bool) (home, error) {
	if !n.cfg.regional() {
		return home{raftGroup: n.raftGroup}, nil
	}
	if g := n.listedHome(user); g != nil {
		return n.settledHome(ctx, user, g)
	}
	if err := n.global.confirm(ctx); err != nil {
		return home{}, err
	}
	if g := n.listedHome(user); g != nil {
		return n.settledHome(ctx, user, g)
	}
	if lg := n.pendingLegacyGroup(); lg != nil {
		// Not listed yet, maybe because the import has not reached it.
		if err := lg.confirm(ctx); err != nil {
			return home{}, err
		}
		if lg.fsm.KnowsUser(user) {
			return home{raftGroup: lg}, nil
		}
	}
	if !claim {
		return home{}, errNoHome
	}
	return n.claimHome(ctx, user, n.cfg.Region)
}

// settledHome is g, the home the directory lists for user, or when g froze
// the user for a move, the new home once this node has finished the move.
func (n *Node) settledHome(ctx context.Context, user events.UserID, g *raftGroup) (home, error) {
	if _, _, moving := g.fsm.MovedTo(user); moving {
		return n.finishMove(ctx, user, g)
	}
	return home{raftGroup: g}, nil
}

// home is the group holding a user's state, and the global group's index
// of the directory entry the request wrote to find it (0: none).
type home struct {
	*raftGroup
	directory uint64
}

// indexOf is a write's index in the home group, naming the directory entry
// written before it.
func (h home) indexOf(n uint64) Index {
	i := h.index(n)
	i.Directory = h.directory
	return i
}

// claimHome proposes region as a user's home and returns the group of the
// home the directory holds after it.
func (n *Node) claimHome(ctx context.Context, user events.UserID, region string) (home, error) {
	res, err := n.global.write(ctx, &events.UserHomed{UserID: user, Region: region})
	if err != nil {
		return home{}, err
	}
	if g := n.listedHome(user); g != nil {
		return home{raftGroup: g, directory: res.Index}, nil
	}
	listed, _ := n.global.fsm.Home(user)
	return home{}, fmt.Errorf("%w: user's home region %q is not one of this node's regions %v", ErrUnavailable, listed, n.cfg.Regions)
}

// listedHome is the group of the home this node's directory lists for
// user; nil when it lists none (or names a region this node does not know,
// which a node configured with fewer regions than its peers would see).
func (n *Node) listedHome(user events.UserID) *raftGroup {
	home, ok := n.global.fsm.Home(user)
	if !ok {
		return nil
	}
	g := n.groups[home]
	if g == nil || !g.isRegionGroup() {
		return nil
	}
	return g
}

// localHome is the group this node's state says holds a user's state, with
// no confirmation: for reads served from memory. Nil for a user with no
// home.
func (n *Node) localHome(user events.UserID) *raftGroup {
	if !n.cfg.regional() {
		return n.raftGroup
	}
	if g := n.listedHome(user); g != nil {
		return n.localHolder(g, user)
	}
	if lg := n.pendingLegacyGroup(); lg != nil && lg.fsm.KnowsUser(user) {
		return lg
	}
	return nil
}

// HomeRegion is a user's home region as this node's directory lists it; ""
// in a single-region cluster or for a user with none.
func (n *Node) HomeRegion(user events.UserID) string {
	if !n.cfg.regional() {
		return ""
	}
	if g := n.localHome(user); g != nil {
		return g.name
	}
	return ""
}

// regionGroups are the groups holding sessions: every region's, or the one
// group of a single-region cluster.
func (n *Node) regionGroups() []*raftGroup {
	if !n.cfg.regional() {
		return []*raftGroup{n.raftGroup}
	}
	out := make([]*raftGroup, 0, len(n.groupList)-1)
	for _, g := range n.groupList {
		if g.isRegionGroup() {
			out = append(out, g)
		}
	}
	return out
}

// policyGroup is the group the policy is written to: the global group, or
// the one group of a single-region cluster.
func (n *Node) policyGroup() *raftGroup {
	if n.cfg.regional() {
		return n.global
	}
	return n.raftGroup
}

// How often a region group's leader compares its policy with the global
// one, and how long setting the policy waits for the regions to take it.
const (
	policyMirrorInterval = 500 * time.Millisecond
	policyPushWait       = time.Second
)

// mirrorPolicy runs on each region group: its leader copies the global
// group's policy into the region's log whenever the two differ, so that
// every region's state machine applies the policy at a point of its own log
// (deterministically on every replica). A region cut off from the rest
// keeps the policy it had until it hears of the new one.
func (g *raftGroup) mirrorPolicy() {
	n := g.node
	n.every(policyMirrorInterval, func(int64) {
		if !g.IsLeader() || n.pendingLegacyGroup() != nil {
			// During an import the global policy is about to become the
			// one of the region the single-region data became.
			return
		}
		p := n.global.fsm.Policy()
		if samePolicy(p, g.fsm.Policy()) {
			return
		}
		ctx, cancel := context.WithTimeout(n.stopCtx, n.cfg.LeaderWait)
		defer cancel()
		if _, err := g.write(ctx, &events.PolicySet{Policy: p}); err != nil {
			n.log.Warn("copying the policy into the region's group failed", "group", g.name, "error", err)
		}
	})
}

// samePolicy compares two policies by value; an empty list of app limits
// equals none (a policy read from a snapshot and one applied from the log
// may differ so, and must not make mirrorPolicy write forever).
func samePolicy(a, b fsm.Policy) bool {
	if !slices.Equal(a.AppMaxSessions, b.AppMaxSessions) {
		return false
	}
	a.AppMaxSessions, b.AppMaxSessions = nil, nil
	return reflect.DeepEqual(a, b)
}

// pushPolicy writes p into every region group at once after it was set in
// the global group, so that the new policy is in force in every region
// reachable now without waiting for mirrorPolicy; a region not reachable in
// time gets it from mirrorPolicy later.
func (n *Node) pushPolicy(ctx context.Context, p fsm.Policy) {
	ctx, cancel := context.WithTimeout(ctx, policyPushWait)
	defer cancel()
	groups := n.regionGroups()
	done := make(chan struct{}, len(groups))
	for _, g := range groups {
		go func() {
			defer func() { done <- struct{}{} }()
			if _, err := g.write(ctx, &events.PolicySet{Policy: p}); err != nil {
				n.log.Warn("policy not yet in force in a region; it follows when the region is reachable", "group", g.name, "error", err)
			}
		}()
	}
	for range groups {
		<-done
	}
}

// Groups names the Raft groups this node hosts, in a fixed order: regions
// by name, then the global group ("" alone in a single-region cluster).
func (n *Node) Groups() []string {
	out := make([]string, len(n.groupList))
	for i, g := range n.groupList {
		out[i] = g.name
	}
	return out
}

// GroupFSM is a hosted group's state machine, for reads (nil when the
// node hosts no such group).
func (n *Node) GroupFSM(name string) *fsm.FSM {
	if g, ok := n.groups[name]; ok {
		return g.fsm
	}
	return nil
}
