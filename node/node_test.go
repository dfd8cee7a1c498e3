package node

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/sessiond/sessiond/events"
	"github.com/sessiond/sessiond/fsm"
	"github.com/sessiond/sessiond/transport/testkit"
)

func testConfig(t testing.TB, dir string) Config {
	cfg := Default()
	cfg.NodeID = "n1"
	cfg.DataDir = dir
	cfg.RaftAddr = "127.0.0.1:0"
	cfg.HeartbeatTimeout = 50 * time.Millisecond
	cfg.ElectionTimeout = 50 * time.Millisecond
	cfg.Logger = testkit.Logger(t, slog.LevelWarn)
	return cfg
}

// startNode starts a node and waits until it is ready.
func startNode(t testing.TB, cfg Config) *Node {
	t.Helper()
	n, err := New(cfg)
	if err != nil {
		t.Fatalf("start node: %v", err)
	}
	testkit.Eventually(t, 10*time.Second, "node ready", n.Ready)
	return n
}

func ctx(t testing.TB) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return c
}

func TestNode_RestartRestoresSessionsAndRevocations(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(t, dir)
	cfg.SnapshotThreshold = 4 // some state comes back from a snapshot, the rest from the log
	n := startNode(t, cfg)

	kept, err := n.CreateSession(ctx(t), CreateRequest{UserID: "alice", App: "web", AuthMethod: events.AuthImpersonation})
	if err != nil {
		t.Fatal(err)
	}
	revoked, err := n.CreateSession(ctx(t), CreateRequest{UserID: "alice", App: "web", AuthMethod: events.AuthImpersonation})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Snapshot(); err != nil {
		t.Fatalf("snapshot: %v", err)
	}
	if _, err := n.Logout(ctx(t), revoked.AccessToken); err != nil {
		t.Fatal(err)
	}
	refreshed, err := n.Refresh(ctx(t), kept.RefreshToken)
	if err != nil {
		t.Fatal(err)
	}
	lastIndex := n.AppliedIndex()
	if err := n.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}

	n = startNode(t, cfg)
	defer n.Close()
	if n.AppliedIndex() < lastIndex {
		t.Fatalf("applied index %d after restart, had %d", n.AppliedIndex(), lastIndex)
	}
	if _, err := n.Validate(context.Background(), refreshed.AccessToken); err != nil {
		t.Errorf("refreshed session does not validate after restart: %v", err)
	}
	if _, err := n.Validate(context.Background(), kept.AccessToken); !errors.Is(err, fsm.ErrUnauthenticated) {
		t.Errorf("rotated access token: got %v, want ErrUnauthenticated", err)
	}
	if _, err := n.Validate(context.Background(), revoked.AccessToken); !errors.Is(err, fsm.ErrUnauthenticated) {
		t.Errorf("logged-out session validates after restart: %v", err)
	}
	if info, err := n.Introspect(context.Background(), revoked.RefreshToken); err != nil || info.Status != fsm.StatusRevoked {
		t.Errorf("logged-out refresh token introspects as %s (%v), want revoked", info.Status, err)
	}
}

func TestNode_SecondProcessOnSameDataDirIsRefused(t *testing.T) {
	dir := t.TempDir()
	n := startNode(t, testConfig(t, dir))
	defer n.Close()
	if _, err := New(testConfig(t, dir)); !errors.Is(err, ErrDataDirInUse) {
		t.Fatalf("second node on the same data dir: got %v, want ErrDataDirInUse", err)
	}
}

func TestNode_LeaderSweepsExpiredSessions(t *testing.T) {
	clock := testkit.NewClock(time.Now())
	cfg := testConfig(t, t.TempDir())
	cfg.Clock = clock.Now
	cfg.SweepInterval = 10 * time.Millisecond
	n := startNode(t, cfg)
	defer n.Close()

	is, err := n.CreateSession(ctx(t), CreateRequest{UserID: "bob", App: "default", AuthMethod: events.AuthImpersonation})
	if err != nil {
		t.Fatal(err)
	}
	if n.FSM().Stats().Sessions != 1 {
		t.Fatal("session not stored")
	}
	// Past the refresh expiry (22m30s by default) and one GC bucket more.
	clock.Advance(25 * time.Minute)
	testkit.Eventually(t, 5*time.Second, "expired session to be collected", func() bool { return n.FSM().Stats().Sessions == 0 })
	if _, err := n.Validate(context.Background(), is.AccessToken); !errors.Is(err, fsm.ErrUnauthenticated) {
		t.Errorf("collected session still validates: %v", err)
	}
}

func TestNode_EventTimeNeverGoesBack(t *testing.T) {
	clock := testkit.NewClock(time.Now())
	cfg := testConfig(t, t.TempDir())
	cfg.Clock = clock.Now
	n := startNode(t, cfg)
	defer n.Close()

	first, err := n.CreateSession(ctx(t), CreateRequest{UserID: "carol", App: "default", AuthMethod: events.AuthImpersonation})
	if err != nil {
		t.Fatal(err)
	}
	clock.Advance(-time.Hour) // the wall clock steps back
	second, err := n.CreateSession(ctx(t), CreateRequest{UserID: "carol", App: "default", AuthMethod: events.AuthImpersonation})
	if err != nil {
		t.Fatal(err)
	}
	if second.Session.CreatedAt < first.Session.CreatedAt {
		t.Fatalf("event time went back: %d then %d", first.Session.CreatedAt, second.Session.CreatedAt)
	}
}

func TestNode_WriteAfterCloseIsUnavailable(t *testing.T) {
	n := startNode(t, testConfig(t, t.TempDir()))
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	_, err := n.CreateSession(ctx(t), CreateRequest{UserID: "dave", App: "default", AuthMethod: events.AuthImpersonation})
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("write after close: got %v, want ErrUnavailable", err)
	}
}

func TestNode_RacingRefreshesHaveOneWinner(t *testing.T) {
	n := startNode(t, testConfig(t, t.TempDir()))
	defer n.Close()
	is, err := n.CreateSession(ctx(t), CreateRequest{UserID: "erin", App: "default", AuthMethod: events.AuthImpersonation})
	if err != nil {
		t.Fatal(err)
	}
	const racers = 16
	var wg sync.WaitGroup
	wins := make(chan Issued, racers)
	for range racers {
		wg.Go(func() {
			if got, err := n.Refresh(ctx(t), is.RefreshToken); err == nil {
				wins <- got
			}
		})
	}
	wg.Wait()
	close(wins)
	if len(wins) != 1 {
		t.Fatalf("%d refreshes of one token succeeded, want exactly 1", len(wins))
	}
}

func TestMintToken_FormatAndUniqueness(t *testing.T) {
	seen := map[string]bool{}
	for range 1000 {
		tok, h := mintToken(AccessTokenPrefix, "")
		if !wellFormed(tok, AccessTokenPrefix) || wellFormed(tok, RefreshTokenPrefix) {
			t.Fatalf("minted token %q is not a well-formed access token", tok[:6])
		}
		if h != events.HashToken(tok) {
			t.Fatal("hash does not match the token")
		}
		if seen[tok] {
			t.Fatal("token minted twice")
		}
		seen[tok] = true
	}
	for _, bad := range []string{"", "sa_", "sa_" + string(make([]byte, 43)), "xx_0123456789012345678901234567890123456789abc"} {
		if wellFormed(bad, AccessTokenPrefix) {
			t.Errorf("%q accepted as well formed", bad)
		}
	}
}
