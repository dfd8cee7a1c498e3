package node

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/sessiond/sessiond/events"
	"github.com/sessiond/sessiond/fsm"
)

// metricValue reads one sample from a gatherer: a counter's or gauge's
// value, a histogram's sample count. labels are name, value pairs that must
// all match. ok is false when no such sample exists.
func metricValue(t testing.TB, g prometheus.Gatherer, name string, labels ...string) (v float64, ok bool) {
	t.Helper()
	fams, err := g.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			if !labelsMatch(m, labels) {
				continue
			}
			switch {
			case m.Counter != nil:
				return m.GetCounter().GetValue(), true
			case m.Gauge != nil:
				return m.GetGauge().GetValue(), true
			case m.Histogram != nil:
				return float64(m.GetHistogram().GetSampleCount()), true
			}
		}
	}
	return 0, false
}

func labelsMatch(m *dto.Metric, pairs []string) bool {
	for i := 0; i+1 < len(pairs); i += 2 {
		found := false
		for _, l := range m.GetLabel() {
			if l.GetName() == pairs[i] && l.GetValue() == pairs[i+1] {
				found = true
			}
		}
		if !found {
			return false
		}
	}
	return true
}

func mustMetric(t testing.TB, g prometheus.Gatherer, name string, labels ...string) float64 {
	t.Helper()
	v, ok := metricValue(t, g, name, labels...)
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
	waitFor(t, 5*time.Second, "the leader to have applied its commit index", func() bool {
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

func TestMetrics_ActiveSessionsLeaveOutTombstonesUntilCollected(t *testing.T) {
	clock := &testClock{now: time.Now().UTC()}
	cfg := testConfig(t, t.TempDir())
	cfg.Clock = clock.Now
	cfg.SweepInterval = 20 * time.Millisecond
	n := startNode(t, cfg)
	defer n.Close()
	g := n.Metrics()
	ctx := metricsTestContext(t)

	create := func(user events.UserID) Issued {
		t.Helper()
		iss, err := n.CreateSession(ctx, CreateRequest{UserID: user, AuthMethod: events.AuthImpersonation})
		if err != nil {
			t.Fatal(err)
		}
		return iss
	}
	alice := []Issued{create("alice"), create("alice"), create("alice")}
	create("bob")
	create("bob")
	carol := create("carol")
	expectMetric(t, g, 6, "sessiond_sessions_stored")
	expectMetric(t, g, 6, "sessiond_sessions_active")
	expectMetric(t, g, 3, "sessiond_users")

	// One revocation by id, one force logout of two sessions, one refresh
	// token reuse: four tombstones.
	if _, err := n.RevokeSession(ctx, alice[0].Session.ID(), events.RevokeWholeSession, events.ReasonAdmin); err != nil {
		t.Fatal(err)
	}
	// Revoking it again changes nothing.
	if _, err := n.RevokeSession(ctx, alice[0].Session.ID(), events.RevokeWholeSession, events.ReasonAdmin); err != nil {
		t.Fatal(err)
	}
	if revoked, _, err := n.ForceLogout(ctx, "bob", events.ReasonAdmin, ""); err != nil || revoked != 2 {
		t.Fatalf("force logout: %d, %v", revoked, err)
	}
	if _, err := n.Refresh(ctx, carol.RefreshToken); err != nil {
		t.Fatal(err)
	}
	if _, err := n.Refresh(ctx, carol.RefreshToken); !errors.Is(err, fsm.ErrRefreshReuse) && !errors.Is(err, fsm.ErrUnauthenticated) {
		t.Fatalf("reused refresh token: %v", err)
	}
	expectMetric(t, g, 6, "sessiond_sessions_stored")
	expectMetric(t, g, 2, "sessiond_sessions_active")
	expectMetric(t, g, 1, "sessiond_events_applied_total", "type", "SessionRefreshed", "outcome", "refresh_token_reuse")
	expectMetric(t, g, 1, "sessiond_events_applied_total", "type", "SessionRefreshed", "outcome", "ok")
	expectMetric(t, g, 6, "sessiond_events_applied_total", "type", "SessionCreated", "outcome", "ok")

	// Once every session has ended, garbage collection removes them all,
	// tombstones included, and the tracker forgets them.
	clock.Advance(31 * 24 * time.Hour)
	waitFor(t, 5*time.Second, "garbage collection", func() bool { return mustMetric(t, g, "sessiond_sessions_stored") == 0 })
	expectMetric(t, g, 0, "sessiond_sessions_active")
	if c := n.metrics.tombstones.count(); c != 0 {
		t.Errorf("%d tombstones still tracked after collection", c)
	}
	if _, ok := metricValue(t, g, "sessiond_events_applied_total", "type", "SessionsExpired", "outcome", "ok"); !ok {
		t.Error("no SessionsExpired counted")
	}
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
	waitFor(t, 5*time.Second, "a touch flush", func() bool { return mustMetric(t, g, "sessiond_touch_flushes_total") >= 1 })
	if v := mustMetric(t, g, "sessiond_touched_sessions_total"); v < 1 {
		t.Errorf("sessiond_touched_sessions_total = %v after a flush", v)
	}
	if _, ok := metricValue(t, g, "sessiond_events_applied_total", "type", "SessionsTouched", "outcome", "ok"); !ok {
		t.Error("no SessionsTouched counted")
	}
}

func TestMetrics_RuntimeAndProcessCollectors(t *testing.T) {
	n := startNode(t, testConfig(t, t.TempDir()))
	defer n.Close()
	if _, ok := metricValue(t, n.Metrics(), "go_goroutines"); !ok {
		t.Error("no go_goroutines: Go collector missing")
	}
	if _, ok := metricValue(t, n.Metrics(), "process_start_time_seconds"); !ok {
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

// syncBuffer is a bytes.Buffer safe for a logger and a test at once.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Raft logs through hclog; the node routes them into its slog logger with
// the subsystem named.
func TestHCLog_RaftLogsReachSlog(t *testing.T) {
	var out syncBuffer
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
