package httpapi_test

// Forward auth (docs/forward-auth.md, /v1/auth) as nginx auth_request, Traefik
// ForwardAuth and Envoy ext_authz call it: any method, any subpath, the session
// in response headers, 401 with WWW-Authenticate otherwise.

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sessiond/sessiond/transport/testkit"
)

// expectAuthHeaders checks a 200 forward-auth answer for the session.
func expectAuthHeaders(t testing.TB, what string, r response, tok tokenResponse, user, scopes string) {
	t.Helper()
	expectStatus(t, what, r, http.StatusOK)
	h := r.Header
	if h.Get("X-Session-Id") != tok.SessionID || h.Get("X-User-Id") != user || h.Get("X-Session-Scopes") != scopes {
		t.Errorf("%s: X-Session-Id %q X-User-Id %q X-Session-Scopes %q, want %q %q %q", what,
			h.Get("X-Session-Id"), h.Get("X-User-Id"), h.Get("X-Session-Scopes"), tok.SessionID, user, scopes)
	}
	exp, err := time.Parse(time.RFC3339, h.Get("X-Session-Expires"))
	if err != nil || !strings.HasSuffix(h.Get("X-Session-Expires"), "Z") {
		t.Errorf("%s: X-Session-Expires %q, want RFC 3339 in UTC", what, h.Get("X-Session-Expires"))
	} else if !near(exp, tok.AccessExpiresAt, time.Second) {
		t.Errorf("%s: X-Session-Expires %v, want the access token's expiry %v", what, exp, tok.AccessExpiresAt)
	}
}

func TestForwardAuth_ValidTokenAnswersSessionHeadersForAnyMethodAndPath(t *testing.T) {
	t.Parallel()
	a := startServer(t, serverSetup{})
	tok := a.create(t, "alice", map[string]any{"app": "web", "scopes": []string{"read", "write"}})
	for _, method := range []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete, http.MethodHead, http.MethodOptions} {
		for _, path := range []string{"/v1/auth", "/v1/auth/", "/v1/auth/some/path", "/v1/auth/some/path?x=1&cookie=true", "/v1/auth/v1/session"} {
			r := a.do(t, method, path, nil, "Authorization", "Bearer "+tok.AccessToken)
			expectAuthHeaders(t, method+" "+path, r, tok, "alice", "read write")
			if method == http.MethodHead && len(r.Body) != 0 {
				t.Errorf("HEAD %s answered a body %q", path, r.Body)
			}
		}
	}
	// A body sent along (some proxies forward it) is ignored.
	r := a.do(t, http.MethodPost, "/v1/auth/upload", testkit.Raw("not json at all"), "Content-Type", "text/plain", "Authorization", "Bearer "+tok.AccessToken)
	expectAuthHeaders(t, "POST with a body", r, tok, "alice", "read write")
	// X-Session-Token works too.
	r = a.do(t, http.MethodGet, "/v1/auth", nil, "X-Session-Token", tok.AccessToken)
	expectAuthHeaders(t, "X-Session-Token", r, tok, "alice", "read write")
	// No scopes: an empty header.
	plain := a.create(t, "bob", nil)
	r = a.do(t, http.MethodGet, "/v1/auth", nil, "Authorization", "Bearer "+plain.AccessToken)
	expectAuthHeaders(t, "session without scopes", r, plain, "bob", "")
	// DELETE /v1/auth is a check, not a logout.
	a.expectValid(t, "session after DELETE /v1/auth", tok.AccessToken)
}

func TestForwardAuth_InvalidOrMissingTokenIs401WithWWWAuthenticate(t *testing.T) {
	t.Parallel()
	clock := newClock()
	a := startServer(t, serverSetup{Clock: clock})
	revoked := a.create(t, "u", nil)
	expectStatus(t, "revoke", a.admin(t, http.MethodDelete, "/v1/sessions/"+revoked.SessionID, nil), http.StatusNoContent)
	expiring := a.create(t, "u", nil)
	live := a.create(t, "u", nil)
	for name, hdrs := range map[string][]string{
		"no token":              nil,
		"garbage":               {"Authorization", "Bearer garbage"},
		"empty bearer":          {"Authorization", "Bearer "},
		"basic scheme":          {"Authorization", "Basic " + live.AccessToken},
		"refresh token":         {"Authorization", "Bearer " + live.RefreshToken},
		"unknown token":         {"Authorization", "Bearer sa_" + strings.Repeat("A", 43)},
		"revoked token":         {"Authorization", "Bearer " + revoked.AccessToken},
		"admin key, no session": {"X-API-Key", testAPIKey},
	} {
		for _, method := range []string{http.MethodGet, http.MethodPost, http.MethodHead} {
			for _, path := range []string{"/v1/auth", "/v1/auth/some/path"} {
				r := a.do(t, method, path, nil, hdrs...)
				what := name + ": " + method + " " + path
				if r.Status != http.StatusUnauthorized {
					t.Fatalf("%s: %s, want 401", what, r)
				}
				if !strings.HasPrefix(r.Header.Get("WWW-Authenticate"), "Bearer") {
					t.Errorf("%s: WWW-Authenticate %q, want Bearer", what, r.Header.Get("WWW-Authenticate"))
				}
				for _, h := range []string{"X-Session-Id", "X-User-Id", "X-Session-Scopes", "X-Session-Expires"} {
					if r.Header.Get(h) != "" {
						t.Errorf("%s: a 401 carries %s", what, h)
					}
				}
				if method != http.MethodHead {
					expectError(t, what, r, http.StatusUnauthorized, "unauthenticated")
				}
			}
		}
	}
	clock.Advance(defaultTTL)
	r := a.do(t, http.MethodGet, "/v1/auth", nil, "Authorization", "Bearer "+expiring.AccessToken)
	expectError(t, "expired token", r, http.StatusUnauthorized, "unauthenticated")
	if !strings.HasPrefix(r.Header.Get("WWW-Authenticate"), "Bearer") {
		t.Errorf("expired token: WWW-Authenticate %q", r.Header.Get("WWW-Authenticate"))
	}
}

func TestForwardAuth_CookieAuthAndAutomaticRefresh(t *testing.T) {
	t.Parallel()
	clock := newClock()
	a, b, tok := aliceWithCookies(t, clock, true)
	r := a.withBrowser(t, http.MethodGet, "/v1/auth/app/page", b)
	expectAuthHeaders(t, "cookie", r, tok, "alice", "")
	if v := r.Header.Values("Set-Cookie"); len(v) != 0 {
		t.Errorf("a valid cookie was answered with Set-Cookie %v", v)
	}

	clock.Advance(defaultTTL + time.Second)
	r = a.withBrowser(t, http.MethodGet, "/v1/auth/app/page", b)
	expectStatus(t, "expired access cookie with a valid refresh cookie", r, http.StatusOK)
	old := *b
	if !b.take(t, r) || b.session == old.session || b.refresh == old.refresh {
		t.Fatalf("automatic refresh through /v1/auth set %v, want two new cookies", r.Header.Values("Set-Cookie"))
	}
	if r.Header.Get("X-Session-Id") != tok.SessionID || r.Header.Get("X-User-Id") != "alice" {
		t.Errorf("refreshed forward auth: X-Session-Id %q X-User-Id %q", r.Header.Get("X-Session-Id"), r.Header.Get("X-User-Id"))
	}
	exp, _ := time.Parse(time.RFC3339, r.Header.Get("X-Session-Expires"))
	if !exp.Equal(clock.Now().Add(defaultTTL)) {
		t.Errorf("X-Session-Expires %q, want the new access token's expiry %v", r.Header.Get("X-Session-Expires"), clock.Now().Add(defaultTTL))
	}
	a.expectValid(t, "access token from the refreshed cookie", unsign(b.session))
	expectAuthHeaders(t, "the refreshed cookies", a.withBrowser(t, http.MethodPost, "/v1/auth", b),
		tokenResponse{SessionID: tok.SessionID, AccessExpiresAt: clock.Now().Add(defaultTTL)}, "alice", "")

	// A tampered cookie is 401 with WWW-Authenticate.
	r = a.do(t, http.MethodGet, "/v1/auth", nil, "Cookie", cookieHeader(b.sessionName, b.session+"x"))
	expectError(t, "tampered cookie", r, http.StatusUnauthorized, "unauthenticated")
	if !strings.HasPrefix(r.Header.Get("WWW-Authenticate"), "Bearer") {
		t.Errorf("tampered cookie: WWW-Authenticate %q", r.Header.Get("WWW-Authenticate"))
	}
}
