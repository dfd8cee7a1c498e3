package main

import (
	"fmt"
	"io"
	"maps"
	"math"
	"slices"
	"strings"
	"sync"

	metrics "github.com/hashicorp/go-metrics"
)

// raftStats collects what hashicorp/raft reports through go-metrics while a
// phase is measured (--raft-stats): the time to commit, how many entries
// each disk write and each commit carried, the followers' append times. In
// a local cluster every node reports into the same sink, so a figure is
// over all nodes (dispatch and commit times come from the leader, append
// entries from the followers). Gauges are treated as samples: raft reports
// batch sizes as gauges.
type raftStats struct {
	mu   sync.Mutex
	aggs map[string]*statAgg
}

type statAgg struct {
	Count int64   `json:"count"`
	Sum   float64 `json:"sum"`
	Min   float64 `json:"min"`
	Max   float64 `json:"max"`
}

func (a *statAgg) Mean() float64 {
	if a.Count == 0 {
		return 0
	}
	return a.Sum / float64(a.Count)
}

// installRaftStats makes a new sink the process's global go-metrics sink.
func installRaftStats() (*raftStats, error) {
	s := &raftStats{aggs: map[string]*statAgg{}}
	conf := metrics.DefaultConfig("")
	conf.EnableHostname = false
	conf.EnableRuntimeMetrics = false
	conf.EnableServiceLabel = false
	if _, err := metrics.NewGlobal(conf, s); err != nil {
		return nil, err
	}
	return s, nil
}

// reset forgets everything recorded so far (the warm-up).
func (s *raftStats) reset() {
	if s == nil {
		return
	}
	s.mu.Lock()
	s.aggs = map[string]*statAgg{}
	s.mu.Unlock()
}

// take returns what was recorded since the last reset.
func (s *raftStats) take() map[string]statAgg {
	if s == nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]statAgg, len(s.aggs))
	for k, v := range s.aggs {
		out[k] = *v
	}
	return out
}

func (s *raftStats) add(key []string, val float32) {
	k := strings.Join(key, ".")
	v := float64(val)
	s.mu.Lock()
	a := s.aggs[k]
	if a == nil {
		a = &statAgg{Min: math.Inf(1), Max: math.Inf(-1)}
		s.aggs[k] = a
	}
	a.Count++
	a.Sum += v
	a.Min = min(a.Min, v)
	a.Max = max(a.Max, v)
	s.mu.Unlock()
}

func (s *raftStats) SetGauge(key []string, val float32) { s.add(key, val) }
func (s *raftStats) SetGaugeWithLabels(key []string, val float32, _ []metrics.Label) {
	s.add(key, val)
}
func (s *raftStats) EmitKey([]string, float32)     {}
func (s *raftStats) IncrCounter([]string, float32) {}
func (s *raftStats) IncrCounterWithLabels([]string, float32, []metrics.Label) {
}
func (s *raftStats) AddSample(key []string, val float32) { s.add(key, val) }
func (s *raftStats) AddSampleWithLabels(key []string, val float32, _ []metrics.Label) {
	s.add(key, val)
}

// raftStatKeys are the figures printed, in this order.
var raftStatKeys = []string{
	"raft.leader.dispatchNumLogs",
	"raft.leader.dispatchLog",
	"raft.commitNumLogs",
	"raft.commitTime",
	"raft.fsm.enqueue",
	"raft.fsm.applyBatchNum",
	"raft.rpc.appendEntries",
	"raft.rpc.appendEntries.storeLogs",
	"raft.rpc.appendEntries.processLogs",
	"raft.replication.appendEntries.logs",
	"raft.replication.appendEntries.rpc",
}

func printRaftStats(w io.Writer, stats map[string]statAgg, elapsedS float64) {
	if len(stats) == 0 {
		return
	}
	keys := slices.Clone(raftStatKeys)
	for _, k := range slices.Sorted(maps.Keys(stats)) {
		if !slices.Contains(keys, k) && (strings.HasPrefix(k, "sessiond.") || strings.HasPrefix(k, "raftbench.")) {
			keys = append(keys, k)
		}
	}
	for _, k := range keys {
		a, ok := stats[k]
		if !ok {
			continue
		}
		rate := ""
		if elapsedS > 0 {
			rate = fmt.Sprintf("%8.0f/s", float64(a.Count)/elapsedS)
		}
		fmt.Fprintf(w, "  %-38s n=%-8d %s  mean %8.3f  min %8.3f  max %8.3f\n", k, a.Count, rate, a.Mean(), a.Min, a.Max)
	}
}
