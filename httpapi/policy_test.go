package httpapi_test

// The replicated policy (docs/logins.md#policy-settings) through GET/PUT
// /v1/policy, and what it does to sessions: limits, lifetimes, the idle timeout
// and the refresh reuse grace. Time moves on the node's clock, never by
// sleeping.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sessiond/sessiond/transport/testkit"
)

// specDefaults is the documented default policy
// (docs/logins.md#policy-settings) as GET /v1/policy answers it.
func specDefaults() map[string]any {
	return map[string]any{
		"access_ttl":                      "15m0s",
		"refresh_ttl":                     "22m30s",
		"refresh_ttl_follows_access":      true,
		"absolute_ttl":                    "720h0m0s",
		"idle_timeout":                    "0s",
		"sliding_refresh":                 false,
		"remember_me_ttl":                 "720h0m0s",
		"max_sessions_per_user":           float64(0),
		"app_max_sessions":                map[string]any{},
		"on_session_limit":                "deny",
		"lockout":                         map[string]any{"max_failures": float64(5), "window": "15m0s", "duration": "15m0s"},
		"force_logout_on_password_change": true,
		"refresh_reuse_grace":             "0s",
	}
}

// startOnClock starts a node on a clock of its own (newClock) and changes
// its policy as given.
func startOnClock(t *testing.T, policy map[string]any) (*testAPI, *testkit.Clock) {
	t.Helper()
	clock := newClock()
	a := startServer(t, serverSetup{Clock: clock})
	a.putPolicy(t, policy)
	return a, clock
}

// getPolicy is GET /v1/policy as a generic map.
func (a *testAPI) getPolicy(t testing.TB) map[string]any {
	t.Helper()
	r := a.admin(t, http.MethodGet, "/v1/policy", nil)
	expectStatus(t, "GET /v1/policy", r, http.StatusOK)
	return decode[map[string]any](t, r)
}

func expectPolicy(t testing.TB, what string, got, want map[string]any) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		gotJSON, _ := json.Marshal(got)
		wantJSON, _ := json.Marshal(want)
		t.Errorf("%s: policy\n%s\nwant\n%s", what, gotJSON, wantJSON)
	}
}

// with returns a copy of m with the changes applied.
func with(m map[string]any, changes map[string]any) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	for k, v := range changes {
		out[k] = v
	}
	return out
}

// customPolicy changes every setting from its default.
var customPolicy = map[string]any{
	"access_ttl":                      "10m",
	"refresh_ttl":                     "1h",
	"absolute_ttl":                    "48h",
	"idle_timeout":                    "30m",
	"sliding_refresh":                 true,
	"remember_me_ttl":                 "240h",
	"max_sessions_per_user":           5,
	"app_max_sessions":                map[string]int{"web": 2, "mobile": 3},
	"on_session_limit":                "evict_oldest",
	"lockout":                         map[string]any{"max_failures": 3, "window": "5m", "duration": "10m"},
	"force_logout_on_password_change": false,
	"refresh_reuse_grace":             "30s",
}

// customPolicyAnswer is customPolicy as GET answers it.
var customPolicyAnswer = map[string]any{
	"access_ttl":                      "10m0s",
	"refresh_ttl":                     "1h0m0s",
	"refresh_ttl_follows_access":      false,
	"absolute_ttl":                    "48h0m0s",
	"idle_timeout":                    "30m0s",
	"sliding_refresh":                 true,
	"remember_me_ttl":                 "240h0m0s",
	"max_sessions_per_user":           float64(5),
	"app_max_sessions":                map[string]any{"mobile": float64(3), "web": float64(2)},
	"on_session_limit":                "evict_oldest",
	"lockout":                         map[string]any{"max_failures": float64(3), "window": "5m0s", "duration": "10m0s"},
	"force_logout_on_password_change": false,
	"refresh_reuse_grace":             "30s",
}

func TestPolicy_PutReplacesTheWholeObjectWithDefaultsForWhatIsLeftOut(t *testing.T) {
	t.Parallel()
	a := startServer(t, serverSetup{})
	expectPolicy(t, "GET at start", a.getPolicy(t), specDefaults())

	r := a.admin(t, http.MethodPut, "/v1/policy", customPolicy)
	expectStatus(t, "PUT custom policy", r, http.StatusOK)
	answer := decode[map[string]any](t, r)
	if idx, ok := answer["index"].(float64); !ok || uint64(idx) != headerIndex(t, r) || idx == 0 {
		t.Errorf("PUT answer index %v, X-Sessiond-Index %d", answer["index"], headerIndex(t, r))
	}
	delete(answer, "index")
	expectPolicy(t, "PUT answer", answer, customPolicyAnswer)
	expectPolicy(t, "GET after PUT", a.getPolicy(t), customPolicyAnswer)

	// Each field left out takes its default, not its previous value.
	a.putPolicy(t, map[string]any{})
	expectPolicy(t, "GET after PUT {}", a.getPolicy(t), specDefaults())

	a.putPolicy(t, customPolicy)
	a.putPolicy(t, map[string]any{"max_sessions_per_user": 7})
	expectPolicy(t, "GET after PUT of one field", a.getPolicy(t), with(specDefaults(), map[string]any{"max_sessions_per_user": float64(7)}))

	// Inside lockout too.
	a.putPolicy(t, map[string]any{"lockout": map[string]any{"max_failures": 2}})
	expectPolicy(t, "GET after PUT of lockout.max_failures", a.getPolicy(t), with(specDefaults(),
		map[string]any{"lockout": map[string]any{"max_failures": float64(2), "window": "15m0s", "duration": "15m0s"}}))
	a.putPolicy(t, map[string]any{"lockout": nil})
	expectPolicy(t, "GET after PUT of lockout null", a.getPolicy(t), specDefaults())

	// Durations in any Go syntax, answered as Go prints them.
	a.putPolicy(t, map[string]any{"access_ttl": "90m", "absolute_ttl": "36h", "idle_timeout": "1h30m", "refresh_reuse_grace": "1m30s"})
	expectPolicy(t, "GET after PUT of Go durations", a.getPolicy(t), with(specDefaults(), map[string]any{
		"access_ttl": "1h30m0s", "refresh_ttl": "2h15m0s", "absolute_ttl": "36h0m0s", "idle_timeout": "1h30m0s", "refresh_reuse_grace": "1m30s",
	}))
	expectError(t, "PUT without key", a.do(t, http.MethodPut, "/v1/policy", map[string]any{}), http.StatusUnauthorized, "unauthenticated")
}

func TestPolicy_RefreshTTLFollowsAccessUnlessSet(t *testing.T) {
	t.Parallel()
	a := startServer(t, serverSetup{})
	for _, c := range []struct {
		name        string
		put         map[string]any
		refreshTTL  string
		follows     bool
		sessionSpan time.Duration
	}{
		{"refresh_ttl left out", map[string]any{"access_ttl": "1h"}, "1h30m0s", true, 90 * time.Minute},
		{"refresh_ttl null", map[string]any{"access_ttl": "20m", "refresh_ttl": nil}, "30m0s", true, 30 * time.Minute},
		{"explicit refresh_ttl", map[string]any{"access_ttl": "1h", "refresh_ttl": "2h"}, "2h0m0s", false, 2 * time.Hour},
		{"explicit, equal to 1.5 × access", map[string]any{"access_ttl": "1h", "refresh_ttl": "90m"}, "1h30m0s", false, 90 * time.Minute},
		{"explicit, shorter than 1.5 × a new access", map[string]any{"access_ttl": "2h", "refresh_ttl": "90m"}, "1h30m0s", false, 90 * time.Minute},
		{"explicit, follows false", map[string]any{"access_ttl": "2h", "refresh_ttl": "5h", "refresh_ttl_follows_access": false}, "5h0m0s", false, 5 * time.Hour},
		{"follows false without refresh_ttl", map[string]any{"access_ttl": "2h", "refresh_ttl_follows_access": false}, "3h0m0s", true, 3 * time.Hour},
	} {
		a.putPolicy(t, c.put)
		p := a.getPolicy(t)
		if p["refresh_ttl"] != c.refreshTTL || p["refresh_ttl_follows_access"] != c.follows {
			t.Errorf("%s: refresh_ttl %v follows %v, want %s %v", c.name, p["refresh_ttl"], p["refresh_ttl_follows_access"], c.refreshTTL, c.follows)
		}
		before := time.Now()
		tok := a.create(t, "follower", nil)
		if !near(tok.RefreshExpiresAt, before.Add(c.sessionSpan), 10*time.Second) {
			t.Errorf("%s: session refresh_expires_at %v, want about now+%s", c.name, tok.RefreshExpiresAt, c.sessionSpan)
		}
	}
}

func TestPolicy_OutOfRangeValuesAre400NamingTheField(t *testing.T) {
	t.Parallel()
	a := startServer(t, serverSetup{})
	a.putPolicy(t, customPolicy)
	for _, c := range []struct {
		body  string
		field string
	}{
		{`{"access_ttl":"30s"}`, "access_ttl"},
		{`{"access_ttl":"129601m"}`, "access_ttl"},
		{`{"access_ttl":"-15m"}`, "access_ttl"},
		{`{"access_ttl":"15"}`, "access_ttl"},
		{`{"access_ttl":900}`, "access_ttl"},
		{`{"refresh_ttl":"0s"}`, "refresh_ttl"},
		{`{"refresh_ttl":"30s"}`, "refresh_ttl"},
		{`{"refresh_ttl":"-1h"}`, "refresh_ttl"},
		{`{"refresh_ttl":"600000m"}`, "refresh_ttl"},
		{`{"refresh_ttl":"soon"}`, "refresh_ttl"},
		{`{"absolute_ttl":"30s"}`, "absolute_ttl"},
		{`{"absolute_ttl":"8761h"}`, "absolute_ttl"},
		{`{"idle_timeout":"30s"}`, "idle_timeout"},
		{`{"idle_timeout":"721h"}`, "idle_timeout"},
		{`{"idle_timeout":"-1m"}`, "idle_timeout"},
		{`{"remember_me_ttl":"30m"}`, "remember_me_ttl"},
		{`{"remember_me_ttl":"8761h"}`, "remember_me_ttl"},
		{`{"max_sessions_per_user":10001}`, "max_sessions_per_user"},
		{`{"max_sessions_per_user":-1}`, "max_sessions_per_user"},
		{`{"max_sessions_per_user":"5"}`, "max_sessions_per_user"},
		{`{"max_sessions_per_user":1.5}`, "max_sessions_per_user"},
		{`{"app_max_sessions":{"x":0}}`, "app_max_sessions"},
		{`{"app_max_sessions":{"x":10001}}`, "app_max_sessions"},
		{`{"app_max_sessions":{"x":-1}}`, "app_max_sessions"},
		{`{"app_max_sessions":{"bad app":1}}`, "app_max_sessions"},
		{`{"app_max_sessions":{"":1}}`, "app_max_sessions"},
		{`{"app_max_sessions":[1]}`, "app_max_sessions"},
		{`{"on_session_limit":"kick"}`, "on_session_limit"},
		{`{"on_session_limit":"DENY"}`, "on_session_limit"},
		{`{"refresh_reuse_grace":"6m"}`, "refresh_reuse_grace"},
		{`{"refresh_reuse_grace":"-1s"}`, "refresh_reuse_grace"},
		{`{"sliding_refresh":"yes"}`, "sliding_refresh"},
		{`{"force_logout_on_password_change":1}`, "force_logout_on_password_change"},
		{`{"lockout":{"window":"bad"}}`, "lockout.window"},
		{`{"lockout":{"duration":"forever"}}`, "lockout.duration"},
		{`{"lockout":{"max_failures":3,"window":"0s"}}`, "lockout.window"},
		{`{"lockout":{"max_failures":3,"duration":"0s"}}`, "lockout.duration"},
		{`{"lockout":{"max_failures":1001}}`, "lockout.max_failures"},
		{`{"lockout":{"max_failures":-1}}`, "lockout.max_failures"},
		{`{"lockout":{"max_failures":"3"}}`, "max_failures"},
		{`{"lockout":"5"}`, "lockout"},
		{`{"lockout":[]}`, "lockout"},
		// Unknown fields, at the top and inside lockout.
		{`{"acces_ttl":"15m"}`, "acces_ttl"},
		{`{"lockout":{"max_failure":3}}`, "max_failure"},
		{`{"index":12}`, "index"},
	} {
		r := a.admin(t, http.MethodPut, "/v1/policy", testkit.Raw(c.body), "Content-Type", "application/json")
		expectError(t, c.body, r, http.StatusBadRequest, "bad_request", c.field)
	}
	for _, body := range []string{"", "null", "[]", `{"access_ttl":"15m"} {}`} {
		r := a.admin(t, http.MethodPut, "/v1/policy", testkit.Raw(body), "Content-Type", "application/json")
		expectError(t, "body "+body, r, http.StatusBadRequest, "bad_request")
	}
	expectPolicy(t, "GET after the refused PUTs", a.getPolicy(t), customPolicyAnswer)
	// The bounds themselves are accepted.
	a.putPolicy(t, map[string]any{
		"access_ttl": "1m", "refresh_ttl": "525600m", "absolute_ttl": "8760h", "idle_timeout": "720h",
		"remember_me_ttl": "1h", "max_sessions_per_user": 10000, "app_max_sessions": map[string]int{"a": 1, "b": 10000},
		"refresh_reuse_grace": "5m", "lockout": map[string]any{"max_failures": 0, "window": "0s", "duration": "0s"},
	})
	a.putPolicy(t, map[string]any{"access_ttl": "129600m", "remember_me_ttl": "8760h", "absolute_ttl": "1m", "idle_timeout": "1m", "refresh_reuse_grace": "0s"})
}

func TestPolicy_GetAnswerPutBackChangesNothing(t *testing.T) {
	t.Parallel()
	a := startServer(t, serverSetup{})
	for _, p := range []map[string]any{
		{},
		customPolicy,
		with(customPolicy, map[string]any{"refresh_ttl": nil, "app_max_sessions": map[string]int{}, "lockout": map[string]any{"max_failures": 0}}),
	} {
		a.putPolicy(t, p)
		r := a.admin(t, http.MethodGet, "/v1/policy", nil)
		expectStatus(t, "GET", r, http.StatusOK)
		before := decode[map[string]any](t, r)
		expectStatus(t, "PUT the GET answer back", a.admin(t, http.MethodPut, "/v1/policy", testkit.Raw(r.Body), "Content-Type", "application/json"), http.StatusOK)
		expectPolicy(t, "GET after putting the GET answer back", a.getPolicy(t), before)
	}
}

func TestPolicy_ChangeAppliesToSessionsCreatedAfterIt(t *testing.T) {
	t.Parallel()
	clock := newClock()
	a := startServer(t, serverSetup{Clock: clock})
	t0 := clock.Now()
	old := a.create(t, "u", nil)
	oldRemember := a.create(t, "u", map[string]any{"remember_me": true})
	a.putPolicy(t, map[string]any{"access_ttl": "30m", "refresh_ttl": "2h", "absolute_ttl": "3h", "remember_me_ttl": "5h", "idle_timeout": "10m"})
	fresh := a.create(t, "u", nil)

	for _, c := range []struct {
		name                    string
		tok                     tokenResponse
		access, refresh, absEnd time.Duration
	}{
		{"session made before the change", old, defaultTTL, refreshTTL, absoluteTTL},
		{"remember-me session made before the change", oldRemember, defaultTTL, absoluteTTL, absoluteTTL},
		{"session made after the change", fresh, 30 * time.Minute, 2 * time.Hour, 3 * time.Hour},
	} {
		s := a.getSession(t, c.tok.SessionID)
		if !s.AccessExpiresAt.Equal(t0.Add(c.access)) || !s.RefreshExpiresAt.Equal(t0.Add(c.refresh)) || !s.ExpiresAt.Equal(t0.Add(c.absEnd)) {
			t.Errorf("%s: expiries %v %v %v, want now + %s, %s, %s", c.name, s.AccessExpiresAt, s.RefreshExpiresAt, s.ExpiresAt, c.access, c.refresh, c.absEnd)
		}
	}
	// The idle timeout is the new session's only: 11 minutes without use
	// end it, not the older ones.
	clock.Advance(11 * time.Minute)
	a.expectValid(t, "session made before the idle timeout was set", old.AccessToken)
	a.expectInvalid(t, "session made after, idle for 11 minutes", fresh.AccessToken)
}

// --- Session limits ------------------------------------------------------

func (a *testAPI) putLimit(t testing.TB, user string, limit any) {
	t.Helper()
	r := a.admin(t, http.MethodPut, "/v1/users/"+user+"/limits", map[string]any{"max_sessions": limit})
	expectStatus(t, "PUT limits of "+user, r, http.StatusOK)
	got := decode[map[string]any](t, r)
	want := limit
	if n, ok := limit.(int); ok {
		want = float64(n)
	}
	if got["user_id"] != user || got["max_sessions"] != want {
		t.Errorf("PUT limits answered %s", r.Body)
	}
}

// limitError is a 409 session_limit_exceeded body.
type limitError struct {
	Error struct {
		Code     string            `json:"code"`
		Message  string            `json:"message"`
		Sessions []json.RawMessage `json:"sessions"`
	} `json:"error"`
}

// expectLimit checks a 409 session_limit_exceeded that lists exactly the
// sessions given (metadata only, no token anywhere) and returns the list.
func expectLimit(t testing.TB, what string, r response, listed ...tokenResponse) []sessionInfo {
	t.Helper()
	if r.Status != http.StatusConflict {
		t.Fatalf("%s: got %s, want 409 session_limit_exceeded", what, r)
	}
	body := decode[limitError](t, r)
	if body.Error.Code != "session_limit_exceeded" || body.Error.Message == "" {
		t.Fatalf("%s: error %s, want code session_limit_exceeded with a message", what, r.Body)
	}
	var outer map[string]map[string]json.RawMessage
	json.Unmarshal(r.Body, &outer)
	if len(outer) != 1 || len(outer["error"]) != 3 {
		t.Errorf("%s: body %s, want {\"error\": {code, message, sessions}}", what, r.Body)
	}
	want := map[string]bool{}
	for _, tok := range listed {
		want[tok.SessionID] = true
		for _, secret := range []string{tok.AccessToken, tok.RefreshToken} {
			if secret != "" && bytes.Contains(r.Body, []byte(secret)) {
				t.Errorf("%s: the 409 body holds a token: %s", what, r.Body)
			}
		}
	}
	var out []sessionInfo
	for _, raw := range body.Error.Sessions {
		var fields map[string]any
		json.Unmarshal(raw, &fields)
		for k := range fields {
			if strings.Contains(k, "token") || strings.Contains(k, "hash") {
				t.Errorf("%s: a listed session has a field %q: %s", what, k, raw)
			}
		}
		for _, k := range []string{"session_id", "user_id", "app", "created_at", "last_seen_at", "expires_at", "device", "status"} {
			if _, ok := fields[k]; !ok {
				t.Errorf("%s: a listed session lacks %q: %s", what, k, raw)
			}
		}
		var s sessionInfo
		json.Unmarshal(raw, &s)
		if !want[s.SessionID] || s.Status != "active" {
			t.Errorf("%s: lists session %s (%s), want only the active %v", what, s.SessionID, s.Status, want)
		}
		out = append(out, s)
	}
	if len(out) != len(listed) {
		t.Errorf("%s: lists %d sessions, want %d: %s", what, len(out), len(listed), r.Body)
	}
	return out
}

func (a *testAPI) tryCreate(t testing.TB, user string, fields map[string]any) response {
	t.Helper()
	body := map[string]any{"user_id": user}
	for k, v := range fields {
		body[k] = v
	}
	return a.admin(t, http.MethodPost, "/v1/sessions", body)
}

func TestLimits_UserLimitOverridesTheGlobalOne(t *testing.T) {
	t.Parallel()
	a := startServer(t, serverSetup{})
	a.putPolicy(t, map[string]any{"max_sessions_per_user": 2})
	a.putLimit(t, "loose", 3)
	a.putLimit(t, "strict", 1)
	a.putLimit(t, "unlimited", 0)

	var loose []tokenResponse
	for range 3 {
		loose = append(loose, a.create(t, "loose", nil))
	}
	expectLimit(t, "4th session of a user with limit 3 over a global 2", a.tryCreate(t, "loose", nil), loose...)
	strict := a.create(t, "strict", nil)
	expectLimit(t, "2nd session of a user with limit 1 under a global 2", a.tryCreate(t, "strict", nil), strict)
	plain := []tokenResponse{a.create(t, "plain", nil), a.create(t, "plain", nil)}
	expectLimit(t, "3rd session of a user under the global 2", a.tryCreate(t, "plain", nil), plain...)
	var unlimited []tokenResponse
	for range 4 {
		unlimited = append(unlimited, a.create(t, "unlimited", nil))
	}
	r := a.admin(t, http.MethodGet, "/v1/users/strict", nil)
	if u := decode[userRecord](t, r); u.MaxSessions == nil || *u.MaxSessions != 1 || u.HasPassword {
		t.Errorf("GET user with a limit: %s", r.Body)
	}

	// null clears the user's limit: the global one applies again.
	a.putLimit(t, "unlimited", nil)
	expectLimit(t, "user whose limit 0 was cleared", a.tryCreate(t, "unlimited", nil), unlimited...)
	a.putLimit(t, "strict", nil)
	a.create(t, "strict", nil)
	expectError(t, "GET user whose only record was the limit", a.admin(t, http.MethodGet, "/v1/users/strict", nil), http.StatusNotFound, "not_found")

	// An ended session frees its place.
	expectStatus(t, "end one", a.admin(t, http.MethodDelete, "/v1/sessions/"+loose[0].SessionID, nil), http.StatusNoContent)
	a.create(t, "loose", nil)

	for _, body := range []string{`{}`, `{"max_sessions":-1}`, `{"max_sessions":10001}`, `{"max_sessions":"3"}`, `{"max_sessions":1.5}`, `{"max":3}`} {
		expectError(t, "limits "+body, a.admin(t, http.MethodPut, "/v1/users/loose/limits", testkit.Raw(body), "Content-Type", "application/json"),
			http.StatusBadRequest, "bad_request")
	}
}

func TestLimits_StricterOfAppAndUserLimitApplies(t *testing.T) {
	t.Parallel()
	a := startServer(t, serverSetup{})
	a.putPolicy(t, map[string]any{"app_max_sessions": map[string]int{"web": 1, "api": 3}})
	a.putLimit(t, "u1", 3)
	web := a.create(t, "u1", map[string]any{"app": "web"})
	expectLimit(t, "2nd web session (app limit 1, user limit 3)", a.tryCreate(t, "u1", map[string]any{"app": "web"}), web)
	m1 := a.create(t, "u1", map[string]any{"app": "mobile"})
	m2 := a.create(t, "u1", map[string]any{"app": "mobile"})
	expectLimit(t, "4th session (user limit 3)", a.tryCreate(t, "u1", map[string]any{"app": "mobile"}), web, m1, m2)

	a.putLimit(t, "u2", 1)
	api := a.create(t, "u2", map[string]any{"app": "api"})
	expectLimit(t, "2nd api session (app limit 3, user limit 1)", a.tryCreate(t, "u2", map[string]any{"app": "api"}), api)

	// The app limit counts per user.
	a.create(t, "u3", map[string]any{"app": "web"})
	expectLimit(t, "2nd web session of u3", a.tryCreate(t, "u3", map[string]any{"app": "web"}), a.getTokenless(t, "u3")...)
}

// getTokenless lists a user's active sessions as token answers without
// tokens (for expectLimit).
func (a *testAPI) getTokenless(t testing.TB, user string) []tokenResponse {
	t.Helper()
	r := a.admin(t, http.MethodGet, "/v1/users/"+user+"/sessions", nil)
	expectStatus(t, "sessions of "+user, r, http.StatusOK)
	var out []tokenResponse
	for _, s := range decode[sessionList](t, r).Sessions {
		out = append(out, tokenResponse{SessionID: s.SessionID})
	}
	return out
}

func TestLimits_LoginEndSessionsMakesRoom(t *testing.T) {
	t.Parallel()
	a := startServer(t, serverSetup{})
	a.putUser(t, "alice", aliceEmail, alicePassword)
	a.putLimit(t, "alice", 2)
	creds := map[string]any{"email": aliceEmail, "password": alicePassword}
	s1 := a.loginOK(t, "login 1", creds)
	s2 := a.loginOK(t, "login 2", creds)
	listed := expectLimit(t, "login 3", a.login(t, creds), s1, s2)
	if len(listed) == 2 && (listed[0].AuthMethod != "password" || listed[0].Device.IP != "127.0.0.1") {
		t.Errorf("listed session %+v, want its metadata", listed[0])
	}

	// end_sessions takes effect only once the password is verified.
	expectError(t, "wrong password with end_sessions", a.login(t, map[string]any{
		"email": aliceEmail, "password": "wrong password", "end_sessions": []string{s1.SessionID},
	}), http.StatusUnauthorized, "unauthenticated")
	a.expectValid(t, "session named by a failed login", s1.AccessToken)
	// Another user's session is not the caller's to end.
	bob := a.create(t, "bob", nil)
	expectLimit(t, "end_sessions naming another user's session", a.login(t, map[string]any{
		"email": aliceEmail, "password": alicePassword, "end_sessions": []string{bob.SessionID},
	}), s1, s2)
	a.expectValid(t, "bob's session", bob.AccessToken)

	s3 := a.loginOK(t, "login ending s1", with(creds, map[string]any{"end_sessions": []string{s1.SessionID}}))
	a.expectInvalid(t, "session ended by the login", s1.AccessToken)
	if s := a.getSession(t, s1.SessionID); s.Status != "revoked" {
		t.Errorf("ended session: status %q", s.Status)
	}
	a.expectValid(t, "session kept", s2.AccessToken)
	a.expectValid(t, "new session", s3.AccessToken)

	// Ending both leaves room for one more than needed: still one login.
	a.loginOK(t, "login ending two", with(creds, map[string]any{"end_sessions": []string{s2.SessionID, s3.SessionID}}))
	a.expectInvalid(t, "s2 after it was ended", s2.AccessToken)
	a.expectInvalid(t, "s3 after it was ended", s3.AccessToken)
	expectError(t, "end_sessions with an empty id", a.login(t, with(creds, map[string]any{"end_sessions": []string{""}})),
		http.StatusBadRequest, "bad_request", "end_sessions")
}

func TestLimits_EvictOldestRevokesTheOldest(t *testing.T) {
	t.Parallel()
	a := startServer(t, serverSetup{})
	a.putPolicy(t, map[string]any{"max_sessions_per_user": 2, "on_session_limit": "evict_oldest"})
	s1 := a.create(t, "u", nil)
	s2 := a.create(t, "u", nil)
	s3 := a.create(t, "u", nil)
	a.expectInvalid(t, "oldest session", s1.AccessToken)
	expectError(t, "oldest session's refresh", a.refresh(t, s1.RefreshToken), http.StatusUnauthorized, "unauthenticated")
	if s := a.getSession(t, s1.SessionID); s.Status != "revoked" || s.RevokeReason != "session_limit" {
		t.Errorf("evicted session: status %q reason %q, want revoked, session_limit", s.Status, s.RevokeReason)
	}
	a.expectValid(t, "second session", s2.AccessToken)
	a.expectValid(t, "third session", s3.AccessToken)

	// Logins evict too.
	a.putUser(t, "u", "u@example.com", alicePassword)
	s4 := a.loginOK(t, "login over the limit", map[string]any{"user_id": "u", "password": alicePassword})
	a.expectInvalid(t, "second session after the login", s2.AccessToken)
	a.expectValid(t, "login session", s4.AccessToken)
	if n := len(decode[sessionList](t, a.admin(t, http.MethodGet, "/v1/users/u/sessions", nil)).Sessions); n != 2 {
		t.Errorf("user has %d active sessions, want 2", n)
	}
}

// With evict_oldest, only as many sessions are revoked as the limits need:
// a session of another app is not revoked when ending an older session of
// the new session's app already brings both limits back.
func TestLimits_EvictOldestRevokesNoMoreThanNeeded(t *testing.T) {
	t.Parallel()
	a := startServer(t, serverSetup{})
	a.putPolicy(t, map[string]any{"on_session_limit": "evict_oldest", "app_max_sessions": map[string]int{"web": 1}})
	a.putLimit(t, "u", 2)
	mobile := a.create(t, "u", map[string]any{"app": "mobile"})
	web1 := a.create(t, "u", map[string]any{"app": "web"})
	web2 := a.create(t, "u", map[string]any{"app": "web"})
	a.expectInvalid(t, "older web session", web1.AccessToken)
	a.expectValid(t, "new web session", web2.AccessToken)
	a.expectValid(t, "mobile session (within both limits once the older web session is gone)", mobile.AccessToken)
}

// --- Lifetimes -----------------------------------------------------------

func TestLifetimes_FixedRefreshDoesNotMove(t *testing.T) {
	t.Parallel()
	a, clock := startOnClock(t, map[string]any{"access_ttl": "10m", "refresh_ttl": "1h"})
	t0 := clock.Now()
	tok := a.create(t, "u", nil)
	if !tok.RefreshExpiresAt.Equal(t0.Add(time.Hour)) {
		t.Fatalf("refresh_expires_at %v, want %v", tok.RefreshExpiresAt, t0.Add(time.Hour))
	}
	for _, step := range []time.Duration{30 * time.Minute, 29 * time.Minute} {
		clock.Advance(step)
		tok = a.refreshOK(t, "refresh", tok.RefreshToken)
		if !tok.RefreshExpiresAt.Equal(t0.Add(time.Hour)) {
			t.Errorf("refresh moved refresh_expires_at to %v without sliding", tok.RefreshExpiresAt)
		}
		if !tok.AccessExpiresAt.Equal(clock.Now().Add(10 * time.Minute)) {
			t.Errorf("access_expires_at %v, want now+10m", tok.AccessExpiresAt)
		}
	}
	clock.Advance(time.Minute)
	expectError(t, "refresh at refresh_expires_at", a.refresh(t, tok.RefreshToken), http.StatusUnauthorized, "unauthenticated")
	a.expectValid(t, "the last access token is still inside its own lifetime", tok.AccessToken)
}

func TestLifetimes_SlidingRefreshMovesUpToExpiresAt(t *testing.T) {
	t.Parallel()
	a, clock := startOnClock(t, map[string]any{"access_ttl": "10m", "refresh_ttl": "1h", "absolute_ttl": "2h", "sliding_refresh": true})
	t0 := clock.Now()
	tok := a.create(t, "u", nil)
	if !tok.RefreshExpiresAt.Equal(t0.Add(time.Hour)) || !tok.ExpiresAt.Equal(t0.Add(2*time.Hour)) {
		t.Fatalf("created with refresh_expires_at %v expires_at %v", tok.RefreshExpiresAt, tok.ExpiresAt)
	}
	for _, c := range []struct {
		step                  time.Duration
		refreshEnd, accessEnd time.Duration // from t0
	}{
		{30 * time.Minute, 90 * time.Minute, 40 * time.Minute},
		{50 * time.Minute, 2 * time.Hour, 90 * time.Minute}, // now+1h is past expires_at
		{39 * time.Minute, 2 * time.Hour, 2 * time.Hour},    // access capped too
	} {
		clock.Advance(c.step)
		tok = a.refreshOK(t, "sliding refresh", tok.RefreshToken)
		if !tok.RefreshExpiresAt.Equal(t0.Add(c.refreshEnd)) || !tok.AccessExpiresAt.Equal(t0.Add(c.accessEnd)) || !tok.ExpiresAt.Equal(t0.Add(2*time.Hour)) {
			t.Errorf("after refresh at t0+%s: access %v refresh %v expires %v, want t0+%s, t0+%s, t0+2h",
				clock.Now().Sub(t0), tok.AccessExpiresAt.Sub(t0), tok.RefreshExpiresAt.Sub(t0), tok.ExpiresAt.Sub(t0), c.accessEnd, c.refreshEnd)
		}
	}
	clock.Advance(time.Minute)
	expectError(t, "refresh at expires_at", a.refresh(t, tok.RefreshToken), http.StatusUnauthorized, "unauthenticated")
	a.expectInvalid(t, "access token at expires_at", tok.AccessToken)
}

func TestLifetimes_AbsoluteTTLCapsEveryRefresh(t *testing.T) {
	t.Parallel()
	a, clock := startOnClock(t, map[string]any{"access_ttl": "1m", "refresh_ttl": "1h", "absolute_ttl": "3m"})
	t0 := clock.Now()
	tok := a.create(t, "u", nil)
	if !tok.RefreshExpiresAt.Equal(t0.Add(3*time.Minute)) || !tok.ExpiresAt.Equal(t0.Add(3*time.Minute)) {
		t.Errorf("refresh_expires_at %v expires_at %v, want both t0+3m", tok.RefreshExpiresAt, tok.ExpiresAt)
	}
	clock.Advance(90 * time.Second)
	tok = a.refreshOK(t, "refresh inside the absolute lifetime", tok.RefreshToken)
	clock.Advance(80 * time.Second)
	tok = a.refreshOK(t, "refresh 10s before the absolute end", tok.RefreshToken)
	if !tok.AccessExpiresAt.Equal(t0.Add(3*time.Minute)) || tok.ExpiresIn > 10 {
		t.Errorf("access_expires_at %v expires_in %d, want capped at t0+3m", tok.AccessExpiresAt, tok.ExpiresIn)
	}
	clock.Advance(10 * time.Second)
	expectError(t, "refresh past absolute_ttl", a.refresh(t, tok.RefreshToken), http.StatusUnauthorized, "unauthenticated")
	a.expectInvalid(t, "access past absolute_ttl", tok.AccessToken)
	if s := a.getSession(t, tok.SessionID); s.Status != "expired" {
		t.Errorf("session past absolute_ttl: status %q", s.Status)
	}
}

func TestLifetimes_RememberMeUsesRememberMeTTL(t *testing.T) {
	t.Parallel()
	a, clock := startOnClock(t, map[string]any{"access_ttl": "10m", "refresh_ttl": "30m", "absolute_ttl": "1h", "remember_me_ttl": "2h"})
	a.putUser(t, "u", "", alicePassword)
	t0 := clock.Now()
	plain := a.create(t, "u", nil)
	remembered := a.create(t, "u", map[string]any{"remember_me": true})
	login := a.loginOK(t, "remember-me login", map[string]any{"user_id": "u", "password": alicePassword, "remember_me": true})
	if !plain.RefreshExpiresAt.Equal(t0.Add(30*time.Minute)) || !plain.ExpiresAt.Equal(t0.Add(time.Hour)) {
		t.Errorf("plain session: refresh %v expires %v", plain.RefreshExpiresAt, plain.ExpiresAt)
	}
	for _, tok := range []tokenResponse{remembered, login} {
		if !tok.RefreshExpiresAt.Equal(t0.Add(2*time.Hour)) || !tok.ExpiresAt.Equal(t0.Add(2*time.Hour)) || !tok.AccessExpiresAt.Equal(t0.Add(10*time.Minute)) {
			t.Errorf("remember-me session: access %v refresh %v expires %v, want t0+10m, t0+2h, t0+2h", tok.AccessExpiresAt, tok.RefreshExpiresAt, tok.ExpiresAt)
		}
	}
	clock.Advance(90 * time.Minute)
	expectError(t, "plain refresh after 90m", a.refresh(t, plain.RefreshToken), http.StatusUnauthorized, "unauthenticated")
	remembered = a.refreshOK(t, "remember-me refresh after 90m", remembered.RefreshToken)
	clock.Advance(30 * time.Minute)
	expectError(t, "remember-me refresh after 2h", a.refresh(t, remembered.RefreshToken), http.StatusUnauthorized, "unauthenticated")
	expectError(t, "remember-me login refresh after 2h", a.refresh(t, login.RefreshToken), http.StatusUnauthorized, "unauthenticated")
}

func TestLifetimes_IdleTimeoutOnOneNode(t *testing.T) {
	t.Parallel()
	a, clock := startOnClock(t, map[string]any{"idle_timeout": "1m"})
	used := a.create(t, "u", nil)
	idle := a.create(t, "u", nil)
	idleRefreshed := a.create(t, "u", nil)

	// Use every 20s keeps the session alive well past the idle timeout. The
	// uses are replicated in batches (SessionsTouched) by a background loop
	// that runs on real time: wait for each.
	for range 9 {
		clock.Advance(20 * time.Second)
		a.expectValid(t, "session used every 20s", used.AccessToken)
		a.waitForLastSeen(t, used.SessionID, clock.Now())
	}
	lastUse := clock.Now()
	a.expectInvalid(t, "session never used for 3 minutes", idle.AccessToken)
	expectError(t, "refresh of an idle session", a.refresh(t, idleRefreshed.RefreshToken), http.StatusUnauthorized, "unauthenticated")
	if s := a.getSession(t, idle.SessionID); s.Status != "expired" {
		t.Errorf("idle session: status %q, want expired", s.Status)
	}

	// Without use it ends within idle_timeout + idle_timeout/10 of the last
	// use. Introspection does not count as use.
	clock.Advance(59 * time.Second)
	if in := a.introspect(t, used.AccessToken); !in.Active {
		t.Errorf("59s after the last use (%v): introspection %+v, want active", lastUse, in)
	}
	clock.Advance(7 * time.Second)
	if in := a.introspect(t, used.AccessToken); in.Active || in.Status != "expired" {
		t.Errorf("66s after the last use: introspection %+v, want expired", in)
	}
	a.expectInvalid(t, "66s after the last use", used.AccessToken)
	expectError(t, "refresh 66s after the last use", a.refresh(t, used.RefreshToken), http.StatusUnauthorized, "unauthenticated")
	if s := a.getSession(t, used.SessionID); s.Status != "expired" {
		t.Errorf("session idle for 66s: status %q, want expired", s.Status)
	}
}

// waitForLastSeen waits until the state machine has applied a use of the
// session at or after at (the batched SessionsTouched).
func (a *testAPI) waitForLastSeen(t testing.TB, id string, at time.Time) {
	t.Helper()
	testkit.Eventually(t, 10*time.Second, "a use of the session to be replicated", func() bool {
		return !a.getSession(t, id).LastSeenAt.Before(at)
	})
}

// A session kept alive by uses this node saw and has not replicated yet is
// active: GET /v1/session answers 200 with status "active", not a 200 whose
// body says "expired".
func TestLifetimes_IdleSessionKeptAliveByUnreplicatedUseShowsActive(t *testing.T) {
	t.Parallel()
	a, clock := startOnClock(t, map[string]any{"idle_timeout": "10m", "access_ttl": "1h"})
	used := a.create(t, "u", nil)
	// Each step is within the idle timeout of the one before; the answer
	// right after a use may come before the background loop replicated it.
	for i := range 5 {
		clock.Advance(4 * time.Minute)
		a.expectValid(t, fmt.Sprintf("session used every 4 minutes, use %d", i+1), used.AccessToken)
	}
}

func TestLifetimes_RefreshCountsAsUseForTheIdleTimeout(t *testing.T) {
	t.Parallel()
	a, clock := startOnClock(t, map[string]any{"idle_timeout": "1m", "access_ttl": "1h"})
	tok := a.create(t, "u", nil)
	for range 4 {
		clock.Advance(50 * time.Second)
		tok = a.refreshOK(t, "refresh every 50s", tok.RefreshToken)
	}
	a.expectValid(t, "session refreshed every 50s", tok.AccessToken)
}

// --- Refresh reuse grace ---------------------------------------------------

func TestRefreshGrace_ConcurrentReuseWithinGraceThenTheftAfter(t *testing.T) {
	t.Parallel()
	a, clock := startOnClock(t, map[string]any{"refresh_reuse_grace": "1m"})
	tok := a.create(t, "u", nil)

	// Two tabs refresh with the same token at once.
	var wg sync.WaitGroup
	results := make([]response, 2)
	errs := make([]error, 2)
	start := make(chan struct{})
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			results[i], errs[i] = a.send(http.MethodPost, "/v1/refresh", map[string]string{"refresh_token": tok.RefreshToken})
		}()
	}
	close(start)
	wg.Wait()
	var pairs []tokenResponse
	for i, r := range results {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		expectStatus(t, "refresh within the grace", r, http.StatusOK)
		pairs = append(pairs, decode[tokenResponse](t, r))
	}
	if pairs[0].AccessToken == pairs[1].AccessToken || pairs[0].RefreshToken == pairs[1].RefreshToken {
		t.Fatalf("both refreshes answered the same pair: want two full pairs")
	}
	for _, p := range pairs {
		a.expectValid(t, "access token minted within the grace", p.AccessToken)
		if in := a.introspect(t, p.RefreshToken); !in.Active {
			t.Errorf("refresh token minted within the grace: %+v", in)
		}
	}
	a.expectInvalid(t, "the original access token", tok.AccessToken)

	// A third use 30s later is still within the grace.
	clock.Advance(30 * time.Second)
	r := a.refresh(t, tok.RefreshToken)
	expectStatus(t, "third use 30s after the rotation", r, http.StatusOK)
	pairs = append(pairs, decode[tokenResponse](t, r))
	for _, p := range pairs {
		a.expectValid(t, "pair minted within the grace", p.AccessToken)
	}

	clock.Advance(31 * time.Second)
	expectError(t, "use after the grace", a.refresh(t, tok.RefreshToken), http.StatusUnauthorized, "unauthenticated")
	s := a.getSession(t, tok.SessionID)
	if s.Status != "revoked" || s.RevokeReason != "refresh_token_reuse" {
		t.Errorf("session after reuse past the grace: status %q reason %q, want revoked, refresh_token_reuse", s.Status, s.RevokeReason)
	}
	for _, p := range pairs {
		a.expectInvalid(t, "pair after the theft", p.AccessToken)
		expectError(t, "refresh token after the theft", a.refresh(t, p.RefreshToken), http.StatusUnauthorized, "unauthenticated")
	}
}

func TestRefreshGrace_OffMeansReuseIsTheft(t *testing.T) {
	t.Parallel()
	a := startServer(t, serverSetup{})
	tok := a.create(t, "u", nil)
	expectStatus(t, "first refresh", a.refresh(t, tok.RefreshToken), http.StatusOK)
	expectError(t, "second use", a.refresh(t, tok.RefreshToken), http.StatusUnauthorized, "unauthenticated")
	if s := a.getSession(t, tok.SessionID); s.RevokeReason != "refresh_token_reuse" {
		t.Errorf("session: %+v", s)
	}
}
