package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"slices"
	"testing"
	"time"
)

// runTool runs the command in-process, as main would, with args.
func runTool(t *testing.T, args ...string) (stdout string, err error) {
	t.Helper()
	return runToolWithin(t, time.Minute, args...)
}

// runToolWithin is runTool with the run's context ending after limit.
func runToolWithin(t *testing.T, limit time.Duration, args ...string) (stdout string, err error) {
	t.Helper()
	var out, errOut bytes.Buffer
	cmd := newRootCommand(nil)
	cmd.SetArgs(args)
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	err = cmd.ExecuteContext(ctx)
	if errOut.Len() > 0 {
		t.Logf("stderr:\n%s", errOut.String())
	}
	return out.String(), err
}

func TestSessionbench_LocalClusterRunsEveryPhaseWithoutErrors(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a three-node cluster with production Raft timings")
	}
	start := time.Now()
	out, err := runTool(t, "--local", "3", "--requests", "300", "--duration", "5s",
		"--concurrency", "8", "--warmup", "200ms", "--timeout", "50s", "--json")
	if err != nil {
		t.Fatalf("sessionbench: %v\n%s", err, out)
	}
	t.Logf("run took %s", time.Since(start).Round(time.Millisecond))

	// The wire names a reader of --json relies on.
	var raw map[string]any
	if err := json.Unmarshal([]byte(out), &raw); err != nil {
		t.Fatalf("output is not one JSON object: %v\n%s", err, out)
	}
	for _, field := range []string{"mode", "nodes", "leader", "follower", "ceiling", "concurrency",
		"max_requests", "max_duration_s", "sessions_created", "phases", "follower_vs_ceiling_pct"} {
		if _, ok := raw[field]; !ok {
			t.Errorf("report lacks %q", field)
		}
	}
	phases, _ := raw["phases"].([]any)
	for _, p := range phases {
		m, _ := p.(map[string]any)
		for _, field := range []string{"name", "requests", "errors", "errors_by_status", "elapsed_s",
			"throughput_rps", "stopped_by", "latency_ms"} {
			if _, ok := m[field]; !ok {
				t.Errorf("phase %v lacks %q", m["name"], field)
			}
		}
		lat, _ := m["latency_ms"].(map[string]any)
		for _, field := range []string{"p50", "p90", "p99", "max"} {
			if _, ok := lat[field]; !ok {
				t.Errorf("phase %v: latency lacks %q", m["name"], field)
			}
		}
	}

	var rep report
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, p := range rep.Phases {
		names = append(names, p.Name)
		switch {
		case p.Requests != 300:
			t.Errorf("%s: %d requests, want 300 (stopped by %s)", p.Name, p.Requests, p.StoppedBy)
		case p.Errors != 0:
			t.Errorf("%s: %s", p.Name, p.errorSummary())
		case p.Throughput <= 0 || p.Latency.P50 <= 0 || p.Latency.P99 < p.Latency.P50 || p.Latency.Max < p.Latency.P99:
			t.Errorf("%s: implausible figures %+v", p.Name, p)
		}
	}
	if !slices.Equal(names, allPhases) {
		t.Errorf("phases %v, want %v", names, allPhases)
	}
	if rep.Follower == "" || rep.Follower == rep.Leader {
		t.Errorf("follower %q, leader %q: validation must go to a follower", rep.Follower, rep.Leader)
	}
	if rep.SessionsCreated < 300 {
		t.Errorf("%d sessions created, want at least 300", rep.SessionsCreated)
	}
	if rep.FollowerVsCeilingPct == nil || *rep.FollowerVsCeilingPct <= 0 {
		t.Errorf("no follower/ceiling ratio")
	}
}

// expectRefused checks that the tool refuses each command line.
func expectRefused(t *testing.T, cmdLines [][]string) {
	t.Helper()
	for _, args := range cmdLines {
		if _, err := runTool(t, args...); err == nil {
			t.Errorf("%v: accepted", args)
		}
	}
}

func TestSessionbench_TimeoutStopsTheRunWithAnError(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a three-node cluster")
	}
	start := time.Now()
	// Forming a cluster with production timings takes longer than this.
	_, err := runTool(t, "--local", "3", "--timeout", "300ms", "--json")
	if !errors.Is(err, errTimeout) {
		t.Fatalf("err = %v, want %v", err, errTimeout)
	}
	if took := time.Since(start); took > 15*time.Second {
		t.Errorf("stopping took %s", took)
	}
}

func TestSessionbench_RejectsConflictingTargets(t *testing.T) {
	expectRefused(t, [][]string{
		{"--addrs", "http://127.0.0.1:1", "--local", "3", "--api-key", "0123456789abcdef"},
		{"--addrs", "http://127.0.0.1:1"}, // no key
		{"--addrs", "127.0.0.1:1", "--api-key", "0123456789abcdef"},
		{"--phases", "create,bogus"},
		{"--api-key", "0123456789abcdef"}, // a key without --addrs
	})
}

func TestHistogram_QuantilesWithinOnePercent(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var h, other histogram
	var exact []int64
	for i := range 200000 {
		v := int64(math.Exp(rng.NormFloat64()*1.5 + 12)) // log-normal around 160µs
		exact = append(exact, v)
		if i%2 == 0 {
			h.record(v)
		} else {
			other.record(v)
		}
	}
	h.merge(&other)
	slices.Sort(exact)
	for _, q := range []float64{0.5, 0.9, 0.99, 0.999, 1} {
		want := exact[int(math.Ceil(q*float64(len(exact))))-1]
		got := h.quantile(q)
		if rel := math.Abs(float64(got-want)) / float64(want); rel > 0.01 {
			t.Errorf("q%.3f = %d, exact %d (%.2f%% off)", q, got, want, 100*rel)
		}
	}
	if h.n != uint64(len(exact)) || h.min != exact[0] || h.max != exact[len(exact)-1] {
		t.Errorf("n/min/max = %d/%d/%d, want %d/%d/%d", h.n, h.min, h.max, len(exact), exact[0], exact[len(exact)-1])
	}
}

func TestCeiling_ReplaysTheFollowerAnswerByteForByte(t *testing.T) {
	body := []byte(`{"session_id":"x","status":"active"}` + "\n")
	follower := http.Header{
		"Content-Type":            {"application/json"},
		"X-Sessiond-Index":        {"42"},
		"X-Sessiond-Last-Contact": {"3"},
		"Date":                    {"Mon, 01 Jan 2024 00:00:00 GMT"}, // net/http's own, not replayed
	}
	srv, err := startCeilingServer(newCannedAnswer(follower, body))
	if err != nil {
		t.Fatal(err)
	}
	defer srv.close()
	if !isLoopbackURL(srv.url) {
		t.Errorf("ceiling on %s, want loopback", srv.url)
	}
	resp, err := http.Get(srv.url + "/v1/session")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	got, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || !bytes.Equal(got, body) {
		t.Errorf("status %d body %q, want 200 %q", resp.StatusCode, got, body)
	}
	for _, k := range replayedHeaders {
		if resp.Header.Get(k) != follower.Get(k) {
			t.Errorf("%s = %q, want %q", k, resp.Header.Get(k), follower.Get(k))
		}
	}
	if resp.ContentLength != int64(len(body)) {
		t.Errorf("Content-Length %d, want %d (as sessiond sends)", resp.ContentLength, len(body))
	}
}

// With --rounds the validation and ceiling phases alternate, and the share
// reported is the median of the rounds' shares.
func TestSessionbench_RoundsAlternateAndGiveTheMedianShare(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a three-node cluster with production Raft timings")
	}
	out, err := runTool(t, "--local", "3", "--phases", "validate-follower,ceiling", "--rounds", "3",
		"--requests", "200", "--duration", "5s", "--concurrency", "4", "--warmup", "0s", "--timeout", "50s", "--json")
	if err != nil {
		t.Fatalf("sessionbench: %v\n%s", err, out)
	}
	var rep report
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range rep.Phases {
		got = append(got, p.Name+"#"+string(rune('0'+p.Round)))
		if p.Errors != 0 || p.Requests != 200 {
			t.Errorf("%s #%d: %d requests, %d errors", p.Name, p.Round, p.Requests, p.Errors)
		}
	}
	want := []string{"validate-follower#1", "ceiling#1", "validate-follower#2", "ceiling#2", "validate-follower#3", "ceiling#3"}
	if !slices.Equal(got, want) {
		t.Fatalf("phases ran as %v, want %v", got, want)
	}
	if len(rep.FollowerVsCeilingRoundsPct) != 3 || rep.FollowerVsCeilingPct == nil {
		t.Fatalf("shares %v, median %v", rep.FollowerVsCeilingRoundsPct, rep.FollowerVsCeilingPct)
	}
	for i, share := range rep.FollowerVsCeilingRoundsPct {
		v, c := rep.Phases[2*i], rep.Phases[2*i+1]
		if want := 100 * v.Throughput / c.Throughput; math.Abs(share-want) > 1e-9 {
			t.Errorf("round %d: share %.3f, want %.3f", i+1, share, want)
		}
	}
	sorted := slices.Sorted(slices.Values(rep.FollowerVsCeilingRoundsPct))
	if *rep.FollowerVsCeilingPct != sorted[1] {
		t.Errorf("median %.3f of %v", *rep.FollowerVsCeilingPct, rep.FollowerVsCeilingRoundsPct)
	}
}

func TestReport_MedianShareOfAnEvenNumberOfRounds(t *testing.T) {
	rep := &report{}
	for round, pair := range [][2]float64{{60, 100}, {90, 100}, {70, 100}, {50, 50}} {
		rep.Phases = append(rep.Phases,
			&phaseResult{Name: phaseValidate, Round: round + 1, Throughput: pair[0]},
			&phaseResult{Name: phaseCeiling, Round: round + 1, Throughput: pair[1]})
	}
	rep.followerVsCeiling()
	if !slices.Equal(rep.FollowerVsCeilingRoundsPct, []float64{60, 90, 70, 100}) {
		t.Fatalf("shares %v", rep.FollowerVsCeilingRoundsPct)
	}
	if rep.FollowerVsCeilingPct == nil || *rep.FollowerVsCeilingPct != 80 {
		t.Fatalf("median %v, want 80 (between 70 and 90)", rep.FollowerVsCeilingPct)
	}
}
