package clustertest

import (
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Two regions of three voters each: eu holds nodes 0–2, us nodes 3–5.
func startRegions(t *testing.T) *Cluster {
	t.Helper()
	return Start(t, Options{Size: 6, Regions: []string{"eu", "us"}, MaxStale: 2 * time.Second})
}

// regionIndex is the group-qualified index of a session's creation: the
// region its id is tagged with, and the index the answer's body gave.
func regionIndex(tok tokens) string {
	region := tok.SessionID[strings.LastIndexByte(tok.SessionID, '.')+1:]
	return region + ":" + strconv.FormatUint(tok.Index, 10)
}

// A user's first write homes the user in the region of the node that took
// it; the session's id and tokens carry that region, every node of either
// region validates it from memory, and writes by token from the other
// region reach the home group.
func TestRegions_FirstWriteHomesTheUserAndEveryNodeValidates(t *testing.T) {
	c := startRegions(t)
	eu, us := c.Nodes[0], c.Nodes[4]

	alice, code := create(t, eu, "alice")
	if code != http.StatusCreated {
		t.Fatalf("create alice through eu: %d", code)
	}
	bob, code := create(t, us, "bob")
	if code != http.StatusCreated {
		t.Fatalf("create bob through us: %d", code)
	}
	if !strings.HasSuffix(alice.AccessToken, ".eu") || !strings.HasSuffix(alice.SessionID, ".eu") {
		t.Errorf("alice's session %q / token …%q is not tagged eu", alice.SessionID, alice.AccessToken[len(alice.AccessToken)-4:])
	}
	if !strings.HasSuffix(bob.RefreshToken, ".us") || !strings.HasSuffix(bob.SessionID, ".us") {
		t.Errorf("bob's session %q is not tagged us", bob.SessionID)
	}
	// A later session of alice made in us still lives in eu, her home.
	again, code := create(t, us, "alice")
	if code != http.StatusCreated || !strings.HasSuffix(again.SessionID, ".eu") {
		t.Fatalf("alice's second session through us: %d, id %q; want 201 and her home eu", code, again.SessionID)
	}

	for _, m := range c.Nodes {
		for _, tok := range []tokens{alice, bob, again} {
			if got := validate(t, m, tok.AccessToken, "?wait=5s&min_index="+regionIndex(tok)); got != http.StatusOK {
				t.Errorf("%s: validate %s: %d, want 200", m.ID, tok.SessionID, got)
			}
		}
	}

	r := call(t, c.Nodes[1], true, "GET", "/v1/users/alice/sessions?wait=5s&min_index="+regionIndex(again), nil)
	expect(t, "alice's sessions", r, http.StatusOK, "")
	var list struct {
		Sessions []struct {
			SessionID string `json:"session_id"`
		} `json:"sessions"`
	}
	r.decode(t, &list)
	if len(list.Sessions) != 2 {
		t.Errorf("alice has %d sessions listed on eu, want 2: %s", len(list.Sessions), r.Body)
	}

	// The event stream of another region's group, from an eu node.
	r = call(t, c.Nodes[1], true, "GET", "/v1/events?group=us&follow=false", nil)
	expect(t, "us's events on an eu node", r, http.StatusOK, "")
	if body := string(r.Body); !strings.Contains(body, `"group":"us"`) || !strings.Contains(body, bob.SessionID) || strings.Contains(body, alice.SessionID) {
		t.Errorf("us's event stream on node1 lacks bob's session or holds alice's:\n%s", body)
	}
	r = call(t, c.Nodes[1], true, "GET", "/v1/events?group=mars&follow=false", nil)
	expect(t, "the events of a group the cluster does not have", r, http.StatusBadRequest, "bad_request")

	// Refresh and logout by token through the region that is not the home.
	r = call(t, c.Nodes[5], false, "POST", "/v1/refresh", `{"refresh_token":"`+alice.RefreshToken+`"}`)
	expect(t, "refresh alice's token through us", r, http.StatusOK, "")
	if ix := r.Header.Get("X-Sessiond-Index"); !strings.HasPrefix(ix, "eu:") {
		t.Errorf("X-Sessiond-Index of a refresh of an eu session = %q, want eu:…", ix)
	}
	r = call(t, c.Nodes[2], false, "DELETE", "/v1/session", nil, "Authorization", "Bearer "+bob.AccessToken)
	expect(t, "log bob out through eu", r, http.StatusNoContent, "")
	for _, m := range c.Nodes {
		if got := validate(t, m, bob.AccessToken, "?wait=5s&min_index="+r.Header.Get("X-Sessiond-Index")); got != http.StatusUnauthorized {
			t.Errorf("%s: bob's token after logout: %d, want 401", m.ID, got)
		}
	}
	c.WaitConverged(20 * time.Second)
}

// PUT /v1/users with a region homes the user there, GET shows it, and a
// login anywhere makes the session in that region. Emails stay unique
// across regions.
func TestRegions_UserRegionLoginAndUniqueEmails(t *testing.T) {
	c := startRegions(t)
	r := call(t, c.Nodes[0], true, "PUT", "/v1/users/carol", `{"email":"carol@example.com","password":"correct horse battery","region":"us"}`)
	expect(t, "create carol homed in us through eu", r, http.StatusOK, "")
	// Her first write homed her (global) and wrote her credentials (us):
	// the index names both, so a read anywhere can wait for both.
	index := r.Header.Get("X-Sessiond-Index")
	if !strings.HasPrefix(index, "global:") || !strings.Contains(index, ",us:") {
		t.Errorf("X-Sessiond-Index of carol's creation = %q, want global:…,us:…", index)
	}
	r = call(t, c.Nodes[2], true, "GET", "/v1/users/carol?wait=5s&min_index="+index, nil)
	expect(t, "get carol", r, http.StatusOK, "")
	var user struct {
		Region string `json:"region"`
		Email  string `json:"email"`
	}
	r.decode(t, &user)
	if user.Region != "us" || user.Email != "carol@example.com" {
		t.Errorf("carol = %s, want region us and her email", r.Body)
	}

	r = call(t, c.Nodes[1], false, "POST", "/v1/login", `{"email":"Carol@Example.com","password":"correct horse battery"}`)
	expect(t, "carol logs in through eu", r, http.StatusCreated, "")
	var tok tokens
	r.decode(t, &tok)
	if !strings.HasSuffix(tok.SessionID, ".us") {
		t.Errorf("carol's session %q is not in her home us", tok.SessionID)
	}
	r = call(t, c.Nodes[3], false, "POST", "/v1/login", `{"email":"carol@example.com","password":"wrong password here"}`)
	expect(t, "carol with a wrong password", r, http.StatusUnauthorized, "unauthenticated")

	r = call(t, c.Nodes[4], true, "PUT", "/v1/users/dave", `{"email":"carol@example.com","password":"correct horse battery"}`)
	expect(t, "dave takes carol's email through us", r, http.StatusConflict, "conflict")
	r = call(t, c.Nodes[0], true, "PUT", "/v1/users/erin", `{"password":"correct horse battery","region":"mars"}`)
	expect(t, "a region the cluster does not have", r, http.StatusBadRequest, "bad_request")

	// Deleting carol gives her email back.
	r = call(t, c.Nodes[5], true, "DELETE", "/v1/users/carol", nil)
	expect(t, "delete carol", r, http.StatusOK, "")
	r = call(t, c.Nodes[0], true, "PUT", "/v1/users/dave", `{"email":"carol@example.com","password":"correct horse battery"}`)
	expect(t, "dave takes the freed email", r, http.StatusOK, "")
	c.WaitConverged(20 * time.Second)
}

// A policy set through any node is in force in every region.
func TestRegions_PolicyReachesEveryRegion(t *testing.T) {
	c := startRegions(t)
	r := call(t, c.Nodes[4], true, "PUT", "/v1/policy", `{"access_ttl":"7m"}`)
	expect(t, "set the policy through us", r, http.StatusOK, "")
	if ix := r.Header.Get("X-Sessiond-Index"); !strings.HasPrefix(ix, "global:") {
		t.Errorf("X-Sessiond-Index of a policy change = %q, want global:…", ix)
	}
	for _, m := range []*Member{c.Nodes[0], c.Nodes[5]} {
		tok, code := create(t, m, "user-"+m.ID)
		if code != http.StatusCreated {
			t.Fatalf("create through %s: %d", m.ID, code)
		}
		r := call(t, m, true, "GET", "/v1/sessions/"+tok.SessionID, nil)
		var s struct {
			AccessExpiresAt time.Time `json:"access_expires_at"`
			CreatedAt       time.Time `json:"created_at"`
		}
		r.decode(t, &s)
		if got := s.AccessExpiresAt.Sub(s.CreatedAt); got != 7*time.Minute {
			t.Errorf("session made through %s: access lifetime %v, want the policy's 7m", m.ID, got)
		}
	}
}

// The cluster's status lists every group, its leader, voters and replicas.
func TestRegions_ClusterStatusListsTheGroups(t *testing.T) {
	c := startRegions(t)
	r := call(t, c.Nodes[3], true, "GET", "/v1/cluster", nil)
	expect(t, "cluster status", r, http.StatusOK, "")
	var st struct {
		Region string `json:"region"`
		Groups []struct {
			Name     string   `json:"name"`
			Voters   []string `json:"voters"`
			Replicas []string `json:"replicas"`
			Leader   struct {
				ID string `json:"id"`
			} `json:"leader"`
		} `json:"groups"`
	}
	r.decode(t, &st)
	if st.Region != "us" || len(st.Groups) != 3 {
		t.Fatalf("status of node3 = %s, want region us and three groups", r.Body)
	}
	want := map[string][]string{
		"eu":     {"node0", "node1", "node2"},
		"us":     {"node3", "node4", "node5"},
		"global": {"node0", "node1", "node2", "node3", "node4"},
	}
	for _, g := range st.Groups {
		if strings.Join(g.Voters, ",") != strings.Join(want[g.Name], ",") {
			t.Errorf("group %s voters %v, want %v", g.Name, g.Voters, want[g.Name])
		}
		if len(g.Voters)+len(g.Replicas) != 6 || g.Leader.ID == "" {
			t.Errorf("group %s: voters %v replicas %v leader %q; want all six nodes and a leader", g.Name, g.Voters, g.Replicas, g.Leader.ID)
		}
	}
}

// Cutting every link between the regions stops only what needs the other
// side: eu (holding the global group's majority) keeps creating,
// refreshing, revoking and validating its users' sessions, new users
// included, with no error; us keeps serving its users already homed, but
// cannot home new ones; each side stops vouching for the other's sessions
// once max-stale has passed, with 503 and never a 200 after it; after the
// heal every group agrees on every node.
func TestRegions_LosingARegionStopsOnlyItsOwnUsers(t *testing.T) {
	c := startRegions(t)
	euNodes, usNodes := c.Nodes[:3], c.Nodes[3:]
	alice, code := create(t, euNodes[0], "alice")
	if code != http.StatusCreated {
		t.Fatalf("create alice: %d", code)
	}
	bob, code := create(t, usNodes[0], "bob")
	if code != http.StatusCreated {
		t.Fatalf("create bob: %d", code)
	}
	// Sessions whose refresh tokens are used during the cut.
	aliceRefreshed, _ := create(t, euNodes[1], "alice")
	bobRefreshed, _ := create(t, usNodes[1], "bob")
	for _, m := range c.Nodes {
		for _, tok := range []tokens{alice, bob, aliceRefreshed, bobRefreshed} {
			if got := validate(t, m, tok.AccessToken, "?wait=5s&min_index="+regionIndex(tok)); got != http.StatusOK {
				t.Fatalf("%s: validate %s before the cut: %d", m.ID, tok.SessionID, got)
			}
		}
	}

	for i := range euNodes {
		for j := range usNodes {
			c.Partition(euNodes[i].Index, usNodes[j].Index)
		}
	}
	cut := time.Now()

	// Each side keeps serving its own users for the whole time the other's
	// sessions take to stop validating there.
	refresh := map[string]string{"eu": aliceRefreshed.RefreshToken, "us": bobRefreshed.RefreshToken}
	deadline := cut.Add(c.opts.MaxStale + 3*time.Second)
	for round := 0; time.Now().Before(deadline); round++ {
		for region, nodes := range map[string][]*Member{"eu": euNodes, "us": usNodes} {
			m := nodes[round%3]
			user := map[string]string{"eu": "alice", "us": "bob"}[region]
			tok, code := create(t, m, user)
			if code != http.StatusCreated {
				t.Fatalf("round %d: create %s through %s after %v of the cut: %d", round, user, m.ID, time.Since(cut), code)
			}
			if got := validate(t, nodes[(round+1)%3], tok.AccessToken, "?wait=5s&min_index="+regionIndex(tok)); got != http.StatusOK {
				t.Fatalf("round %d: validate %s's new session in %s: %d", round, user, region, got)
			}
			r := call(t, nodes[(round+2)%3], false, "POST", "/v1/refresh", `{"refresh_token":"`+refresh[region]+`"}`)
			expect(t, "refresh "+user+" in "+region, r, http.StatusOK, "")
			var next tokens
			r.decode(t, &next)
			refresh[region] = next.RefreshToken
			r = call(t, m, true, "DELETE", "/v1/sessions/"+tok.SessionID, nil)
			expect(t, "revoke "+user+"'s new session in "+region, r, http.StatusNoContent, "")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if _, code := create(t, euNodes[1], "carol"); code != http.StatusCreated {
		t.Errorf("a new user's first write in eu, which holds the global majority: %d, want 201", code)
	}
	if _, code := create(t, usNodes[1], "dave"); code != http.StatusServiceUnavailable {
		t.Errorf("a new user's first write in us, cut off from the global majority: %d, want 503", code)
	}

	// By now max-stale has passed: the other region's sessions answer 503
	// on each side, and keep doing so. (Each 503 waits for a leader's
	// confirmation that cannot come: the nodes are asked at once.)
	var wg sync.WaitGroup
	for _, m := range c.Nodes {
		other := bob
		if c.RegionOf(m.Index) == "us" {
			other = alice
		}
		wg.Go(func() {
			for attempt := range 3 {
				if got := validate(t, m, other.AccessToken, ""); got != http.StatusServiceUnavailable {
					t.Errorf("%s: the other region's session %s, attempt %d, %v after the cut: %d, want 503", m.ID, other.SessionID, attempt, time.Since(cut), got)
				}
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}

	c.Heal()
	c.WaitFor(30*time.Second, "every group led and fresh everywhere after the heal", c.groupsSettled)
	c.WaitConverged(30 * time.Second)
	for _, m := range c.Nodes {
		if got := validate(t, m, bob.AccessToken, ""); got != http.StatusOK {
			t.Errorf("%s: bob's session after the heal: %d, want 200", m.ID, got)
		}
	}
}

// Moving a home keeps every session: tokens minted in the old home go on
// validating, refreshing and revoking through any node, new ones carry the
// new home, the user's lists and limits follow it, and a move back works
// the same way. Every group agrees afterwards.
func TestRegions_MovingAHomeKeepsItsSessions(t *testing.T) {
	c := startRegions(t)
	r := call(t, c.Nodes[0], true, "PUT", "/v1/users/carol", `{"email":"carol@example.com","password":"correct horse battery","region":"eu"}`)
	expect(t, "create carol in eu", r, http.StatusOK, "")
	r = call(t, c.Nodes[1], false, "POST", "/v1/login", `{"email":"carol@example.com","password":"correct horse battery"}`)
	expect(t, "carol logs in", r, http.StatusCreated, "")
	var first tokens
	r.decode(t, &first)
	second, code := create(t, c.Nodes[2], "carol")
	if code != http.StatusCreated || !strings.HasSuffix(second.SessionID, ".eu") {
		t.Fatalf("carol's second session: %d %s", code, second.SessionID)
	}

	r = call(t, c.Nodes[4], true, "PUT", "/v1/users/carol", `{"region":"us"}`)
	expect(t, "move carol to us", r, http.StatusOK, "")
	moved := r.Header.Get("X-Sessiond-Index")
	if !strings.Contains(moved, "global:") || !strings.Contains(moved, "us:") {
		t.Errorf("X-Sessiond-Index of the move = %q, want global:…,us:…", moved)
	}
	r = call(t, c.Nodes[2], true, "GET", "/v1/users/carol?wait=5s&min_index="+moved, nil)
	var user struct {
		Region string `json:"region"`
	}
	r.decode(t, &user)
	if user.Region != "us" {
		t.Fatalf("carol's region after the move: %s", r.Body)
	}
	// The eu tokens minted before the move validate on every node.
	for _, m := range c.Nodes {
		for _, tok := range []tokens{first, second} {
			if got := validate(t, m, tok.AccessToken, "?wait=5s&min_index="+moved); got != http.StatusOK {
				t.Errorf("%s: carol's eu session %s after the move: %d, want 200", m.ID, tok.SessionID, got)
			}
		}
	}
	// A refresh of an eu token, through an eu node, is written in us.
	r = call(t, c.Nodes[0], false, "POST", "/v1/refresh", `{"refresh_token":"`+first.RefreshToken+`"}`)
	expect(t, "refresh carol's eu session after the move", r, http.StatusOK, "")
	var refreshed tokens
	r.decode(t, &refreshed)
	if !strings.HasSuffix(refreshed.AccessToken, ".us") || !strings.HasPrefix(r.Header.Get("X-Sessiond-Index"), "us:") {
		t.Errorf("the refreshed pair ends %q at %s, want us", refreshed.AccessToken[len(refreshed.AccessToken)-4:], r.Header.Get("X-Sessiond-Index"))
	}
	// Revoking the other one by its eu id.
	r = call(t, c.Nodes[3], true, "DELETE", "/v1/sessions/"+second.SessionID, nil)
	expect(t, "revoke carol's second eu session by id", r, http.StatusNoContent, "")
	revoked := r.Header.Get("X-Sessiond-Index")
	for _, m := range c.Nodes {
		if got := validate(t, m, second.AccessToken, "?wait=5s&min_index="+revoked); got != http.StatusUnauthorized {
			t.Errorf("%s: the revoked eu session after the move: %d, want 401", m.ID, got)
		}
		if got := validate(t, m, first.AccessToken, "?wait=5s&min_index="+revoked); got != http.StatusUnauthorized {
			t.Errorf("%s: the rotated eu access token: %d, want 401", m.ID, got)
		}
		if got := validate(t, m, refreshed.AccessToken, "?wait=5s&min_index="+revoked); got != http.StatusOK {
			t.Errorf("%s: the refreshed session: %d, want 200", m.ID, got)
		}
	}
	r = call(t, c.Nodes[1], false, "POST", "/v1/login", `{"email":"carol@example.com","password":"correct horse battery"}`)
	expect(t, "carol logs in after the move", r, http.StatusCreated, "")
	var third tokens
	r.decode(t, &third)
	if !strings.HasSuffix(third.SessionID, ".us") {
		t.Errorf("a login after the move made %s, want a us session", third.SessionID)
	}
	r = call(t, c.Nodes[0], true, "GET", "/v1/users/carol/sessions?wait=5s&min_index="+r.Header.Get("X-Sessiond-Index"), nil)
	var list struct {
		Sessions []struct {
			SessionID string `json:"session_id"`
		} `json:"sessions"`
	}
	r.decode(t, &list)
	if len(list.Sessions) != 2 {
		t.Errorf("carol's active sessions after the move: %s, want the refreshed one and the new login", r.Body)
	}

	// And back to eu.
	r = call(t, c.Nodes[5], true, "PUT", "/v1/users/carol", `{"region":"eu"}`)
	expect(t, "move carol back to eu", r, http.StatusOK, "")
	back := r.Header.Get("X-Sessiond-Index")
	for _, m := range c.Nodes {
		for _, tok := range []tokens{refreshed, third} {
			if got := validate(t, m, tok.AccessToken, "?wait=5s&min_index="+back); got != http.StatusOK {
				t.Errorf("%s: carol's us session %s after the move back: %d, want 200", m.ID, tok.SessionID, got)
			}
		}
	}
	r = call(t, c.Nodes[2], true, "DELETE", "/v1/users/carol/sessions", nil)
	expect(t, "force carol out", r, http.StatusOK, "")
	out := r.Header.Get("X-Sessiond-Index")
	for _, m := range c.Nodes {
		for _, tok := range []tokens{refreshed, third} {
			if got := validate(t, m, tok.AccessToken, "?wait=5s&min_index="+out); got != http.StatusUnauthorized {
				t.Errorf("%s: carol's session %s after the force logout: %d, want 401", m.ID, tok.SessionID, got)
			}
		}
	}
	c.WaitConverged(20 * time.Second)
}

// A leader-confirmed validation of a moved user's old token confirms with
// the group that holds the session now, not only the one its tag names: a
// force logout acknowledged in the new home is seen at once, even on a node
// whose copy of that home lags behind.
func TestRegions_LeaderReadOfAMovedSessionSeesItsNewHome(t *testing.T) {
	c := startRegions(t)
	tok, code := create(t, c.Nodes[3], "carol")
	if code != http.StatusCreated || !strings.HasSuffix(tok.SessionID, ".us") {
		t.Fatalf("carol's session in us: %d %s", code, tok.SessionID)
	}
	r := call(t, c.Nodes[0], true, "PUT", "/v1/users/carol", `{"region":"eu"}`)
	expect(t, "move carol to eu", r, http.StatusOK, "")
	moved := r.Header.Get("X-Sessiond-Index")
	far := c.Nodes[5]
	if got := validate(t, far, tok.AccessToken, "?wait=5s&min_index="+moved); got != http.StatusOK {
		t.Fatalf("carol's us token on %s after the move: %d", far.ID, got)
	}
	// far's copy of eu now lags: what eu's nodes send it arrives late.
	for i := range 3 {
		c.SetDelay(i, far.Index, 400*time.Millisecond)
	}
	r = call(t, c.Nodes[1], true, "DELETE", "/v1/users/carol/sessions", nil)
	expect(t, "force carol out through eu", r, http.StatusOK, "")
	if got := validate(t, far, tok.AccessToken, "?consistency=leader"); got != http.StatusUnauthorized {
		t.Errorf("a leader-confirmed validation on %s right after the force logout: %d, want 401", far.ID, got)
	}
	for i := range 3 {
		c.SetDelay(i, far.Index, 0)
	}
}
