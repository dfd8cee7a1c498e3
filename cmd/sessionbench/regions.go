package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/sessiond/sessiond/httpapi"
	"github.com/sessiond/sessiond/httpapi/client"
	"github.com/sessiond/sessiond/node"
	"github.com/sessiond/sessiond/transport"
)

// regionsOptions are the settings of sessionbench regions.
type regionsOptions struct {
	regions        int
	nodesPerRegion int
	wanDelay       time.Duration
	lanDelay       time.Duration
	requests       int
	concurrency    int
	users          int
	layouts        []string
	maxStale       time.Duration
	loss           time.Duration
	lossRequests   int
	healLimit      time.Duration
	timeout        time.Duration
	logLevel       string
	jsonOut        bool
}

// The layouts sessionbench regions measures, by their --layouts names.
const (
	layoutSingle  = "single-region"
	layoutOne     = "one-group"
	layoutRegions = "region-groups"
)

var allLayouts = []string{layoutSingle, layoutOne, layoutRegions}

// lossMargin is how much longer than --max-stale the region-loss phase
// must last for the validations of the cut-off region's sessions to be
// seen turning into 503s (a stale node's validation waits up to two
// seconds for a leader before it answers 503).
const lossMargin = 4 * time.Second

// regionsReport is what sessionbench regions measured; --json prints it.
type regionsReport struct {
	Regions        int            `json:"regions"`
	NodesPerRegion int            `json:"nodes_per_region"`
	WANDelayMS     float64        `json:"wan_delay_ms"`
	LANDelayMS     float64        `json:"lan_delay_ms"`
	MaxStaleMS     float64        `json:"max_stale_ms"`
	Layouts        []layoutResult `json:"layouts"`
	// Compared are the home-region writes of the region-groups layout
	// against the single-region baseline (both layouts run).
	Compared []comparison `json:"compared,omitempty"`
	// Loss is the region-loss phase (on the region-groups layout).
	Loss *lossResult `json:"loss,omitempty"`
	// Failures are the broken guarantees seen: errors where none may be,
	// a validation answered 200 after a 503, state that did not converge.
	Failures []string `json:"failures"`
}

type layoutResult struct {
	Layout string `json:"layout"`
	About  string `json:"about"`
	Nodes  int    `json:"nodes"`
	// Groups are the Raft groups as the cluster stood once ready.
	Groups  []groupInfo `json:"groups"`
	Results []opResult  `json:"results"`
}

// groupInfo is one Raft group of a layout.
type groupInfo struct {
	Name     string   `json:"name"`
	Leader   string   `json:"leader"`
	Voters   []string `json:"voters"`
	Replicas []string `json:"replicas,omitempty"`
}

// opResult is one operation's latency for the users of one region, sent to
// that region's nodes.
type opResult struct {
	Region     string  `json:"region"`
	Op         string  `json:"op"`
	Count      int     `json:"count"`
	Errors     int     `json:"errors"`
	P50MS      float64 `json:"p50_ms"`
	P99MS      float64 `json:"p99_ms"`
	FirstError string  `json:"first_error,omitempty"`
}

// comparison is one home-region write's p50 in the region-groups layout
// against the same write in the single-region baseline.
type comparison struct {
	Region     string  `json:"region"`
	Op         string  `json:"op"`
	BaselineMS float64 `json:"baseline_p50_ms"`
	GroupsMS   float64 `json:"region_groups_p50_ms"`
	DiffMS     float64 `json:"diff_ms"`
	// Within is whether the difference is at most comparisonTarget.
	Within bool `json:"within_target"`
}

// comparisonTarget is how close a home-region write in the region-groups
// layout is to come to the single-region baseline.
const comparisonTarget = 5 * time.Millisecond

func newRegionsCommand() *cobra.Command {
	var o regionsOptions
	cmd := &cobra.Command{
		Use:   "regions",
		Short: "Latency per region of creates, logins, refreshes and validations in three layouts, and the loss of a region",
		Long: "regions starts clusters of --nodes-per-region nodes per region in this process, puts a\n" +
			"one-way delay of --wan-delay between nodes of different regions and --lan-delay within\n" +
			"one (through the transport's fault layer: Raft, forwarding and gossip traffic), and has\n" +
			"each region's clients create sessions, log in and refresh through their own region's\n" +
			"nodes, for users of that region, and validate the sessions the next region created.\n" +
			"It prints p50 and p99 per layout, region and operation. The layouts, one cluster each:\n\n" +
			"  single-region  one region's voters alone, no WAN, with every region's clients (the\n" +
			"                 machine as busy as in the others): what a home-region write should cost;\n" +
			"  one-group      one Raft group, voters in the first region, the other regions' nodes\n" +
			"                 non-voting replicas that forward their writes to its leader;\n" +
			"  region-groups  a Raft group per region and the global group, every user homed\n" +
			"                 in its region (PUT /v1/users with the region) before it is measured.\n\n" +
			"Then, on the region-groups cluster, unless --loss is 0, the first region loses every\n" +
			"link to the others (Raft, RPC and gossip, both ways) for --loss. The other regions keep\n" +
			"creating sessions for users homed before the cut, validating, refreshing and revoking\n" +
			"them (no error may occur), while their nodes are asked to validate the cut-off region's\n" +
			"sessions: they may answer 200 until --max-stale after the cut, then must answer 503, and\n" +
			"never 200 after a 503. Then the links heal and every group's state must become\n" +
			"byte-identical on every node within --heal-limit. Broken guarantees are printed as FAIL\n" +
			"lines and make the exit status non-zero.",
		Example: "  sessionbench regions --regions 2 --wan-delay 40ms\n" +
			"  sessionbench regions --layouts region-groups --loss 0 --json",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.validate(); err != nil {
				return err
			}
			ctx, cancel := context.WithTimeoutCause(cmd.Context(), o.timeout, errTimeout)
			defer cancel()
			rep, err := runRegions(ctx, o, cmd.ErrOrStderr())
			if err != nil {
				return withCause(ctx, err)
			}
			if o.jsonOut {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				err = enc.Encode(rep)
			} else {
				err = printRegions(cmd.OutOrStdout(), rep)
			}
			if err == nil && len(rep.Failures) > 0 {
				err = fmt.Errorf("%d broken guarantee(s): see the FAIL lines", len(rep.Failures))
			}
			return err
		},
	}
	f := cmd.Flags()
	f.IntVar(&o.regions, "regions", 2, "regions (2 to 5)")
	f.IntVar(&o.nodesPerRegion, "nodes-per-region", 3, "nodes in each region, all voters of its group in the region-groups layout (1, 3 or 5)")
	f.DurationVar(&o.wanDelay, "wan-delay", 40*time.Millisecond, "one-way delay between nodes of different regions")
	f.DurationVar(&o.lanDelay, "lan-delay", 200*time.Microsecond, "one-way delay between nodes of one region")
	f.IntVarP(&o.requests, "requests", "n", 200, "requests of each operation per region and layout")
	f.IntVarP(&o.concurrency, "concurrency", "c", 2, "clients per region, each with one request in flight")
	f.IntVar(&o.users, "users", 20, "users per region (created with a password before the logins)")
	f.StringSliceVar(&o.layouts, "layouts", allLayouts, "layouts to measure, in this order: "+strings.Join(allLayouts, ", "))
	f.DurationVar(&o.maxStale, "max-stale", node.Default().MaxStale, "every node's --max-stale: how long a node cut off from a region keeps vouching for its sessions")
	f.DurationVar(&o.loss, "loss", 30*time.Second, "length of the region-loss phase on the region-groups layout (0: none; else at least --max-stale + "+lossMargin.String()+")")
	f.IntVar(&o.lossRequests, "loss-requests", 20000, "at most this many create-validate-refresh-revoke cycles per surviving region during --loss")
	f.DurationVar(&o.healLimit, "heal-limit", time.Minute, "how long after the links heal every group's state may take to become identical on every node")
	f.DurationVar(&o.timeout, "timeout", 10*time.Minute, "hard limit for the whole run")
	f.StringVar(&o.logLevel, "log-level", "off", "level of the nodes' logs on stderr: debug, info, warn, error or off (a shut-down cluster's connection errors are expected)")
	f.BoolVar(&o.jsonOut, "json", false, "print one JSON object instead of the tables")
	return cmd
}

func (o regionsOptions) validate() error {
	switch {
	case o.regions < 2 || o.regions > 5:
		return fmt.Errorf("--regions %d: want 2 to 5", o.regions)
	case o.nodesPerRegion != 1 && o.nodesPerRegion != 3 && o.nodesPerRegion != 5:
		return fmt.Errorf("--nodes-per-region %d: want 1, 3 or 5", o.nodesPerRegion)
	case o.wanDelay < 0 || o.lanDelay < 0:
		return errors.New("--wan-delay and --lan-delay cannot be negative")
	case o.requests < 1 || o.requests > 100000:
		return fmt.Errorf("--requests %d: want 1 to 100000", o.requests)
	case o.concurrency < 1 || o.concurrency > 256:
		return fmt.Errorf("--concurrency %d: want 1 to 256", o.concurrency)
	case o.users < 1:
		return fmt.Errorf("--users %d: want at least 1", o.users)
	case len(o.layouts) == 0:
		return errors.New("--layouts: name at least one layout")
	case o.maxStale <= 0:
		return errors.New("--max-stale must be positive")
	case o.loss < 0:
		return errors.New("--loss cannot be negative")
	case o.loss > 0 && o.loss < o.maxStale+lossMargin:
		return fmt.Errorf("--loss %s: want 0 or at least --max-stale + %s (%s), to see the cut-off region's sessions turn unavailable", o.loss, lossMargin, o.maxStale+lossMargin)
	case o.loss > 0 && !slices.Contains(o.layouts, layoutRegions):
		return fmt.Errorf("--loss runs on the %s layout: add it to --layouts or set --loss 0", layoutRegions)
	case o.lossRequests < 1 || o.lossRequests > 1000000:
		return fmt.Errorf("--loss-requests %d: want 1 to 1000000", o.lossRequests)
	case o.healLimit <= 0:
		return errors.New("--heal-limit must be positive")
	case o.timeout <= 0:
		return errors.New("--timeout must be positive")
	}
	for _, l := range o.layouts {
		if !slices.Contains(allLayouts, l) {
			return fmt.Errorf("--layouts: unknown layout %q (want %s)", l, strings.Join(allLayouts, ", "))
		}
	}
	return nil
}

func regionName(r int) string { return fmt.Sprintf("r%d", r+1) }

// password is every benchmark user's.
const password = "correct horse battery staple"

func userID(o regionsOptions, r, i int) string {
	return fmt.Sprintf("%s-user%d", regionName(r), i%o.users)
}

// layoutSpec is one layout's shape.
type layoutSpec struct {
	key     string // its --layouts name
	name    string // as printed
	regions int    // regions with nodes and clients
	groups  bool   // a Raft group per region (node.Config.Regions)
}

func (o regionsOptions) spec(key string) layoutSpec {
	switch key {
	case layoutSingle:
		return layoutSpec{key: key, name: "single-region", regions: 1}
	case layoutOne:
		return layoutSpec{key: key, name: "one group", regions: o.regions}
	default:
		return layoutSpec{key: key, name: "region groups", regions: o.regions, groups: true}
	}
}

func (o regionsOptions) about(spec layoutSpec) string {
	switch spec.key {
	case layoutSingle:
		return fmt.Sprintf("one region's %d voters alone, no WAN delay, carrying all %d regions' clients (%d, %d requests each operation) so that the machine is as busy as in the other layouts: the baseline of a home-region write; validate: its own sessions",
			o.nodesPerRegion, o.regions, o.concurrency*o.regions, o.requests*o.regions)
	case layoutOne:
		return fmt.Sprintf("one Raft group, voters in %s, every other region's nodes non-voting replicas (the layout before region groups); validate: the next region's sessions", regionName(0))
	default:
		return "a Raft group per region (its nodes vote in it, every other node replicates it) and the global group; users homed in their region (PUT /v1/users with the region); validate: the next region's sessions"
	}
}

// runRegions measures each layout of --layouts on a cluster of its own,
// then, on the region-groups cluster, the loss of a region.
func runRegions(ctx context.Context, o regionsOptions, logOut io.Writer) (*regionsReport, error) {
	log := slog.New(slog.DiscardHandler)
	if o.logLevel != "off" {
		var level slog.Level
		if err := level.UnmarshalText([]byte(o.logLevel)); err != nil {
			return nil, fmt.Errorf("--log-level %q: %w", o.logLevel, err)
		}
		log = slog.New(slog.NewTextHandler(logOut, &slog.HandlerOptions{Level: level}))
	}
	rep := &regionsReport{
		Regions: o.regions, NodesPerRegion: o.nodesPerRegion,
		WANDelayMS: ms(o.wanDelay), LANDelayMS: ms(o.lanDelay), MaxStaleMS: ms(o.maxStale),
		Failures: []string{},
	}
	for _, key := range allLayouts { // in their fixed order
		if !slices.Contains(o.layouts, key) {
			continue
		}
		if err := runLayout(ctx, o, o.spec(key), log, rep); err != nil {
			return nil, fmt.Errorf("layout %s: %w", key, err)
		}
	}
	rep.Compared = compareLayouts(rep.Layouts)
	return rep, nil
}

// runLayout starts spec's cluster, measures it, runs the region-loss phase
// on it when it is the region-groups layout, and stops it.
func runLayout(ctx context.Context, o regionsOptions, spec layoutSpec, log *slog.Logger, rep *regionsReport) (err error) {
	rc, err := startRegionCluster(ctx, o, spec, log)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := rc.close(); cerr != nil && err == nil {
			err = fmt.Errorf("stop the cluster: %w", cerr)
		}
	}()
	layout, err := rc.measure(ctx)
	if err != nil {
		return err
	}
	rep.Layouts = append(rep.Layouts, layout)
	if spec.groups && o.loss > 0 {
		loss, failures, err := rc.regionLoss(ctx)
		if err != nil {
			return fmt.Errorf("region loss: %w", err)
		}
		rep.Loss = loss
		rep.Failures = append(rep.Failures, failures...)
	}
	return nil
}

// regionCluster is one layout's cluster and its clients.
type regionCluster struct {
	o       regionsOptions
	spec    layoutSpec
	lc      *localCluster
	faults  *transport.Faults
	clients [][]*client.Client // per region, one per node of the region
	http    *http.Client
}

// load is how many requests of each operation a region's clients send and
// how many clients it has: the single-region baseline carries every
// region's, so that the machine (whose cores the nodes and the clients
// share) is as busy as in the layouts it is compared with.
func (rc *regionCluster) load() (requests, concurrency int) {
	if rc.spec.key == layoutSingle {
		return rc.o.requests * rc.o.regions, rc.o.concurrency * rc.o.regions
	}
	return rc.o.requests, rc.o.concurrency
}

// region is the index of the region node i (of lc.nodes) runs in.
func (rc *regionCluster) region(i int) int { return i / rc.o.nodesPerRegion }

// nodesOf lists the indexes of region r's nodes.
func (rc *regionCluster) nodesOf(r int) []int {
	out := make([]int, 0, rc.o.nodesPerRegion)
	for i := range rc.lc.nodes {
		if rc.region(i) == r {
			out = append(out, i)
		}
	}
	return out
}

func startRegionCluster(ctx context.Context, o regionsOptions, spec layoutSpec, log *slog.Logger) (*regionCluster, error) {
	faults := transport.NewFaults()
	names := make([]string, spec.regions)
	for r := range names {
		names[r] = regionName(r)
	}
	size := spec.regions * o.nodesPerRegion
	lc, err := startLocalWith(ctx, size, log, func(i int, cfg *node.Config, api *httpapi.Config) {
		r := i / o.nodesPerRegion
		cfg.Region = regionName(r)
		cfg.Faults = faults
		cfg.MaxStale = o.maxStale
		switch {
		case spec.groups:
			cfg.Regions = names
			cfg.BootstrapExpect = o.nodesPerRegion // voters per region
		case r > 0:
			// One group: the other regions hold non-voting replicas.
			cfg.Voter = false
			cfg.BootstrapExpect = 0
		case size > 1:
			cfg.BootstrapExpect = o.nodesPerRegion
		}
		// Every client of the benchmark has the one address 127.0.0.1.
		api.LoginRate = httpapi.LoginRate{}
	})
	if err != nil {
		return nil, err
	}
	rc := &regionCluster{o: o, spec: spec, lc: lc, faults: faults, clients: make([][]*client.Client, spec.regions),
		http: &http.Client{Timeout: 30 * time.Second}}
	for i, a := range lc.nodes {
		for j, b := range lc.nodes {
			if i == j {
				continue
			}
			d := o.wanDelay
			if rc.region(i) == rc.region(j) {
				d = o.lanDelay
			}
			faults.SetDelay(a.node.RaftAddr(), b.node.RaftAddr(), d)
			faults.SetDelay(a.node.GossipAddr(), b.node.GossipAddr(), d)
		}
	}
	for i, u := range lc.urls {
		c, err := client.New([]string{u}, client.WithAPIKey(lc.apiKey), client.WithRetry(0, 0))
		if err != nil {
			_ = lc.close()
			return nil, err
		}
		rc.clients[rc.region(i)] = append(rc.clients[rc.region(i)], c)
	}
	return rc, nil
}

func (rc *regionCluster) close() error {
	rc.http.CloseIdleConnections()
	return rc.lc.close()
}

// groups describes the cluster's Raft groups as node i sees them.
func (rc *regionCluster) groups(i int) []groupInfo {
	st := rc.lc.nodes[i].node.ClusterStatus()
	if len(st.Groups) == 0 {
		g := groupInfo{Name: "default", Leader: st.LeaderID}
		for _, m := range st.Members {
			switch {
			case !m.InRaft:
			case m.Voter:
				g.Voters = append(g.Voters, m.ID)
			default:
				g.Replicas = append(g.Replicas, m.ID)
			}
		}
		return []groupInfo{g}
	}
	out := make([]groupInfo, 0, len(st.Groups))
	for _, g := range st.Groups {
		out = append(out, groupInfo{Name: g.Name, Leader: g.LeaderID, Voters: g.Voters, Replicas: g.Replicas})
	}
	return out
}

// homeUsers gives every region's users a password, through their region's
// nodes: in the region-groups layout with the region named (which homes
// the user there), else through the client as before regions.
func (rc *regionCluster) homeUsers(ctx context.Context) error {
	return eachRegion(ctx, rc.spec.regions, rc.o.users, rc.o.concurrency, func(ctx context.Context, r, i int) error {
		k := i % len(rc.clients[r])
		if rc.spec.groups {
			return rc.putUser(ctx, rc.lc.urls[rc.nodesOf(r)[k]], userID(rc.o, r, i), regionName(r))
		}
		_, err := rc.clients[r][k].SetUser(ctx, userID(rc.o, r, i), client.SetUserRequest{Password: password})
		return err
	})
}

// putUser is PUT /v1/users/{id} with the password and a home region (the
// Go client's SetUserRequest has no region yet).
func (rc *regionCluster) putUser(ctx context.Context, base, user, region string) error {
	body, err := json.Marshal(map[string]string{"password": password, "region": region})
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, base+"/v1/users/"+url.PathEscape(user), bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-API-Key", rc.lc.apiKey)
	resp, err := rc.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("PUT /v1/users/%s: %s: %s", user, resp.Status, bytes.TrimSpace(answer))
	}
	return nil
}

// inRegion checks, in the region-groups layout, that a session was made in
// region r: its id ends with the region's tag.
func (rc *regionCluster) inRegion(t *client.Tokens, r int) error {
	if !rc.spec.groups || strings.HasSuffix(t.SessionID, "."+regionName(r)) {
		return nil
	}
	return fmt.Errorf("session %s of a user homed in %s is not tagged .%s", t.SessionID, regionName(r), regionName(r))
}

// Operations, in the order they are printed.
const (
	opCreate   = "create"
	opLogin    = "login"
	opRefresh  = "refresh"
	opValidate = "validate"
	opRevoke   = "revoke"
	// opValidateRevoked is a validation of a token just revoked, which
	// must answer 401.
	opValidateRevoked = "validate revoked"
)

var opOrder = []string{opCreate, opLogin, opRefresh, opValidate, opRevoke, opValidateRevoked}

// measure has each region's clients run --requests of each operation
// through their region's nodes, for their region's users.
func (rc *regionCluster) measure(ctx context.Context) (layoutResult, error) {
	o := rc.o
	layout := layoutResult{Layout: rc.spec.name, About: o.about(rc.spec), Nodes: len(rc.lc.nodes), Groups: rc.groups(0)}
	if err := rc.homeUsers(ctx); err != nil {
		return layout, fmt.Errorf("creating the users: %w", err)
	}
	regions := rc.spec.regions
	requests, concurrency := rc.load()
	refresh := make([][]string, regions) // refresh tokens the creates returned
	access := make([][]string, regions)  // and access tokens
	for r := range refresh {
		refresh[r] = make([]string, requests)
		access[r] = make([]string, requests)
	}
	ops := []struct {
		name string
		do   func(ctx context.Context, c *client.Client, r, i int) error
	}{
		{opCreate, func(ctx context.Context, c *client.Client, r, i int) error {
			t, err := c.CreateSession(ctx, client.CreateSessionRequest{UserID: userID(o, r, i)})
			if err == nil {
				refresh[r][i] = t.RefreshToken
				access[r][i] = t.AccessToken
				err = rc.inRegion(t, r)
			}
			return err
		}},
		// Validation from memory, of sessions homed in the next region.
		{opValidate, func(ctx context.Context, c *client.Client, r, i int) error {
			token := access[(r+1)%regions][i]
			if token == "" {
				return errors.New("no access token: its create failed")
			}
			_, err := c.Validate(ctx, token)
			return err
		}},
		{opLogin, func(ctx context.Context, c *client.Client, r, i int) error {
			t, err := c.Login(ctx, client.LoginRequest{UserID: userID(o, r, i), Password: password})
			if err == nil {
				err = rc.inRegion(t, r)
			}
			return err
		}},
		{opRefresh, func(ctx context.Context, c *client.Client, r, i int) error {
			if refresh[r][i] == "" {
				return errors.New("no refresh token: its create failed")
			}
			t, err := c.Refresh(ctx, refresh[r][i])
			if err == nil {
				err = rc.inRegion(t, r)
			}
			return err
		}},
	}
	byOp := map[string][]opResult{}
	for _, op := range ops {
		if op.name == opValidate {
			// A node answers a write once it applied it; the next region's
			// replicas apply it a WAN crossing later.
			if err := rc.waitCaughtUp(ctx, rc.lc.nodes); err != nil {
				return layout, err
			}
		}
		tallies := make([]opTally, regions)
		_ = eachRegion(ctx, regions, requests, concurrency, func(ctx context.Context, r, i int) error {
			c := rc.clients[r][i%len(rc.clients[r])]
			tallies[r].do(func() error { return op.do(ctx, c, r, i) })
			return nil // counted; the run goes on
		})
		if err := ctx.Err(); err != nil {
			return layout, fmt.Errorf("%s: %w", op.name, context.Cause(ctx))
		}
		for r := range tallies {
			byOp[op.name] = append(byOp[op.name], tallies[r].result(regionName(r), op.name))
		}
	}
	for r := range regions {
		for _, op := range opOrder {
			if rs := byOp[op]; r < len(rs) {
				layout.Results = append(layout.Results, rs[r])
			}
		}
	}
	return layout, nil
}

// applied is what ln has applied in each group it hosts ("default": the one
// group of a cluster without regions).
func applied(ln *localNode) map[string]uint64 {
	st := ln.node.ClusterStatus()
	if len(st.Groups) == 0 {
		return map[string]uint64{"default": st.AppliedIndex}
	}
	out := make(map[string]uint64, len(st.Groups))
	for _, g := range st.Groups {
		out[g.Name] = g.AppliedIndex
	}
	return out
}

// catchUpLimit bounds waitCaughtUp.
const catchUpLimit = 30 * time.Second

// waitCaughtUp waits until each of nodes has applied, in every group, what
// the most advanced of them had applied when it was called.
func (rc *regionCluster) waitCaughtUp(ctx context.Context, nodes []*localNode) error {
	target := map[string]uint64{}
	for _, ln := range nodes {
		for g, i := range applied(ln) {
			target[g] = max(target[g], i)
		}
	}
	return waitFor(ctx, catchUpLimit, "every node to apply every group's writes", func() bool {
		for _, ln := range nodes {
			have := applied(ln)
			for g, i := range target {
				if have[g] < i {
					return false
				}
			}
		}
		return true
	})
}

// opTally counts one operation's answers: latencies of the successes,
// errors and the first error's text.
type opTally struct {
	mu    sync.Mutex
	h     histogram
	errs  int
	first string
}

// do runs f, timing it, and counts its outcome; it returns f's error.
func (t *opTally) do(f func() error) error {
	start := time.Now()
	err := f()
	took := time.Since(start)
	t.mu.Lock()
	defer t.mu.Unlock()
	if err != nil {
		t.errs++
		if t.first == "" {
			t.first = err.Error()
		}
		return err
	}
	t.h.record(int64(took))
	return nil
}

func (t *opTally) result(region, op string) opResult {
	t.mu.Lock()
	defer t.mu.Unlock()
	return opResult{
		Region: region, Op: op, Count: int(t.h.n), Errors: t.errs,
		P50MS: float64(t.h.quantile(0.50)) / 1e6, P99MS: float64(t.h.quantile(0.99)) / 1e6,
		FirstError: t.first,
	}
}

// eachRegion runs do for i in 0..count-1 of every region at once,
// concurrency workers per region, and returns the first error (which stops
// that region's workers).
func eachRegion(ctx context.Context, regions, count, concurrency int, do func(ctx context.Context, r, i int) error) error {
	var wg sync.WaitGroup
	var mu sync.Mutex
	var first error
	for r := range regions {
		for k := range concurrency {
			wg.Go(func() {
				for i := k; i < count && ctx.Err() == nil; i += concurrency {
					if err := do(ctx, r, i); err != nil {
						mu.Lock()
						if first == nil {
							first = fmt.Errorf("%s: %w", regionName(r), err)
						}
						mu.Unlock()
						return
					}
				}
			})
		}
	}
	wg.Wait()
	return first
}

// compareLayouts sets each home-region write of the region-groups layout
// against the same write in the single-region baseline.
func compareLayouts(layouts []layoutResult) []comparison {
	var base, groups *layoutResult
	for i := range layouts {
		switch layouts[i].Layout {
		case "single-region":
			base = &layouts[i]
		case "region groups":
			groups = &layouts[i]
		}
	}
	if base == nil || groups == nil {
		return nil
	}
	p50 := map[string]float64{}
	for _, res := range base.Results {
		p50[res.Op] = res.P50MS
	}
	var out []comparison
	for _, res := range groups.Results {
		b, ok := p50[res.Op]
		if !ok || (res.Op != opCreate && res.Op != opLogin && res.Op != opRefresh) {
			continue
		}
		diff := res.P50MS - b
		out = append(out, comparison{Region: res.Region, Op: res.Op, BaselineMS: b, GroupsMS: res.P50MS,
			DiffMS: diff, Within: diff <= ms(comparisonTarget)})
	}
	return out
}

func ms(d time.Duration) float64 { return float64(d) / 1e6 }
