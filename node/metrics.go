package node

import (
	"context"
	"errors"
	"io"
	"strings"
	"time"

	"github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/sessiond/sessiond/events"
	"github.com/sessiond/sessiond/fsm"
)

// Prometheus metrics of a node. Every node has its own registry (never the
// global default one), so that several nodes in one process — tests, the
// cluster harness — keep their numbers apart. The HTTP API serves it on
// GET /metrics together with its own request metrics.
//
// No label or value ever carries a token, a hash, a key, a password, a
// user or session id, an email or an address: labels are event types,
// outcomes and states, all from small fixed sets.

// Metrics is the node's Prometheus registry: the Go runtime, the process,
// Raft, the state machine, gossip, forwarding, snapshots, logins and
// session-use replication.
func (n *Node) Metrics() prometheus.Gatherer { return n.metrics.reg }

// Outcomes of a write a follower forwards to the leader.
const (
	forwardOK          = "ok"          // the leader applied it (whatever the business outcome)
	forwardRetry       = "retry"       // not leader, leader busy or connection lost: retried
	forwardTimeout     = "timeout"     // the caller's deadline passed
	forwardUnavailable = "unavailable" // refused, or committed but not applied here in time
)

// Outcomes of a password login.
const (
	loginSuccess        = "success"
	loginBadCredentials = "bad_credentials"
	loginLocked         = "locked"
	loginLimit          = "limit"
	loginError          = "error" // unavailable, timed out
)

type metrics struct {
	reg *prometheus.Registry

	eventsApplied   *prometheus.CounterVec
	forwarded       *prometheus.CounterVec
	forwardDuration prometheus.Histogram
	snapPersist     prometheus.Histogram
	snapRestore     prometheus.Histogram
	logins          *prometheus.CounterVec
	touchFlushes    prometheus.Counter
	touchedSessions prometheus.Counter
}

func newMetrics(n *Node) *metrics {
	snapshotBuckets := prometheus.ExponentialBuckets(0.001, 4, 10) // 1ms … ~4min
	m := &metrics{
		reg: prometheus.NewRegistry(),
		eventsApplied: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sessiond_events_applied_total",
			Help: "Events applied to this node's state machine, by event type and outcome (ok, duplicate, or the name of the rule that refused it).",
		}, []string{"type", "outcome"}),
		forwarded: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sessiond_forwarded_writes_total",
			Help: "Writes this node (a follower) handed to the leader, by outcome: ok, retry, timeout, unavailable.",
		}, []string{"outcome"}),
		forwardDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "sessiond_forward_duration_seconds",
			Help:    "Time for one forwarded write: the call to the leader and the wait until this node applied it.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}),
		snapPersist: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "sessiond_snapshot_persist_seconds",
			Help:    "Time to write a snapshot of the state machine (encoding and storing it).",
			Buckets: snapshotBuckets,
		}),
		snapRestore: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "sessiond_snapshot_restore_seconds",
			Help:    "Time to restore the state machine from a snapshot (at start, or one sent by the leader).",
			Buckets: snapshotBuckets,
		}),
		logins: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sessiond_logins_total",
			Help: "Password logins answered by this node, by outcome: success, bad_credentials, locked, limit, error.",
		}, []string{"outcome"}),
		touchFlushes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sessiond_touch_flushes_total",
			Help: "SessionsTouched events this node wrote to replicate the session uses it saw (idle timeout).",
		}),
		touchedSessions: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sessiond_touched_sessions_total",
			Help: "Session uses this node replicated in SessionsTouched events.",
		}),
	}
	// Every label value known in advance starts at zero, so that rates and
	// absence alerts work before the first occurrence.
	for _, o := range []string{forwardOK, forwardRetry, forwardTimeout, forwardUnavailable} {
		m.forwarded.WithLabelValues(o)
	}
	for _, o := range []string{loginSuccess, loginBadCredentials, loginLocked, loginLimit, loginError} {
		m.logins.WithLabelValues(o)
	}
	m.reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.eventsApplied, m.forwarded, m.forwardDuration, m.snapPersist, m.snapRestore,
		m.logins, m.touchFlushes, m.touchedSessions,
		&stateCollector{n: n, d: newStateDescs(n.cfg.regional())},
	)
	return m
}

// applied is the state machine's OnApply hook: it runs on the apply
// goroutine for every applied command entry and must stay cheap.
func (m *metrics) applied(a fsm.AppliedEvent) {
	outcome := "ok"
	res := a.Result
	switch {
	case res == nil:
	case res.Duplicate:
		outcome = "duplicate"
	case res.Err != nil:
		outcome = fsm.ErrorName(res.Err)
	}
	m.eventsApplied.WithLabelValues(a.Envelope.Type().String(), outcome).Inc()
}

// forwardDone counts one forwarded write.
func (m *metrics) forwardDone(ctx context.Context, took time.Duration, err error) {
	outcome := forwardOK
	switch {
	case err == nil:
	case errors.Is(err, errRetry):
		outcome = forwardRetry
	case ctx.Err() != nil:
		outcome = forwardTimeout
	default:
		outcome = forwardUnavailable
	}
	m.forwarded.WithLabelValues(outcome).Inc()
	m.forwardDuration.Observe(took.Seconds())
}

// forwardObserved is forward, timed and counted.
func (g *raftGroup) forwardObserved(ctx context.Context, leaderAddr string, env events.Envelope) (*fsm.Result, error) {
	start := time.Now()
	res, err := g.forward(ctx, leaderAddr, env)
	g.node.metrics.forwardDone(ctx, time.Since(start), err)
	return res, err
}

// login counts a password login by the error Login returned.
func (m *metrics) login(err error) {
	var locked *LockedError
	outcome := loginError
	switch {
	case err == nil:
		outcome = loginSuccess
	case errors.As(err, &locked), errors.Is(err, fsm.ErrLocked):
		outcome = loginLocked
	case errors.Is(err, fsm.ErrSessionLimit):
		outcome = loginLimit
	case errors.Is(err, fsm.ErrUnauthenticated):
		outcome = loginBadCredentials
	}
	m.logins.WithLabelValues(outcome).Inc()
}

// touchesFlushed counts one SessionsTouched event of uses replicated.
func (m *metrics) touchesFlushed(uses int) {
	m.touchFlushes.Inc()
	m.touchedSessions.Add(float64(uses))
}

// observedFSM is the state machine as Raft sees it: snapshots are timed.
// Everything else, batching included, is the state machine's own.
type observedFSM struct {
	*fsm.FSM
	m *metrics
}

var _ raft.BatchingFSM = observedFSM{}

func (o observedFSM) Snapshot() (raft.FSMSnapshot, error) {
	snap, err := o.FSM.Snapshot()
	if err != nil {
		return nil, err
	}
	return observedSnapshot{FSMSnapshot: snap, m: o.m}, nil
}

func (o observedFSM) Restore(rc io.ReadCloser) error {
	start := time.Now()
	if err := o.FSM.Restore(rc); err != nil {
		return err
	}
	o.m.snapRestore.Observe(time.Since(start).Seconds())
	return nil
}

type observedSnapshot struct {
	raft.FSMSnapshot
	m *metrics
}

func (s observedSnapshot) Persist(sink raft.SnapshotSink) error {
	start := time.Now()
	if err := s.FSMSnapshot.Persist(sink); err != nil {
		return err
	}
	s.m.snapPersist.Observe(time.Since(start).Seconds())
	return nil
}

// stateCollector reads Raft, the state machine and the member table at
// scrape time. Each read is O(1) or O(members): nothing scans sessions.
// In a cluster with regions every per-group series carries a "group"
// label (the region, or "global"); a single-region node's series have no
// such label, as before regions existed.
type stateCollector struct {
	n *Node
	d stateDescs
}

// stateDescs are the collector's descriptions, with or without the group
// label.
type stateDescs struct {
	raftState, raftTerm, raftCommit, raftApplied, raftLag, raftContact, stateAge, raftLeader,
	sessionsStored, sessionsActive, sessionsRevoked, users, accounts, lockouts, gossipMembers *prometheus.Desc
}

func newStateDescs(grouped bool) stateDescs {
	var group []string
	if grouped {
		group = []string{"group"}
	}
	desc := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(name, help, append(labels, group...), nil)
	}
	return stateDescs{
		raftState: desc("sessiond_raft_state",
			"Raft role of this node: 1 for the current state, 0 for the others.", "state"),
		raftTerm: desc("sessiond_raft_term",
			"Current Raft term."),
		raftCommit: desc("sessiond_raft_commit_index",
			"Highest Raft log index known to be committed."),
		raftApplied: desc("sessiond_raft_applied_index",
			"Highest Raft log index applied to this node's state machine."),
		raftLag: desc("sessiond_raft_apply_lag",
			"Committed log entries not yet applied here (commit index minus applied index)."),
		raftContact: desc("sessiond_raft_last_contact_seconds",
			"Time since this node last heard from the leader: 0 on the leader, -1 when it never has."),
		stateAge: desc("sessiond_state_age_seconds",
			"How old this node's state is by its newest confirmation with the leader: it validates tokens locally while this is at most max-stale; -1 before the first confirmation."),
		raftLeader: desc("sessiond_raft_leader",
			"1 if this node is the Raft leader, else 0."),
		sessionsStored: desc("sessiond_sessions_stored",
			"Sessions held in the state: sessiond_sessions_active plus sessiond_sessions_revoked."),
		sessionsActive: desc("sessiond_sessions_active",
			"Stored sessions that still hold a token no revocation stopped. Exact for the applied state; a session that ended by time (expiry, idle timeout) counts until garbage collection removes it (see docs/operations.md)."),
		sessionsRevoked: desc("sessiond_sessions_revoked",
			"Stored sessions that revocations ended for good (tombstones), until garbage collection removes them at their end."),
		users: desc("sessiond_users",
			"Users holding at least one stored session."),
		accounts: desc("sessiond_accounts",
			"Users with built-in credentials or an own session limit."),
		lockouts: desc("sessiond_lockouts",
			"Login identifiers with recent failed logins or a lock."),
		gossipMembers: prometheus.NewDesc("sessiond_gossip_members",
			"Members in this node's gossip table, by state (suspect and left are not reported by gossip: 0).", []string{"state"}, nil),
	}
}

var raftStates = []raft.RaftState{raft.Follower, raft.Candidate, raft.Leader, raft.Shutdown}

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	d := c.d
	for _, desc := range []*prometheus.Desc{d.raftState, d.raftTerm, d.raftCommit, d.raftApplied, d.raftLag,
		d.raftContact, d.stateAge, d.raftLeader, d.sessionsStored, d.sessionsActive, d.sessionsRevoked,
		d.users, d.accounts, d.lockouts, d.gossipMembers} {
		ch <- desc
	}
}

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	n := c.n
	for _, g := range n.groupList {
		var group []string
		if n.cfg.regional() {
			group = []string{g.name}
		}
		c.collectGroup(ch, g, group)
	}
	counts := map[string]int{"alive": 0, "suspect": 0, "dead": 0, "left": 0}
	for _, m := range n.Members() {
		counts[m.Status]++
	}
	for _, s := range []string{"alive", "suspect", "dead", "left"} {
		ch <- prometheus.MustNewConstMetric(c.d.gossipMembers, prometheus.GaugeValue, float64(counts[s]), s)
	}
}

// collectGroup reports one group's Raft state and state machine; group is
// its label value, or none in a single-region cluster.
func (c *stateCollector) collectGroup(ch chan<- prometheus.Metric, g *raftGroup, group []string) {
	d := c.d
	gauge := func(desc *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(desc, prometheus.GaugeValue, v, append(labels, group...)...)
	}
	if g.raft != nil {
		rs := g.RaftStatus()
		for _, s := range raftStates {
			v := 0.0
			if strings.EqualFold(rs.State, s.String()) {
				v = 1
			}
			gauge(d.raftState, v, strings.ToLower(s.String()))
		}
		// Raft's applied index moves once it has handed entries to the
		// state machine and counts entries the state machine never sees
		// (a new leader's no-op); the state machine's moves as it applies.
		// The larger of the two, read after the commit index.
		applied := max(rs.AppliedIndex, g.fsm.AppliedIndex())
		gauge(d.raftTerm, float64(rs.Term))
		gauge(d.raftCommit, float64(rs.CommitIndex))
		gauge(d.raftApplied, float64(applied))
		lag := 0.0
		if rs.CommitIndex > applied {
			lag = float64(rs.CommitIndex - applied)
		}
		gauge(d.raftLag, lag)
		contact := -1.0
		if dur := g.LastContact(); dur >= 0 {
			contact = dur.Seconds()
		}
		gauge(d.raftContact, contact)
		gauge(d.stateAge, g.fresh.age().Seconds())
		leader := 0.0
		if rs.State == raft.Leader.String() {
			leader = 1
		}
		gauge(d.raftLeader, leader)
	}

	st := g.fsm.Stats()
	gauge(d.sessionsStored, float64(st.Sessions))
	gauge(d.sessionsActive, float64(st.Live))
	gauge(d.sessionsRevoked, float64(st.Revoked))
	gauge(d.users, float64(st.Users))
	gauge(d.accounts, float64(st.Accounts))
	gauge(d.lockouts, float64(st.Lockouts))
}
