package httpapi_test

// End-to-end tests of the HTTP API: a real node (Raft, bolt log) in a
// temporary directory, the real server on a 127.0.0.1 listener, and plain
// HTTP requests. Every test starts its own node, so tests never see each
// other's sessions.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sessiond/sessiond/node"
	"github.com/sessiond/sessiond/transport/testkit"
)

const (
	// Two admin keys are configured, as during a rotation.
	testAPIKey   = "test-admin-key-0123456789abcdef"
	rotatedKey   = "next-admin-key-fedcba9876543210"
	tokenLen     = 3 + 43 // prefix + base64url of 32 bytes
	defaultTTL   = 15 * time.Minute
	refreshTTL   = 22*time.Minute + 30*time.Second
	absoluteTTL  = 30 * 24 * time.Hour
	readyTimeout = 10 * time.Second
)

// testAPI is one node with its HTTP API, reached over real HTTP.
type testAPI struct {
	base   string
	client *http.Client
	node   *node.Node
}

// startAPI starts a node in t.TempDir() and the API over it on
// 127.0.0.1:0, waits until GET /readyz answers 200, and stops both when the
// test ends.
func startAPI(t *testing.T, opts ...func(*node.Config)) *testAPI {
	t.Helper()
	return startServer(t, serverSetup{Node: func(cfg *node.Config) {
		for _, o := range opts {
			o(cfg)
		}
	}})
}

// response is an answer read whole.
type response = testkit.Answer

// do sends a request. body is nil (no body), a testkit.Raw (sent as is,
// with the Content-Type given in the headers), an io.Reader (sent chunked,
// length unknown) or a value sent as JSON. hdrs are name, value pairs.
// Every answer is checked for the consistency headers.
func (a *testAPI) do(t testing.TB, method, path string, body any, hdrs ...string) response {
	t.Helper()
	r, err := a.send(method, path, body, hdrs...)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	checkConsistencyHeaders(t, method+" "+path, r)
	return r
}

// send is do without the testing.TB, for goroutines other than the test's.
func (a *testAPI) send(method, path string, body any, hdrs ...string) (response, error) {
	return testkit.Send(a.client, method, a.base+path, body, hdrs...)
}

// admin is do with the admin API key.
func (a *testAPI) admin(t testing.TB, method, path string, body any, hdrs ...string) response {
	t.Helper()
	return a.do(t, method, path, body, append([]string{"X-API-Key", testAPIKey}, hdrs...)...)
}

func checkConsistencyHeaders(t testing.TB, what string, r response) {
	t.Helper()
	idx := r.Header.Get("X-Sessiond-Index")
	if _, err := strconv.ParseUint(idx, 10, 64); err != nil {
		t.Errorf("%s (%d): X-Sessiond-Index = %q, want an index", what, r.Status, idx)
	}
	lc := r.Header.Get("X-Sessiond-Last-Contact")
	if _, err := strconv.ParseInt(lc, 10, 64); err != nil {
		t.Errorf("%s (%d): X-Sessiond-Last-Contact = %q, want milliseconds", what, r.Status, lc)
	}
}

func headerIndex(t testing.TB, r response) uint64 {
	t.Helper()
	v, err := strconv.ParseUint(r.Header.Get("X-Sessiond-Index"), 10, 64)
	if err != nil {
		t.Fatalf("X-Sessiond-Index = %q: %v", r.Header.Get("X-Sessiond-Index"), err)
	}
	return v
}

func decode[T any](t testing.TB, r response) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(r.Body, &v); err != nil {
		t.Fatalf("decode %T from %s: %v", v, r, err)
	}
	return v
}

func expectStatus(t testing.TB, what string, r response, status int) {
	t.Helper()
	if r.Status != status {
		t.Fatalf("%s: got %s, want %d", what, r, status)
	}
}

// expectError checks an error answer: the status, and a body that is
// exactly {"error":{"code":...,"message":...}} with the given code and a
// message mentioning each of mentions.
func expectError(t testing.TB, what string, r response, status int, code string, mentions ...string) string {
	t.Helper()
	if r.Status != status {
		t.Fatalf("%s: got %s, want %d %s", what, r, status, code)
	}
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("%s: Content-Type %q, want application/json", what, ct)
	}
	var outer map[string]json.RawMessage
	if err := json.Unmarshal(r.Body, &outer); err != nil {
		t.Fatalf("%s: error body %q is not a JSON object: %v", what, r.Body, err)
	}
	if len(outer) != 1 || outer["error"] == nil {
		t.Fatalf("%s: error body %s, want exactly one key \"error\"", what, r.Body)
	}
	var inner map[string]any
	if err := json.Unmarshal(outer["error"], &inner); err != nil {
		t.Fatalf("%s: error object %s: %v", what, outer["error"], err)
	}
	gotCode, _ := inner["code"].(string)
	msg, _ := inner["message"].(string)
	if len(inner) != 2 || gotCode == "" || msg == "" {
		t.Fatalf("%s: error object %s, want exactly string code and message", what, outer["error"])
	}
	if gotCode != code {
		t.Fatalf("%s: code %q (message %q), want %q", what, gotCode, msg, code)
	}
	for _, m := range mentions {
		if !strings.Contains(msg, m) {
			t.Errorf("%s: message %q does not name %q", what, msg, m)
		}
	}
	return msg
}

// tokenResponse is the token answer of docs/api.md#token-answers.
type tokenResponse struct {
	SessionID        string    `json:"session_id"`
	UserID           string    `json:"user_id"`
	AccessToken      string    `json:"access_token"`
	RefreshToken     string    `json:"refresh_token"`
	TokenType        string    `json:"token_type"`
	ExpiresIn        int64     `json:"expires_in"`
	AccessExpiresAt  time.Time `json:"access_expires_at"`
	RefreshExpiresAt time.Time `json:"refresh_expires_at"`
	ExpiresAt        time.Time `json:"expires_at"`
	Index            uint64    `json:"index"`
}

type deviceInfo struct {
	UserAgent string `json:"user_agent"`
	IP        string `json:"ip"`
	Label     string `json:"label"`
}

type sessionInfo struct {
	SessionID        string            `json:"session_id"`
	UserID           string            `json:"user_id"`
	App              string            `json:"app"`
	AuthMethod       string            `json:"auth_method"`
	Status           string            `json:"status"`
	CreatedAt        time.Time         `json:"created_at"`
	LastSeenAt       time.Time         `json:"last_seen_at"`
	AccessExpiresAt  time.Time         `json:"access_expires_at"`
	RefreshExpiresAt time.Time         `json:"refresh_expires_at"`
	ExpiresAt        time.Time         `json:"expires_at"`
	RememberMe       bool              `json:"remember_me"`
	Scopes           []string          `json:"scopes"`
	Attributes       map[string]string `json:"attributes"`
	Device           deviceInfo        `json:"device"`
	RevokedAt        *time.Time        `json:"revoked_at"`
	RevokeReason     string            `json:"revoke_reason"`
}

type sessionList struct {
	Sessions []sessionInfo `json:"sessions"`
}

type revokedCount struct {
	Revoked int    `json:"revoked"`
	Index   uint64 `json:"index"`
}

type introspection struct {
	Active    bool   `json:"active"`
	Status    string `json:"status"`
	TokenType string `json:"token_type"`
	Sub       string `json:"sub"`
	SID       string `json:"sid"`
	ClientID  string `json:"client_id"`
	Scope     string `json:"scope"`
	Iat       int64  `json:"iat"`
	Exp       int64  `json:"exp"`
}

// create makes a session through POST /v1/sessions and checks the 201.
// fields are extra request fields (app, scopes, attributes, device...).
func (a *testAPI) create(t testing.TB, user string, fields map[string]any) tokenResponse {
	t.Helper()
	body := map[string]any{"user_id": user}
	for k, v := range fields {
		body[k] = v
	}
	r := a.admin(t, http.MethodPost, "/v1/sessions", body)
	expectStatus(t, "create session for "+user, r, http.StatusCreated)
	return decode[tokenResponse](t, r)
}

// validate is GET /v1/session with the token as a Bearer token.
func (a *testAPI) validate(t testing.TB, access string) response {
	t.Helper()
	return a.do(t, http.MethodGet, "/v1/session", nil, "Authorization", "Bearer "+access)
}

func (a *testAPI) expectValid(t testing.TB, what, access string) sessionInfo {
	t.Helper()
	r := a.validate(t, access)
	expectStatus(t, what, r, http.StatusOK)
	s := decode[sessionInfo](t, r)
	if s.Status != "active" {
		t.Fatalf("%s: status %q, want active", what, s.Status)
	}
	return s
}

func (a *testAPI) expectInvalid(t testing.TB, what, access string) {
	t.Helper()
	expectError(t, what, a.validate(t, access), http.StatusUnauthorized, "unauthenticated")
}

func (a *testAPI) refresh(t testing.TB, refreshToken string) response {
	t.Helper()
	return a.do(t, http.MethodPost, "/v1/refresh", map[string]string{"refresh_token": refreshToken})
}

// refreshOK refreshes and checks the 200.
func (a *testAPI) refreshOK(t testing.TB, what, refreshToken string) tokenResponse {
	t.Helper()
	r := a.refresh(t, refreshToken)
	expectStatus(t, what, r, http.StatusOK)
	return decode[tokenResponse](t, r)
}

func (a *testAPI) getSession(t testing.TB, id string) sessionInfo {
	t.Helper()
	r := a.admin(t, http.MethodGet, "/v1/sessions/"+id, nil)
	expectStatus(t, "GET session "+id, r, http.StatusOK)
	return decode[sessionInfo](t, r)
}

func (a *testAPI) introspect(t testing.TB, token string) introspection {
	t.Helper()
	r := a.admin(t, http.MethodPost, "/v1/introspect", map[string]string{"token": token})
	expectStatus(t, "introspect", r, http.StatusOK)
	return decode[introspection](t, r)
}

// stillServes checks that the node goes on working after a bad request.
func (a *testAPI) stillServes(t testing.TB) {
	t.Helper()
	tok := a.create(t, "still-serving", nil)
	a.expectValid(t, "a session created after the bad request", tok.AccessToken)
}

func checkTokenShape(t testing.TB, what, tok, prefix string) {
	t.Helper()
	if len(tok) != tokenLen || !strings.HasPrefix(tok, prefix) {
		t.Errorf("%s = %q, want %q followed by 43 base64url characters", what, tok, prefix)
	}
	for _, c := range strings.TrimPrefix(tok, prefix) {
		if !('A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			t.Errorf("%s = %q has %q, not base64url", what, tok, c)
			break
		}
	}
}

func near(got, want time.Time, slack time.Duration) bool {
	d := got.Sub(want)
	return -slack <= d && d <= slack
}

// --- The README walk-through -------------------------------------------

func TestCreateSession_ReturnsEveryTokenField(t *testing.T) {
	t.Parallel()
	a := startAPI(t)
	before := time.Now()
	r := a.admin(t, http.MethodPost, "/v1/sessions", map[string]any{"user_id": "alice"})
	expectStatus(t, "create", r, http.StatusCreated)

	var raw map[string]any
	if err := json.Unmarshal(r.Body, &raw); err != nil {
		t.Fatalf("decode: %v", err)
	}
	for _, f := range []string{"session_id", "user_id", "access_token", "refresh_token", "token_type",
		"expires_in", "access_expires_at", "refresh_expires_at", "expires_at", "index"} {
		if _, ok := raw[f]; !ok {
			t.Errorf("token response lacks %q: %s", f, r.Body)
		}
	}
	for _, f := range []string{"access_expires_at", "refresh_expires_at", "expires_at"} {
		s, _ := raw[f].(string)
		if _, err := time.Parse(time.RFC3339, s); err != nil || !strings.HasSuffix(s, "Z") {
			t.Errorf("%s = %q, want RFC 3339 in UTC", f, s)
		}
	}
	tok := decode[tokenResponse](t, r)
	if tok.SessionID == "" || tok.UserID != "alice" {
		t.Errorf("session_id %q user_id %q, want an id and alice", tok.SessionID, tok.UserID)
	}
	checkTokenShape(t, "access_token", tok.AccessToken, "sa_")
	checkTokenShape(t, "refresh_token", tok.RefreshToken, "sr_")
	if tok.TokenType != "Bearer" {
		t.Errorf("token_type %q, want Bearer", tok.TokenType)
	}
	if tok.ExpiresIn < 890 || tok.ExpiresIn > 900 {
		t.Errorf("expires_in %d, want about 900", tok.ExpiresIn)
	}
	if !near(tok.AccessExpiresAt, before.Add(defaultTTL), 10*time.Second) {
		t.Errorf("access_expires_at %v, want about now+15m", tok.AccessExpiresAt)
	}
	if !near(tok.RefreshExpiresAt, before.Add(refreshTTL), 10*time.Second) {
		t.Errorf("refresh_expires_at %v, want about now+22m30s", tok.RefreshExpiresAt)
	}
	if !near(tok.ExpiresAt, before.Add(absoluteTTL), 10*time.Second) {
		t.Errorf("expires_at %v, want about now+720h", tok.ExpiresAt)
	}
	if tok.Index == 0 {
		t.Errorf("index is 0, want the write's Raft index")
	}
	if got := headerIndex(t, r); got != tok.Index {
		t.Errorf("X-Sessiond-Index %d, body index %d: want equal", got, tok.Index)
	}
	// The next write gets a later index.
	if next := a.create(t, "alice", nil); next.Index <= tok.Index || next.SessionID == tok.SessionID ||
		next.AccessToken == tok.AccessToken {
		t.Errorf("second session %+v is not a new, later write than %+v", next, tok)
	}
}

func TestValidate_AcceptsBearerAndSessionTokenHeader(t *testing.T) {
	t.Parallel()
	a := startAPI(t)
	tok := a.create(t, "bob", map[string]any{
		"app":        "web",
		"scopes":     []string{"read", "write"},
		"attributes": map[string]string{"role": "admin", "team": "blue"},
		"device":     map[string]string{"user_agent": "Firefox/128", "ip": "192.0.2.7", "label": "laptop"},
	})
	for _, hdr := range [][]string{
		{"Authorization", "Bearer " + tok.AccessToken},
		{"Authorization", "bearer " + tok.AccessToken},
		{"X-Session-Token", tok.AccessToken},
	} {
		r := a.do(t, http.MethodGet, "/v1/session", nil, hdr...)
		expectStatus(t, "validate with "+hdr[0], r, http.StatusOK)
		s := decode[sessionInfo](t, r)
		want := deviceInfo{UserAgent: "Firefox/128", IP: "192.0.2.7", Label: "laptop"}
		switch {
		case s.Status != "active", s.SessionID != tok.SessionID, s.UserID != "bob", s.App != "web",
			s.AuthMethod != "impersonation":
			t.Errorf("%s: session %+v", hdr[0], s)
		case !reflect.DeepEqual(s.Scopes, []string{"read", "write"}):
			t.Errorf("%s: scopes %v", hdr[0], s.Scopes)
		case !reflect.DeepEqual(s.Attributes, map[string]string{"role": "admin", "team": "blue"}):
			t.Errorf("%s: attributes %v", hdr[0], s.Attributes)
		case s.Device != want:
			t.Errorf("%s: device %+v, want %+v", hdr[0], s.Device, want)
		case !s.AccessExpiresAt.Equal(tok.AccessExpiresAt.Truncate(time.Millisecond)):
			t.Errorf("%s: access_expires_at %v, token answer said %v", hdr[0], s.AccessExpiresAt, tok.AccessExpiresAt)
		}
	}
	// A session without scopes or attributes answers empty ones, not null.
	plain := a.create(t, "bob", nil)
	r := a.validate(t, plain.AccessToken)
	expectStatus(t, "validate plain", r, http.StatusOK)
	if !bytes.Contains(r.Body, []byte(`"scopes":[]`)) || !bytes.Contains(r.Body, []byte(`"attributes":{}`)) {
		t.Errorf("plain session answer %s, want empty scopes and attributes", r.Body)
	}
	if s := decode[sessionInfo](t, r); s.App != "default" {
		t.Errorf("app %q, want default", s.App)
	}

	// Anything but the live access token is refused with the one message.
	messages := map[string]string{}
	for name, hdrs := range map[string][]string{
		"no token":            nil,
		"refresh as access":   {"Authorization", "Bearer " + tok.RefreshToken},
		"garbage":             {"Authorization", "Bearer not-a-token"},
		"basic scheme":        {"Authorization", "Basic " + tok.AccessToken},
		"unknown well-formed": {"X-Session-Token", "sa_" + strings.Repeat("A", 43)},
	} {
		msg := expectError(t, name, a.do(t, http.MethodGet, "/v1/session", nil, hdrs...), http.StatusUnauthorized, "unauthenticated")
		if first, ok := messages["first"]; ok && msg != first {
			t.Errorf("%s: message %q differs from %q: want one generic message", name, msg, first)
		}
		messages["first"] = msg
	}
}

func TestRefresh_RotatesTokenPair(t *testing.T) {
	t.Parallel()
	a := startAPI(t)
	first := a.create(t, "carol", map[string]any{"scopes": []string{"s1"}})
	r := a.refresh(t, first.RefreshToken)
	expectStatus(t, "refresh", r, http.StatusOK)
	second := decode[tokenResponse](t, r)
	checkTokenShape(t, "new access_token", second.AccessToken, "sa_")
	checkTokenShape(t, "new refresh_token", second.RefreshToken, "sr_")
	if second.SessionID != first.SessionID || second.AccessToken == first.AccessToken ||
		second.RefreshToken == first.RefreshToken {
		t.Fatalf("refresh answered %+v for %+v: want the same session with new tokens", second, first)
	}
	if second.Index <= first.Index || headerIndex(t, r) != second.Index {
		t.Errorf("refresh index %d (header %d), create index %d", second.Index, headerIndex(t, r), first.Index)
	}
	if second.TokenType != "Bearer" || second.ExpiresIn < 890 || second.ExpiresIn > 900 {
		t.Errorf("refresh answer %+v", second)
	}
	a.expectInvalid(t, "old access token after refresh", first.AccessToken)
	s := a.expectValid(t, "new access token", second.AccessToken)
	if !reflect.DeepEqual(s.Scopes, []string{"s1"}) {
		t.Errorf("scopes after refresh %v", s.Scopes)
	}
	// The new refresh token is itself good for one more rotation.
	third := a.refreshOK(t, "second refresh", second.RefreshToken)
	a.expectValid(t, "third access token", third.AccessToken)
	a.expectInvalid(t, "second access token after the second refresh", second.AccessToken)

	for name, body := range map[string]any{
		"garbage refresh token":   map[string]string{"refresh_token": "garbage"},
		"access token as refresh": map[string]string{"refresh_token": third.AccessToken},
		"unknown refresh token":   map[string]string{"refresh_token": "sr_" + strings.Repeat("B", 43)},
	} {
		expectError(t, name, a.do(t, http.MethodPost, "/v1/refresh", body), http.StatusUnauthorized, "unauthenticated")
	}
	expectError(t, "empty refresh_token", a.do(t, http.MethodPost, "/v1/refresh", map[string]string{}),
		http.StatusBadRequest, "bad_request", "refresh_token")
	a.expectValid(t, "third access token after refused refreshes", third.AccessToken)
}

func TestRefresh_ReuseOfRotatedTokenRevokesSession(t *testing.T) {
	t.Parallel()
	a := startAPI(t)
	first := a.create(t, "dave", nil)
	second := a.refreshOK(t, "refresh", first.RefreshToken)
	a.expectValid(t, "new access token before the reuse", second.AccessToken)

	// Someone replays the rotated refresh token: treated as theft.
	expectError(t, "reuse of the old refresh token", a.refresh(t, first.RefreshToken),
		http.StatusUnauthorized, "unauthenticated")
	a.expectInvalid(t, "new access token after the reuse", second.AccessToken)
	expectError(t, "new refresh token after the reuse", a.refresh(t, second.RefreshToken),
		http.StatusUnauthorized, "unauthenticated")
	s := a.getSession(t, first.SessionID)
	if s.Status != "revoked" || s.RevokeReason != "refresh_token_reuse" || s.RevokedAt == nil {
		t.Errorf("session after reuse: status %q reason %q revoked_at %v, want revoked, refresh_token_reuse",
			s.Status, s.RevokeReason, s.RevokedAt)
	}
	if in := a.introspect(t, first.RefreshToken); in.Active || in.Status != "revoked" {
		t.Errorf("introspect reused refresh token: %+v", in)
	}
}

func TestUserSessions_NewestFirstOnlyActive(t *testing.T) {
	t.Parallel()
	a := startAPI(t)
	var ids []string
	for range 4 {
		ids = append(ids, a.create(t, "erin", map[string]any{"scopes": []string{"x"}}).SessionID)
	}
	other := a.create(t, "frank", nil)
	expectStatus(t, "revoke the second session", a.admin(t, http.MethodDelete, "/v1/sessions/"+ids[1], nil), http.StatusNoContent)

	r := a.admin(t, http.MethodGet, "/v1/users/erin/sessions", nil)
	expectStatus(t, "list", r, http.StatusOK)
	list := decode[sessionList](t, r)
	var got []string
	for _, s := range list.Sessions {
		got = append(got, s.SessionID)
		if s.Status != "active" || s.UserID != "erin" || !reflect.DeepEqual(s.Scopes, []string{"x"}) {
			t.Errorf("listed session %+v", s)
		}
	}
	want := []string{ids[3], ids[2], ids[0]}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("listed %v, want the active ones newest first %v", got, want)
	}
	for i := 1; i < len(list.Sessions); i++ {
		if list.Sessions[i].CreatedAt.After(list.Sessions[i-1].CreatedAt) {
			t.Errorf("session %d created after session %d", i, i-1)
		}
	}

	r = a.admin(t, http.MethodGet, "/v1/users/nobody/sessions", nil)
	expectStatus(t, "list unknown user", r, http.StatusOK)
	if got := string(bytes.TrimSpace(r.Body)); got != `{"sessions":[]}` {
		t.Errorf("unknown user answered %s, want {\"sessions\":[]}", got)
	}
	expectError(t, "bad user id in path", a.admin(t, http.MethodGet, "/v1/users/a%20b/sessions", nil),
		http.StatusBadRequest, "bad_request", "user_id")
	expectError(t, "list without key", a.do(t, http.MethodGet, "/v1/users/erin/sessions", nil),
		http.StatusUnauthorized, "unauthenticated")
	a.expectValid(t, "other user's session", other.AccessToken)
}

func TestForceLogout_RevokesEverySessionOfTheUser(t *testing.T) {
	t.Parallel()
	a := startAPI(t)
	var toks []tokenResponse
	for range 3 {
		toks = append(toks, a.create(t, "gina", nil))
	}
	bystander := a.create(t, "hank", nil)
	r := a.admin(t, http.MethodDelete, "/v1/users/gina/sessions", nil)
	expectStatus(t, "force logout", r, http.StatusOK)
	res := decode[revokedCount](t, r)
	if res.Revoked != 3 || res.Index == 0 || headerIndex(t, r) != res.Index {
		t.Errorf("force logout answered %s (header index %d), want revoked 3 with its index", r, headerIndex(t, r))
	}
	for i, tok := range toks {
		a.expectInvalid(t, fmt.Sprintf("session %d after force logout", i), tok.AccessToken)
		expectError(t, "refresh after force logout", a.refresh(t, tok.RefreshToken), http.StatusUnauthorized, "unauthenticated")
		if s := a.getSession(t, tok.SessionID); s.Status != "revoked" || s.RevokeReason != "admin" {
			t.Errorf("session %d: status %q reason %q, want revoked, admin (the default reason)", i, s.Status, s.RevokeReason)
		}
	}
	a.expectValid(t, "another user's session", bystander.AccessToken)

	// Nothing left to revoke; an unknown user has none either.
	for _, user := range []string{"gina", "nobody"} {
		r = a.admin(t, http.MethodDelete, "/v1/users/"+user+"/sessions", nil)
		expectStatus(t, "force logout again", r, http.StatusOK)
		if n := decode[revokedCount](t, r).Revoked; n != 0 {
			t.Errorf("force logout of %s revoked %d, want 0", user, n)
		}
	}
}

func TestForceLogout_ExceptKeepsThatSession(t *testing.T) {
	t.Parallel()
	a := startAPI(t)
	var toks []tokenResponse
	for range 3 {
		toks = append(toks, a.create(t, "ivan", nil))
	}
	r := a.admin(t, http.MethodDelete, "/v1/users/ivan/sessions",
		map[string]string{"except": toks[1].SessionID, "reason": "password_change"})
	expectStatus(t, "force logout except", r, http.StatusOK)
	if n := decode[revokedCount](t, r).Revoked; n != 2 {
		t.Errorf("revoked %d, want 2", n)
	}
	a.expectInvalid(t, "first session", toks[0].AccessToken)
	a.expectInvalid(t, "third session", toks[2].AccessToken)
	a.expectValid(t, "the excepted session", toks[1].AccessToken)
	if s := a.getSession(t, toks[0].SessionID); s.RevokeReason != "password_change" {
		t.Errorf("revoke_reason %q, want password_change from the JSON body", s.RevokeReason)
	}

	// except also works from the query string.
	more := a.create(t, "ivan", nil)
	r = a.admin(t, http.MethodDelete, "/v1/users/ivan/sessions?except="+more.SessionID, nil)
	expectStatus(t, "force logout except (query)", r, http.StatusOK)
	if n := decode[revokedCount](t, r).Revoked; n != 1 {
		t.Errorf("revoked %d, want 1 (only the previously excepted session)", n)
	}
	a.expectValid(t, "session excepted by query", more.AccessToken)
	a.expectInvalid(t, "previously excepted session", toks[1].AccessToken)
}

func TestForceLogout_ReasonFromBodyOrQuery(t *testing.T) {
	t.Parallel()
	a := startAPI(t)
	tok := a.create(t, "judy", nil)
	r := a.admin(t, http.MethodDelete, "/v1/users/judy/sessions?reason=password_reset", nil)
	expectStatus(t, "force logout with query reason", r, http.StatusOK)
	if s := a.getSession(t, tok.SessionID); s.RevokeReason != "password_reset" {
		t.Errorf("revoke_reason %q, want password_reset from the query", s.RevokeReason)
	}
	tok = a.create(t, "judy", nil)
	r = a.admin(t, http.MethodDelete, "/v1/users/judy/sessions", map[string]string{"reason": "user_deleted"})
	expectStatus(t, "force logout with body reason", r, http.StatusOK)
	if s := a.getSession(t, tok.SessionID); s.RevokeReason != "user_deleted" {
		t.Errorf("revoke_reason %q, want user_deleted from the body", s.RevokeReason)
	}

	tok = a.create(t, "judy", nil)
	for name, req := range map[string]struct {
		path string
		body any
	}{
		"bad reason in body":  {"/v1/users/judy/sessions", map[string]string{"reason": "because"}},
		"bad reason in query": {"/v1/users/judy/sessions?reason=because", nil},
		"internal reason":     {"/v1/users/judy/sessions?reason=refresh_token_reuse", nil},
		"unknown field":       {"/v1/users/judy/sessions", map[string]string{"why": "admin"}},
		"bad user id":         {"/v1/users/" + strings.Repeat("u", 129) + "/sessions", nil},
		"too long except":     {"/v1/users/judy/sessions", map[string]string{"except": strings.Repeat("s", 200)}},
	} {
		expectError(t, name, a.admin(t, http.MethodDelete, req.path, req.body), http.StatusBadRequest, "bad_request")
	}
	a.expectValid(t, "session after refused force logouts", tok.AccessToken)
}

func TestBulkRevoke_CreatedBeforeRevokesOnlyEarlierSessions(t *testing.T) {
	t.Parallel()
	a := startAPI(t)
	var early, late []tokenResponse
	for i := range 3 {
		early = append(early, a.create(t, fmt.Sprintf("early%d", i), nil))
	}
	cut := time.Now()
	testkit.Eventually(t, time.Second, "the clock to pass the cut", func() bool { return time.Now().After(cut) })
	for i := range 3 {
		late = append(late, a.create(t, fmt.Sprintf("late%d", i), nil))
	}
	r := a.admin(t, http.MethodPost, "/v1/sessions/revoke",
		testkit.Raw(`{"created_before":"`+cut.UTC().Format(time.RFC3339Nano)+`"}`), "Content-Type", "application/json")
	expectStatus(t, "bulk revoke", r, http.StatusOK)
	res := decode[revokedCount](t, r)
	if res.Revoked != 3 || res.Index == 0 || headerIndex(t, r) != res.Index {
		t.Errorf("bulk revoke answered %s, want revoked 3 with its index", r)
	}
	for i, tok := range early {
		a.expectInvalid(t, fmt.Sprintf("early session %d", i), tok.AccessToken)
		expectError(t, "refresh of an early session", a.refresh(t, tok.RefreshToken), http.StatusUnauthorized, "unauthenticated")
		if s := a.getSession(t, tok.SessionID); s.Status != "revoked" {
			t.Errorf("early session %d status %q", i, s.Status)
		}
	}
	for i, tok := range late {
		a.expectValid(t, fmt.Sprintf("late session %d", i), tok.AccessToken)
	}
	expectError(t, "bulk revoke with a bad time", a.admin(t, http.MethodPost, "/v1/sessions/revoke",
		map[string]string{"created_before": "yesterday"}), http.StatusBadRequest, "bad_request")
	expectError(t, "bulk revoke without key", a.do(t, http.MethodPost, "/v1/sessions/revoke",
		map[string]string{}), http.StatusUnauthorized, "unauthenticated")
	for i, tok := range late {
		a.expectValid(t, fmt.Sprintf("late session %d after refused bulk revocations", i), tok.AccessToken)
	}
}

func TestBulkRevoke_AppsFilter(t *testing.T) {
	t.Parallel()
	a := startAPI(t)
	web1 := a.create(t, "kim", map[string]any{"app": "web"})
	web2 := a.create(t, "lee", map[string]any{"app": "web"})
	mobile := a.create(t, "kim", map[string]any{"app": "mobile"})
	def := a.create(t, "lee", nil)
	r := a.admin(t, http.MethodPost, "/v1/sessions/revoke", map[string]any{"apps": []string{"web", "web"}})
	expectStatus(t, "bulk revoke of app web", r, http.StatusOK)
	if n := decode[revokedCount](t, r).Revoked; n != 2 {
		t.Errorf("revoked %d, want 2", n)
	}
	a.expectInvalid(t, "web session 1", web1.AccessToken)
	a.expectInvalid(t, "web session 2", web2.AccessToken)
	a.expectValid(t, "mobile session", mobile.AccessToken)
	a.expectValid(t, "default-app session", def.AccessToken)
	expectError(t, "bulk revoke with a bad app", a.admin(t, http.MethodPost, "/v1/sessions/revoke",
		map[string]any{"apps": []string{"no spaces"}}), http.StatusBadRequest, "bad_request", "apps")

	// No body at all: everything created so far.
	r = a.admin(t, http.MethodPost, "/v1/sessions/revoke", nil)
	expectStatus(t, "bulk revoke of everything", r, http.StatusOK)
	if n := decode[revokedCount](t, r).Revoked; n != 2 {
		t.Errorf("revoked %d, want the 2 remaining sessions", n)
	}
	a.expectInvalid(t, "mobile session after revoking all", mobile.AccessToken)
}

func TestIntrospect_ReportsEveryTokenState(t *testing.T) {
	t.Parallel()
	a := startAPI(t)
	tok := a.create(t, "mia", map[string]any{"app": "shop", "scopes": []string{"read", "write", "admin:x"}})
	sess := a.getSession(t, tok.SessionID)

	check := func(what string, got introspection, kind string, exp time.Time) {
		t.Helper()
		want := introspection{Active: true, Status: "active", TokenType: kind, Sub: "mia", SID: tok.SessionID,
			ClientID: "shop", Scope: "read write admin:x", Iat: sess.CreatedAt.Unix(), Exp: exp.Unix()}
		if got != want {
			t.Errorf("%s: %+v, want %+v", what, got, want)
		}
	}
	check("access token (JSON)", a.introspect(t, tok.AccessToken), "access_token", tok.AccessExpiresAt)
	check("refresh token (JSON)", a.introspect(t, tok.RefreshToken), "refresh_token", tok.RefreshExpiresAt)

	form := url.Values{"token": {tok.AccessToken}, "token_type_hint": {"access_token"}}.Encode()
	r := a.admin(t, http.MethodPost, "/v1/introspect", testkit.Raw(form), "Content-Type", "application/x-www-form-urlencoded")
	expectStatus(t, "introspect (form)", r, http.StatusOK)
	check("access token (form)", decode[introspection](t, r), "access_token", tok.AccessExpiresAt)
	r = a.admin(t, http.MethodPost, "/v1/introspect", testkit.Raw("token="+url.QueryEscape(tok.RefreshToken)),
		"Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
	expectStatus(t, "introspect refresh (form)", r, http.StatusOK)
	check("refresh token (form)", decode[introspection](t, r), "refresh_token", tok.RefreshExpiresAt)

	for _, garbage := range []string{"garbage", "sa_" + strings.Repeat("A", 43), "sr_short", strings.Repeat("x", 4000)} {
		got := a.introspect(t, garbage)
		if got != (introspection{Active: false, Status: "unknown"}) {
			t.Errorf("introspect %.20q: %+v, want only active false and status unknown", garbage, got)
		}
	}

	// Logged out: both tokens inactive and revoked, nothing else disclosed.
	expectStatus(t, "logout", a.do(t, http.MethodDelete, "/v1/session", nil, "Authorization", "Bearer "+tok.AccessToken), http.StatusNoContent)
	for kind, token := range map[string]string{"access_token": tok.AccessToken, "refresh_token": tok.RefreshToken} {
		got := a.introspect(t, token)
		if got.Active || got.Status != "revoked" || got.Sub != "" || got.SID != "" {
			t.Errorf("introspect revoked %s: %+v, want active false, status revoked", kind, got)
		}
		if got.TokenType != "" && got.TokenType != kind {
			t.Errorf("introspect revoked %s: token_type %q", kind, got.TokenType)
		}
	}

	for name, req := range map[string]struct {
		body string
		ct   string
	}{
		"no token (JSON)":    {`{}`, "application/json"},
		"no token (form)":    {`token_type_hint=access_token`, "application/x-www-form-urlencoded"},
		"unknown form field": {`token=x&extra=1`, "application/x-www-form-urlencoded"},
		"unknown JSON field": {`{"token":"x","extra":1}`, "application/json"},
		"malformed JSON":     {`{"token":`, "application/json"},
	} {
		expectError(t, name, a.admin(t, http.MethodPost, "/v1/introspect", testkit.Raw(req.body), "Content-Type", req.ct),
			http.StatusBadRequest, "bad_request")
	}
	expectError(t, "text/plain introspection", a.admin(t, http.MethodPost, "/v1/introspect", testkit.Raw("token=x"),
		"Content-Type", "text/plain"), http.StatusUnsupportedMediaType, "unsupported_media_type")
	expectError(t, "introspection without key", a.do(t, http.MethodPost, "/v1/introspect",
		map[string]string{"token": tok.AccessToken}), http.StatusUnauthorized, "unauthenticated")
	a.stillServes(t)
}

func TestRevoke_AccessTokenStopsOnlyThatToken(t *testing.T) {
	t.Parallel()
	a := startAPI(t)
	tok := a.create(t, "nina", nil)
	r := a.do(t, http.MethodPost, "/v1/revoke", testkit.Raw("token="+tok.AccessToken+"&token_type_hint=access_token"),
		"Content-Type", "application/x-www-form-urlencoded")
	expectStatus(t, "revoke access token", r, http.StatusOK)
	if headerIndex(t, r) == 0 {
		t.Errorf("revocation answered index 0")
	}
	a.expectInvalid(t, "revoked access token", tok.AccessToken)
	if in := a.introspect(t, tok.AccessToken); in.Active || in.Status != "revoked" {
		t.Errorf("introspect revoked access token: %+v", in)
	}
	// The session lives on: its refresh token still refreshes.
	next := a.refreshOK(t, "refresh after access revocation", tok.RefreshToken)
	a.expectValid(t, "access token minted after the revocation", next.AccessToken)
	a.expectInvalid(t, "revoked access token stays revoked", tok.AccessToken)
	// Revoking it again is still 200.
	r = a.do(t, http.MethodPost, "/v1/revoke", map[string]string{"token": tok.AccessToken})
	expectStatus(t, "revoke an already revoked access token", r, http.StatusOK)
	a.expectValid(t, "new access token after repeated revocation", next.AccessToken)
}

func TestRevoke_RefreshTokenEndsSession(t *testing.T) {
	t.Parallel()
	a := startAPI(t)
	tok := a.create(t, "olga", nil)
	r := a.do(t, http.MethodPost, "/v1/revoke", map[string]string{"token": tok.RefreshToken, "token_type_hint": "refresh_token"})
	expectStatus(t, "revoke refresh token", r, http.StatusOK)
	a.expectInvalid(t, "access token of the ended session", tok.AccessToken)
	expectError(t, "refresh of the ended session", a.refresh(t, tok.RefreshToken), http.StatusUnauthorized, "unauthenticated")
	if s := a.getSession(t, tok.SessionID); s.Status != "revoked" || s.RevokedAt == nil {
		t.Errorf("session after refresh-token revocation: %+v", s)
	}
}

func TestRevoke_UnknownTokenAnswers200(t *testing.T) {
	t.Parallel()
	a := startAPI(t)
	tok := a.create(t, "pete", nil)
	for _, garbage := range []string{"garbage", "sa_" + strings.Repeat("C", 43), "sr_" + strings.Repeat("D", 43)} {
		expectStatus(t, "revoke "+garbage, a.do(t, http.MethodPost, "/v1/revoke", map[string]string{"token": garbage}), http.StatusOK)
		expectStatus(t, "revoke (form) "+garbage, a.do(t, http.MethodPost, "/v1/revoke",
			testkit.Raw("token="+url.QueryEscape(garbage)), "Content-Type", "application/x-www-form-urlencoded"), http.StatusOK)
	}
	expectError(t, "revoke text/plain", a.do(t, http.MethodPost, "/v1/revoke", testkit.Raw("token=x"), "Content-Type", "text/plain"),
		http.StatusUnsupportedMediaType, "unsupported_media_type")
	expectError(t, "revoke without token", a.do(t, http.MethodPost, "/v1/revoke", map[string]string{}),
		http.StatusBadRequest, "bad_request", "token")
	a.expectValid(t, "an unrelated session", tok.AccessToken)
}

func TestLogout_EndsPresentedSession(t *testing.T) {
	t.Parallel()
	a := startAPI(t)
	tok := a.create(t, "quinn", nil)
	other := a.create(t, "quinn", nil)
	r := a.do(t, http.MethodDelete, "/v1/session", nil, "X-Session-Token", tok.AccessToken)
	expectStatus(t, "logout", r, http.StatusNoContent)
	if len(r.Body) != 0 || headerIndex(t, r) == 0 {
		t.Errorf("logout answered body %q index %d", r.Body, headerIndex(t, r))
	}
	a.expectInvalid(t, "access token after logout", tok.AccessToken)
	expectError(t, "refresh after logout", a.refresh(t, tok.RefreshToken), http.StatusUnauthorized, "unauthenticated")
	expectError(t, "logout again", a.do(t, http.MethodDelete, "/v1/session", nil, "Authorization", "Bearer "+tok.AccessToken),
		http.StatusUnauthorized, "unauthenticated")
	expectError(t, "logout without token", a.do(t, http.MethodDelete, "/v1/session", nil),
		http.StatusUnauthorized, "unauthenticated")
	if s := a.getSession(t, tok.SessionID); s.Status != "revoked" || s.RevokeReason != "logout" {
		t.Errorf("session after logout: status %q reason %q", s.Status, s.RevokeReason)
	}
	a.expectValid(t, "the user's other session", other.AccessToken)
}

func TestAdminRevokeSession_ShowsRevokedWithReason(t *testing.T) {
	t.Parallel()
	a := startAPI(t)
	tok := a.create(t, "rita", nil)
	before := time.Now()
	r := a.admin(t, http.MethodDelete, "/v1/sessions/"+tok.SessionID, nil)
	expectStatus(t, "admin revoke", r, http.StatusNoContent)
	if headerIndex(t, r) <= tok.Index {
		t.Errorf("revocation index %d, creation index %d", headerIndex(t, r), tok.Index)
	}
	s := a.getSession(t, tok.SessionID)
	if s.Status != "revoked" || s.RevokeReason != "admin" || s.RevokedAt == nil || !near(*s.RevokedAt, before, 10*time.Second) {
		t.Errorf("revoked session: status %q reason %q revoked_at %v", s.Status, s.RevokeReason, s.RevokedAt)
	}
	a.expectInvalid(t, "access token of the revoked session", tok.AccessToken)
	expectError(t, "refresh of the revoked session", a.refresh(t, tok.RefreshToken), http.StatusUnauthorized, "unauthenticated")
	// Revoking it again changes nothing and still succeeds.
	expectStatus(t, "admin revoke again", a.admin(t, http.MethodDelete, "/v1/sessions/"+tok.SessionID, nil), http.StatusNoContent)
	if s2 := a.getSession(t, tok.SessionID); s2.RevokedAt == nil || !s2.RevokedAt.Equal(*s.RevokedAt) {
		t.Errorf("second revocation moved revoked_at from %v to %v", s.RevokedAt, s2.RevokedAt)
	}
}

func TestAdminRevokeRefresh_KeepsAccessTokenValid(t *testing.T) {
	t.Parallel()
	a := startAPI(t)
	tok := a.create(t, "sam", nil)
	expectStatus(t, "revoke refresh token", a.admin(t, http.MethodDelete, "/v1/sessions/"+tok.SessionID+"/refresh", nil),
		http.StatusNoContent)
	expectError(t, "refresh after refresh revocation", a.refresh(t, tok.RefreshToken), http.StatusUnauthorized, "unauthenticated")
	a.expectValid(t, "access token after refresh revocation", tok.AccessToken)
	if in := a.introspect(t, tok.RefreshToken); in.Active || in.Status != "revoked" {
		t.Errorf("introspect revoked refresh token: %+v", in)
	}
	// The refused refresh above was not reuse: the access token still works.
	a.expectValid(t, "access token after a refused refresh", tok.AccessToken)
}

func TestAdminSession_UnknownIDIsNotFound(t *testing.T) {
	t.Parallel()
	a := startAPI(t)
	tok := a.create(t, "tina", nil)
	for _, req := range []struct{ method, path string }{
		{http.MethodGet, "/v1/sessions/no-such-session"},
		{http.MethodDelete, "/v1/sessions/no-such-session"},
		{http.MethodDelete, "/v1/sessions/no-such-session/refresh"},
		{http.MethodGet, "/v1/sessions/" + strings.Repeat("z", 300)},
	} {
		expectError(t, req.method+" "+req.path[:min(len(req.path), 40)], a.admin(t, req.method, req.path, nil),
			http.StatusNotFound, "not_found")
	}
	if s := a.getSession(t, tok.SessionID); s.Status != "active" || s.UserID != "tina" || s.RevokedAt != nil || s.RevokeReason != "" {
		t.Errorf("active session: %+v", s)
	}
	expectError(t, "GET session without key", a.do(t, http.MethodGet, "/v1/sessions/"+tok.SessionID, nil),
		http.StatusUnauthorized, "unauthenticated")
}

func TestPolicy_DefaultsMatchSpec(t *testing.T) {
	t.Parallel()
	a := startAPI(t)
	expectPolicy(t, "GET /v1/policy", a.getPolicy(t), specDefaults())
	expectError(t, "policy without key", a.do(t, http.MethodGet, "/v1/policy", nil), http.StatusUnauthorized, "unauthenticated")
}

// --- Consistency -------------------------------------------------------

func TestConsistency_EveryAnswerCarriesIndexAndLastContact(t *testing.T) {
	t.Parallel()
	a := startAPI(t)
	tok := a.create(t, "uma", nil)
	answers := map[string]response{
		"healthz":      a.do(t, http.MethodGet, "/healthz", nil),
		"readyz":       a.do(t, http.MethodGet, "/readyz", nil),
		"policy":       a.admin(t, http.MethodGet, "/v1/policy", nil),
		"validate":     a.validate(t, tok.AccessToken),
		"401":          a.validate(t, "garbage"),
		"admin 401":    a.do(t, http.MethodGet, "/v1/policy", nil),
		"404 route":    a.do(t, http.MethodGet, "/no/such/route", nil),
		"404 session":  a.admin(t, http.MethodGet, "/v1/sessions/unknown", nil),
		"405":          a.do(t, http.MethodPut, "/v1/refresh", nil),
		"400":          a.do(t, http.MethodPost, "/v1/refresh", testkit.Raw("{"), "Content-Type", "application/json"),
		"415":          a.do(t, http.MethodPost, "/v1/refresh", testkit.Raw("x"), "Content-Type", "text/plain"),
		"413":          a.do(t, http.MethodPost, "/v1/refresh", testkit.Raw(make([]byte, 100<<10)), "Content-Type", "application/json"),
		"503":          a.do(t, http.MethodGet, "/v1/session?min_index=999999999&wait=10ms", nil, "X-Session-Token", tok.AccessToken),
		"revoke":       a.do(t, http.MethodPost, "/v1/revoke", map[string]string{"token": "x"}),
		"list":         a.admin(t, http.MethodGet, "/v1/users/uma/sessions", nil),
		"force logout": a.admin(t, http.MethodDelete, "/v1/users/nobody/sessions", nil),
	}
	applied := a.node.AppliedIndex()
	for name, r := range answers {
		// do() checked that both headers parse; on a single node the node is
		// the leader, so its last contact is 0.
		if lc := r.Header.Get("X-Sessiond-Last-Contact"); lc != "0" {
			t.Errorf("%s: X-Sessiond-Last-Contact %q, want 0 on the leader", name, lc)
		}
		if idx := headerIndex(t, r); idx == 0 || idx > applied {
			t.Errorf("%s: X-Sessiond-Index %d, want 1..%d", name, idx, applied)
		}
	}
}

func TestConsistency_MinIndexReadsYourWrites(t *testing.T) {
	t.Parallel()
	a := startAPI(t)
	tok := a.create(t, "vera", nil)
	next := a.refreshOK(t, "refresh", tok.RefreshToken)
	last := next.Index

	reads := map[string]response{
		"validate (query)": a.do(t, http.MethodGet, fmt.Sprintf("/v1/session?min_index=%d", last), nil,
			"Authorization", "Bearer "+next.AccessToken),
		"validate (header)": a.do(t, http.MethodGet, "/v1/session", nil,
			"Authorization", "Bearer "+next.AccessToken, "X-Sessiond-Min-Index", strconv.FormatUint(last, 10)),
		"session by id": a.admin(t, http.MethodGet, fmt.Sprintf("/v1/sessions/%s?min_index=%d&wait=1s", tok.SessionID, last), nil),
		"user sessions": a.admin(t, http.MethodGet, fmt.Sprintf("/v1/users/vera/sessions?min_index=%d", last), nil),
		"policy":        a.admin(t, http.MethodGet, fmt.Sprintf("/v1/policy?min_index=%d&wait=0s", last), nil),
		"introspect": a.admin(t, http.MethodPost, fmt.Sprintf("/v1/introspect?min_index=%d", last),
			map[string]string{"token": next.AccessToken}),
	}
	for name, r := range reads {
		expectStatus(t, name, r, http.StatusOK)
		if idx := headerIndex(t, r); idx < last {
			t.Errorf("%s: served at index %d, before the write's %d", name, idx, last)
		}
	}
}

func TestConsistency_MinIndexNotReachedIs503(t *testing.T) {
	t.Parallel()
	a := startAPI(t)
	tok := a.create(t, "wes", nil)
	start := time.Now()
	r := a.do(t, http.MethodGet, "/v1/session?min_index=18446744073709551615&wait=100ms", nil,
		"Authorization", "Bearer "+tok.AccessToken)
	elapsed := time.Since(start)
	expectError(t, "min_index far ahead", r, http.StatusServiceUnavailable, "unavailable")
	if r.Header.Get("Retry-After") == "" {
		t.Errorf("503 without Retry-After")
	}
	if elapsed < 100*time.Millisecond || elapsed > 1900*time.Millisecond {
		t.Errorf("answered after %v, want after about the 100ms wait", elapsed)
	}
	r = a.admin(t, http.MethodGet, "/v1/sessions/"+tok.SessionID+"?wait=50ms", nil,
		"X-Sessiond-Min-Index", strconv.FormatUint(tok.Index+1000, 10))
	expectError(t, "min_index header far ahead", r, http.StatusServiceUnavailable, "unavailable")
	a.expectValid(t, "a plain read afterwards", tok.AccessToken)
}

func TestConsistency_BadMinIndexOrWaitIs400(t *testing.T) {
	t.Parallel()
	a := startAPI(t)
	tok := a.create(t, "xena", nil)
	for _, q := range []string{
		"min_index=abc", "min_index=-1", "min_index=1.5", "min_index=99999999999999999999",
		"min_index=1&wait=abc", "min_index=1&wait=-1s", "min_index=1&wait=10",
	} {
		r := a.do(t, http.MethodGet, "/v1/session?"+q, nil, "Authorization", "Bearer "+tok.AccessToken)
		field := "min_index"
		if strings.Contains(q, "wait") {
			field = "wait"
		}
		expectError(t, q, r, http.StatusBadRequest, "bad_request", field)
	}
	expectError(t, "bad header", a.do(t, http.MethodGet, "/v1/session", nil,
		"Authorization", "Bearer "+tok.AccessToken, "X-Sessiond-Min-Index", "soon"), http.StatusBadRequest, "bad_request")
	a.expectValid(t, "a plain read afterwards", tok.AccessToken)
}

// --- Errors ------------------------------------------------------------

func TestCreateSession_RejectsBadInput(t *testing.T) {
	t.Parallel()
	a := startAPI(t)
	big := bytes.Repeat([]byte("a"), 1<<20)
	bigJSON := append(append([]byte(`{"user_id":"u","app":"`), big...), `"}`...)
	scopes33 := make([]string, 33)
	for i := range scopes33 {
		scopes33[i] = fmt.Sprintf("s%d", i)
	}
	attrs := map[string]string{"k": strings.Repeat("v", 4096)} // 4097 bytes with the key
	device := func(field, v string) map[string]any {
		return map[string]any{"user_id": "u", "device": map[string]string{field: v}}
	}
	js := func(v any) testkit.Raw {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	cases := []struct {
		name     string
		body     any
		ct       string
		status   int
		code     string
		mentions []string
	}{
		{"malformed JSON", testkit.Raw(`{"user_id":`), "application/json", 400, "bad_request", nil},
		{"not JSON at all", testkit.Raw(`user_id=u`), "application/json", 400, "bad_request", nil},
		{"unknown field", testkit.Raw(`{"user_id":"u","colour":"red"}`), "application/json", 400, "bad_request", []string{"colour"}},
		{"trailing object", testkit.Raw(`{"user_id":"u"} {"user_id":"v"}`), "application/json", 400, "bad_request", nil},
		{"trailing garbage", testkit.Raw(`{"user_id":"u"}x`), "application/json", 400, "bad_request", nil},
		{"array body", testkit.Raw(`[{"user_id":"u"}]`), "application/json", 400, "bad_request", nil},
		{"empty body", testkit.Raw(``), "application/json", 400, "bad_request", nil},
		{"wrong type", testkit.Raw(`{"user_id":5}`), "application/json", 400, "bad_request", []string{"user_id"}},
		{"1 MiB body", testkit.Raw(bigJSON), "application/json", 413, "payload_too_large", nil},
		{"1 MiB body, chunked", bytes.NewReader(bigJSON), "application/json", 413, "payload_too_large", nil},
		{"text/plain", testkit.Raw(`{"user_id":"u"}`), "text/plain", 415, "unsupported_media_type", nil},
		{"no content type", testkit.Raw(`{"user_id":"u"}`), "", 415, "unsupported_media_type", nil},
		{"form body", testkit.Raw(`user_id=u`), "application/x-www-form-urlencoded", 415, "unsupported_media_type", nil},
		{"missing user_id", js(map[string]any{}), "application/json", 400, "bad_request", []string{"user_id"}},
		{"empty user_id", js(map[string]any{"user_id": ""}), "application/json", 400, "bad_request", []string{"user_id"}},
		{"129-char user_id", js(map[string]any{"user_id": strings.Repeat("u", 129)}), "application/json", 400, "bad_request", []string{"user_id"}},
		{"user_id with a space", js(map[string]any{"user_id": "a b"}), "application/json", 400, "bad_request", []string{"user_id"}},
		{"user_id with é", js(map[string]any{"user_id": "é"}), "application/json", 400, "bad_request", []string{"user_id"}},
		{"user_id with slash", js(map[string]any{"user_id": "a/b"}), "application/json", 400, "bad_request", []string{"user_id"}},
		{"bad app", js(map[string]any{"user_id": "u", "app": "my app"}), "application/json", 400, "bad_request", []string{"app"}},
		{"129-char app", js(map[string]any{"user_id": "u", "app": strings.Repeat("a", 129)}), "application/json", 400, "bad_request", []string{"app"}},
		{"33 scopes", js(map[string]any{"user_id": "u", "scopes": scopes33}), "application/json", 400, "bad_request", []string{"scopes"}},
		{"129-char scope", js(map[string]any{"user_id": "u", "scopes": []string{strings.Repeat("s", 129)}}), "application/json", 400, "bad_request", []string{"scopes"}},
		{"empty scope", js(map[string]any{"user_id": "u", "scopes": []string{""}}), "application/json", 400, "bad_request", []string{"scopes"}},
		{"attributes over 4096 bytes", js(map[string]any{"user_id": "u", "attributes": attrs}), "application/json", 400, "bad_request", []string{"attributes"}},
		{"NUL in attribute", js(map[string]any{"user_id": "u", "attributes": map[string]string{"k": "a\x00b"}}), "application/json", 400, "bad_request", []string{"attributes"}},
		{"user_agent over 512 bytes", js(device("user_agent", strings.Repeat("x", 513))), "application/json", 400, "bad_request", []string{"user_agent"}},
		{"ip over 512 bytes", js(device("ip", strings.Repeat("1", 513))), "application/json", 400, "bad_request", []string{"ip"}},
		{"label over 512 bytes", js(device("label", strings.Repeat("é", 257))), "application/json", 400, "bad_request", []string{"label"}},
		{"NUL in device label", js(device("label", "lap\x00top")), "application/json", 400, "bad_request", []string{"label"}},
		{"NUL in user agent", testkit.Raw(`{"user_id":"u","device":{"user_agent":"a\u0000b"}}`), "application/json", 400, "bad_request", []string{"user_agent"}},
		{"invalid UTF-8", testkit.Raw("{\"user_id\":\"u\",\"device\":{\"label\":\"\xff\xfe\"}}"), "application/json", 400, "bad_request", nil},
		{"unknown device field", testkit.Raw(`{"user_id":"u","device":{"os":"linux"}}`), "application/json", 400, "bad_request", []string{"os"}},
	}
	for _, tc := range cases {
		var hdrs []string
		if tc.ct != "" {
			hdrs = []string{"Content-Type", tc.ct}
		}
		r := a.admin(t, http.MethodPost, "/v1/sessions", tc.body, hdrs...)
		expectError(t, tc.name, r, tc.status, tc.code, tc.mentions...)
		a.stillServes(t)
	}

	// The limits themselves are allowed.
	scopes32 := scopes33[:32]
	ok := a.create(t, strings.Repeat("u", 128), map[string]any{
		"app":        "A.b_c@d:e+f-9",
		"scopes":     scopes32,
		"attributes": map[string]string{"k": strings.Repeat("v", 4095)},
		"device":     map[string]string{"user_agent": strings.Repeat("x", 512), "ip": "::1", "label": strings.Repeat("é", 256)},
	})
	s := a.expectValid(t, "session at the limits", ok.AccessToken)
	if len(s.Scopes) != 32 || len(s.Attributes["k"]) != 4095 || len(s.Device.UserAgent) != 512 {
		t.Errorf("session at the limits came back shortened: %d scopes", len(s.Scopes))
	}
}

func TestRefresh_RejectsBadBodies(t *testing.T) {
	t.Parallel()
	a := startAPI(t)
	big := append(append([]byte(`{"refresh_token":"`), bytes.Repeat([]byte("a"), 1<<20)...), `"}`...)
	for _, tc := range []struct {
		name   string
		body   any
		ct     string
		status int
		code   string
	}{
		{"malformed", testkit.Raw(`{"refresh_token"`), "application/json", 400, "bad_request"},
		{"unknown field", testkit.Raw(`{"refresh_token":"x","foo":1}`), "application/json", 400, "bad_request"},
		{"trailing data", testkit.Raw(`{"refresh_token":"x"}{}`), "application/json", 400, "bad_request"},
		{"1 MiB", testkit.Raw(big), "application/json", 413, "payload_too_large"},
		{"1 MiB chunked", bytes.NewReader(big), "application/json", 413, "payload_too_large"},
		{"form", testkit.Raw(`refresh_token=x`), "application/x-www-form-urlencoded", 415, "unsupported_media_type"},
		{"text", testkit.Raw(`x`), "text/plain", 415, "unsupported_media_type"},
	} {
		expectError(t, tc.name, a.do(t, http.MethodPost, "/v1/refresh", tc.body, "Content-Type", tc.ct), tc.status, tc.code)
		a.stillServes(t)
	}
	// Introspection and revocation refuse big bodies too, form or chunked.
	form := append([]byte("token="), bytes.Repeat([]byte("a"), 1<<20)...)
	expectError(t, "1 MiB introspection form", a.admin(t, http.MethodPost, "/v1/introspect", bytes.NewReader(form),
		"Content-Type", "application/x-www-form-urlencoded"), 413, "payload_too_large")
	expectError(t, "1 MiB revocation form", a.do(t, http.MethodPost, "/v1/revoke", testkit.Raw(form),
		"Content-Type", "application/x-www-form-urlencoded"), 413, "payload_too_large")
	a.stillServes(t)
}

func TestAdminAuth_MissingOrWrongKeyIsOneGeneric401(t *testing.T) {
	t.Parallel()
	a := startAPI(t)
	body := map[string]string{"user_id": "yuri"}
	var messages []string
	for name, hdrs := range map[string][]string{
		"missing key":     nil,
		"empty key":       {"X-API-Key", ""},
		"wrong key":       {"X-API-Key", "test-admin-key-0123456789abcdeX"},
		"key prefix":      {"X-API-Key", testAPIKey[:10]},
		"key plus suffix": {"X-API-Key", testAPIKey + "x"},
		"key as bearer":   {"Authorization", "Bearer " + testAPIKey},
	} {
		r := a.do(t, http.MethodPost, "/v1/sessions", body, hdrs...)
		messages = append(messages, expectError(t, name, r, http.StatusUnauthorized, "unauthenticated"))
	}
	messages = append(messages, expectError(t, "bad session token",
		a.validate(t, "garbage"), http.StatusUnauthorized, "unauthenticated"))
	for _, m := range messages[1:] {
		if m != messages[0] {
			t.Errorf("401 messages differ: %q and %q; want one generic message", messages[0], m)
		}
	}
	// Both configured keys are accepted (rotation).
	for _, key := range []string{testAPIKey, rotatedKey} {
		r := a.do(t, http.MethodPost, "/v1/sessions", body, "X-API-Key", key)
		expectStatus(t, "create with a configured key", r, http.StatusCreated)
	}
	// A refused request wrote nothing.
	r := a.admin(t, http.MethodGet, "/v1/users/yuri/sessions", nil)
	if n := len(decode[sessionList](t, r).Sessions); n != 2 {
		t.Errorf("user has %d sessions, want 2 (the refused requests created none)", n)
	}
}

func TestRouting_UnknownRouteIs404AndOtherMethodIs405(t *testing.T) {
	t.Parallel()
	a := startAPI(t)
	for _, path := range []string{"/", "/v1", "/v1/nothing", "/v2/sessions", "/v1/users/x/sessions/extra"} {
		expectError(t, "GET "+path, a.admin(t, http.MethodGet, path, nil), http.StatusNotFound, "not_found")
	}
	for _, req := range []struct{ method, path string }{
		{http.MethodGet, "/v1/sessions"},
		{http.MethodPut, "/v1/sessions"},
		{http.MethodGet, "/v1/refresh"},
		{http.MethodPost, "/v1/session"},
		{http.MethodPatch, "/v1/sessions/abc"},
		{http.MethodPost, "/v1/users/u/sessions"},
		{http.MethodGet, "/v1/introspect"},
		{http.MethodGet, "/v1/revoke"},
		{http.MethodPost, "/healthz"},
	} {
		r := a.admin(t, req.method, req.path, nil)
		expectError(t, req.method+" "+req.path, r, http.StatusMethodNotAllowed, "method_not_allowed")
	}
	a.stillServes(t)
}

// --- Concurrency -------------------------------------------------------

func TestRefresh_ConcurrentSameTokenHasOneWinner(t *testing.T) {
	t.Parallel()
	a := startAPI(t)
	tok := a.create(t, "zoe", nil)
	const racers = 32
	var (
		wg      sync.WaitGroup
		start   = make(chan struct{})
		results = make([]response, racers)
		errs    = make([]error, racers)
	)
	body := map[string]string{"refresh_token": tok.RefreshToken}
	for i := range racers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			results[i], errs[i] = a.send(http.MethodPost, "/v1/refresh", body)
		}()
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("racer %d: %v", i, err)
		}
		checkConsistencyHeaders(t, fmt.Sprintf("racer %d", i), results[i])
	}

	var winners []tokenResponse
	for i, r := range results {
		switch r.Status {
		case http.StatusOK:
			winners = append(winners, decode[tokenResponse](t, r))
		case http.StatusUnauthorized:
			expectError(t, fmt.Sprintf("racer %d", i), r, http.StatusUnauthorized, "unauthenticated")
		default:
			t.Errorf("racer %d: %s, want 200 or 401", i, r)
		}
	}
	if len(winners) != 1 {
		t.Fatalf("%d refreshes of one token succeeded, want exactly 1", len(winners))
	}
	win := winners[0]

	// The losers presented a token that had been rotated: reuse, which ends
	// the session. Either way, the tokens never work for two holders.
	s := a.getSession(t, tok.SessionID)
	switch s.Status {
	case "revoked":
		t.Logf("the race ended the session as refresh-token reuse (revoke_reason %q)", s.RevokeReason)
		if s.RevokeReason != "refresh_token_reuse" {
			t.Errorf("revoke_reason %q, want refresh_token_reuse", s.RevokeReason)
		}
		a.expectInvalid(t, "winner's access token after reuse detection", win.AccessToken)
		expectError(t, "winner's refresh token after reuse detection", a.refresh(t, win.RefreshToken),
			http.StatusUnauthorized, "unauthenticated")
	case "active":
		t.Logf("no loser was treated as reuse; the winner's tokens work")
		a.expectValid(t, "winner's access token", win.AccessToken)
		expectStatus(t, "winner's refresh token", a.refresh(t, win.RefreshToken), http.StatusOK)
	default:
		t.Errorf("session status %q after the race", s.Status)
	}
	a.expectInvalid(t, "original access token", tok.AccessToken)
	a.stillServes(t)
}

// --- Lifetimes -----------------------------------------------------------

func TestExpiry_TokensExpireOnTheNodeClock(t *testing.T) {
	t.Parallel()
	clock := testkit.NewClock(time.Now().UTC())
	a := startAPI(t, func(c *node.Config) { c.Clock = clock.Now })
	t0 := clock.Now()
	tok := a.create(t, "exp", nil)
	if !near(tok.AccessExpiresAt, t0.Add(defaultTTL), time.Second) || !near(tok.RefreshExpiresAt, t0.Add(refreshTTL), time.Second) {
		t.Fatalf("token answer %+v, want expiries from the node clock %v", tok, t0)
	}

	clock.Advance(defaultTTL + time.Second) // access expired, refresh not
	a.expectInvalid(t, "expired access token", tok.AccessToken)
	if in := a.introspect(t, tok.AccessToken); in.Active || in.Status != "expired" {
		t.Errorf("introspect expired access token: %+v, want active false, status expired", in)
	}
	if s := a.getSession(t, tok.SessionID); s.Status != "active" {
		t.Errorf("session with a live refresh token: status %q, want active", s.Status)
	}
	next := a.refreshOK(t, "refresh after the access token expired", tok.RefreshToken)
	if next.ExpiresIn < 890 || next.ExpiresIn > 900 {
		t.Errorf("expires_in %d after refresh, want about 900 on the node clock", next.ExpiresIn)
	}
	if !next.RefreshExpiresAt.Equal(tok.RefreshExpiresAt) {
		t.Errorf("refresh moved refresh_expires_at from %v to %v without sliding_refresh", tok.RefreshExpiresAt, next.RefreshExpiresAt)
	}
	a.expectValid(t, "access token minted after expiry", next.AccessToken)

	clock.Advance(refreshTTL - defaultTTL) // refresh token expired, new access not
	expectError(t, "refresh with an expired refresh token", a.refresh(t, next.RefreshToken), http.StatusUnauthorized, "unauthenticated")
	if in := a.introspect(t, next.RefreshToken); in.Active || in.Status != "expired" {
		t.Errorf("introspect expired refresh token: %+v, want status expired", in)
	}
	a.expectValid(t, "access token still inside its lifetime", next.AccessToken)

	clock.Advance(defaultTTL)
	a.expectInvalid(t, "access token past its lifetime", next.AccessToken)
	if s := a.getSession(t, tok.SessionID); s.Status != "expired" {
		t.Errorf("session past every expiry: status %q, want expired", s.Status)
	}
	r := a.admin(t, http.MethodGet, "/v1/users/exp/sessions", nil)
	if n := len(decode[sessionList](t, r).Sessions); n != 0 {
		t.Errorf("user lists %d sessions, want none once expired", n)
	}
}

func TestCreateSession_RememberMeUsesRememberMeTTL(t *testing.T) {
	t.Parallel()
	a := startAPI(t)
	before := time.Now()
	tok := a.create(t, "remy", map[string]any{"remember_me": true})
	if !near(tok.RefreshExpiresAt, before.Add(absoluteTTL), 10*time.Second) || !near(tok.ExpiresAt, before.Add(absoluteTTL), 10*time.Second) {
		t.Errorf("remember-me session: refresh_expires_at %v expires_at %v, want both about now+720h", tok.RefreshExpiresAt, tok.ExpiresAt)
	}
	if !near(tok.AccessExpiresAt, before.Add(defaultTTL), 10*time.Second) {
		t.Errorf("remember-me access_expires_at %v, want about now+15m", tok.AccessExpiresAt)
	}
	if s := a.getSession(t, tok.SessionID); !s.RememberMe {
		t.Errorf("session does not show remember_me")
	}
}

// A created_before in the far future means "everything so far": it must
// not wrap around into the past (time.Time.UnixNano is undefined after
// 2262) and silently revoke nothing. Refusing it with 400 is also fine.
func TestBulkRevoke_FarFutureCreatedBeforeRevokesEverything(t *testing.T) {
	t.Parallel()
	a := startAPI(t)
	for _, when := range []string{"2600-01-01T00:00:00Z", "2300-01-01T00:00:00Z", "9999-12-31T23:59:59Z"} {
		t.Run(when[:4], func(t *testing.T) {
			tok1, tok2 := a.create(t, "far1", nil), a.create(t, "far2", nil)
			r := a.admin(t, http.MethodPost, "/v1/sessions/revoke", map[string]string{"created_before": when})
			if r.Status == http.StatusBadRequest {
				msg := expectError(t, "created_before "+when, r, http.StatusBadRequest, "bad_request", "created_before")
				if strings.Contains(msg, "1970") {
					t.Errorf("created_before %s refused with %q: the time is after 1970, not before", when, msg)
				}
				// Clean up for the next case.
				expectStatus(t, "revoke all", a.admin(t, http.MethodPost, "/v1/sessions/revoke", nil), http.StatusOK)
				return
			}
			expectStatus(t, "created_before "+when, r, http.StatusOK)
			if n := decode[revokedCount](t, r).Revoked; n != 2 {
				t.Errorf("created_before %s revoked %d sessions, want both sessions created before it", when, n)
			}
			a.expectInvalid(t, "session 1 after revoking everything before "+when, tok1.AccessToken)
			a.expectInvalid(t, "session 2 after revoking everything before "+when, tok2.AccessToken)
		})
	}
	for _, when := range []string{"1969-12-31T23:59:59Z", "1970-01-01T00:00:00Z"} {
		expectError(t, "created_before "+when, a.admin(t, http.MethodPost, "/v1/sessions/revoke",
			map[string]string{"created_before": when}), http.StatusBadRequest, "bad_request", "created_before")
	}
}

func TestBodyLimit_Exactly64KiBIsAccepted(t *testing.T) {
	t.Parallel()
	a := startAPI(t)
	const limit = 64 << 10
	body := []byte(`{"user_id":"edge"}`)
	pad := func(n int) testkit.Raw {
		return append(append([]byte{}, body...), bytes.Repeat([]byte(" "), n-len(body))...)
	}
	r := a.admin(t, http.MethodPost, "/v1/sessions", pad(limit), "Content-Type", "application/json")
	expectStatus(t, "a body of exactly 64 KiB", r, http.StatusCreated)
	r = a.admin(t, http.MethodPost, "/v1/sessions", pad(limit+1), "Content-Type", "application/json")
	expectError(t, "a body of 64 KiB + 1", r, http.StatusRequestEntityTooLarge, "payload_too_large")
	r = a.admin(t, http.MethodPost, "/v1/sessions", bytes.NewReader(pad(limit+1)), "Content-Type", "application/json")
	expectError(t, "a chunked body of 64 KiB + 1", r, http.StatusRequestEntityTooLarge, "payload_too_large")
	a.stillServes(t)
}

// No input, however malformed, may crash the node or answer a 5xx other
// than 503.
func TestMalformedInput_NeverAnswers5xx(t *testing.T) {
	t.Parallel()
	a := startAPI(t)
	tok := a.create(t, "victim", nil)
	bodies := map[string]testkit.Raw{
		"deep nesting":   testkit.Raw(strings.Repeat("[", 30000) + strings.Repeat("]", 30000)),
		"deep object":    testkit.Raw(strings.Repeat(`{"a":`, 12000) + "1" + strings.Repeat("}", 12000)),
		"binary":         testkit.Raw([]byte{0, 1, 2, 0xff, 0xfe, '{', 0x80}),
		"number":         testkit.Raw("1e999999"),
		"huge string":    testkit.Raw(`{"user_id":"` + strings.Repeat("\\u00e9", 10000) + `"}`),
		"lone surrogate": testkit.Raw(`{"user_id":"\ud800","token":"\ud800","refresh_token":"\udfff"}`),
		"nested types":   testkit.Raw(`{"user_id":{"a":[1,2]},"scopes":"x","attributes":[1],"device":7,"apps":{},"created_before":5,"reason":[],"token":false}`),
		"form garbage":   testkit.Raw("%zz=%%&&token=%ff"),
	}
	routes := []struct{ method, path string }{
		{http.MethodPost, "/v1/sessions"},
		{http.MethodPost, "/v1/refresh"},
		{http.MethodPost, "/v1/introspect"},
		{http.MethodPost, "/v1/revoke"},
		{http.MethodPost, "/v1/sessions/revoke"},
		{http.MethodDelete, "/v1/users/victim/sessions"},
	}
	for _, rt := range routes {
		for name, body := range bodies {
			for _, ct := range []string{"application/json", "application/x-www-form-urlencoded", "application/json; charset=\"", ""} {
				hdrs := []string{"X-API-Key", testAPIKey}
				if ct != "" {
					hdrs = append(hdrs, "Content-Type", ct)
				}
				r := a.do(t, rt.method, rt.path, body, hdrs...)
				if r.Status >= 500 && r.Status != http.StatusServiceUnavailable || r.Status < 400 && rt.path != "/v1/revoke" {
					t.Errorf("%s %s with %s (%q): %s", rt.method, rt.path, name, ct, r)
				}
			}
		}
	}
	for _, path := range []string{"/v1/sessions/%00", "/v1/sessions/%ff%fe", "/v1/users/%00/sessions", "/v1/users/%e9/sessions",
		"/v1/sessions/..%2f..%2fetc", "/v1/sessions/" + strings.Repeat("%41", 2000)} {
		for _, m := range []string{http.MethodGet, http.MethodDelete} {
			r := a.admin(t, m, path, nil)
			if r.Status >= 500 || r.Status < 400 {
				t.Errorf("%s %.40s: %s", m, path, r)
			}
		}
	}
	a.expectValid(t, "the session after the garbage", tok.AccessToken)
	a.stillServes(t)
}

// The strict decoder refuses every body that is not a JSON object ([], 1,
// "x") with 400; a bare null must not slip through as "no options", least of
// all on the destructive admin endpoints where no options means "revoke
// everything".
func TestJSONBody_NullIsNotAnObject(t *testing.T) {
	t.Parallel()
	a := startAPI(t)
	tok := a.create(t, "nully", nil)
	for _, rt := range []struct{ method, path string }{
		{http.MethodPost, "/v1/sessions/revoke"},
		{http.MethodDelete, "/v1/users/nully/sessions"},
		{http.MethodPost, "/v1/sessions"},
		{http.MethodPost, "/v1/refresh"},
		{http.MethodPost, "/v1/introspect"},
	} {
		for _, body := range []string{"null", "[]", "1", `"x"`, "true"} {
			r := a.admin(t, rt.method, rt.path, testkit.Raw(body), "Content-Type", "application/json")
			if r.Status != http.StatusBadRequest {
				t.Errorf("%s %s with body %s: %s, want 400 bad_request", rt.method, rt.path, body, r)
			}
		}
	}
	if r := a.validate(t, tok.AccessToken); r.Status != http.StatusOK {
		t.Errorf("a bare null body revoked the session: validation %s", r)
	}
}

// user_id may hold @ : + (docs/api.md#concepts), which clients percent-encode
// in a path segment (JavaScript's encodeURIComponent gives
// alice%40example.com). The encoded and the literal path name the same user.
func TestUserRoutes_AcceptPercentEncodedUserID(t *testing.T) {
	t.Parallel()
	a := startAPI(t)
	for _, user := range []string{"alice@example.com", "tenant:42", "a+b", "x.y_z-1"} {
		tok := a.create(t, user, nil)
		escaped := url.PathEscape(user)
		full := strings.NewReplacer("@", "%40", ":", "%3A", "+", "%2B").Replace(user)
		for _, p := range []string{escaped, full} {
			r := a.admin(t, http.MethodGet, "/v1/users/"+p+"/sessions", nil)
			if r.Status != http.StatusOK {
				t.Errorf("GET /v1/users/%s/sessions: %s, want 200", p, r)
				continue
			}
			if l := decode[sessionList](t, r); len(l.Sessions) != 1 || l.Sessions[0].UserID != user {
				t.Errorf("GET /v1/users/%s/sessions listed %+v, want the one session of %s", p, l.Sessions, user)
			}
		}
		r := a.admin(t, http.MethodDelete, "/v1/users/"+full+"/sessions", nil)
		if r.Status != http.StatusOK {
			t.Errorf("DELETE /v1/users/%s/sessions: %s, want 200", full, r)
			continue
		}
		if n := decode[revokedCount](t, r).Revoked; n != 1 {
			t.Errorf("DELETE /v1/users/%s/sessions revoked %d, want 1", full, n)
		}
		a.expectInvalid(t, "session of "+user+" after force logout by encoded id", tok.AccessToken)
	}
}

// TestREADMEWalkthrough replays the README's curl walk-through step by step,
// with the same requests (curl -d sends a form) and the answers it shows.
func TestREADMEWalkthrough(t *testing.T) {
	t.Parallel()
	a := startAPI(t)
	const form = "application/x-www-form-urlencoded" // what curl -d sends

	r := a.admin(t, http.MethodPost, "/v1/sessions",
		testkit.Raw(`{"user_id":"alice","app":"web","scopes":["read"],"device":{"user_agent":"curl","label":"laptop"}}`),
		"Content-Type", "application/json")
	expectStatus(t, "create", r, http.StatusCreated)
	s := decode[tokenResponse](t, r)

	for _, hdr := range [][]string{{"Authorization", "Bearer " + s.AccessToken}, {"X-Session-Token", s.AccessToken}} {
		r = a.do(t, http.MethodGet, "/v1/session", nil, hdr...)
		expectStatus(t, "validate with "+hdr[0], r, http.StatusOK)
		if got := decode[sessionInfo](t, r); got.UserID != "alice" || got.App != "web" || got.Device.UserAgent != "curl" || got.Device.Label != "laptop" {
			t.Errorf("validated session %+v", got)
		}
	}

	r = a.do(t, http.MethodPost, "/v1/refresh", testkit.Raw(`{"refresh_token":"`+s.RefreshToken+`"}`), "Content-Type", "application/json")
	expectStatus(t, "refresh", r, http.StatusOK)
	s2 := decode[tokenResponse](t, r)
	a.expectInvalid(t, "old access token", s.AccessToken)

	expectError(t, "old refresh token again", a.refresh(t, s.RefreshToken), http.StatusUnauthorized, "unauthenticated")
	a.expectInvalid(t, "new access token after the theft", s2.AccessToken)

	r = a.admin(t, http.MethodPost, "/v1/introspect", testkit.Raw("token="+s2.AccessToken), "Content-Type", form)
	expectStatus(t, "introspect", r, http.StatusOK)
	if got := string(bytes.TrimSpace(r.Body)); got != `{"active":false,"status":"revoked","token_type":"access_token"}` {
		t.Errorf("introspection answered %s, README shows {\"active\":false,\"status\":\"revoked\",\"token_type\":\"access_token\"}", got)
	}
	if got := a.getSession(t, s.SessionID); got.Status != "revoked" || got.RevokeReason != "refresh_token_reuse" {
		t.Errorf("session %q %q, README shows revoked, refresh_token_reuse", got.Status, got.RevokeReason)
	}

	// New sessions for the rest of the walk-through.
	w1 := a.create(t, "alice", map[string]any{"app": "web"})
	w2 := a.create(t, "alice", map[string]any{"app": "web"})
	r = a.admin(t, http.MethodGet, "/v1/users/alice/sessions", nil)
	if l := decode[sessionList](t, r); len(l.Sessions) != 2 || l.Sessions[0].SessionID != w2.SessionID {
		t.Errorf("alice's sessions %+v, want the two new ones, newest first", l.Sessions)
	}
	r = a.admin(t, http.MethodDelete, "/v1/users/alice/sessions", testkit.Raw(`{"reason":"admin"}`), "Content-Type", "application/json")
	expectStatus(t, "force logout", r, http.StatusOK)
	if n := decode[revokedCount](t, r).Revoked; n != 2 {
		t.Errorf("force logout revoked %d, want 2", n)
	}
	a.expectInvalid(t, "alice after force logout", w1.AccessToken)

	web := a.create(t, "bob", map[string]any{"app": "web"})
	mobile := a.create(t, "bob", map[string]any{"app": "mobile"})
	// date -u +%Y-%m-%dT%H:%M:%SZ has whole seconds: wait until it names a
	// time after both sessions were made (at most a second).
	made := a.getSession(t, mobile.SessionID).CreatedAt
	var stamp string
	testkit.Eventually(t, 2*time.Second, "a whole second after the sessions were made", func() bool {
		now := time.Now().UTC().Truncate(time.Second)
		stamp = now.Format("2006-01-02T15:04:05Z")
		return now.After(made)
	})
	r = a.admin(t, http.MethodPost, "/v1/sessions/revoke", testkit.Raw(`{"created_before":"`+stamp+`","apps":["web"]}`), "Content-Type", "application/json")
	expectStatus(t, "bulk revoke", r, http.StatusOK)
	if n := decode[revokedCount](t, r).Revoked; n != 1 {
		t.Errorf("bulk revoke of web revoked %d, want 1", n)
	}
	a.expectInvalid(t, "bob's web session", web.AccessToken)
	a.expectValid(t, "bob's mobile session", mobile.AccessToken)

	expectStatus(t, "logout", a.do(t, http.MethodDelete, "/v1/session", nil, "Authorization", "Bearer "+mobile.AccessToken), http.StatusNoContent)
	last := a.create(t, "carol", nil)
	expectStatus(t, "RFC 7009 revocation", a.do(t, http.MethodPost, "/v1/revoke", testkit.Raw("token="+last.RefreshToken), "Content-Type", form), http.StatusOK)
	a.expectInvalid(t, "session ended by revoking its refresh token", last.AccessToken)
}
