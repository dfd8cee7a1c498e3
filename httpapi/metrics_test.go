package httpapi_test

// GET /metrics and request ids, end to end: a real node and API on
// 127.0.0.1, traffic over HTTP, and the scrape parsed as Prometheus text.

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/sessiond/sessiond/httpapi"
	"github.com/sessiond/sessiond/node"
	"github.com/sessiond/sessiond/transport/testkit"
)

const metricsTestKey = "metrics-test-admin-key-0123456789"

// metricsAPI is one node (gossip on, cheap password hashing) with its API.
type metricsAPI struct {
	*testAPI
	log *testkit.SyncBuffer // the API's log, at debug level
}

func startMetricsAPI(t *testing.T, tweakAPI ...func(*httpapi.Config)) *metricsAPI {
	t.Helper()
	apiLog := &testkit.SyncBuffer{}
	toTest := testkit.NewLogWriter(t)
	a := startServer(t, serverSetup{
		Node: func(cfg *node.Config) {
			cfg.NodeID = "m1"
			cfg.GossipAddr = "127.0.0.1:0"
			cfg.Logger = slog.New(slog.NewTextHandler(toTest, &slog.HandlerOptions{Level: slog.LevelWarn}))
		},
		API: func(cfg *httpapi.Config) {
			cfg.APIKeys = []string{metricsTestKey}
			cfg.Logger = slog.New(slog.NewTextHandler(io.MultiWriter(apiLog, toTest), &slog.HandlerOptions{Level: slog.LevelDebug}))
			for _, tw := range tweakAPI {
				tw(cfg)
			}
		},
	})
	return &metricsAPI{testAPI: a, log: apiLog}
}

// call sends a request (body as JSON unless nil) without checking the
// consistency headers; hdrs are name, value pairs. It returns the status,
// headers and body.
func (a *metricsAPI) call(t testing.TB, method, path string, body any, hdrs ...string) (int, http.Header, []byte) {
	t.Helper()
	r, err := a.send(method, path, body, hdrs...)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	return r.Status, r.Header, r.Body
}

func (a *metricsAPI) expect(t testing.TB, want int, method, path string, body any, hdrs ...string) []byte {
	t.Helper()
	st, _, data := a.call(t, method, path, body, hdrs...)
	if st != want {
		t.Fatalf("%s %s: %d %s, want %d", method, path, st, data, want)
	}
	return data
}

type metricsTokens struct {
	SessionID    string `json:"session_id"`
	UserID       string `json:"user_id"`
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
}

func (a *metricsAPI) createSession(t testing.TB, user string) metricsTokens {
	t.Helper()
	var tok metricsTokens
	data := a.expect(t, http.StatusCreated, http.MethodPost, "/v1/sessions", map[string]any{"user_id": user}, "X-API-Key", metricsTestKey)
	if err := json.Unmarshal(data, &tok); err != nil {
		t.Fatal(err)
	}
	return tok
}

// scrape is GET /metrics without credentials, parsed; it also returns the
// text as served.
func (a *metricsAPI) scrape(t testing.TB) (testkit.Metrics, string) {
	t.Helper()
	st, hdr, data := a.call(t, http.MethodGet, "/metrics", nil)
	if st != http.StatusOK {
		t.Fatalf("GET /metrics: %d %s", st, data)
	}
	if ct := hdr.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Errorf("GET /metrics Content-Type %q, want the text format", ct)
	}
	return testkit.ParseMetrics(t, data), string(data)
}

// expectDelta checks that a sample moved by exactly want between scrapes.
func expectDelta(t testing.TB, before, after testkit.Metrics, want float64, name string, labels ...string) {
	t.Helper()
	if _, ok := after.Get(name, labels...); !ok {
		t.Errorf("no sample %s%v after the traffic", name, labels)
		return
	}
	if got := after.Value(name, labels...) - before.Value(name, labels...); got != want {
		t.Errorf("%s%v moved by %v, want %v", name, labels, got, want)
	}
}

// The families of docs/operations.md, with their types.
var metricsFamilies = map[string]dto.MetricType{
	"sessiond_http_requests_total":           dto.MetricType_COUNTER,
	"sessiond_http_request_duration_seconds": dto.MetricType_HISTOGRAM,
	"sessiond_raft_state":                    dto.MetricType_GAUGE,
	"sessiond_raft_term":                     dto.MetricType_GAUGE,
	"sessiond_raft_commit_index":             dto.MetricType_GAUGE,
	"sessiond_raft_applied_index":            dto.MetricType_GAUGE,
	"sessiond_raft_apply_lag":                dto.MetricType_GAUGE,
	"sessiond_raft_last_contact_seconds":     dto.MetricType_GAUGE,
	"sessiond_state_age_seconds":             dto.MetricType_GAUGE,
	"sessiond_raft_leader":                   dto.MetricType_GAUGE,
	"sessiond_sessions_stored":               dto.MetricType_GAUGE,
	"sessiond_sessions_active":               dto.MetricType_GAUGE,
	"sessiond_sessions_revoked":              dto.MetricType_GAUGE,
	"sessiond_users":                         dto.MetricType_GAUGE,
	"sessiond_accounts":                      dto.MetricType_GAUGE,
	"sessiond_lockouts":                      dto.MetricType_GAUGE,
	"sessiond_events_applied_total":          dto.MetricType_COUNTER,
	"sessiond_forwarded_writes_total":        dto.MetricType_COUNTER,
	"sessiond_forward_duration_seconds":      dto.MetricType_HISTOGRAM,
	"sessiond_gossip_members":                dto.MetricType_GAUGE,
	"sessiond_snapshot_persist_seconds":      dto.MetricType_HISTOGRAM,
	"sessiond_snapshot_restore_seconds":      dto.MetricType_HISTOGRAM,
	"sessiond_logins_total":                  dto.MetricType_COUNTER,
	"sessiond_touch_flushes_total":           dto.MetricType_COUNTER,
	"sessiond_touched_sessions_total":        dto.MetricType_COUNTER,
	"go_goroutines":                          dto.MetricType_GAUGE,
	"process_cpu_seconds_total":              dto.MetricType_COUNTER,
}

func TestMetrics_FamiliesPresentAndCountsMove(t *testing.T) {
	a := startMetricsAPI(t)
	admin := []string{"X-API-Key", metricsTestKey}
	before, _ := a.scrape(t)

	// Three sessions for two users, three validations and a failed one, a
	// refresh, a logout, a user with a password, a login and a failed
	// login, a lookup by id, an unknown route, an odd method.
	alice1 := a.createSession(t, "alice")
	alice2 := a.createSession(t, "alice")
	bob := a.createSession(t, "bob")
	for _, tok := range []metricsTokens{alice1, alice2, bob} {
		a.expect(t, http.StatusOK, http.MethodGet, "/v1/session", nil, "Authorization", "Bearer "+tok.AccessToken)
	}
	a.expect(t, http.StatusUnauthorized, http.MethodGet, "/v1/session", nil, "Authorization", "Bearer sa_not-a-real-token")
	a.expect(t, http.StatusOK, http.MethodPost, "/v1/refresh", map[string]string{"refresh_token": bob.RefreshToken})
	a.expect(t, http.StatusNoContent, http.MethodDelete, "/v1/session", nil, "Authorization", "Bearer "+alice2.AccessToken)
	a.expect(t, http.StatusOK, http.MethodPut, "/v1/users/carol", map[string]string{"email": "carol@example.com", "password": "correct horse battery"}, admin...)
	a.expect(t, http.StatusCreated, http.MethodPost, "/v1/login", map[string]string{"email": "carol@example.com", "password": "correct horse battery"})
	a.expect(t, http.StatusUnauthorized, http.MethodPost, "/v1/login", map[string]string{"email": "carol@example.com", "password": "wrong"})
	a.expect(t, http.StatusOK, http.MethodGet, "/v1/sessions/"+alice1.SessionID, nil, admin...)
	a.expect(t, http.StatusNotFound, http.MethodGet, "/no/such/route/"+alice1.SessionID, nil)
	a.expect(t, http.StatusMethodNotAllowed, "BREW", "/v1/session", nil)
	if err := a.node.Snapshot(); err != nil {
		t.Fatal(err)
	}

	after, text := a.scrape(t)
	for name, typ := range metricsFamilies {
		f := after[name]
		if f == nil {
			t.Errorf("family %s missing from the scrape", name)
			continue
		}
		if f.GetType() != typ {
			t.Errorf("family %s is a %s, want %s", name, f.GetType(), typ)
		}
	}

	// HTTP: by route pattern, method and code.
	expectDelta(t, before, after, 3, "sessiond_http_requests_total", "route", "/v1/sessions", "method", "POST", "code", "201")
	expectDelta(t, before, after, 3, "sessiond_http_requests_total", "route", "/v1/session", "method", "GET", "code", "200")
	expectDelta(t, before, after, 1, "sessiond_http_requests_total", "route", "/v1/session", "method", "GET", "code", "401")
	expectDelta(t, before, after, 1, "sessiond_http_requests_total", "route", "/v1/session", "method", "DELETE", "code", "204")
	expectDelta(t, before, after, 1, "sessiond_http_requests_total", "route", "/v1/refresh", "method", "POST", "code", "200")
	expectDelta(t, before, after, 1, "sessiond_http_requests_total", "route", "/v1/users/:id", "method", "PUT", "code", "200")
	expectDelta(t, before, after, 1, "sessiond_http_requests_total", "route", "/v1/login", "method", "POST", "code", "201")
	expectDelta(t, before, after, 1, "sessiond_http_requests_total", "route", "/v1/login", "method", "POST", "code", "401")
	expectDelta(t, before, after, 1, "sessiond_http_requests_total", "route", "/v1/sessions/:id", "method", "GET", "code", "200")
	expectDelta(t, before, after, 1, "sessiond_http_requests_total", "route", "unmatched", "method", "GET", "code", "404")
	expectDelta(t, before, after, 1, "sessiond_http_requests_total", "route", "/v1/session", "method", "other", "code", "405")
	expectDelta(t, before, after, 1, "sessiond_http_requests_total", "route", "/metrics", "method", "GET", "code", "200")
	expectDelta(t, before, after, 3, "sessiond_http_request_duration_seconds", "route", "/v1/sessions", "method", "POST")
	expectDelta(t, before, after, 4, "sessiond_http_request_duration_seconds", "route", "/v1/session", "method", "GET")
	if strings.Contains(text, "/no/such/route") || strings.Contains(text, "BREW") {
		t.Error("a raw path or method name reached a label")
	}

	// Events, by type and outcome.
	expectDelta(t, before, after, 4, "sessiond_events_applied_total", "type", "SessionCreated", "outcome", "ok")
	expectDelta(t, before, after, 1, "sessiond_events_applied_total", "type", "SessionRefreshed", "outcome", "ok")
	expectDelta(t, before, after, 1, "sessiond_events_applied_total", "type", "SessionRevoked", "outcome", "ok")
	expectDelta(t, before, after, 1, "sessiond_events_applied_total", "type", "UserCredentialsSet", "outcome", "ok")
	expectDelta(t, before, after, 1, "sessiond_events_applied_total", "type", "LoginFailed", "outcome", "ok")

	// Logins.
	expectDelta(t, before, after, 1, "sessiond_logins_total", "outcome", "success")
	expectDelta(t, before, after, 1, "sessiond_logins_total", "outcome", "bad_credentials")
	expectDelta(t, before, after, 0, "sessiond_logins_total", "outcome", "locked")
	expectDelta(t, before, after, 0, "sessiond_logins_total", "outcome", "limit")

	// State: four sessions stored, the logged-out one a tombstone; three
	// users hold sessions, one has credentials; the failed login counts
	// under the email and under the user's id.
	expectDelta(t, before, after, 4, "sessiond_sessions_stored")
	expectDelta(t, before, after, 3, "sessiond_sessions_active")
	expectDelta(t, before, after, 1, "sessiond_sessions_revoked")
	expectDelta(t, before, after, 3, "sessiond_users")
	expectDelta(t, before, after, 1, "sessiond_accounts")
	expectDelta(t, before, after, 2, "sessiond_lockouts")

	// Raft on a lone leader; writes moved the indexes.
	if after.Value("sessiond_raft_state", "state", "leader") != 1 || after.Value("sessiond_raft_leader") != 1 {
		t.Error("the lone node does not report itself leader")
	}
	if v := after.Value("sessiond_raft_last_contact_seconds"); v != 0 {
		t.Errorf("last contact on the leader %v, want 0", v)
	}
	if moved := after.Value("sessiond_raft_applied_index") - before.Value("sessiond_raft_applied_index"); moved < 8 {
		t.Errorf("applied index moved by %v over 8 writes", moved)
	}
	if after.Value("sessiond_raft_commit_index") < after.Value("sessiond_raft_applied_index") {
		t.Error("commit index below applied index")
	}

	// Gossip knows this node; nothing was forwarded; one snapshot written.
	if v := after.Value("sessiond_gossip_members", "state", "alive"); v != 1 {
		t.Errorf("gossip members alive = %v, want 1", v)
	}
	expectDelta(t, before, after, 0, "sessiond_forwarded_writes_total", "outcome", "ok")
	expectDelta(t, before, after, 1, "sessiond_snapshot_persist_seconds")
}

// No token, key, password, user or session id, email or address ever
// appears in the metrics.
func TestMetrics_NoSecretsInScrape(t *testing.T) {
	a := startMetricsAPI(t)
	admin := []string{"X-API-Key", metricsTestKey}
	const user, email, pw = "user-7f3a9c", "secret.person@example.com", "pa55word-never-shown"
	a.expect(t, http.StatusOK, http.MethodPut, "/v1/users/"+user, map[string]string{"email": email, "password": pw}, admin...)
	var login metricsTokens
	data := a.expect(t, http.StatusCreated, http.MethodPost, "/v1/login", map[string]string{"email": email, "password": pw})
	if err := json.Unmarshal(data, &login); err != nil {
		t.Fatal(err)
	}
	created := a.createSession(t, user)
	a.expect(t, http.StatusOK, http.MethodGet, "/v1/session", nil, "Authorization", "Bearer "+created.AccessToken)
	a.expect(t, http.StatusOK, http.MethodGet, "/v1/sessions/"+created.SessionID, nil, admin...)
	a.expect(t, http.StatusOK, http.MethodGet, "/v1/users/"+user+"/sessions", nil, admin...)
	a.expect(t, http.StatusUnauthorized, http.MethodPost, "/v1/login", map[string]string{"user_id": user, "password": "wrong-" + pw})
	a.expect(t, http.StatusOK, http.MethodPost, "/v1/refresh", map[string]string{"refresh_token": login.RefreshToken})
	a.expect(t, http.StatusNotFound, http.MethodGet, "/"+created.AccessToken, nil)
	a.expect(t, http.StatusOK, http.MethodGet, "/metrics?token="+created.AccessToken, nil)

	_, text := a.scrape(t)
	for what, secret := range map[string]string{
		"access token": created.AccessToken, "refresh token": created.RefreshToken,
		"login access token": login.AccessToken, "login refresh token": login.RefreshToken,
		"session id": created.SessionID, "login session id": login.SessionID,
		"user id": user, "email": email, "password": pw, "admin key": metricsTestKey,
		"client address": "127.0.0.1",
	} {
		if strings.Contains(text, secret) {
			t.Errorf("the %s appears in the scrape", what)
		}
	}
	for _, prefix := range []string{node.AccessTokenPrefix, node.RefreshTokenPrefix} {
		if regexp.MustCompile(`\b` + prefix + `[A-Za-z0-9_-]{20,}`).MatchString(text) {
			t.Errorf("something shaped like a token (%s…) appears in the scrape", prefix)
		}
	}
}

var generatedRequestID = regexp.MustCompile(`^[0-9a-f]{32}$`)

func TestRequestID_EchoedOrGenerated(t *testing.T) {
	a := startMetricsAPI(t)
	tok := a.createSession(t, "alice")
	idOf := func(hdrs ...string) string {
		t.Helper()
		_, h, _ := a.call(t, http.MethodGet, "/healthz", nil, hdrs...)
		return h.Get("X-Request-Id")
	}
	for _, id := range []string{"abc", "req-42.retry_1", strings.Repeat("x", 64)} {
		if got := idOf("X-Request-Id", id); got != id {
			t.Errorf("X-Request-Id %q answered as %q, want it echoed", id, got)
		}
	}
	seen := map[string]bool{}
	for _, id := range []string{
		"",                      // none
		strings.Repeat("x", 65), // too long
		"has space", "semi;colon", "slash/y", "ünïcode",
		tok.AccessToken, tok.RefreshToken, // secrets never reach a log line
		metricsTestKey,
	} {
		hdrs := []string{}
		if id != "" {
			hdrs = []string{"X-Request-Id", id}
		}
		got := idOf(hdrs...)
		if !generatedRequestID.MatchString(got) {
			t.Errorf("X-Request-Id %q answered as %q, want a generated id", id, got)
		}
		if seen[got] {
			t.Errorf("generated id %q twice", got)
		}
		seen[got] = true
	}
	// Error answers carry it too.
	st, h, _ := a.call(t, http.MethodGet, "/v1/session", nil, "X-Request-Id", "on-error-1")
	if st != http.StatusUnauthorized || h.Get("X-Request-Id") != "on-error-1" {
		t.Errorf("401 answer: status %d, X-Request-Id %q", st, h.Get("X-Request-Id"))
	}
	st, h, _ = a.call(t, http.MethodGet, "/nowhere", nil, "X-Request-Id", "on-404")
	if st != http.StatusNotFound || h.Get("X-Request-Id") != "on-404" {
		t.Errorf("404 answer: status %d, X-Request-Id %q", st, h.Get("X-Request-Id"))
	}
	logs := a.log.String()
	if strings.Contains(logs, tok.AccessToken) || strings.Contains(logs, tok.RefreshToken) || strings.Contains(logs, metricsTestKey) {
		t.Error("a secret sent as X-Request-Id reached the log")
	}
}

func TestRequestID_InRequestAndErrorLogs(t *testing.T) {
	// Every write times out at once: the 503 it answers has a logged
	// detail.
	a := startMetricsAPI(t, func(c *httpapi.Config) { c.WriteTimeout = time.Nanosecond })
	st, h, body := a.call(t, http.MethodPost, "/v1/sessions", map[string]any{"user_id": "alice"},
		"X-API-Key", metricsTestKey, "X-Request-Id", "write-that-times-out")
	if st != http.StatusServiceUnavailable {
		t.Fatalf("write with a 1ns timeout: %d %s, want 503", st, body)
	}
	if h.Get("X-Request-Id") != "write-that-times-out" {
		t.Errorf("X-Request-Id %q", h.Get("X-Request-Id"))
	}
	a.call(t, http.MethodGet, "/healthz", nil, "X-Request-Id", "plain-request")

	var requestLine, errorLine bool
	for _, line := range strings.Split(a.log.String(), "\n") {
		switch {
		case strings.Contains(line, "msg=request ") && strings.Contains(line, "request_id=plain-request"):
			requestLine = true
		case strings.Contains(line, `msg="request failed"`) && strings.Contains(line, "request_id=write-that-times-out"):
			errorLine = true
		}
	}
	if !requestLine {
		t.Errorf("no request log line with the request id in:\n%s", a.log)
	}
	if !errorLine {
		t.Errorf("no error log line with the request id in:\n%s", a.log)
	}
}
