package clustertest

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sessiond/sessiond/node"
	"github.com/sessiond/sessiond/transport"
)

type tokens struct {
	SessionID    string `json:"session_id"`
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
	Index        uint64 `json:"index"`
}

func create(t *testing.T, m *Member, user string) (tokens, int) {
	t.Helper()
	resp, err := m.Do("POST", "/v1/sessions", strings.NewReader(`{"user_id":"`+user+`"}`))
	if err != nil {
		return tokens{}, 0
	}
	defer resp.Body.Close()
	var tok tokens
	if resp.StatusCode == http.StatusCreated {
		if err := json.NewDecoder(resp.Body).Decode(&tok); err != nil {
			t.Fatal(err)
		}
	}
	return tok, resp.StatusCode
}

// validate is GET /v1/session with the token; it returns the status code.
func validate(t *testing.T, m *Member, access, query string) int {
	t.Helper()
	resp, err := m.Do("GET", "/v1/session"+query, nil, "Authorization", "Bearer "+access)
	if err != nil {
		return 0
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

func TestCluster_KilledLeaderIsReplacedAndNothingAcknowledgedIsLost(t *testing.T) {
	c := Start(t, Options{Size: 3})
	var acked []tokens
	for i := range 20 {
		tok, code := create(t, c.Nodes[i%3], fmt.Sprintf("user%d", i))
		if code != http.StatusCreated {
			t.Fatalf("create %d: status %d", i, code)
		}
		acked = append(acked, tok)
	}
	old := c.Leader()
	killed := time.Now()
	c.Kill(old)
	survivor := c.Nodes[(old+1)%3]
	var elapsed time.Duration
	c.WaitFor(20*time.Second, "a write to succeed after the leader died", func() bool {
		_, code := create(t, survivor, "after")
		elapsed = time.Since(killed)
		return code == http.StatusCreated
	})
	t.Logf("a new leader served a write %s after the old one was killed", elapsed)
	for _, m := range c.Running() {
		for _, tok := range acked {
			if code := validate(t, m, tok.AccessToken, "?min_index="+strconv.FormatUint(tok.Index, 10)); code != http.StatusOK {
				t.Fatalf("%s: acknowledged session %s answers %d", m.ID, tok.SessionID, code)
			}
		}
	}
	c.Restart(old)
	c.WaitFor(20*time.Second, "the old leader to catch up", c.AllReady)
	c.WaitConverged(20 * time.Second)
}

func TestCluster_CutOffNodeStopsVouchingAfterMaxStale(t *testing.T) {
	const maxStale = 2 * time.Second
	c := Start(t, Options{Size: 3, MaxStale: maxStale})
	leader := c.Leader()
	cut := (leader + 1) % 3
	majority := c.Nodes[(leader+2)%3]
	tok, code := create(t, c.Nodes[leader], "alice")
	if code != http.StatusCreated {
		t.Fatalf("create: %d", code)
	}
	c.WaitFor(10*time.Second, "the session on the soon cut-off node", func() bool {
		return validate(t, c.Nodes[cut], tok.AccessToken, "") == http.StatusOK
	})

	c.Isolate(cut)
	isolated := time.Now()
	// Writes on the minority side fail with 503.
	if _, code := create(t, c.Nodes[cut], "bob"); code != http.StatusServiceUnavailable {
		t.Errorf("write on the cut-off node: %d, want 503", code)
	}
	// Revoke on the majority side.
	resp, err := majority.Do("DELETE", "/v1/sessions/"+tok.SessionID, nil)
	if err != nil || resp.StatusCode != http.StatusNoContent {
		t.Fatalf("revoke on the majority: %v %v", err, resp)
	}
	resp.Body.Close()
	revoked := time.Now()
	// The cut-off node may still vouch from memory for at most max-stale
	// (from its last contact with the leader, which is before the cut)...
	deadline := revoked.Add(maxStale + 500*time.Millisecond)
	for time.Now().Before(deadline.Add(2 * time.Second)) {
		code := validate(t, c.Nodes[cut], tok.AccessToken, "")
		if code == http.StatusOK && time.Now().After(deadline) {
			t.Fatalf("cut-off node accepted a revoked token %s after the revocation (max-stale %s)", time.Since(revoked), maxStale)
		}
		if code != http.StatusOK && code != http.StatusServiceUnavailable {
			t.Fatalf("cut-off node answered %d", code)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// ...and then answers 503 rather than vouch.
	if code := validate(t, c.Nodes[cut], tok.AccessToken, ""); code != http.StatusServiceUnavailable {
		t.Fatalf("cut-off node %s after isolation: %d, want 503", time.Since(isolated), code)
	}
	c.Heal()
	c.WaitFor(20*time.Second, "the healed node to reject the revoked token", func() bool {
		return validate(t, c.Nodes[cut], tok.AccessToken, "") == http.StatusUnauthorized
	})
	c.WaitConverged(20 * time.Second)
}

func TestCluster_WipedNodeRejoinsThroughSnapshot(t *testing.T) {
	c := Start(t, Options{Size: 3})
	leader := c.Leader()
	victim := (leader + 1) % 3
	var first tokens
	for i := range 400 { // past the snapshot threshold and the trailing logs
		tok, code := create(t, c.Nodes[leader], fmt.Sprintf("u%d", i%50))
		if code != http.StatusCreated {
			t.Fatalf("create %d: %d", i, code)
		}
		if i == 0 {
			first = tok
		}
	}
	// The leader must have snapshotted and dropped the log's beginning
	// (snapshots are checked every 500ms here), or the wiped node would
	// simply replay the log.
	c.WaitFor(20*time.Second, "the leader to take a snapshot", func() bool {
		return c.Nodes[leader].Node.LastSnapshotIndex() >= 256
	})
	c.Kill(victim)
	c.Wipe(victim)
	c.Restart(victim)
	c.WaitFor(30*time.Second, "the wiped node to catch up", func() bool {
		return validate(t, c.Nodes[victim], first.AccessToken, "") == http.StatusOK
	})
	c.WaitConverged(20 * time.Second)
	stats := c.Nodes[victim].Node.RaftStatus()
	if stats.AppliedIndex < 400 {
		t.Fatalf("wiped node applied only up to %d", stats.AppliedIndex)
	}
	if idx := c.Nodes[victim].Node.LastSnapshotIndex(); idx == 0 {
		t.Fatal("the wiped node caught up without installing a snapshot")
	}
}

func TestCluster_FiveNodesStartedTogetherFormOneCluster(t *testing.T) {
	rounds := 3
	if os.Getenv("SESSIOND_LONG") != "" {
		rounds = 20
	}
	for round := range rounds {
		t.Run(fmt.Sprint("round", round), func(t *testing.T) {
			c := Start(t, Options{Size: 5})
			c.WaitFor(10*time.Second, "all five as voters everywhere", func() bool {
				for _, m := range c.Running() {
					servers, err := m.Node.Servers()
					if err != nil || len(servers) != 5 {
						return false
					}
				}
				return true
			})
			if l := c.Leaders(); len(l) != 1 {
				t.Fatalf("leaders %v, want one", l)
			}
			for _, m := range c.Running() {
				if _, leaderID := m.Node.Leader(); leaderID != c.Leaders()[0] {
					t.Fatalf("%s follows %q, not %q", m.ID, leaderID, c.Leaders()[0])
				}
			}
			c.Stop()
		})
	}
}

func TestCluster_MutualTLSFormsAndRefusesStrangers(t *testing.T) {
	pki := NewPKI(t, "cluster-ca")
	c := Start(t, Options{Size: 3, TLS: func(i int) *transport.MutualTLS { return pki.MutualTLS(fmt.Sprint("node", i)) }})
	tok, code := create(t, c.Nodes[(c.Leader()+1)%3], "alice")
	if code != http.StatusCreated {
		t.Fatalf("create through a follower over mutual TLS: %d", code)
	}
	if validate(t, c.Nodes[(c.Leader()+2)%3], tok.AccessToken, "?min_index="+strconv.FormatUint(tok.Index, 10)) != http.StatusOK {
		t.Fatal("session not readable on the third node")
	}

	other := NewPKI(t, "another-ca")
	strangerCA := c.Add(func(cfg *node.Config) { cfg.TLS = other.MutualTLS("stranger") })
	noTLS := c.Add(func(cfg *node.Config) { cfg.TLS = nil })
	// Gossip carries no secret here, so the leader sees them as members; it
	// must refuse to add them to Raft because they cannot prove who they
	// are over mutual TLS.
	c.WaitFor(10*time.Second, "the strangers to show up in gossip", func() bool {
		seen := 0
		for _, m := range c.Nodes[c.Leader()].Node.Members() {
			if m.ID == strangerCA.ID || m.ID == noTLS.ID {
				seen++
			}
		}
		return seen == 2
	})
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		servers, err := c.Nodes[c.Leader()].Node.Servers()
		if err != nil {
			continue
		}
		for _, s := range servers {
			if s.ID == strangerCA.ID || s.ID == noTLS.ID {
				t.Fatalf("%s joined Raft without a certificate from the cluster CA", s.ID)
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	if strangerCA.Node.AppliedIndex() >= tok.Index || noTLS.Node.AppliedIndex() >= tok.Index {
		t.Fatal("a stranger received the cluster's log")
	}
}
