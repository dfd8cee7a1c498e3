package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
)

// Phase names, in the order they run.
const (
	phaseCreate   = "create"
	phaseValidate = "validate-follower"
	phaseCeiling  = "ceiling"
)

var allPhases = []string{phaseCreate, phaseValidate, phaseCeiling}

// shutdownGrace is how long stopping the local cluster may take after the
// run ends (or after --timeout). Past --timeout plus watchdogGrace the
// process is ended (main only), whatever is still running.
const (
	shutdownGrace = 30 * time.Second
	watchdogGrace = shutdownGrace + 15*time.Second
)

// options are the command-line settings.
type options struct {
	addrs          []string
	apiKey         string
	apiKeyFile     string
	local          int
	concurrency    int
	requests       int64
	duration       time.Duration
	warmup         time.Duration
	timeout        time.Duration
	requestTimeout time.Duration
	phases         []string
	users          int
	seedSessions   int64
	createVia      string
	jsonOut        bool
	logLevel       string
	cpuProfile     string
	memProfile     string
	profilePhase   string
	raftStats      bool
	client         string
	rounds         int
}

// newRootCommand builds the command. onStuck, when set, is called if the run
// has not returned within --timeout plus a grace period (main exits there).
func newRootCommand(onStuck func()) *cobra.Command {
	var o options
	cmd := &cobra.Command{
		Use:   "sessionbench",
		Short: "sessionbench: load generator for sessiond (create, validate on a follower, HTTP ceiling)",
		Long: "sessionbench drives a sessiond cluster and reports throughput and latency per phase.\n" +
			"Each phase ends after --requests or --duration, whichever comes first; the whole run\n" +
			"ends after --timeout at the latest (then with a non-zero exit).\n\n" +
			"Without --addrs it starts an in-process cluster of --local nodes on 127.0.0.1.",
		Example: "  sessionbench --local 3 --concurrency 64 --requests 200000 --duration 20s\n" +
			"  sessionbench --addrs http://127.0.0.1:8081,http://127.0.0.1:8082,http://127.0.0.1:8083 \\\n" +
			"      --api-key-file docs/examples/compose/admin.keys --json",
		SilenceUsage:  true,
		SilenceErrors: true,
		Args:          cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o.local = localSize(cmd, o)
			if onStuck != nil {
				t := time.AfterFunc(o.timeout+watchdogGrace, onStuck)
				defer t.Stop()
			}
			return run(cmd.Context(), o, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	f := cmd.Flags()
	f.StringSliceVar(&o.addrs, "addrs", nil, "comma-separated base URLs of an existing cluster's nodes (e.g. http://127.0.0.1:8081); used exactly as given")
	f.StringVar(&o.apiKey, "api-key", "", "admin API key for --addrs (prefer --api-key-file: a flag is visible to other users)")
	f.StringVar(&o.apiKeyFile, "api-key-file", "", "file of admin API keys for --addrs, one per line; the last one is used")
	f.IntVar(&o.local, "local", 3, "start an in-process cluster of this many nodes on 127.0.0.1 (the default when --addrs is not given)")
	f.IntVarP(&o.concurrency, "concurrency", "c", 64, "client goroutines, each with one request in flight")
	f.Int64VarP(&o.requests, "requests", "n", 100000, "requests per phase (warm-up not counted); a phase ends at this count or --duration")
	f.DurationVarP(&o.duration, "duration", "d", 10*time.Second, "time per phase; a phase ends after it or --requests")
	f.DurationVar(&o.warmup, "warmup", time.Second, "uncounted warm-up before each phase (same requests)")
	f.DurationVar(&o.timeout, "timeout", 2*time.Minute, "hard limit for the whole run, cluster start included; past it everything stops and the exit is non-zero")
	f.DurationVar(&o.requestTimeout, "request-timeout", 10*time.Second, "limit for one request")
	f.StringSliceVar(&o.phases, "phases", allPhases, "phases to run (always in the order create, validate-follower, ceiling)")
	f.IntVar(&o.users, "users", 10000, "distinct user ids the created sessions are spread over")
	f.StringVar(&o.createVia, "create-via", "all", "nodes the create phase sends to in turn: all, leader (no forwarding) or followers (every write forwarded)")
	f.Int64Var(&o.seedSessions, "seed-sessions", 1000, "sessions created (unmeasured) for validation when the create phase is not run")
	f.BoolVar(&o.jsonOut, "json", false, "print one JSON object with every figure instead of the table")
	f.StringVar(&o.logLevel, "log-level", "warn", "level of the in-process nodes' logs on stderr: debug, info, warn or error")
	f.StringVar(&o.cpuProfile, "cpuprofile", "", "write a CPU profile of this process (the in-process cluster included) to this file")
	f.StringVar(&o.memProfile, "memprofile", "", "write an allocation profile of this process to this file, and one taken when profiling began to this file plus .base (read with: go tool pprof -diff_base F.base F)")
	f.StringVar(&o.profilePhase, "profile-phase", "", "profile only the measured part of this phase (default: every phase)")
	f.StringVar(&o.client, "client", "auto", "HTTP client of the phases: raw (wrk-style, plain http only), net/http, or auto (raw unless a target is https)")
	f.IntVar(&o.rounds, "rounds", 1, "run validate-follower and ceiling this many times, alternating, and give the median of the rounds' shares")
	f.BoolVar(&o.raftStats, "raft-stats", false, "report Raft's own figures per phase (batch sizes, commit and disk times; --local only)")
	cmd.AddCommand(newIdleCommand(), newFailoverCommand(), newRegionsCommand())
	return cmd
}

// localSize is --local, or 0 when --addrs is given and --local is not.
func localSize(cmd *cobra.Command, o options) int {
	if len(o.addrs) > 0 && !cmd.Flags().Changed("local") {
		return 0
	}
	return o.local
}

func (o options) validate() error {
	switch {
	case len(o.addrs) > 0 && o.local > 0:
		return errors.New("--addrs and --local exclude each other")
	case len(o.addrs) == 0 && o.local < 1:
		return errors.New("--local must be at least 1 (or give --addrs)")
	case o.local > 9:
		return errors.New("--local: at most 9 nodes")
	case len(o.addrs) > 0 && o.apiKey == "" && o.apiKeyFile == "":
		return errors.New("--addrs needs --api-key or --api-key-file")
	case o.apiKey != "" && o.apiKeyFile != "":
		return errors.New("--api-key and --api-key-file exclude each other")
	case len(o.addrs) == 0 && (o.apiKey != "" || o.apiKeyFile != ""):
		return errors.New("--api-key and --api-key-file go with --addrs (a local cluster makes its own key)")
	case o.rounds < 1 || o.rounds > 100:
		return fmt.Errorf("--rounds %d: want 1 to 100", o.rounds)
	case o.concurrency < 1 || o.concurrency > 10000:
		return errors.New("--concurrency must be between 1 and 10000")
	case o.requests < 1:
		return errors.New("--requests must be positive")
	case o.duration <= 0:
		return errors.New("--duration must be positive")
	case o.warmup < 0:
		return errors.New("--warmup must not be negative")
	case o.timeout <= 0 || o.requestTimeout <= 0:
		return errors.New("--timeout and --request-timeout must be positive")
	case o.users < 1:
		return errors.New("--users must be positive")
	case o.seedSessions < 1:
		return errors.New("--seed-sessions must be positive")
	case o.raftStats && len(o.addrs) > 0:
		return errors.New("--raft-stats needs an in-process cluster (--local)")
	case o.createVia != "all" && o.createVia != "leader" && o.createVia != "followers":
		return fmt.Errorf("--create-via %q: want all, leader or followers", o.createVia)
	case o.client != "auto" && o.client != "raw" && o.client != "net/http":
		return fmt.Errorf("--client %q: want auto, raw or net/http", o.client)
	case len(o.phases) == 0:
		return errors.New("--phases: name at least one phase")
	}
	for _, p := range o.phases {
		if !slices.Contains(allPhases, p) {
			return fmt.Errorf("--phases: unknown phase %q (want %s)", p, strings.Join(allPhases, ", "))
		}
	}
	if o.profilePhase != "" && !slices.Contains(o.phases, o.profilePhase) {
		return fmt.Errorf("--profile-phase %q is not among --phases", o.profilePhase)
	}
	for _, a := range o.addrs {
		u, err := url.Parse(a)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("--addrs: %q is not a base URL such as http://127.0.0.1:8081", a)
		}
	}
	return nil
}

func (o options) runs(phase string) bool { return slices.Contains(o.phases, phase) }

// errTimeout reports that --timeout ended the run.
var errTimeout = errors.New("stopped by --timeout")

// run is the whole tool: targets up, phases, report, targets down.
func run(ctx context.Context, o options, stdout, stderr io.Writer) (err error) {
	if err := o.validate(); err != nil {
		return err
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(o.logLevel)); err != nil {
		return fmt.Errorf("--log-level %q: want debug, info, warn or error", o.logLevel)
	}
	// Raft and gossip warn and complain as a matter of course while a
	// cluster forms and while it is stopped; at warn level and above those
	// moments are silenced, so that what shows is what happened under load.
	var levelVar slog.LevelVar
	levelVar.Set(level)
	quiet := func(on bool) {
		switch {
		case level < slog.LevelWarn: // asked for more: show everything
		case on:
			levelVar.Set(slog.LevelError + 100)
		default:
			levelVar.Set(level)
		}
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: &levelVar}))

	ctx, cancel := context.WithTimeoutCause(ctx, o.timeout, errTimeout)
	defer cancel()

	rep := &report{
		Concurrency: o.concurrency, MaxRequests: o.requests,
		MaxDurationS: o.duration.Seconds(), WarmupS: o.warmup.Seconds(),
		NumCPU: runtime.NumCPU(), GOMAXPROCS: runtime.GOMAXPROCS(0), GoVersion: runtime.Version(),
	}
	b := &bench{o: o, log: log}
	if o.raftStats {
		if b.stats, err = installRaftStats(); err != nil {
			return fmt.Errorf("--raft-stats: %w", err)
		}
	}
	if len(o.addrs) > 0 {
		rep.Mode = "addrs"
		b.urls = trimSlashes(o.addrs)
		if b.apiKey, err = apiKey(o); err != nil {
			return err
		}
	} else {
		rep.Mode = "local"
		started := time.Now()
		quiet(true)
		var lc *localCluster
		if lc, err = startLocal(ctx, o.local, log); err != nil {
			return withCause(ctx, fmt.Errorf("start local cluster (--log-level info shows how far it got): %w", err))
		}
		quiet(false)
		defer func() {
			quiet(true)
			if cerr := lc.close(); cerr != nil {
				err = errors.Join(err, fmt.Errorf("stop local cluster: %w", cerr))
			}
		}()
		rep.ClusterStartS = time.Since(started).Seconds()
		b.urls, b.apiKey = lc.urls, lc.apiKey
	}
	rep.Nodes = b.urls
	b.client = newClient(o, len(b.urls)+1)
	defer b.client.CloseIdleConnections()
	if rep.Client, err = b.useRawClient(ctx); err != nil {
		return err
	}
	if b.raw != nil {
		defer b.raw.close()
	}

	if !o.jsonOut {
		printHeader(stdout, rep)
	}
	b.prof = &profiler{path: o.cpuProfile, memPath: o.memProfile, phase: o.profilePhase}
	if err := b.prof.begin(""); err != nil {
		return err
	}
	defer func() {
		if err := b.prof.close(); err != nil {
			b.log.Warn("profile not written", "error", err)
		}
	}()

	runErr := b.runPhases(ctx, rep, func(p *phaseResult) {
		if !o.jsonOut {
			printPhase(stdout, p)
		}
	})
	rep.followerVsCeiling()
	rep.Leader, rep.Follower, rep.Ceiling = b.leaderURL, b.followerURL, b.ceilingURL
	rep.SessionsCreated = len(b.tokens)
	if runErr != nil {
		runErr = withCause(ctx, runErr)
		rep.Error = runErr.Error()
	}
	if o.jsonOut {
		if err := printJSON(stdout, rep); err != nil {
			return errors.Join(runErr, err)
		}
	} else {
		printFooter(stdout, rep)
	}
	return runErr
}

// useRawClient sets up the raw client unless --client or an https target
// rules it out, and returns the name of the client the phases use.
func (b *bench) useRawClient(ctx context.Context) (string, error) {
	if b.o.client == "net/http" {
		return "net/http", nil
	}
	targets := map[string]rawTarget{}
	for _, u := range b.urls {
		t, err := newRawTarget(u)
		if err != nil {
			if b.o.client == "auto" && errors.Is(err, errRawScheme) {
				return "net/http", nil
			}
			return "", fmt.Errorf("--client raw: %w", err)
		}
		targets[u] = t
	}
	b.targets = targets
	b.raw = newRawClient(ctx, b.o.concurrency, b.o.requestTimeout)
	return "raw", nil
}

// withCause puts errTimeout in front when --timeout is why err happened.
func withCause(ctx context.Context, err error) error {
	if errors.Is(context.Cause(ctx), errTimeout) && !errors.Is(err, errTimeout) {
		return fmt.Errorf("%w: %w", errTimeout, err)
	}
	return err
}

func trimSlashes(addrs []string) []string {
	out := make([]string, len(addrs))
	for i, a := range addrs {
		out[i] = strings.TrimRight(a, "/")
	}
	return out
}

// apiKey is --api-key, or the last key of --api-key-file (blank lines and
// # comments skipped). The key is never printed.
func apiKey(o options) (string, error) {
	if o.apiKey != "" {
		return o.apiKey, nil
	}
	data, err := os.ReadFile(o.apiKeyFile)
	if err != nil {
		return "", fmt.Errorf("--api-key-file: %w", err)
	}
	key := ""
	for line := range strings.SplitSeq(string(data), "\n") {
		if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
			key = line
		}
	}
	if key == "" {
		return "", fmt.Errorf("--api-key-file %s holds no key", o.apiKeyFile)
	}
	return key, nil
}

// newClient is one keep-alive client shared by every worker: up to
// --concurrency idle connections per host, no proxy, no compression.
func newClient(o options, hosts int) *http.Client {
	tr := &http.Transport{
		Proxy:                 nil,
		DialContext:           (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:          o.concurrency * hosts,
		MaxIdleConnsPerHost:   o.concurrency,
		IdleConnTimeout:       90 * time.Second,
		DisableCompression:    true,
		ResponseHeaderTimeout: o.requestTimeout,
	}
	return &http.Client{Transport: tr, Timeout: o.requestTimeout}
}
