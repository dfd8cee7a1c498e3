package httpapi_test

// Browser cookies (docs/api.md#cookies): the signed session and refresh cookies
// set by ?cookie=true, their attributes in production and dev mode, cookie
// authentication, automatic refresh and logout.

import (
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sessiond/sessiond/httpapi"
	"github.com/sessiond/sessiond/httpapi/cookies"
	"github.com/sessiond/sessiond/transport/testkit"
)

const (
	testCookieKey  = "cookie-key-0123456789abcdef-0123456789"
	otherCookieKey = "another-cookie-key-0123456789abcdef-xyz"
)

func testCookieKeys(t testing.TB, keys ...string) *cookies.Keys {
	t.Helper()
	if len(keys) == 0 {
		keys = []string{testCookieKey}
	}
	var raw [][]byte
	for _, k := range keys {
		raw = append(raw, []byte(k))
	}
	ring, err := cookies.NewKeys(raw...)
	if err != nil {
		t.Fatal(err)
	}
	return ring
}

// withCookies configures the API's cookies.
func withCookies(t testing.TB, dev bool) func(*httpapi.Config) {
	keys := testCookieKeys(t)
	return func(c *httpapi.Config) {
		c.CookieKeys = keys
		c.CookieDevMode = dev
	}
}

// setCookies are the answer's Set-Cookie headers by name, parsed and raw.
func setCookies(t testing.TB, r response) (map[string]*http.Cookie, map[string]string) {
	t.Helper()
	parsed := map[string]*http.Cookie{}
	for _, c := range (&http.Response{Header: r.Header}).Cookies() {
		if parsed[c.Name] != nil {
			t.Errorf("Set-Cookie %s twice in one answer", c.Name)
		}
		parsed[c.Name] = c
	}
	raw := map[string]string{}
	for _, line := range r.Header.Values("Set-Cookie") {
		name, _, _ := strings.Cut(line, "=")
		raw[name] = line
	}
	return parsed, raw
}

// unsign is the token inside a signed cookie value.
func unsign(v string) string {
	if i := strings.LastIndexByte(v, '.'); i >= 0 {
		return v[:i]
	}
	return v
}

// cookieHeader is a Cookie request header of name=value pairs.
func cookieHeader(pairs ...string) string {
	var parts []string
	for i := 0; i+1 < len(pairs); i += 2 {
		parts = append(parts, pairs[i]+"="+pairs[i+1])
	}
	return strings.Join(parts, "; ")
}

// browser holds a browser's two cookies.
type browser struct {
	sessionName, refreshName string
	session, refresh         string // signed values, "" when absent
}

func newBrowser(dev bool) *browser {
	s, r := cookies.Names(dev)
	return &browser{sessionName: s, refreshName: r}
}

// header is the Cookie header the browser sends.
func (b *browser) header() string {
	var pairs []string
	if b.session != "" {
		pairs = append(pairs, b.sessionName, b.session)
	}
	if b.refresh != "" {
		pairs = append(pairs, b.refreshName, b.refresh)
	}
	return cookieHeader(pairs...)
}

// take stores the cookies an answer set; it reports whether it set both.
func (b *browser) take(t testing.TB, r response) bool {
	t.Helper()
	parsed, _ := setCookies(t, r)
	s, rf := parsed[b.sessionName], parsed[b.refreshName]
	if s == nil || rf == nil {
		if s != nil || rf != nil {
			t.Errorf("an answer set only one of the two cookies: %v", r.Header.Values("Set-Cookie"))
		}
		return false
	}
	b.session, b.refresh = s.Value, rf.Value
	return true
}

func (a *testAPI) withBrowser(t testing.TB, method, path string, b *browser) response {
	t.Helper()
	return a.do(t, method, path, nil, "Cookie", b.header())
}

// aliceWithCookies starts a node on clock with cookies on (dev: the
// development cookies) and logs alice in with a new browser.
func aliceWithCookies(t *testing.T, clock *testkit.Clock, dev bool) (*testAPI, *browser, tokenResponse) {
	t.Helper()
	a := startServer(t, serverSetup{Clock: clock, API: withCookies(t, dev)})
	a.putUser(t, "alice", aliceEmail, alicePassword)
	b := newBrowser(dev)
	return a, b, a.cookieLogin(t, b, map[string]any{"email": aliceEmail, "password": alicePassword})
}

// cookieLogin logs in with ?cookie=true and checks the cookies against the
// token answer.
func (a *testAPI) cookieLogin(t testing.TB, b *browser, body map[string]any) tokenResponse {
	t.Helper()
	r := a.do(t, http.MethodPost, "/v1/login?cookie=true", body)
	expectStatus(t, "login with cookies", r, http.StatusCreated)
	tok := decode[tokenResponse](t, r)
	if !b.take(t, r) {
		t.Fatalf("login with cookies set %v, want both cookies", r.Header.Values("Set-Cookie"))
	}
	if unsign(b.session) != tok.AccessToken || unsign(b.refresh) != tok.RefreshToken {
		t.Fatalf("cookies %q %q do not carry the answer's tokens", b.session, b.refresh)
	}
	return tok
}

func TestCookies_LoginSetsBothCookiesWithSpecAttributes(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name                     string
		dev                      bool
		sessionName, refreshName string
	}{
		{"production", false, "__Host-sessiond", "__Host-sessiond_refresh"},
		{"dev mode", true, "sessiond", "sessiond_refresh"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			a := startServer(t, serverSetup{API: withCookies(t, c.dev)})
			a.putUser(t, "alice", aliceEmail, alicePassword)
			for _, remember := range []bool{false, true} {
				before := time.Now()
				r := a.do(t, http.MethodPost, "/v1/login?cookie=true", map[string]any{"email": aliceEmail, "password": alicePassword, "remember_me": remember})
				expectStatus(t, "login with cookies", r, http.StatusCreated)
				tok := decode[tokenResponse](t, r)
				parsed, raw := setCookies(t, r)
				if len(parsed) != 2 || parsed[c.sessionName] == nil || parsed[c.refreshName] == nil {
					t.Fatalf("Set-Cookie %v, want exactly %s and %s", r.Header.Values("Set-Cookie"), c.sessionName, c.refreshName)
				}
				if unsign(parsed[c.sessionName].Value) != tok.AccessToken || unsign(parsed[c.refreshName].Value) != tok.RefreshToken {
					t.Errorf("cookie values do not carry the answer's access and refresh tokens")
				}
				for name, ck := range parsed {
					line := raw[name]
					if !ck.HttpOnly || ck.SameSite != http.SameSiteLaxMode || ck.Path != "/" || ck.Domain != "" ||
						!strings.Contains(line, "; HttpOnly") || !strings.Contains(line, "; SameSite=Lax") || !strings.Contains(line, "; Path=/") {
						t.Errorf("%s: %q, want HttpOnly, SameSite=Lax, Path=/ and no Domain", name, line)
					}
					if ck.Secure == c.dev || strings.Contains(line, "; Secure") == c.dev {
						t.Errorf("%s: %q: Secure must be set exactly when not in dev mode", name, line)
					}
					if ck.Value == unsign(ck.Value) {
						t.Errorf("%s: value %q is not signed", name, ck.Value)
					}
					if !remember {
						if ck.MaxAge != 0 || ck.RawExpires != "" {
							t.Errorf("%s without remember-me: %q, want a browser-session cookie (no Expires or Max-Age)", name, line)
						}
						continue
					}
					// Persistent until the refresh token ends (30 days by default).
					wantAge := time.Until(tok.RefreshExpiresAt)
					if d := time.Duration(ck.MaxAge)*time.Second - wantAge; d < -10*time.Second || d > time.Second {
						t.Errorf("%s with remember-me: Max-Age %d, want about %.0f", name, ck.MaxAge, wantAge.Seconds())
					}
					if !near(ck.Expires, tok.RefreshExpiresAt, time.Second) || !near(ck.Expires, before.Add(absoluteTTL), 10*time.Second) {
						t.Errorf("%s with remember-me: Expires %v, want the refresh expiry %v", name, ck.Expires, tok.RefreshExpiresAt)
					}
				}
			}
			// Without ?cookie=true (or with false) no cookie is set.
			for _, q := range []string{"", "?cookie=false"} {
				r := a.do(t, http.MethodPost, "/v1/login"+q, map[string]any{"email": aliceEmail, "password": alicePassword})
				expectStatus(t, "login "+q, r, http.StatusCreated)
				if v := r.Header.Values("Set-Cookie"); len(v) != 0 {
					t.Errorf("login %s set %v", q, v)
				}
			}
			expectError(t, "?cookie=maybe", a.do(t, http.MethodPost, "/v1/login?cookie=maybe",
				map[string]any{"email": aliceEmail, "password": alicePassword}), http.StatusBadRequest, "bad_request", "cookie")
		})
	}
}

func TestCookies_SessionCookieAuthenticatesAndTamperingIs401(t *testing.T) {
	t.Parallel()
	a := startServer(t, serverSetup{API: withCookies(t, false)})
	a.putUser(t, "alice", aliceEmail, alicePassword)
	b := newBrowser(false)
	tok := a.cookieLogin(t, b, map[string]any{"email": aliceEmail, "password": alicePassword})

	only := &browser{sessionName: b.sessionName, session: b.session}
	r := a.withBrowser(t, http.MethodGet, "/v1/session", only)
	expectStatus(t, "GET /v1/session with the session cookie only", r, http.StatusOK)
	if s := decode[sessionInfo](t, r); s.SessionID != tok.SessionID || s.UserID != "alice" || s.Status != "active" {
		t.Errorf("session from the cookie: %+v", s)
	}
	if v := r.Header.Values("Set-Cookie"); len(v) != 0 {
		t.Errorf("a valid cookie was answered with Set-Cookie %v", v)
	}

	other := testCookieKeys(t, otherCookieKey)
	flip := func(s string, i int) string {
		c := byte('A')
		if s[i] == 'A' {
			c = 'B'
		}
		return s[:i] + string(c) + s[i+1:]
	}
	mac := strings.LastIndexByte(b.session, '.')
	for name, v := range map[string]string{
		"token changed":               flip(b.session, 10),
		"signature changed":           flip(b.session, mac+5),
		"signature cut":               b.session[:len(b.session)-1],
		"no signature":                tok.AccessToken,
		"token with an empty mac":     tok.AccessToken + ".",
		"signed with another key":     other.Sign(tok.AccessToken),
		"refresh cookie as session":   b.refresh,
		"empty":                       "",
		"another cookie's value+data": b.session + "x",
	} {
		r := a.do(t, http.MethodGet, "/v1/session", nil, "Cookie", cookieHeader(b.sessionName, v))
		expectError(t, name, r, http.StatusUnauthorized, "unauthenticated")
	}
	// A dev-mode name is not the production cookie.
	r = a.do(t, http.MethodGet, "/v1/session", nil, "Cookie", cookieHeader("sessiond", b.session))
	expectError(t, "dev cookie name on a production server", r, http.StatusUnauthorized, "unauthenticated")
	// The cookie still works after all that.
	expectStatus(t, "the genuine cookie", a.withBrowser(t, http.MethodGet, "/v1/session", only), http.StatusOK)
	// The cookie carries the access token, which still works as a bearer token.
	a.expectValid(t, "bearer token from the cookie", unsign(b.session))
}

// A rotated key ring keeps verifying cookies signed with the old first key.
func TestCookies_KeyRotationKeepsOldCookiesValid(t *testing.T) {
	t.Parallel()
	a := startServer(t, serverSetup{API: func(c *httpapi.Config) { c.CookieKeys = testCookieKeys(t, otherCookieKey, testCookieKey) }})
	tok := a.create(t, "u", nil)
	old := testCookieKeys(t, testCookieKey)
	r := a.do(t, http.MethodGet, "/v1/session", nil, "Cookie", cookieHeader(cookies.SessionName, old.Sign(tok.AccessToken)))
	expectStatus(t, "cookie signed with the second key of the ring", r, http.StatusOK)
}

func TestCookies_ExpiredAccessCookieIsRefreshedAutomatically(t *testing.T) {
	t.Parallel()
	clock := newClock()
	a, b, tok := aliceWithCookies(t, clock, false)
	oldSession, oldRefresh := b.session, b.refresh

	clock.Advance(defaultTTL + time.Second) // access expired, refresh not
	a.expectInvalid(t, "expired access token as bearer", tok.AccessToken)
	r := a.withBrowser(t, http.MethodGet, "/v1/session", b)
	expectStatus(t, "GET /v1/session with an expired access cookie and a valid refresh cookie", r, http.StatusOK)
	if s := decode[sessionInfo](t, r); s.SessionID != tok.SessionID || s.Status != "active" ||
		!s.AccessExpiresAt.Equal(clock.Now().Add(defaultTTL)) {
		t.Errorf("refreshed session %+v, want the same session with a new access expiry", s)
	}
	if !b.take(t, r) {
		t.Fatalf("automatic refresh answered Set-Cookie %v, want both cookies", r.Header.Values("Set-Cookie"))
	}
	if b.session == oldSession || b.refresh == oldRefresh {
		t.Fatalf("automatic refresh set the old values again")
	}
	_, raw := setCookies(t, r)
	for name, line := range raw {
		if !strings.Contains(line, "; HttpOnly") || !strings.Contains(line, "; Secure") || !strings.Contains(line, "; SameSite=Lax") ||
			strings.Contains(line, "Max-Age") {
			t.Errorf("refreshed cookie %s: %q, want the same attributes as at login", name, line)
		}
	}
	if in := a.introspect(t, unsign(oldRefresh)); in.Active {
		t.Errorf("the old refresh token is still active after the automatic refresh: %+v", in)
	}
	a.expectValid(t, "the new access token", unsign(b.session))

	// The new cookies work without another refresh.
	r = a.withBrowser(t, http.MethodGet, "/v1/session", b)
	expectStatus(t, "GET with the new cookies", r, http.StatusOK)
	if v := r.Header.Values("Set-Cookie"); len(v) != 0 {
		t.Errorf("a valid access cookie was refreshed again: %v", v)
	}

	// A browser that lost the session cookie but kept the refresh cookie.
	onlyRefresh := &browser{sessionName: b.sessionName, refreshName: b.refreshName, refresh: b.refresh}
	r = a.withBrowser(t, http.MethodGet, "/v1/session", onlyRefresh)
	expectStatus(t, "GET with the refresh cookie only", r, http.StatusOK)
	if !onlyRefresh.take(t, r) {
		t.Errorf("refresh from the refresh cookie alone set %v", r.Header.Values("Set-Cookie"))
	}

	// Once the refresh token has expired too, the answer is 401 and both
	// cookies are cleared.
	clock.Advance(refreshTTL)
	r = a.withBrowser(t, http.MethodGet, "/v1/session", onlyRefresh)
	expectError(t, "GET after the refresh token expired", r, http.StatusUnauthorized, "unauthenticated")
	expectCleared(t, "401 after the refresh token expired", r, false)
	// A tampered refresh cookie does not refresh.
	r = a.do(t, http.MethodGet, "/v1/session", nil, "Cookie", cookieHeader(b.refreshName, unsign(onlyRefresh.refresh)+".AAAA"))
	expectError(t, "tampered refresh cookie", r, http.StatusUnauthorized, "unauthenticated")
}

// expectCleared checks that an answer clears both cookies.
func expectCleared(t testing.TB, what string, r response, dev bool) {
	t.Helper()
	sessionName, refreshName := cookies.Names(dev)
	parsed, raw := setCookies(t, r)
	for _, name := range []string{sessionName, refreshName} {
		c := parsed[name]
		if c == nil {
			t.Errorf("%s: %s not cleared (Set-Cookie %v)", what, name, r.Header.Values("Set-Cookie"))
			continue
		}
		if c.Value != "" || c.MaxAge >= 0 || !c.Expires.Before(time.Now()) || c.Path != "/" || c.Secure == dev || !c.HttpOnly {
			t.Errorf("%s: %q, want an empty value, Max-Age=0, an Expires in the past and the cookie's attributes", what, raw[name])
		}
	}
}

// Concurrent requests with the same expired cookies (a page loading several
// resources) share one refresh: all succeed, with the same new pair, and the
// session is not taken for stolen.
func TestCookies_ConcurrentAutomaticRefreshesShareOnePair(t *testing.T) {
	t.Parallel()
	clock := newClock()
	a, b, tok := aliceWithCookies(t, clock, false)
	clock.Advance(defaultTTL + time.Second)

	const tabs = 4
	var wg sync.WaitGroup
	results := make([]response, tabs)
	errs := make([]error, tabs)
	start := make(chan struct{})
	for i := range tabs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			results[i], errs[i] = a.send(http.MethodGet, "/v1/session", nil, "Cookie", b.header())
		}()
	}
	close(start)
	wg.Wait()
	var first *browser
	for i, r := range results {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		expectStatus(t, "concurrent request with the expired cookies", r, http.StatusOK)
		nb := newBrowser(false)
		if !nb.take(t, r) {
			t.Fatalf("concurrent refresh answered Set-Cookie %v", r.Header.Values("Set-Cookie"))
		}
		if first == nil {
			first = nb
		} else if nb.session != first.session || nb.refresh != first.refresh {
			t.Errorf("concurrent refreshes answered different pairs: want one shared refresh")
		}
	}
	// A request sent before the browser stored the new cookies.
	r := a.withBrowser(t, http.MethodGet, "/v1/session", b)
	expectStatus(t, "late request with the old cookies", r, http.StatusOK)
	late := newBrowser(false)
	if late.take(t, r); late.session != first.session {
		t.Errorf("late request got another pair")
	}
	if s := a.getSession(t, tok.SessionID); s.Status != "active" || s.RevokeReason != "" {
		t.Fatalf("session after concurrent cookie refreshes: status %q reason %q, want active", s.Status, s.RevokeReason)
	}
	a.expectValid(t, "the shared new access token", unsign(first.session))
	expectStatus(t, "GET with the shared new cookies", a.withBrowser(t, http.MethodGet, "/v1/session", first), http.StatusOK)
}

func TestCookies_LogoutRevokesAndClearsBothCookies(t *testing.T) {
	t.Parallel()
	clock := newClock()
	for _, dev := range []bool{false, true} {
		a, b, tok := aliceWithCookies(t, clock, dev)
		r := a.withBrowser(t, http.MethodDelete, "/v1/session", b)
		expectStatus(t, "logout with cookies", r, http.StatusNoContent)
		expectCleared(t, "logout", r, dev)
		a.expectInvalid(t, "access token after logout", tok.AccessToken)
		expectError(t, "refresh token after logout", a.refresh(t, tok.RefreshToken), http.StatusUnauthorized, "unauthenticated")
		expectError(t, "cookies after logout", a.withBrowser(t, http.MethodGet, "/v1/session", b), http.StatusUnauthorized, "unauthenticated")

		// With the access cookie expired, the refresh cookie still names the
		// session to end.
		tok = a.cookieLogin(t, b, map[string]any{"email": aliceEmail, "password": alicePassword})
		clock.Advance(defaultTTL + time.Second)
		r = a.withBrowser(t, http.MethodDelete, "/v1/session", b)
		expectStatus(t, "logout with an expired access cookie", r, http.StatusNoContent)
		expectCleared(t, "logout with an expired access cookie", r, dev)
		if s := a.getSession(t, tok.SessionID); s.Status != "revoked" {
			t.Errorf("session after logout with an expired access cookie: %q", s.Status)
		}
		expectError(t, "refresh token after that logout", a.refresh(t, tok.RefreshToken), http.StatusUnauthorized, "unauthenticated")
	}
}

func TestCookies_NotConfiguredRefusesCookieTrue(t *testing.T) {
	t.Parallel()
	a := startServer(t, serverSetup{})
	a.putUser(t, "alice", aliceEmail, alicePassword)
	expectError(t, "login ?cookie=true without cookie keys", a.do(t, http.MethodPost, "/v1/login?cookie=true",
		map[string]any{"email": aliceEmail, "password": alicePassword}), http.StatusBadRequest, "bad_request", "cookie")
	expectError(t, "exchange ?cookie=true without cookie keys", a.do(t, http.MethodPost, "/v1/token/exchange?cookie=true",
		map[string]any{"subject_token": "x.y.z", "subject_token_type": "urn:ietf:params:oauth:token-type:jwt"}), http.StatusBadRequest, "bad_request", "cookie")
	// A cookie is no credential on a node without cookie keys.
	tok := a.create(t, "u", nil)
	keys := testCookieKeys(t)
	expectError(t, "signed cookie on a node without keys", a.do(t, http.MethodGet, "/v1/session", nil,
		"Cookie", cookieHeader(cookies.SessionName, keys.Sign(tok.AccessToken))), http.StatusUnauthorized, "unauthenticated")
	a.loginOK(t, "login without cookies", map[string]any{"email": aliceEmail, "password": alicePassword})
}
