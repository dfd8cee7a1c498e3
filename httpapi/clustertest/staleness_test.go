package clustertest

import (
	"encoding/json"
	"fmt"
	"maps"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sessiond/sessiond/node"
	"github.com/sessiond/sessiond/transport/testkit"
)

// The bounded-staleness check of default (local) validations. Clients on
// every node create sessions, refresh them, revoke them and force users out
// through that node, and validate tokens on it without consistency=leader
// or min_index, while a nemesis cuts nodes off for longer than max_stale,
// kills and restarts them with and without a snapshot on disk, and makes
// one catch up on thousands of writes. Every fault heals, so that the
// moments when a node regains contact, starts, or lags behind a backlog are
// observed. Each operation keeps its real start and end time in the test
// process, and the history is checked against the promise of max_stale:
//
//   - a validation answered 200 must not start more than max_stale (plus a
//     small slack) after the acknowledgement of a revocation of its token;
//   - a 401 must be for a token that a revoking operation invoked before the
//     answer arrived may have ended, never for one whose creation was
//     acknowledged before the validation started and that nothing revoked;
//   - 503 (the node refuses to vouch) is allowed and counted; any other
//     status fails.
//
// A short run is part of `go test`; SESSIOND_LONG=1 runs 20 seeds of a
// minute each; SESSIOND_SEED=n replays one seed (its choices of faults,
// nodes and tokens; the timing is the machine's).

// stSlack: a 200 fails the run when its validation started more than
// max_stale + stSlack after a revocation of its token was acknowledged.
// Both times are read on the safe side — the validation's start before the
// request is sent, the revocation's acknowledgement after its answer has
// arrived — so the slack only covers reading clocks and scheduling in a
// busy test process: 100 ms.
const stSlack = 100 * time.Millisecond

// stMaxStale is every node's max-stale in this test.
const stMaxStale = 2 * time.Second

// Kinds of fault the staleness nemesis injects.
const (
	stIsolate = iota
	stPartition
	stRestart
	stRestartNoSnapshot
	stBacklog
	stIsolateRegion // a cluster with regions only
	stKinds
)

var stKindNames = [stKinds]string{"isolation", "partition", "restart with a snapshot", "restart without a snapshot", "backlog catch-up", "region isolation"}

// stSingleRegionKinds are the faults of a run on one region.
var stSingleRegionKinds = []int{stIsolate, stPartition, stRestart, stRestartNoSnapshot, stBacklog}

// stConfig sizes one run.
type stConfig struct {
	// duration is how long the nemesis injects faults; it goes on until it
	// has injected every kind, within twice duration.
	duration time.Duration
	// writePace and validatePace are each client's pause between two
	// operations.
	writePace, validatePace time.Duration
	// maxWrites and maxValidations bound the clients' operations.
	maxWrites, maxValidations int
	// cut is the range of a cut's length, above max_stale.
	cutMin, cutMax time.Duration
	// down is the range of a killed node's time down.
	downMin, downMax time.Duration
	// backlog is the number of writes the majority makes while a follower
	// is cut off or down, in backlogTime at most; restartBacklog, while a
	// killed node is down.
	backlog, restartBacklog int
	backlogTime             time.Duration
	// regions, when two or more, runs the check on a cluster of three
	// voters a region; kinds are the faults injected (default: every
	// single-region kind).
	regions []string
	kinds   []int
}

func TestStaleness_LocalValidationsHonourMaxStale(t *testing.T) {
	cfg := stConfig{
		duration: 15 * time.Second, writePace: 20 * time.Millisecond, validatePace: 3 * time.Millisecond,
		maxWrites: 20000, maxValidations: 200000,
		cutMin: 2500 * time.Millisecond, cutMax: 2800 * time.Millisecond,
		downMin: time.Second, downMax: 1500 * time.Millisecond,
		backlog: 2000, restartBacklog: 300, backlogTime: 8 * time.Second,
	}
	if longRun() {
		cfg = stConfig{
			duration: 60 * time.Second, writePace: 5 * time.Millisecond, validatePace: 2 * time.Millisecond,
			maxWrites: 200000, maxValidations: 2000000,
			cutMin: 2500 * time.Millisecond, cutMax: 5 * time.Second,
			downMin: time.Second, downMax: 4 * time.Second,
			backlog: 5000, restartBacklog: 1000, backlogTime: 15 * time.Second,
		}
	}
	for _, seed := range runSeeds(t) {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			t.Logf("seed %d (replay with SESSIOND_SEED=%d)", seed, seed)
			runStaleness(t, seed, cfg)
		})
	}
}

// The same check on two regions of three nodes: clients on every node
// write for users homed in that node's region and validate every region's
// tokens, while the nemesis isolates nodes, cuts pairs and cuts whole
// regions off, each for longer than max_stale. A node cut off from a region
// must stop vouching for that region's sessions in time, and a healed one
// must not vouch for one from a stale copy.
func TestStaleness_RegionsHonourMaxStale(t *testing.T) {
	cfg := stConfig{
		duration: 15 * time.Second, writePace: 30 * time.Millisecond, validatePace: 5 * time.Millisecond,
		maxWrites: 20000, maxValidations: 200000,
		cutMin: 2500 * time.Millisecond, cutMax: 2800 * time.Millisecond,
		regions: []string{"eu", "us"}, kinds: []int{stIsolate, stPartition, stIsolateRegion},
	}
	if longRun() {
		cfg.duration, cfg.writePace, cfg.validatePace = 60*time.Second, 10*time.Millisecond, 3*time.Millisecond
		cfg.maxWrites, cfg.maxValidations, cfg.cutMax = 200000, 2000000, 5*time.Second
	}
	for _, seed := range runSeeds(t) {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			t.Logf("seed %d (replay with SESSIOND_SEED=%d)", seed, seed)
			runStaleness(t, seed, cfg)
		})
	}
}

// stValidation is one GET /v1/session with default consistency.
type stValidation struct {
	node       int
	tok        *stToken
	start, end time.Time
	status     int // 0: no answer
	sid        string
	index      string // X-Sessiond-Index
	contact    string // X-Sessiond-Last-Contact
}

// stEvent is one step of the nemesis, for the report.
type stEvent struct {
	at   time.Time
	node int // -1: the whole cluster
	what string
}

type stInterval struct{ from, to time.Time }

// stRun is one seed's run.
type stRun struct {
	t      *testing.T
	seed   uint64
	cfg    stConfig
	c      *Cluster
	ledger *stLedger
	begin  time.Time
	stop   chan struct{}
	// http validates; writes uses a shorter timeout, so that a write stuck
	// on a node being killed does not hold its shutdown up for long.
	http, writes *http.Client

	mu          sync.Mutex
	validations []stValidation
	down        map[int][]stInterval // a node's time killed, from before Kill to after its restart
	events      []stEvent
	problems    []string // the nemesis's own failures
	injected    [stKinds]int
	heals       int
	restarts    int
	catchUps    []time.Duration
	written     atomic.Int64
	validated   atomic.Int64
}

func (r *stRun) logf(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.t.Logf("%6.2fs "+format, append([]any{time.Since(r.begin).Seconds()}, args...)...)
}

func (r *stRun) event(node int, format string, args ...any) {
	what := fmt.Sprintf(format, args...)
	r.mu.Lock()
	r.events = append(r.events, stEvent{at: time.Now(), node: node, what: what})
	r.mu.Unlock()
	r.logf("nemesis: %s", what)
}

func (r *stRun) problem(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	r.mu.Lock()
	r.problems = append(r.problems, msg)
	r.mu.Unlock()
	r.logf("nemesis: %s", msg)
}

func (r *stRun) stopped() bool {
	select {
	case <-r.stop:
		return true
	default:
		return false
	}
}

// pause sleeps d, or less when the run stops.
func (r *stRun) pause(d time.Duration) {
	select {
	case <-r.stop:
	case <-time.After(d):
	}
}

// stAnswer is an HTTP answer as the check needs it.
type stAnswer struct {
	status  int // 0: no answer
	body    map[string]any
	index   string
	contact string
}

func (r *stRun) do(client *http.Client, m *Member, method, path, body string, header ...string) stAnswer {
	var b any
	if body != "" {
		b = testkit.Raw(body)
		header = append([]string{"Content-Type", "application/json"}, header...)
	}
	res, err := testkit.Send(client, method, m.URL+path, b, header...)
	if err != nil {
		return stAnswer{}
	}
	a := stAnswer{status: res.Status, index: res.Header.Get("X-Sessiond-Index"), contact: res.Header.Get("X-Sessiond-Last-Contact")}
	_ = json.Unmarshal(res.Body, &a.body)
	return a
}

func (r *stRun) admin(m *Member, method, path, body string) stAnswer {
	return r.do(r.writes, m, method, path, body, "X-API-Key", APIKey)
}

// write takes one write from the run's budget.
func (r *stRun) write() bool {
	return !r.stopped() && r.written.Add(1) <= int64(r.cfg.maxWrites)
}

// create makes a session for user through m and records it: its token,
// its refresh token and the index of its creation.
func (r *stRun) create(m *Member, user string) (*stToken, string, uint64) {
	a := r.admin(m, "POST", "/v1/sessions", `{"user_id":"`+user+`"}`)
	acked := time.Now()
	if a.status != http.StatusCreated {
		r.ledger.failed("create", a.status)
		return nil, "", 0
	}
	index, _ := a.body["index"].(float64)
	refresh, _ := a.body["refresh_token"].(string)
	return r.ledger.created(user, str(a.body, "session_id"), str(a.body, "access_token"), acked), refresh, uint64(index)
}

// revoke revokes tok's session through m and records it.
func (r *stRun) revoke(m *Member, tok *stToken) {
	invoked := time.Now()
	a := r.admin(m, "DELETE", "/v1/sessions/"+tok.s.sid, "")
	r.ledger.revokedSession(tok, invoked, time.Now(), a.status)
}

// stHeld is a session a writing client holds.
type stHeld struct {
	tok     *stToken
	refresh string
	// ended: revoked, or maybe revoked; uncertain: a refresh's outcome is
	// unknown, so its current tokens are not.
	ended, uncertain bool
}

// writer creates, refreshes and revokes sessions and forces users out,
// through one node, for its own users.
func (r *stRun) writer(m *Member, rng *rand.Rand) {
	users := make([]string, 6)
	for i := range users {
		users[i] = fmt.Sprintf("w%d-%d", m.Index, i)
	}
	held := map[string][]*stHeld{}
	for r.write() {
		user := users[rng.IntN(len(users))]
		var live []*stHeld
		for _, h := range held[user] {
			if !h.ended {
				live = append(live, h)
			}
		}
		pick := rng.IntN(100)
		if len(live) == 0 || (len(live) < 3 && pick < 50) {
			pick = 0
		}
		switch {
		case pick < 35:
			if tok, refresh, _ := r.create(m, user); tok != nil {
				held[user] = append(held[user], &stHeld{tok: tok, refresh: refresh})
			}
		case pick < 65:
			h := live[rng.IntN(len(live))]
			if h.uncertain {
				break
			}
			invoked := time.Now()
			a := r.do(r.writes, m, "POST", "/v1/refresh", `{"refresh_token":"`+h.refresh+`"}`)
			next := r.ledger.refreshed(h.tok, invoked, time.Now(), a.status, str(a.body, "access_token"))
			switch {
			case next != nil:
				h.tok, h.refresh = next, str(a.body, "refresh_token")
			case a.status == http.StatusUnauthorized:
				h.ended = true
			default:
				h.uncertain = true
			}
		case pick < 92:
			h := live[rng.IntN(len(live))]
			r.revoke(m, h.tok)
			h.ended = true
		default:
			var current []*stToken
			for _, h := range live {
				if !h.uncertain {
					current = append(current, h.tok)
				}
				h.ended = true
			}
			invoked := time.Now()
			a := r.admin(m, "DELETE", "/v1/users/"+user+"/sessions", "")
			r.ledger.loggedOut(user, invoked, time.Now(), a.status, current)
		}
		r.pause(r.cfg.writePace)
	}
}

// validator validates tokens on one node, with default consistency. It
// sends one every validatePace whatever the answers take, at most
// stInFlight at once: a validation waiting for the leader to confirm must
// not hide what the node answers meanwhile, as when a restarted node hears
// from the leader before it has caught up.
func (r *stRun) validator(m *Member, rng *rand.Rand) {
	const stInFlight = 512
	slots := make(chan struct{}, stInFlight)
	var wg sync.WaitGroup
	defer wg.Wait()
	for !r.stopped() && r.validated.Add(1) <= int64(r.cfg.maxValidations) {
		tok := r.ledger.pick(rng)
		if tok == nil {
			r.pause(10 * time.Millisecond)
			continue
		}
		select {
		case slots <- struct{}{}:
		case <-r.stop:
			return
		}
		wg.Go(func() {
			defer func() { <-slots }()
			v := stValidation{node: m.Index, tok: tok, start: time.Now()}
			a := r.do(r.http, m, "GET", "/v1/session", "", "Authorization", "Bearer "+tok.access)
			v.end = time.Now()
			v.status, v.sid, v.index, v.contact = a.status, str(a.body, "session_id"), a.index, a.contact
			r.mu.Lock()
			r.validations = append(r.validations, v)
			r.mu.Unlock()
		})
		r.pause(r.cfg.validatePace)
	}
}

func runStaleness(t *testing.T, seed uint64, cfg stConfig) {
	if cfg.kinds == nil {
		cfg.kinds = stSingleRegionKinds
	}
	size := 3
	if len(cfg.regions) > 1 {
		size = 3 * len(cfg.regions)
	}
	c := Start(t, Options{Size: size, Regions: cfg.regions, MaxStale: stMaxStale, Tweak: func(_ int, nc *node.Config) {
		// Snapshots are taken as usual, but no log is ever compacted, so
		// that a killed node's snapshots can be deleted and it still
		// rebuilds its state from its log.
		nc.SnapshotThreshold = 1024
		nc.SnapshotInterval = 500 * time.Millisecond
		nc.TrailingLogs = 1 << 40
	}})
	rng := rand.New(rand.NewPCG(seed, seed^0x57a1e))
	r := &stRun{
		t: t, seed: seed, cfg: cfg, c: c, ledger: newLedger(), begin: time.Now(), stop: make(chan struct{}),
		http:   &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 32}},
		writes: &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 32}},
		down:   map[int][]stInterval{},
	}
	defer r.http.CloseIdleConnections()
	defer r.writes.CloseIdleConnections()
	var wg sync.WaitGroup
	for _, m := range c.Nodes {
		wrng := rand.New(rand.NewPCG(rng.Uint64(), rng.Uint64()))
		wg.Go(func() { r.writer(m, wrng) })
		vrng := rand.New(rand.NewPCG(rng.Uint64(), rng.Uint64()))
		wg.Go(func() { r.validator(m, vrng) })
	}
	r.nemesis(rand.New(rand.NewPCG(rng.Uint64(), rng.Uint64())))
	close(r.stop)
	wg.Wait()
	c.Heal()
	for i := range c.Nodes {
		if !c.IsRunning(i) {
			c.Restart(i)
		}
	}
	c.WaitFor(30*time.Second, "the cluster to recover", c.recovered)
	r.check()
}

// stTally counts the violations that followed one step of the nemesis on
// one node.
type stTally struct {
	event, node     int
	stale, false401 int
	maxLag, maxGap  time.Duration
	firstAt, lastAt time.Time
}

// check checks the history and logs the figures of the run.
func (r *stRun) check() {
	t := r.t
	l := r.ledger
	var (
		statuses                  = map[int]int{}
		maxAccepted               time.Duration
		maxAcceptedAt             *stValidation
		stale, false401, other    []string
		staleAccepts, false401s   int
		false401sOld              int // older than max_stale as well
		noAnswer, noAnswerRunning int
		unavailableByNode         = map[int]int{}
		maxFalse401Gap            time.Duration
		tallies                   = map[[2]int]*stTally{}
	)
	tally := func(v *stValidation) *stTally {
		key := [2]int{r.lastEvent(v), v.node}
		if tallies[key] == nil {
			tallies[key] = &stTally{event: key[0], node: v.node, firstAt: v.start}
		}
		tallies[key].lastAt = v.start
		return tallies[key]
	}
	limit := stMaxStale + stSlack
	for i := range r.validations {
		v := &r.validations[i]
		statuses[v.status]++
		tok := v.tok
		switch v.status {
		case http.StatusOK:
			if v.sid != tok.s.sid {
				other = append(other, fmt.Sprintf("seed %d: node%d answered 200 for a token of session %s with session %q", r.seed, v.node, tok.s.sid, v.sid))
			}
			at, by := l.revokedAt(tok)
			if at.IsZero() || !at.Before(v.start) {
				continue
			}
			lag := v.start.Sub(at)
			if lag > maxAccepted {
				maxAccepted, maxAcceptedAt = lag, v
			}
			if lag <= limit {
				continue
			}
			staleAccepts++
			tl := tally(v)
			tl.stale++
			tl.maxLag = max(tl.maxLag, lag)
			stale = append(stale, fmt.Sprintf("seed %d: node%d accepted a token of session %s (%s…) %v after its %s was acknowledged (max_stale %v + slack %v); answer X-Sessiond-Index=%s X-Sessiond-Last-Contact=%s; %s",
				r.seed, v.node, tok.s.sid, stPrefix(tok.access), lag.Round(time.Millisecond), by, stMaxStale, stSlack, v.index, v.contact, r.context(v)))
		case http.StatusUnauthorized:
			if !tok.mintAck.Before(v.start) {
				continue // minted concurrently
			}
			if inv := l.revokeInvokedAt(tok); !inv.IsZero() && inv.Before(v.end) {
				continue // maybe revoked
			}
			false401s++
			gap := v.start.Sub(tok.mintAck)
			if gap > limit {
				false401sOld++
			}
			maxFalse401Gap = max(maxFalse401Gap, gap)
			tl := tally(v)
			tl.false401++
			tl.maxGap = max(tl.maxGap, gap)
			false401 = append(false401, fmt.Sprintf("seed %d: node%d answered 401 for a token of session %s (%s…) minted %v before the validation started and never revoked; answer X-Sessiond-Index=%s X-Sessiond-Last-Contact=%s; %s",
				r.seed, v.node, tok.s.sid, stPrefix(tok.access), gap.Round(time.Millisecond), v.index, v.contact, r.context(v)))
		case http.StatusServiceUnavailable:
			unavailableByNode[v.node]++
		case 0:
			noAnswer++
			if !r.wasDown(v) {
				noAnswerRunning++
				other = append(other, fmt.Sprintf("seed %d: node%d did not answer a validation in [%.3fs, %.3fs] although it ran", r.seed, v.node, v.start.Sub(r.begin).Seconds(), v.end.Sub(r.begin).Seconds()))
			}
		default:
			other = append(other, fmt.Sprintf("seed %d: node%d answered a validation with status %d; %s", r.seed, v.node, v.status, r.context(v)))
		}
	}

	ops := 0
	var writes []string
	for _, kind := range []string{"create", "refresh", "revoke", "logout"} {
		var parts []string
		for _, st := range slices.Sorted(maps.Keys(l.writes[kind])) {
			ops += l.writes[kind][st]
			parts = append(parts, fmt.Sprintf("%d×%d", l.writes[kind][st], st))
		}
		writes = append(writes, kind+" "+strings.Join(parts, " "))
	}
	t.Logf("operations: %d writes (%s; status 0: no answer), %d validations", ops, strings.Join(writes, ", "), len(r.validations))
	var byStatus []string
	for _, st := range slices.Sorted(maps.Keys(statuses)) {
		byStatus = append(byStatus, fmt.Sprintf("%d×%d", statuses[st], st))
	}
	t.Logf("validations by status: %s (503 by node: %v; no answer: %d, of them from a running node: %d)", strings.Join(byStatus, " "), unavailableByNode, noAnswer, noAnswerRunning)
	var faults []string
	for _, k := range r.cfg.kinds {
		faults = append(faults, fmt.Sprintf("%d %s", r.injected[k], stKindNames[k]))
	}
	var longest time.Duration
	for _, d := range r.catchUps {
		longest = max(longest, d)
	}
	t.Logf("faults: %s; %d heals, %d restarts; longest catch-up after a fault %v", strings.Join(faults, ", "), r.heals, r.restarts, longest.Round(time.Millisecond))
	where := ""
	if maxAcceptedAt != nil {
		where = fmt.Sprintf(" (node%d, session %s, X-Sessiond-Index=%s, X-Sessiond-Last-Contact=%s)", maxAcceptedAt.node, maxAcceptedAt.tok.s.sid, maxAcceptedAt.index, maxAcceptedAt.contact)
	}
	t.Logf("longest a revoked token was still accepted: %v%s, bound %v + %v; revoked tokens accepted beyond it: %d",
		maxAccepted.Round(time.Millisecond), where, stMaxStale, stSlack, staleAccepts)
	t.Logf("false 401s: %d (%d of them for tokens minted more than max_stale + slack earlier; longest since minted %v)", false401s, false401sOld, maxFalse401Gap.Round(time.Millisecond))
	for _, tl := range slices.SortedFunc(maps.Values(tallies), func(a, b *stTally) int { return a.firstAt.Compare(b.firstAt) }) {
		after := "before any fault"
		if tl.event >= 0 {
			e := r.events[tl.event]
			after = fmt.Sprintf("after %q at %.3fs", e.what, e.at.Sub(r.begin).Seconds())
		}
		t.Logf("violations on node%d %s, from %.3fs to %.3fs: %d revoked tokens accepted (longest %v after the revocation), %d false 401s (longest %v after minting)",
			tl.node, after, tl.firstAt.Sub(r.begin).Seconds(), tl.lastAt.Sub(r.begin).Seconds(), tl.stale, tl.maxLag.Round(time.Millisecond), tl.false401, tl.maxGap.Round(time.Millisecond))
	}

	for _, p := range r.problems {
		t.Errorf("seed %d: nemesis: %s", r.seed, p)
	}
	if slices.ContainsFunc(r.cfg.kinds, func(k int) bool { return r.injected[k] == 0 }) {
		t.Errorf("seed %d: the run ended before the nemesis had injected every kind of fault (%v)", r.seed, faults)
	}
	report := func(what string, lines []string) {
		for i, line := range lines {
			if i == 10 {
				t.Errorf("… and %d more %s", len(lines)-i, what)
				break
			}
			t.Error(line)
		}
	}
	report("revoked tokens accepted after max_stale", stale)
	report("false 401s", false401)
	report("other failures", other)
}

// lastEvent is the index in r.events of what the nemesis last did to v's
// node (or to all) before v started, or -1.
func (r *stRun) lastEvent(v *stValidation) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i := len(r.events) - 1; i >= 0; i-- {
		if e := r.events[i]; (e.node == v.node || e.node == -1) && e.at.Before(v.start) {
			return i
		}
	}
	return -1
}

// context says when v started and what the nemesis last did to its node.
func (r *stRun) context(v *stValidation) string {
	i := r.lastEvent(v)
	if i < 0 {
		return fmt.Sprintf("validation started %.3fs into the run, before any fault on node%d", v.start.Sub(r.begin).Seconds(), v.node)
	}
	e := r.events[i]
	return fmt.Sprintf("validation started %.3fs into the run, %v after the nemesis's %q at %.3fs", v.start.Sub(r.begin).Seconds(), v.start.Sub(e.at).Round(time.Millisecond), e.what, e.at.Sub(r.begin).Seconds())
}

// wasDown reports whether v's node was killed at some time during v.
func (r *stRun) wasDown(v *stValidation) bool {
	for _, d := range r.down[v.node] {
		if d.from.Before(v.end) && (d.to.IsZero() || d.to.After(v.start)) {
			return true
		}
	}
	return false
}

// stPrefix is the start of a token, enough to tell tokens apart in a
// report without disclosing them.
func stPrefix(token string) string {
	if len(token) > 8 {
		return token[:8]
	}
	return token
}
