package main

import (
	"encoding/json"
	"testing"
)

func TestFailover_RejectsBadArguments(t *testing.T) {
	expectRefused(t, [][]string{
		{"failover", "--nodes", "2"},
		{"failover", "--nodes", "10"},
		{"failover", "--kills", "0"},
		{"failover", "--kills", "101"},
		{"failover", "--probe-every", "0s"},
		{"failover", "--probe-every", "2s"},
		{"failover", "--load", "-1"},
		{"failover", "--settle", "-1s"},
		{"failover", "--gap-limit", "10ms"},
		{"failover", "--timeout", "0s"},
		{"failover", "--sessiond", "/bin/true", "--consul", "/bin/true"},
		{"failover", "extra"},
	})
}

func TestMedianOf(t *testing.T) {
	for _, c := range []struct {
		xs   []float64
		want float64
	}{
		{[]float64{3}, 3},
		{[]float64{3, 1, 2}, 2},
		{[]float64{4, 1, 3, 2}, 2.5},
	} {
		if got := medianOf(c.xs); got != c.want {
			t.Errorf("median of %v = %g, want %g", c.xs, got, c.want)
		}
	}
}

// A short real run: one leader killed and restarted; the survivors answer a
// write and no probe fails (sessiond holds writes during the election).
func TestFailover_KillsTheLeaderAndTimesTheGap(t *testing.T) {
	bin := sessiondBinary(t)
	out, err := runTool(t, "failover", "--sessiond", bin, "--kills", "1", "--settle", "200ms", "--load", "10",
		"--timeout", "50s", "--json")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	var rep failoverReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if len(rep.Kills) != 1 {
		t.Fatalf("report %+v", rep)
	}
	k := rep.Kills[0]
	switch {
	case k.Killed == "" || k.AnsweredBy == "" || k.AnsweredBy == k.Killed:
		t.Errorf("killed %q, answered by %q", k.Killed, k.AnsweredBy)
	case k.GapS <= 0 || k.GapS > 30 || rep.MedianS != k.GapS:
		t.Errorf("gap %gs, median %gs", k.GapS, rep.MedianS)
	case k.Probes < 1 || k.Failed != 0:
		t.Errorf("%d probes, %d failed (first: %s)", k.Probes, k.Failed, k.FirstError)
	}
	t.Logf("gap %.3fs (candidate %.3fs, leader %.3fs, known %.3fs)", k.GapS, k.CandidateS, k.ElectedS, k.KnownS)
}
