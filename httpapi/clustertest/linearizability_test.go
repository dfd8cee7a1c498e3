package clustertest

import (
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
)

// The linearizability check. Clients on every node run concurrent creates,
// refreshes, revocations, force logouts and leader-confirmed validations
// while a nemesis cuts nodes off and kills and restarts leaders and
// followers. The history is checked with porcupine against a model of the
// session store. A short run is part of `go test`; SESSIOND_LONG=1 runs
// longer with more seeds; SESSIOND_SEED=n replays one seed.

type lzInput struct {
	Kind  string // create, refresh, revoke, logout-user, validate
	User  string
	Token string
	SID   string
}

type lzOutput struct {
	Status  int // HTTP status; 0 means the outcome is unknown
	SID     string
	Access  string
	Refresh string
}

// lzSession is one session of the model. Tokens a client never learned
// (an applied refresh whose answer was lost) are "?".
type lzSession struct {
	SID, Access, Refresh string
	Prev                 []string
	Revoked              bool
}

// The model state is the canonical JSON of a user's sessions sorted by id,
// so that states compare with ==.
func lzEncode(ss []lzSession) string {
	slices.SortFunc(ss, func(a, b lzSession) int { return strings.Compare(a.SID, b.SID) })
	b, _ := json.Marshal(ss)
	return string(b)
}

func lzDecode(state string) []lzSession {
	var ss []lzSession
	_ = json.Unmarshal([]byte(state), &ss)
	return ss
}

// lzStep is the sequential specification. broken=true breaks it on purpose
// (a refresh keeps the old access token and never learns the new one), to
// show that the check can fail.
func lzStep(state string, in lzInput, out lzOutput, broken bool) []string {
	ss := lzDecode(state)
	unknown := out.Status == 0
	switch in.Kind {
	case "create":
		if out.Status != http.StatusCreated {
			return []string{state} // unknown: applied or not, no client can see it
		}
		for _, s := range ss {
			if s.SID == out.SID {
				return nil
			}
		}
		return []string{lzEncode(append(ss, lzSession{SID: out.SID, Access: out.Access, Refresh: out.Refresh}))}
	case "refresh":
		cur, prev := -1, -1
		for i, s := range ss {
			if s.Revoked {
				continue
			}
			if s.Refresh == in.Token {
				cur = i
			}
			if slices.Contains(s.Prev, in.Token) {
				prev = i
			}
		}
		applied := func(access, refresh string) string {
			next := slices.Clone(ss)
			switch {
			case cur >= 0:
				s := next[cur]
				s.Prev = append(slices.Clone(s.Prev), s.Refresh)
				if !broken {
					s.Access = access
				}
				s.Refresh = refresh
				next[cur] = s
			case prev >= 0:
				next[prev].Revoked = true // reuse of a rotated token: theft
			}
			return lzEncode(next)
		}
		switch {
		case unknown:
			return []string{state, applied("?", "?")}
		case out.Status == http.StatusOK:
			if cur < 0 {
				return nil
			}
			return []string{applied(out.Access, out.Refresh)}
		case out.Status == http.StatusUnauthorized:
			if cur >= 0 {
				return nil
			}
			return []string{applied("", "")}
		}
		return nil
	case "revoke":
		idx := slices.IndexFunc(ss, func(s lzSession) bool { return s.SID == in.SID })
		if idx < 0 {
			if unknown {
				return []string{state}
			}
			return nil
		}
		next := slices.Clone(ss)
		next[idx].Revoked = true
		if unknown {
			return []string{state, lzEncode(next)}
		}
		if out.Status != http.StatusNoContent {
			return nil
		}
		return []string{lzEncode(next)}
	case "logout-user":
		next := slices.Clone(ss)
		for i := range next {
			next[i].Revoked = true
		}
		if unknown {
			return []string{state, lzEncode(next)}
		}
		return []string{lzEncode(next)}
	case "validate":
		if unknown {
			return []string{state}
		}
		var match *lzSession
		for i, s := range ss {
			if !s.Revoked && s.Access == in.Token {
				match = &ss[i]
			}
		}
		switch out.Status {
		case http.StatusOK:
			if match != nil && match.SID == out.SID {
				return []string{state}
			}
		case http.StatusUnauthorized:
			if match == nil {
				return []string{state}
			}
		}
		return nil
	}
	return nil
}

func lzModel(broken bool) porcupine.Model {
	nm := porcupine.NondeterministicModel{
		Partition: func(history []porcupine.Operation) [][]porcupine.Operation {
			byUser := map[string][]porcupine.Operation{}
			var users []string
			for _, op := range history {
				u := op.Input.(lzInput).User
				if _, ok := byUser[u]; !ok {
					users = append(users, u)
				}
				byUser[u] = append(byUser[u], op)
			}
			var out [][]porcupine.Operation
			for _, u := range users {
				out = append(out, byUser[u])
			}
			return out
		},
		Init: func() []any { return []any{lzEncode(nil)} },
		Step: func(state, input, output any) []any {
			var out []any
			for _, s := range lzStep(state.(string), input.(lzInput), output.(lzOutput), broken) {
				out = append(out, s)
			}
			return out
		},
		Equal: func(a, b any) bool { return a.(string) == b.(string) },
		DescribeOperation: func(input, output any) string {
			in, out := input.(lzInput), output.(lzOutput)
			return fmt.Sprintf("%s(%s %s %s) -> %d %s", in.Kind, in.User, short(in.Token), in.SID, out.Status, out.SID)
		},
	}
	return nm.ToModel()
}

func short(s string) string {
	if len(s) > 10 {
		return s[:10]
	}
	return s
}

// lzClient is one client's view: the sessions it knows, per user.
type lzClient struct {
	id       int
	rng      *rand.Rand
	c        *Cluster
	users    []string
	sessions []lzKnown
	history  *[]porcupine.Operation
	mu       *sync.Mutex
}

type lzKnown struct {
	user, sid, access, refresh string
	stale                      []string // rotated tokens, to try again
}

func (cl *lzClient) node() *Member {
	running := cl.c.Running()
	return running[cl.rng.IntN(len(running))]
}

func (cl *lzClient) record(in lzInput, out lzOutput, call, ret int64) {
	cl.mu.Lock()
	*cl.history = append(*cl.history, porcupine.Operation{ClientId: cl.id, Input: in, Call: call, Output: out, Return: ret})
	cl.mu.Unlock()
}

// do sends one request; status 0 with err means the outcome is unknown.
func (cl *lzClient) do(m *Member, method, path, body string, header ...string) (int, map[string]any) {
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, _ := http.NewRequest(method, m.URL+path, r)
	req.Header.Set("X-API-Key", APIKey)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := lzHTTP.Do(req)
	if err != nil {
		return 0, nil
	}
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

var lzHTTP = &http.Client{Timeout: 4 * time.Second}

func str(m map[string]any, k string) string { s, _ := m[k].(string); return s }

func (cl *lzClient) step() {
	user := cl.users[cl.rng.IntN(len(cl.users))]
	var known []int
	for i, k := range cl.sessions {
		if k.user == user {
			known = append(known, i)
		}
	}
	pick := cl.rng.IntN(100)
	if len(known) == 0 {
		pick = 0
	}
	m := cl.node()
	call := time.Now().UnixNano()
	switch {
	case pick < 20: // create
		status, body := cl.do(m, "POST", "/v1/sessions", `{"user_id":"`+user+`"}`)
		out := lzOutput{}
		if status == http.StatusCreated {
			out = lzOutput{Status: status, SID: str(body, "session_id"), Access: str(body, "access_token"), Refresh: str(body, "refresh_token")}
			cl.sessions = append(cl.sessions, lzKnown{user: user, sid: out.SID, access: out.Access, refresh: out.Refresh})
		}
		cl.record(lzInput{Kind: "create", User: user}, out, call, time.Now().UnixNano())
	case pick < 45: // refresh, now and then with a rotated token
		k := &cl.sessions[known[cl.rng.IntN(len(known))]]
		token := k.refresh
		if len(k.stale) > 0 && cl.rng.IntN(5) == 0 {
			token = k.stale[cl.rng.IntN(len(k.stale))]
		}
		status, body := cl.do(m, "POST", "/v1/refresh", `{"refresh_token":"`+token+`"}`)
		out := lzOutput{}
		switch status {
		case http.StatusOK:
			out = lzOutput{Status: status, Access: str(body, "access_token"), Refresh: str(body, "refresh_token")}
			if token == k.refresh {
				k.stale = append(k.stale, k.refresh, k.access)
				k.access, k.refresh = out.Access, out.Refresh
			}
		case http.StatusUnauthorized:
			out = lzOutput{Status: status}
		}
		cl.record(lzInput{Kind: "refresh", User: user, Token: token}, out, call, time.Now().UnixNano())
	case pick < 53: // revoke by id (admin)
		k := cl.sessions[known[cl.rng.IntN(len(known))]]
		status, _ := cl.do(m, "DELETE", "/v1/sessions/"+k.sid, "")
		out := lzOutput{}
		if status == http.StatusNoContent || status == http.StatusNotFound {
			out.Status = status
		}
		cl.record(lzInput{Kind: "revoke", User: user, SID: k.sid}, out, call, time.Now().UnixNano())
	case pick < 57: // force logout of the user
		status, _ := cl.do(m, "DELETE", "/v1/users/"+user+"/sessions", "")
		out := lzOutput{}
		if status == http.StatusOK {
			out.Status = status
		}
		cl.record(lzInput{Kind: "logout-user", User: user}, out, call, time.Now().UnixNano())
	default: // leader-confirmed validation, of current and rotated tokens
		k := cl.sessions[known[cl.rng.IntN(len(known))]]
		token := k.access
		if len(k.stale) > 0 && cl.rng.IntN(4) == 0 {
			token = k.stale[cl.rng.IntN(len(k.stale))]
		}
		status, body := cl.do(m, "GET", "/v1/session?consistency=leader", "", "Authorization", "Bearer "+token)
		out := lzOutput{}
		if status == http.StatusOK || status == http.StatusUnauthorized {
			out = lzOutput{Status: status, SID: str(body, "session_id")}
		}
		cl.record(lzInput{Kind: "validate", User: user, Token: token}, out, call, time.Now().UnixNano())
	}
}

// Kinds of fault the nemesis injects.
const (
	faultIsolate = iota
	faultKillLeader
	faultPartition
	faultIsolateRegion // a cluster with regions only
	faultMoveHome      // a cluster with regions only: a user's home moved
	faultKinds
)

// faultNames name the kinds in the test's log.
var faultNames = [faultKinds]string{"isolations", "leader kills", "partitions", "region isolations", "home moves"}

// singleRegionFaults are the kinds a single-region run injects.
var singleRegionFaults = []int{faultIsolate, faultKillLeader, faultPartition}

// nemesis injects one fault at a time, of the given kinds, until stop
// closes, and counts what it injected by kind. The kinds come in shuffled
// rounds of one each, so the first faults are one of each; everyKind is
// set once they have all been injected.
func nemesis(c *Cluster, rng *rand.Rand, kinds []int, users []string, stop <-chan struct{}, everyKind *atomic.Bool, log func(string, ...any)) (injected [faultKinds]int) {
	var round []int
	for {
		select {
		case <-stop:
			return injected
		case <-time.After(time.Duration(300+rng.IntN(700)) * time.Millisecond):
		}
		if len(round) == 0 {
			for _, i := range rng.Perm(len(kinds)) {
				round = append(round, kinds[i])
			}
		}
		kind := round[0]
		round = round[1:]
		switch kind {
		case faultIsolate:
			i := rng.IntN(len(c.Nodes))
			log("nemesis: isolate node%d", i)
			c.Isolate(i)
			injected[faultIsolate]++
		case faultKillLeader:
			if l := c.someLeader(rng); l >= 0 {
				log("nemesis: kill a leader, node%d", l)
				c.Kill(l)
				injected[faultKillLeader]++
				select {
				case <-stop:
				case <-time.After(time.Duration(500+rng.IntN(1000)) * time.Millisecond):
				}
				log("nemesis: restart node%d", l)
				c.Restart(l)
			} else {
				round = append(round, faultKillLeader) // try again later in the round
			}
		case faultPartition:
			i := rng.IntN(len(c.Nodes))
			j := (i + 1 + rng.IntN(len(c.Nodes)-1)) % len(c.Nodes)
			log("nemesis: partition node%d from node%d", i, j)
			c.Partition(i, j)
			injected[faultPartition]++
		case faultIsolateRegion:
			region := c.opts.Regions[rng.IntN(len(c.opts.Regions))]
			log("nemesis: cut region %s off", region)
			c.IsolateRegion(region)
			injected[faultIsolateRegion]++
		case faultMoveHome:
			// A few moves while the clients run, none while a fault is on:
			// a move needs both regions.
			for range 1 + rng.IntN(3) {
				user := users[rng.IntN(len(users))]
				region := c.opts.Regions[rng.IntN(len(c.opts.Regions))]
				running := c.Running()
				m := running[rng.IntN(len(running))]
				r, err := send(m, true, "PUT", "/v1/users/"+user, `{"region":"`+region+`"}`)
				log("nemesis: move %s's home to %s through %s: %v %v", user, region, m.ID, r.Status, err)
			}
			injected[faultMoveHome]++
		}
		if !slices.ContainsFunc(kinds, func(k int) bool { return injected[k] == 0 }) {
			everyKind.Store(true)
		}
		select {
		case <-stop:
		case <-time.After(time.Duration(500+rng.IntN(1500)) * time.Millisecond):
		}
		log("nemesis: heal")
		c.Heal()
	}
}

func TestLinearizability_SessionsUnderFaults(t *testing.T) {
	// The short run paces its clients so that its operations span the
	// faults; the long one runs them flat out.
	duration, maxOps := 15*time.Second, 1500
	pace := 3 * duration / time.Duration(maxOps) // between one client's operations
	if longRun() {
		duration, maxOps, pace = 60*time.Second, 100000, 0
	}
	for _, seed := range runSeeds(t) {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			t.Logf("seed %d (replay with SESSIOND_SEED=%d)", seed, seed)
			history := runLinearizability(t, seed, duration, maxOps, pace, lzSetup{opts: Options{Size: 3, MaxStale: 2 * time.Second}, faults: singleRegionFaults})
			res, info := porcupine.CheckOperationsVerbose(lzModel(false), history, 60*time.Second)
			if res != porcupine.Ok {
				path := fmt.Sprintf("%s/linearizability-%d.html", os.TempDir(), seed)
				if f, err := os.Create(path); err == nil {
					_ = porcupine.Visualize(lzModel(false), info, f)
					f.Close()
				}
				logIllegalPartition(t, history)
				t.Fatalf("history of %d operations is %v under the model (visualization: %s)", len(history), res, path)
			}
			// The same history must fail against a deliberately broken
			// model, or the check proves nothing.
			if broken := porcupine.CheckOperationsTimeout(lzModel(true), history, 60*time.Second); broken == porcupine.Ok && hasRotatedValidation(history) {
				t.Fatal("a broken model accepted the history: the check cannot fail")
			}
		})
	}
}

// hasRotatedValidation reports whether the history holds a 401 for a
// rotated access token, which is what the broken model gets wrong.
func hasRotatedValidation(history []porcupine.Operation) bool {
	rotated := map[string]bool{}
	for _, op := range history {
		in, out := op.Input.(lzInput), op.Output.(lzOutput)
		if in.Kind == "refresh" && out.Status == http.StatusOK {
			rotated[in.Token] = true
		}
	}
	return len(rotated) > 0
}

// lzSetup is the cluster a linearizability run starts and the faults its
// nemesis injects; wan, with regions, delays traffic between regions.
type lzSetup struct {
	opts   Options
	wan    time.Duration
	faults []int
}

// runLinearizability runs four clients for duration (and on until the
// nemesis has injected every kind of fault, within twice duration), at most
// maxOps operations in all, each client pausing pace between operations.
func runLinearizability(t *testing.T, seed uint64, duration time.Duration, maxOps int, pace time.Duration, setup lzSetup) []porcupine.Operation {
	c := Start(t, setup.opts)
	if setup.wan > 0 {
		regionOf := make([]int, len(c.Nodes))
		for i := range c.Nodes {
			regionOf[i] = slices.Index(setup.opts.Regions, c.RegionOf(i))
		}
		c.SetRegions(regionOf, 0, setup.wan)
	}
	rng := rand.New(rand.NewPCG(seed, seed^0x5e55))
	var history []porcupine.Operation
	var mu sync.Mutex
	stop := make(chan struct{})
	nemesisDone := make(chan struct{})
	var logMu sync.Mutex
	logf := func(format string, args ...any) {
		logMu.Lock()
		defer logMu.Unlock()
		t.Logf(format, args...)
	}
	// The checker explores each user's operations apart; its cost grows
	// steeply with their number (a long run on four users exhausted 24 GiB),
	// so longer runs spread the same clients over more users.
	// A user's history is checked within a minute when it holds up to
	// about 4,000 operations (runs of 42,000–79,000 over twenty users
	// passed); two of twenty seeds of 100,000 operations over twenty users
	// came back Unknown, the checker still searching at its deadline. So
	// the users are at least one per 3 s of run and one per 2,500 of the
	// operations allowed.
	users := []string{"ann", "ben", "cat", "dan"}
	for i := 0; len(users) < max(int(duration/(3*time.Second)), maxOps/2500); i++ {
		users = append(users, fmt.Sprintf("user%02d", i))
	}
	nemesisRNG := rand.New(rand.NewPCG(rng.Uint64(), rng.Uint64()))
	var everyKind atomic.Bool
	var injected [faultKinds]int
	go func() {
		defer close(nemesisDone)
		injected = nemesis(c, nemesisRNG, setup.faults, users, stop, &everyKind, logf)
	}()
	start := time.Now()
	running := func() bool {
		elapsed := time.Since(start)
		return elapsed < 2*duration && (elapsed < duration || !everyKind.Load())
	}
	var wg sync.WaitGroup
	var opsMu sync.Mutex
	ops := 0
	for id := range 4 {
		cl := &lzClient{id: id, rng: rand.New(rand.NewPCG(rng.Uint64(), rng.Uint64())), c: c, users: users, history: &history, mu: &mu}
		wg.Go(func() {
			for running() {
				opsMu.Lock()
				if ops >= maxOps {
					opsMu.Unlock()
					return
				}
				ops++
				opsMu.Unlock()
				cl.step()
				if pace > 0 {
					time.Sleep(pace)
				}
			}
		})
	}
	wg.Wait()
	close(stop)
	<-nemesisDone
	var counts []string
	for _, k := range setup.faults {
		counts = append(counts, fmt.Sprintf("%d %s", injected[k], faultNames[k]))
	}
	t.Logf("faults injected: %s", strings.Join(counts, ", "))
	if !everyKind.Load() {
		t.Fatalf("the run ended before the nemesis had injected every kind of fault (%v)", injected)
	}
	c.Heal()
	for i := range c.Nodes {
		if !c.IsRunning(i) {
			c.Restart(i)
		}
	}
	c.WaitFor(30*time.Second, "the cluster to recover", c.recovered)
	c.WaitConverged(30 * time.Second)
	mu.Lock()
	defer mu.Unlock()
	known := 0
	for _, op := range history {
		if op.Output.(lzOutput).Status != 0 {
			known++
		}
	}
	t.Logf("%d operations, %d with a known outcome", len(history), known)
	// Unknown outcomes may take effect at any time after their call.
	for i := range history {
		if history[i].Output.(lzOutput).Status == 0 {
			history[i].Return = 1<<62 - 1
		}
	}
	return history
}

// logIllegalPartition logs, in call order, the operations of the first
// user whose history the model rejects.
func logIllegalPartition(t *testing.T, history []porcupine.Operation) {
	m := lzModel(false)
	for _, part := range m.Partition(history) {
		if porcupine.CheckOperationsTimeout(m, part, 30*time.Second) == porcupine.Ok {
			continue
		}
		slices.SortFunc(part, func(a, b porcupine.Operation) int { return int(a.Call - b.Call) })
		base := part[0].Call
		for _, op := range part {
			in, out := op.Input.(lzInput), op.Output.(lzOutput)
			ret := (op.Return - base) / 1e6
			if op.Return > 1<<61 {
				ret = -1
			}
			t.Logf("c%d [%6d,%6d] %-11s tok=%s sid=%s -> %d sid=%s a=%s r=%s", op.ClientId, (op.Call-base)/1e6, ret,
				in.Kind, short(in.Token), in.SID, out.Status, out.SID, short(out.Access), short(out.Refresh))
		}
		return
	}
}

// The same check on a cluster of two regions with a WAN delay between
// them: users are homed wherever their first write lands, and the nemesis
// also cuts whole regions off and kills the leaders of any group.
func TestLinearizability_RegionsUnderFaults(t *testing.T) {
	duration, maxOps := 15*time.Second, 1200
	pace := 3 * duration / time.Duration(maxOps)
	if longRun() {
		duration, maxOps, pace = 60*time.Second, 100000, 0
	}
	setup := lzSetup{
		opts:   Options{Size: 6, Regions: []string{"eu", "us"}, MaxStale: 2 * time.Second},
		wan:    10 * time.Millisecond,
		faults: append(slices.Clone(singleRegionFaults), faultIsolateRegion, faultMoveHome),
	}
	for _, seed := range runSeeds(t) {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			t.Logf("seed %d (replay with SESSIOND_SEED=%d)", seed, seed)
			history := runLinearizability(t, seed, duration, maxOps, pace, setup)
			res, info := porcupine.CheckOperationsVerbose(lzModel(false), history, 60*time.Second)
			if res != porcupine.Ok {
				path := fmt.Sprintf("%s/linearizability-regions-%d.html", os.TempDir(), seed)
				if f, err := os.Create(path); err == nil {
					_ = porcupine.Visualize(lzModel(false), info, f)
					f.Close()
				}
				logIllegalPartition(t, history)
				t.Fatalf("history of %d operations is %v under the model (visualization: %s)", len(history), res, path)
			}
		})
	}
}
