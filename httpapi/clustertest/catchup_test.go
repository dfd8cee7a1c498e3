package clustertest

// Catching up after a partition, and ?max_stale=: a node answers a
// validation from its local state at time t only if it has applied every
// entry the leader had committed by t − max_stale; otherwise it confirms
// through the leader or answers 503. Hearing from the leader again is not
// enough, and a caller's ?max_stale= can only tighten the bound.

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sessiond/sessiond/node"
	"github.com/sessiond/sessiond/transport/testkit"
)

// catchUpCluster starts three nodes with Raft's default timing (a leader
// lease of 500 ms): on a busy machine the harness's 300 ms timeouts make
// leaders step down now and then, and a new leader sends a follower
// everything it lacks at once, which is not the case under test.
func catchUpCluster(t *testing.T, maxStale time.Duration) *Cluster {
	return Start(t, Options{Size: 3, MaxStale: maxStale, Tweak: func(_ int, cfg *node.Config) {
		cfg.HeartbeatTimeout, cfg.ElectionTimeout = time.Second, time.Second
	}})
}

// catchUpGet sends GET path with the access token to m and returns the
// status and X-Sessiond-Index (status 0 when the request failed).
func catchUpGet(m *Member, path, access string) (int, string) {
	resp, err := m.Do(http.MethodGet, path, nil, "Authorization", "Bearer "+access)
	if err != nil {
		return 0, ""
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, resp.Header.Get("X-Sessiond-Index")
}

// catchUpRevoke revokes a session through m (the admin DELETE) and fails the
// test unless it answers 204.
func catchUpRevoke(t *testing.T, m *Member, sessionID string) {
	t.Helper()
	resp, err := m.Do(http.MethodDelete, "/v1/sessions/"+sessionID, nil)
	if err != nil {
		t.Fatalf("revoke %s through %s: %v", sessionID, m.ID, err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("revoke %s through %s: %d, want 204", sessionID, m.ID, resp.StatusCode)
	}
}

// catchUpBacklog writes n sessions through m, eight at a time, and fails
// the test if any write fails.
func catchUpBacklog(t *testing.T, m *Member, n int) {
	t.Helper()
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		failed []string
		next   = make(chan int)
	)
	for range 8 {
		wg.Go(func() {
			for i := range next {
				resp, err := m.Do(http.MethodPost, "/v1/sessions", strings.NewReader(fmt.Sprintf(`{"user_id":"backlog-%d"}`, i%40)))
				if err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != http.StatusCreated {
						err = fmt.Errorf("status %d", resp.StatusCode)
					}
				}
				if err != nil {
					mu.Lock()
					failed = append(failed, fmt.Sprintf("write %d: %v", i, err))
					mu.Unlock()
				}
			}
		})
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	if len(failed) > 0 {
		t.Fatalf("%d of %d backlog writes through %s failed; first: %s", len(failed), n, m.ID, failed[0])
	}
}

// catchUpAnswer is one answer of a polled node.
type catchUpAnswer struct {
	at     time.Duration // since polling began, when the answer came
	path   string
	status int
	index  string // X-Sessiond-Index
}

func (a catchUpAnswer) String() string {
	return fmt.Sprintf("GET %s answered %d %s after the rejoin (X-Sessiond-Index %q)", a.path, a.status, a.at.Round(time.Millisecond), a.index)
}

// catchUpPoll validates access on m through each path, two goroutines
// each, a request every millisecond or so, until stop is closed or limit has
// passed; the function it returns waits for the pollers and returns every
// answer. One goroutine of each pair gives a request up after
// catchUpPatience (status 0), so that a request the node holds while it
// confirms does not keep it from seeing what the node answers meanwhile;
// the other waits for every answer.
func catchUpPoll(m *Member, access string, paths []string, stop <-chan struct{}, limit time.Duration) func() []catchUpAnswer {
	began := time.Now()
	tr := &http.Transport{}
	patient := &http.Client{Timeout: 10 * time.Second, Transport: tr}
	impatient := &http.Client{Timeout: catchUpPatience, Transport: tr}
	var (
		wg  sync.WaitGroup
		mu  sync.Mutex
		got []catchUpAnswer
	)
	get := func(client *http.Client, path string) (int, string) {
		r, err := testkit.Send(client, http.MethodGet, m.URL+path, nil, "Authorization", "Bearer "+access)
		if err != nil {
			return 0, ""
		}
		return r.Status, r.Header.Get("X-Sessiond-Index")
	}
	for _, path := range paths {
		for _, client := range []*http.Client{patient, impatient} {
			wg.Go(func() {
				for range 1_000_000 {
					select {
					case <-stop:
						return
					default:
					}
					if time.Since(began) > limit {
						return
					}
					status, index := get(client, path)
					mu.Lock()
					got = append(got, catchUpAnswer{at: time.Since(began), path: path, status: status, index: index})
					mu.Unlock()
					time.Sleep(time.Millisecond)
				}
			})
		}
	}
	return func() []catchUpAnswer {
		wg.Wait()
		tr.CloseIdleConnections()
		return got
	}
}

// catchUpPatience is how long a poller waits for one answer.
const catchUpPatience = 200 * time.Millisecond

// catchUpRejoinAfter is how long after the cut the follower rejoins (see
// TestCatchUp_RejoinedFollowerNeverVouchesForTokenRevokedWhileCutOff).
const catchUpRejoinAfter = 6500 * time.Millisecond

// A follower cut off for longer than max-stale, while the majority revokes
// a session and writes a backlog, must not vouch for the revoked token once
// it hears from the leader again: it confirms through the leader (or answers
// 503) until it has applied the revocation.
func TestCatchUp_RejoinedFollowerNeverVouchesForTokenRevokedWhileCutOff(t *testing.T) {
	const maxStale = 2 * time.Second
	c := catchUpCluster(t, maxStale)
	leader, cut, majority, tok := sessionOnFollowers(t, c)

	c.Isolate(cut.Index)
	isolated := time.Now()
	c.WaitFor(maxStale+time.Second, "the follower to be cut off for longer than max-stale", func() bool {
		return time.Since(isolated) > maxStale+100*time.Millisecond
	})
	catchUpRevoke(t, majority, tok.SessionID)
	revoked := time.Now()
	catchUpBacklog(t, c.Nodes[leader], 300)
	c.WaitFor(3*maxStale+5*time.Second, "the cut-off follower to stop vouching (503)", func() bool {
		return validate(t, cut, tok.AccessToken, "") == http.StatusServiceUnavailable
	})
	t.Logf("the cut-off follower answered 503 %s after the cut", time.Since(isolated).Round(time.Millisecond))
	// The follower rejoins once the revocation is more than max-stale old
	// (from then on it must never vouch for the token), and not before
	// catchUpRejoinAfter: the leader retries a follower it cannot reach
	// after 10, 20, 40 ms and so on up to 2.56, 5.12 and 10.24 s after the
	// cut, and sends heartbeats at least every half second, so a follower
	// back between two retries hears from the leader seconds before it
	// receives what it missed — as after any partition of a few seconds.
	c.WaitFor(catchUpRejoinAfter+maxStale+time.Second, "the moment to rejoin", func() bool {
		return time.Since(revoked) > maxStale+100*time.Millisecond && time.Since(isolated) > catchUpRejoinAfter
	})
	t.Logf("rejoining %s after the cut, %s after the revocation", time.Since(isolated).Round(time.Millisecond), time.Since(revoked).Round(time.Millisecond))

	stop := make(chan struct{})
	answers := catchUpPoll(cut, tok.AccessToken, []string{"/v1/session", "/v1/auth"}, stop, 25*time.Second)
	c.Rejoin(cut.Index)
	rejoined := time.Now()
	// Polling goes on until the follower rejects the token (it has applied
	// the revocation), and two seconds more.
	c.WaitFor(20*time.Second, "the rejoined follower to reject the revoked token", func() bool {
		return validate(t, cut, tok.AccessToken, "") == http.StatusUnauthorized
	})
	t.Logf("the rejoined follower rejected the revoked token %s after the rejoin", time.Since(rejoined).Round(time.Millisecond))
	caughtUp := time.Now()
	c.WaitFor(3*time.Second, "two more seconds of polling", func() bool { return time.Since(caughtUp) > 2*time.Second })
	close(stop)

	got := answers()
	counts := map[string]int{}
	var vouched []catchUpAnswer
	for _, a := range got {
		counts[fmt.Sprintf("GET %s → %d", a.path, a.status)]++
		if a.status == http.StatusOK {
			vouched = append(vouched, a)
		}
	}
	t.Logf("answers of the rejoined follower: %v", counts)
	if len(vouched) > 0 {
		t.Errorf("the rejoined follower vouched %d times for a token revoked on the majority more than max-stale (%s) earlier; first: %s; last: %s",
			len(vouched), maxStale, vouched[0], vouched[len(vouched)-1])
	}
	c.WaitConverged(20 * time.Second)
}

// ?max_stale= can only tighten the node's bound: on a follower cut off for
// longer than --max-stale, ?max_stale=24h must not make it vouch for a token
// the majority has revoked. It answers 503, the same as without the
// parameter.
func TestCatchUp_MaxStaleQueryCannotLoosenTheBound(t *testing.T) {
	const maxStale = 2 * time.Second
	c := catchUpCluster(t, maxStale)
	_, cut, majority, tok := sessionOnFollowers(t, c)

	c.Isolate(cut.Index)
	c.WaitFor(3*maxStale+5*time.Second, "the cut-off follower to stop vouching (503)", func() bool {
		return validate(t, cut, tok.AccessToken, "") == http.StatusServiceUnavailable
	})
	catchUpRevoke(t, majority, tok.SessionID)
	revoked := time.Now()
	c.WaitFor(maxStale+time.Second, "the revocation to be older than max-stale", func() bool {
		return time.Since(revoked) > maxStale+100*time.Millisecond
	})

	// The four requests at once: each may wait for the leader it cannot
	// reach before it answers.
	type result struct {
		request, index string
		status         int
		took           time.Duration
	}
	var (
		wg      sync.WaitGroup
		results = make(chan result, 4)
	)
	for _, path := range []string{"/v1/session", "/v1/auth"} {
		for _, query := range []string{"", "?max_stale=24h"} {
			wg.Go(func() {
				began := time.Now()
				status, index := catchUpGet(cut, path+query, tok.AccessToken)
				results <- result{request: path + query, index: index, status: status, took: time.Since(began)}
			})
		}
	}
	wg.Wait()
	close(results)
	for r := range results {
		t.Logf("GET %s answered %d in %s", r.request, r.status, r.took.Round(time.Millisecond))
		if r.status != http.StatusServiceUnavailable {
			t.Errorf("cut-off follower, GET %s for a token revoked on the majority more than %s earlier: %d (X-Sessiond-Index %q), want 503 (--max-stale %s)",
				r.request, maxStale, r.status, r.index, maxStale)
		}
	}
}

// A ?max_stale= tighter than --max-stale still answers on a healthy
// follower, by confirming through the leader: with ?max_stale=0s the
// follower has applied every write acknowledged before the request (a token
// minted a moment ago is accepted, one revoked a moment ago is not), and
// with ?max_stale=1ms every write acknowledged more than 1ms before.
func TestCatchUp_TighterMaxStaleConfirmsThroughLeader(t *testing.T) {
	c := catchUpCluster(t, 2*time.Second)
	leader := c.Nodes[c.Leader()]
	follower := c.Nodes[(leader.Index+1)%3]
	paths := []string{"/v1/session", "/v1/auth"}
	// after waits until more than d has passed since t0.
	after := func(t0 time.Time, d time.Duration) {
		c.WaitFor(time.Second, "the bound to pass", func() bool { return time.Since(t0) > d })
	}
	for i := range 6 {
		path := paths[i%2]
		tok, code := create(t, leader, fmt.Sprintf("user-%d", i))
		if code != http.StatusCreated {
			t.Fatalf("create: %d", code)
		}
		created := time.Now()
		if status, index := catchUpGet(follower, path+"?max_stale=0s", tok.AccessToken); status != http.StatusOK {
			t.Errorf("healthy follower, GET %s?max_stale=0s for a token the leader minted just before (index %d): %d (X-Sessiond-Index %q), want 200",
				path, tok.Index, status, index)
		}
		after(created, 5*time.Millisecond)
		if status, index := catchUpGet(follower, path+"?max_stale=1ms", tok.AccessToken); status != http.StatusOK {
			t.Errorf("healthy follower, GET %s?max_stale=1ms for a valid token: %d (X-Sessiond-Index %q), want 200", path, status, index)
		}

		catchUpRevoke(t, leader, tok.SessionID)
		revoked := time.Now()
		if status, index := catchUpGet(follower, path+"?max_stale=0s", tok.AccessToken); status != http.StatusUnauthorized {
			t.Errorf("healthy follower, GET %s?max_stale=0s for a token the leader revoked just before: %d (X-Sessiond-Index %q), want 401",
				path, status, index)
		}
		after(revoked, 5*time.Millisecond)
		if status, index := catchUpGet(follower, path+"?max_stale=1ms", tok.AccessToken); status != http.StatusUnauthorized {
			t.Errorf("healthy follower, GET %s?max_stale=1ms for a token revoked 5ms earlier: %d (X-Sessiond-Index %q), want 401", path, status, index)
		}
	}
}

// sessionOnFollowers creates a session through the leader and waits until
// the follower soon to be cut off validates it; it returns the leader's
// index, that follower, the other one and the session's tokens.
func sessionOnFollowers(t *testing.T, c *Cluster) (leader int, cut, majority *Member, tok tokens) {
	t.Helper()
	leader = c.Leader()
	cut, majority = c.Nodes[(leader+1)%3], c.Nodes[(leader+2)%3]
	tok, code := create(t, c.Nodes[leader], "alice")
	if code != http.StatusCreated {
		t.Fatalf("create: %d", code)
	}
	if code := validate(t, cut, tok.AccessToken, fmt.Sprintf("?min_index=%d&wait=10s", tok.Index)); code != http.StatusOK {
		t.Fatalf("the soon cut-off follower answered %d for the session before the cut, want 200", code)
	}
	return leader, cut, majority, tok
}
