package node

import (
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sessiond/sessiond/events"
	"github.com/sessiond/sessiond/transport/testkit"
)

// leaderOf waits for one of the nodes to lead and be ready for writes.
func leaderOf(t *testing.T, nodes []*Node) *Node {
	t.Helper()
	var leader *Node
	testkit.Eventually(t, 15*time.Second, "a ready leader", func() bool {
		for _, n := range nodes {
			if n.IsLeader() && n.leaderReady.Load() {
				leader = n
				return true
			}
		}
		return false
	})
	return leader
}

// concurrentCreates makes count sessions through n, all at once, and
// returns how many log entries they took.
func concurrentCreates(t *testing.T, n *Node, count int) uint64 {
	t.Helper()
	before := n.AppliedIndex()
	var wg sync.WaitGroup
	errs := make(chan error, count)
	for i := range count {
		wg.Go(func() {
			_, err := n.CreateSession(ctx(t), CreateRequest{UserID: events.UserID(fmt.Sprintf("u%d", i)), App: "default", AuthMethod: events.AuthImpersonation})
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("create: %v", err)
		}
	}
	return n.AppliedIndex() - before
}

// A node of an older version stops at the first batch entry it meets, so
// the leader packs writes only while every server announces that it reads
// them: not while one does not, and again once it has been upgraded.
func TestBatchEntries_OnlyWhileEveryServerReadsThem(t *testing.T) {
	const writes = 64
	// Every node that may lead also logs its warnings here.
	var warnings testkit.SyncBuffer
	seed := mustStart(t, alsoWarnTo(t, gossipConfig(t, "n0", 3), &warnings))
	second := mustStart(t, alsoWarnTo(t, gossipConfig(t, "n1", 3, seed.GossipAddr()), &warnings))
	oldCfg := alsoWarnTo(t, gossipConfig(t, "n2", 3, seed.GossipAddr()), &warnings)
	oldCfg.noBatchEntries = true
	old := mustStart(t, oldCfg)
	nodes := []*Node{seed, second, old}
	testkit.Eventually(t, 15*time.Second, "three voters", func() bool {
		v, _ := voterCount(t, seed)
		return v == 3
	})

	leader := leaderOf(t, nodes)
	if entries := concurrentCreates(t, leader, writes); entries < writes {
		t.Fatalf("with a member of an older version: %d writes took %d entries, want one each", writes, entries)
	}
	if leader.batchEntries.Load() {
		t.Fatal("the leader would pack writes while a member cannot read batch entries")
	}

	upgraded := upgrade(t, old, oldCfg)
	nodes = []*Node{seed, second, upgraded}
	testkit.Eventually(t, 20*time.Second, "the leader to pack writes once every server reads batch entries", func() bool {
		for _, n := range nodes {
			if n.IsLeader() && n.batchEntries.Load() {
				return true
			}
		}
		return false
	})
	leader = leaderOf(t, nodes)
	entries := concurrentCreates(t, leader, writes)
	if entries >= writes {
		t.Fatalf("with every server reading batch entries: %d concurrent writes took %d entries, want fewer", writes, entries)
	}
	t.Logf("%d concurrent writes took %d entries", writes, entries)

	// A node of an older version that joins now is never added: the log
	// holds batch entries it would stop at (its state machine refuses
	// them, and would crash this test). Once upgraded it is.
	lateCfg := gossipConfig(t, "n3", 0, seed.GossipAddr())
	lateCfg.noBatchEntries = true
	late := mustStart(t, lateCfg)
	testkit.Eventually(t, 10*time.Second, "the leader to see the late member", func() bool {
		for _, m := range leader.Members() {
			if m.ID == "n3" && m.Status == "alive" {
				return true
			}
		}
		return false
	})
	testkit.Eventually(t, 10*time.Second, "the leader to decline the late member", func() bool {
		return loggedLine(warnings.String(), "not adding a member of an older version", "member=n3")
	})
	if inRaft(t, leader, "n3") {
		t.Fatal("the leader added a member that cannot read batch entries")
	}
	upgradedLate := upgrade(t, late, lateCfg)
	testkit.Eventually(t, 15*time.Second, "the upgraded member in Raft", func() bool { return inRaft(t, leader, "n3") })
	if err := upgradedLate.WaitForIndex(ctx(t), leader.appliedIndex()); err != nil {
		t.Fatal(err)
	}
	// Every node applies the packed writes to the same state.
	for _, n := range nodes {
		if err := n.WaitForIndex(ctx(t), leader.appliedIndex()); err != nil {
			t.Fatal(err)
		}
		if got, want := n.fsm.Stats().Sessions, leader.fsm.Stats().Sessions; got != want {
			t.Errorf("node %s holds %d sessions, the leader %d", n.ID(), got, want)
		}
	}
}

// alsoWarnTo makes cfg's node log its warnings to w as well as to the test
// log.
func alsoWarnTo(t *testing.T, cfg Config, w io.Writer) Config {
	cfg.Logger = slog.New(slog.NewTextHandler(io.MultiWriter(testkit.NewLogWriter(t), w), &slog.HandlerOptions{Level: slog.LevelWarn}))
	return cfg
}

// loggedLine reports whether one line of logs holds every part.
func loggedLine(logs string, parts ...string) bool {
	for line := range strings.Lines(logs) {
		if !slices.ContainsFunc(parts, func(p string) bool { return !strings.Contains(line, p) }) {
			return true
		}
	}
	return false
}

// upgrade stops a node that behaves as an older version and starts it
// again on its data dir as this version. It keeps its gossip address:
// memberlist would refuse the name on another one for a while if the
// leave were lost.
func upgrade(t *testing.T, old *Node, cfg Config) *Node {
	t.Helper()
	cfg.GossipAddr = old.GossipAddr()
	old.Close()
	cfg.noBatchEntries = false
	return mustStart(t, cfg)
}

func inRaft(t *testing.T, n *Node, id string) bool {
	servers, err := n.Servers()
	if err != nil {
		return false
	}
	for _, s := range servers {
		if s.ID == id {
			return true
		}
	}
	return false
}

// Without gossip the leader knows no other node's version: alone it packs,
// and once it has added a server it does not.
func TestBatchEntries_WithoutGossipOnlyWhenAlone(t *testing.T) {
	const writes = 64
	loneCfg := testConfig(t, t.TempDir())
	first := startNode(t, loneCfg)
	if entries := concurrentCreates(t, first, writes); entries >= writes {
		t.Errorf("a lone node: %d concurrent writes took %d entries, want fewer", writes, entries)
	}
	// Restarted on its data dir, it replays the batch entries to the same
	// state.
	want := first.fsm.Stats().Sessions
	first.Close()
	lone := startNode(t, loneCfg)
	defer lone.Close()
	if got := lone.fsm.Stats().Sessions; got != want || got < writes {
		t.Fatalf("after a restart %d sessions, before %d", got, want)
	}

	testkit.Eventually(t, 5*time.Second, "the lone node to pack", lone.batchEntries.Load)
	cfg := testConfig(t, t.TempDir())
	cfg.NodeID = "n2"
	cfg.BootstrapSelf = false
	second, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close()
	if err := lone.AddServer(second.ID(), second.RaftAddr(), true); err != nil {
		t.Fatal(err)
	}
	if lone.batchEntries.Load() {
		t.Fatal("the leader still packs after adding a server of unknown version")
	}
	if entries := concurrentCreates(t, lone, writes); entries < writes {
		t.Errorf("a cluster without gossip: %d writes took %d entries, want one each", writes, entries)
	}
}
