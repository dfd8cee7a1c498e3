package node

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sessiond/sessiond/events"
	"github.com/sessiond/sessiond/fsm"
	"github.com/sessiond/sessiond/transport/testkit"
)

func mustMetric(t testing.TB, g prometheus.Gatherer, name string, labels ...string) float64 {
	t.Helper()
	v, ok := testkit.Gather(t, g).Get(name, labels...)
	if !ok {
		t.Fatalf("no sample %s%v", name, labels)
	}
	return v
}

func expectMetric(t testing.TB, g prometheus.Gatherer, want float64, name string, labels ...string) {
	t.Helper()
	if got := mustMetric(t, g, name, labels...); got != want {
		t.Errorf("%s%v = %v, want %v", name, labels, got, want)
	}
}

func metricsTestContext(t testing.TB) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return c
}

func TestMetrics_RaftGaugesOnASingleLeader(t *testing.T) {
	n := startNode(t, testConfig(t, t.TempDir()))
	defer n.Close()
	g := n.Metrics()
	testkit.Eventually(t, 5*time.Second, "the leader to have applied its commit index", func() bool {
		return mustMetric(t, g, "sessiond_raft_apply_lag") == 0
	})
	expectMetric(t, g, 1, "sessiond_raft_state", "state", "leader")
	for _, s := range []string{"follower", "candidate", "shutdown"} {
		expectMetric(t, g, 0, "sessiond_raft_state", "state", s)
	}
	expectMetric(t, g, 1, "sessiond_raft_leader")
	expectMetric(t, g, 0, "sessiond_raft_last_contact_seconds")
	if term := mustMetric(t, g, "sessiond_raft_term"); term < 1 {
		t.Errorf("sessiond_raft_term = %v, want at least 1", term)
	}
	before := mustMetric(t, g, "sessiond_raft_applied_index")
	if _, err := n.CreateSession(metricsTestContext(t), CreateRequest{UserID: "alice", AuthMethod: events.AuthImpersonation}); err != nil {
		t.Fatal(err)
	}
	if after := mustMetric(t, g, "sessiond_raft_applied_index"); after < before+1 {
		t.Errorf("applied index went from %v to %v after a write", before, after)
	}
	if c, a := mustMetric(t, g, "sessiond_raft_commit_index"), mustMetric(t, g, "sessiond_raft_applied_index"); c < a {
		t.Errorf("commit index %v below applied index %v", c, a)
	}
	// Discovery is off: no member is known.
	for _, s := range []string{"alive", "suspect", "dead", "left"} {
		expectMetric(t, g, 0, "sessiond_gossip_members", "state", s)
	}

	n.Close()
	expectMetric(t, g, 1, "sessiond_raft_state", "state", "shutdown")
	expectMetric(t, g, 0, "sessiond_raft_leader")
}

// sessionGauges are the values of the session gauges.
type sessionGauges struct{ stored, active, revoked float64 }

// tally lists the sessions a test made, to count the stored ones one by one.
type tally struct{ ids []events.SessionID }

func (ta *tally) add(iss Issued) { ta.ids = append(ta.ids, iss.Session.ID()) }

// count is the brute-force count over the state: every stored session is
// active unless revocations took all its tokens, which its status at its
// creation, as stored now, tells (every token lives past that moment).
func (ta *tally) count(f *fsm.FSM) sessionGauges {
	var c sessionGauges
	for _, id := range ta.ids {
		s, ok := f.Session(id)
		if !ok {
			continue
		}
		c.stored++
		if s.Status(s.CreatedAt) == fsm.StatusActive {
			c.active++
		} else {
			c.revoked++
		}
	}
	return c
}

// wantSessionGauges checks n's session gauges against want and against the
// brute-force count.
func wantSessionGauges(t *testing.T, n *Node, ta *tally, want sessionGauges) {
	t.Helper()
	g := n.Metrics()
	got := sessionGauges{mustMetric(t, g, "sessiond_sessions_stored"), mustMetric(t, g, "sessiond_sessions_active"),
		mustMetric(t, g, "sessiond_sessions_revoked")}
	if brute := ta.count(n.FSM()); got != brute {
		t.Errorf("session gauges %+v, the stored sessions %+v", got, brute)
	}
	if got != want {
		t.Errorf("session gauges %+v, want %+v", got, want)
	}
}

func TestMetrics_SessionGaugesAreExactAfterEveryChange(t *testing.T) {
	clock := testkit.NewClock(time.Now().UTC())
	cfg := testConfig(t, t.TempDir())
	cfg.Clock = clock.Now
	cfg.SweepInterval = 20 * time.Millisecond
	n := startNode(t, cfg)
	defer func() { n.Close() }()
	ctx := metricsTestContext(t)
	p := n.Policy()
	p.MaxSessionsPerUser = 3
	p.OnSessionLimit = events.OnLimitEvictOldest
	if _, err := n.SetPolicy(ctx, p); err != nil {
		t.Fatal(err)
	}

	ta := &tally{}
	create := func(user events.UserID, app string) Issued {
		t.Helper()
		iss, err := n.CreateSession(ctx, CreateRequest{UserID: user, App: app, AuthMethod: events.AuthImpersonation})
		if err != nil {
			t.Fatal(err)
		}
		ta.add(iss)
		return iss
	}
	alice := []Issued{create("alice", "web"), create("alice", "web"), create("alice", "web")}
	create("bob", "web")
	create("bob", "web")
	carol := create("carol", "web")
	create("dan", "legacy")
	create("erin", "web")
	wantSessionGauges(t, n, ta, sessionGauges{8, 8, 0})
	expectMetric(t, n.Metrics(), 5, "sessiond_users")

	// A refresh keeps the session; reusing the rotated token revokes it.
	if _, err := n.Refresh(ctx, carol.RefreshToken); err != nil {
		t.Fatal(err)
	}
	wantSessionGauges(t, n, ta, sessionGauges{8, 8, 0})
	if _, err := n.Refresh(ctx, carol.RefreshToken); !errors.Is(err, fsm.ErrRefreshReuse) {
		t.Fatalf("reused refresh token: %v", err)
	}
	wantSessionGauges(t, n, ta, sessionGauges{8, 7, 1})

	// A revocation by id, twice: the second changes nothing.
	for range 2 {
		if _, err := n.RevokeSession(ctx, alice[0].Session.ID(), events.RevokeWholeSession, events.ReasonAdmin); err != nil {
			t.Fatal(err)
		}
	}
	wantSessionGauges(t, n, ta, sessionGauges{8, 6, 2})

	if revoked, _, err := n.ForceLogout(ctx, "bob", events.ReasonAdmin, ""); err != nil || revoked != 2 {
		t.Fatalf("force logout: %d, %v", revoked, err)
	}
	wantSessionGauges(t, n, ta, sessionGauges{8, 4, 4})
	if revoked, _, err := n.BulkRevoke(ctx, time.Time{}, []string{"legacy"}); err != nil || revoked != 1 {
		t.Fatalf("bulk revoke: %d, %v", revoked, err)
	}
	wantSessionGauges(t, n, ta, sessionGauges{8, 3, 5})
	if revoked, _, err := n.DeleteUser(ctx, "erin"); err != nil || revoked != 1 {
		t.Fatalf("delete user: %d, %v", revoked, err)
	}
	wantSessionGauges(t, n, ta, sessionGauges{8, 2, 6})

	// alice holds two active sessions: a third fits, a fourth evicts the
	// oldest.
	create("alice", "web")
	wantSessionGauges(t, n, ta, sessionGauges{9, 3, 6})
	create("alice", "web")
	wantSessionGauges(t, n, ta, sessionGauges{10, 3, 7})
	if s, _ := n.Session(alice[1].Session.ID()); !s.Revoked() {
		t.Fatal("the oldest active session was not evicted")
	}

	// A restart: the state comes back from a snapshot and the log after it.
	if err := n.Snapshot(); err != nil {
		t.Fatal(err)
	}
	create("frank", "web")
	if _, err := n.RevokeSession(ctx, alice[2].Session.ID(), events.RevokeWholeSession, events.ReasonAdmin); err != nil {
		t.Fatal(err)
	}
	wantSessionGauges(t, n, ta, sessionGauges{11, 3, 8})
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	n = startNode(t, cfg)
	expectMetric(t, n.Metrics(), 1, "sessiond_snapshot_restore_seconds")
	wantSessionGauges(t, n, ta, sessionGauges{11, 3, 8})

	// Once every session has ended, garbage collection removes them all,
	// tombstones included.
	clock.Advance(31 * 24 * time.Hour)
	testkit.Eventually(t, 5*time.Second, "garbage collection", func() bool { return mustMetric(t, n.Metrics(), "sessiond_sessions_stored") == 0 })
	wantSessionGauges(t, n, ta, sessionGauges{0, 0, 0})
	if _, ok := testkit.Gather(t, n.Metrics()).Get("sessiond_events_applied_total", "type", "SessionsExpired", "outcome", "ok"); !ok {
		t.Error("no SessionsExpired counted")
	}
}

// A follower that joins after the leader compacted its log gets the state
// as a snapshot, and its gauges count it exactly.
func TestMetrics_SessionGaugesAfterInstallingTheLeadersSnapshot(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	cfg.NodeID = "a"
	cfg.TrailingLogs = 0 // a snapshot drops the whole log
	leader := startNode(t, cfg)
	defer leader.Close()
	ctx := metricsTestContext(t)
	ta := &tally{}
	for _, user := range []events.UserID{"alice", "alice", "bob", "carol"} {
		iss, err := leader.CreateSession(ctx, CreateRequest{UserID: user, AuthMethod: events.AuthImpersonation})
		if err != nil {
			t.Fatal(err)
		}
		ta.add(iss)
	}
	if _, _, err := leader.ForceLogout(ctx, "alice", events.ReasonAdmin, ""); err != nil {
		t.Fatal(err)
	}
	if err := leader.Snapshot(); err != nil {
		t.Fatal(err)
	}
	want := sessionGauges{4, 2, 2}
	wantSessionGauges(t, leader, ta, want)

	fcfg := testConfig(t, t.TempDir())
	fcfg.NodeID = "b"
	fcfg.BootstrapSelf = false
	follower, err := New(fcfg)
	if err != nil {
		t.Fatal(err)
	}
	defer follower.Close()
	testkit.Eventually(t, 10*time.Second, "adding the follower", func() bool {
		err := leader.AddServer(follower.ID(), follower.RaftAddr(), true)
		if err != nil {
			t.Logf("add follower: %v (retrying)", err)
		}
		return err == nil
	})
	testkit.Eventually(t, 10*time.Second, "the follower to install the snapshot and catch up", func() bool {
		return mustMetric(t, follower.Metrics(), "sessiond_snapshot_restore_seconds") == 1 &&
			follower.AppliedIndex() >= leader.AppliedIndex()
	})
	wantSessionGauges(t, follower, ta, want)
}

func TestMetrics_SnapshotPersistAndRestoreAreTimed(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	n := startNode(t, cfg)
	if _, err := n.CreateSession(metricsTestContext(t), CreateRequest{UserID: "alice", AuthMethod: events.AuthImpersonation}); err != nil {
		t.Fatal(err)
	}
	expectMetric(t, n.Metrics(), 0, "sessiond_snapshot_persist_seconds")
	if err := n.Snapshot(); err != nil {
		t.Fatal(err)
	}
	expectMetric(t, n.Metrics(), 1, "sessiond_snapshot_persist_seconds")
	expectMetric(t, n.Metrics(), 0, "sessiond_snapshot_restore_seconds")
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}

	n = startNode(t, cfg)
	defer n.Close()
	expectMetric(t, n.Metrics(), 1, "sessiond_snapshot_restore_seconds")
	expectMetric(t, n.Metrics(), 1, "sessiond_sessions_stored")
	expectMetric(t, n.Metrics(), 1, "sessiond_sessions_active")
}

func TestMetrics_TouchFlushesCounted(t *testing.T) {
	n := startNode(t, testConfig(t, t.TempDir()))
	defer n.Close()
	ctx := metricsTestContext(t)
	p := n.Policy()
	p.IdleTimeout = time.Minute
	if _, err := n.SetPolicy(ctx, p); err != nil {
		t.Fatal(err)
	}
	iss, err := n.CreateSession(ctx, CreateRequest{UserID: "alice", AuthMethod: events.AuthImpersonation})
	if err != nil {
		t.Fatal(err)
	}
	// A use at least a second after creation is one to replicate.
	n.touches.record(iss.Session.ID(), n.now()+int64(2*time.Second), int64(time.Minute))
	g := n.Metrics()
	testkit.Eventually(t, 5*time.Second, "a touch flush", func() bool { return mustMetric(t, g, "sessiond_touch_flushes_total") >= 1 })
	if v := mustMetric(t, g, "sessiond_touched_sessions_total"); v < 1 {
		t.Errorf("sessiond_touched_sessions_total = %v after a flush", v)
	}
	if _, ok := testkit.Gather(t, g).Get("sessiond_events_applied_total", "type", "SessionsTouched", "outcome", "ok"); !ok {
		t.Error("no SessionsTouched counted")
	}
}

func TestMetrics_RuntimeAndProcessCollectors(t *testing.T) {
	n := startNode(t, testConfig(t, t.TempDir()))
	defer n.Close()
	if _, ok := testkit.Gather(t, n.Metrics()).Get("go_goroutines"); !ok {
		t.Error("no go_goroutines: Go collector missing")
	}
	if _, ok := testkit.Gather(t, n.Metrics()).Get("process_start_time_seconds"); !ok {
		t.Error("no process_start_time_seconds: process collector missing")
	}
}

// Two nodes in one process keep their numbers apart.
func TestMetrics_RegistryPerNode(t *testing.T) {
	a := startNode(t, testConfig(t, t.TempDir()))
	defer a.Close()
	cfgB := testConfig(t, t.TempDir())
	cfgB.NodeID = "n2"
	b := startNode(t, cfgB)
	defer b.Close()
	if _, err := a.CreateSession(metricsTestContext(t), CreateRequest{UserID: "alice", AuthMethod: events.AuthImpersonation}); err != nil {
		t.Fatal(err)
	}
	expectMetric(t, a.Metrics(), 1, "sessiond_sessions_stored")
	expectMetric(t, b.Metrics(), 0, "sessiond_sessions_stored")
}

// Raft logs through hclog; the node routes them into its slog logger with
// the subsystem named.
func TestHCLog_RaftLogsReachSlog(t *testing.T) {
	var out testkit.SyncBuffer
	cfg := testConfig(t, t.TempDir())
	cfg.Logger = slog.New(slog.NewJSONHandler(&out, &slog.HandlerOptions{Level: slog.LevelDebug}))
	n := startNode(t, cfg)
	n.Close()
	logs := out.String()
	if !strings.Contains(logs, `"subsystem":"raft"`) {
		t.Fatalf("no log line from raft in:\n%s", logs)
	}
	if !strings.Contains(logs, "entering leader state") {
		t.Errorf("raft's election was not logged through slog:\n%s", logs)
	}
}
