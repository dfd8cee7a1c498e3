package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/sessiond/sessiond/httpapi/client"
)

// The region-loss phase (failure isolation, docs/regions.md): the first region
// loses every link to the others; the others must go on serving their own
// users with no error, stop vouching for the lost region's sessions once
// max-stale has passed (503, never 200 again while cut off), and after the
// links heal every node must hold every group's state byte for byte.

// lossResult is what the region-loss phase saw.
type lossResult struct {
	// Isolated is the region cut off; Survivors the others.
	Isolated  string   `json:"isolated"`
	Survivors []string `json:"survivors"`
	LossMS    float64  `json:"loss_ms"`
	// GlobalVoters counts the global group's voters per region at the cut;
	// GlobalQuorum says which side kept its majority: "isolated",
	// "survivors" or "none".
	GlobalVoters map[string]int `json:"global_voters"`
	GlobalQuorum string         `json:"global_quorum"`
	// LeadersAtCut names each group's leader when the links were cut.
	LeadersAtCut map[string]string `json:"leaders_at_cut"`
	// Load is the surviving regions' load during the cut, per region and
	// operation (users homed before the cut, through their region's nodes).
	Load []opResult `json:"load"`
	// NewUser is one write for a user with no home yet, through a
	// surviving node during the cut: it needs the global group.
	NewUser probeResult `json:"new_user_write"`
	// Stale are the validations of the isolated region's sessions on each
	// surviving node during the cut.
	Stale []staleResult `json:"stale_validations"`
	Heal  healResult    `json:"heal"`
}

// probeResult is one request's outcome.
type probeResult struct {
	Node   string `json:"node"`
	UserID string `json:"user_id"`
	// Expected is the status the cluster should answer, and Why says why.
	Expected int    `json:"expected_status"`
	Why      string `json:"why_expected"`
	Status   int    `json:"status"` // 0: no answer
	Error    string `json:"error,omitempty"`
	// StartMS is when it was sent, after the cut; TookMS how long the
	// answer took.
	StartMS float64 `json:"start_ms"`
	TookMS  float64 `json:"took_ms"`
}

// staleResult is what one surviving node answered, during the cut, to
// validations of the isolated region's sessions. Times are from the cut to
// when a request was sent.
type staleResult struct {
	Node        string `json:"node"`
	Region      string `json:"region"`
	Polls       int    `json:"polls"`
	OK          int    `json:"ok"`
	Unavailable int    `json:"unavailable"`
	Other       int    `json:"other"`
	// LastOKMS is the last 200 before the first 503 (-1: none).
	LastOKMS float64 `json:"last_ok_ms"`
	// First503MS is the first 503 (-1: none).
	First503MS float64 `json:"first_503_ms"`
	// Took503P50MS is how long a 503 took to come back (the median).
	Took503P50MS float64 `json:"took_503_p50_ms"`
	// OKAfter503 counts the 200s after the first 503: each one breaks the
	// guarantee. FirstOKAfter503MS is the first of them (-1: none).
	OKAfter503        int     `json:"ok_after_503"`
	FirstOKAfter503MS float64 `json:"first_ok_after_503_ms"`
	FirstOther        string  `json:"first_other,omitempty"`
}

// healResult is what happened after the links healed.
type healResult struct {
	LimitMS float64 `json:"limit_ms"`
	// Groups are the groups compared on every node.
	Groups []string `json:"groups"`
	// Converged: every group's FSM snapshot byte-identical on every node,
	// ConvergedMS after the heal (-1: not within the limit, and Differing
	// names the groups that still differed, Applied each node's applied
	// index in them).
	Converged   bool                         `json:"converged"`
	ConvergedMS float64                      `json:"converged_ms"`
	Differing   []string                     `json:"differing,omitempty"`
	Applied     map[string]map[string]uint64 `json:"applied_at_limit,omitempty"`
	// RevalidatedMS is when every surviving node first answered 200 again
	// for the isolated region's sessions (-1: not within the limit).
	RevalidatedMS float64 `json:"revalidated_ms"`
}

// How the cut-off region's sessions are polled on each surviving node.
const (
	stalePollEvery   = 50 * time.Millisecond
	stalePollTimeout = 5 * time.Second
	// probeSessions is how many of the isolated region's sessions are
	// polled in turn.
	probeSessions = 8
	// newUserWait bounds the new user's write during the cut.
	newUserWait = 15 * time.Second
	// lossCycleTimeout bounds one cycle of the surviving regions' load.
	lossCycleTimeout = 20 * time.Second
	// staleSlack is how far past max-stale after the cut a 200 may be
	// sent before it is a failure: the cut is noted a moment after the
	// last confirmation could have started, so none is needed in
	// principle; this covers the timers' granularity.
	staleSlack = 50 * time.Millisecond
)

// regionLoss runs the phase on the region-groups cluster: it isolates the
// first region (by name), loads the others, polls the isolated region's
// sessions on the others' nodes, heals, and checks the groups converge.
// It returns the result and the failures seen; an error means the phase
// could not be run at all.
func (rc *regionCluster) regionLoss(ctx context.Context) (*lossResult, []string, error) {
	o := rc.o
	const lost = 0
	lostNodes := rc.nodesOf(lost)
	var survivors []int // node indexes
	res := &lossResult{Isolated: regionName(lost), LossMS: ms(o.loss), GlobalVoters: map[string]int{},
		LeadersAtCut: map[string]string{}}
	for r := 1; r < rc.spec.regions; r++ {
		res.Survivors = append(res.Survivors, regionName(r))
		survivors = append(survivors, rc.nodesOf(r)...)
	}
	var failures []string
	fail := func(format string, args ...any) { failures = append(failures, fmt.Sprintf(format, args...)) }

	// Sessions of the isolated region, made before the cut, known to
	// every node, and validated on every surviving node once.
	probes := make([]string, probeSessions)
	for k := range probes {
		c := rc.clients[lost][k%len(rc.clients[lost])]
		t, err := c.CreateSession(ctx, client.CreateSessionRequest{UserID: userID(o, lost, k)})
		if err != nil {
			return nil, nil, fmt.Errorf("a session for %s before the cut: %w", regionName(lost), err)
		}
		probes[k] = t.AccessToken
	}
	if err := rc.waitCaughtUp(ctx, rc.lc.nodes); err != nil {
		return nil, nil, err
	}
	pollers := make([]*client.Client, len(survivors))
	for k, i := range survivors {
		c, err := client.New([]string{rc.lc.urls[i]}, client.WithAPIKey(rc.lc.apiKey), client.WithRetry(0, 0),
			client.WithReadYourWrites(false))
		if err != nil {
			return nil, nil, err
		}
		pollers[k] = c
		for _, tok := range probes {
			if _, err := c.Validate(ctx, tok); err != nil {
				fail("before the cut: %s does not validate a session of %s: %v", rc.lc.nodes[i].id, regionName(lost), err)
				break
			}
		}
	}

	// Who holds what at the cut.
	regionOf := map[string]string{}
	for i, ln := range rc.lc.nodes {
		regionOf[ln.id] = regionName(rc.region(i))
	}
	globalVoters := 0
	for _, g := range rc.groups(survivors[0]) {
		res.LeadersAtCut[g.Name] = g.Leader
		if g.Name == globalGroup {
			globalVoters = len(g.Voters)
			for _, v := range g.Voters {
				res.GlobalVoters[regionOf[v]]++
			}
		}
	}
	isolatedVoters := res.GlobalVoters[res.Isolated]
	newUser := probeResult{Node: rc.lc.nodes[survivors[0]].id, UserID: regionName(1) + "-new-during-loss"}
	switch {
	case 2*isolatedVoters > globalVoters:
		res.GlobalQuorum = "isolated"
		newUser.Expected = http.StatusServiceUnavailable
		newUser.Why = fmt.Sprintf("%s holds %d of the global group's %d voters: no new user can be homed elsewhere", res.Isolated, isolatedVoters, globalVoters)
	case 2*(globalVoters-isolatedVoters) > globalVoters:
		res.GlobalQuorum = "survivors"
		newUser.Expected = http.StatusCreated
		newUser.Why = fmt.Sprintf("the surviving regions hold %d of the global group's %d voters", globalVoters-isolatedVoters, globalVoters)
	default:
		res.GlobalQuorum = "none"
		newUser.Expected = http.StatusServiceUnavailable
		newUser.Why = fmt.Sprintf("neither side holds a majority of the global group's %d voters", globalVoters)
	}

	// The cut: Raft and RPC share the node's cluster address; gossip has
	// its own. Both ways.
	for _, a := range lostNodes {
		for _, b := range survivors {
			an, bn := rc.lc.nodes[a].node, rc.lc.nodes[b].node
			rc.faults.Partition(an.RaftAddr(), bn.RaftAddr())
			rc.faults.Partition(an.GossipAddr(), bn.GossipAddr())
		}
	}
	cut := time.Now()
	end := cut.Add(o.loss)
	lossCtx, cancel := context.WithDeadline(ctx, end)
	defer cancel()

	var wg sync.WaitGroup
	// The surviving regions' own users: create, validate, refresh, revoke,
	// validate the revoked token. Every request of a cycle goes to one node,
	// which answers a write only once it applied it.
	loads := make([]map[string]*opTally, rc.spec.regions)
	for r := 1; r < rc.spec.regions; r++ {
		loads[r] = map[string]*opTally{}
		for _, op := range []string{opCreate, opValidate, opRefresh, opRevoke, opValidateRevoked} {
			loads[r][op] = &opTally{}
		}
		for k := range o.concurrency {
			wg.Go(func() {
				// A cycle under way when the phase ends is finished (a
				// cycle has lossCycleTimeout): the end of the
				// phase is not the cluster's error.
				for it := k; it < o.lossRequests && lossCtx.Err() == nil; it += o.concurrency {
					rc.lossCycle(ctx, loads[r], r, it)
				}
			})
		}
	}
	// The isolated region's sessions, on every surviving node.
	res.Stale = make([]staleResult, len(survivors))
	for k, i := range survivors {
		wg.Go(func() {
			res.Stale[k] = pollStale(lossCtx, pollers[k], probes, cut)
			res.Stale[k].Node, res.Stale[k].Region = rc.lc.nodes[i].id, regionName(rc.region(i))
		})
	}
	// One user with no home yet.
	wg.Go(func() {
		pctx, cancel := context.WithTimeout(ctx, newUserWait)
		defer cancel()
		start := time.Now()
		newUser.StartMS = ms(start.Sub(cut))
		_, err := rc.clients[1][0].CreateSession(pctx, client.CreateSessionRequest{UserID: newUser.UserID})
		newUser.TookMS = ms(time.Since(start))
		newUser.Status = statusOf(err)
		if err != nil {
			newUser.Error = err.Error()
		}
	})
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, nil, context.Cause(ctx)
	}
	res.NewUser = newUser

	for r := 1; r < rc.spec.regions; r++ {
		for _, op := range []string{opCreate, opValidate, opRefresh, opRevoke, opValidateRevoked} {
			lr := loads[r][op].result(regionName(r), op)
			res.Load = append(res.Load, lr)
			switch {
			case lr.Errors > 0:
				fail("during the cut: %s %s: %d errors in %d requests (first: %s)", lr.Region, op, lr.Errors, lr.Errors+lr.Count, lr.FirstError)
			case lr.Count == 0:
				fail("during the cut: %s %s: no request answered", lr.Region, op)
			}
		}
	}
	if newUser.Status != newUser.Expected {
		fail("during the cut: a new user's first write through %s answered %d (%s) after %s; expected %d: %s",
			newUser.Node, newUser.Status, newUser.Error, fmtMS(newUser.TookMS), newUser.Expected, newUser.Why)
	}
	for _, s := range res.Stale {
		switch {
		case s.OKAfter503 > 0:
			fail("during the cut: %s answered 200 to %d validations of %s's sessions after its first 503 (first 503 at %s, first 200 after it at %s)",
				s.Node, s.OKAfter503, res.Isolated, fmtMS(s.First503MS), fmtMS(s.FirstOKAfter503MS))
		case s.First503MS < 0:
			fail("during the cut: %s never answered 503 to validations of %s's sessions in %s (max_stale %s; %d polls: %d 200, %d other)",
				s.Node, res.Isolated, o.loss, o.maxStale, s.Polls, s.OK, s.Other)
		}
		if s.LastOKMS > ms(o.maxStale+staleSlack) {
			fail("during the cut: %s vouched for %s's sessions %s after the cut, beyond max_stale %s", s.Node, res.Isolated, fmtMS(s.LastOKMS), o.maxStale)
		}
		if s.Other > 0 {
			fail("during the cut: %s answered %d validations of %s's sessions with neither 200 nor 503 (first: %s)", s.Node, s.Other, res.Isolated, s.FirstOther)
		}
	}

	rc.faults.Heal() // the cuts; the delays stay
	res.Heal = rc.heal(ctx, pollers, probes)
	if err := ctx.Err(); err != nil {
		return nil, nil, context.Cause(ctx)
	}
	switch {
	case !res.Heal.Converged:
		fail("after the heal: groups %v not byte-identical on every node within %s (applied indexes: %v)", res.Heal.Differing, o.healLimit, res.Heal.Applied)
	case res.Heal.RevalidatedMS < 0:
		fail("after the heal: not every node of %v validated %s's sessions again within %s", res.Survivors, res.Isolated, o.healLimit)
	}
	return res, failures, nil
}

// lossCycle is one create-validate-refresh-revoke-validate cycle for a
// user homed in region r, through one of r's nodes.
func (rc *regionCluster) lossCycle(ctx context.Context, tally map[string]*opTally, r, it int) {
	ctx, cancel := context.WithTimeout(ctx, lossCycleTimeout)
	defer cancel()
	c := rc.clients[r][it%len(rc.clients[r])]
	var t *client.Tokens
	if tally[opCreate].do(func() (err error) {
		t, err = c.CreateSession(ctx, client.CreateSessionRequest{UserID: userID(rc.o, r, it)})
		if err == nil {
			err = rc.inRegion(t, r)
		}
		return err
	}) != nil {
		return
	}
	if tally[opValidate].do(func() error { _, err := c.Validate(ctx, t.AccessToken); return err }) != nil {
		return
	}
	if tally[opRefresh].do(func() (err error) { t, err = c.Refresh(ctx, t.RefreshToken); return err }) != nil {
		return
	}
	if tally[opRevoke].do(func() error { _, err := c.Logout(ctx, t.AccessToken); return err }) != nil {
		return
	}
	_ = tally[opValidateRevoked].do(func() error {
		_, err := c.Validate(ctx, t.AccessToken)
		switch {
		case err == nil:
			return errors.New("a revoked token validated")
		case client.IsUnauthenticated(err):
			return nil
		}
		return err
	})
}

// statusOf is the HTTP status of a client call's outcome: 200 for
// success, the error answer's status, or 0 when nothing was answered.
func statusOf(err error) int {
	if err == nil {
		return http.StatusOK
	}
	if e, ok := client.AsError(err); ok {
		return e.Status
	}
	return 0
}

// pollStale validates the probes in turn on one node until ctx ends.
func pollStale(ctx context.Context, c *client.Client, probes []string, cut time.Time) staleResult {
	s := staleResult{LastOKMS: -1, First503MS: -1, FirstOKAfter503MS: -1}
	var took503 histogram
	for i := 0; ctx.Err() == nil; i++ {
		pctx, cancel := context.WithTimeout(ctx, stalePollTimeout)
		sent := time.Now()
		_, err := c.Validate(pctx, probes[i%len(probes)])
		cancel()
		at := ms(sent.Sub(cut))
		if ctx.Err() != nil && err != nil {
			break // the phase ended under this request
		}
		s.Polls++
		switch status := statusOf(err); status {
		case http.StatusOK:
			s.OK++
			if s.First503MS < 0 {
				s.LastOKMS = at
			} else {
				s.OKAfter503++
				if s.FirstOKAfter503MS < 0 {
					s.FirstOKAfter503MS = at
				}
			}
		case http.StatusServiceUnavailable:
			s.Unavailable++
			took503.record(int64(time.Since(sent)))
			if s.First503MS < 0 {
				s.First503MS = at
			}
		default:
			s.Other++
			if s.FirstOther == "" {
				s.FirstOther = fmt.Sprintf("at %s: %d %v", fmtMS(at), status, err)
			}
		}
		if sleepCtx(ctx, stalePollEvery) != nil {
			break
		}
	}
	s.Took503P50MS = float64(took503.quantile(0.5)) / 1e6
	return s
}

// heal waits, up to --heal-limit, until every group's FSM snapshot is
// byte-identical on every node and every surviving node validates the
// isolated region's sessions again.
func (rc *regionCluster) heal(ctx context.Context, pollers []*client.Client, probes []string) healResult {
	res := healResult{LimitMS: ms(rc.o.healLimit), ConvergedMS: -1, RevalidatedMS: -1, Groups: rc.lc.nodes[0].node.Groups()}
	healed := time.Now()
	hctx, cancel := context.WithTimeout(ctx, rc.o.healLimit)
	defer cancel()
	for {
		if res.ConvergedMS < 0 {
			if res.Differing = differingGroups(rc.lc.nodes); len(res.Differing) == 0 {
				res.ConvergedMS = ms(time.Since(healed))
			}
		}
		if res.RevalidatedMS < 0 && allValidate(hctx, pollers, probes[0]) {
			res.RevalidatedMS = ms(time.Since(healed))
		}
		if res.ConvergedMS >= 0 && res.RevalidatedMS >= 0 {
			break
		}
		if sleepCtx(hctx, 100*time.Millisecond) != nil {
			break
		}
	}
	res.Converged = res.ConvergedMS >= 0
	if !res.Converged {
		res.Applied = map[string]map[string]uint64{}
		for _, ln := range rc.lc.nodes {
			res.Applied[ln.id] = applied(ln)
		}
	}
	return res
}

// allValidate reports whether every poller's node validates token now.
func allValidate(ctx context.Context, pollers []*client.Client, token string) bool {
	ok := make([]bool, len(pollers))
	var wg sync.WaitGroup
	for k, c := range pollers {
		wg.Go(func() {
			pctx, cancel := context.WithTimeout(ctx, 3*time.Second)
			defer cancel()
			_, err := c.Validate(pctx, token)
			ok[k] = err == nil
		})
	}
	wg.Wait()
	return !slices.Contains(ok, false)
}

// differingGroups names the groups whose FSM snapshot is not the same on
// every node (a snapshot that fails to write counts as differing).
func differingGroups(nodes []*localNode) []string {
	var out []string
	for _, g := range nodes[0].node.Groups() {
		var first []byte
		for i, ln := range nodes {
			f := ln.node.GroupFSM(g)
			var buf bytes.Buffer
			if f == nil || f.WriteSnapshot(&buf) != nil {
				out = append(out, g)
				break
			}
			if i == 0 {
				first = buf.Bytes()
			} else if !bytes.Equal(first, buf.Bytes()) {
				out = append(out, g)
				break
			}
		}
	}
	return out
}
