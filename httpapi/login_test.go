package httpapi_test

// Built-in users, password logins and the lockout, through real HTTP on one
// node. The starter here (startServer) is shared by the other test files of
// this package that need cookies, token exchange, a node clock or a cheap
// password hasher.

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sessiond/sessiond/events"
	"github.com/sessiond/sessiond/httpapi"
	"github.com/sessiond/sessiond/node"
	"github.com/sessiond/sessiond/node/password"
	"github.com/sessiond/sessiond/transport/testkit"
)

// cheapHasher keeps argon2id fast under the race detector: the tests check
// what is done with passwords, not the cost of hashing them.
func cheapHasher() *password.Hasher {
	return password.NewHasher(password.Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}, 0)
}

// serverSetup is what startServer changes from startAPI's defaults.
type serverSetup struct {
	// Clock, when set, is the node's clock.
	Clock *testkit.Clock
	// API changes the HTTP API's configuration (cookie keys, exchange).
	API func(*httpapi.Config)
	// Node changes the node's configuration.
	Node func(*node.Config)
	// Logger, when set, receives every log line of the node and the API
	// instead of t.Log.
	Logger *slog.Logger
}

// startServer starts a node in t.TempDir() (with a cheap password hasher,
// and the setup's clock, logger and options) and the API over it on
// 127.0.0.1:0, waits until GET /readyz answers 200, and stops both when the
// test ends.
func startServer(t *testing.T, setup serverSetup) *testAPI {
	t.Helper()
	logger := setup.Logger
	if logger == nil {
		logger = testkit.Logger(t, slog.LevelInfo) // its cleanup registered first: runs after everything else
	}

	cfg := node.Default()
	cfg.NodeID = "n1"
	cfg.DataDir = t.TempDir()
	cfg.RaftAddr = "127.0.0.1:0"
	cfg.HeartbeatTimeout = 50 * time.Millisecond
	cfg.ElectionTimeout = 50 * time.Millisecond
	cfg.Logger = logger
	cfg.Passwords = cheapHasher()
	if setup.Clock != nil {
		cfg.Clock = setup.Clock.Now
	}
	if setup.Node != nil {
		setup.Node(&cfg)
	}
	n := newNode(t, cfg)

	apiCfg := httpapi.Default()
	apiCfg.Backend = n
	apiCfg.APIKeys = []string{testAPIKey, rotatedKey}
	apiCfg.Logger = logger
	apiCfg.LoginRate = httpapi.LoginRate{} // tests log in fast from one address; ratelimit_test.go turns it on
	if setup.API != nil {
		setup.API(&apiCfg)
	}
	api, err := httpapi.New(apiCfg)
	if err != nil {
		t.Fatalf("new API: %v", err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	served := make(chan error, 1)
	go func() { served <- api.Serve(l) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := api.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		if err := <-served; err != nil {
			t.Errorf("serve: %v", err)
		}
	})

	client := &http.Client{
		Timeout:   15 * time.Second,
		Transport: &http.Transport{MaxIdleConnsPerHost: 64},
	}
	t.Cleanup(client.CloseIdleConnections)
	a := &testAPI{base: "http://" + l.Addr().String(), client: client, node: n}
	testkit.Eventually(t, readyTimeout, "GET /readyz to answer 200", func() bool {
		resp, err := client.Get(a.base + "/readyz")
		if err != nil {
			return false
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	return a
}

// newNode starts a node and closes it when the test ends.
func newNode(t *testing.T, cfg node.Config) *node.Node {
	t.Helper()
	n, err := node.New(cfg)
	if err != nil {
		t.Fatalf("start node: %v", err)
	}
	t.Cleanup(func() {
		if err := n.Close(); err != nil {
			t.Errorf("close node: %v", err)
		}
	})
	return n
}

// newClock is a node clock starting now, on a whole second.
func newClock() *testkit.Clock { return testkit.NewClock(time.Now().UTC().Truncate(time.Second)) }

// putUser sets a user's email and password and checks the 200.
func (a *testAPI) putUser(t testing.TB, id, email, pw string) {
	t.Helper()
	body := map[string]string{"password": pw}
	if email != "" {
		body["email"] = email
	}
	expectStatus(t, "PUT user "+id, a.admin(t, http.MethodPut, "/v1/users/"+id, body), http.StatusOK)
}

// putPolicy replaces the policy and checks the 200.
func (a *testAPI) putPolicy(t testing.TB, p map[string]any) {
	t.Helper()
	expectStatus(t, "PUT /v1/policy", a.admin(t, http.MethodPut, "/v1/policy", p), http.StatusOK)
}

// login is POST /v1/login with the given body.
func (a *testAPI) login(t testing.TB, body map[string]any, hdrs ...string) response {
	t.Helper()
	return a.do(t, http.MethodPost, "/v1/login", body, hdrs...)
}

// loginOK logs in and checks the 201.
func (a *testAPI) loginOK(t testing.TB, what string, body map[string]any) tokenResponse {
	t.Helper()
	r := a.login(t, body)
	expectStatus(t, what, r, http.StatusCreated)
	return decode[tokenResponse](t, r)
}

// userRecord is GET /v1/users/{id}.
type userRecord struct {
	UserID      string     `json:"user_id"`
	Email       string     `json:"email"`
	HasPassword bool       `json:"has_password"`
	MaxSessions *int       `json:"max_sessions"`
	LockedUntil *time.Time `json:"locked_until"`
	CreatedAt   time.Time  `json:"created_at"`
	UpdatedAt   time.Time  `json:"updated_at"`
}

type userChange struct {
	UserID  string `json:"user_id"`
	Revoked int    `json:"revoked"`
	Index   uint64 `json:"index"`
}

// expectRevoked checks that a change to a user answered 200 and revoked n
// sessions, and returns the answer.
func expectRevoked(t testing.TB, what string, r response, n int) userChange {
	t.Helper()
	expectStatus(t, what, r, http.StatusOK)
	ch := decode[userChange](t, r)
	if ch.Revoked != n {
		t.Errorf("%s answered %s, want %d revoked", what, r.Body, n)
	}
	return ch
}

// passwordHash is the argon2id string the state machine holds for a user.
func (a *testAPI) passwordHash(t testing.TB, id string) string {
	t.Helper()
	u, ok := a.node.FSM().User(events.UserID(id))
	if !ok || !strings.HasPrefix(u.PasswordHash, "$argon2id$") {
		t.Fatalf("user %s in the FSM: %+v, want an argon2id hash", id, u)
	}
	return u.PasswordHash
}

const (
	alicePassword = "correct horse battery staple"
	aliceEmail    = "Alice@Example.com"
)

// --- Users ---------------------------------------------------------------

func TestUsers_PutCreatesUserAndGetNeverShowsTheHash(t *testing.T) {
	t.Parallel()
	a := startServer(t, serverSetup{})
	r := a.admin(t, http.MethodPut, "/v1/users/alice", map[string]string{"email": aliceEmail, "password": alicePassword})
	expectStatus(t, "PUT new user", r, http.StatusOK)
	ch := decode[userChange](t, r)
	if ch.UserID != "alice" || ch.Revoked != 0 || ch.Index == 0 || headerIndex(t, r) != ch.Index {
		t.Errorf("PUT answer %s (X-Sessiond-Index %d), want user_id alice, revoked 0 and the write's index", r.Body, headerIndex(t, r))
	}
	hash := a.passwordHash(t, "alice")

	r = a.admin(t, http.MethodGet, "/v1/users/alice", nil)
	expectStatus(t, "GET user", r, http.StatusOK)
	u := decode[userRecord](t, r)
	if u.UserID != "alice" || !strings.EqualFold(u.Email, aliceEmail) || !u.HasPassword || u.MaxSessions != nil || u.LockedUntil != nil {
		t.Errorf("GET user: %s", r.Body)
	}
	for _, secret := range []string{hash, "argon2", alicePassword, hash[strings.LastIndexByte(hash, '$')+1:]} {
		if bytes.Contains(r.Body, []byte(secret)) {
			t.Errorf("GET user shows %q: %s", secret, r.Body)
		}
	}
	var raw map[string]any
	json.Unmarshal(r.Body, &raw)
	for k := range raw {
		if strings.Contains(k, "hash") || strings.Contains(k, "password") && k != "has_password" {
			t.Errorf("GET user has a field %q: %s", k, r.Body)
		}
	}
	expectError(t, "GET unknown user", a.admin(t, http.MethodGet, "/v1/users/nobody", nil), http.StatusNotFound, "not_found")
	expectError(t, "GET user without key", a.do(t, http.MethodGet, "/v1/users/alice", nil), http.StatusUnauthorized, "unauthenticated")
	expectError(t, "PUT user without key", a.do(t, http.MethodPut, "/v1/users/mallory", map[string]string{"password": alicePassword}),
		http.StatusUnauthorized, "unauthenticated")

	// An existing user may change its email alone; the old one is free then.
	expectStatus(t, "PUT email only", a.admin(t, http.MethodPut, "/v1/users/alice", map[string]string{"email": "alice@new.example"}), http.StatusOK)
	if got := a.passwordHash(t, "alice"); got != hash {
		t.Errorf("changing the email changed the password hash")
	}
	a.loginOK(t, "login with the new email", map[string]any{"email": "alice@new.example", "password": alicePassword})
	expectError(t, "login with the old email", a.login(t, map[string]any{"email": aliceEmail, "password": alicePassword}),
		http.StatusUnauthorized, "unauthenticated")
	a.putUser(t, "bob", aliceEmail, "bobs password!")
}

func TestUsers_PutRejectsBadInput(t *testing.T) {
	t.Parallel()
	a := startServer(t, serverSetup{})
	a.putUser(t, "alice", aliceEmail, alicePassword)
	for _, c := range []struct {
		name     string
		body     any
		mentions string
	}{
		{"email without @", map[string]string{"email": "alice.example.com", "password": alicePassword}, "email"},
		{"email without local part", map[string]string{"email": "@example.com", "password": alicePassword}, "email"},
		{"email without domain", map[string]string{"email": "carol@", "password": alicePassword}, "email"},
		{"email with two @", map[string]string{"email": "a@b@c", "password": alicePassword}, "email"},
		{"email with a space", map[string]string{"email": "car ol@example.com", "password": alicePassword}, "email"},
		{"email too long", map[string]string{"email": strings.Repeat("x", 250) + "@e.io", "password": alicePassword}, "email"},
		{"short password", map[string]string{"email": "carol@example.com", "password": "short"}, "password"},
		{"7-byte password", map[string]string{"password": "1234567"}, "password"},
		{"password with NUL", map[string]string{"password": "12345678\x00"}, "password"},
		{"new user without password", map[string]string{"email": "carol@example.com"}, "password"},
		{"neither email nor password", map[string]string{}, "password"},
		{"unknown field", map[string]string{"password": alicePassword, "role": "admin"}, "role"},
	} {
		expectError(t, c.name, a.admin(t, http.MethodPut, "/v1/users/carol", c.body), http.StatusBadRequest, "bad_request", c.mentions)
	}
	expectError(t, "GET carol after refused PUTs", a.admin(t, http.MethodGet, "/v1/users/carol", nil), http.StatusNotFound, "not_found")
	expectError(t, "bad user id", a.admin(t, http.MethodPut, "/v1/users/car%20ol", map[string]string{"password": alicePassword}),
		http.StatusBadRequest, "bad_request", "user_id")

	// An email is unique, compared lower-cased.
	for _, email := range []string{aliceEmail, "alice@example.com", "ALICE@EXAMPLE.COM"} {
		expectError(t, "email of another user "+email, a.admin(t, http.MethodPut, "/v1/users/carol",
			map[string]string{"email": email, "password": alicePassword}), http.StatusConflict, "conflict")
	}
	expectError(t, "GET carol after conflicts", a.admin(t, http.MethodGet, "/v1/users/carol", nil), http.StatusNotFound, "not_found")
	// The owner setting its own email again is no conflict.
	expectStatus(t, "owner sets its own email", a.admin(t, http.MethodPut, "/v1/users/alice",
		map[string]string{"email": "ALICE@example.com"}), http.StatusOK)
}

func TestUsers_DeleteRevokesSessions(t *testing.T) {
	t.Parallel()
	a := startServer(t, serverSetup{})
	a.putUser(t, "alice", aliceEmail, alicePassword)
	s1 := a.loginOK(t, "login 1", map[string]any{"email": aliceEmail, "password": alicePassword})
	s2 := a.loginOK(t, "login 2", map[string]any{"user_id": "alice", "password": alicePassword})
	s3 := a.create(t, "alice", nil)
	other := a.create(t, "bob", nil)

	r := a.admin(t, http.MethodDelete, "/v1/users/alice", nil)
	if ch := expectRevoked(t, "DELETE user", r, 3); ch.UserID != "alice" {
		t.Errorf("DELETE user answered %s, want user_id alice", r.Body)
	}
	for _, tok := range []tokenResponse{s1, s2, s3} {
		a.expectInvalid(t, "session of the deleted user", tok.AccessToken)
		expectError(t, "refresh of a deleted user's session", a.refresh(t, tok.RefreshToken), http.StatusUnauthorized, "unauthenticated")
		if s := a.getSession(t, tok.SessionID); s.Status != "revoked" || s.RevokeReason != "user_deleted" {
			t.Errorf("session of the deleted user: status %q reason %q, want revoked, user_deleted", s.Status, s.RevokeReason)
		}
	}
	a.expectValid(t, "another user's session", other.AccessToken)
	expectError(t, "GET deleted user", a.admin(t, http.MethodGet, "/v1/users/alice", nil), http.StatusNotFound, "not_found")
	expectError(t, "login as the deleted user", a.login(t, map[string]any{"email": aliceEmail, "password": alicePassword}),
		http.StatusUnauthorized, "unauthenticated")
	expectError(t, "DELETE unknown user", a.admin(t, http.MethodDelete, "/v1/users/nobody", nil), http.StatusNotFound, "not_found")
	// The email is free again.
	a.putUser(t, "carol", aliceEmail, alicePassword)
}

func TestUsers_PasswordChangeRevokesSessionsByDefault(t *testing.T) {
	t.Parallel()
	a := startServer(t, serverSetup{})
	for i, reason := range []string{"change", "reset"} {
		t.Run(reason, func(t *testing.T) {
			user := "user-" + reason
			email := reason + "@example.com"
			oldPW, newPW := alicePassword+strconv.Itoa(i), "a brand new password "+reason
			a.putUser(t, user, email, oldPW)
			s1 := a.loginOK(t, "login by email", map[string]any{"email": email, "password": oldPW})
			s2 := a.loginOK(t, "login by user id", map[string]any{"user_id": user, "password": oldPW})

			r := a.admin(t, http.MethodPut, "/v1/users/"+user+"/password", map[string]string{"password": newPW, "reason": reason})
			expectRevoked(t, "PUT password", r, 2)
			wantReason := "password_" + reason
			for _, tok := range []tokenResponse{s1, s2} {
				a.expectInvalid(t, "session after the password "+reason, tok.AccessToken)
				if s := a.getSession(t, tok.SessionID); s.Status != "revoked" || s.RevokeReason != wantReason {
					t.Errorf("session: status %q reason %q, want revoked, %s", s.Status, s.RevokeReason, wantReason)
				}
			}
			expectError(t, "login with the old password", a.login(t, map[string]any{"email": email, "password": oldPW}),
				http.StatusUnauthorized, "unauthenticated")
			s3 := a.loginOK(t, "login with the new password", map[string]any{"email": email, "password": newPW})
			a.expectValid(t, "session with the new password", s3.AccessToken)
		})
	}
}

func TestUsers_PasswordChangeKeepsSessionsWhenPolicyOff(t *testing.T) {
	t.Parallel()
	a := startServer(t, serverSetup{})
	a.putPolicy(t, map[string]any{"force_logout_on_password_change": false})
	a.putUser(t, "alice", aliceEmail, alicePassword)
	s1 := a.loginOK(t, "login", map[string]any{"email": aliceEmail, "password": alicePassword})
	for _, reason := range []string{"change", "reset"} {
		newPW := "new password for " + reason
		r := a.admin(t, http.MethodPut, "/v1/users/alice/password", map[string]string{"password": newPW, "reason": reason})
		expectRevoked(t, "PUT password "+reason, r, 0)
		a.expectValid(t, "session after the password "+reason, s1.AccessToken)
		a.loginOK(t, "login with the new password", map[string]any{"user_id": "alice", "password": newPW})
	}
	expectError(t, "login with the first password", a.login(t, map[string]any{"email": aliceEmail, "password": alicePassword}),
		http.StatusUnauthorized, "unauthenticated")
	// PUT /v1/users/{id} replacing the password is a change too: the policy
	// is off, so nothing is revoked.
	r := a.admin(t, http.MethodPut, "/v1/users/alice", map[string]string{"password": alicePassword})
	expectRevoked(t, "PUT user with a new password, the policy off", r, 0)
	a.expectValid(t, "session after PUT user", s1.AccessToken)
}

func TestUsers_PutUserReplacingPasswordRevokesSessions(t *testing.T) {
	t.Parallel()
	a := startServer(t, serverSetup{})
	a.putUser(t, "alice", aliceEmail, alicePassword)
	s1 := a.loginOK(t, "login", map[string]any{"email": aliceEmail, "password": alicePassword})
	r := a.admin(t, http.MethodPut, "/v1/users/alice", map[string]string{"password": "another good password"})
	expectRevoked(t, "PUT user with a new password", r, 1)
	a.expectInvalid(t, "session after the password was replaced", s1.AccessToken)
}

func TestUsers_PasswordRouteRefusesUnknownUsersAndBadInput(t *testing.T) {
	t.Parallel()
	a := startServer(t, serverSetup{})
	body := map[string]string{"password": alicePassword, "reason": "reset"}
	expectError(t, "unknown user", a.admin(t, http.MethodPut, "/v1/users/ghost/password", body), http.StatusNotFound, "not_found")
	// A user the cluster knows only by its sessions or its limit has no
	// credentials to change.
	a.create(t, "sessions-only", nil)
	expectError(t, "user with sessions only", a.admin(t, http.MethodPut, "/v1/users/sessions-only/password", body), http.StatusNotFound, "not_found")
	expectStatus(t, "limit", a.admin(t, http.MethodPut, "/v1/users/limited/limits", map[string]any{"max_sessions": 3}), http.StatusOK)
	expectError(t, "user with a limit only", a.admin(t, http.MethodPut, "/v1/users/limited/password", body), http.StatusNotFound, "not_found")
	r := a.admin(t, http.MethodGet, "/v1/users/limited", nil)
	expectStatus(t, "GET user with a limit only", r, http.StatusOK)
	if u := decode[userRecord](t, r); u.HasPassword || u.MaxSessions == nil || *u.MaxSessions != 3 {
		t.Errorf("GET user with a limit only: %s", r.Body)
	}

	a.putUser(t, "alice", aliceEmail, alicePassword)
	for name, b := range map[string]map[string]string{
		"short password": {"password": "short", "reason": "change"},
		"no password":    {"reason": "change"},
		"bad reason":     {"password": alicePassword, "reason": "forgot"},
	} {
		expectError(t, name, a.admin(t, http.MethodPut, "/v1/users/alice/password", b), http.StatusBadRequest, "bad_request")
	}
	a.loginOK(t, "login after refused changes", map[string]any{"email": aliceEmail, "password": alicePassword})
}

// --- Login -------------------------------------------------------------

func TestLogin_ByEmailOrUserIDAnswersEveryTokenField(t *testing.T) {
	t.Parallel()
	a := startServer(t, serverSetup{})
	a.putUser(t, "alice", aliceEmail, alicePassword)

	before := time.Now()
	r := a.login(t, map[string]any{"email": "aLiCe@EXAMPLE.com", "password": alicePassword}, "User-Agent", "TestBrowser/1.0")
	expectStatus(t, "login by email in another case", r, http.StatusCreated)
	var raw map[string]any
	if err := json.Unmarshal(r.Body, &raw); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"session_id", "user_id", "access_token", "refresh_token", "token_type",
		"expires_in", "access_expires_at", "refresh_expires_at", "expires_at", "index"} {
		if _, ok := raw[f]; !ok {
			t.Errorf("login answer lacks %q: %s", f, r.Body)
		}
	}
	tok := decode[tokenResponse](t, r)
	checkTokenShape(t, "access_token", tok.AccessToken, "sa_")
	checkTokenShape(t, "refresh_token", tok.RefreshToken, "sr_")
	if tok.UserID != "alice" || tok.TokenType != "Bearer" || tok.ExpiresIn < 890 || tok.ExpiresIn > 900 || tok.Index == 0 ||
		headerIndex(t, r) != tok.Index {
		t.Errorf("login answer %s", r.Body)
	}
	if !near(tok.AccessExpiresAt, before.Add(defaultTTL), 10*time.Second) || !near(tok.RefreshExpiresAt, before.Add(refreshTTL), 10*time.Second) ||
		!near(tok.ExpiresAt, before.Add(absoluteTTL), 10*time.Second) {
		t.Errorf("login expiries %v %v %v", tok.AccessExpiresAt, tok.RefreshExpiresAt, tok.ExpiresAt)
	}
	s := a.expectValid(t, "session from the login", tok.AccessToken)
	if s.UserID != "alice" || s.AuthMethod != "password" || s.App != "default" || s.RememberMe {
		t.Errorf("session %+v", s)
	}
	// The device is filled from the request when the login leaves it out.
	if s.Device.UserAgent != "TestBrowser/1.0" || s.Device.IP != "127.0.0.1" {
		t.Errorf("device %+v, want the request's user agent and the peer's IP", s.Device)
	}

	// By user id, with a device, an app and remember-me.
	tok2 := a.loginOK(t, "login by user id", map[string]any{
		"user_id": "alice", "password": alicePassword, "app": "web", "remember_me": true,
		"device": map[string]string{"user_agent": "Given/2", "ip": "203.0.113.9", "label": "laptop"},
	})
	s2 := a.expectValid(t, "session from the user-id login", tok2.AccessToken)
	if s2.App != "web" || !s2.RememberMe || s2.AuthMethod != "password" ||
		s2.Device != (deviceInfo{UserAgent: "Given/2", IP: "203.0.113.9", Label: "laptop"}) {
		t.Errorf("session %+v", s2)
	}
	// Only the label given: the rest comes from the request.
	tok3 := a.loginOK(t, "login with a label only", map[string]any{
		"user_id": "alice", "password": alicePassword, "device": map[string]string{"label": "phone"},
	})
	if s3 := a.expectValid(t, "labelled session", tok3.AccessToken); s3.Device.Label != "phone" || s3.Device.IP != "127.0.0.1" ||
		!strings.HasPrefix(s3.Device.UserAgent, "Go-http-client") {
		t.Errorf("device %+v, want the label and the request's user agent and IP", s3.Device)
	}
}

func TestLogin_EveryFailureIsTheSame401(t *testing.T) {
	t.Parallel()
	a := startServer(t, serverSetup{})
	a.putUser(t, "alice", aliceEmail, alicePassword)
	a.create(t, "no-creds", nil)
	var first response
	for i, c := range []struct {
		name string
		body map[string]any
	}{
		{"wrong password by email", map[string]any{"email": aliceEmail, "password": "wrong password"}},
		{"wrong password by user id", map[string]any{"user_id": "alice", "password": "wrong password"}},
		{"unknown email", map[string]any{"email": "nobody@example.com", "password": alicePassword}},
		{"unknown user id", map[string]any{"user_id": "nobody", "password": alicePassword}},
		{"user without credentials", map[string]any{"user_id": "no-creds", "password": alicePassword}},
		{"another user's password", map[string]any{"user_id": "no-creds", "password": "wrong password"}},
	} {
		r := a.login(t, c.body)
		expectError(t, c.name, r, http.StatusUnauthorized, "unauthenticated")
		if !strings.HasPrefix(r.Header.Get("WWW-Authenticate"), "Bearer") {
			t.Errorf("%s: WWW-Authenticate %q", c.name, r.Header.Get("WWW-Authenticate"))
		}
		if i == 0 {
			first = r
			continue
		}
		if !bytes.Equal(r.Body, first.Body) {
			t.Errorf("%s answered %s, %s answered %s: want one identical body", c.name, r.Body, "the first failure", first.Body)
		}
	}
	a.loginOK(t, "right password after the failures", map[string]any{"email": aliceEmail, "password": alicePassword})
}

func TestLogin_NeedsExactlyOneIdentifier(t *testing.T) {
	t.Parallel()
	a := startServer(t, serverSetup{})
	a.putUser(t, "alice", aliceEmail, alicePassword)
	for _, c := range []struct {
		name     string
		body     map[string]any
		mentions []string
	}{
		{"both email and user_id", map[string]any{"email": aliceEmail, "user_id": "alice", "password": alicePassword}, []string{"email", "user_id"}},
		{"neither", map[string]any{"password": alicePassword}, []string{"email", "user_id"}},
		{"empty strings", map[string]any{"email": "", "user_id": "", "password": alicePassword}, []string{"email", "user_id"}},
		{"no password", map[string]any{"email": aliceEmail}, []string{"password"}},
		{"malformed email", map[string]any{"email": "alice", "password": alicePassword}, []string{"email"}},
		{"malformed user id", map[string]any{"user_id": "al ice", "password": alicePassword}, []string{"user_id"}},
		{"bad app", map[string]any{"user_id": "alice", "password": alicePassword, "app": "w b"}, []string{"app"}},
		{"unknown field", map[string]any{"user_id": "alice", "password": alicePassword, "otp": "123"}, []string{"otp"}},
	} {
		expectError(t, c.name, a.login(t, c.body), http.StatusBadRequest, "bad_request", c.mentions...)
	}
	expectError(t, "form body", a.do(t, http.MethodPost, "/v1/login", testkit.Raw("user_id=alice&password=x"),
		"Content-Type", "application/x-www-form-urlencoded"), http.StatusUnsupportedMediaType, "unsupported_media_type")
	// None of the refused requests counted as a failed login.
	a.loginOK(t, "login after the refused requests", map[string]any{"user_id": "alice", "password": alicePassword})
}

// --- Lockout -------------------------------------------------------------

var smallLockout = map[string]any{"lockout": map[string]any{"max_failures": 3, "window": "15m", "duration": "15m"}}

// retryAfter is the Retry-After header in whole seconds.
func retryAfter(t testing.TB, r response) int {
	t.Helper()
	v := r.Header.Get("Retry-After")
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		t.Fatalf("Retry-After %q, want a positive integer of seconds (%s)", v, r)
	}
	return n
}

// expectLocked checks a 423 account_locked answer whose Retry-After is
// within [lo, hi] seconds, and returns its body.
func expectLocked(t testing.TB, what string, r response, lo, hi int) []byte {
	t.Helper()
	expectError(t, what, r, http.StatusLocked, "account_locked")
	if n := retryAfter(t, r); n < lo || n > hi {
		t.Errorf("%s: Retry-After %d, want %d–%d", what, n, lo, hi)
	}
	return r.Body
}

// startLockout starts a node on clock (nil: the wall clock) with
// smallLockout and the user alice.
func startLockout(t *testing.T, clock *testkit.Clock) *testAPI {
	t.Helper()
	a := startServer(t, serverSetup{Clock: clock})
	a.putPolicy(t, smallLockout)
	a.putUser(t, "alice", aliceEmail, alicePassword)
	return a
}

func (a *testAPI) failLogins(t testing.TB, n int, body map[string]any) {
	t.Helper()
	for i := range n {
		expectError(t, "failed login "+strconv.Itoa(i+1), a.login(t, body), http.StatusUnauthorized, "unauthenticated")
	}
}

func TestLockout_LocksAfterMaxFailuresEvenWithTheRightPassword(t *testing.T) {
	t.Parallel()
	clock := newClock()
	a := startLockout(t, clock)

	// A success resets the count.
	a.failLogins(t, 2, map[string]any{"email": aliceEmail, "password": "wrong password"})
	a.loginOK(t, "login after 2 failures", map[string]any{"email": aliceEmail, "password": alicePassword})
	a.failLogins(t, 2, map[string]any{"email": aliceEmail, "password": "wrong password"})
	a.loginOK(t, "login after 2 more failures", map[string]any{"email": aliceEmail, "password": alicePassword})

	a.failLogins(t, 3, map[string]any{"email": aliceEmail, "password": "wrong password"})
	body := expectLocked(t, "right password once locked", a.login(t, map[string]any{"email": aliceEmail, "password": alicePassword}), 870, 900)
	expectLocked(t, "wrong password once locked", a.login(t, map[string]any{"email": aliceEmail, "password": "wrong password"}), 870, 900)
	// Failures by email lock logins by user id of the same user.
	expectLocked(t, "login by user id", a.login(t, map[string]any{"user_id": "alice", "password": alicePassword}), 870, 900)
	expectLocked(t, "login by email in another case", a.login(t, map[string]any{"email": "ALICE@example.com", "password": alicePassword}), 870, 900)
	if bytes.Contains(body, []byte("alice")) {
		t.Errorf("423 body names the user: %s", body)
	}
	r := a.admin(t, http.MethodGet, "/v1/users/alice", nil)
	if u := decode[userRecord](t, r); u.LockedUntil == nil || !near(*u.LockedUntil, clock.Now().Add(15*time.Minute), 2*time.Second) {
		t.Errorf("GET user while locked: %s, want locked_until about now+15m", r.Body)
	}
	// Other users are not affected.
	a.putUser(t, "bob", "bob@example.com", "bobs password!")
	a.loginOK(t, "another user", map[string]any{"email": "bob@example.com", "password": "bobs password!"})
}

func TestLockout_FailuresByUserIDLockLoginsByEmail(t *testing.T) {
	t.Parallel()
	a := startLockout(t, nil)
	a.failLogins(t, 3, map[string]any{"user_id": "alice", "password": "wrong password"})
	expectLocked(t, "login by email", a.login(t, map[string]any{"email": aliceEmail, "password": alicePassword}), 870, 900)
	expectLocked(t, "login by user id", a.login(t, map[string]any{"user_id": "alice", "password": alicePassword}), 870, 900)
}

func TestLockout_UnknownIdentifiersLockToo(t *testing.T) {
	t.Parallel()
	a := startLockout(t, nil)
	a.failLogins(t, 3, map[string]any{"email": aliceEmail, "password": "wrong password"})
	known := expectLocked(t, "known email", a.login(t, map[string]any{"email": aliceEmail, "password": "wrong password"}), 870, 900)
	for _, body := range []map[string]any{
		{"email": "ghost@example.com", "password": "wrong password"},
		{"user_id": "ghost", "password": "wrong password"},
	} {
		a.failLogins(t, 3, body)
		unknown := expectLocked(t, "unknown identifier", a.login(t, body), 870, 900)
		if !bytes.Equal(unknown, known) {
			t.Errorf("423 for an unknown identifier %s, for a known one %s: want identical", unknown, known)
		}
	}
	// A user created for a locked user id is locked too.
	a.putUser(t, "ghost", "", alicePassword)
	expectLocked(t, "new user under a locked id", a.login(t, map[string]any{"user_id": "ghost", "password": alicePassword}), 870, 900)
}

func TestLockout_UnlockLetsTheRightPasswordIn(t *testing.T) {
	t.Parallel()
	a := startLockout(t, nil)
	a.failLogins(t, 2, map[string]any{"email": aliceEmail, "password": "wrong password"})
	a.failLogins(t, 1, map[string]any{"user_id": "alice", "password": "wrong password"})
	expectLocked(t, "locked", a.login(t, map[string]any{"email": aliceEmail, "password": alicePassword}), 870, 900)

	r := a.admin(t, http.MethodPost, "/v1/users/alice/unlock", nil)
	expectStatus(t, "unlock", r, http.StatusOK)
	if u := decode[userRecord](t, a.admin(t, http.MethodGet, "/v1/users/alice", nil)); u.LockedUntil != nil {
		t.Errorf("locked_until %v after unlock", u.LockedUntil)
	}
	a.loginOK(t, "login by email after unlock", map[string]any{"email": aliceEmail, "password": alicePassword})
	a.loginOK(t, "login by user id after unlock", map[string]any{"user_id": "alice", "password": alicePassword})
	expectError(t, "unlock unknown user", a.admin(t, http.MethodPost, "/v1/users/nobody/unlock", nil), http.StatusNotFound, "not_found")
	expectError(t, "unlock without key", a.do(t, http.MethodPost, "/v1/users/alice/unlock", nil), http.StatusUnauthorized, "unauthenticated")
}

func TestLockout_EndsByItselfOnTheNodeClock(t *testing.T) {
	t.Parallel()
	clock := newClock()
	a := startLockout(t, clock)
	a.failLogins(t, 3, map[string]any{"email": aliceEmail, "password": "wrong password"})
	expectLocked(t, "locked", a.login(t, map[string]any{"email": aliceEmail, "password": alicePassword}), 1, 900)
	clock.Advance(14 * time.Minute)
	expectLocked(t, "a minute before the end", a.login(t, map[string]any{"email": aliceEmail, "password": alicePassword}), 1, 900)
	clock.Advance(time.Minute + time.Second)
	a.loginOK(t, "login once the lock has passed", map[string]any{"email": aliceEmail, "password": alicePassword})
	a.loginOK(t, "login by user id once the lock has passed", map[string]any{"user_id": "alice", "password": alicePassword})

	// Failures spread wider than the window never lock.
	for range 3 {
		a.failLogins(t, 1, map[string]any{"email": aliceEmail, "password": "wrong password"})
		clock.Advance(8 * time.Minute)
	}
	a.loginOK(t, "failures spread over more than the window", map[string]any{"email": aliceEmail, "password": alicePassword})
}

// A login refused for the session limit is no success: the failures
// counted before it still count.
func TestLockout_LoginRefusedByTheSessionLimitKeepsTheFailureCount(t *testing.T) {
	t.Parallel()
	a := startLockout(t, nil)
	expectStatus(t, "limit", a.admin(t, http.MethodPut, "/v1/users/alice/limits", map[string]any{"max_sessions": 1}), http.StatusOK)
	a.loginOK(t, "first login", map[string]any{"email": aliceEmail, "password": alicePassword})
	a.failLogins(t, 2, map[string]any{"email": aliceEmail, "password": "wrong password"})
	r := a.login(t, map[string]any{"email": aliceEmail, "password": alicePassword})
	expectStatus(t, "right password over the session limit", r, http.StatusConflict)
	a.failLogins(t, 1, map[string]any{"email": aliceEmail, "password": "wrong password"})
	expectLocked(t, "after the third failure", a.login(t, map[string]any{"email": aliceEmail, "password": alicePassword}), 870, 900)
}

// Turning the lockout off (max_failures 0) releases every lock.
func TestLockout_TurningItOffReleasesLocks(t *testing.T) {
	t.Parallel()
	a := startLockout(t, nil)
	a.failLogins(t, 3, map[string]any{"email": aliceEmail, "password": "wrong password"})
	expectLocked(t, "locked", a.login(t, map[string]any{"email": aliceEmail, "password": alicePassword}), 870, 900)
	a.putPolicy(t, map[string]any{"lockout": map[string]any{"max_failures": 0}})
	a.loginOK(t, "login with the lockout off", map[string]any{"email": aliceEmail, "password": alicePassword})
	a.failLogins(t, 10, map[string]any{"email": aliceEmail, "password": "wrong password"})
	a.loginOK(t, "login after 10 failures with the lockout off", map[string]any{"user_id": "alice", "password": alicePassword})
}

// Retry-After is the lock's remaining time on the node's clock, the "now"
// every other answer is judged at.
func TestLockout_RetryAfterIsTheRemainingLockOnTheNodeClock(t *testing.T) {
	t.Parallel()
	clock := newClock()
	a := startLockout(t, clock)
	a.failLogins(t, 3, map[string]any{"email": aliceEmail, "password": "wrong password"})
	clock.Advance(10 * time.Minute)
	expectLocked(t, "five minutes left", a.login(t, map[string]any{"email": aliceEmail, "password": alicePassword}), 295, 300)
}

// A deleted user is unknown: GET answers 404, and so does a second DELETE
// (docs/api.md#errors: 404 for admin lookups of an unknown user), whether or
// not the tombstones of its revoked sessions are still kept.
func TestUsers_DeleteOfADeletedUserIs404(t *testing.T) {
	t.Parallel()
	a := startServer(t, serverSetup{})
	a.putUser(t, "alice", aliceEmail, alicePassword)
	a.loginOK(t, "login", map[string]any{"email": aliceEmail, "password": alicePassword})
	expectStatus(t, "DELETE user", a.admin(t, http.MethodDelete, "/v1/users/alice", nil), http.StatusOK)
	expectError(t, "GET deleted user", a.admin(t, http.MethodGet, "/v1/users/alice", nil), http.StatusNotFound, "not_found")
	expectError(t, "DELETE again", a.admin(t, http.MethodDelete, "/v1/users/alice", nil), http.StatusNotFound, "not_found")
}
