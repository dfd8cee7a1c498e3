package clustertest

import (
	"bytes"
	"cmp"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/sessiond/sessiond/transport/testkit"
)

// Logins, lockout, session limits, idle timeout and password changes on a real
// three-node cluster (docs/logins.md, docs/api.md): rules decided by the state
// machine hold whichever node a request reaches.

const (
	rightPassword = "correct horse battery"
	wrongPassword = "incorrect horse battery"
)

// retryAfter checks a 423's Retry-After: whole seconds, at least one and at
// most the lock's duration.
func retryAfter(t *testing.T, what string, r reply, duration time.Duration) {
	t.Helper()
	v := r.Header.Get("Retry-After")
	secs, err := strconv.Atoi(v)
	if err != nil || secs < 1 || time.Duration(secs)*time.Second > duration {
		t.Fatalf("%s: Retry-After %q, want 1 to %d seconds", what, v, int(duration/time.Second))
	}
}

func TestLockout_FailuresOnOneNodeLockLoginsOnAnother(t *testing.T) {
	const lockFor = 15 * time.Minute
	c := startLogins(t, nil)
	n0, n1, n2 := c.Nodes[0], c.Nodes[1], c.Nodes[2]
	putPolicy(t, c, n0, `{"lockout":{"max_failures":3,"window":"15m","duration":"15m"}}`)
	syncAll(t, c, putUser(t, n0, "alice", "alice@example.com", rightPassword))

	var failed reply
	var lastFailure uint64
	for i := range 3 {
		failed = login(t, n0, "alice@example.com", wrongPassword)
		expect(t, fmt.Sprintf("wrong password %d on %s", i+1, n0.ID), failed, http.StatusUnauthorized, "unauthenticated")
		lastFailure = max(lastFailure, failed.index())
	}

	// Node 2 is not asked to catch up first: the state machine refuses the
	// login at apply time, by email and by user id alike.
	var locked reply
	for _, who := range []string{"alice@example.com", "alice"} {
		locked = login(t, n2, who, rightPassword)
		expect(t, "right password for "+who+" on "+n2.ID+" after 3 failures on "+n0.ID, locked, http.StatusLocked, "account_locked")
		retryAfter(t, "423 on "+n2.ID, locked, lockFor)
	}
	// A node that has the lock answers 423 to a wrong password too: no
	// hint whether the password was right.
	syncAll(t, c, lastFailure)
	r := login(t, n1, "alice", wrongPassword)
	expect(t, "wrong password on "+n1.ID+" while locked", r, http.StatusLocked, "account_locked")
	var user struct {
		LockedUntil *time.Time `json:"locked_until"`
	}
	call(t, n1, true, "GET", "/v1/users/alice", nil).decode(t, &user)
	if user.LockedUntil == nil || time.Until(*user.LockedUntil) <= 0 || time.Until(*user.LockedUntil) > lockFor {
		t.Fatalf("GET /v1/users/alice on %s: locked_until %v, want within %s from now", n1.ID, user.LockedUntil, lockFor)
	}

	// Unlocked through node 1, once node 2 has the unlock (a login right
	// after it is TestLockout_UnlockOnOneNodeLetsLoginsInAtOnceOnAnother).
	r = call(t, n1, true, "POST", "/v1/users/alice/unlock", nil)
	expect(t, "unlock on "+n1.ID, r, http.StatusOK, "")
	syncAll(t, c, r.index())
	tok := mustLogin(t, n2, "alice@example.com", rightPassword)
	if code := checkToken(t, n0, tok.AccessToken, tok.Index).Status; code != http.StatusOK {
		t.Fatalf("the session made after the unlock answers %d on %s", code, n0.ID)
	}

	// Identifiers of nobody lock the same way, and every answer looks like
	// the answer for a real account.
	for _, ghost := range []string{"ghost@example.com", "ghost"} {
		for i := range 3 {
			r := login(t, c.Nodes[i], ghost, wrongPassword)
			expect(t, fmt.Sprintf("login %d of unknown %s on %s", i+1, ghost, c.Nodes[i].ID), r, http.StatusUnauthorized, "unauthenticated")
			if !bytes.Equal(r.Body, failed.Body) {
				t.Fatalf("401 for unknown %s differs from a real account's: %s vs %s", ghost, r.Body, failed.Body)
			}
		}
		r := login(t, n2, ghost, rightPassword)
		expect(t, "unknown "+ghost+" after 3 failures", r, http.StatusLocked, "account_locked")
		retryAfter(t, "423 for unknown "+ghost, r, lockFor)
		if !bytes.Equal(r.Body, locked.Body) {
			t.Fatalf("423 for unknown %s differs from a real account's: %s vs %s", ghost, r.Body, locked.Body)
		}
	}
}

// An acknowledged unlock holds on every node at once: a login sent right after
// it to a node that has not applied it yet must not be refused from that node's
// stale view (lockout is decided at apply time,
// docs/cluster.md#the-replicated-state-machine; a write needs no min_index,
// docs/api.md#writes). The unlock goes through the leader and the login to a
// follower, the order in which the follower lags most.
func TestLockout_UnlockOnOneNodeLetsLoginsInAtOnceOnAnother(t *testing.T) {
	c := startLogins(t, nil)
	leader := c.Nodes[c.Leader()]
	follower := c.Nodes[(leader.Index+1)%3]
	putPolicy(t, c, leader, `{"lockout":{"max_failures":3,"window":"15m","duration":"15m"}}`)
	syncAll(t, c, putUser(t, leader, "alice", "alice@example.com", rightPassword))
	for round := range 5 {
		var last uint64
		for range 3 {
			r := login(t, c.Nodes[(leader.Index+2)%3], "alice@example.com", wrongPassword)
			expect(t, "wrong password", r, http.StatusUnauthorized, "unauthenticated")
			last = max(last, r.index())
		}
		syncAll(t, c, last)
		r := call(t, leader, true, "POST", "/v1/users/alice/unlock", nil)
		expect(t, "unlock on the leader "+leader.ID, r, http.StatusOK, "")
		got := login(t, follower, "alice@example.com", rightPassword)
		expect(t, fmt.Sprintf("round %d: right password on %s right after the unlock (index %d) was acknowledged by %s",
			round, follower.ID, r.index(), leader.ID), got, http.StatusCreated, "")
	}
}

// limitRound is one round of concurrent logins of a fresh user whose own
// limit is `limit`: it checks how many got in and what every node lists.
func limitRound(t *testing.T, c *Cluster, round int, user string, logins, limit int, evict bool) {
	t.Helper()
	writer := c.Nodes[round%len(c.Nodes)]
	putUser(t, writer, user, "", rightPassword)
	r := call(t, writer, true, "PUT", "/v1/users/"+user+"/limits", fmt.Sprintf(`{"max_sessions":%d}`, limit))
	expect(t, "PUT limits of "+user, r, http.StatusOK, "")

	replies := make([]reply, logins)
	errs := make([]error, logins)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range logins {
		m := c.Nodes[i%len(c.Nodes)]
		wg.Go(func() {
			<-start
			replies[i], errs[i] = send(m, false, "POST", "/v1/login", loginBody(user, rightPassword))
		})
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	close(start)
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatalf("%s: %d concurrent logins not answered within 30s", user, logins)
	}

	type winner struct {
		id    string
		index uint64
	}
	var winners []winner
	var refused []reply
	top := r.index()
	for i, r := range replies {
		if errs[i] != nil {
			t.Fatalf("%s: login %d: %v", user, i, errs[i])
		}
		top = max(top, r.index())
		switch {
		case r.Status == http.StatusCreated:
			var tok issued
			r.decode(t, &tok)
			winners = append(winners, winner{tok.SessionID, tok.Index})
			top = max(top, tok.Index)
		case r.Status == http.StatusConflict && r.errorCode() == "session_limit_exceeded" && !evict:
			refused = append(refused, r)
		default:
			t.Fatalf("%s: login %d on %s: %s", user, i, c.Nodes[i%len(c.Nodes)].ID, r)
		}
	}
	want := limit
	if evict {
		want = logins
	}
	if len(winners) != want {
		t.Fatalf("%s: %d logins answered 201, want %d (%d refused)", user, len(winners), want, len(refused))
	}
	// The sessions that stay are the last `limit` created, in log order.
	// Writes packed into one batch entry share its index and apply in an
	// order the answers do not show, so among the winners at the oldest
	// index that stays, which ones stay is up to the log: the nodes must
	// agree on it.
	slices.SortFunc(winners, func(a, b winner) int { return cmp.Compare(b.index, a.index) })
	boundary := winners[limit-1].index
	mustStay, mayStay := map[string]bool{}, map[string]bool{}
	for _, w := range winners {
		switch {
		case w.index > boundary:
			mustStay[w.id] = true
		case w.index == boundary:
			mayStay[w.id] = true
		}
	}
	var kept []string
	for _, s := range activeSessions(t, c.Nodes[0], user, top) {
		kept = append(kept, s.SessionID)
	}
	slices.Sort(kept)
	if len(kept) != limit {
		t.Fatalf("%s: %d active sessions %v, want %d", user, len(kept), kept, limit)
	}
	for _, id := range kept {
		if !mustStay[id] && !mayStay[id] {
			t.Fatalf("%s: session %s stays, but %d newer sessions got in", user, id, limit)
		}
		delete(mustStay, id)
	}
	if len(mustStay) > 0 {
		t.Fatalf("%s: sessions %v were evicted, but fewer than %d newer ones got in", user, mustStay, limit)
	}
	for _, r := range refused {
		var body struct {
			Error struct {
				Sessions []sessionView `json:"sessions"`
			} `json:"error"`
		}
		r.decode(t, &body)
		var listed []string
		for _, s := range body.Error.Sessions {
			listed = append(listed, s.SessionID)
		}
		slices.Sort(listed)
		if !slices.Equal(listed, kept) {
			t.Fatalf("%s: a 409 lists %v, want the %d sessions that got in %v", user, listed, limit, kept)
		}
	}
	for _, m := range c.Nodes {
		var active []string
		for _, s := range activeSessions(t, m, user, top) {
			active = append(active, s.SessionID)
		}
		slices.Sort(active)
		if !slices.Equal(active, kept) {
			t.Fatalf("%s: %s lists %d active sessions %v at index %d, want %v", user, m.ID, len(active), active, top, kept)
		}
	}
}

func TestSessionLimit_ConcurrentLoginsNeverOvershoot(t *testing.T) {
	const rounds, logins, limit = 20, 50, 5
	c := startLogins(t, nil)
	t.Run("deny", func(t *testing.T) {
		began := time.Now()
		for round := range rounds {
			limitRound(t, c, round, fmt.Sprintf("deny-%d", round), logins, limit, false)
		}
		t.Logf("%d rounds of %d concurrent logins in %s", rounds, logins, time.Since(began))
	})
	t.Run("evict_oldest", func(t *testing.T) {
		putPolicy(t, c, c.Nodes[1], `{"on_session_limit":"evict_oldest"}`)
		began := time.Now()
		for round := range rounds {
			limitRound(t, c, round, fmt.Sprintf("evict-%d", round), logins, limit, true)
		}
		t.Logf("%d rounds of %d concurrent logins in %s", rounds, logins, time.Since(began))
	})
}

// lastSeen is a session's last_seen_at as node m has it.
func lastSeen(t *testing.T, m *Member, id string) time.Time {
	t.Helper()
	r := call(t, m, true, "GET", "/v1/sessions/"+id, nil)
	expect(t, "GET /v1/sessions/"+id+" on "+m.ID, r, http.StatusOK, "")
	var s sessionView
	r.decode(t, &s)
	return s.LastSeenAt
}

// introspectStatus asks m about a token (an admin look, not a use).
func introspectStatus(t *testing.T, m *Member, token string) string {
	t.Helper()
	r := call(t, m, true, "POST", "/v1/introspect", map[string]string{"token": token})
	expect(t, "introspect on "+m.ID, r, http.StatusOK, "")
	var out struct {
		Status string `json:"status"`
	}
	r.decode(t, &out)
	return out.Status
}

func TestIdleTimeout_UseOnOneNodeKeepsSessionAliveOnAnother(t *testing.T) {
	const idle = time.Minute // the least the policy allows
	const step = 20 * time.Second
	// One node clock shared by every node; the test moves it forward. Raft,
	// gossip and the touch ticker keep real time.
	clock := testkit.NewClock(time.Now().UTC().Truncate(time.Second))
	c := startLogins(t, clock)
	a, b, other := c.Nodes[0], c.Nodes[1], c.Nodes[2]
	putPolicy(t, c, a, `{"idle_timeout":"1m"}`)
	putUser(t, a, "idler", "", rightPassword)
	tok := mustLogin(t, b, "idler", rightPassword)
	syncAll(t, c, tok.Index)

	// Used on A only, every 20s of node time for over three idle timeouts.
	began := clock.Now()
	for clock.Now().Sub(began) < 3*idle+step {
		use := clock.Advance(step)
		if r := checkToken(t, a, tok.AccessToken, 0); r.Status != http.StatusOK {
			t.Fatalf("use at +%s on %s: %s", use.Sub(began), a.ID, r)
		}
		c.WaitFor(10*time.Second, fmt.Sprintf("%s to see the use at +%s", b.ID, use.Sub(began)), func() bool {
			return !lastSeen(t, b, tok.SessionID).Before(use)
		})
		for _, m := range []*Member{b, other} {
			if st := introspectStatus(t, m, tok.AccessToken); st != "active" {
				t.Fatalf("after the use at +%s on %s, %s says %q", use.Sub(began), a.ID, m.ID, st)
			}
		}
	}
	// B and C never saw the token used and its session is far older than
	// the idle timeout, yet they vouch for it.
	var lastUse time.Time
	for _, m := range []*Member{b, other} {
		lastUse = clock.Now()
		if r := checkToken(t, m, tok.AccessToken, 0); r.Status != http.StatusOK {
			t.Fatalf("+%s on %s (used on %s only): %s", lastUse.Sub(began), m.ID, a.ID, r)
		}
	}
	c.WaitFor(10*time.Second, a.ID+" to see the last uses", func() bool {
		return !lastSeen(t, a, tok.SessionID).Before(lastUse)
	})

	// Unused from now on: still active just before the idle timeout...
	clock.Advance(idle - idle/10)
	for _, m := range c.Nodes {
		if st := introspectStatus(t, m, tok.AccessToken); st != "active" {
			t.Fatalf("%s after the last use: %s says %q, want active", idle-idle/10, m.ID, st)
		}
	}
	// ...and refused everywhere once idle_timeout + idle_timeout/10 has passed.
	clock.Advance(idle/10 + idle/10 + time.Second)
	for _, m := range c.Nodes {
		if r := checkToken(t, m, tok.AccessToken, 0); r.Status != http.StatusUnauthorized {
			t.Fatalf("%s after the last use: %s validates the access token: %s", clock.Now().Sub(lastUse), m.ID, r)
		}
		if st := introspectStatus(t, m, tok.AccessToken); st != "expired" {
			t.Fatalf("%s after the last use: %s says %q, want expired", clock.Now().Sub(lastUse), m.ID, st)
		}
	}
	for _, m := range c.Nodes {
		r := call(t, m, false, "POST", "/v1/refresh", map[string]string{"refresh_token": tok.RefreshToken})
		expect(t, "refresh of an idle session on "+m.ID, r, http.StatusUnauthorized, "unauthenticated")
	}
}

func TestPasswordChange_RevokesSessionsClusterWide(t *testing.T) {
	const second, third = "a second password", "a third password"
	c := startLogins(t, nil)
	n0, n1, n2 := c.Nodes[0], c.Nodes[1], c.Nodes[2]
	putUser(t, n0, "carol", "carol@example.com", rightPassword)
	old := []issued{mustLogin(t, n0, "carol", rightPassword), mustLogin(t, n1, "carol@example.com", rightPassword)}

	r := call(t, n2, true, "PUT", "/v1/users/carol/password", map[string]string{"password": second, "reason": "change"})
	expect(t, "password change on "+n2.ID, r, http.StatusOK, "")
	var change struct {
		Revoked int `json:"revoked"`
	}
	r.decode(t, &change)
	if change.Revoked != 2 {
		t.Fatalf("password change revoked %d sessions, want 2", change.Revoked)
	}
	at := r.index()
	for _, m := range c.Nodes {
		for _, tok := range old {
			if r := checkToken(t, m, tok.AccessToken, at); r.Status != http.StatusUnauthorized {
				t.Fatalf("%s: session %s after the password change: %s", m.ID, tok.SessionID, r)
			}
			var s sessionView
			call(t, m, true, "GET", "/v1/sessions/"+tok.SessionID, nil).decode(t, &s)
			if s.Status != "revoked" || s.RevokeReason != "password_change" {
				t.Fatalf("%s: session %s is %q (%q), want revoked (password_change)", m.ID, tok.SessionID, s.Status, s.RevokeReason)
			}
		}
	}
	expect(t, "login with the old password", login(t, n0, "carol", rightPassword), http.StatusUnauthorized, "unauthenticated")

	putPolicy(t, c, n1, `{"force_logout_on_password_change":false}`)
	kept := []issued{mustLogin(t, n0, "carol", second), mustLogin(t, n1, "carol@example.com", second)}
	r = call(t, n2, true, "PUT", "/v1/users/carol/password", map[string]string{"password": third, "reason": "change"})
	expect(t, "password change without force logout", r, http.StatusOK, "")
	r.decode(t, &change)
	if change.Revoked != 0 {
		t.Fatalf("password change with force_logout_on_password_change false revoked %d sessions", change.Revoked)
	}
	at = r.index()
	for _, m := range c.Nodes {
		for _, tok := range kept {
			if r := checkToken(t, m, tok.AccessToken, at); r.Status != http.StatusOK {
				t.Fatalf("%s: session %s after a password change without force logout: %s", m.ID, tok.SessionID, r)
			}
		}
	}
	mustLogin(t, n2, "carol", third)
}

func TestLogin_UserCreatedOnAnotherNodeLogsInAtOnce(t *testing.T) {
	c := startLogins(t, nil)
	lagged := 0
	// Every ordered pair of nodes, by user id and by email.
	for round := range 12 {
		writer := c.Nodes[round%3]
		reader := c.Nodes[(round%3+1+round/3%2)%3]
		user := fmt.Sprintf("fresh%d", round)
		who := user
		if round >= 6 {
			who = user + "@example.com"
		}
		index := putUser(t, writer, user, user+"@example.com", rightPassword)
		if reader.Node.AppliedIndex() < index {
			lagged++
		}
		r := login(t, reader, who, rightPassword)
		expect(t, fmt.Sprintf("login of %s on %s right after PUT on %s", who, reader.ID, writer.ID), r, http.StatusCreated, "")
	}
	t.Logf("the login's node had not applied the new user yet in %d of 12 rounds", lagged)
}
