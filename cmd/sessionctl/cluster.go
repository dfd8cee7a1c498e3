package main

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/sessiond/sessiond/httpapi/client"
)

func (a *app) clusterCommand() *cobra.Command {
	return group("cluster", "Show the cluster or remove a member", a.clusterStatus(), a.clusterRemove())
}

// memberView is what one member says of itself.
type memberView struct {
	state   string
	applied string
}

func (a *app) clusterStatus() *cobra.Command {
	return &cobra.Command{
		Use:   "status",
		Short: "Show the members: region, voter, leader, Raft state, applied index, health",
		Long: `Show the cluster as the answering node sees it, one row per member. Each
member's Raft state and applied index are asked of that member itself (at its
advertised HTTP address, with the same scheme and key); "?" marks a member that
did not answer. -o json prints the answering node's answer.

In a cluster with regions a member's row is about its own region's group (a
voter there or not, its leader or not, its state and applied index in it), and
a second table lists every Raft group, each region's and the global one: its
leader, the answering node's Raft state in it, the applied and commit indexes
there, whether that node vouches from its copy (FRESH), and the group's voters
and non-voting replicas.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			ctx, cancel := a.context(cmd)
			defer cancel()
			st, err := c.Cluster(ctx)
			if err != nil {
				return err
			}
			if a.json() {
				return a.printJSON(st)
			}
			views := a.memberViews(ctx, c, st)
			rows := make([]string, 0, len(st.Members))
			for _, m := range st.Members {
				v := views[m.ID]
				isVoter, inRaft, isLeader := memberRole(m, st.Groups)
				leader := ""
				if isLeader {
					leader = "*"
				}
				voter := formatBool(isVoter)
				if !inRaft {
					voter += " (not in raft)"
				}
				rows = append(rows, strings.Join([]string{m.ID, orDash(m.Region), voter, leader, v.state, v.applied, m.Status, orDash(m.HTTPAddr)}, "\t"))
			}
			if len(st.Groups) == 0 {
				fmt.Fprintf(a.stdout, "answered by %s; leader %s, term %d, commit index %d\n",
					st.NodeID, orDash(st.Leader.ID), st.Term, st.CommitIndex)
				return a.table("NODE\tREGION\tVOTER\tLEADER\tSTATE\tAPPLIED\tHEALTH\tHTTP", rows)
			}
			// With regions the node-level fields are those of the
			// answering node's own region's group.
			fmt.Fprintf(a.stdout, "answered by %s (region %s); leader %s, term %d, commit index %d\n",
				st.NodeID, orDash(st.Region), orDash(st.Leader.ID), st.Term, st.CommitIndex)
			if err := a.table("NODE\tREGION\tVOTER\tLEADER\tSTATE\tAPPLIED\tHEALTH\tHTTP", rows); err != nil {
				return err
			}
			fmt.Fprintln(a.stdout)
			return a.groupsTable(st.Groups)
		},
	}
}

// memberRole is whether m votes in, belongs to and leads its group: the
// answering node's group in a single-region cluster (as the member entry
// says); with regions, the group of m's own region, as groups say.
func memberRole(m client.Member, groups []client.GroupStatus) (voter, inRaft, leader bool) {
	for _, g := range groups {
		if g.Name == m.Region {
			voter = slices.Contains(g.Voters, m.ID)
			return voter, voter || slices.Contains(g.Replicas, m.ID), g.Leader.ID == m.ID
		}
	}
	return m.Voter, m.InRaft, m.Leader
}

// groupsTable lists the Raft groups of a cluster with regions as the
// answering node sees them.
func (a *app) groupsTable(groups []client.GroupStatus) error {
	rows := make([]string, 0, len(groups))
	for _, g := range groups {
		rows = append(rows, strings.Join([]string{g.Name, orDash(g.Leader.ID), orDash(g.RaftState),
			fmt.Sprint(g.AppliedIndex), fmt.Sprint(g.CommitIndex), formatBool(g.Fresh),
			orDash(strings.Join(g.Voters, ",")), orDash(strings.Join(g.Replicas, ","))}, "\t"))
	}
	return a.table("GROUP\tLEADER\tSTATE\tAPPLIED\tCOMMIT\tFRESH\tVOTERS\tREPLICAS", rows)
}

// memberViews asks every member for its own Raft state and applied index.
func (a *app) memberViews(ctx context.Context, c *client.Client, st *client.ClusterStatus) map[string]memberView {
	scheme := "http"
	if u, err := url.Parse(c.Current()); err == nil {
		scheme = u.Scheme
	}
	key, _ := a.apiKey() // read once already, for the first request
	out := make(map[string]memberView, len(st.Members))
	for _, m := range st.Members {
		out[m.ID] = memberView{state: "?", applied: "?"}
	}
	out[st.NodeID] = memberView{state: st.RaftState, applied: fmt.Sprint(st.AppliedIndex)}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, m := range st.Members {
		host, _, err := net.SplitHostPort(m.HTTPAddr)
		if m.ID == st.NodeID || err != nil || m.Status == "dead" || net.ParseIP(host).IsUnspecified() {
			continue
		}
		wg.Go(func() {
			one, err := client.New([]string{scheme + "://" + m.HTTPAddr}, client.WithAPIKey(key),
				client.WithUserAgent("sessionctl"), client.WithRetry(0, 0), client.WithReadYourWrites(false))
			if err != nil {
				return
			}
			mctx, cancel := context.WithTimeout(ctx, 3*time.Second)
			defer cancel()
			view, err := one.Cluster(mctx)
			if err != nil || view.NodeID != m.ID {
				return
			}
			mu.Lock()
			out[m.ID] = memberView{state: view.RaftState, applied: fmt.Sprint(view.AppliedIndex)}
			mu.Unlock()
		})
	}
	wg.Wait()
	return out
}

func (a *app) clusterRemove() *cobra.Command {
	return &cobra.Command{
		Use:   "remove NODE",
		Short: "Remove a node from the Raft configuration",
		Long: `Remove a node from the Raft configuration. A node that is still alive is added
back by the leader when gossip sees it: stop the node first to retire it.`,
		Args: exactArgs("NODE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.call(cmd, func(ctx context.Context, c *client.Client) error {
				if err := c.RemoveMember(ctx, args[0]); err != nil {
					return err
				}
				if a.json() {
					return a.printJSON(map[string]any{"removed": args[0]})
				}
				_, err := fmt.Fprintf(a.stdout, "removed %s from the Raft configuration\n", args[0])
				return err
			})
		},
	}
}
