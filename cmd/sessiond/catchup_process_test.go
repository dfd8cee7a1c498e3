package main

// Catch-up after a crash, with real processes: a follower killed with
// SIGKILL misses a revocation and a backlog of writes, and is started again
// on its data dir with no snapshot there. From the first instant its HTTP
// port answers until well after it reports ready, it must never vouch for
// the revoked token, and never reject a valid token it simply has not
// replayed yet: until it has caught up it confirms through the leader or
// answers 503.

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sessiond/sessiond/transport/testkit"
)

const (
	// catchUpMaxStale is every node's --max-stale.
	catchUpMaxStale = 2 * time.Second
	// catchUpLead is how many writes the killed follower misses before the
	// revocation, sent one at a time so that each is a Raft entry of its
	// own: more than the leader ships in one append (512 entries). The
	// restarted follower applies the revoked session's creation (from its
	// own log) with the first append, and the revocation only appends later.
	catchUpLead = 600
	// catchUpBulk writes of about 5 KB each follow the lead, so that the
	// appends between the creation and the revocation take a while to ship
	// and store (some 10 MB).
	catchUpBulk = 2000
	// catchUpBacklog is how many writes it misses after the revocation.
	catchUpBacklog = 300
	// catchUpDowntime is how long the follower stays dead. The leader's
	// replication to a dead follower backs off exponentially (retries
	// about 2.6, 5.1 and 10.2 s after the first failure), while its
	// heartbeats keep coming every half second: a follower restarted 8 s
	// after its death hears heartbeats some 2 s before the entries it
	// missed arrive, as a crashed node restarted by a supervisor does.
	catchUpDowntime = 8 * time.Second
	// catchUpPollFor bounds the polling of the restarted follower; polling
	// goes on catchUpAfter past its first 200 on /readyz.
	catchUpPollFor = 20 * time.Second
	catchUpAfter   = 3 * time.Second
	// catchUpPatience is how long a poller waits for one answer.
	catchUpPatience = 200 * time.Millisecond
)

// processCluster is three sessiond processes that bootstrapped together.
type processCluster struct {
	args    [][]string // each node's command line
	dataDir []string
	daemons []*daemon
	clients []*client
}

// startProcessCluster starts three nodes with --bootstrap-expect 3 and
// shared key files, and waits until each is ready.
func startProcessCluster(t *testing.T, bin string) *processCluster {
	t.Helper()
	dir := t.TempDir()
	const apiKey = "catch-up-admin-key-0123456789abcdef"
	keyFile, cookieFile := filepath.Join(dir, "admin.keys"), filepath.Join(dir, "cookie.keys")
	if err := os.WriteFile(keyFile, []byte(apiKey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cookieFile, []byte("catch-up-cookie-key-0123456789abcdefghijklmn\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	pc := &processCluster{}
	var gossip, httpAddrs []string
	for range 3 {
		gossip = append(gossip, testkit.FreeAddr(t))
		httpAddrs = append(httpAddrs, testkit.FreeAddr(t))
	}
	for i := range 3 {
		var join []string
		for j, g := range gossip {
			if j != i {
				join = append(join, g)
			}
		}
		dataDir := filepath.Join(dir, fmt.Sprintf("node%d", i))
		pc.dataDir = append(pc.dataDir, dataDir)
		pc.args = append(pc.args, []string{
			"--node-id", fmt.Sprintf("node%d", i), "--data-dir", dataDir,
			"--http-addr", httpAddrs[i], "--raft-addr", testkit.FreeAddr(t), "--gossip-addr", gossip[i],
			"--join", strings.Join(join, ","), "--bootstrap-expect", "3",
			"--api-key-file", keyFile, "--cookie-key-file", cookieFile,
			"--max-stale", catchUpMaxStale.String(),
		})
		pc.clients = append(pc.clients, newClient(t, "http://"+httpAddrs[i], apiKey, nil))
	}
	for i := range 3 {
		pc.daemons = append(pc.daemons, start(t, bin, nil, pc.args[i]...))
	}
	for i, d := range pc.daemons {
		d.waitReady(t, pc.clients[i])
	}
	return pc
}

// leader is the index of the node that every node names as the leader.
func (pc *processCluster) leader(t *testing.T) int {
	t.Helper()
	leader := -1
	var ids []string
	agreed := testkit.Wait(readyLimit, func() bool {
		ids = nil
		for _, c := range pc.clients {
			var st struct {
				Leader struct {
					ID string `json:"id"`
				} `json:"leader"`
			}
			if a := c.call(t, true, http.MethodGet, "/v1/cluster", nil); a.status == http.StatusOK && json.Unmarshal(a.body, &st) == nil {
				ids = append(ids, st.Leader.ID)
			}
		}
		if len(ids) == len(pc.clients) && len(slices.Compact(ids)) == 1 {
			var i int
			if _, err := fmt.Sscanf(ids[0], "node%d", &i); err == nil && i >= 0 && i < len(pc.clients) {
				leader = i
				return true
			}
		}
		return false
	})
	if !agreed {
		t.Fatalf("no leader all nodes agree on after %s (they name %q)", readyLimit, ids)
	}
	return leader
}

// createAt creates a session through c and returns its tokens and index.
func createAt(t *testing.T, c *client, user string) (tokens, string) {
	t.Helper()
	a := c.call(t, true, http.MethodPost, "/v1/sessions", map[string]any{"user_id": user})
	c.expect(t, "create session for "+user, a, http.StatusCreated)
	var tok struct {
		tokens
		Index uint64 `json:"index"`
	}
	if err := json.Unmarshal(a.body, &tok); err != nil || tok.AccessToken == "" {
		t.Fatalf("token answer %s: %v", a.body, err)
	}
	return tok.tokens, fmt.Sprint(tok.Index)
}

// fill creates n sessions through c, workers at a time, with the body that
// body returns for each, and fails the test if any create fails.
func fill(t *testing.T, c *client, n, workers int, body func(i int) string) {
	t.Helper()
	jobs := make(chan int)
	errs := make(chan error, workers)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for i := range jobs {
				r, err := testkit.Send(c.http, http.MethodPost, c.base+"/v1/sessions", testkit.Raw(body(i)),
					"Content-Type", "application/json", "X-API-Key", c.key)
				if err != nil {
					errs <- fmt.Errorf("create %d: %w", i, err)
					return
				}
				if r.Status != http.StatusCreated {
					errs <- fmt.Errorf("create %d: status %d", i, r.Status)
					return
				}
			}
		})
	}
	var err error
	for i := 0; i < n && err == nil; i++ {
		select {
		case jobs <- i:
		case err = <-errs:
		}
	}
	close(jobs)
	wg.Wait()
	close(errs)
	if err == nil {
		err = <-errs // nil when every create succeeded
	}
	if err != nil {
		t.Fatalf("writing %d sessions: %v", n, err)
	}
}

// observation is one answer of the restarted follower.
type observation struct {
	at     time.Duration // since the restart, when the answer came
	what   string
	token  string // which token was validated; empty for /readyz
	status int
	index  string // X-Sessiond-Index
}

func (o observation) String() string {
	return fmt.Sprintf("%s answered %d %s after the restart (X-Sessiond-Index %q)", o.what, o.status, o.at.Round(time.Millisecond), o.index)
}

// pollRestarted polls base from the instant the process is started until
// catchUpAfter past its first 200 on /readyz (at most catchUpPollFor): two
// goroutines for each token on each of GET /v1/session and GET /v1/auth, so
// that even a window of a few milliseconds is seen, and /readyz. Requests
// made before the port is open are skipped. One goroutine of each pair gives
// a request up after catchUpPatience, so that a request the node holds
// while it confirms does not keep it from seeing what the node answers
// meanwhile; the other waits for every answer.
func pollRestarted(t *testing.T, d *daemon, base string, tokens map[string]string) []observation {
	t.Helper()
	tr := &http.Transport{MaxIdleConnsPerHost: 4 * len(tokens)}
	defer tr.CloseIdleConnections()
	patient := &http.Client{Timeout: 10 * time.Second, Transport: tr}
	impatient := &http.Client{Timeout: catchUpPatience, Transport: tr}
	get := func(hc *http.Client, path, token string) (int, string, error) {
		var auth []string
		if token != "" {
			auth = []string{"Authorization", "Bearer " + token}
		}
		r, err := testkit.Send(hc, http.MethodGet, base+path, nil, auth...)
		return r.Status, r.Header.Get("X-Sessiond-Index"), err
	}
	began := time.Now()
	var (
		mu   sync.Mutex
		obs  []observation
		wg   sync.WaitGroup
		stop = make(chan struct{})
	)
	record := func(o observation) {
		mu.Lock()
		obs = append(obs, o)
		mu.Unlock()
	}
	for name, tok := range tokens {
		for _, path := range []string{"/v1/session", "/v1/auth"} {
			for _, hc := range []*http.Client{patient, impatient} {
				wg.Go(func() {
					for range 1_000_000 {
						select {
						case <-stop:
							return
						default:
						}
						st, idx, err := get(hc, path, tok)
						if err != nil {
							time.Sleep(time.Millisecond) // not listening yet, or no answer in time
							continue
						}
						record(observation{at: time.Since(began), what: "GET " + path + " with the " + name + " token", token: name, status: st, index: idx})
					}
				})
			}
		}
	}
	var ready time.Time
	for time.Since(began) < catchUpPollFor && (ready.IsZero() || time.Since(ready) < catchUpAfter) {
		if !d.running() {
			break
		}
		if st, _, err := get(impatient, "/readyz", ""); err == nil {
			record(observation{at: time.Since(began), what: "GET /readyz", status: st})
			if st == http.StatusOK && ready.IsZero() {
				ready = time.Now()
				t.Logf("the restarted follower said ready %s after its start", ready.Sub(began).Round(time.Millisecond))
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	if !d.running() {
		t.Fatalf("the restarted follower exited (%v)", d.waitErr)
	}
	if ready.IsZero() {
		t.Fatalf("the restarted follower was not ready within %s", catchUpPollFor)
	}
	return obs
}

// summarize logs how often each answer was seen.
func summarize(t *testing.T, obs []observation) {
	t.Helper()
	counts := map[string]int{}
	var keys []string
	for _, o := range obs {
		k := fmt.Sprintf("%s → %d", o.what, o.status)
		if counts[k] == 0 {
			keys = append(keys, k)
		}
		counts[k]++
	}
	slices.Sort(keys)
	for _, k := range keys {
		t.Logf("%6d × %s", counts[k], k)
	}
}

// answered lists the validations of token that answered status.
func answered(obs []observation, token string, status int) []observation {
	var out []observation
	for _, o := range obs {
		if o.token == token && o.status == status {
			out = append(out, o)
		}
	}
	return out
}

// testRestartedFollowerCatchingUp: a valid and a soon-revoked session,
// acknowledged and applied on a follower; the follower killed with SIGKILL,
// with no snapshot on its disk; on the majority catchUpLead and catchUpBulk
// writes, the revocation and catchUpBacklog more; the follower started again on
// its data dir catchUpDowntime after its death, and polled from the first
// instant its port answers. The subtests judge what it answered.
func testRestartedFollowerCatchingUp(t *testing.T, bin string) {
	pc := startProcessCluster(t, bin)
	leader := pc.leader(t)
	f := (leader + 1) % 3
	lc, fc := pc.clients[leader], pc.clients[f]

	valid, _ := createAt(t, lc, "catch-up-valid")
	revoked, index := createAt(t, lc, "catch-up-revoked")
	for _, tok := range []tokens{valid, revoked} {
		a := fc.call(t, false, http.MethodGet, "/v1/session?min_index="+index+"&wait=10s", nil, "Authorization", "Bearer "+tok.AccessToken)
		fc.expect(t, "the follower validates both sessions before the kill", a, http.StatusOK)
	}

	pc.daemons[f].kill(t)
	killed := time.Now()
	for i := range catchUpLead {
		createAt(t, lc, fmt.Sprintf("lead-%d", i%50))
	}
	bulky := `{"user_id":"bulky-%d","attributes":{"profile":"` + strings.Repeat("p", 4000) +
		`"},"device":{"user_agent":"` + strings.Repeat("u", 500) + `","label":"` + strings.Repeat("l", 500) + `"}}`
	fill(t, lc, catchUpBulk, 16, func(i int) string { return fmt.Sprintf(bulky, i%50) })
	a := lc.call(t, true, http.MethodDelete, "/v1/sessions/"+revoked.SessionID, nil)
	lc.expect(t, "revoke the session on the majority", a, http.StatusNoContent)
	fill(t, lc, catchUpBacklog, 8, func(i int) string { return fmt.Sprintf(`{"user_id":"backlog-%d"}`, i%50) })
	_, last := createAt(t, lc, "after-the-backlog")
	t.Logf("the majority wrote up to index %s %s after the kill", last, time.Since(killed).Round(time.Millisecond))

	snaps := filepath.Join(pc.dataDir[f], "snapshots")
	if entries, err := os.ReadDir(snaps); err != nil || len(entries) != 0 {
		t.Fatalf("setup: the follower must restart with no snapshot on disk, but %s holds %d entries (%v)", snaps, len(entries), err)
	}
	// The outage itself, not a wait for some condition: see catchUpDowntime.
	select {
	case <-time.After(time.Until(killed.Add(catchUpDowntime))):
	case <-t.Context().Done():
		return
	}
	pc.daemons[f] = start(t, bin, nil, pc.args[f]...)
	obs := pollRestarted(t, pc.daemons[f], fc.base, map[string]string{"revoked": revoked.AccessToken, "valid": valid.AccessToken})
	summarize(t, obs)
	a = fc.call(t, false, http.MethodGet, "/v1/session?min_index="+last+"&wait=10s", nil, "Authorization", "Bearer "+valid.AccessToken)
	fc.expect(t, "the caught-up follower validates the valid session", a, http.StatusOK)
	a = fc.call(t, false, http.MethodGet, "/v1/session?min_index="+last+"&wait=10s", nil, "Authorization", "Bearer "+revoked.AccessToken)
	fc.expect(t, "the caught-up follower rejects the revoked session", a, http.StatusUnauthorized)

	// A follower that missed a revocation while it was dead never answers
	// 200 for the revoked token after it starts again: not before it hears
	// from the leader, not while it replays its log, not after.
	t.Run("NeverVouchesForRevokedToken", func(t *testing.T) {
		if bad := answered(obs, "revoked", http.StatusOK); len(bad) > 0 {
			t.Errorf("the restarted follower vouched %d times for a token revoked while it was dead; first: %s; last: %s",
				len(bad), bad[0], bad[len(bad)-1])
		}
	})
	// With no snapshot the follower restarts with an empty state and fills
	// it as it replays the log: it must not answer 401 for a valid session
	// it has not applied yet (503, or 200 once confirmed, are right).
	t.Run("WithoutSnapshotNeverRejectsValidToken", func(t *testing.T) {
		if bad := answered(obs, "valid", http.StatusUnauthorized); len(bad) > 0 {
			t.Errorf("the restarted follower answered 401 %d times for a valid session it had not replayed yet; first: %s; last: %s",
				len(bad), bad[0], bad[len(bad)-1])
		}
	})
}
