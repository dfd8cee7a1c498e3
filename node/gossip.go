package node

import (
	"errors"
	"fmt"
	"log"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/sessiond/sessiond/transport"
	"github.com/sessiond/sessiond/transport/msgpackcheck"
)

// Discovery. Nodes find each other with memberlist; each announces a small
// metadata record. This file starts memberlist and keeps this node's copy
// of the membership (the table) from its callbacks. What is built on the
// table has its own file: joining the seeds (join.go), bootstrapping the
// cluster (bootstrap.go), the leader's reconciliation of the Raft
// configuration with the live members (reconcile.go: it adds members it
// confirmed over the authenticated RPC, never on gossip metadata alone) and
// its removal of members dead for too long (deadmembers.go). memberlist's
// log reaches slog through gossiplog.go.
//
// Every access to the table, under tableMu, is in this file: memberlist's
// callbacks write it while holding memberlist's own lock, so keeping the
// lock's uses together keeps them short and free of calls into memberlist.

// memberMeta is what a node announces about itself in gossip. memberlist
// caps metadata at 512 bytes; it is checked at start.
type memberMeta struct {
	ID       string `msgpack:"i"`
	RaftAddr string `msgpack:"r"`
	HTTPAddr string `msgpack:"h"`
	Region   string `msgpack:"g"`
	Voter    bool   `msgpack:"v"`
	Expect   int    `msgpack:"e"`
	// Batches: the node reads batch entries (events.TypeBatch). Older
	// versions neither send nor know the field.
	Batches bool `msgpack:"b,omitempty"`
	// Regions is the node's --regions: every region of the cluster, when
	// two or more (regions.go). Nodes whose lists differ are not put in
	// each other's groups.
	Regions []string `msgpack:"rs,omitempty"`
	// Legacy names the region whose group this node's single-region data
	// became, when it has such data (regions.go).
	Legacy string `msgpack:"lg,omitempty"`
}

// errBadMeta reports gossip metadata that is not a member's record.
var errBadMeta = errors.New("node: malformed gossip metadata")

// encodeMemberMeta is this node's metadata as it announces it, refused when
// it exceeds memberlist's limit.
func (n *Node) encodeMemberMeta() ([]byte, error) {
	meta, err := msgpack.Marshal(memberMeta{
		ID: n.cfg.NodeID, RaftAddr: n.RaftAddr(), HTTPAddr: n.cfg.HTTPAddr,
		Region: n.cfg.Region, Voter: n.cfg.Voter, Expect: n.cfg.BootstrapExpect,
		Batches: !n.cfg.noBatchEntries, Regions: regionsList(n.cfg), Legacy: n.legacyAnnounced(),
	})
	if err != nil {
		return nil, err
	}
	if len(meta) > memberlist.MetaMaxSize {
		return nil, fmt.Errorf("node: gossip metadata is %d bytes, memberlist allows %d: shorten the ids and addresses", len(meta), memberlist.MetaMaxSize)
	}
	return meta, nil
}

// decodeMemberMeta reads a member's metadata as it arrives from gossip:
// one msgpack value, checked before decoding like everything a peer sends,
// with a member id.
func decodeMemberMeta(data []byte) (memberMeta, error) {
	var meta memberMeta
	if err := msgpackcheck.Check(data); err != nil {
		return meta, fmt.Errorf("%w: %w", errBadMeta, err)
	}
	if err := msgpack.Unmarshal(data, &meta); err != nil {
		return meta, fmt.Errorf("%w: %w", errBadMeta, err)
	}
	if meta.ID == "" {
		return meta, fmt.Errorf("%w: no member id", errBadMeta)
	}
	return meta, nil
}

// Member is a node as gossip sees it.
type Member struct {
	ID       string
	RaftAddr string
	HTTPAddr string
	Region   string
	Voter    bool
	// Status is alive or dead (dead also covers a member that left).
	Status string
	// GossipAddr is the member's memberlist address.
	GossipAddr string
}

// gossip is a node's membership component.
type gossip struct {
	n      *Node
	ml     *memberlist.Memberlist
	meta   []byte
	events chan struct{} // nudges the reconcile loop; never blocks a sender

	mu        sync.Mutex           // guards deadSince (deadmembers.go)
	deadSince map[string]time.Time // member id → when first seen dead or gone

	// table is this node's copy of the membership, kept from memberlist's
	// event callbacks (which run under memberlist's lock, so copying there
	// is safe; the *Node values memberlist hands out are changed by it
	// later). Dead and departed members stay, with their status.
	tableMu sync.Mutex
	table   map[string]Member
	expects map[string]int      // bootstrap-expect each member announces
	batches map[string]bool     // whether each member reads batch entries, as last announced
	regions map[string][]string // each member's --regions, as last announced
	legacy  map[string]string   // the region each member's single-region data became, if any
	warned  map[string]bool     // members already warned about (warnOnce)
	self    string              // this node's gossip address
}

// startGossip starts memberlist on GossipAddr and the loops that join the
// seeds and reconcile the members with Raft.
func (n *Node) startGossip() error {
	meta, err := n.encodeMemberMeta()
	if err != nil {
		return err
	}
	g := &gossip{n: n, meta: meta, events: make(chan struct{}, 1), deadSince: make(map[string]time.Time),
		table: make(map[string]Member), expects: make(map[string]int), batches: make(map[string]bool),
		regions: make(map[string][]string), legacy: make(map[string]string), warned: make(map[string]bool)}

	host, portStr, err := net.SplitHostPort(n.cfg.GossipAddr)
	if err != nil {
		return fmt.Errorf("node: gossip address %q: %w", n.cfg.GossipAddr, err)
	}
	port, _ := strconv.Atoi(portStr)
	mc := n.memberlistConfig(g, host, port)
	advertiseHost, advertisePort, err := gossipAdvertise(n.cfg, portStr)
	if err != nil {
		return err
	}
	if advertiseHost != "" {
		mc.AdvertiseAddr, mc.AdvertisePort = advertiseHost, advertisePort
	}
	nt, err := memberlist.NewNetTransport(&memberlist.NetTransportConfig{
		BindAddrs: []string{host},
		BindPort:  port,
		Logger:    mc.Logger,
	})
	if err != nil {
		return fmt.Errorf("node: gossip listener: %w", err)
	}
	if port == 0 {
		mc.BindPort = nt.GetAutoBindPort()
		if mc.AdvertisePort == 0 {
			mc.AdvertisePort = mc.BindPort
		}
	}
	self := net.JoinHostPort(host, strconv.Itoa(mc.BindPort))
	if mc.AdvertiseAddr != "" {
		self = net.JoinHostPort(mc.AdvertiseAddr, strconv.Itoa(mc.AdvertisePort))
	}
	g.self = self
	mc.Transport = transport.FaultyGossip(nt, self, n.cfg.Faults)
	ml, err := memberlist.Create(mc)
	if err != nil {
		nt.Shutdown()
		return fmt.Errorf("node: start gossip: %w", err)
	}
	g.ml = ml
	n.gossip = g
	n.wg.Add(2)
	go g.joinLoop()
	go g.reconcileLoop()
	return nil
}

// memberlistConfig is memberlist's LAN configuration for this node, bound
// to host:port, with g as its delegates; the advertised address and the
// transport are left to startGossip.
func (n *Node) memberlistConfig(g *gossip, host string, port int) *memberlist.Config {
	mc := memberlist.DefaultLANConfig()
	mc.Name = n.cfg.NodeID
	mc.BindAddr, mc.BindPort = host, port
	mc.Label = "sessiond"
	mc.SecretKey = n.cfg.GossipKey
	mc.Delegate = g
	mc.Events = g
	mc.DeadNodeReclaimTime = 30 * time.Second // a restarted node may come back on a new address
	mc.Logger = log.New(gossipLogWriter{n.cfg.Logger.With("subsystem", "gossip")}, "", 0)
	if n.cfg.HeartbeatTimeout < 500*time.Millisecond {
		// Tests run fast timings; so does gossip then.
		mc.ProbeInterval = 200 * time.Millisecond
		mc.ProbeTimeout = 100 * time.Millisecond
		mc.GossipInterval = 50 * time.Millisecond
		mc.SuspicionMult = 2
		mc.PushPullInterval = 2 * time.Second
	}
	return mc
}

// gossipAdvertise is the address memberlist announces to peers:
// GossipAdvertiseAddr, else AdvertiseAddr's host, with the gossip port
// bindPort when the address has none. The host is empty when neither is
// set (memberlist then announces the address it bound). memberlist wants an
// IP: a host name (a container's) is resolved, an IPv4 address preferred.
func gossipAdvertise(cfg Config, bindPort string) (host string, port int, err error) {
	advertise := cfg.GossipAdvertiseAddr
	if advertise == "" && cfg.AdvertiseAddr != "" {
		advertise = cfg.AdvertiseAddr
		if h, _, err := net.SplitHostPort(advertise); err == nil {
			advertise = h
		}
	}
	if advertise == "" {
		return "", 0, nil
	}
	ah, ap, err := net.SplitHostPort(advertise)
	if err != nil {
		ah, ap = advertise, bindPort
	}
	if net.ParseIP(ah) == nil {
		ips, err := net.LookupIP(ah)
		if err != nil || len(ips) == 0 {
			return "", 0, fmt.Errorf("node: resolve gossip advertise host %q: %v", ah, err)
		}
		ah = ips[0].String()
		for _, ip := range ips {
			if ip.To4() != nil {
				ah = ip.String()
				break
			}
		}
	}
	port, _ = strconv.Atoi(ap)
	return ah, port, nil
}

// GossipAddr is the address peers reach this node's gossip at.
func (n *Node) GossipAddr() string {
	if n.gossip == nil {
		return ""
	}
	return n.gossip.self
}

// Members lists the members gossip knows, sorted by id (nil when discovery
// is off).
func (n *Node) Members() []Member {
	if n.gossip == nil {
		return nil
	}
	return n.gossip.members()
}

func (g *gossip) stop() {
	if err := g.ml.Leave(time.Second); err != nil {
		g.n.log.Debug("gossip leave", "error", err)
	}
	if err := g.ml.Shutdown(); err != nil {
		g.n.log.Debug("gossip shutdown", "error", err)
	}
}

// memberlist.Delegate: only metadata is used.
func (g *gossip) NodeMeta(limit int) []byte                  { return g.meta }
func (g *gossip) NotifyMsg([]byte)                           {}
func (g *gossip) GetBroadcasts(overhead, limit int) [][]byte { return nil }
func (g *gossip) LocalState(join bool) []byte                { return nil }
func (g *gossip) MergeRemoteState(buf []byte, join bool)     {}

// memberlist.EventDelegate: never call memberlist from here (it holds its
// lock); just nudge the reconcile loop.
func (g *gossip) NotifyJoin(n *memberlist.Node)   { g.record(n, "alive"); g.nudge() }
func (g *gossip) NotifyLeave(n *memberlist.Node)  { g.record(n, "dead"); g.nudge() }
func (g *gossip) NotifyUpdate(n *memberlist.Node) { g.record(n, "alive"); g.nudge() }

func (g *gossip) nudge() {
	select {
	case g.events <- struct{}{}:
	default:
	}
}

// record copies a member into the table with its status. It runs inside
// memberlist's callbacks: it must not call memberlist. (The Node's own
// State field is not kept current by memberlist, hence the explicit status;
// a member that left gracefully and one that died both show as dead.)
func (g *gossip) record(n *memberlist.Node, status string) {
	meta, err := decodeMemberMeta(n.Meta)
	if err != nil {
		return
	}
	g.tableMu.Lock()
	defer g.tableMu.Unlock()
	g.table[meta.ID] = Member{
		ID: meta.ID, RaftAddr: meta.RaftAddr, HTTPAddr: meta.HTTPAddr, Region: meta.Region,
		Voter: meta.Voter, Status: status, GossipAddr: n.Address(),
	}
	g.expects[meta.ID] = meta.Expect
	g.batches[meta.ID] = meta.Batches
	g.regions[meta.ID] = meta.Regions
	if meta.Legacy != "" {
		g.legacy[meta.ID] = meta.Legacy
	} else {
		delete(g.legacy, meta.ID)
	}
	delete(g.warned, meta.ID)
}

// members lists every member seen, with its last known status, sorted by id.
func (g *gossip) members() []Member {
	g.tableMu.Lock()
	out := make([]Member, 0, len(g.table))
	for _, m := range g.table {
		out = append(out, m)
	}
	g.tableMu.Unlock()
	slices.SortFunc(out, func(a, b Member) int { return strings.Compare(a.ID, b.ID) })
	return out
}

// aliveCount is the number of members alive, this node included.
func (g *gossip) aliveCount() int {
	n := 0
	for _, m := range g.members() {
		if m.Status == "alive" {
			n++
		}
	}
	return n
}

// expectOf is the BootstrapExpect a member announces (-1 if unknown).
func (g *gossip) expectOf(id string) int {
	g.tableMu.Lock()
	defer g.tableMu.Unlock()
	if e, ok := g.expects[id]; ok {
		return e
	}
	return -1
}

// sameRegions reports whether the member with this id announced the same
// --regions as this node (none, for a single-region cluster).
func (g *gossip) sameRegions(id string) bool {
	g.tableMu.Lock()
	defer g.tableMu.Unlock()
	return slices.Equal(g.regions[id], regionsList(g.n.cfg))
}

// legacyRegion is the region whose group a member's single-region data
// became, as the members announce it (the first by id); "" when none does.
func (g *gossip) legacyRegion() string {
	g.tableMu.Lock()
	defer g.tableMu.Unlock()
	first := ""
	region := ""
	for id, r := range g.legacy {
		if first == "" || id < first {
			first, region = id, r
		}
	}
	return region
}

// legacyAnnounced is what this node announces as Legacy.
func (n *Node) legacyAnnounced() string {
	if n.legacyHere {
		return n.cfg.Region
	}
	return ""
}

// regionsList is what a node announces of its --regions: nil without
// regions.
func regionsList(cfg Config) []string {
	if !cfg.regional() {
		return nil
	}
	return cfg.Regions
}

// readsBatches reports whether the member with this id announced that it
// reads batch entries. A member never seen does not.
func (g *gossip) readsBatches(id string) bool {
	g.tableMu.Lock()
	defer g.tableMu.Unlock()
	return g.batches[id]
}

// warnOnce logs a warning about a member the first time only: reconcile
// runs every few seconds. A member that announces again is warned again.
func (g *gossip) warnOnce(id, msg string, args ...any) {
	g.tableMu.Lock()
	seen := g.warned[id]
	g.warned[id] = true
	g.tableMu.Unlock()
	if !seen {
		g.n.log.Warn(msg, args...)
	}
}
