package main

import (
	"bytes"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestRegions_RejectsBadArguments(t *testing.T) {
	expectRefused(t, [][]string{
		{"regions", "--regions", "1"},
		{"regions", "--nodes-per-region", "2"},
		{"regions", "--layouts", "two-groups"},
		{"regions", "--max-stale", "0s"},
		{"regions", "--max-stale", "1s", "--loss", "4s"}, // too short to see the 503s
		{"regions", "--loss", "-1s"},
		{"regions", "--layouts", "single-region,one-group"}, // --loss needs region-groups
		{"regions", "--loss-requests", "0"},
		{"regions", "--heal-limit", "0s"},
		{"regions", "extra"},
	})
}

// A tiny run of every layout and of the loss of a region: every layout
// answers every request; a far region's write in the one-group layout pays
// at least the round trip to the voters; in the region-groups layout every
// session is made in its user's home region. While r1 is cut off, r2
// serves its own users with no error, a new user's first write (which needs
// the global group, whose two voters are split) is refused with 503, and
// r2's node stops vouching for r1's sessions within max_stale and never
// vouches again until the heal; after it every group converges.
func TestRegions_EveryLayoutAndTheLossOfARegion(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three small clusters with production Raft timings")
	}
	const wanMS, maxStaleMS = 5, 1000
	start := time.Now()
	out, err := runToolWithin(t, 3*time.Minute, "regions", "--regions", "2", "--nodes-per-region", "1",
		"--wan-delay", "5ms", "--lan-delay", "0s", "-n", "6", "-c", "2", "--users", "2",
		"--max-stale", "1s", "--loss", "5s", "--heal-limit", "30s", "--json")
	if err != nil {
		t.Fatalf("sessionbench regions: %v\n%s", err, out)
	}
	t.Logf("run took %s", time.Since(start).Round(time.Millisecond))
	var rep regionsReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("output is not the report: %v\n%s", err, out)
	}
	if len(rep.Failures) != 0 {
		t.Errorf("failures: %q", rep.Failures)
	}

	var names []string
	for _, l := range rep.Layouts {
		names = append(names, l.Layout)
	}
	if want := []string{"single-region", "one group", "region groups"}; !slices.Equal(names, want) {
		t.Fatalf("layouts %q, want %q", names, want)
	}
	for _, l := range rep.Layouts {
		regions := []string{"r1", "r2"}
		if l.Layout == "single-region" {
			regions = regions[:1]
		}
		var got, want []string
		for _, r := range regions {
			for _, op := range []string{"create", "login", "refresh", "validate"} {
				want = append(want, r+" "+op)
			}
		}
		count := 6
		if l.Layout == "single-region" {
			count = 12 // both regions' requests
		}
		for _, res := range l.Results {
			got = append(got, res.Region+" "+res.Op)
			if res.Errors != 0 || res.Count != count {
				t.Errorf("%s: %s %s: %d answered, %d errors (first: %s), want %d and 0", l.Layout, res.Region, res.Op, res.Count, res.Errors, res.FirstError, count)
			}
			if l.Layout == "one group" && res.Region == "r2" && res.Op != "validate" && res.P50MS < 2*wanMS {
				t.Errorf("one group: r2 %s: p50 %.1f ms, below the %d ms round trip to the voters' region", res.Op, res.P50MS, 2*wanMS)
			}
		}
		if !slices.Equal(got, want) {
			t.Errorf("%s: results %q, want %q", l.Layout, got, want)
		}
	}
	var groups []string
	for _, g := range rep.Layouts[2].Groups {
		groups = append(groups, g.Name)
		if g.Leader == "" || len(g.Voters)+len(g.Replicas) != 2 {
			t.Errorf("region groups: group %+v, want a leader and both nodes", g)
		}
	}
	if !slices.Equal(groups, []string{"r1", "r2", "global"}) {
		t.Errorf("region groups: groups %q, want r1, r2, global", groups)
	}
	if len(rep.Compared) != 6 {
		t.Errorf("compared %d writes with the baseline, want 6 (two regions × create, login, refresh)", len(rep.Compared))
	}

	l := rep.Loss
	if l == nil {
		t.Fatal("no region-loss phase in the report")
	}
	if l.Isolated != "r1" || !slices.Equal(l.Survivors, []string{"r2"}) || l.GlobalQuorum != "none" {
		t.Errorf("loss: isolated %s, survivors %v, global majority %q; want r1, [r2], none", l.Isolated, l.Survivors, l.GlobalQuorum)
	}
	var ops []string
	for _, res := range l.Load {
		ops = append(ops, res.Op)
		if res.Region != "r2" || res.Count == 0 || res.Errors != 0 {
			t.Errorf("loss: load %s %s: %d answered, %d errors (first: %s); want r2, some, none", res.Region, res.Op, res.Count, res.Errors, res.FirstError)
		}
	}
	if want := []string{"create", "validate", "refresh", "revoke", "validate revoked"}; !slices.Equal(ops, want) {
		t.Errorf("loss: load ops %q, want %q", ops, want)
	}
	if l.NewUser.Status != 503 || l.NewUser.Expected != 503 {
		t.Errorf("loss: a new user's first write answered %d (%s), want 503", l.NewUser.Status, l.NewUser.Error)
	}
	if len(l.Stale) != 1 {
		t.Fatalf("loss: stale validations on %d nodes, want r2's one", len(l.Stale))
	}
	s := l.Stale[0]
	switch {
	case s.OKAfter503 != 0 || s.Other != 0:
		t.Errorf("loss: %s: %d answers of 200 after a 503, %d neither 200 nor 503 (%s)", s.Node, s.OKAfter503, s.Other, s.FirstOther)
	case s.First503MS < 0 || s.Unavailable == 0:
		t.Errorf("loss: %s never answered 503 for r1's sessions", s.Node)
	case s.LastOKMS > maxStaleMS+50:
		t.Errorf("loss: %s vouched %.0f ms after the cut, beyond max_stale", s.Node, s.LastOKMS)
	}
	if !l.Heal.Converged || l.Heal.RevalidatedMS < 0 || !slices.Equal(l.Heal.Groups, []string{"r1", "r2", "global"}) {
		t.Errorf("loss: heal %+v, want every group converged and r1's sessions valid again", l.Heal)
	}
}

// The table names every layout, the comparison, the loss phase and each
// broken guarantee on a FAIL line.
func TestRegions_PrintsEveryPartAndTheFailures(t *testing.T) {
	rep := &regionsReport{
		Regions: 2, NodesPerRegion: 3, WANDelayMS: 40, LANDelayMS: 0.2, MaxStaleMS: 10000,
		Layouts: []layoutResult{
			{Layout: "single-region", About: "baseline", Groups: []groupInfo{{Name: "default", Leader: "node1", Voters: []string{"node1"}}},
				Results: []opResult{{Region: "r1", Op: "create", Count: 5, P50MS: 7.5}}},
			{Layout: "region groups", About: "groups", Groups: []groupInfo{{Name: "r1", Leader: "node2", Voters: []string{"node1", "node2"}, Replicas: []string{"node4"}}},
				Results: []opResult{{Region: "r2", Op: "create", Count: 5, P50MS: 8.1}}},
		},
		Loss: &lossResult{
			Isolated: "r1", Survivors: []string{"r2"}, LossMS: 30000,
			GlobalVoters: map[string]int{"r1": 3, "r2": 2}, GlobalQuorum: "isolated", LeadersAtCut: map[string]string{"global": "node1"},
			Load:    []opResult{{Region: "r2", Op: "create", Count: 900, Errors: 1, FirstError: "boom"}},
			NewUser: probeResult{Node: "node4", Expected: 503, Status: 503, Why: "r1 holds 3 of 5"},
			Stale:   []staleResult{{Node: "node4", Region: "r2", Polls: 10, OK: 5, Unavailable: 4, LastOKMS: 9100, First503MS: 9150, OKAfter503: 1}},
			Heal:    healResult{Groups: []string{"r1", "r2", "global"}, Converged: true, ConvergedMS: 1200, RevalidatedMS: 300},
		},
		Failures: []string{"during the cut: r2 create: 1 errors", "during the cut: node4 answered 200 after its first 503"},
	}
	rep.Compared = compareLayouts(rep.Layouts)
	if len(rep.Compared) != 1 || !rep.Compared[0].Within {
		t.Errorf("compared = %+v, want r2's create 0.6 ms from the baseline", rep.Compared)
	}
	var buf bytes.Buffer
	if err := printRegions(&buf, rep); err != nil {
		t.Fatal(err)
	}
	text := buf.String()
	for _, want := range []string{
		"layout: single-region", "layout: region groups", "r1 (leader node2; voters node1,node2; replicas node4)",
		"home-region writes", "region loss (region groups): r1 cut off from r2",
		"global group's voters at the cut: r1 3, r2 2 (majority: isolated)",
		"r2 create: first error: boom", "expected 503: r1 holds 3 of 5", "9.10s", "9.15s",
		"heal: every group (r1, r2, global) byte-identical",
		"FAIL: during the cut: r2 create: 1 errors\n", "FAIL: during the cut: node4 answered 200 after its first 503\n",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("the table lacks %q:\n%s", want, text)
		}
	}
}
