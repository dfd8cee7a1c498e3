// Package clustertest runs real sessiond clusters inside one test process:
// several nodes, each with real Raft, real memberlist and a real HTTP API on
// 127.0.0.1, joined through gossip with bootstrap-expect. A fault layer in
// the transport cuts any pair of nodes (Raft, forwarding RPC and gossip
// alike); nodes can be killed, restarted on their data dir, or restarted
// with it wiped.
package clustertest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"go.etcd.io/bbolt"

	"github.com/sessiond/sessiond/httpapi"
	"github.com/sessiond/sessiond/node"
	"github.com/sessiond/sessiond/transport"
	"github.com/sessiond/sessiond/transport/testkit"
)

// APIKey is the admin key every node of a test cluster accepts.
const APIKey = "clustertest-admin-key-0123456789"

// Options shape a cluster.
type Options struct {
	// Size is the number of voters started together with bootstrap-expect.
	Size int
	// Regions, when two or more, makes a cluster of regions: node i runs in
	// Regions[i*len(Regions)/Size], every region has Size/len(Regions)
	// voters, and bootstrap-expect counts them per region.
	Regions []string
	// MaxStale is every node's --max-stale (default 2s).
	MaxStale time.Duration
	// TLS, when set, gives node i the identity TLS(i).
	TLS func(i int) *transport.MutualTLS
	// Tweak, when set, adjusts each node's configuration before start.
	Tweak func(i int, cfg *node.Config)
	// TweakAPI, if set, changes node i's HTTP API configuration (cookie
	// keys, trusted issuers) before it starts.
	TweakAPI func(i int, cfg *httpapi.Config)
}

// Cluster is a running test cluster.
type Cluster struct {
	t      testing.TB
	opts   Options
	Faults *transport.Faults
	Nodes  []*Member
	// mu guards the members' running state and Node, which Kill and Restart
	// change while clients and checks read them.
	mu sync.Mutex
	// log stops the nodes' logging into the test once its cleanup is done.
	log *testkit.LogWriter
}

// Member is one node of a test cluster and its HTTP API.
type Member struct {
	Index    int
	ID       string
	DataDir  string
	URL      string // http://127.0.0.1:port
	Node     *node.Node
	api      *httpapi.Server
	httpAddr string
	raftAddr string
	gossip   string
	cfg      node.Config
	running  bool
}

// Start starts opts.Size nodes at the same instant and waits until they form
// one cluster with a leader that every node knows.
func Start(t testing.TB, opts Options) *Cluster {
	t.Helper()
	if opts.MaxStale == 0 {
		opts.MaxStale = 2 * time.Second
	}
	// The log's cleanup is registered first, so it runs last, after Stop.
	c := &Cluster{t: t, opts: opts, Faults: transport.NewFaults(), log: testkit.NewLogWriter(t)}
	for i := range opts.Size {
		c.Nodes = append(c.Nodes, &Member{
			Index:    i,
			ID:       fmt.Sprintf("node%d", i),
			DataDir:  filepath.Join(t.TempDir(), "data"),
			httpAddr: testkit.FreeAddr(t),
			raftAddr: testkit.FreeAddr(t),
			gossip:   testkit.FreeAddr(t),
		})
		c.Nodes[i].URL = "http://" + c.Nodes[i].httpAddr
	}
	var wg sync.WaitGroup
	errs := make([]error, len(c.Nodes))
	for i, m := range c.Nodes {
		wg.Go(func() { errs[i] = c.start(m) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("start node %d: %v", i, err)
		}
	}
	t.Cleanup(c.Stop)
	if len(opts.Regions) > 1 {
		c.WaitFor(30*time.Second, "every group led, on every node, and every node fresh in each", c.groupsSettled)
		return c
	}
	c.WaitFor(30*time.Second, "every node ready with one leader", func() bool {
		return c.AllReady() && len(c.Leaders()) == 1
	})
	return c
}

// RegionOf is node i's region ("" without regions).
func (c *Cluster) RegionOf(i int) string {
	if len(c.opts.Regions) < 2 {
		return ""
	}
	return c.opts.Regions[i*len(c.opts.Regions)/c.opts.Size]
}

// groupsSettled reports whether every running node knows the same leader
// of every group, has every running node in each group's configuration,
// and vouches from its copy of each.
func (c *Cluster) groupsSettled() bool {
	settled := true
	leaders := map[string]string{}
	running := 0
	c.eachRunning(func(*Member) { running++ })
	c.eachRunning(func(m *Member) {
		for _, g := range m.Node.ClusterStatus().Groups {
			if g.LeaderID == "" || !g.Fresh || len(g.Voters)+len(g.Replicas) < running {
				settled = false
				return
			}
			if l, ok := leaders[g.Name]; ok && l != g.LeaderID {
				settled = false
			}
			leaders[g.Name] = g.LeaderID
		}
	})
	return settled && len(leaders) == len(c.opts.Regions)+1
}

func (c *Cluster) start(m *Member) error {
	cfg := node.Default()
	cfg.NodeID = m.ID
	cfg.DataDir = m.DataDir
	cfg.RaftAddr = m.raftAddr
	cfg.HTTPAddr = m.httpAddr
	cfg.GossipAddr = m.gossip
	cfg.BootstrapSelf = false
	cfg.BootstrapExpect = c.opts.Size
	if len(c.opts.Regions) > 1 {
		cfg.Regions = c.opts.Regions
		cfg.Region = c.RegionOf(m.Index)
		cfg.BootstrapExpect = c.opts.Size / len(c.opts.Regions)
	}
	for _, other := range c.Nodes {
		if other != m {
			cfg.Join = append(cfg.Join, other.gossip)
		}
	}
	cfg.HeartbeatTimeout = 300 * time.Millisecond
	cfg.ElectionTimeout = 300 * time.Millisecond
	cfg.ReconcileInterval = 300 * time.Millisecond
	cfg.LeaderWait = 5 * time.Second
	cfg.SnapshotThreshold = 256
	cfg.TrailingLogs = 64
	cfg.SnapshotInterval = 500 * time.Millisecond
	cfg.Faults = c.Faults
	cfg.MaxStale = c.opts.MaxStale
	cfg.Logger = slog.New(slog.NewTextHandler(c.log.Prefixed(m.ID+": "), &slog.HandlerOptions{Level: slog.LevelWarn}))
	if c.opts.TLS != nil {
		cfg.TLS = c.opts.TLS(m.Index)
	}
	if c.opts.Tweak != nil {
		c.opts.Tweak(m.Index, &cfg)
	}
	n, err := node.New(cfg)
	if err != nil {
		return err
	}
	apiCfg := httpapi.Default()
	apiCfg.Backend = n
	apiCfg.APIKeys = []string{APIKey}
	apiCfg.WriteTimeout = 5 * time.Second
	apiCfg.Logger = cfg.Logger
	apiCfg.LoginRate = httpapi.LoginRate{} // tests log in fast from one address
	if c.opts.TweakAPI != nil {
		c.opts.TweakAPI(m.Index, &apiCfg)
	}
	api, err := httpapi.New(apiCfg)
	if err != nil {
		n.Close()
		return err
	}
	l, err := net.Listen("tcp", m.httpAddr)
	if err != nil {
		n.Close()
		return err
	}
	go api.Serve(l)
	c.mu.Lock()
	m.Node, m.api, m.cfg, m.running = n, api, cfg, true
	c.mu.Unlock()
	return nil
}

// Kill stops a node abruptly (no leadership hand-over, no gossip leave): its
// HTTP server and Raft stop, its data dir stays.
func (c *Cluster) Kill(i int) {
	m := c.Nodes[i]
	c.mu.Lock()
	if !m.running {
		c.mu.Unlock()
		return
	}
	m.running = false
	c.mu.Unlock()
	// Isolate first so the node cannot say goodbye, like a crash.
	c.Isolate(i)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = m.api.Shutdown(ctx)
	_ = m.Node.Close()
	c.Rejoin(i)
}

// Restart starts a killed node again on its data dir and addresses.
func (c *Cluster) Restart(i int) {
	c.t.Helper()
	if err := c.start(c.Nodes[i]); err != nil {
		c.t.Fatalf("restart node %d: %v", i, err)
	}
}

// Wipe deletes a killed node's data dir, so that it restarts empty.
func (c *Cluster) Wipe(i int) {
	c.mu.Lock()
	running := c.Nodes[i].running
	c.mu.Unlock()
	if running {
		c.t.Fatalf("wipe node %d while it runs", i)
	}
	if err := os.RemoveAll(c.Nodes[i].DataDir); err != nil {
		c.t.Fatal(err)
	}
}

// DropSnapshots deletes a killed node's snapshots and keeps its Raft log
// (raft.db), so that it restarts with no snapshot on disk and rebuilds its
// state from the log alone. That is sound only while the log still holds
// every entry from the first on: when it was compacted, DropSnapshots
// deletes nothing and returns an error. A cluster whose TrailingLogs
// (Options.Tweak) exceeds every index it reaches never compacts its logs.
func (c *Cluster) DropSnapshots(i int) error {
	m := c.Nodes[i]
	c.mu.Lock()
	running := m.running
	c.mu.Unlock()
	if running {
		return fmt.Errorf("drop the snapshots of node %d while it runs", i)
	}
	store, err := raftboltdb.New(raftboltdb.Options{
		Path:        filepath.Join(m.DataDir, "raft.db"),
		BoltOptions: &bbolt.Options{ReadOnly: true, Timeout: time.Second},
	})
	if err != nil {
		return fmt.Errorf("node %d: open raft log: %w", i, err)
	}
	first, err := store.FirstIndex()
	if cerr := store.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("node %d: read raft log: %w", i, err)
	}
	if first > 1 {
		return fmt.Errorf("node %d: its log was compacted up to index %d: without the snapshots it would lose entries", i, first-1)
	}
	return os.RemoveAll(filepath.Join(m.DataDir, "snapshots"))
}

// Partition cuts nodes i and j apart (Raft, RPC and gossip).
func (c *Cluster) Partition(i, j int) {
	a, b := c.Nodes[i], c.Nodes[j]
	c.Faults.Partition(a.raftAddr, b.raftAddr)
	c.Faults.Partition(a.gossip, b.gossip)
}

// Isolate cuts node i from every other node.
func (c *Cluster) Isolate(i int) {
	for j := range c.Nodes {
		if j != i {
			c.Partition(i, j)
		}
	}
}

// Rejoin removes every cut involving node i.
func (c *Cluster) Rejoin(i int) {
	a := c.Nodes[i]
	for j, b := range c.Nodes {
		if j == i {
			continue
		}
		for _, pair := range [][2]string{{a.raftAddr, b.raftAddr}, {a.gossip, b.gossip}} {
			c.Faults.Unblock(pair[0], pair[1])
			c.Faults.Unblock(pair[1], pair[0])
		}
	}
}

// IsolateRegion cuts every node of region apart from every node of the
// other regions (Raft, RPC and gossip, both ways).
func (c *Cluster) IsolateRegion(region string) {
	for i := range c.Nodes {
		for j := range c.Nodes {
			if c.RegionOf(i) == region && c.RegionOf(j) != region {
				c.Partition(i, j)
			}
		}
	}
}

// someLeader is the index of a running node that leads a group, chosen
// with rng among the groups that have one; -1 when none has.
func (c *Cluster) someLeader(rng interface{ IntN(int) int }) int {
	if len(c.opts.Regions) < 2 {
		return c.Leader()
	}
	var leaders []int
	c.eachRunning(func(m *Member) {
		for _, g := range m.Node.ClusterStatus().Groups {
			if g.State == "Leader" {
				leaders = append(leaders, m.Index)
			}
		}
	})
	if len(leaders) == 0 {
		return -1
	}
	return leaders[rng.IntN(len(leaders))]
}

// recovered reports whether the cluster serves again after faults: one
// leader that every node is ready under, or with regions every group led
// and fresh on every node.
func (c *Cluster) recovered() bool {
	if len(c.opts.Regions) > 1 {
		return c.groupsSettled()
	}
	return c.AllReady() && c.Leader() >= 0
}

// Heal removes every cut.
func (c *Cluster) Heal() { c.Faults.Heal() }

// SetDelay makes traffic from node i to node j arrive d later (a one-way
// latency; 0 removes it): Raft and RPC, and gossip packets and the gossip
// streams i dials.
func (c *Cluster) SetDelay(i, j int, d time.Duration) {
	c.Faults.SetDelay(c.Nodes[i].raftAddr, c.Nodes[j].raftAddr, d)
	c.Faults.SetDelay(c.Nodes[i].gossip, c.Nodes[j].gossip, d)
}

// SetRegions places the nodes in regions (regionOf[i] is node i's) and
// delays traffic between every pair by within inside one region and by
// between across two, each way: the latency of a WAN between sites.
func (c *Cluster) SetRegions(regionOf []int, within, between time.Duration) {
	for i := range c.Nodes {
		for j := range c.Nodes {
			if i == j {
				continue
			}
			d := between
			if regionOf[i] == regionOf[j] {
				d = within
			}
			c.SetDelay(i, j, d)
		}
	}
}

// Stop shuts every running node down.
func (c *Cluster) Stop() {
	for _, m := range c.Running() {
		c.mu.Lock()
		m.running = false
		c.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = m.api.Shutdown(ctx)
		cancel()
		_ = m.Node.Close()
	}
}

// Running lists the running nodes.
func (c *Cluster) Running() []*Member {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []*Member
	for _, m := range c.Nodes {
		if m.running {
			out = append(out, m)
		}
	}
	return out
}

// IsRunning reports whether node i runs.
func (c *Cluster) IsRunning(i int) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.Nodes[i].running
}

// eachRunning calls f for every running node, holding the lock that Kill
// and Restart take, so f sees a stable Node. f must not call back into c.
func (c *Cluster) eachRunning(f func(m *Member)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, m := range c.Nodes {
		if m.running {
			f(m)
		}
	}
}

// Leaders lists the ids of running nodes that believe they lead.
func (c *Cluster) Leaders() []string {
	var out []string
	c.eachRunning(func(m *Member) {
		if m.Node.IsLeader() {
			out = append(out, m.ID)
		}
	})
	return out
}

// Leader is the index of the one running leader, or -1.
func (c *Cluster) Leader() int {
	found, count := -1, 0
	c.eachRunning(func(m *Member) {
		if m.Node.IsLeader() {
			found, count = m.Index, count+1
		}
	})
	if count != 1 {
		return -1
	}
	return found
}

// AllReady reports whether every running node is ready.
func (c *Cluster) AllReady() bool {
	ready := true
	c.eachRunning(func(m *Member) {
		if !m.Node.Ready() {
			ready = false
		}
	})
	return ready
}

// WaitFor polls cond until it holds or the limit passes (then fails).
func (c *Cluster) WaitFor(limit time.Duration, what string, cond func() bool) {
	c.t.Helper()
	testkit.Eventually(c.t, limit, what, cond)
}

// WaitConverged waits until every running node has applied the same index
// and holds byte-identical state.
func (c *Cluster) WaitConverged(limit time.Duration) {
	c.t.Helper()
	c.WaitFor(limit, "every node to hold the same state of every group", func() bool {
		first := map[string][]byte{}
		same := true
		c.eachRunning(func(m *Member) {
			for _, group := range m.Node.Groups() {
				var buf bytes.Buffer
				if err := m.Node.GroupFSM(group).WriteSnapshot(&buf); err != nil {
					same = false
					return
				}
				if prev, ok := first[group]; !ok {
					first[group] = buf.Bytes()
				} else if !bytes.Equal(prev, buf.Bytes()) {
					same = false
				}
			}
		})
		return same
	})
}

// Do sends a request to a member's API with the admin key; body is JSON.
func (m *Member) Do(method, path string, body io.Reader, header ...string) (*http.Response, error) {
	req, err := http.NewRequest(method, m.URL+path, body)
	if err != nil {
		return nil, err
	}
	req.Header.Set("X-API-Key", APIKey)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	return httpClient.Do(req)
}

var httpClient = &http.Client{Timeout: 15 * time.Second}

// Add starts one more node that joins the cluster through gossip (it does
// not take part in bootstrap). tweak, if set, adjusts its configuration.
func (c *Cluster) Add(tweak func(cfg *node.Config)) *Member {
	c.t.Helper()
	m := &Member{
		Index:    len(c.Nodes),
		ID:       fmt.Sprintf("node%d", len(c.Nodes)),
		DataDir:  filepath.Join(c.t.TempDir(), "data"),
		httpAddr: testkit.FreeAddr(c.t),
		raftAddr: testkit.FreeAddr(c.t),
		gossip:   testkit.FreeAddr(c.t),
	}
	m.URL = "http://" + m.httpAddr
	c.Nodes = append(c.Nodes, m)
	prev := c.opts.Tweak
	c.opts.Tweak = func(i int, cfg *node.Config) {
		if prev != nil {
			prev(i, cfg)
		}
		if i == m.Index {
			cfg.BootstrapExpect = 0
			if tweak != nil {
				tweak(cfg)
			}
		}
	}
	if err := c.start(m); err != nil {
		c.t.Fatalf("add node: %v", err)
	}
	return m
}
