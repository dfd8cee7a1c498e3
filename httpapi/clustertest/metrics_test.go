package clustertest

import (
	"bytes"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/sessiond/sessiond/node"
	"github.com/sessiond/sessiond/node/password"
)

// scrapeMember is GET /metrics on a member, parsed.
func scrapeMember(t *testing.T, m *Member) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get(m.URL + "/metrics")
	if err != nil {
		t.Fatalf("scrape %s: %v", m.ID, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("scrape %s: %d %v", m.ID, resp.StatusCode, err)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("parse scrape of %s: %v", m.ID, err)
	}
	return fams
}

// sampleOf is a counter's or gauge's value, or a histogram's count, for the
// sample with the given label (name, value), 0 when absent.
func sampleOf(fams map[string]*dto.MetricFamily, name string, label ...string) float64 {
	f := fams[name]
	if f == nil {
		return 0
	}
	for _, m := range f.GetMetric() {
		if len(label) == 2 {
			match := false
			for _, l := range m.GetLabel() {
				match = match || (l.GetName() == label[0] && l.GetValue() == label[1])
			}
			if !match {
				continue
			}
		}
		switch {
		case m.Counter != nil:
			return m.GetCounter().GetValue()
		case m.Gauge != nil:
			return m.GetGauge().GetValue()
		case m.Histogram != nil:
			return float64(m.GetHistogram().GetSampleCount())
		}
	}
	return 0
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
			if sampleOf(scrapeMember(t, m), "sessiond_gossip_members", "state", "alive") != 3 {
				return false
			}
		}
		return true
	})
	before := scrapeMember(t, follower)
	leaderBefore := scrapeMember(t, c.Nodes[leader])
	if v := sampleOf(before, "sessiond_raft_state", "state", "follower"); v != 1 {
		t.Fatalf("follower reports raft_state{follower} = %v", v)
	}
	if v := sampleOf(before, "sessiond_raft_leader"); v != 0 {
		t.Errorf("follower reports raft_leader = %v", v)
	}
	if v := sampleOf(before, "sessiond_raft_last_contact_seconds"); v < 0 || v > 5 {
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
	if d := sampleOf(after, "sessiond_forwarded_writes_total", "outcome", "ok") - sampleOf(before, "sessiond_forwarded_writes_total", "outcome", "ok"); d != 1 {
		t.Errorf("follower's forwarded_writes_total{ok} moved by %v, want 1", d)
	}
	if d := sampleOf(after, "sessiond_forward_duration_seconds") - sampleOf(before, "sessiond_forward_duration_seconds"); d < 1 {
		t.Errorf("follower's forward_duration_seconds count moved by %v, want at least 1", d)
	}
	if d := sampleOf(after, "sessiond_events_applied_total", "type", "SessionCreated") - sampleOf(before, "sessiond_events_applied_total", "type", "SessionCreated"); d != 1 {
		t.Errorf("follower applied %v SessionCreated, want 1", d)
	}
	leaderAfter := scrapeMember(t, c.Nodes[leader])
	if d := sampleOf(leaderAfter, "sessiond_forwarded_writes_total", "outcome", "ok") - sampleOf(leaderBefore, "sessiond_forwarded_writes_total", "outcome", "ok"); d != 0 {
		t.Errorf("leader's forwarded_writes_total{ok} moved by %v, want 0", d)
	}
	if v := sampleOf(leaderAfter, "sessiond_raft_leader"); v != 1 {
		t.Errorf("leader reports raft_leader = %v", v)
	}
}
