package transport

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"

	"github.com/sessiond/sessiond/transport/testkit"
)

// listFSM records every distinct applied entry in order. Entries are
// unique, so a write retried after an unknown outcome (ErrLeadershipLost)
// is applied once.
type listFSM struct {
	mu      sync.Mutex
	entries []string
}

func (f *listFSM) Apply(l *raft.Log) any {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !slices.Contains(f.entries, string(l.Data)) {
		f.entries = append(f.entries, string(l.Data))
	}
	return len(f.entries)
}

func (f *listFSM) Entries() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.entries)
}

func (f *listFSM) Snapshot() (raft.FSMSnapshot, error) {
	return listSnapshot(f.Entries()), nil
}

func (f *listFSM) Restore(r io.ReadCloser) error {
	defer r.Close()
	var entries []string
	if err := json.NewDecoder(r).Decode(&entries); err != nil {
		return err
	}
	f.mu.Lock()
	f.entries = entries
	f.mu.Unlock()
	return nil
}

type listSnapshot []string

func (s listSnapshot) Persist(sink raft.SnapshotSink) error {
	if err := json.NewEncoder(sink).Encode([]string(s)); err != nil {
		sink.Cancel()
		return err
	}
	return sink.Close()
}

func (listSnapshot) Release() {}

type raftNode struct {
	tr   *Transport
	raft *raft.Raft
	fsm  *listFSM
}

// raftCluster starts n Raft nodes that talk over transports built with the
// given identity and fault layer, and bootstraps them as one cluster.
func raftCluster(t *testing.T, n int, identity func(string) *MutualTLS, faults *Faults) []raftNode {
	t.Helper()
	trs := make([]*Transport, n)
	for i := range trs {
		trs[i] = listen(t, Config{TLS: identity(fmt.Sprintf("node%d", i)), Faults: faults})
	}
	return raftGroupOn(t, trs, func(tr *Transport) raft.StreamLayer { return tr.RaftLayer() })
}

// raftGroupOn starts one Raft node on each transport, each over the stream
// layer layerOf gives it, and bootstraps them as one cluster.
func raftGroupOn(t *testing.T, trs []*Transport, layerOf func(*Transport) raft.StreamLayer) []raftNode {
	t.Helper()
	logOut := testkit.NewLogWriter(t)
	nodes := make([]raftNode, len(trs))
	var servers []raft.Server
	for i, tr := range trs {
		nodes[i] = raftNode{tr: tr, fsm: &listFSM{}}
		servers = append(servers, raft.Server{ID: raft.ServerID(fmt.Sprintf("node%d", i)), Address: srvAddr(tr), Suffrage: raft.Voter})
	}
	for i := range nodes {
		id := fmt.Sprintf("node%d", i)
		hlog := hclog.New(&hclog.LoggerOptions{Name: id, Output: logOut, Level: hclog.Debug})
		trans := raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
			Stream:  layerOf(nodes[i].tr),
			MaxPool: 3,
			Timeout: 2 * time.Second,
			Logger:  hlog.Named("net"),
		})
		cfg := raft.DefaultConfig()
		cfg.LocalID = raft.ServerID(id)
		cfg.HeartbeatTimeout = 100 * time.Millisecond
		cfg.ElectionTimeout = 100 * time.Millisecond
		cfg.LeaderLeaseTimeout = 50 * time.Millisecond
		cfg.CommitTimeout = 5 * time.Millisecond
		cfg.Logger = hlog
		r, err := raft.NewRaft(cfg, nodes[i].fsm, raft.NewInmemStore(), raft.NewInmemStore(), raft.NewInmemSnapshotStore(), trans)
		if err != nil {
			t.Fatalf("NewRaft %s: %v", id, err)
		}
		nodes[i].raft = r
		t.Cleanup(func() {
			// The default group's layer also closes our transport.
			if err := r.Shutdown().Error(); err != nil {
				t.Errorf("shutdown %s: %v", id, err)
			}
		})
		if err := r.BootstrapCluster(raft.Configuration{Servers: servers}).Error(); err != nil {
			t.Fatalf("bootstrap %s: %v", id, err)
		}
	}
	return nodes
}

// waitLeader waits until one of the given nodes is leader and returns it.
func waitLeader(t *testing.T, nodes []raftNode) raftNode {
	t.Helper()
	var leader raftNode
	testkit.Eventually(t, 10*time.Second, "a leader", func() bool {
		for _, n := range nodes {
			if n.raft.State() == raft.Leader {
				leader = n
				return true
			}
		}
		return false
	})
	return leader
}

// apply writes entry through whichever of the nodes leads, retrying while
// leadership moves (short timeouts on a loaded machine make that common).
func apply(t *testing.T, nodes []raftNode, entry string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		leader := waitLeader(t, nodes)
		err := leader.raft.Apply([]byte(entry), 5*time.Second).Error()
		if err == nil {
			return
		}
		retry := errors.Is(err, raft.ErrNotLeader) || errors.Is(err, raft.ErrLeadershipLost) ||
			errors.Is(err, raft.ErrEnqueueTimeout) || errors.Is(err, raft.ErrLeadershipTransferInProgress)
		if !retry || time.Now().After(deadline) {
			t.Fatalf("Apply(%q): %v", entry, err)
		}
		t.Logf("Apply(%q): %v; retrying", entry, err)
	}
}

func waitEntries(t *testing.T, nodes []raftNode, want ...string) {
	t.Helper()
	for _, n := range nodes {
		testkit.Eventually(t, 10*time.Second, fmt.Sprintf("%s to apply %q", n.tr.Addr(), want), func() bool {
			return slices.Equal(n.fsm.Entries(), want)
		})
	}
}

func TestRaft_ReplicatesOverStreamLayer(t *testing.T) {
	modes(t, func(t *testing.T, identity func(string) *MutualTLS) {
		nodes := raftCluster(t, 3, identity, nil)
		apply(t, nodes, "first")
		apply(t, nodes, "second")
		waitEntries(t, nodes, "first", "second")
	})
}

// The fault layer against real Raft: a partitioned leader is replaced and
// misses what is written meanwhile; once healed it catches up.
func TestRaft_PartitionedLeaderIsReplacedAndCatchesUpAfterHeal(t *testing.T) {
	faults := NewFaults()
	nodes := raftCluster(t, 3, newTestCA(t, "cluster-a").mutualTLS, faults)
	apply(t, nodes, "before")
	waitEntries(t, nodes, "before")

	cut := waitLeader(t, nodes)
	var rest []raftNode
	for _, n := range nodes {
		if n.tr != cut.tr {
			faults.Partition(cut.tr.Addr(), n.tr.Addr())
			rest = append(rest, n)
		}
	}
	// Only the two connected nodes can form a quorum.
	apply(t, rest, "during")
	waitEntries(t, rest, "before", "during")
	if got := cut.fsm.Entries(); !slices.Equal(got, []string{"before"}) {
		t.Fatalf("the partitioned node applied %q", got)
	}
	testkit.Eventually(t, 10*time.Second, "the partitioned leader to step down", func() bool {
		return cut.raft.State() != raft.Leader
	})

	faults.Heal()
	apply(t, nodes, "after")
	waitEntries(t, nodes, "before", "during", "after")
}
