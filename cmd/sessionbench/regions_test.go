package main

import (
	"encoding/json"
	"testing"
)

// Today's layout, one group with its voters in the first region: the other
// region's writes are forwarded to the leader across the delay and back,
// so each pays at least the round trip; a validation, of a session the
// other region created, is answered from memory; every operation succeeds.
func TestRegions_FarRegionWritesPayTheRoundTrip(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a two-region cluster with production Raft timings")
	}
	const wanMS = 25
	out, err := runTool(t, "regions", "--regions", "2", "--nodes-per-region", "1",
		"--wan-delay", "25ms", "--lan-delay", "0s", "-n", "12", "-c", "2", "--users", "3", "--json")
	if err != nil {
		t.Fatalf("sessionbench regions: %v\n%s", err, out)
	}
	var rep regionsReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("output is not the report: %v\n%s", err, out)
	}
	if len(rep.Layouts) != 1 || rep.Layouts[0].Layout != "one group" {
		t.Fatalf("layouts = %+v, want today's one group", rep.Layouts)
	}
	seen := map[string]bool{}
	for _, res := range rep.Layouts[0].Results {
		seen[res.Region+" "+res.Op] = true
		if res.Errors != 0 || res.Count != 12 {
			t.Errorf("%s %s: %d answered, %d errors (first: %s), want 12 and 0", res.Region, res.Op, res.Count, res.Errors, res.FirstError)
		}
		if res.Region == "r2" && res.Op != "validate" && res.P50MS < 2*wanMS {
			t.Errorf("r2 %s: p50 %.1f ms, below the %d ms round trip to the leader's region", res.Op, res.P50MS, 2*wanMS)
		}
	}
	for _, want := range []string{"r1 create", "r2 create", "r1 validate", "r2 validate", "r1 login", "r2 login", "r1 refresh", "r2 refresh"} {
		if !seen[want] {
			t.Errorf("no result for %s", want)
		}
	}
}
