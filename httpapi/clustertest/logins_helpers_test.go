package clustertest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sessiond/sessiond/node"
	"github.com/sessiond/sessiond/node/password"
	"github.com/sessiond/sessiond/transport/testkit"
)

// Helpers for the login, lockout, limit and idle-timeout cluster tests.

// cheapPasswords are argon2id parameters at the library's minimums (8 KiB
// per lane is the floor; 64 KiB leaves room): production parameters take
// seconds per hash under the race detector.
var cheapPasswords = password.Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}

// startLogins starts a three-node cluster whose nodes hash passwords
// cheaply and, when clock is set, read the shared fake clock.
func startLogins(t *testing.T, clock *testkit.Clock) *Cluster {
	t.Helper()
	return Start(t, Options{Size: 3, Tweak: func(i int, cfg *node.Config) {
		cfg.Passwords = password.NewHasher(cheapPasswords, 0)
		if clock != nil {
			cfg.Clock = clock.Now
		}
	}})
}

// reply is an HTTP answer read in full.
type reply struct{ testkit.Answer }

// index is the answer's X-Sessiond-Index (0 when absent).
func (r reply) index() uint64 {
	n, _ := strconv.ParseUint(r.Header.Get("X-Sessiond-Index"), 10, 64)
	return n
}

// errorCode is the error object's code ("" when the body has none).
func (r reply) errorCode() string {
	var e struct {
		Error struct {
			Code string `json:"code"`
		} `json:"error"`
	}
	_ = json.Unmarshal(r.Body, &e)
	return e.Error.Code
}

func (r reply) decode(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(r.Body, v); err != nil {
		t.Fatalf("decode %q: %v", r.Body, err)
	}
}

// send makes one request to m. admin adds the API key; body is a JSON
// string, a value to encode, or nil; header is name/value pairs.
func send(m *Member, admin bool, method, path string, body any, header ...string) (reply, error) {
	if raw, ok := body.(string); ok {
		body = testkit.Raw(raw)
		header = append([]string{"Content-Type", "application/json"}, header...)
	}
	if admin {
		header = append([]string{"X-API-Key", APIKey}, header...)
	}
	r, err := testkit.Send(httpClient, method, m.URL+path, body, header...)
	return reply{r}, err
}

// call is send that fails the test on a transport error.
func call(t *testing.T, m *Member, admin bool, method, path string, body any, header ...string) reply {
	t.Helper()
	r, err := send(m, admin, method, path, body, header...)
	if err != nil {
		t.Fatalf("%s %s on %s: %v", method, path, m.ID, err)
	}
	return r
}

// expect fails the test unless r has the status (and, for errors, the code).
func expect(t *testing.T, what string, r reply, status int, code string) {
	t.Helper()
	if r.Status != status || (code != "" && r.errorCode() != code) {
		t.Fatalf("%s: got %s, want %d %s", what, r, status, code)
	}
}

// syncAll waits until every node has applied index (a read with min_index
// on each node).
func syncAll(t *testing.T, c *Cluster, index uint64) {
	t.Helper()
	for _, m := range c.Running() {
		r := call(t, m, true, "GET", fmt.Sprintf("/v1/policy?min_index=%d&wait=10s", index), nil)
		expect(t, m.ID+" catching up to index "+strconv.FormatUint(index, 10), r, http.StatusOK, "")
	}
}

// putPolicy replaces the policy through m and waits until every node has it.
func putPolicy(t *testing.T, c *Cluster, m *Member, policy string) {
	t.Helper()
	r := call(t, m, true, "PUT", "/v1/policy", policy)
	expect(t, "PUT /v1/policy "+policy, r, http.StatusOK, "")
	syncAll(t, c, r.index())
}

// putUser creates or updates a user with built-in credentials through m and
// returns the write's index.
func putUser(t *testing.T, m *Member, id, email, pw string) uint64 {
	t.Helper()
	body := map[string]string{"password": pw}
	if email != "" {
		body["email"] = email
	}
	r := call(t, m, true, "PUT", "/v1/users/"+id, body)
	expect(t, "PUT /v1/users/"+id+" on "+m.ID, r, http.StatusOK, "")
	return r.index()
}

// loginBody is a login request by user id or (when it holds "@") email.
func loginBody(who, pw string) map[string]string {
	if strings.Contains(who, "@") {
		return map[string]string{"email": who, "password": pw}
	}
	return map[string]string{"user_id": who, "password": pw}
}

// login is POST /v1/login without an API key (a public endpoint).
func login(t *testing.T, m *Member, who, pw string) reply {
	t.Helper()
	return call(t, m, false, "POST", "/v1/login", loginBody(who, pw))
}

// issued is the part of a token answer these tests use.
type issued struct {
	SessionID    string `json:"session_id"`
	UserID       string `json:"user_id"`
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
	Index        uint64 `json:"index"`
}

// mustLogin logs in through m and returns the tokens.
func mustLogin(t *testing.T, m *Member, who, pw string) issued {
	t.Helper()
	r := login(t, m, who, pw)
	expect(t, "login of "+who+" on "+m.ID, r, http.StatusCreated, "")
	var tok issued
	r.decode(t, &tok)
	if tok.AccessToken == "" || tok.SessionID == "" || tok.Index == 0 {
		t.Fatalf("login of %s on %s: incomplete answer %s", who, m.ID, r)
	}
	return tok
}

// checkToken is GET /v1/session with the access token (no API key), read
// at min_index when it is not 0.
func checkToken(t *testing.T, m *Member, access string, minIndex uint64) reply {
	t.Helper()
	path := "/v1/session"
	if minIndex != 0 {
		path += fmt.Sprintf("?min_index=%d&wait=10s", minIndex)
	}
	return call(t, m, false, "GET", path, nil, "Authorization", "Bearer "+access)
}

// sessionView is the part of a session answer these tests use.
type sessionView struct {
	SessionID    string    `json:"session_id"`
	UserID       string    `json:"user_id"`
	Status       string    `json:"status"`
	LastSeenAt   time.Time `json:"last_seen_at"`
	RevokeReason string    `json:"revoke_reason"`
}

// activeSessions lists a user's active sessions on m at min_index.
func activeSessions(t *testing.T, m *Member, user string, minIndex uint64) []sessionView {
	t.Helper()
	r := call(t, m, true, "GET", fmt.Sprintf("/v1/users/%s/sessions?min_index=%d&wait=10s", user, minIndex), nil)
	expect(t, "GET /v1/users/"+user+"/sessions on "+m.ID, r, http.StatusOK, "")
	var out struct {
		Sessions []sessionView `json:"sessions"`
	}
	r.decode(t, &out)
	return out.Sessions
}
