package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"text/tabwriter"
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
	timeout        time.Duration
	logLevel       string
	jsonOut        bool
}

// regionsReport is what sessionbench regions measured; --json prints it.
type regionsReport struct {
	Regions        int            `json:"regions"`
	NodesPerRegion int            `json:"nodes_per_region"`
	WANDelayMS     float64        `json:"wan_delay_ms"`
	LANDelayMS     float64        `json:"lan_delay_ms"`
	Layouts        []layoutResult `json:"layouts"`
}

type layoutResult struct {
	Layout  string     `json:"layout"`
	About   string     `json:"about"`
	Results []opResult `json:"results"`
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

func newRegionsCommand() *cobra.Command {
	var o regionsOptions
	cmd := &cobra.Command{
		Use:   "regions",
		Short: "Latency of creates, validations, logins and refreshes per region, with a one-way delay between regions",
		Long: "regions starts --regions × --nodes-per-region nodes in this process, puts a one-way\n" +
			"delay of --wan-delay between nodes of different regions and --lan-delay within one\n" +
			"(through the transport's fault layer: Raft, forwarding and gossip traffic), and has\n" +
			"each region's clients create sessions, log in and refresh through their own region's\n" +
			"nodes, for users of that region, and validate the sessions the next region created.\n" +
			"It prints p50 and p99 per region and operation.\n\n" +
			"The layout measured is the one sessiond runs today: one Raft group whose voters are\n" +
			"the first region's nodes, the other regions' nodes non-voting replicas that forward\n" +
			"writes to the leader. A region far from the leader pays the round trip on every write.",
		Example: "  sessionbench regions --regions 2 --wan-delay 40ms",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.validate(); err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), o.timeout)
			defer cancel()
			rep, err := runRegions(ctx, o, cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			if o.jsonOut {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(rep)
			}
			return printRegions(cmd.OutOrStdout(), rep)
		},
	}
	f := cmd.Flags()
	f.IntVar(&o.regions, "regions", 2, "regions (2 to 5)")
	f.IntVar(&o.nodesPerRegion, "nodes-per-region", 3, "nodes in each region (1, 3 or 5)")
	f.DurationVar(&o.wanDelay, "wan-delay", 40*time.Millisecond, "one-way delay between nodes of different regions")
	f.DurationVar(&o.lanDelay, "lan-delay", 200*time.Microsecond, "one-way delay between nodes of one region")
	f.IntVarP(&o.requests, "requests", "n", 200, "requests of each operation per region")
	f.IntVarP(&o.concurrency, "concurrency", "c", 2, "clients per region, each with one request in flight")
	f.IntVar(&o.users, "users", 20, "users per region (created with a password before the logins)")
	f.DurationVar(&o.timeout, "timeout", 5*time.Minute, "hard limit for the whole run")
	f.StringVar(&o.logLevel, "log-level", "off", "level of the nodes' logs on stderr: debug, info, warn, error or off (a shut-down cluster's connection errors are expected)")
	f.BoolVar(&o.jsonOut, "json", false, "print one JSON object instead of the table")
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
	case o.timeout <= 0:
		return errors.New("--timeout must be positive")
	}
	return nil
}

func regionName(r int) string { return fmt.Sprintf("r%d", r+1) }

// runRegions measures today's layout: one group, voters in the first region.
func runRegions(ctx context.Context, o regionsOptions, logOut io.Writer) (*regionsReport, error) {
	log := slog.New(slog.DiscardHandler)
	if o.logLevel != "off" {
		var level slog.Level
		if err := level.UnmarshalText([]byte(o.logLevel)); err != nil {
			return nil, fmt.Errorf("--log-level %q: %w", o.logLevel, err)
		}
		log = slog.New(slog.NewTextHandler(logOut, &slog.HandlerOptions{Level: level}))
	}
	faults := transport.NewFaults()
	size := o.regions * o.nodesPerRegion
	lc, err := startLocalWith(ctx, size, log, func(i int, cfg *node.Config, api *httpapi.Config) {
		r := i / o.nodesPerRegion
		cfg.Region = regionName(r)
		cfg.Faults = faults
		if r > 0 {
			// Today's layout: the other regions hold non-voting replicas.
			cfg.Voter = false
			cfg.BootstrapExpect = 0
		} else {
			cfg.BootstrapExpect = o.nodesPerRegion
		}
		// Every client of the benchmark has the one address 127.0.0.1.
		api.LoginRate = httpapi.LoginRate{}
	})
	if err != nil {
		return nil, err
	}
	defer lc.close()

	for i, a := range lc.nodes {
		for j, b := range lc.nodes {
			if i == j {
				continue
			}
			d := o.wanDelay
			if i/o.nodesPerRegion == j/o.nodesPerRegion {
				d = o.lanDelay
			}
			faults.SetDelay(a.node.RaftAddr(), b.node.RaftAddr(), d)
			faults.SetDelay(a.node.GossipAddr(), b.node.GossipAddr(), d)
		}
	}

	clients := make([][]*client.Client, o.regions) // per region, one per node
	for i, u := range lc.urls {
		c, err := client.New([]string{u}, client.WithAPIKey(lc.apiKey), client.WithRetry(0, 0))
		if err != nil {
			return nil, err
		}
		r := i / o.nodesPerRegion
		clients[r] = append(clients[r], c)
	}
	const password = "correct horse battery staple"
	userID := func(r, i int) string { return fmt.Sprintf("%s-user%d", regionName(r), i%o.users) }

	// Users with a password, unmeasured.
	if err := eachRegion(ctx, o, func(ctx context.Context, r, i int) error {
		if i >= o.users {
			return nil
		}
		_, err := clients[r][i%len(clients[r])].SetUser(ctx, userID(r, i), client.SetUserRequest{Password: password})
		return err
	}); err != nil {
		return nil, fmt.Errorf("creating the users: %w", err)
	}

	layout := layoutResult{
		Layout: "one group",
		About:  fmt.Sprintf("one Raft group, voters in %s, every other region's nodes non-voting replicas (today's layout)", regionName(0)),
	}
	refresh := make([][]string, o.regions) // refresh tokens the creates returned
	access := make([][]string, o.regions)  // and access tokens, of the other region's users
	for r := range refresh {
		refresh[r] = make([]string, o.requests)
		access[r] = make([]string, o.requests)
	}
	ops := []struct {
		name string
		do   func(ctx context.Context, c *client.Client, r, i int) error
	}{
		{"create", func(ctx context.Context, c *client.Client, r, i int) error {
			t, err := c.CreateSession(ctx, client.CreateSessionRequest{UserID: userID(r, i)})
			if err == nil {
				refresh[r][i] = t.RefreshToken
				access[r][i] = t.AccessToken
			}
			return err
		}},
		// Validation from memory, of sessions homed in another region.
		{"validate", func(ctx context.Context, c *client.Client, r, i int) error {
			token := access[(r+1)%o.regions][i]
			if token == "" {
				return errors.New("no access token: its create failed")
			}
			_, err := c.Validate(ctx, token)
			return err
		}},
		{"login", func(ctx context.Context, c *client.Client, r, i int) error {
			_, err := c.Login(ctx, client.LoginRequest{UserID: userID(r, i), Password: password})
			return err
		}},
		{"refresh", func(ctx context.Context, c *client.Client, r, i int) error {
			if refresh[r][i] == "" {
				return errors.New("no refresh token: its create failed")
			}
			_, err := c.Refresh(ctx, refresh[r][i])
			return err
		}},
	}
	for _, op := range ops {
		hists := make([]*histogram, o.regions)
		errs := make([]int, o.regions)
		first := make([]string, o.regions)
		var mu sync.Mutex
		for r := range hists {
			hists[r] = &histogram{}
		}
		_ = eachRegion(ctx, o, func(ctx context.Context, r, i int) error {
			start := time.Now()
			err := op.do(ctx, clients[r][i%len(clients[r])], r, i)
			took := time.Since(start)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs[r]++
				if first[r] == "" {
					first[r] = err.Error()
				}
				return nil // counted; the run goes on
			}
			hists[r].record(int64(took))
			return nil
		})
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("%s: %w", op.name, err)
		}
		for r := range o.regions {
			h := hists[r]
			layout.Results = append(layout.Results, opResult{
				Region: regionName(r), Op: op.name, Count: int(h.n), Errors: errs[r],
				P50MS: float64(h.quantile(0.50)) / 1e6, P99MS: float64(h.quantile(0.99)) / 1e6,
				FirstError: first[r],
			})
		}
	}
	return &regionsReport{
		Regions: o.regions, NodesPerRegion: o.nodesPerRegion,
		WANDelayMS: float64(o.wanDelay) / 1e6, LANDelayMS: float64(o.lanDelay) / 1e6,
		Layouts: []layoutResult{layout},
	}, nil
}

// eachRegion runs do for requests 0..--requests-1 of every region at once,
// --concurrency workers per region, and returns the first error (which
// stops that region's workers).
func eachRegion(ctx context.Context, o regionsOptions, do func(ctx context.Context, r, i int) error) error {
	var wg sync.WaitGroup
	var mu sync.Mutex
	var first error
	for r := range o.regions {
		for k := range o.concurrency {
			wg.Go(func() {
				for i := k; i < o.requests && ctx.Err() == nil; i += o.concurrency {
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

func printRegions(w io.Writer, rep *regionsReport) error {
	fmt.Fprintf(w, "%d regions × %d nodes; one-way delay %s between regions, %s within one\n",
		rep.Regions, rep.NodesPerRegion, fmtMS(rep.WANDelayMS), fmtMS(rep.LANDelayMS))
	for _, l := range rep.Layouts {
		fmt.Fprintf(w, "\nlayout: %s — %s\n", l.Layout, l.About)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "region\top\tcount\terrors\tp50\tp99\t")
		for _, res := range l.Results {
			fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%s\t%s\t\n", res.Region, res.Op, res.Count, res.Errors, fmtMS(res.P50MS), fmtMS(res.P99MS))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		for _, res := range l.Results {
			if res.FirstError != "" {
				fmt.Fprintf(w, "%s %s: first error: %s\n", res.Region, res.Op, strings.TrimSpace(res.FirstError))
			}
		}
	}
	_, err := fmt.Fprintln(w)
	return err
}
