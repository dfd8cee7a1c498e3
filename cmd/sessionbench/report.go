package main

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"
)

// report is everything a run measured; --json prints it as is.
type report struct {
	Mode            string         `json:"mode"` // "local" or "addrs"
	Nodes           []string       `json:"nodes"`
	Leader          string         `json:"leader,omitempty"`
	Follower        string         `json:"follower,omitempty"`
	Ceiling         string         `json:"ceiling,omitempty"`
	ClusterStartS   float64        `json:"cluster_start_s,omitempty"`
	Client          string         `json:"client"` // "raw" or "net/http"
	Concurrency     int            `json:"concurrency"`
	MaxRequests     int64          `json:"max_requests"`
	MaxDurationS    float64        `json:"max_duration_s"`
	WarmupS         float64        `json:"warmup_s"`
	NumCPU          int            `json:"num_cpu"`
	GOMAXPROCS      int            `json:"gomaxprocs"`
	GoVersion       string         `json:"go_version"`
	SessionsCreated int            `json:"sessions_created"`
	Phases          []*phaseResult `json:"phases"`
	// FollowerVsCeilingPct is validate-follower's throughput as a share of
	// the ceiling's; with --rounds, the median of the rounds' shares, which
	// FollowerVsCeilingRoundsPct lists.
	FollowerVsCeilingPct       *float64  `json:"follower_vs_ceiling_pct,omitempty"`
	FollowerVsCeilingRoundsPct []float64 `json:"follower_vs_ceiling_rounds_pct,omitempty"`
	Error                      string    `json:"error,omitempty"`
}

// followerVsCeiling sets the follower's share of the ceiling: per round,
// and their median.
func (r *report) followerVsCeiling() {
	var shares []float64
	for _, v := range r.Phases {
		if v.Name != phaseValidate {
			continue
		}
		for _, c := range r.Phases {
			if c.Name == phaseCeiling && c.Round == v.Round && c.Throughput > 0 {
				shares = append(shares, 100*v.Throughput/c.Throughput)
			}
		}
	}
	if len(shares) == 0 {
		return
	}
	r.FollowerVsCeilingRoundsPct = shares
	sorted := slices.Sorted(slices.Values(shares))
	median := sorted[len(sorted)/2]
	if len(sorted)%2 == 0 {
		median = (sorted[len(sorted)/2-1] + median) / 2
	}
	r.FollowerVsCeilingPct = &median
}

// phaseResult is one phase's figures. Requests counts every completed
// request, failed ones included (as wrk does); Errors is the part of them
// that did not get the expected status.
type phaseResult struct {
	Name       string           `json:"name"`
	Round      int              `json:"round,omitempty"` // with --rounds above 1
	Target     string           `json:"target"`
	Requests   int64            `json:"requests"`
	Errors     int64            `json:"errors"`
	ErrorsBy   map[string]int64 `json:"errors_by_status"`
	FirstError string           `json:"first_error,omitempty"`
	ElapsedS   float64          `json:"elapsed_s"`
	Throughput float64          `json:"throughput_rps"`
	// CPUSeconds is the CPU time this process used during the phase (with
	// --local: the nodes and the load generator); CPUPerRequestUS divides
	// it by the requests, a figure that other work on the machine disturbs
	// less than the throughput.
	CPUSeconds      float64     `json:"cpu_s"`
	CPUPerRequestUS float64     `json:"cpu_per_request_us"`
	StoppedBy       string      `json:"stopped_by"`
	Latency         latencyJSON `json:"latency_ms"`
	// RaftStats are Raft's figures while the phase was measured
	// (--raft-stats): durations in milliseconds, batch sizes in entries.
	RaftStats map[string]statAgg `json:"raft_stats,omitempty"`
}

type latencyJSON struct {
	Mean float64 `json:"mean"`
	P50  float64 `json:"p50"`
	P90  float64 `json:"p90"`
	P99  float64 `json:"p99"`
	Max  float64 `json:"max"`
}

func summarize(name, target string, out outcome) *phaseResult {
	var h histogram
	p := &phaseResult{Name: name, Target: target, ErrorsBy: map[string]int64{},
		ElapsedS: out.elapsed.Seconds(), StoppedBy: out.stoppedBy}
	for _, t := range out.tallies {
		h.merge(&t.hist)
		for k, v := range t.errors {
			p.ErrorsBy[k] += v
			p.Errors += v
		}
		if p.FirstError == "" {
			p.FirstError = t.firstErr
		}
	}
	p.Requests = int64(h.n)
	if p.ElapsedS > 0 {
		p.Throughput = float64(p.Requests) / p.ElapsedS
	}
	p.CPUSeconds = out.cpu.Seconds()
	if p.Requests > 0 {
		p.CPUPerRequestUS = float64(out.cpu.Microseconds()) / float64(p.Requests)
	}
	ms := func(ns int64) float64 { return float64(ns) / 1e6 }
	p.Latency = latencyJSON{
		Mean: h.mean() / 1e6,
		P50:  ms(h.quantile(0.50)), P90: ms(h.quantile(0.90)), P99: ms(h.quantile(0.99)),
		Max: ms(h.max),
	}
	return p
}

func (p *phaseResult) errorSummary() string {
	if p.Errors == 0 {
		return "no errors"
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(p.ErrorsBy)) {
		parts = append(parts, fmt.Sprintf("%s×%d", k, p.ErrorsBy[k]))
	}
	s := strings.Join(parts, ", ")
	if p.FirstError != "" {
		s += "; first: " + p.FirstError
	}
	return s
}

func printHeader(w io.Writer, r *report) {
	switch r.Mode {
	case "local":
		fmt.Fprintf(w, "sessionbench: in-process cluster of %d node%s on 127.0.0.1 (ready in %.1fs)\n",
			len(r.Nodes), map[bool]string{true: "s"}[len(r.Nodes) != 1], r.ClusterStartS)
	default:
		fmt.Fprintf(w, "sessionbench: %d nodes: %s\n", len(r.Nodes), strings.Join(r.Nodes, ", "))
	}
	fmt.Fprintf(w, "%d connections (%s client), each phase up to %d requests or %s after a %s warm-up; %d CPUs, GOMAXPROCS %d\n\n",
		r.Concurrency, r.Client, r.MaxRequests, time.Duration(r.MaxDurationS*float64(time.Second)),
		time.Duration(r.WarmupS*float64(time.Second)), r.NumCPU, r.GOMAXPROCS)
	fmt.Fprintf(w, "%-18s %9s %7s %8s %10s %9s %9s %9s %9s %9s  %s\n",
		"phase", "requests", "errors", "elapsed", "req/s", "p50", "p90", "p99", "max", "cpu/req", "stopped by")
}

func printPhase(w io.Writer, p *phaseResult) {
	name := p.Name
	if p.Round > 0 {
		name = fmt.Sprintf("%s #%d", name, p.Round)
	}
	fmt.Fprintf(w, "%-18s %9d %7d %7.2fs %10.0f %9s %9s %9s %9s %9s  %s\n",
		name, p.Requests, p.Errors, p.ElapsedS, p.Throughput,
		fmtMS(p.Latency.P50), fmtMS(p.Latency.P90), fmtMS(p.Latency.P99), fmtMS(p.Latency.Max),
		fmtMS(p.CPUPerRequestUS/1000), p.StoppedBy)
	if p.Errors > 0 {
		fmt.Fprintf(w, "  errors: %s\n", p.errorSummary())
	}
	printRaftStats(w, p.RaftStats, p.ElapsedS)
}

func printFooter(w io.Writer, r *report) {
	fmt.Fprintln(w)
	if r.Leader != "" || r.Follower != "" {
		fmt.Fprintf(w, "leader %s, follower %s", orNone(r.Leader), orNone(r.Follower))
		if r.Ceiling != "" {
			fmt.Fprintf(w, ", ceiling %s", r.Ceiling)
		}
		fmt.Fprintln(w)
	}
	switch rounds := r.FollowerVsCeilingRoundsPct; {
	case len(rounds) > 1:
		parts := make([]string, len(rounds))
		for i, pct := range rounds {
			parts[i] = fmt.Sprintf("%.1f%%", pct)
		}
		fmt.Fprintf(w, "validate-follower / ceiling: %.1f%% of the bare HTTP stack's throughput (median of %d alternating rounds: %s)\n",
			*r.FollowerVsCeilingPct, len(rounds), strings.Join(parts, ", "))
	case r.FollowerVsCeilingPct != nil:
		fmt.Fprintf(w, "validate-follower / ceiling: %.1f%% of the bare HTTP stack's throughput\n", *r.FollowerVsCeilingPct)
	}
	if r.Error != "" {
		fmt.Fprintf(w, "run ended early: %s\n", r.Error)
	}
}

func printJSON(w io.Writer, r *report) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// fmtMS prints milliseconds with a unit that keeps three significant digits.
func fmtMS(ms float64) string {
	switch {
	case ms < 1:
		return fmt.Sprintf("%.0fµs", ms*1000)
	case ms < 10:
		return fmt.Sprintf("%.2fms", ms)
	case ms < 100:
		return fmt.Sprintf("%.1fms", ms)
	case ms < 1000:
		return fmt.Sprintf("%.0fms", ms)
	}
	return fmt.Sprintf("%.2fs", ms/1000)
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}
