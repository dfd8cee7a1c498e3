package main

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
)

// printRegions prints the report of sessionbench regions as tables.
func printRegions(w io.Writer, rep *regionsReport) error {
	fmt.Fprintf(w, "%d regions × %d nodes; one-way delay %s between regions, %s within one; max_stale %s\n",
		rep.Regions, rep.NodesPerRegion, fmtMS(rep.WANDelayMS), fmtMS(rep.LANDelayMS), fmtMS(rep.MaxStaleMS))
	for _, l := range rep.Layouts {
		fmt.Fprintf(w, "\nlayout: %s — %s\n", l.Layout, l.About)
		fmt.Fprintf(w, "groups: %s\n", describeGroups(l.Groups))
		if err := printOps(w, l.Results); err != nil {
			return err
		}
	}
	if len(rep.Compared) > 0 {
		fmt.Fprintf(w, "\nhome-region writes, region groups against the single-region baseline (target: p50 within %s):\n", fmtMS(ms(comparisonTarget)))
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "region\top\tsingle-region p50\tregion groups p50\tdifference\twithin\t")
		for _, c := range rep.Compared {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%+.2fms\t%s\t\n", c.Region, c.Op, fmtMS(c.BaselineMS), fmtMS(c.GroupsMS), c.DiffMS, yesNo(c.Within))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	if rep.Loss != nil {
		if err := printLoss(w, rep.Loss, rep.NodesPerRegion*rep.Regions, rep.MaxStaleMS); err != nil {
			return err
		}
	}
	fmt.Fprintln(w)
	if len(rep.Failures) == 0 {
		_, err := fmt.Fprintln(w, "no broken guarantee seen")
		return err
	}
	for _, f := range rep.Failures {
		fmt.Fprintf(w, "FAIL: %s\n", f)
	}
	return nil
}

// printOps prints one table of operation results and their first errors.
func printOps(w io.Writer, results []opResult) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "region\top\tcount\terrors\tp50\tp99\t")
	for _, res := range results {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%s\t%s\t\n", res.Region, res.Op, res.Count, res.Errors, fmtMS(res.P50MS), fmtMS(res.P99MS))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, res := range results {
		if res.FirstError != "" {
			fmt.Fprintf(w, "%s %s: first error: %s\n", res.Region, res.Op, strings.TrimSpace(res.FirstError))
		}
	}
	return nil
}

func describeGroups(groups []groupInfo) string {
	parts := make([]string, 0, len(groups))
	for _, g := range groups {
		p := fmt.Sprintf("%s (leader %s; voters %s", g.Name, orNone(g.Leader), strings.Join(g.Voters, ","))
		if len(g.Replicas) > 0 {
			p += "; replicas " + strings.Join(g.Replicas, ",")
		}
		parts = append(parts, p+")")
	}
	return strings.Join(parts, ", ")
}

func printLoss(w io.Writer, l *lossResult, nodes int, maxStaleMS float64) error {
	survivors := strings.Join(l.Survivors, ", ")
	fmt.Fprintf(w, "\nregion loss (region groups): %s cut off from %s for %s (Raft, RPC and gossip, both ways)\n",
		l.Isolated, survivors, fmtMS(l.LossMS))
	var voters []string
	for _, r := range slices.Sorted(maps.Keys(l.GlobalVoters)) {
		voters = append(voters, fmt.Sprintf("%s %d", r, l.GlobalVoters[r]))
	}
	var leaders []string
	for _, g := range slices.Sorted(maps.Keys(l.LeadersAtCut)) {
		leaders = append(leaders, fmt.Sprintf("%s %s", g, orNone(l.LeadersAtCut[g])))
	}
	fmt.Fprintf(w, "global group's voters at the cut: %s (majority: %s); leaders at the cut: %s\n",
		strings.Join(voters, ", "), l.GlobalQuorum, strings.Join(leaders, ", "))
	fmt.Fprintf(w, "load on %s during the cut (users homed before it; each cycle create, validate, refresh, revoke, validate revoked, through one node of the user's region):\n", survivors)
	if err := printOps(w, l.Load); err != nil {
		return err
	}
	n := l.NewUser
	answer := fmt.Sprintf("%d", n.Status)
	if n.Status == 0 {
		answer = "no answer"
	}
	fmt.Fprintf(w, "a new user's first write through %s, %s after the cut: %s after %s (expected %d: %s)\n",
		n.Node, fmtMS(n.StartMS), answer, fmtMS(n.TookMS), n.Expected, n.Why)
	fmt.Fprintf(w, "validations of %s's sessions on the surviving nodes (times from the cut to the request; max_stale %s):\n", l.Isolated, fmtMS(maxStaleMS))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "node\tregion\tpolls\t200\t503\tother\tlast 200\tfirst 503\t503 took (p50)\t200 after 503\t")
	for _, s := range l.Stale {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%s\t%s\t%s\t%d\t\n", s.Node, s.Region, s.Polls, s.OK, s.Unavailable, s.Other,
			fmtAt(s.LastOKMS), fmtAt(s.First503MS), fmtMS(s.Took503P50MS), s.OKAfter503)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	h := l.Heal
	if h.Converged {
		fmt.Fprintf(w, "heal: every group (%s) byte-identical on all %d nodes %s after the heal", strings.Join(h.Groups, ", "), nodes, fmtMS(h.ConvergedMS))
	} else {
		fmt.Fprintf(w, "heal: groups %s NOT byte-identical on every node after %s", strings.Join(h.Differing, ", "), fmtMS(h.LimitMS))
	}
	if h.RevalidatedMS >= 0 {
		fmt.Fprintf(w, "; %s's sessions validated again on every surviving node %s after it\n", l.Isolated, fmtMS(h.RevalidatedMS))
	} else {
		fmt.Fprintf(w, "; %s's sessions NOT validated again on every surviving node within %s\n", l.Isolated, fmtMS(h.LimitMS))
	}
	return nil
}

// fmtAt prints a time after the cut, or "none" (negative).
func fmtAt(ms float64) string {
	if ms < 0 {
		return "none"
	}
	return fmtMS(ms)
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}
