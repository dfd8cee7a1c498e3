package httpapi_test

// Strict request bodies (field names match exactly, a duplicated or unknown
// name is a 400, an explicit empty app is a 400, a null member still counts
// as left out) and Cache-Control: no-store on every answer that carries a
// token, shows a session or introspects a token, and on error answers
// (RFC 6749 §5.1).

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/sessiond/sessiond/httpapi"
	"github.com/sessiond/sessiond/transport/testkit"
)

// startStrict starts a node that trusts the test issuer, sets dev-mode
// cookies, and knows alice with alicePassword.
func startStrict(t *testing.T) (*testAPI, *idp) {
	t.Helper()
	p := newIDP(t)
	keys := testCookieKeys(t)
	a := startServer(t, serverSetup{API: func(c *httpapi.Config) {
		c.Exchange = p.verifier
		c.CookieKeys = keys
		c.CookieDevMode = true
	}})
	a.putUser(t, "alice", aliceEmail, alicePassword)
	return a, p
}

// expectNoSessions checks that the users have no active session.
func (a *testAPI) expectNoSessions(t testing.TB, what string, users ...string) {
	t.Helper()
	for _, u := range users {
		r := a.admin(t, http.MethodGet, "/v1/users/"+u+"/sessions", nil)
		expectStatus(t, what+": sessions of "+u, r, http.StatusOK)
		if l := decode[sessionList](t, r); len(l.Sessions) != 0 {
			t.Errorf("%s: %s has %d sessions, want none", what, u, len(l.Sessions))
		}
	}
}

// badJSON is a request with a JSON body the API must refuse with 400
// bad_request, naming mention; admin sends the admin key.
type badJSON struct {
	name, method, path, body, mention string
	admin                             bool
}

// expectBadJSON sends each request and checks that it was refused.
func (a *testAPI) expectBadJSON(t testing.TB, reqs []badJSON) {
	t.Helper()
	for _, c := range reqs {
		hdrs := []string{"Content-Type", "application/json"}
		if c.admin {
			hdrs = append(hdrs, "X-API-Key", testAPIKey)
		}
		expectError(t, c.name, a.do(t, c.method, c.path, testkit.Raw(c.body), hdrs...), http.StatusBadRequest, "bad_request", c.mention)
	}
}

func TestStrictJSON_CaseVariantNamesAre400(t *testing.T) {
	t.Parallel()
	a, p := startStrict(t)
	jwt := p.rs256(t, idpClaims("carol", time.Now(), nil))
	a.expectBadJSON(t, []badJSON{
		{"create, every name in capitals", http.MethodPost, "/v1/sessions", `{"USER_ID":"u","App":"web"}`, "USER_ID", true},
		{"create, one name capitalised", http.MethodPost, "/v1/sessions", `{"user_id":"u","App":"web"}`, "App", true},
		{"create, device field capitalised", http.MethodPost, "/v1/sessions", `{"user_id":"u","device":{"Label":"x"}}`, "Label", true},
		{"login", http.MethodPost, "/v1/login", `{"User_Id":"alice","password":"` + alicePassword + `"}`, "User_Id", false},
		{"exchange", http.MethodPost, "/v1/token/exchange", `{"Subject_Token":"` + jwt + `","subject_token_type":"` + jwtType + `"}`, "Subject_Token", false},
		{"refresh", http.MethodPost, "/v1/refresh", `{"REFRESH_TOKEN":"sr_x"}`, "REFRESH_TOKEN", false},
		{"introspect", http.MethodPost, "/v1/introspect", `{"Token":"sa_x"}`, "Token", true},
		{"force logout", http.MethodDelete, "/v1/users/u/sessions", `{"Reason":"admin"}`, "Reason", true},
		{"bulk revoke", http.MethodPost, "/v1/sessions/revoke", `{"Apps":["web"]}`, "Apps", true},
		{"policy", http.MethodPut, "/v1/policy", `{"Access_TTL":"1m"}`, "Access_TTL", true},
		{"policy lockout", http.MethodPut, "/v1/policy", `{"lockout":{"Max_Failures":1}}`, "Max_Failures", true},
		{"user", http.MethodPut, "/v1/users/u", `{"Password":"` + alicePassword + `"}`, "Password", true},
		{"user limits", http.MethodPut, "/v1/users/u/limits", `{"MAX_SESSIONS":1}`, "MAX_SESSIONS", true},
	})
	a.expectNoSessions(t, "after case-variant creates", "u", "carol")
	expectError(t, "user after a case-variant PUT", a.admin(t, http.MethodGet, "/v1/users/u", nil), http.StatusNotFound, "not_found")
}

func TestStrictJSON_DuplicateKeyIs400AndCreatesNothing(t *testing.T) {
	t.Parallel()
	a, p := startStrict(t)
	jwt := p.rs256(t, idpClaims("carol", time.Now(), nil))
	tok := a.create(t, "u", nil)
	a.expectBadJSON(t, []badJSON{
		{"create, user_id twice", http.MethodPost, "/v1/sessions", `{"user_id":"a","user_id":"b"}`, "user_id", true},
		{"create, same value twice", http.MethodPost, "/v1/sessions", `{"user_id":"a","app":"web","app":"web"}`, "app", true},
		{"create, device label twice", http.MethodPost, "/v1/sessions", `{"user_id":"a","device":{"label":"x","label":"y"}}`, "label", true},
		{"create, attribute twice", http.MethodPost, "/v1/sessions", `{"user_id":"a","attributes":{"k":"1","k":"2"}}`, "k", true},
		{"create, escaped spelling of the same name", http.MethodPost, "/v1/sessions", `{"user_id":"a","user\u005fid":"b"}`, "user_id", true},
		{"login", http.MethodPost, "/v1/login", `{"user_id":"alice","password":"wrong password","password":"` + alicePassword + `"}`, "password", false},
		{"exchange", http.MethodPost, "/v1/token/exchange", `{"subject_token":"` + jwt + `","subject_token":"` + jwt + `","subject_token_type":"` + jwtType + `"}`, "subject_token", false},
		{"refresh", http.MethodPost, "/v1/refresh", `{"refresh_token":"sr_x","refresh_token":"` + tok.RefreshToken + `"}`, "refresh_token", false},
		{"introspect", http.MethodPost, "/v1/introspect", `{"token":"x","token":"` + tok.AccessToken + `"}`, "token", true},
		{"force logout", http.MethodDelete, "/v1/users/u/sessions", `{"reason":"admin","reason":"password_reset"}`, "reason", true},
		{"bulk revoke", http.MethodPost, "/v1/sessions/revoke", `{"apps":["x"],"apps":["default"]}`, "apps", true},
		{"policy", http.MethodPut, "/v1/policy", `{"access_ttl":"1m","access_ttl":"2m"}`, "access_ttl", true},
		{"policy lockout", http.MethodPut, "/v1/policy", `{"lockout":{"max_failures":1,"max_failures":2}}`, "max_failures", true},
		{"policy lockout twice", http.MethodPut, "/v1/policy", `{"lockout":{"max_failures":1},"lockout":null}`, "lockout", true},
		{"user", http.MethodPut, "/v1/users/v", `{"password":"` + alicePassword + `","password":"` + alicePassword + `"}`, "password", true},
		{"user limits", http.MethodPut, "/v1/users/u/limits", `{"max_sessions":null,"max_sessions":1}`, "max_sessions", true},
	})
	a.expectNoSessions(t, "after duplicate-key requests", "a", "b", "alice", "carol")
	a.expectValid(t, "the session after duplicate-key revocations and refreshes", tok.AccessToken)
	if r := a.admin(t, http.MethodGet, "/v1/users/u", nil); r.Status != http.StatusNotFound {
		if u := decode[userRecord](t, r); u.MaxSessions != nil {
			t.Errorf("a duplicate-key PUT limits set max_sessions %d", *u.MaxSessions)
		}
	}
	expectError(t, "user after a duplicate-key PUT", a.admin(t, http.MethodGet, "/v1/users/v", nil), http.StatusNotFound, "not_found")
	r := a.admin(t, http.MethodGet, "/v1/policy", nil)
	if pol := decode[map[string]any](t, r); pol["access_ttl"] != "15m0s" {
		t.Errorf("a duplicate-key PUT /v1/policy changed the policy: %s", r.Body)
	}
}

func TestStrictJSON_UnknownFieldsAre400(t *testing.T) {
	t.Parallel()
	a, p := startStrict(t)
	jwt := p.rs256(t, idpClaims("carol", time.Now(), nil))
	a.expectBadJSON(t, []badJSON{
		{"create", http.MethodPost, "/v1/sessions", `{"user_id":"u","colour":"red"}`, "colour", true},
		{"create, in device", http.MethodPost, "/v1/sessions", `{"user_id":"u","device":{"os":"linux"}}`, "device.os", true},
		{"login", http.MethodPost, "/v1/login", `{"user_id":"alice","password":"` + alicePassword + `","otp":"1"}`, "otp", false},
		{"exchange", http.MethodPost, "/v1/token/exchange", `{"subject_token":"` + jwt + `","subject_token_type":"` + jwtType + `","audience":"x"}`, "audience", false},
		{"refresh", http.MethodPost, "/v1/refresh", `{"refresh_token":"sr_x","scope":"x"}`, "scope", false},
		{"introspect", http.MethodPost, "/v1/introspect", `{"token":"sa_x","client_id":"x"}`, "client_id", true},
		{"policy", http.MethodPut, "/v1/policy", `{"session_ttl":"1m"}`, "session_ttl", true},
		{"policy lockout", http.MethodPut, "/v1/policy", `{"lockout":{"attempts":3}}`, "attempts", true},
		{"user limits", http.MethodPut, "/v1/users/u/limits", `{"max_sessions":1,"max_apps":1}`, "max_apps", true},
	})
	a.expectNoSessions(t, "after unknown-field requests", "u", "alice", "carol")
}

func TestStrictJSON_EmptyAppIs400AbsentAppIsDefault(t *testing.T) {
	t.Parallel()
	a, p := startStrict(t)
	now := time.Now()
	login := func(extra map[string]any) map[string]any {
		body := map[string]any{"user_id": "alice", "password": alicePassword}
		for k, v := range extra {
			body[k] = v
		}
		return body
	}
	empty := map[string]any{"app": ""}
	expectError(t, "create with app \"\"", a.admin(t, http.MethodPost, "/v1/sessions", map[string]any{"user_id": "u", "app": ""}),
		http.StatusBadRequest, "bad_request", "app")
	expectError(t, "login with app \"\"", a.login(t, login(empty)), http.StatusBadRequest, "bad_request", "app")
	expectError(t, "exchange with app \"\"", a.exchange(t, p.rs256(t, idpClaims("carol", now, nil)), empty, ""),
		http.StatusBadRequest, "bad_request", "app")
	a.expectNoSessions(t, "after app \"\"", "u", "alice", "carol")

	// Left out (or null, which says the same) the app is "default".
	for _, absent := range []map[string]any{nil, {"app": nil}} {
		what := "app left out"
		if absent != nil {
			what = "app null"
		}
		issued := []tokenResponse{
			a.create(t, "u", absent),
			a.loginOK(t, "login, "+what, login(absent)),
		}
		r := a.exchange(t, p.rs256(t, idpClaims("carol", now, nil)), absent, "")
		expectStatus(t, "exchange, "+what, r, http.StatusCreated)
		issued = append(issued, decode[tokenResponse](t, r))
		for _, tok := range issued {
			if s := a.expectValid(t, what, tok.AccessToken); s.App != "default" {
				t.Errorf("%s: session of %s has app %q, want default", what, s.UserID, s.App)
			}
		}
	}
}

// expectNoStore checks that an answer forbids caches to store it.
func expectNoStore(t testing.TB, what string, r response, status int) {
	t.Helper()
	if r.Status != status {
		t.Fatalf("%s: got %s, want %d", what, r, status)
	}
	if cc := r.Header.Values("Cache-Control"); len(cc) != 1 || cc[0] != "no-store" {
		t.Errorf("%s (%d): Cache-Control %q, want no-store", what, r.Status, cc)
	}
}

func TestCacheControl_NoStoreOnEveryTokenAnswer(t *testing.T) {
	t.Parallel()
	a, p := startStrict(t)
	now := time.Now()
	r := a.admin(t, http.MethodPost, "/v1/sessions", map[string]any{"user_id": "u"})
	expectNoStore(t, "create", r, http.StatusCreated)
	expectNoStore(t, "refresh", a.refresh(t, decode[tokenResponse](t, r).RefreshToken), http.StatusOK)
	expectNoStore(t, "login", a.login(t, map[string]any{"email": aliceEmail, "password": alicePassword}), http.StatusCreated)
	r = a.do(t, http.MethodPost, "/v1/login?cookie=true", map[string]any{"user_id": "alice", "password": alicePassword})
	expectNoStore(t, "login ?cookie=true", r, http.StatusCreated)
	expectNoStore(t, "exchange", a.exchange(t, p.rs256(t, idpClaims("carol", now, nil)), nil, ""), http.StatusCreated)
	expectNoStore(t, "exchange ?cookie=true", a.exchange(t, p.es256(t, idpClaims("carol", now, nil)), nil, "?cookie=true"), http.StatusCreated)
}

func TestCacheControl_NoStoreOnSessionAndIntrospectionAnswers(t *testing.T) {
	t.Parallel()
	a, _ := startStrict(t)
	tok := a.create(t, "u", nil)
	b := newBrowser(true)
	a.cookieLogin(t, b, map[string]any{"user_id": "alice", "password": alicePassword})

	expectNoStore(t, "GET /v1/session", a.validate(t, tok.AccessToken), http.StatusOK)
	expectNoStore(t, "GET /v1/session with the cookie", a.withBrowser(t, http.MethodGet, "/v1/session", b), http.StatusOK)
	expectNoStore(t, "GET /v1/auth", a.do(t, http.MethodGet, "/v1/auth", nil, "Authorization", "Bearer "+tok.AccessToken), http.StatusOK)
	expectNoStore(t, "GET /v1/sessions/{id}", a.admin(t, http.MethodGet, "/v1/sessions/"+tok.SessionID, nil), http.StatusOK)
	expectNoStore(t, "GET /v1/users/{id}/sessions", a.admin(t, http.MethodGet, "/v1/users/u/sessions", nil), http.StatusOK)
	expectNoStore(t, "GET /v1/users/{id}/sessions, none", a.admin(t, http.MethodGet, "/v1/users/nobody/sessions", nil), http.StatusOK)
	expectNoStore(t, "GET /v1/me/sessions", a.do(t, http.MethodGet, "/v1/me/sessions", nil, "Authorization", "Bearer "+tok.AccessToken), http.StatusOK)
	expectNoStore(t, "POST /v1/introspect (JSON)", a.admin(t, http.MethodPost, "/v1/introspect", map[string]string{"token": tok.RefreshToken}), http.StatusOK)
	expectNoStore(t, "POST /v1/introspect (form)", a.admin(t, http.MethodPost, "/v1/introspect",
		testkit.Raw(url.Values{"token": {tok.AccessToken}}.Encode()), "Content-Type", "application/x-www-form-urlencoded"), http.StatusOK)
	expectNoStore(t, "POST /v1/introspect (unknown token)", a.admin(t, http.MethodPost, "/v1/introspect", map[string]string{"token": "sa_unknown"}), http.StatusOK)
}

func TestCacheControl_NoStoreOnErrorAnswers(t *testing.T) {
	t.Parallel()
	a, p := startStrict(t)
	tok := a.create(t, "u", nil)
	a.putLimit(t, "limited", 1)
	a.create(t, "limited", nil)
	garbage := []string{"Authorization", "Bearer sa_" + strings.Repeat("A", 43)}
	for _, c := range []struct {
		name   string
		r      response
		status int
	}{
		{"create without the key", a.do(t, http.MethodPost, "/v1/sessions", map[string]any{"user_id": "u"}), http.StatusUnauthorized},
		{"create, bad body", a.admin(t, http.MethodPost, "/v1/sessions", map[string]any{"user_id": "a b"}), http.StatusBadRequest},
		{"login, wrong password", a.login(t, map[string]any{"user_id": "alice", "password": "not the password"}), http.StatusUnauthorized},
		{"exchange, expired token", a.exchange(t, p.rs256(t, idpClaims("carol", time.Now().Add(-time.Hour), nil)), nil, ""), http.StatusUnauthorized},
		{"create over the user's limit (the answer lists sessions)", a.admin(t, http.MethodPost, "/v1/sessions", map[string]any{"user_id": "limited"}), http.StatusConflict},
		{"refresh, unknown token", a.refresh(t, "sr_"+strings.Repeat("A", 43)), http.StatusUnauthorized},
		{"GET /v1/session, unknown token", a.do(t, http.MethodGet, "/v1/session", nil, garbage...), http.StatusUnauthorized},
		{"GET /v1/auth, unknown token", a.do(t, http.MethodGet, "/v1/auth", nil, garbage...), http.StatusUnauthorized},
		{"GET /v1/sessions/{id}, unknown", a.admin(t, http.MethodGet, "/v1/sessions/nope", nil), http.StatusNotFound},
		{"GET /v1/users/{id}/sessions without the key", a.do(t, http.MethodGet, "/v1/users/u/sessions", nil), http.StatusUnauthorized},
		{"POST /v1/introspect without the key", a.do(t, http.MethodPost, "/v1/introspect", map[string]string{"token": tok.AccessToken}), http.StatusUnauthorized},
	} {
		expectNoStore(t, c.name, c.r, c.status)
	}
}

// A body member sent as null counts as left out, as it did before the strict
// decoder: the query's reason stands.
func TestForceLogout_NullInTheBodyKeepsTheQueryReason(t *testing.T) {
	t.Parallel()
	a := startAPI(t)
	tok := a.create(t, "judy", nil)
	keep := a.create(t, "judy", nil)
	r := a.admin(t, http.MethodDelete, "/v1/users/judy/sessions?reason=password_reset&except="+keep.SessionID,
		testkit.Raw(`{"reason":null,"except":null}`), "Content-Type", "application/json")
	expectStatus(t, "force logout with null body fields", r, http.StatusOK)
	if s := a.getSession(t, tok.SessionID); s.RevokeReason != "password_reset" {
		t.Errorf("revoke_reason %q, want password_reset from the query", s.RevokeReason)
	}
	a.expectValid(t, "the session named by the query's except", keep.AccessToken)
}
