package node

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/sessiond/sessiond/events"
	"github.com/sessiond/sessiond/fsm"
	"github.com/sessiond/sessiond/transport"
	"github.com/sessiond/sessiond/transport/testkit"
)

// startCluster starts n nodes: the first bootstraps alone, the leader adds
// the others as voters. All share one fault layer.
func startCluster(t *testing.T, size int) ([]*Node, *transport.Faults) {
	t.Helper()
	faults := transport.NewFaults()
	nodes := make([]*Node, size)
	for i := range nodes {
		cfg := testConfig(t, t.TempDir())
		cfg.NodeID = string(rune('a' + i))
		cfg.BootstrapSelf = i == 0
		cfg.Faults = faults
		cfg.LeaderWait = 10 * time.Second
		// Loose enough for -race on two busy cores.
		cfg.HeartbeatTimeout = 200 * time.Millisecond
		cfg.ElectionTimeout = 200 * time.Millisecond
		n, err := New(cfg)
		if err != nil {
			t.Fatalf("start node %d: %v", i, err)
		}
		t.Cleanup(func() { n.Close() })
		nodes[i] = n
	}
	testkit.Eventually(t, 10*time.Second, "first node leads", nodes[0].IsLeader)
	for _, n := range nodes[1:] {
		testkit.Eventually(t, 10*time.Second, "adding "+n.ID(), func() bool {
			err := nodes[0].AddServer(n.ID(), n.RaftAddr(), true)
			if err != nil {
				t.Logf("add %s: %v (retrying)", n.ID(), err)
			}
			return err == nil
		})
	}
	for _, n := range nodes {
		testkit.Eventually(t, 10*time.Second, "node "+n.ID()+" ready", n.Ready)
		// Ready says nothing of the configuration (its changes are not
		// applied to the state machine): a follower that has not received
		// the entry adding a peer refuses that peer's votes, and a test
		// cutting the leader off then would wait for an election that
		// cannot be won.
		testkit.Eventually(t, 10*time.Second, "node "+n.ID()+" knows every voter", func() bool {
			servers, err := n.Servers()
			return err == nil && len(servers) == size
		})
	}
	return nodes, faults
}

func TestCluster_FollowerForwardsWritesAndAppliesBeforeAnswering(t *testing.T) {
	nodes, _ := startCluster(t, 3)
	follower := nodes[2]
	if follower.IsLeader() {
		t.Fatal("expected node c to follow")
	}
	is, err := follower.CreateSession(ctx(t), CreateRequest{UserID: "alice", App: "default", AuthMethod: events.AuthImpersonation})
	if err != nil {
		t.Fatalf("create through a follower: %v", err)
	}
	// Read-your-writes on the node that answered, with no wait.
	if _, err := follower.Validate(context.Background(), is.AccessToken); err != nil {
		t.Fatalf("the answering follower has not applied its own write: %v", err)
	}
	// Every node reaches the same state at that index.
	for _, n := range nodes {
		if err := n.WaitForIndex(ctx(t), is.Index); err != nil {
			t.Fatal(err)
		}
		if _, err := n.Validate(context.Background(), is.AccessToken); err != nil {
			t.Errorf("node %s: %v", n.ID(), err)
		}
	}
	// Business outcomes travel back: a reused refresh token is theft on a
	// follower too.
	refreshed, err := nodes[1].Refresh(ctx(t), is.RefreshToken)
	if err != nil {
		t.Fatalf("refresh through a follower: %v", err)
	}
	if _, err := follower.Refresh(ctx(t), is.RefreshToken); !errors.Is(err, fsm.ErrRefreshReuse) {
		t.Fatalf("reuse through a follower: got %v, want ErrRefreshReuse", err)
	}
	if _, err := follower.Validate(context.Background(), refreshed.AccessToken); err == nil {
		t.Fatal("the session survived refresh-token reuse")
	}
}

func TestCluster_WritesFailOverToNewLeader(t *testing.T) {
	nodes, _ := startCluster(t, 3)
	if err := nodes[0].Close(); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	is, err := nodes[2].CreateSession(ctx(t), CreateRequest{UserID: "bob", App: "default", AuthMethod: events.AuthImpersonation})
	if err != nil {
		t.Fatalf("write after the leader stopped: %v", err)
	}
	t.Logf("write committed %s after the leader stopped", time.Since(start))
	if _, err := nodes[1].Validate(context.Background(), is.AccessToken); err != nil {
		if err := nodes[1].WaitForIndex(ctx(t), is.Index); err != nil {
			t.Fatal(err)
		}
		if _, err := nodes[1].Validate(context.Background(), is.AccessToken); err != nil {
			t.Fatalf("other survivor: %v", err)
		}
	}
}

func TestCluster_MinorityCannotWrite(t *testing.T) {
	nodes, faults := startCluster(t, 3)
	cut := nodes[2]
	for _, other := range nodes[:2] {
		faults.Partition(cut.RaftAddr(), other.RaftAddr())
	}
	c, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_, err := cut.CreateSession(c, CreateRequest{UserID: "carol", App: "default", AuthMethod: events.AuthImpersonation})
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("write on a cut-off node: got %v, want ErrUnavailable", err)
	}
	// The majority side still writes.
	var majority *Node
	testkit.Eventually(t, 10*time.Second, "a leader on the majority side", func() bool {
		for _, n := range nodes[:2] {
			if n.IsLeader() {
				majority = n
				return true
			}
		}
		return false
	})
	if _, err := majority.CreateSession(ctx(t), CreateRequest{UserID: "carol", App: "default", AuthMethod: events.AuthImpersonation}); err != nil {
		t.Fatalf("majority write: %v", err)
	}
	faults.Heal()
	testkit.Eventually(t, 10*time.Second, "the healed node catching up", func() bool {
		return cut.AppliedIndex() >= majority.AppliedIndex()
	})
}
