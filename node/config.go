package node

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/sessiond/sessiond/node/password"
	"github.com/sessiond/sessiond/transport"
)

// Config configures a Node. Build it from Default and change what differs.
type Config struct {
	// NodeID is this node's stable Raft server id.
	NodeID string
	// DataDir holds the Raft log (raft.db) and snapshots. Created if missing.
	DataDir string
	// RaftAddr is the address Raft listens on (host:port).
	RaftAddr string
	// AdvertiseAddr is the host other nodes reach this one at; empty means
	// the host of RaftAddr.
	AdvertiseAddr string

	// HTTPAddr is the address of this node's HTTP API, announced to peers.
	HTTPAddr string
	// Region names where this node runs; Voter false makes it a read
	// replica (a Raft non-voter) that never counts toward quorum.
	Region string
	Voter  bool
	// Regions lists every region of the cluster, the same on every node.
	// With two or more the node runs a Raft group per region and the
	// global group (regions.go, docs/regions.md); with none or one, the one
	// group of a single-region cluster.
	Regions []string

	// GossipAddr is where memberlist listens; empty disables discovery (a
	// lone node). GossipAdvertiseAddr is what peers dial (default: the host
	// of AdvertiseAddr, or of GossipAddr, with GossipAddr's port).
	GossipAddr          string
	GossipAdvertiseAddr string
	// GossipKey encrypts gossip (16, 24 or 32 bytes); nodes with another key
	// never see each other.
	GossipKey []byte
	// Join lists gossip addresses of nodes to join, retried until one answers
	// and re-joined periodically so a healed partition reconnects.
	Join []string
	// BootstrapExpect, when above zero and the node has no Raft state, makes
	// the cluster bootstrap once that many voters announcing the same number
	// are alive: the one with the lowest id bootstraps with exactly them.
	BootstrapExpect int
	// DeadNodeTimeout is how long a member must be dead before the leader
	// removes it from the Raft configuration (when that is safe).
	DeadNodeTimeout time.Duration
	// ReconcileInterval is how often the leader compares members with the
	// Raft configuration (also done on every membership change).
	ReconcileInterval time.Duration

	// BootstrapSelf makes a node with no Raft state bootstrap a cluster of
	// itself alone. A node that joins an existing cluster leaves it false
	// and waits for the leader to add it.
	BootstrapSelf bool

	// HeartbeatTimeout and ElectionTimeout are Raft's timing; the leader
	// lease is half the heartbeat timeout.
	HeartbeatTimeout time.Duration
	ElectionTimeout  time.Duration
	// SnapshotInterval and SnapshotThreshold say how often Raft checks for,
	// and how many new entries trigger, a snapshot.
	SnapshotInterval  time.Duration
	SnapshotThreshold uint64
	// TrailingLogs is how many log entries stay after a snapshot, so that a
	// follower slightly behind catches up from the log, not a snapshot.
	TrailingLogs uint64
	// SnapshotsRetained is how many snapshot files are kept.
	SnapshotsRetained int

	// MaxStale bounds how old the state this node vouches for tokens from
	// may be: it answers a validation locally only while it has applied
	// what the leader had applied MaxStale ago, else it confirms through the
	// leader first (vouch.go).
	MaxStale time.Duration

	// LeaderWait bounds how long a write waits for a leader to be known.
	LeaderWait time.Duration
	// SweepInterval is how often the leader checks for expired sessions to
	// garbage-collect.
	SweepInterval time.Duration

	// TLS, when set, makes Raft and forwarding traffic mutual TLS.
	TLS *transport.MutualTLS
	// Faults, when set, lets tests cut pairs of nodes.
	Faults *transport.Faults

	// Passwords hashes and verifies built-in credentials (argon2id), on the
	// node that receives the request, never inside the state machine. Nil
	// means password.DefaultParams with the default concurrency bound.
	Passwords *password.Hasher

	// Logger receives the node's logs, Raft's included.
	Logger *slog.Logger
	// Clock is the node's wall clock: it stamps events (when leading) and is
	// "now" for reads. Tests move it; nil means time.Now.
	Clock func() time.Time

	// noBatchEntries makes the node behave, for batch entries, like a
	// version that predates them: it does not announce that it reads them,
	// packs no writes into them, and stops at one it meets. Tests of mixed
	// versions set it.
	noBatchEntries bool
	// holdImport keeps a node from listing a single-region cluster's users
	// in the directory (importLegacyUsers): tests of the time before that
	// is done set it.
	holdImport bool
}

// Default returns a single-node configuration on 127.0.0.1 with data in ./data.
func Default() Config {
	return Config{
		NodeID:            "node1",
		DataDir:           "data",
		RaftAddr:          "127.0.0.1:7000",
		BootstrapSelf:     true,
		Region:            "default",
		Voter:             true,
		DeadNodeTimeout:   time.Hour,
		ReconcileInterval: 5 * time.Second,
		HeartbeatTimeout:  1000 * time.Millisecond,
		ElectionTimeout:   1000 * time.Millisecond,
		SnapshotInterval:  2 * time.Minute,
		SnapshotThreshold: 8192,
		SnapshotsRetained: 2,
		TrailingLogs:      10240,
		MaxStale:          10 * time.Second,
		LeaderWait:        5 * time.Second,
		SweepInterval:     30 * time.Second,
		Logger:            slog.Default(),
	}
}

// Validate reports the first setting that cannot work.
func (c Config) Validate() error {
	switch {
	case c.NodeID == "":
		return errors.New("node: node id is empty")
	case c.DataDir == "":
		return errors.New("node: data dir is empty")
	case c.HeartbeatTimeout < 10*time.Millisecond || c.ElectionTimeout < 10*time.Millisecond:
		return errors.New("node: raft timeouts must be at least 10ms")
	case c.SnapshotInterval <= 0 || c.SnapshotThreshold == 0 || c.SnapshotsRetained < 1:
		return errors.New("node: snapshot settings must be positive")
	case c.MaxStale <= 0:
		return errors.New("node: max-stale must be positive")
	case c.LeaderWait <= 0 || c.SweepInterval <= 0:
		return errors.New("node: leader wait and sweep interval must be positive")
	case c.Logger == nil:
		return errors.New("node: no logger")
	case c.BootstrapExpect < 0:
		return errors.New("node: bootstrap-expect must not be negative")
	case c.BootstrapExpect > 0 && c.BootstrapSelf:
		return errors.New("node: bootstrap-expect and bootstrapping alone exclude each other")
	case c.BootstrapExpect > 0 && !c.Voter:
		return errors.New("node: a read replica (non-voter) cannot be one of the bootstrap-expect voters")
	case (c.BootstrapExpect > 0 || len(c.Join) > 0) && c.GossipAddr == "":
		return errors.New("node: joining a cluster needs a gossip address")
	case c.GossipAddr != "" && (c.DeadNodeTimeout <= 0 || c.ReconcileInterval <= 0):
		return errors.New("node: dead-node timeout and reconcile interval must be positive")
	}
	if err := c.validateRegions(); err != nil {
		return err
	}
	switch len(c.GossipKey) {
	case 0, 16, 24, 32:
	default:
		return errors.New("node: the gossip key must be 16, 24 or 32 bytes")
	}
	if _, _, err := net.SplitHostPort(c.RaftAddr); err != nil {
		return fmt.Errorf("node: raft address %q: %w", c.RaftAddr, err)
	}
	return nil
}

// advertiseFor is the address peers use for this node's Raft, given the
// address the listener bound: AdvertiseAddr's host (and port, if it has
// one), else the bound address.
func (c Config) advertiseFor(bound string) (string, error) {
	host, port, err := net.SplitHostPort(bound)
	if err != nil {
		return "", err
	}
	if c.AdvertiseAddr != "" {
		host = c.AdvertiseAddr
		if h, p, err := net.SplitHostPort(c.AdvertiseAddr); err == nil {
			host, port = h, p
		}
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		return "", fmt.Errorf("node: raft address %q binds all interfaces: set an advertise address", c.RaftAddr)
	}
	return net.JoinHostPort(host, port), nil
}
