package clustertest

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sessiond/sessiond/node"
	"github.com/sessiond/sessiond/node/password"
	"github.com/sessiond/sessiond/transport/testkit"
)

// scrapeMember is GET /metrics on a member, parsed.
func scrapeMember(t *testing.T, m *Member) testkit.Metrics {
	t.Helper()
	r, err := testkit.Send(httpClient, http.MethodGet, m.URL+"/metrics", nil)
	if err != nil || r.Status != http.StatusOK {
		t.Fatalf("scrape %s: %d %v", m.ID, r.Status, err)
	}
	return testkit.ParseMetrics(t, r.Body)
}

// A write sent to a follower is forwarded to the leader: the follower
// counts and times it, the leader forwards nothing.
func TestMetrics_FollowerCountsForwardedWrites(t *testing.T) {
	c := Start(t, Options{Size: 3, Tweak: func(_ int, cfg *node.Config) {
		cfg.Passwords = password.NewHasher(password.Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}, 0)
	}})
	c.WaitFor(10*time.Second, "every node ready", c.AllReady)
	leader := c.Leader()
	if leader < 0 {
		t.Fatal("no single leader")
	}
	follower := c.Nodes[(leader+1)%len(c.Nodes)]

	c.WaitFor(10*time.Second, "every node to see three members alive", func() bool {
		for _, m := range c.Running() {
			if scrapeMember(t, m).Value("sessiond_gossip_members", "state", "alive") != 3 {
				return false
			}
		}
		return true
	})
	before := scrapeMember(t, follower)
	leaderBefore := scrapeMember(t, c.Nodes[leader])
	if v := before.Value("sessiond_raft_state", "state", "follower"); v != 1 {
		t.Fatalf("follower reports raft_state{follower} = %v", v)
	}
	if v := before.Value("sessiond_raft_leader"); v != 0 {
		t.Errorf("follower reports raft_leader = %v", v)
	}
	if v := before.Value("sessiond_raft_last_contact_seconds"); v < 0 || v > 5 {
		t.Errorf("follower last contact %v s", v)
	}

	resp, err := follower.Do(http.MethodPost, "/v1/sessions", strings.NewReader(`{"user_id":"alice"}`))
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("create through the follower: %d", resp.StatusCode)
	}

	after := scrapeMember(t, follower)
	if d := after.Value("sessiond_forwarded_writes_total", "outcome", "ok") - before.Value("sessiond_forwarded_writes_total", "outcome", "ok"); d != 1 {
		t.Errorf("follower's forwarded_writes_total{ok} moved by %v, want 1", d)
	}
	if d := after.Value("sessiond_forward_duration_seconds") - before.Value("sessiond_forward_duration_seconds"); d < 1 {
		t.Errorf("follower's forward_duration_seconds count moved by %v, want at least 1", d)
	}
	if d := after.Value("sessiond_events_applied_total", "type", "SessionCreated") - before.Value("sessiond_events_applied_total", "type", "SessionCreated"); d != 1 {
		t.Errorf("follower applied %v SessionCreated, want 1", d)
	}
	leaderAfter := scrapeMember(t, c.Nodes[leader])
	if d := leaderAfter.Value("sessiond_forwarded_writes_total", "outcome", "ok") - leaderBefore.Value("sessiond_forwarded_writes_total", "outcome", "ok"); d != 0 {
		t.Errorf("leader's forwarded_writes_total{ok} moved by %v, want 0", d)
	}
	if v := leaderAfter.Value("sessiond_raft_leader"); v != 1 {
		t.Errorf("leader reports raft_leader = %v", v)
	}
}
