package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"
)

// idleOptions are the settings of sessionbench idle.
type idleOptions struct {
	nodes    int
	duration time.Duration
	settle   time.Duration
	sessiond string
	consul   string
	pids     []int
	timeout  time.Duration
	jsonOut  bool
}

// idleReport is what sessionbench idle measured; --json prints it as is.
type idleReport struct {
	Kind      string     `json:"kind"` // sessiond, consul, or pids
	Binary    string     `json:"binary,omitempty"`
	DurationS float64    `json:"duration_s"`
	SettleS   float64    `json:"settle_s"`
	Nodes     []idleNode `json:"nodes"`
	// TotalPct is the CPU of all nodes together, in % of one core.
	TotalPct float64 `json:"total_cpu_pct"`
}

type idleNode struct {
	Name   string  `json:"name"`
	PID    int     `json:"pid"`
	Role   string  `json:"role,omitempty"` // leader or follower, when known
	CPUPct float64 `json:"cpu_pct"`
}

func newIdleCommand() *cobra.Command {
	var o idleOptions
	cmd := &cobra.Command{
		Use:   "idle",
		Short: "CPU of an idle cluster of server processes, per node",
		Long: "idle starts --nodes server processes on 127.0.0.1 (sessiond with its production\n" +
			"timings, built from this module unless --sessiond names a binary; or Consul servers\n" +
			"with --consul), waits until the cluster is whole and --settle has passed, and reads each\n" +
			"process's CPU time from /proc/<pid>/stat over --duration with no client traffic.\n" +
			"With --pids it measures processes someone else started instead.\n" +
			"CPU is given in % of one core, per node and in total.",
		Example: "  sessionbench idle --nodes 3 --duration 30s\n" +
			"  sessionbench idle --sessiond /tmp/old/sessiond\n" +
			"  sessionbench idle --consul /usr/local/bin/consul\n" +
			"  sessionbench idle --pids 4211,4212,4213 --duration 60s",
		SilenceUsage:  true,
		SilenceErrors: true,
		Args:          cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runIdle(cmd.Context(), o, cmd.OutOrStdout())
		},
	}
	f := cmd.Flags()
	f.IntVar(&o.nodes, "nodes", 3, "server processes to start (1 to 9)")
	f.DurationVarP(&o.duration, "duration", "d", 30*time.Second, "measuring window")
	f.DurationVar(&o.settle, "settle", 5*time.Second, "wait after the cluster is whole before measuring (start-up work is not idle cost)")
	f.StringVar(&o.sessiond, "sessiond", "", "sessiond binary to run (default: build ./cmd/sessiond of this module)")
	f.StringVar(&o.consul, "consul", "", "run Consul servers from this binary instead of sessiond (raft_multiplier=1)")
	f.IntSliceVar(&o.pids, "pids", nil, "measure these running processes instead of starting any")
	f.DurationVar(&o.timeout, "timeout", 5*time.Minute, "hard limit for the whole run")
	f.BoolVar(&o.jsonOut, "json", false, "print one JSON object instead of the table")
	return cmd
}

func (o idleOptions) validate() error {
	switch {
	case o.duration < time.Second || o.duration > time.Hour:
		return fmt.Errorf("--duration %s: want 1s to 1h", o.duration)
	case o.settle < 0:
		return errors.New("--settle must not be negative")
	case o.timeout <= 0:
		return errors.New("--timeout must be positive")
	case len(o.pids) > 0 && (o.sessiond != "" || o.consul != ""):
		return errors.New("--pids measures running processes: it excludes --sessiond and --consul")
	case o.sessiond != "" && o.consul != "":
		return errors.New("--sessiond and --consul exclude each other")
	case len(o.pids) == 0 && (o.nodes < 1 || o.nodes > 9):
		return fmt.Errorf("--nodes %d: want 1 to 9", o.nodes)
	}
	for _, pid := range o.pids {
		if pid <= 0 {
			return fmt.Errorf("--pids: %d is not a process id", pid)
		}
	}
	return nil
}

func runIdle(ctx context.Context, o idleOptions, stdout io.Writer) error {
	if err := o.validate(); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeoutCause(ctx, o.timeout, errTimeout)
	defer cancel()
	rep := &idleReport{Kind: "pids", DurationS: o.duration.Seconds(), SettleS: o.settle.Seconds()}
	var pc *procCluster
	pids := o.pids
	if len(pids) == 0 {
		dir, err := os.MkdirTemp("", "sessionbench-bin-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		fl, bin, err := serverBinary(ctx, o.sessiond, o.consul, dir)
		if err != nil {
			return err
		}
		rep.Kind, rep.Binary = fl.kind(), bin
		if pc, err = startProcCluster(ctx, fl, bin, o.nodes); err != nil {
			return withCause(ctx, err)
		}
		defer pc.close()
		pids = pc.pids()
	}
	if err := sleepCtx(ctx, o.settle); err != nil {
		return withCause(ctx, err)
	}
	cpu, err := measureCPU(ctx, pids, o.duration)
	if err != nil {
		return withCause(ctx, err)
	}
	leader := -1
	if pc != nil {
		var ok bool
		if leader, ok = pc.whole(ctx); !ok {
			return fmt.Errorf("the %s cluster was not whole at the end of the window: a figure with an election in it is not idle cost", pc.fl.kind())
		}
	}
	for i, pid := range pids {
		nd := idleNode{Name: fmt.Sprintf("pid %d", pid), PID: pid, CPUPct: pct(cpu[i], o.duration)}
		if pc != nil {
			nd.Name, nd.Role = pc.nodes[i].name, "follower"
			if i == leader {
				nd.Role = "leader"
			}
		}
		rep.Nodes = append(rep.Nodes, nd)
		rep.TotalPct += nd.CPUPct
	}
	if o.jsonOut {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	printIdle(stdout, rep)
	return nil
}

// measureCPU is the CPU time each process uses over window.
func measureCPU(ctx context.Context, pids []int, window time.Duration) ([]time.Duration, error) {
	before := make([]time.Duration, len(pids))
	for i, pid := range pids {
		var err error
		if before[i], err = pidCPU(pid); err != nil {
			return nil, fmt.Errorf("process %d: %w", pid, err)
		}
	}
	if err := sleepCtx(ctx, window); err != nil {
		return nil, err
	}
	out := make([]time.Duration, len(pids))
	for i, pid := range pids {
		after, err := pidCPU(pid)
		if err != nil {
			return nil, fmt.Errorf("process %d ended during the window: %w", pid, err)
		}
		out[i] = after - before[i]
	}
	return out, nil
}

// pct is cpu over window in % of one core.
func pct(cpu, window time.Duration) float64 { return 100 * cpu.Seconds() / window.Seconds() }

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return context.Cause(ctx)
	case <-t.C:
		return nil
	}
}

func printIdle(w io.Writer, r *idleReport) {
	what := r.Kind + " processes"
	switch {
	case r.Kind == "pids":
		what = "processes given by --pids"
	case r.Binary != "":
		what += " (" + r.Binary + ")"
	}
	fmt.Fprintf(w, "sessionbench idle: %d %s, %s window after a %s settle; CPU in %% of one core\n",
		len(r.Nodes), what, time.Duration(r.DurationS*float64(time.Second)), time.Duration(r.SettleS*float64(time.Second)))
	fmt.Fprintf(w, "%-10s %8s %-9s %7s\n", "node", "pid", "role", "cpu")
	for _, n := range r.Nodes {
		role := n.Role
		if role == "" {
			role = "-"
		}
		fmt.Fprintf(w, "%-10s %8d %-9s %6.2f%%\n", n.Name, n.PID, role, n.CPUPct)
	}
	fmt.Fprintf(w, "%-10s %8s %-9s %6.2f%%\n", "total", "", "", r.TotalPct)
}
