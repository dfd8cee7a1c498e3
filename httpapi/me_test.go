package httpapi_test

// A user's own sessions (docs/api.md#endpoints, /v1/me/*) and the self-service
// page /account/sessions: listing with the current session marked, ending one,
// signing out everywhere else, other users' sessions answering as unknown ones,
// CSRF protection for cookie callers, and the page's headers.

import (
	"bytes"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sessiond/sessiond/httpapi"
	"github.com/sessiond/sessiond/transport/testkit"
)

// User agents of the devices in these tests, with the names the API gives
// them.
const (
	firefoxLinux = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
	safariIPhone = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1"
	edgeWindows  = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36 Edg/124.0.0.0"
	safariMac    = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15"
)

// mySession is an item of GET /v1/me/sessions.
type mySession struct {
	sessionInfo
	DeviceName string `json:"device_name"`
	Current    bool   `json:"current"`
}

type mySessionList struct {
	Sessions []mySession `json:"sessions"`
}

// startMe starts a node with dev-mode cookies and users alice and bob.
func startMe(t *testing.T, setup serverSetup) *testAPI {
	t.Helper()
	if setup.API == nil {
		setup.API = withCookies(t, true)
	}
	a := startServer(t, setup)
	a.putUser(t, "alice", aliceEmail, alicePassword)
	a.putUser(t, "bob", "bob@example.com", alicePassword)
	return a
}

// loginFrom logs a user in from a device with the given user agent.
func (a *testAPI) loginFrom(t testing.TB, user, userAgent string) tokenResponse {
	t.Helper()
	return a.loginOK(t, "login of "+user, map[string]any{
		"user_id": user, "password": alicePassword,
		"device": map[string]string{"user_agent": userAgent, "ip": "198.51.100.7"},
	})
}

func bearer(tok tokenResponse) []string {
	return []string{"Authorization", "Bearer " + tok.AccessToken}
}

// mine lists the caller's sessions and checks the 200.
func (a *testAPI) mine(t testing.TB, what string, hdrs ...string) mySessionList {
	t.Helper()
	r := a.do(t, http.MethodGet, "/v1/me/sessions", nil, hdrs...)
	expectStatus(t, what, r, http.StatusOK)
	if cc := r.Header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("%s: Cache-Control %q, want no-store", what, cc)
	}
	return decode[mySessionList](t, r)
}

// ids are the listed session ids in order.
func (l mySessionList) ids() []string {
	var out []string
	for _, s := range l.Sessions {
		out = append(out, s.SessionID)
	}
	return out
}

func (l mySessionList) current() []string {
	var out []string
	for _, s := range l.Sessions {
		if s.Current {
			out = append(out, s.SessionID)
		}
	}
	return out
}

func sameIDs(got []string, want ...string) bool {
	if len(got) != len(want) {
		return false
	}
	for i := range got {
		if got[i] != want[i] {
			return false
		}
	}
	return true
}

func TestMe_ListsOwnSessionsNewestFirstWithTheCurrentMarked(t *testing.T) {
	t.Parallel()
	a := startMe(t, serverSetup{})
	s1 := a.loginFrom(t, "alice", firefoxLinux)
	s2 := a.loginFrom(t, "alice", safariIPhone)
	s3 := a.loginFrom(t, "alice", "curl/8.5.0")
	bobs := a.loginFrom(t, "bob", edgeWindows)

	r := a.do(t, http.MethodGet, "/v1/me/sessions", nil, bearer(s2)...)
	expectStatus(t, "list", r, http.StatusOK)
	for _, tok := range []tokenResponse{s1, s2, s3, bobs} {
		if bytes.Contains(r.Body, []byte(tok.AccessToken)) || bytes.Contains(r.Body, []byte(tok.RefreshToken)) {
			t.Fatalf("the listing shows a token: %s", r.Body)
		}
	}
	list := a.mine(t, "list by Bearer", bearer(s2)...)
	if !sameIDs(list.ids(), s3.SessionID, s2.SessionID, s1.SessionID) {
		t.Fatalf("listed %v, want alice's three newest first %v", list.ids(), []string{s3.SessionID, s2.SessionID, s1.SessionID})
	}
	if !sameIDs(list.current(), s2.SessionID) {
		t.Errorf("current: %v, want only %s", list.current(), s2.SessionID)
	}
	wantNames := map[string]string{s1.SessionID: "Firefox on Linux", s2.SessionID: "Safari on iOS", s3.SessionID: "curl"}
	for _, s := range list.Sessions {
		if s.DeviceName != wantNames[s.SessionID] {
			t.Errorf("device_name of %s = %q, want %q", s.SessionID, s.DeviceName, wantNames[s.SessionID])
		}
		if s.UserID != "alice" || s.Status != "active" || s.Device.IP != "198.51.100.7" || s.CreatedAt.IsZero() || s.ExpiresAt.IsZero() {
			t.Errorf("session %+v: want alice's active session with its device and times", s)
		}
	}

	// The same through X-Session-Token, and for another caller.
	if l := a.mine(t, "list by X-Session-Token", "X-Session-Token", s1.AccessToken); !sameIDs(l.current(), s1.SessionID) || len(l.Sessions) != 3 {
		t.Errorf("X-Session-Token caller: current %v of %d", l.current(), len(l.Sessions))
	}
	if l := a.mine(t, "bob's list", bearer(bobs)...); !sameIDs(l.ids(), bobs.SessionID) || !l.Sessions[0].Current || l.Sessions[0].DeviceName != "Edge on Windows" {
		t.Errorf("bob's list: %+v", l)
	}

	// A cookie caller: its session is the current one.
	b := newBrowser(true)
	ck := a.cookieLogin(t, b, map[string]any{"user_id": "alice", "password": alicePassword,
		"device": map[string]string{"user_agent": safariMac}})
	l := a.mine(t, "list by cookie", "Cookie", b.header())
	if len(l.Sessions) != 4 || l.Sessions[0].SessionID != ck.SessionID || !sameIDs(l.current(), ck.SessionID) || l.Sessions[0].DeviceName != "Safari on macOS" {
		t.Errorf("cookie caller's list: %+v", l)
	}
	// A GET needs no CSRF header.
	expectError(t, "no credentials", a.do(t, http.MethodGet, "/v1/me/sessions", nil), http.StatusUnauthorized, "unauthenticated")
}

func TestMe_EndOneOfTheCallersSessions(t *testing.T) {
	t.Parallel()
	a := startMe(t, serverSetup{})
	other := a.loginFrom(t, "alice", firefoxLinux)
	me := a.loginFrom(t, "alice", safariIPhone)

	r := a.do(t, http.MethodDelete, "/v1/me/sessions/"+other.SessionID, nil, bearer(me)...)
	expectStatus(t, "end another of my sessions", r, http.StatusNoContent)
	if idx := headerIndex(t, r); idx <= other.Index {
		t.Errorf("X-Sessiond-Index %d, want the revocation's index after %d", idx, other.Index)
	}
	a.expectInvalid(t, "the ended session's token", other.AccessToken)
	expectError(t, "the ended session's refresh token", a.refresh(t, other.RefreshToken), http.StatusUnauthorized, "unauthenticated")
	if s := a.getSession(t, other.SessionID); s.Status != "revoked" || s.RevokeReason != "user" {
		t.Errorf("ended session: status %q reason %q, want revoked by user", s.Status, s.RevokeReason)
	}
	a.expectValid(t, "the caller", me.AccessToken)
	if l := a.mine(t, "list after", bearer(me)...); !sameIDs(l.ids(), me.SessionID) {
		t.Errorf("listed %v after ending one, want only %s", l.ids(), me.SessionID)
	}

	// Ending it again: it is still the caller's, and stays ended.
	expectStatus(t, "end it again", a.do(t, http.MethodDelete, "/v1/me/sessions/"+other.SessionID, nil, bearer(me)...), http.StatusNoContent)

	// The caller may end its own session (a logout).
	r = a.do(t, http.MethodDelete, "/v1/me/sessions/"+me.SessionID, nil, bearer(me)...)
	expectStatus(t, "end the current session", r, http.StatusNoContent)
	if len(r.Header.Values("Set-Cookie")) != 0 {
		t.Errorf("a Bearer caller got cookies: %v", r.Header.Values("Set-Cookie"))
	}
	a.expectInvalid(t, "the caller after ending itself", me.AccessToken)
	if s := a.getSession(t, me.SessionID); s.RevokeReason != "logout" {
		t.Errorf("the current session ended with reason %q, want logout", s.RevokeReason)
	}
}

func TestMe_EndingTheCurrentCookieSessionClearsTheCookies(t *testing.T) {
	t.Parallel()
	clock := newClock()
	a := startMe(t, serverSetup{Clock: clock})
	b := newBrowser(true)
	tok := a.cookieLogin(t, b, map[string]any{"email": aliceEmail, "password": alicePassword})
	r := a.do(t, http.MethodDelete, "/v1/me/sessions/"+tok.SessionID, nil, "Cookie", b.header(), "X-Requested-With", "sessiond")
	expectStatus(t, "end the current cookie session", r, http.StatusNoContent)
	expectCleared(t, "end the current cookie session", r, true)
	a.expectInvalid(t, "its token", tok.AccessToken)

	// With the access cookie expired the request is refreshed first; the
	// answer then clears the cookies once (not new ones, then cleared ones).
	tok = a.cookieLogin(t, b, map[string]any{"email": aliceEmail, "password": alicePassword})
	clock.Advance(defaultTTL + time.Second)
	r = a.do(t, http.MethodDelete, "/v1/me/sessions?include_current=true", nil, "Cookie", b.header(), "X-Requested-With", "sessiond")
	expectStatus(t, "sign out everywhere with an expired access cookie", r, http.StatusOK)
	expectCleared(t, "sign out everywhere with an expired access cookie", r, true)
	if s := a.getSession(t, tok.SessionID); s.Status != "revoked" {
		t.Errorf("session after include_current: %q", s.Status)
	}
}

func TestMe_AnotherUsersSessionIsNotFoundLikeAnUnknownOne(t *testing.T) {
	t.Parallel()
	a := startMe(t, serverSetup{})
	me := a.loginFrom(t, "alice", firefoxLinux)
	bobs := a.loginFrom(t, "bob", edgeWindows)

	foreign := a.do(t, http.MethodDelete, "/v1/me/sessions/"+bobs.SessionID, nil, bearer(me)...)
	expectError(t, "another user's session", foreign, http.StatusNotFound, "not_found")
	unknown := a.do(t, http.MethodDelete, "/v1/me/sessions/s_doesnotexist0123456789", nil, bearer(me)...)
	expectError(t, "an unknown session", unknown, http.StatusNotFound, "not_found")
	if !bytes.Equal(foreign.Body, unknown.Body) {
		t.Errorf("another user's session answers %s, an unknown one %s: want the same answer", foreign.Body, unknown.Body)
	}
	expectError(t, "an overlong id", a.do(t, http.MethodDelete, "/v1/me/sessions/"+strings.Repeat("x", 200), nil, bearer(me)...), http.StatusNotFound, "not_found")
	a.expectValid(t, "bob's session", bobs.AccessToken)

	// Unauthenticated, the id is not even looked at.
	expectError(t, "no credentials", a.do(t, http.MethodDelete, "/v1/me/sessions/"+bobs.SessionID, nil), http.StatusUnauthorized, "unauthenticated")
	a.expectValid(t, "bob's session afterwards", bobs.AccessToken)
}

func TestMe_SignOutEverywhereElse(t *testing.T) {
	t.Parallel()
	a := startMe(t, serverSetup{})
	var others []tokenResponse
	for _, ua := range []string{firefoxLinux, safariIPhone, "curl/8.5.0"} {
		others = append(others, a.loginFrom(t, "alice", ua))
	}
	me := a.loginFrom(t, "alice", safariMac)
	bobs := a.loginFrom(t, "bob", edgeWindows)

	r := a.do(t, http.MethodDelete, "/v1/me/sessions", nil, bearer(me)...)
	expectStatus(t, "sign out everywhere else", r, http.StatusOK)
	got := decode[revokedCount](t, r)
	if got.Revoked != 3 || got.Index == 0 || got.Index != headerIndex(t, r) {
		t.Errorf("answer %s with X-Sessiond-Index %d, want revoked 3 and the index in both", r.Body, headerIndex(t, r))
	}
	for i, tok := range others {
		a.expectInvalid(t, "another session after sign-out everywhere else", tok.AccessToken)
		if s := a.getSession(t, tok.SessionID); s.RevokeReason != "user" {
			t.Errorf("session %d ended with reason %q, want user", i, s.RevokeReason)
		}
	}
	a.expectValid(t, "the caller's own session", me.AccessToken)
	a.expectValid(t, "bob's session", bobs.AccessToken)
	if l := a.mine(t, "list after", bearer(me)...); !sameIDs(l.ids(), me.SessionID) || !l.Sessions[0].Current {
		t.Errorf("listed %+v, want only the caller", l)
	}

	// Nothing left to end.
	r = a.do(t, http.MethodDelete, "/v1/me/sessions", nil, bearer(me)...)
	expectStatus(t, "again", r, http.StatusOK)
	if got := decode[revokedCount](t, r); got.Revoked != 0 {
		t.Errorf("second sign-out everywhere else revoked %d", got.Revoked)
	}
}

func TestMe_IncludeCurrentEndsTheCallerToo(t *testing.T) {
	t.Parallel()
	a := startMe(t, serverSetup{})
	other := a.loginFrom(t, "alice", firefoxLinux)
	b := newBrowser(true)
	me := a.cookieLogin(t, b, map[string]any{"user_id": "alice", "password": alicePassword})

	expectError(t, "a bad include_current", a.do(t, http.MethodDelete, "/v1/me/sessions?include_current=yes", nil, "Cookie", b.header(), "X-Requested-With", "sessiond"),
		http.StatusBadRequest, "bad_request", "include_current")
	r := a.do(t, http.MethodDelete, "/v1/me/sessions?include_current=true", nil, "Cookie", b.header(), "X-Requested-With", "sessiond")
	expectStatus(t, "sign out everywhere", r, http.StatusOK)
	if got := decode[revokedCount](t, r); got.Revoked != 2 {
		t.Errorf("revoked %d, want 2", got.Revoked)
	}
	expectCleared(t, "sign out everywhere", r, true)
	a.expectInvalid(t, "the caller", me.AccessToken)
	a.expectInvalid(t, "the other session", other.AccessToken)
	expectError(t, "the caller's cookies afterwards", a.do(t, http.MethodGet, "/v1/me/sessions", nil, "Cookie", b.header()), http.StatusUnauthorized, "unauthenticated")
}

func TestMe_RevokedOrExpiredSessionCannotListOrEndAnything(t *testing.T) {
	t.Parallel()
	clock := newClock()
	a := startMe(t, serverSetup{Clock: clock})
	victim := a.loginFrom(t, "alice", firefoxLinux)
	revoked := a.loginFrom(t, "alice", safariIPhone)
	expectStatus(t, "admin revokes", a.admin(t, http.MethodDelete, "/v1/sessions/"+revoked.SessionID, nil), http.StatusNoContent)

	try := func(what string, tok tokenResponse) {
		t.Helper()
		expectError(t, what+": list", a.do(t, http.MethodGet, "/v1/me/sessions", nil, bearer(tok)...), http.StatusUnauthorized, "unauthenticated")
		expectError(t, what+": end one", a.do(t, http.MethodDelete, "/v1/me/sessions/"+victim.SessionID, nil, bearer(tok)...), http.StatusUnauthorized, "unauthenticated")
		expectError(t, what+": end all", a.do(t, http.MethodDelete, "/v1/me/sessions?include_current=true", nil, bearer(tok)...), http.StatusUnauthorized, "unauthenticated")
	}
	try("a revoked session", revoked)
	a.expectValid(t, "the other session", victim.AccessToken)

	// An expired access token (its session can still be refreshed, but the
	// token itself no longer admits anything).
	expired := a.loginFrom(t, "alice", safariMac)
	clock.Advance(defaultTTL + time.Second)
	try("an expired access token", expired)
	fresh := decode[tokenResponse](t, a.refresh(t, victim.RefreshToken))
	a.expectValid(t, "the other session, refreshed", fresh.AccessToken)
}

// A cookie caller's writes need X-Requested-With: without it the request is
// malformed for what it asks (400; the API has no 403) and changes nothing. A
// cross-site form post cannot send it, nor any DELETE, and form bodies are
// refused whoever the caller is.
func TestMe_CookieWritesNeedTheCSRFHeader(t *testing.T) {
	t.Parallel()
	a := startMe(t, serverSetup{})
	other := a.loginFrom(t, "alice", firefoxLinux)
	b := newBrowser(true)
	me := a.cookieLogin(t, b, map[string]any{"user_id": "alice", "password": alicePassword})

	for _, path := range []string{"/v1/me/sessions", "/v1/me/sessions?include_current=true", "/v1/me/sessions/" + other.SessionID, "/v1/me/sessions/" + me.SessionID} {
		r := a.do(t, http.MethodDelete, path, nil, "Cookie", b.header())
		expectError(t, "DELETE "+path+" by cookie without X-Requested-With", r, http.StatusBadRequest, "bad_request", "X-Requested-With")
		if len(r.Header.Values("Set-Cookie")) != 0 {
			t.Errorf("refused request changed cookies: %v", r.Header.Values("Set-Cookie"))
		}
		// The browser says the request is cross-site: refused even with the header.
		r = a.do(t, http.MethodDelete, path, nil, "Cookie", b.header(), "X-Requested-With", "sessiond", "Sec-Fetch-Site", "cross-site", "Origin", "https://evil.example")
		expectError(t, "DELETE "+path+" cross-site", r, http.StatusBadRequest, "bad_request", "cross-site")
	}
	a.expectValid(t, "the other session after refused requests", other.AccessToken)
	a.expectValid(t, "the caller after refused requests", me.AccessToken)

	// A cross-site form post: form content type, another origin, no header.
	form := testkit.Raw("include_current=true&_method=DELETE")
	formHeaders := []string{"Cookie", b.header(), "Content-Type", "application/x-www-form-urlencoded", "Origin", "https://evil.example", "Sec-Fetch-Site", "cross-site"}
	for _, path := range []string{"/v1/me/sessions", "/v1/me/sessions?include_current=true", "/v1/me/sessions/" + other.SessionID, "/v1/me/sessions?_method=DELETE"} {
		r := a.do(t, http.MethodPost, path, form, formHeaders...)
		expectError(t, "form POST "+path, r, http.StatusMethodNotAllowed, "method_not_allowed")
		r = a.do(t, http.MethodPost, path, form, append(formHeaders, "X-HTTP-Method-Override", "DELETE")...)
		expectError(t, "form POST "+path+" with a method override", r, http.StatusMethodNotAllowed, "method_not_allowed")
		r = a.do(t, http.MethodDelete, path, form, formHeaders...)
		expectError(t, "form DELETE "+path, r, http.StatusUnsupportedMediaType, "unsupported_media_type")
	}
	for _, ct := range []string{"multipart/form-data; boundary=x", "text/plain"} {
		r := a.do(t, http.MethodDelete, "/v1/me/sessions", testkit.Raw("--x--"), "Cookie", b.header(), "X-Requested-With", "sessiond", "Content-Type", ct)
		expectError(t, "DELETE with "+ct, r, http.StatusUnsupportedMediaType, "unsupported_media_type")
	}
	r := a.do(t, http.MethodDelete, "/v1/me/sessions", map[string]any{"include_current": true}, bearer(me)...)
	expectError(t, "a JSON body", r, http.StatusBadRequest, "bad_request", "no body")
	if l := a.mine(t, "list after refused requests", "Cookie", b.header()); len(l.Sessions) != 2 {
		t.Fatalf("refused requests ended sessions: %v left", l.ids())
	}

	// With the header (what the page sends) the same call works; a header
	// token needs none.
	r = a.do(t, http.MethodDelete, "/v1/me/sessions/"+other.SessionID, nil, "Cookie", b.header(), "X-Requested-With", "sessiond")
	expectStatus(t, "DELETE by cookie with X-Requested-With", r, http.StatusNoContent)
	a.expectInvalid(t, "the ended session", other.AccessToken)
	expectStatus(t, "DELETE by Bearer without X-Requested-With", a.do(t, http.MethodDelete, "/v1/me/sessions", nil, bearer(me)...), http.StatusOK)
}

// --- The page -----------------------------------------------------------

const wantCSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"

func expectPageHeaders(t testing.TB, what string, r response) {
	t.Helper()
	want := map[string]string{
		"Content-Security-Policy": wantCSP,
		"X-Frame-Options":         "DENY",
		"Referrer-Policy":         "no-referrer",
		"X-Content-Type-Options":  "nosniff",
		"Cache-Control":           "no-store",
	}
	for name, v := range want {
		if got := r.Header.Get(name); got != v {
			t.Errorf("%s: %s = %q, want %q", what, name, got, v)
		}
	}
	if ct := strings.ToLower(r.Header.Get("Content-Type")); !strings.HasPrefix(ct, "text/html") || !strings.Contains(ct, "utf-8") {
		t.Errorf("%s: Content-Type %q", what, ct)
	}
	body := strings.ToLower(string(r.Body))
	for _, inline := range []string{"<script>", "<style", " style=", " onclick=", " onload=", "javascript:"} {
		if strings.Contains(body, inline) {
			t.Errorf("%s: the page has inline %q, which the CSP forbids", what, inline)
		}
	}
	for _, landmark := range []string{"<header", "<main", "<footer", `lang="en"`, `name="viewport"`} {
		if !strings.Contains(body, landmark) {
			t.Errorf("%s: the page has no %s", what, landmark)
		}
	}
}

func TestAccountPage_HeadersForbidFramingAndInlineCode(t *testing.T) {
	t.Parallel()
	a := startMe(t, serverSetup{API: func(c *httpapi.Config) {
		withCookies(t, true)(c)
		c.AccountLoginURL = "https://app.example/login?next=/account"
	}})
	b := newBrowser(true)
	a.cookieLogin(t, b, map[string]any{"user_id": "alice", "password": alicePassword})

	r := a.do(t, http.MethodGet, "/account/sessions", nil, "Cookie", b.header())
	expectStatus(t, "the page with a session", r, http.StatusOK)
	expectPageHeaders(t, "the page with a session", r)
	if !bytes.Contains(r.Body, []byte(`data-state="signed-in"`)) || !bytes.Contains(r.Body, []byte(`<section id="signed-out" aria-labelledby="signed-out-heading" hidden>`)) {
		t.Errorf("the page with a session is not in the signed-in state:\n%s", r.Body)
	}

	r = a.do(t, http.MethodGet, "/account/sessions", nil)
	expectStatus(t, "the page without a session", r, http.StatusOK)
	expectPageHeaders(t, "the page without a session", r)
	for _, want := range []string{`data-state="signed-out"`, `href="https://app.example/login?next=/account"`, "You are not signed in"} {
		if !bytes.Contains(r.Body, []byte(want)) {
			t.Errorf("the page without a session lacks %s:\n%s", want, r.Body)
		}
	}

	// The page's own files, with their types; unknown names are 404.
	for name, ct := range map[string]string{"account.js": "text/javascript; charset=utf-8", "account.css": "text/css; charset=utf-8"} {
		r := a.do(t, http.MethodGet, "/account/assets/"+name, nil)
		expectStatus(t, name, r, http.StatusOK)
		if r.Header.Get("Content-Type") != ct || r.Header.Get("X-Content-Type-Options") != "nosniff" || len(r.Body) == 0 {
			t.Errorf("%s: Content-Type %q, nosniff %q, %d bytes", name, r.Header.Get("Content-Type"), r.Header.Get("X-Content-Type-Options"), len(r.Body))
		}
		etag := r.Header.Get("ETag")
		if r := a.do(t, http.MethodGet, "/account/assets/"+name, nil, "If-None-Match", etag); etag == "" || r.Status != http.StatusNotModified {
			t.Errorf("%s: ETag %q revalidated as %d, want 304", name, etag, r.Status)
		}
	}
	for _, path := range []string{"/account/assets/account.html", "/account/assets/..%2faccount.html", "/account/assets/nope.js"} {
		expectError(t, path, a.do(t, http.MethodGet, path, nil), http.StatusNotFound, "not_found")
	}
}

func TestAccountPage_WithoutALoginURLSaysToSignInToTheApplication(t *testing.T) {
	t.Parallel()
	a := startMe(t, serverSetup{})
	r := a.do(t, http.MethodGet, "/account/sessions", nil)
	expectStatus(t, "the page", r, http.StatusOK)
	if !bytes.Contains(r.Body, []byte("Sign in to the application")) || bytes.Contains(r.Body, []byte(`id="login-link"`)) {
		t.Errorf("without a login URL the page should say to sign in to the application:\n%s", r.Body)
	}

	// A login URL that is not a web address is never made a link target.
	a = startMe(t, serverSetup{API: func(c *httpapi.Config) {
		withCookies(t, true)(c)
		c.AccountLoginURL = "javascript:alert(1)"
	}})
	r = a.do(t, http.MethodGet, "/account/sessions", nil)
	if bytes.Contains(bytes.ToLower(r.Body), []byte("javascript:")) {
		t.Errorf("the page links to a javascript: URL:\n%s", r.Body)
	}
}
