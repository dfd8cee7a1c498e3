package clustertest

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/sessiond/sessiond/httpapi"
	"github.com/sessiond/sessiond/httpapi/cookies"
	"github.com/sessiond/sessiond/node"
	"github.com/sessiond/sessiond/node/password"
)

// A user's own sessions across a cluster: a session ended through
// DELETE /v1/me/sessions/{id} (or "sign out everywhere else") on one node is
// refused by every node as soon as that node has applied the index the call
// answered, and the cookie that made the call works on every node.

const mePassword = "correct horse battery staple"

type meToken struct {
	SessionID   string `json:"session_id"`
	AccessToken string `json:"access_token"`
	Index       uint64 `json:"index"`
}

type meList struct {
	Sessions []struct {
		SessionID  string `json:"session_id"`
		Current    bool   `json:"current"`
		DeviceName string `json:"device_name"`
	} `json:"sessions"`
}

func TestMe_EndedSessionIsRefusedOnEveryNodeAtTheAnsweredIndex(t *testing.T) {
	keys, err := cookies.NewKeys([]byte("clustertest-cookie-key-0123456789abcdef"))
	if err != nil {
		t.Fatal(err)
	}
	c := Start(t, Options{
		Size:  3,
		Tweak: func(i int, cfg *node.Config) { cfg.Passwords = password.NewHasher(cheapPasswords, 0) },
		TweakAPI: func(i int, cfg *httpapi.Config) {
			cfg.CookieKeys = keys
			cfg.CookieDevMode = true
		},
	})
	leader := c.Leader()
	followerA, followerB := c.Nodes[(leader+1)%3], c.Nodes[(leader+2)%3]

	expect(t, "create alice", call(t, followerA, true, "PUT", "/v1/users/alice", map[string]string{"password": mePassword}), http.StatusOK, "")

	// A browser signs in with cookies on one follower; two other devices
	// sign in through the other nodes.
	r := call(t, followerA, false, "POST", "/v1/login?cookie=true", map[string]string{"user_id": "alice", "password": mePassword})
	expect(t, "cookie login", r, http.StatusCreated, "")
	var browser meToken
	r.decode(t, &browser)
	sessionCookie, _ := cookies.Names(true)
	var cookieHeader string
	for _, ck := range (&http.Response{Header: r.Header}).Cookies() {
		if ck.Name == sessionCookie {
			cookieHeader = ck.Name + "=" + ck.Value
		}
	}
	if cookieHeader == "" {
		t.Fatalf("cookie login set no session cookie: %v", r.Header.Values("Set-Cookie"))
	}
	login := func(m *Member, ua string) meToken {
		t.Helper()
		r := call(t, m, false, "POST", "/v1/login", map[string]any{"user_id": "alice", "password": mePassword,
			"device": map[string]string{"user_agent": ua}})
		expect(t, "login on "+m.ID, r, http.StatusCreated, "")
		var tok meToken
		r.decode(t, &tok)
		return tok
	}
	phone := login(followerB, "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1")
	laptop := login(c.Nodes[leader], "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0")

	// Every node lists the three with the browser's marked (the cookie is
	// valid cluster-wide: one key file).
	for _, m := range c.Running() {
		r := call(t, m, false, "GET", fmt.Sprintf("/v1/me/sessions?min_index=%d&wait=10s", laptop.Index), nil, "Cookie", cookieHeader)
		expect(t, "list on "+m.ID, r, http.StatusOK, "")
		var l meList
		r.decode(t, &l)
		if len(l.Sessions) != 3 || l.Sessions[2].SessionID != browser.SessionID || !l.Sessions[2].Current || l.Sessions[0].Current || l.Sessions[1].Current {
			t.Fatalf("list on %s: %+v", m.ID, l)
		}
	}

	// The browser ends the phone's session through the other follower.
	r = call(t, followerB, false, "DELETE", "/v1/me/sessions/"+phone.SessionID, nil, "Cookie", cookieHeader, "X-Requested-With", "sessiond")
	expect(t, "end the phone's session", r, http.StatusNoContent, "")
	index := r.index()
	if index <= laptop.Index {
		t.Fatalf("the revocation answered index %d, want one after %d", index, laptop.Index)
	}
	for _, m := range c.Running() {
		at := fmt.Sprintf("min_index=%d&wait=10s", index)
		expect(t, "the phone's token on "+m.ID, call(t, m, false, "GET", "/v1/session?"+at, nil, "Authorization", "Bearer "+phone.AccessToken), http.StatusUnauthorized, "unauthenticated")
		expect(t, "the phone listing on "+m.ID, call(t, m, false, "GET", "/v1/me/sessions?"+at, nil, "Authorization", "Bearer "+phone.AccessToken), http.StatusUnauthorized, "unauthenticated")
		expect(t, "the phone ending a session on "+m.ID, call(t, m, false, "DELETE", "/v1/me/sessions/"+laptop.SessionID, nil, "Authorization", "Bearer "+phone.AccessToken), http.StatusUnauthorized, "unauthenticated")
		r := call(t, m, false, "GET", "/v1/me/sessions?"+at, nil, "Cookie", cookieHeader)
		expect(t, "the browser's list on "+m.ID, r, http.StatusOK, "")
		var l meList
		r.decode(t, &l)
		if len(l.Sessions) != 2 || l.Sessions[0].SessionID != laptop.SessionID || l.Sessions[1].SessionID != browser.SessionID {
			t.Errorf("list on %s after ending the phone: %+v", m.ID, l)
		}
	}

	// "Sign out everywhere else" through the leader.
	r = call(t, c.Nodes[leader], false, "DELETE", "/v1/me/sessions", nil, "Cookie", cookieHeader, "X-Requested-With", "sessiond")
	expect(t, "sign out everywhere else", r, http.StatusOK, "")
	var revoked struct {
		Revoked int    `json:"revoked"`
		Index   uint64 `json:"index"`
	}
	r.decode(t, &revoked)
	if revoked.Revoked != 1 || revoked.Index != r.index() {
		t.Fatalf("sign out everywhere else answered %s (X-Sessiond-Index %d), want 1 revoked", r, r.index())
	}
	for _, m := range c.Running() {
		at := fmt.Sprintf("min_index=%d&wait=10s", revoked.Index)
		expect(t, "the laptop's token on "+m.ID, call(t, m, false, "GET", "/v1/session?"+at, nil, "Authorization", "Bearer "+laptop.AccessToken), http.StatusUnauthorized, "unauthenticated")
		expect(t, "the browser's session on "+m.ID, call(t, m, false, "GET", "/v1/session?"+at, nil, "Cookie", cookieHeader), http.StatusOK, "")
	}
	c.WaitConverged(10 * time.Second)
}
