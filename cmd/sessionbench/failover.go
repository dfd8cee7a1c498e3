package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"
)

// failoverOptions are the settings of sessionbench failover.
type failoverOptions struct {
	nodes      int
	kills      int
	sessiond   string
	consul     string
	probeEvery time.Duration
	load       float64
	settle     time.Duration
	gapLimit   time.Duration
	timeout    time.Duration
	jsonOut    bool
}

// failoverReport is what sessionbench failover measured; --json prints it.
type failoverReport struct {
	Kind   string         `json:"kind"`
	Binary string         `json:"binary"`
	Nodes  int            `json:"nodes"`
	Kills  []failoverKill `json:"kills"`
	// MedianS, MinS and MaxS summarize the gaps.
	MedianS float64 `json:"median_s"`
	MinS    float64 `json:"min_s"`
	MaxS    float64 `json:"max_s"`
	// LoadWrites and LoadErrors count the background load's writes.
	LoadWrites int64 `json:"load_writes"`
	LoadErrors int64 `json:"load_errors"`
}

// failoverKill is one leader killed: the gap from the SIGKILL to the first
// write answered through a surviving node, and the probes until then.
type failoverKill struct {
	Killed string  `json:"killed"`
	GapS   float64 `json:"gap_s"`
	// AnsweredBy is the survivor that answered the first write.
	AnsweredBy string `json:"answered_by"`
	// Probes were sent from the kill until the first answer; Failed of
	// them were answered with an error before it (never held to the end).
	Probes     int    `json:"probes"`
	Failed     int    `json:"failed"`
	FirstError string `json:"first_error,omitempty"`
	// WholeAgainS is how long the restarted node took until the cluster
	// was whole again.
	WholeAgainS float64 `json:"whole_again_s"`
	// Where the gap went, from polling the survivors' Raft state every
	// 10 ms (0 when not seen): the first survivor seen as a candidate, the
	// first seen as the leader, and every survivor naming the new leader.
	CandidateS float64 `json:"candidate_s,omitempty"`
	ElectedS   float64 `json:"elected_s,omitempty"`
	KnownS     float64 `json:"known_s,omitempty"`
}

func newFailoverCommand() *cobra.Command {
	var o failoverOptions
	cmd := &cobra.Command{
		Use:   "failover",
		Short: "Kill the leader (SIGKILL) repeatedly; time until a write through a survivor is answered",
		Long: "failover starts --nodes server processes on 127.0.0.1 (sessiond with its production\n" +
			"timings, built from this module unless --sessiond names a binary; or Consul servers\n" +
			"with the same Raft timings with --consul) and, --kills times: waits until the cluster\n" +
			"is whole, kills the leader with SIGKILL, probes a write through the survivors in turn\n" +
			"every --probe-every from the moment of the kill, and reports the gap from the kill to\n" +
			"the first probe answered with success; then restarts the killed node on its data.\n" +
			"A light write load (--load per second) goes through the followers all along.\n" +
			"It prints each gap and their median.",
		Example: "  sessionbench failover --kills 5\n" +
			"  sessionbench failover --sessiond /tmp/old/sessiond --kills 3\n" +
			"  sessionbench failover --consul /usr/local/bin/consul --kills 5",
		SilenceUsage:  true,
		SilenceErrors: true,
		Args:          cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runFailover(cmd.Context(), o, cmd.OutOrStdout())
		},
	}
	f := cmd.Flags()
	f.IntVar(&o.nodes, "nodes", 3, "server processes (3 to 9: a quorum must survive the kill)")
	f.IntVar(&o.kills, "kills", 5, "leaders to kill, one after the other (1 to 100)")
	f.StringVar(&o.sessiond, "sessiond", "", "sessiond binary to run (default: build ./cmd/sessiond of this module)")
	f.StringVar(&o.consul, "consul", "", "run Consul servers from this binary instead of sessiond (a write is a KV put)")
	f.DurationVar(&o.probeEvery, "probe-every", 20*time.Millisecond, "interval of the probe writes after a kill")
	f.Float64Var(&o.load, "load", 20, "background writes per second through the followers (0: none)")
	f.DurationVar(&o.settle, "settle", 3*time.Second, "wait, under the load, after the cluster is whole before the next kill")
	f.DurationVar(&o.gapLimit, "gap-limit", 30*time.Second, "give up on a kill when no write has been answered this long after it")
	f.DurationVar(&o.timeout, "timeout", 15*time.Minute, "hard limit for the whole run")
	f.BoolVar(&o.jsonOut, "json", false, "print one JSON object instead of the table")
	return cmd
}

func (o failoverOptions) validate() error {
	switch {
	case o.nodes < 3 || o.nodes > 9:
		return fmt.Errorf("--nodes %d: want 3 to 9", o.nodes)
	case o.kills < 1 || o.kills > 100:
		return fmt.Errorf("--kills %d: want 1 to 100", o.kills)
	case o.sessiond != "" && o.consul != "":
		return errors.New("--sessiond and --consul exclude each other")
	case o.probeEvery < time.Millisecond || o.probeEvery > time.Second:
		return fmt.Errorf("--probe-every %s: want 1ms to 1s", o.probeEvery)
	case o.load < 0 || o.load > 1000:
		return fmt.Errorf("--load %g: want 0 to 1000 writes per second", o.load)
	case o.settle < 0:
		return errors.New("--settle must not be negative")
	case o.gapLimit < time.Second:
		return errors.New("--gap-limit must be at least 1s")
	case o.timeout <= 0:
		return errors.New("--timeout must be positive")
	}
	return nil
}

// probeTimeout bounds one probe or load write: longer than any wait a
// server holds a write for.
const probeTimeout = 20 * time.Second

func runFailover(ctx context.Context, o failoverOptions, stdout io.Writer) error {
	if err := o.validate(); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeoutCause(ctx, o.timeout, errTimeout)
	defer cancel()
	dir, err := os.MkdirTemp("", "sessionbench-bin-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	fl, bin, err := serverBinary(ctx, o.sessiond, o.consul, dir)
	if err != nil {
		return err
	}
	pc, err := startProcCluster(ctx, fl, bin, o.nodes)
	if err != nil {
		return withCause(ctx, err)
	}
	defer pc.close()

	rep := &failoverReport{Kind: fl.kind(), Binary: bin, Nodes: o.nodes}
	if !o.jsonOut {
		fmt.Fprintf(stdout, "sessionbench failover: %d %s processes (%s), a probe write every %s through the survivors, %g writes/s of load\n",
			o.nodes, fl.kind(), bin, o.probeEvery, o.load)
	}
	var seq atomic.Uint64
	load := startLoad(ctx, pc, o.load, &seq)
	var runErr error
	for k := range o.kills {
		var kill failoverKill
		if kill, runErr = failOnce(ctx, pc, o, load, &seq); runErr != nil {
			runErr = withCause(ctx, fmt.Errorf("kill %d: %w", k+1, runErr))
			break
		}
		rep.Kills = append(rep.Kills, kill)
		if !o.jsonOut {
			printKill(stdout, k+1, kill)
		}
	}
	rep.LoadWrites, rep.LoadErrors = load.stop()
	rep.summarize()
	if o.jsonOut {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return errors.Join(runErr, err)
		}
	} else if len(rep.Kills) > 0 {
		fmt.Fprintf(stdout, "median %.3fs [%.3f–%.3f] over %d kills; load: %d writes, %d failed\n",
			rep.MedianS, rep.MinS, rep.MaxS, len(rep.Kills), rep.LoadWrites, rep.LoadErrors)
	}
	return runErr
}

// failOnce kills the leader of a whole cluster, measures the gap, restarts
// the node and waits until the cluster is whole again.
func failOnce(ctx context.Context, pc *procCluster, o failoverOptions, load *loadGen, seq *atomic.Uint64) (failoverKill, error) {
	var kill failoverKill
	leader, err := pc.waitWhole(ctx, clusterWait)
	if err != nil {
		return kill, err
	}
	var survivors []int
	for i := range pc.nodes {
		if i != leader {
			survivors = append(survivors, i)
		}
	}
	load.target(survivors)
	if err := sleepCtx(ctx, o.settle); err != nil {
		return kill, err
	}
	// The leader may have changed during the settle (it should not).
	if leader, err = pc.waitWhole(ctx, clusterWait); err != nil {
		return kill, err
	}
	survivors = survivors[:0]
	for i := range pc.nodes {
		if i != leader {
			survivors = append(survivors, i)
		}
	}
	load.target(survivors)
	kill.Killed = pc.nodes[leader].name
	killed := time.Now()
	if err := pc.kill(leader); err != nil {
		return kill, err
	}
	watch := watchSurvivors(ctx, pc, survivors, kill.Killed, killed)
	gap, by, probes, failed, firstErr, err := probeUntilAnswered(ctx, pc, survivors, killed, o.probeEvery, o.gapLimit, seq)
	kill.CandidateS, kill.ElectedS, kill.KnownS = watch.stop()
	kill.GapS, kill.Probes, kill.Failed, kill.FirstError = gap.Seconds(), probes, failed, firstErr
	if by >= 0 {
		kill.AnsweredBy = pc.nodes[by].name
	}
	if err != nil {
		return kill, err
	}
	restarted := time.Now()
	if err := pc.start(leader); err != nil {
		return kill, err
	}
	if _, err := pc.waitWhole(ctx, clusterWait); err != nil {
		return kill, err
	}
	kill.WholeAgainS = time.Since(restarted).Seconds()
	return kill, nil
}

// probeUntilAnswered sends a write every interval, to the survivors in turn,
// from since on, each held as long as the server holds it, until one is
// answered with success. It returns the time from since to that answer, who
// answered, the probes sent and how many failed before it.
func probeUntilAnswered(ctx context.Context, pc *procCluster, survivors []int, since time.Time,
	interval, limit time.Duration, seq *atomic.Uint64) (gap time.Duration, by, probes, failed int, firstErr string, err error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type answer struct {
		node int
		at   time.Time
		err  error
	}
	answers := make(chan answer, 1024)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	tick := time.NewTicker(interval)
	defer tick.Stop()
	deadline := time.NewTimer(limit - time.Since(since))
	defer deadline.Stop()
	send := func() {
		node := survivors[probes%len(survivors)]
		probes++
		wg.Go(func() {
			wctx, wcancel := context.WithTimeout(ctx, probeTimeout)
			defer wcancel()
			err := pc.fl.write(wctx, pc.client, node, seq.Add(1))
			if ctx.Err() != nil {
				return // the answer came after the measurement ended
			}
			select {
			case answers <- answer{node: node, at: time.Now(), err: err}:
			default:
			}
		})
	}
	send()
	for {
		select {
		case <-ctx.Done():
			return 0, -1, probes, failed, firstErr, context.Cause(ctx)
		case <-deadline.C:
			return 0, -1, probes, failed, firstErr, fmt.Errorf("no write answered within %s of the kill (%d probes, %d failed; first error: %s)",
				limit, probes, failed, firstErr)
		case <-tick.C:
			send()
		case a := <-answers:
			if a.err == nil {
				return a.at.Sub(since), a.node, probes, failed, firstErr, nil
			}
			failed++
			if firstErr == "" {
				firstErr = pc.nodes[a.node].name + ": " + a.err.Error()
			}
		}
	}
}

// stateWatch polls the survivors' Raft state after a kill.
type stateWatch struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup
	mu     sync.Mutex
	// candidate, elected and known are times since the kill; 0: not seen.
	candidate, elected, known time.Duration
	knows                     map[int]bool
}

// watchEvery is the interval of stateWatch's polls.
const watchEvery = 10 * time.Millisecond

func watchSurvivors(ctx context.Context, pc *procCluster, survivors []int, killed string, since time.Time) *stateWatch {
	ctx, cancel := context.WithCancel(ctx)
	w := &stateWatch{cancel: cancel, knows: map[int]bool{}}
	first := func(d *time.Duration, at time.Duration) {
		if *d == 0 {
			*d = at
		}
	}
	for _, i := range survivors {
		w.wg.Go(func() {
			tick := time.NewTicker(watchEvery)
			defer tick.Stop()
			for {
				sctx, scancel := context.WithTimeout(ctx, time.Second)
				role, leader, err := pc.fl.state(sctx, pc.client, i)
				scancel()
				at := time.Since(since)
				if err == nil {
					w.mu.Lock()
					switch role {
					case "Candidate":
						first(&w.candidate, at)
					case "Leader":
						first(&w.elected, at)
					}
					if leader != "" && leader != killed {
						w.knows[i] = true
						if len(w.knows) == len(survivors) {
							first(&w.known, at)
						}
					}
					w.mu.Unlock()
				}
				select {
				case <-ctx.Done():
					return
				case <-tick.C:
				}
			}
		})
	}
	return w
}

// stop ends the polls and returns what they saw, in seconds since the kill.
func (w *stateWatch) stop() (candidate, elected, known float64) {
	w.cancel()
	w.wg.Wait()
	return w.candidate.Seconds(), w.elected.Seconds(), w.known.Seconds()
}

// loadGen sends writes at a steady rate through its targets in turn.
type loadGen struct {
	mu      sync.Mutex
	targets []int
	writes  atomic.Int64
	errors  atomic.Int64
	cancel  context.CancelFunc
	wg      sync.WaitGroup
}

func startLoad(ctx context.Context, pc *procCluster, perSecond float64, seq *atomic.Uint64) *loadGen {
	ctx, cancel := context.WithCancel(ctx)
	l := &loadGen{cancel: cancel}
	if perSecond <= 0 {
		return l
	}
	l.wg.Go(func() {
		tick := time.NewTicker(time.Duration(float64(time.Second) / perSecond))
		defer tick.Stop()
		for n := 0; ; n++ {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			l.mu.Lock()
			targets := l.targets
			l.mu.Unlock()
			if len(targets) == 0 {
				continue
			}
			node := targets[n%len(targets)]
			l.wg.Go(func() {
				wctx, wcancel := context.WithTimeout(ctx, probeTimeout)
				defer wcancel()
				err := pc.fl.write(wctx, pc.client, node, seq.Add(1))
				if ctx.Err() != nil {
					return
				}
				l.writes.Add(1)
				if err != nil {
					l.errors.Add(1)
				}
			})
		}
	})
	return l
}

// target makes the load go through these nodes.
func (l *loadGen) target(nodes []int) {
	l.mu.Lock()
	l.targets = slices.Clone(nodes)
	l.mu.Unlock()
}

// stop ends the load and returns the writes made and how many failed.
func (l *loadGen) stop() (writes, errors int64) {
	l.cancel()
	l.wg.Wait()
	return l.writes.Load(), l.errors.Load()
}

func (r *failoverReport) summarize() {
	if len(r.Kills) == 0 {
		return
	}
	gaps := make([]float64, len(r.Kills))
	for i, k := range r.Kills {
		gaps[i] = k.GapS
	}
	r.MedianS, r.MinS, r.MaxS = medianOf(gaps), slices.Min(gaps), slices.Max(gaps)
}

// medianOf is the median of xs (the mean of the middle two when even).
func medianOf(xs []float64) float64 {
	s := slices.Sorted(slices.Values(xs))
	m := s[len(s)/2]
	if len(s)%2 == 0 {
		m = (s[len(s)/2-1] + m) / 2
	}
	return m
}

func printKill(w io.Writer, k int, kill failoverKill) {
	var errs strings.Builder
	if kill.Failed > 0 {
		fmt.Fprintf(&errs, ", first: %s", truncate([]byte(kill.FirstError), 100))
	}
	fmt.Fprintf(w, "kill %d: %s (leader) → first write answered by %s after %.3fs (candidate %s, leader %s, known to all %s); %d probes, %d failed before%s; whole again %.1fs after the restart\n",
		k, kill.Killed, kill.AnsweredBy, kill.GapS, seconds(kill.CandidateS), seconds(kill.ElectedS), seconds(kill.KnownS),
		kill.Probes, kill.Failed, errs.String(), kill.WholeAgainS)
}

func seconds(s float64) string {
	if s == 0 {
		return "-"
	}
	return fmt.Sprintf("%.3fs", s)
}
