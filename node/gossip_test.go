package node

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/sessiond/sessiond/events"
	"github.com/sessiond/sessiond/transport/testkit"
)

// gossipConfig is a fast-timing node that discovers peers through gossip.
func gossipConfig(t *testing.T, id string, expect int, join ...string) Config {
	cfg := testConfig(t, t.TempDir())
	cfg.NodeID = id
	cfg.BootstrapSelf = false
	cfg.BootstrapExpect = expect
	cfg.GossipAddr = "127.0.0.1:0"
	cfg.Join = join
	cfg.HeartbeatTimeout = 200 * time.Millisecond
	cfg.ElectionTimeout = 200 * time.Millisecond
	cfg.ReconcileInterval = 200 * time.Millisecond
	cfg.LeaderWait = 10 * time.Second
	return cfg
}

func mustStart(t *testing.T, cfg Config) *Node {
	t.Helper()
	n, err := New(cfg)
	if err != nil {
		t.Fatalf("start %s: %v", cfg.NodeID, err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

// leaders counts the distinct leaders the nodes report.
func leaders(nodes []*Node) map[string]bool {
	out := map[string]bool{}
	for _, n := range nodes {
		if _, id := n.Leader(); id != "" {
			out[id] = true
		}
	}
	return out
}

func voterCount(t *testing.T, n *Node) (voters, nonvoters int) {
	servers, err := n.Servers()
	if err != nil {
		return 0, 0
	}
	for _, s := range servers {
		if s.Voter {
			voters++
		} else {
			nonvoters++
		}
	}
	return
}

func TestGossip_BootstrapExpectFormsOneCluster(t *testing.T) {
	const size = 3
	seed := mustStart(t, gossipConfig(t, "n0", size))
	nodes := []*Node{seed}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i := 1; i < size; i++ {
		wg.Go(func() {
			n := mustStart(t, gossipConfig(t, fmt.Sprintf("n%d", i), size, seed.GossipAddr()))
			mu.Lock()
			nodes = append(nodes, n)
			mu.Unlock()
		})
	}
	wg.Wait()
	testkit.Eventually(t, 15*time.Second, "every node ready", func() bool {
		for _, n := range nodes {
			if !n.Ready() {
				return false
			}
		}
		return true
	})
	if l := leaders(nodes); len(l) != 1 {
		t.Fatalf("nodes see leaders %v, want exactly one", l)
	}
	for _, n := range nodes {
		testkit.Eventually(t, 10*time.Second, "node "+n.ID()+" to see every voter", func() bool {
			v, _ := voterCount(t, n)
			return v == size
		})
	}
	is, err := nodes[size-1].CreateSession(ctx(t), CreateRequest{UserID: "u", App: "default", AuthMethod: events.AuthImpersonation})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes {
		if err := n.WaitForIndex(ctx(t), is.Index); err != nil {
			t.Fatal(err)
		}
	}
}

func TestGossip_LeaderAddsLateJoinersAndReadReplicas(t *testing.T) {
	seed := mustStart(t, gossipConfig(t, "a", 1))
	testkit.Eventually(t, 10*time.Second, "seed leads", seed.IsLeader)

	voter := mustStart(t, gossipConfig(t, "b", 0, seed.GossipAddr()))
	replicaCfg := gossipConfig(t, "r", 0, seed.GossipAddr())
	replicaCfg.Voter = false
	replicaCfg.Region = "eu-west"
	replica := mustStart(t, replicaCfg)

	testkit.Eventually(t, 15*time.Second, "b as voter and r as non-voter", func() bool {
		v, nv := voterCount(t, seed)
		return v == 2 && nv == 1
	})
	testkit.Eventually(t, 10*time.Second, "replica ready", replica.Ready)
	is, err := replica.CreateSession(ctx(t), CreateRequest{UserID: "u", App: "default", AuthMethod: events.AuthImpersonation})
	if err != nil {
		t.Fatalf("write through a read replica: %v", err)
	}
	if _, err := replica.Validate(context.Background(), is.AccessToken); err != nil {
		t.Fatalf("read replica does not serve its own write: %v", err)
	}
	if err := voter.WaitForIndex(ctx(t), is.Index); err != nil {
		t.Fatal(err)
	}
	var found bool
	for _, m := range seed.Members() {
		if m.ID == "r" {
			found = m.Region == "eu-west" && !m.Voter && m.Status == "alive"
		}
	}
	if !found {
		t.Fatalf("members do not show the replica with its region: %+v", seed.Members())
	}
}

func TestGossip_DeadMemberIsRemovedWhenSafe(t *testing.T) {
	seedCfg := gossipConfig(t, "a", 1)
	// Short, so that the test sees a removal; set before start (the
	// reconcile loop reads it).
	seedCfg.DeadNodeTimeout = 500 * time.Millisecond
	seed := mustStart(t, seedCfg)
	testkit.Eventually(t, 10*time.Second, "seed leads", seed.IsLeader)
	var nodes []*Node
	for _, id := range []string{"b", "c", "d"} {
		cfg := gossipConfig(t, id, 0, seed.GossipAddr())
		nodes = append(nodes, mustStart(t, cfg))
	}
	testkit.Eventually(t, 15*time.Second, "four voters", func() bool { v, _ := voterCount(t, seed); return v == 4 })

	// The leader removes d once it has been gone for the dead-node
	// timeout; three voters remain, the floor.
	if err := nodes[2].Close(); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 20*time.Second, "d removed", func() bool { v, _ := voterCount(t, seed); return v == 3 })

	// c going too must not shrink the cluster below three voters.
	if err := nodes[1].Close(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		servers, err := seed.Servers()
		if err != nil {
			t.Logf("reading the configuration: %v", err)
		} else if voters := countVoters(servers); voters < 3 {
			t.Fatalf("cluster shrank to %d voters: %+v", voters, servers)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestGossip_NodeWithAnotherKeyNeverJoins(t *testing.T) {
	key := bytes.Repeat([]byte{1}, 32)
	cfg := gossipConfig(t, "a", 1)
	cfg.GossipKey = key
	seed := mustStart(t, cfg)

	other := gossipConfig(t, "x", 0, seed.GossipAddr())
	other.GossipKey = bytes.Repeat([]byte{2}, 32)
	stranger := mustStart(t, other)

	friendCfg := gossipConfig(t, "b", 0, seed.GossipAddr())
	friendCfg.GossipKey = key
	mustStart(t, friendCfg)
	testkit.Eventually(t, 15*time.Second, "b among the members", func() bool {
		for _, m := range seed.Members() {
			if m.ID == "b" {
				return true
			}
		}
		return false
	})
	for _, m := range seed.Members() {
		if m.ID == "x" {
			t.Fatal("a node with another gossip key appears among the members")
		}
	}
	if len(stranger.Members()) > 1 {
		t.Fatalf("the stranger sees %d members", len(stranger.Members()))
	}
}

func countVoters(servers []Server) int {
	n := 0
	for _, s := range servers {
		if s.Voter {
			n++
		}
	}
	return n
}
