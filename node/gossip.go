package node

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/hashicorp/raft"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/sessiond/sessiond/transport"
	"github.com/sessiond/sessiond/transport/msgpackcheck"
)

// Discovery and membership. Nodes find each other with memberlist; each
// announces a small metadata record. The leader reconciles the Raft
// configuration with the live members: it adds members it confirmed over
// the authenticated RPC (never on gossip metadata alone) and removes
// members dead for longer than DeadNodeTimeout when that is safe.

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
}

// errBadMeta reports gossip metadata that is not a member's record.
var errBadMeta = errors.New("node: malformed gossip metadata")

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

const rpcHello = "hello"

type helloResponse struct {
	ID string `msgpack:"id"`
}

// gossip is a node's membership component.
type gossip struct {
	n      *Node
	ml     *memberlist.Memberlist
	meta   []byte
	events chan struct{} // nudges the reconcile loop; never blocks a sender

	mu        sync.Mutex
	deadSince map[string]time.Time // member id → when first seen dead or gone

	// table is this node's copy of the membership, kept from memberlist's
	// event callbacks (which run under memberlist's lock, so copying there
	// is safe; the *Node values memberlist hands out are changed by it
	// later). Dead and departed members stay, with their status.
	tableMu sync.Mutex
	table   map[string]Member
	expects map[string]int  // bootstrap-expect each member announces
	batches map[string]bool // whether each member reads batch entries, as last announced
	warned  map[string]bool // members already warned about (warnOnce)
	self    string          // this node's gossip address
}

func (n *Node) startGossip() error {
	meta, err := msgpack.Marshal(memberMeta{
		ID: n.cfg.NodeID, RaftAddr: n.RaftAddr(), HTTPAddr: n.cfg.HTTPAddr,
		Region: n.cfg.Region, Voter: n.cfg.Voter, Expect: n.cfg.BootstrapExpect,
		Batches: !n.cfg.noBatchEntries,
	})
	if err != nil {
		return err
	}
	if len(meta) > memberlist.MetaMaxSize {
		return fmt.Errorf("node: gossip metadata is %d bytes, memberlist allows %d: shorten the ids and addresses", len(meta), memberlist.MetaMaxSize)
	}
	g := &gossip{n: n, meta: meta, events: make(chan struct{}, 1), deadSince: make(map[string]time.Time),
		table: make(map[string]Member), expects: make(map[string]int), batches: make(map[string]bool), warned: make(map[string]bool)}

	host, portStr, err := net.SplitHostPort(n.cfg.GossipAddr)
	if err != nil {
		return fmt.Errorf("node: gossip address %q: %w", n.cfg.GossipAddr, err)
	}
	port, _ := strconv.Atoi(portStr)
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
	advertise := n.cfg.GossipAdvertiseAddr
	if advertise == "" && n.cfg.AdvertiseAddr != "" {
		advertise = n.cfg.AdvertiseAddr
		if h, _, err := net.SplitHostPort(advertise); err == nil {
			advertise = h
		}
	}
	if advertise != "" {
		ah, ap, err := net.SplitHostPort(advertise)
		if err != nil {
			ah, ap = advertise, portStr
		}
		// memberlist wants an IP; a host name (a container's) is resolved.
		if net.ParseIP(ah) == nil {
			ips, err := net.LookupIP(ah)
			if err != nil || len(ips) == 0 {
				return fmt.Errorf("node: resolve gossip advertise host %q: %v", ah, err)
			}
			ah = ips[0].String()
			for _, ip := range ips {
				if ip.To4() != nil {
					ah = ip.String()
					break
				}
			}
		}
		mc.AdvertiseAddr = ah
		mc.AdvertisePort, _ = strconv.Atoi(ap)
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

// GossipAddr is the address peers reach this node's gossip at.
func (n *Node) GossipAddr() string {
	if n.gossip == nil {
		return ""
	}
	return n.gossip.self
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
	delete(g.warned, meta.ID)
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

// readsBatches reports whether the member with this id announced that it
// reads batch entries. A member never seen does not.
func (g *gossip) readsBatches(id string) bool {
	g.tableMu.Lock()
	defer g.tableMu.Unlock()
	return g.batches[id]
}

func (g *gossip) nudge() {
	select {
	case g.events <- struct{}{}:
	default:
	}
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

// joinLoop joins the seed list until it succeeds, then re-joins it
// periodically so that a healed partition reconnects.
func (g *gossip) joinLoop() {
	defer g.n.wg.Done()
	if len(g.n.cfg.Join) == 0 {
		return
	}
	wait := 200 * time.Millisecond
	joined := false
	for {
		if !joined || g.aliveCount() < 2 {
			if count, err := g.ml.Join(g.n.cfg.Join); err != nil {
				g.n.log.Debug("join failed, retrying", "seeds", g.n.cfg.Join, "error", err)
			} else {
				if !joined {
					g.n.log.Info("joined the cluster's gossip", "contacted", count)
				}
				joined = true
			}
		}
		if joined {
			wait = 30 * time.Second
		} else {
			wait = min(2*wait, 5*time.Second)
		}
		select {
		case <-g.n.stop:
			return
		case <-time.After(wait):
		}
		if joined {
			// Re-join now and then even when members are known: after a
			// partition heals this is what reconnects the two sides.
			if _, err := g.ml.Join(g.n.cfg.Join); err != nil {
				g.n.log.Debug("periodic re-join failed", "error", err)
			}
		}
	}
}

// reconcileLoop bootstraps the cluster when BootstrapExpect says so and, on
// the leader, keeps the Raft configuration in line with the members.
func (g *gossip) reconcileLoop() {
	defer g.n.wg.Done()
	tick := time.NewTicker(g.n.cfg.ReconcileInterval)
	defer tick.Stop()
	fast := time.NewTicker(100 * time.Millisecond) // only while bootstrapping
	defer fast.Stop()
	for {
		select {
		case <-g.n.stop:
			return
		case <-g.events:
		case <-tick.C:
		case <-fast.C:
			if !g.awaitingBootstrap() {
				fast.Stop()
				continue
			}
		}
		if g.awaitingBootstrap() {
			g.tryBootstrap()
			continue
		}
		if g.n.IsLeader() {
			g.reconcile()
		}
	}
}

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

// expectOf is the BootstrapExpect a member announces (-1 if unknown).
func (g *gossip) expectOf(id string) int {
	g.tableMu.Lock()
	defer g.tableMu.Unlock()
	if e, ok := g.expects[id]; ok {
		return e
	}
	return -1
}

// reconcile runs on the leader: add live members missing from Raft (after
// confirming who they are over the authenticated RPC), remove members dead
// for too long when quorum allows.
func (g *gossip) reconcile() {
	gen := g.n.leaderGen.Load()
	servers, err := g.n.Servers()
	if err != nil {
		return
	}
	inRaft := make(map[string]Server, len(servers))
	for _, s := range servers {
		inRaft[s.ID] = s
	}
	g.n.updateBatchEntries(gen)
	members := g.members()
	byID := make(map[string]Member, len(members))
	now := time.Now()
	g.mu.Lock()
	for _, m := range members {
		byID[m.ID] = m
		if m.Status == "alive" {
			delete(g.deadSince, m.ID)
		} else if _, ok := g.deadSince[m.ID]; !ok {
			g.deadSince[m.ID] = now
		}
	}
	g.mu.Unlock()

	for _, m := range members {
		if m.Status != "alive" || m.ID == g.n.cfg.NodeID {
			continue
		}
		s, ok := inRaft[m.ID]
		if ok && s.Addr == m.RaftAddr && s.Voter == m.Voter {
			continue
		}
		if !g.readsBatches(m.ID) && !g.n.cfg.noBatchEntries {
			// A version without batch entries would stop at the first one
			// in the log it receives; there may be some already.
			g.warnOnce(m.ID, "not adding a member of an older version: it cannot read batch entries; upgrade it", "member", m.ID)
			continue
		}
		if err := g.confirm(m); err != nil {
			g.n.log.Warn("not adding a member that did not confirm its identity", "member", m.ID, "error", err)
			continue
		}
		if ok && s.Voter != m.Voter {
			// Raft cannot demote in place; remove and add with the new role.
			if err := g.n.RemoveServer(m.ID); err != nil {
				g.n.log.Warn("changing a member's role", "member", m.ID, "error", err)
				continue
			}
		}
		if err := g.n.AddServer(m.ID, m.RaftAddr, m.Voter); err != nil {
			g.n.log.Warn("adding a member", "member", m.ID, "error", err)
		}
	}
	g.removeLongDead(servers, byID, now)
}

// confirm dials a member's Raft address (mutual TLS when configured) and
// checks that the node there has the id it announced.
func (g *gossip) confirm(m Member) error {
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

func (n *Node) serveHello(_ context.Context, _ string, dec *msgpack.Decoder) (any, error) {
	if err := dec.Skip(); err != nil {
		return nil, err
	}
	return helloResponse{ID: n.cfg.NodeID}, nil
}

// removeLongDead removes from Raft the servers whose member has been dead,
// left or unknown to gossip for longer than DeadNodeTimeout. A voter is
// removed only if the remaining voters keep a quorum of live ones and stay
// at three or more (or as many as the cluster had, if fewer), one removal
// per round, so a flapping network cannot shrink the cluster unsafely.
func (g *gossip) removeLongDead(servers []Server, members map[string]Member, now time.Time) {
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
		if err := g.n.RemoveServer(s.ID); err != nil {
			g.n.log.Warn("removing a dead member", "member", s.ID, "error", err)
			return
		}
		delete(g.deadSince, s.ID)
		return
	}
}

// gossipLogWriter routes memberlist's standard-library logging into slog.
type gossipLogWriter struct{ log *slog.Logger }

func (w gossipLogWriter) Write(p []byte) (int, error) {
	line := strings.TrimSpace(string(p))
	level := slog.LevelDebug
	switch {
	case strings.Contains(line, "[ERR]"):
		level = slog.LevelError
	case strings.Contains(line, "[WARN]"):
		level = slog.LevelWarn
	case strings.Contains(line, "[INFO]"):
		level = slog.LevelInfo
	}
	w.log.Log(context.Background(), level, line)
	return len(p), nil
}

var _ io.Writer = gossipLogWriter{}

// Members lists the members gossip knows, sorted by id (nil when discovery
// is off).
func (n *Node) Members() []Member {
	if n.gossip == nil {
		return nil
	}
	return n.gossip.members()
}
