package main

// The CLI run in-process against a real three-node cluster: every command,
// in tables and in JSON.

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sessiond/sessiond/httpapi/client"
	"github.com/sessiond/sessiond/httpapi/clustertest"
	"github.com/sessiond/sessiond/node"
	"github.com/sessiond/sessiond/node/password"
	"github.com/sessiond/sessiond/transport/testkit"
)

type result struct {
	stdout, stderr string
	code           int
}

// cli runs sessionctl against a cluster.
type cli struct {
	t   *testing.T
	cl  *clustertest.Cluster
	env map[string]string
}

func newCLI(t *testing.T) *cli {
	t.Helper()
	return startCLI(t, clustertest.Options{Size: 3})
}

// startCLI starts a cluster as opts say and points sessionctl at every
// node, in order.
func startCLI(t *testing.T, opts clustertest.Options) *cli {
	t.Helper()
	opts.Tweak = func(i int, cfg *node.Config) {
		// argon2id's minimums: production parameters are slow under -race.
		cfg.Passwords = password.NewHasher(password.Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}, 0)
	}
	cl := clustertest.Start(t, opts)
	var urls []string
	for _, m := range cl.Nodes {
		urls = append(urls, m.URL)
	}
	return &cli{t: t, cl: cl, env: map[string]string{
		"SESSIOND_ADDR":    strings.Join(urls, ","),
		"SESSIOND_API_KEY": clustertest.APIKey,
	}}
}

// with is h reporting to t (a subtest).
func (h *cli) with(t *testing.T) *cli {
	c := *h
	c.t = t
	return &c
}

func (h *cli) exec(ctx context.Context, env map[string]string, stdin string, stdout, stderr *testkit.SyncBuffer, args ...string) int {
	getenv := func(k string) string {
		if v, ok := env[k]; ok {
			return v
		}
		return h.env[k]
	}
	return run(ctx, args, getenv, strings.NewReader(stdin), stdout, stderr)
}

// runWith runs one command line with extra environment and standard input.
func (h *cli) runWith(env map[string]string, stdin string, args ...string) result {
	h.t.Helper()
	var out, errOut testkit.SyncBuffer
	code := h.exec(context.Background(), env, stdin, &out, &errOut, args...)
	h.t.Logf("sessionctl %s → %d\n%s%s", strings.Join(args, " "), code, out.String(), errOut.String())
	return result{out.String(), errOut.String(), code}
}

func (h *cli) run(args ...string) result { return h.runWith(nil, "", args...) }

// ok runs a command that must succeed.
func (h *cli) ok(args ...string) string {
	h.t.Helper()
	r := h.run(args...)
	if r.code != 0 || r.stderr != "" {
		h.t.Fatalf("sessionctl %s: exit %d, stderr %q", strings.Join(args, " "), r.code, r.stderr)
	}
	return r.stdout
}

// okJSON runs a command with -o json and decodes its output into T.
func okJSON[T any](h *cli, args ...string) T {
	h.t.Helper()
	out := h.ok(append([]string{"-o", "json"}, args...)...)
	var v T
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		h.t.Fatalf("sessionctl %s -o json printed no valid JSON (%v):\n%s", strings.Join(args, " "), err, out)
	}
	return v
}

// fails runs a command that must fail with the given exit status and
// "sessionctl: <code>: ..." on standard error.
func (h *cli) fails(code int, errCode string, args ...string) result {
	h.t.Helper()
	r := h.run(args...)
	if r.code != code || !strings.HasPrefix(r.stderr, "sessionctl: "+errCode+": ") || !strings.HasSuffix(r.stderr, "\n") {
		h.t.Fatalf("sessionctl %s: exit %d, stderr %q; want exit %d and code %s", strings.Join(args, " "), r.code, r.stderr, code, errCode)
	}
	return r
}

// waitApplied waits until every node has applied what the leader has.
func (h *cli) waitApplied() {
	h.t.Helper()
	var target uint64
	for _, m := range h.cl.Running() {
		target = max(target, m.Node.AppliedIndex())
	}
	h.cl.WaitFor(10*time.Second, "every node to apply the latest writes", func() bool {
		for _, m := range h.cl.Running() {
			if m.Node.AppliedIndex() < target {
				return false
			}
		}
		return true
	})
}

func TestSessionctl_EveryCommandAgainstAThreeNodeCluster(t *testing.T) {
	h := newCLI(t)
	api, err := client.New(strings.Split(h.env["SESSIOND_ADDR"], ","), client.WithAPIKey(clustertest.APIKey))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	start := h.cl.Nodes[0].Node.AppliedIndex()

	var alice client.Tokens
	t.Run("sessions create, get, list, revoke", func(t *testing.T) {
		h := h.with(t)
		alice = okJSON[client.Tokens](h, "sessions", "create", "--user", "alice@example.com", "--app", "web",
			"--scope", "read", "--scope", "write", "--attr", "role=admin", "--attr", "team=blue", "--remember-me", "--label", "laptop")
		if alice.SessionID == "" || alice.UserID != "alice@example.com" || !strings.HasPrefix(alice.AccessToken, "sa_") ||
			alice.TokenType != "Bearer" || alice.Index == 0 {
			t.Fatalf("created %+v", alice)
		}
		table := h.ok("sessions", "create", "--user", "alice@example.com")
		for _, want := range []string{"SESSION", "ACCESS TOKEN", "sa_", "REFRESH TOKEN", "sr_", "INDEX"} {
			if !strings.Contains(table, want) {
				t.Errorf("create table lacks %q:\n%s", want, table)
			}
		}

		got := okJSON[client.Session](h, "sessions", "get", "--", alice.SessionID)
		if got.Status != client.StatusActive || !got.RememberMe || got.Attributes["role"] != "admin" || got.App != "web" ||
			strings.Join(got.Scopes, ",") != "read,write" || got.Device.Label != "laptop" {
			t.Errorf("get %+v", got)
		}
		table = h.ok("sessions", "get", "--", alice.SessionID)
		for _, want := range []string{alice.SessionID, "active", "role=admin team=blue", "read write", "laptop", "impersonation"} {
			if !strings.Contains(table, want) {
				t.Errorf("get table lacks %q:\n%s", want, table)
			}
		}

		list := okJSON[struct{ Sessions []client.Session }](h, "sessions", "list", "--user", "alice@example.com")
		if len(list.Sessions) != 2 {
			t.Errorf("list %+v", list)
		}
		table = h.ok("sessions", "list", "--user", "alice@example.com")
		if lines := strings.Split(strings.TrimSpace(table), "\n"); len(lines) != 3 || !strings.HasPrefix(lines[0], "SESSION") || !strings.Contains(table, alice.SessionID) {
			t.Errorf("list table:\n%s", table)
		}

		if out := h.ok("sessions", "revoke", "--refresh-only", "--", alice.SessionID); !strings.Contains(out, "refresh token") {
			t.Errorf("revoke --refresh-only printed %q", out)
		}
		if _, err := api.Refresh(ctx, alice.RefreshToken); !client.IsUnauthenticated(err) {
			t.Errorf("refresh after --refresh-only: %v", err)
		}
		if _, err := api.Validate(ctx, alice.AccessToken); err != nil {
			t.Errorf("the access token outlives a refresh-only revocation: %v", err)
		}
		rev := okJSON[map[string]any](h, "sessions", "revoke", "--", alice.SessionID)
		if rev["session_id"] != alice.SessionID || rev["index"].(float64) == 0 {
			t.Errorf("revoke -o json %v", rev)
		}
		if got := okJSON[client.Session](h, "sessions", "get", "--min-index", fmt.Sprint(uint64(rev["index"].(float64))), "--", alice.SessionID); got.Status != client.StatusRevoked || got.RevokedAt == nil {
			t.Errorf("after revoke %+v", got)
		}
		if out := h.ok("sessions", "get", "--", alice.SessionID); !strings.Contains(out, "REVOKED") {
			t.Errorf("revoked session's table:\n%s", out)
		}
		h.fails(exitError, "not_found", "sessions", "get", "no-such-session")
		// Session ids are base64url: one may start with "-", which then
		// needs "--" before it, as the usage error says.
		if r := h.fails(exitUsage, "usage", "sessions", "get", "-Xm7Zmw4q92iDTXQWWw2zA"); !strings.Contains(r.stderr, `"--"`) {
			t.Errorf("no hint about --: %q", r.stderr)
		}
	})

	t.Run("sessions logout-user and revoke-all", func(t *testing.T) {
		h := h.with(t)
		var bob []client.Tokens
		for range 3 {
			bob = append(bob, okJSON[client.Tokens](h, "sessions", "create", "--user", "bob", "--app", "web"))
		}
		r := okJSON[client.Revoked](h, "sessions", "logout-user", "bob", "--reason", "admin", "--except", bob[0].SessionID)
		if r.Revoked != 2 {
			t.Errorf("logout-user revoked %d, want 2", r.Revoked)
		}
		if out := h.ok("sessions", "logout-user", "bob"); out != "revoked 1 session of bob\n" {
			t.Errorf("logout-user printed %q", out)
		}
		h.fails(exitError, "bad_request", "sessions", "logout-user", "bob", "--reason", "bored")

		for _, app := range []string{"mobile", "mobile", "web"} {
			h.ok("sessions", "create", "--user", "carol", "--app", app)
		}
		if r := okJSON[client.Revoked](h, "sessions", "revoke-all", "--before", "2001-01-01T00:00:00Z"); r.Revoked != 0 {
			t.Errorf("revoke-all before 2001 revoked %d", r.Revoked)
		}
		if r := okJSON[client.Revoked](h, "sessions", "revoke-all", "--app", "mobile", "--app", "tv"); r.Revoked != 2 {
			t.Errorf("revoke-all --app mobile revoked %d, want 2", r.Revoked)
		}
		if out := h.ok("sessions", "revoke-all", "--before", "1h"); out != "revoked 0 sessions\n" {
			t.Errorf("revoke-all --before 1h printed %q", out)
		}
		list := okJSON[struct{ Sessions []client.Session }](h, "sessions", "list", "--user", "carol")
		if len(list.Sessions) != 1 || list.Sessions[0].App != "web" {
			t.Errorf("carol keeps %+v", list.Sessions)
		}
		h.fails(exitUsage, "usage", "sessions", "revoke-all", "--before", "yesterday")
	})

	t.Run("users", func(t *testing.T) {
		h := h.with(t)
		if out := h.runWith(nil, "correct horse\n", "users", "set", "dave", "--email", "dave@example.com", "--password-stdin"); out.code != 0 || out.stdout != "user dave set\n" {
			t.Fatalf("users set: %+v", out)
		}
		u := okJSON[client.User](h, "users", "get", "dave")
		if !u.HasPassword || u.Email != "dave@example.com" || u.MaxSessions != nil || u.LockedUntil != nil {
			t.Errorf("users get %+v", u)
		}
		if out := h.ok("users", "get", "dave"); !strings.Contains(out, "dave@example.com") || !strings.Contains(out, "policy default") || strings.Contains(out, "REGION") {
			t.Errorf("users get table:\n%s", out)
		}
		first, err := api.Login(ctx, client.LoginRequest{Email: "dave@example.com", Password: "correct horse"})
		if err != nil {
			t.Fatalf("login with the password set through stdin: %v", err)
		}
		if r := h.run("users", "set", "dave", "--password-stdin"); r.code != exitUsage {
			t.Errorf("empty stdin: %+v", r)
		}
		h.fails(exitUsage, "usage", "users", "set", "dave")

		r := h.runWith(nil, "battery staple\n", "users", "password", "dave", "--reason", "reset", "--password-stdin", "-o", "json")
		var ch client.UserChange
		if r.code != 0 || json.Unmarshal([]byte(r.stdout), &ch) != nil || ch.Revoked != 1 {
			t.Fatalf("users password: %+v", r)
		}
		if _, err := api.Validate(ctx, first.AccessToken); !client.IsUnauthenticated(err) {
			t.Errorf("session after a password reset: %v", err)
		}
		if _, err := api.Login(ctx, client.LoginRequest{UserID: "dave", Password: "correct horse"}); !client.IsUnauthenticated(err) {
			t.Errorf("old password: %v", err)
		}
		if _, err := api.Login(ctx, client.LoginRequest{UserID: "dave", Password: "battery staple"}); err != nil {
			t.Errorf("new password: %v", err)
		}
		h.fails(exitUsage, "usage", "users", "password", "dave", "--reason", "change")
		h.fails(exitUsage, "usage", "users", "password", "dave", "--reason", "forgot", "--password-stdin")

		if l := okJSON[client.UserLimit](h, "users", "limits", "dave", "--max", "2"); l.MaxSessions == nil || *l.MaxSessions != 2 {
			t.Errorf("limits --max 2: %+v", l)
		}
		if u := okJSON[client.User](h, "users", "get", "dave"); u.MaxSessions == nil || *u.MaxSessions != 2 {
			t.Errorf("limit not visible: %+v", u)
		}
		if out := h.ok("users", "limits", "dave", "--clear"); !strings.Contains(out, "follows the policy") {
			t.Errorf("limits --clear printed %q", out)
		}
		if u := okJSON[client.User](h, "users", "get", "dave"); u.MaxSessions != nil {
			t.Errorf("limit not cleared: %+v", u)
		}
		h.fails(exitUsage, "usage", "users", "limits", "dave")
		h.fails(exitUsage, "usage", "users", "limits", "dave", "--max", "1", "--clear")

		// Lock dave out, then unlock.
		h.ok("policy", "set", "--lockout-max-failures", "2")
		for range 2 {
			if _, err := api.Login(ctx, client.LoginRequest{UserID: "dave", Password: "wrong password"}); !client.IsUnauthenticated(err) {
				t.Fatalf("failed login: %v", err)
			}
		}
		if _, err := api.Login(ctx, client.LoginRequest{UserID: "dave", Password: "battery staple"}); !client.IsLocked(err) {
			t.Fatalf("login while locked: %v", err)
		}
		if out := h.ok("users", "get", "dave"); !strings.Contains(out, "until ") {
			t.Errorf("locked user's table:\n%s", out)
		}
		if out := h.ok("users", "unlock", "dave"); out != "user dave unlocked\n" {
			t.Errorf("unlock printed %q", out)
		}
		if _, err := api.Login(ctx, client.LoginRequest{UserID: "dave", Password: "battery staple"}); err != nil {
			t.Errorf("login after unlock: %v", err)
		}
		h.ok("policy", "set", "--lockout-max-failures", "5")

		del := okJSON[client.UserChange](h, "users", "delete", "dave")
		if del.UserID != "dave" || del.Revoked != 2 { // the logins after the reset and after the unlock
			t.Errorf("delete %+v", del)
		}
		r = h.fails(exitError, "not_found", "users", "get", "dave")
		if r.stderr != "sessionctl: not_found: no such user\n" {
			t.Errorf("stderr %q", r.stderr)
		}
	})

	t.Run("policy get and set, seen through another node", func(t *testing.T) {
		h := h.with(t)
		before := okJSON[client.Policy](h, "policy", "get")
		if before.AccessTTL != 15*time.Minute || !before.RefreshTTLFollowsAccess {
			t.Fatalf("policy %+v", before)
		}
		if out := h.ok("policy", "get"); !strings.Contains(out, "access_ttl") || !strings.Contains(out, "15m0s") || !strings.Contains(out, "1.5 × access_ttl") {
			t.Errorf("policy table:\n%s", out)
		}
		node0 := []string{"--addr", h.cl.Nodes[0].URL}
		node2 := []string{"--addr", h.cl.Nodes[2].URL}
		set := okJSON[client.Policy](h, append(node0, "policy", "set", "--access-ttl", "30m", "--max-sessions-per-user", "50",
			"--app-max-sessions", "web=5", "--app-max-sessions", "tv=2", "--on-session-limit", "evict_oldest", "--idle-timeout", "2h")...)
		if set.Index == 0 || set.AccessTTL != 30*time.Minute || set.RefreshTTL != 45*time.Minute || set.MaxSessionsPerUser != 50 {
			t.Fatalf("policy set answered %+v", set)
		}
		seen := okJSON[client.Policy](h, append(node2, "policy", "get", "--min-index", fmt.Sprint(set.Index))...)
		want := set
		want.Index = 0
		if a, b := mustJSON(t, seen), mustJSON(t, want); a != b {
			t.Errorf("through node2\n%s\nwant\n%s", a, b)
		}
		if seen.Lockout != before.Lockout || seen.AbsoluteTTL != before.AbsoluteTTL || seen.ForceLogoutOnPasswordChange != before.ForceLogoutOnPasswordChange {
			t.Errorf("settings not given changed: %+v", seen)
		}
		after := okJSON[client.Policy](h, "policy", "set", "--app-max-sessions", "tv=0", "--refresh-ttl", "3h")
		if _, ok := after.AppMaxSessions["tv"]; ok || after.AppMaxSessions["web"] != 5 || after.RefreshTTL != 3*time.Hour || after.RefreshTTLFollowsAccess {
			t.Errorf("second set %+v", after)
		}
		if p := okJSON[client.Policy](h, "policy", "set", "--refresh-ttl", "follow"); !p.RefreshTTLFollowsAccess || p.RefreshTTL != 45*time.Minute {
			t.Errorf("refresh-ttl follow %+v", p)
		}
		h.fails(exitError, "bad_request", "policy", "set", "--access-ttl", "1s")
		h.fails(exitUsage, "usage", "policy", "set")

		file := filepath.Join(t.TempDir(), "policy.json")
		if err := os.WriteFile(file, []byte(`{"access_ttl": "20m", "lockout": {"max_failures": 3}}`), 0o600); err != nil {
			t.Fatal(err)
		}
		fromFile := okJSON[client.Policy](h, "policy", "set", "--file", file)
		if fromFile.AccessTTL != 20*time.Minute || fromFile.MaxSessionsPerUser != 0 || len(fromFile.AppMaxSessions) != 0 ||
			fromFile.Lockout.MaxFailures != 3 || fromFile.Lockout.Window != 15*time.Minute || fromFile.IdleTimeout != 0 {
			t.Errorf("--file: settings left out must take their defaults: %+v", fromFile)
		}
		h.fails(exitUsage, "usage", "policy", "set", "--file", file, "--access-ttl", "1h")
		if r := h.runWith(nil, "{}", "policy", "set", "--file", "-"); r.code != 0 {
			t.Errorf("policy set --file -: %+v", r)
		}
		if p := okJSON[client.Policy](h, "policy", "get", "--min-index", fmt.Sprint(fromFile.Index+1)); p.AccessTTL != 15*time.Minute || p.Lockout.MaxFailures != 5 {
			t.Errorf("{} must restore the defaults: %+v", p)
		}
	})

	t.Run("cluster status", func(t *testing.T) {
		h := h.with(t)
		st := okJSON[client.ClusterStatus](h, "cluster", "status")
		leaders := 0
		for _, m := range st.Members {
			if m.Leader {
				leaders++
			}
			if !m.InRaft || !m.Voter || m.Status != "alive" {
				t.Errorf("member %+v", m)
			}
		}
		if len(st.Members) != 3 || leaders != 1 || st.Leader.ID == "" {
			t.Fatalf("cluster %+v", st)
		}
		if out := h.ok("cluster", "status", "-o", "json"); strings.Contains(out, `"groups"`) {
			t.Errorf("a single-region cluster's status lists groups:\n%s", out)
		}
		out := h.ok("cluster", "status")
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if len(lines) != 5 || !strings.HasPrefix(lines[0], "answered by ") || !strings.HasPrefix(lines[1], "NODE") {
			t.Fatalf("status table:\n%s", out)
		}
		states := map[string]int{}
		for _, line := range lines[2:] {
			f := strings.Fields(line)
			if len(f) < 7 {
				t.Fatalf("row %q", line)
			}
			// NODE REGION VOTER [*] STATE APPLIED HEALTH HTTP
			state, applied := f[3], f[4]
			if f[3] == "*" {
				state, applied = f[4], f[5]
				if f[0] != st.Leader.ID {
					t.Errorf("leader mark on %s, leader is %s", f[0], st.Leader.ID)
				}
			}
			states[state]++
			if n, err := strconv.ParseUint(applied, 10, 64); err != nil || n == 0 {
				t.Errorf("applied index %q in %q", applied, line)
			}
			if !strings.Contains(line, "alive") || f[2] != "yes" {
				t.Errorf("row %q", line)
			}
		}
		if states["Leader"] != 1 || states["Follower"] != 2 {
			t.Errorf("states %v in\n%s", states, out)
		}
	})

	t.Run("events tail", func(t *testing.T) {
		h := h.with(t)
		h.waitApplied()
		out := h.ok("events", "tail", "--after", fmt.Sprint(start), "-o", "json")
		types := map[string]int{}
		var created bool
		var last uint64
		for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
			var ev client.Event
			if err := json.Unmarshal([]byte(line), &ev); err != nil {
				t.Fatalf("event line %q: %v", line, err)
			}
			if ev.Index <= last || ev.Index <= start {
				t.Errorf("event %d after %d (start %d)", ev.Index, last, start)
			}
			last = ev.Index
			types[ev.Type]++
			if ev.Type == "SessionCreated" && ev.SessionID == alice.SessionID && ev.UserID == "alice@example.com" && ev.App == "web" {
				created = true
			}
		}
		if !created {
			t.Errorf("no SessionCreated for %s", alice.SessionID)
		}
		for _, typ := range []string{"SessionCreated", "SessionRevoked", "UserForceLoggedOut", "UserCredentialsSet",
			"LoginFailed", "UserUnlocked", "UserLimitSet", "UserDeleted", "PolicySet"} {
			if types[typ] == 0 {
				t.Errorf("no %s in the tail: %v", typ, types)
			}
		}
		table := h.ok("events", "tail", "--after", fmt.Sprint(start))
		if !strings.Contains(table, "SessionCreated") || !strings.Contains(table, "session="+alice.SessionID) ||
			strings.Contains(table, alice.AccessToken) || strings.Contains(table, alice.RefreshToken) {
			t.Errorf("tail table:\n%s", table)
		}
	})

	t.Run("events follow", func(t *testing.T) {
		h := h.with(t)
		h.waitApplied()
		after := h.cl.Nodes[0].Node.AppliedIndex()
		var out, errOut testkit.SyncBuffer
		fctx, stop := context.WithCancel(context.Background())
		defer stop()
		done := make(chan int, 1)
		go func() {
			done <- h.exec(fctx, nil, "", &out, &errOut, "events", "follow", "--after", fmt.Sprint(after))
		}()
		erin := okJSON[client.Tokens](h, "sessions", "create", "--user", "erin")
		h.cl.WaitFor(10*time.Second, "events follow to print erin's session", func() bool {
			return strings.Contains(out.String(), "session="+erin.SessionID)
		})
		stop()
		select {
		case code := <-done:
			if code != 0 || errOut.String() != "" {
				t.Errorf("follow ended with %d, stderr %q", code, errOut.String())
			}
		case <-time.After(10 * time.Second):
			t.Fatal("events follow did not end when cancelled")
		}
		for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
			if idx, err := strconv.ParseUint(strings.Fields(line)[0], 10, 64); err != nil || idx <= after {
				t.Errorf("followed line %q is not after %d", line, after)
			}
		}
	})

	t.Run("keys, addresses and errors", func(t *testing.T) {
		h := h.with(t)
		dir := t.TempDir()
		keyFile := filepath.Join(dir, "admin.key")
		if err := os.WriteFile(keyFile, []byte("# rotation: old key first\nold-admin-key-0000000000000000\n"+clustertest.APIKey+"\n\n# end\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		noKey := map[string]string{"SESSIOND_API_KEY": ""}
		if r := h.runWith(noKey, "", "policy", "get", "--api-key-file", keyFile); r.code != 0 {
			t.Errorf("--api-key-file: %+v", r)
		}
		if r := h.runWith(map[string]string{"SESSIOND_API_KEY": "", "SESSIOND_API_KEY_FILE": keyFile}, "", "policy", "get"); r.code != 0 {
			t.Errorf("SESSIOND_API_KEY_FILE: %+v", r)
		}
		r := h.runWith(map[string]string{"SESSIOND_API_KEY": "wrong-admin-key-0000000000000000"}, "", "policy", "get")
		if r.code != exitError || r.stderr != "sessionctl: unauthenticated: missing or invalid credentials\n" {
			t.Errorf("wrong key: %+v", r)
		}
		if r := h.runWith(noKey, "", "policy", "get", "--api-key-file", filepath.Join(dir, "missing")); r.code != exitError {
			t.Errorf("missing key file: %+v", r)
		}

		dead := "http://" + testkit.FreeAddr(t) // nothing listens there
		withDead := map[string]string{"SESSIOND_ADDR": dead + "," + h.env["SESSIOND_ADDR"]}
		if r := h.runWith(withDead, "", "policy", "get"); r.code != 0 {
			t.Errorf("a dead first address: %+v", r)
		}
		if r := h.runWith(map[string]string{"SESSIOND_ADDR": dead}, "", "policy", "get", "--timeout", "5s"); r.code != exitError || !strings.HasPrefix(r.stderr, "sessionctl: unreachable: ") {
			t.Errorf("only a dead address: %+v", r)
		}
		h.fails(exitUsage, "usage", "sessions", "bogus")
		h.fails(exitUsage, "usage", "policy", "get", "-o", "yaml")
		h.fails(exitUsage, "usage", "sessions", "create")
		h.fails(exitUsage, "usage", "sessions", "get")
	})

	t.Run("cluster remove", func(t *testing.T) {
		h := h.with(t)
		h.fails(exitError, "not_found", "cluster", "remove", "no-such-node")
		leader := h.cl.Leader()
		victim := h.cl.Nodes[(leader+1)%3]
		if out := h.ok("cluster", "remove", victim.ID); out != "removed "+victim.ID+" from the Raft configuration\n" {
			t.Errorf("remove printed %q", out)
		}
		// The node is alive: the leader adds it back.
		h.cl.WaitFor(20*time.Second, "the removed node to be added back", func() bool {
			st, err := api.Cluster(ctx)
			if err != nil {
				return false
			}
			in := 0
			for _, m := range st.Members {
				if m.InRaft {
					in++
				}
			}
			return in == 3 && h.cl.AllReady()
		})
	})
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
