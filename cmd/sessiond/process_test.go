package main

// Process tests: the sessiond binary built once and run as a real process
// on 127.0.0.1, killed, restarted and stopped the way an operator would.

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/http/httptrace"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sessiond/sessiond/transport/testkit"
)

const (
	readyLimit = 15 * time.Second // one process start, election included
	stopLimit  = 15 * time.Second // SIGTERM to exit
)

func TestProcess(t *testing.T) {
	bin := buildBinary(t)
	t.Run("KillAndRestartKeepsSessions", func(t *testing.T) { t.Parallel(); testKillAndRestart(t, bin) })
	t.Run("RestartWithoutWritesBecomesReady", func(t *testing.T) { t.Parallel(); testRestartWithoutWrites(t, bin) })
	t.Run("SIGTERMExitsZero", func(t *testing.T) { t.Parallel(); testSIGTERM(t, bin) })
	t.Run("SIGTERMAnswersWaitingReads503", func(t *testing.T) { t.Parallel(); testSIGTERMWithWaitingRead(t, bin) })
	t.Run("EnvironmentSetsEveryFlag", func(t *testing.T) { t.Parallel(); testEnvironment(t, bin) })
	t.Run("FlagBeatsEnvironment", func(t *testing.T) { t.Parallel(); testFlagBeatsEnvironment(t, bin) })
	t.Run("HelpListsFlags", func(t *testing.T) { t.Parallel(); testHelp(t, bin) })
	t.Run("JoiningNeedsSharedKeyFiles", func(t *testing.T) { t.Parallel(); testJoiningNeedsKeyFiles(t, bin) })
	t.Run("RestartedFollowerCatchingUp", func(t *testing.T) { t.Parallel(); testRestartedFollowerCatchingUp(t, bin) })
}

// buildBinary builds this package into the test's temporary directory; in
// -short mode it skips the test instead.
func buildBinary(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("skipping the process tests (they build and run the sessiond binary) in -short mode")
	}
	bin := filepath.Join(t.TempDir(), "sessiond")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// daemon is one running sessiond process.
type daemon struct {
	cmd     *exec.Cmd
	out     *testkit.SyncBuffer // stdout and stderr
	exited  chan struct{}
	waitErr error
}

// environment is the test's environment without any SESSIOND_* variable,
// plus extra.
func environment(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "SESSIOND_") {
			env = append(env, kv)
		}
	}
	return append(env, extra...)
}

// start runs the binary in a temporary working directory (so that a default
// ./data never lands in the source tree) and kills it when the test ends.
func start(t *testing.T, bin string, env []string, args ...string) *daemon {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Dir = t.TempDir()
	cmd.Env = environment(env...)
	d := &daemon{cmd: cmd, out: &testkit.SyncBuffer{}, exited: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = d.out, d.out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}
	go func() {
		d.waitErr = cmd.Wait()
		close(d.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-d.exited:
		default:
			_ = cmd.Process.Kill()
			<-d.exited
		}
		if t.Failed() {
			t.Logf("output of %v:\n%s", args, d.out.String())
		}
	})
	return d
}

func (d *daemon) running() bool {
	select {
	case <-d.exited:
		return false
	default:
		return true
	}
}

// waitReady polls GET /readyz until it answers 200.
func (d *daemon) waitReady(t *testing.T, c *client) {
	t.Helper()
	exited := false
	ready := testkit.Wait(readyLimit, func() bool {
		if !d.running() {
			exited = true
			return true
		}
		resp, err := c.http.Get(c.base + "/readyz")
		if err != nil {
			return false
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	switch {
	case exited:
		t.Fatalf("sessiond exited before it was ready (%v):\n%s", d.waitErr, d.out.String())
	case !ready:
		t.Fatalf("sessiond not ready after %s:\n%s", readyLimit, d.out.String())
	}
}

// kill ends the process with SIGKILL and waits for it.
func (d *daemon) kill(t *testing.T) {
	t.Helper()
	if err := d.cmd.Process.Kill(); err != nil {
		t.Fatalf("kill: %v", err)
	}
	<-d.exited
}

// terminate sends SIGTERM and checks that the process exits 0 in time.
func (d *daemon) terminate(t *testing.T) {
	t.Helper()
	if err := d.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("SIGTERM: %v", err)
	}
	select {
	case <-d.exited:
	case <-time.After(stopLimit):
		t.Fatalf("sessiond still running %s after SIGTERM:\n%s", stopLimit, d.out.String())
	}
	if d.waitErr != nil {
		t.Fatalf("sessiond exited with %v after SIGTERM, want status 0:\n%s", d.waitErr, d.out.String())
	}
}

// runToExit runs the binary to completion (it must exit within 15 s).
func runToExit(t *testing.T, bin string, env []string, args ...string) (string, error) {
	t.Helper()
	d := start(t, bin, env, args...)
	select {
	case <-d.exited:
	case <-time.After(stopLimit):
		t.Fatalf("sessiond %v did not exit:\n%s", args, d.out.String())
	}
	return d.out.String(), d.waitErr
}

// client talks to one process's API.
type client struct {
	http *http.Client
	base string
	key  string
}

func newClient(t *testing.T, base, key string, tlsCfg *tls.Config) *client {
	tr := &http.Transport{TLSClientConfig: tlsCfg}
	t.Cleanup(tr.CloseIdleConnections)
	return &client{http: &http.Client{Timeout: 15 * time.Second, Transport: tr}, base: base, key: key}
}

type answer struct {
	status int
	body   []byte
}

// call sends a JSON request; admin adds the API key; hdrs are name, value pairs.
func (c *client) call(t *testing.T, admin bool, method, path string, body any, hdrs ...string) answer {
	t.Helper()
	if admin {
		hdrs = append([]string{"X-API-Key", c.key}, hdrs...)
	}
	r, err := testkit.Send(c.http, method, c.base+path, body, hdrs...)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	return answer{status: r.Status, body: r.Body}
}

func (c *client) expect(t *testing.T, what string, a answer, status int) {
	t.Helper()
	if a.status != status {
		t.Fatalf("%s: got %d %s, want %d", what, a.status, bytes.TrimSpace(a.body), status)
	}
}

type tokens struct {
	SessionID    string `json:"session_id"`
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
}

func (c *client) create(t *testing.T, user string) tokens {
	t.Helper()
	a := c.call(t, true, http.MethodPost, "/v1/sessions", map[string]any{
		"user_id": user, "scopes": []string{"read"}, "device": map[string]string{"label": "test"},
	})
	c.expect(t, "create session for "+user, a, http.StatusCreated)
	var tok tokens
	if err := json.Unmarshal(a.body, &tok); err != nil || tok.AccessToken == "" || tok.RefreshToken == "" {
		t.Fatalf("token answer %s: %v", a.body, err)
	}
	return tok
}

func (c *client) refresh(t *testing.T, refreshToken string) answer {
	t.Helper()
	return c.call(t, false, http.MethodPost, "/v1/refresh", map[string]string{"refresh_token": refreshToken})
}

func (c *client) refreshOK(t *testing.T, what, refreshToken string) tokens {
	t.Helper()
	a := c.refresh(t, refreshToken)
	c.expect(t, what, a, http.StatusOK)
	var tok tokens
	if err := json.Unmarshal(a.body, &tok); err != nil {
		t.Fatal(err)
	}
	return tok
}

func (c *client) validate(t *testing.T, access string) int {
	t.Helper()
	return c.call(t, false, http.MethodGet, "/v1/session", nil, "Authorization", "Bearer "+access).status
}

func (c *client) expectValid(t *testing.T, what, access string) {
	t.Helper()
	if st := c.validate(t, access); st != http.StatusOK {
		t.Errorf("%s: validation answered %d, want 200", what, st)
	}
}

func (c *client) expectInvalid(t *testing.T, what, access string) {
	t.Helper()
	if st := c.validate(t, access); st != http.StatusUnauthorized {
		t.Errorf("%s: validation answered %d, want 401", what, st)
	}
}

type introspection struct {
	Active    bool   `json:"active"`
	Status    string `json:"status"`
	TokenType string `json:"token_type"`
}

func (c *client) introspect(t *testing.T, token string) introspection {
	t.Helper()
	a := c.call(t, true, http.MethodPost, "/v1/introspect", map[string]string{"token": token})
	c.expect(t, "introspect", a, http.StatusOK)
	var in introspection
	if err := json.Unmarshal(a.body, &in); err != nil {
		t.Fatal(err)
	}
	return in
}

func (c *client) expectIntrospected(t *testing.T, what, token, status string) {
	t.Helper()
	if in := c.introspect(t, token); in.Status != status || in.Active != (status == "active") {
		t.Errorf("%s: introspection %+v, want status %s", what, in, status)
	}
}

// readAdminKey reads <data-dir>/admin.key and checks its mode.
func readAdminKey(t *testing.T, dataDir string) string {
	t.Helper()
	path := filepath.Join(dataDir, "admin.key")
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatalf("admin key: %v", err)
	}
	if perm := fi.Mode().Perm(); perm != 0o600 {
		t.Errorf("admin.key mode %v, want 0600", perm)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	key := strings.TrimSpace(string(data))
	if len(key) < 16 {
		t.Fatalf("admin key %d characters, want a long random key", len(key))
	}
	return key
}

func testKillAndRestart(t *testing.T, bin string) {
	dataDir := filepath.Join(t.TempDir(), "data")
	httpAddr, raftAddr := testkit.FreeAddr(t), testkit.FreeAddr(t)
	args := []string{"--data-dir", dataDir, "--http-addr", httpAddr, "--raft-addr", raftAddr, "--gossip-addr", testkit.FreeAddr(t)}

	first := start(t, bin, nil, args...)
	probe := newClient(t, "http://"+httpAddr, "", nil)
	first.waitReady(t, probe)
	key := readAdminKey(t, dataDir)
	c := newClient(t, "http://"+httpAddr, key, nil)

	var issued []string // every token the run hands out
	keep := func(toks ...tokens) {
		for _, tok := range toks {
			issued = append(issued, tok.AccessToken, tok.RefreshToken)
		}
	}
	active := c.create(t, "alice")
	revoked := c.create(t, "bob")
	loggedOut := c.create(t, "carol")
	rotated := c.create(t, "dave")
	accessOnly := c.create(t, "erin")
	forced1, forced2 := c.create(t, "frank"), c.create(t, "frank")
	keep(active, revoked, loggedOut, rotated, accessOnly, forced1, forced2)

	c.expect(t, "admin revoke", c.call(t, true, http.MethodDelete, "/v1/sessions/"+revoked.SessionID, nil), http.StatusNoContent)
	c.expect(t, "logout", c.call(t, false, http.MethodDelete, "/v1/session", nil, "Authorization", "Bearer "+loggedOut.AccessToken), http.StatusNoContent)
	rotated2 := c.refreshOK(t, "refresh", rotated.RefreshToken)
	keep(rotated2)
	c.expect(t, "revoke access token", c.call(t, false, http.MethodPost, "/v1/revoke", map[string]string{"token": accessOnly.AccessToken}), http.StatusOK)
	c.expect(t, "force logout", c.call(t, true, http.MethodDelete, "/v1/users/frank/sessions", map[string]string{"reason": "password_reset"}), http.StatusOK)
	c.expectValid(t, "active session before the kill", active.AccessToken)
	// A user with a password, and a login with it.
	const password = "kill-and-restart correct horse"
	c.expect(t, "set user", c.call(t, true, http.MethodPut, "/v1/users/hank", map[string]string{"email": "hank@example.com", "password": password}), http.StatusOK)
	login := func(what string) tokens {
		a := c.call(t, false, http.MethodPost, "/v1/login", map[string]string{"email": "Hank@Example.com", "password": password})
		c.expect(t, what, a, http.StatusCreated)
		var tok tokens
		if err := json.Unmarshal(a.body, &tok); err != nil || tok.AccessToken == "" {
			t.Fatalf("login answer %s: %v", a.body, err)
		}
		return tok
	}
	loggedIn := login("login before the kill")
	keep(loggedIn)
	cookieKey, err := os.ReadFile(filepath.Join(dataDir, "cookie.key"))
	if err != nil {
		t.Fatalf("a lone node generates a cookie key: %v", err)
	}

	first.kill(t)
	second := start(t, bin, nil, args...)
	second.waitReady(t, c)
	if got := readAdminKey(t, dataDir); got != key {
		t.Errorf("the restart replaced the admin key")
	}
	if again, _ := os.ReadFile(filepath.Join(dataDir, "cookie.key")); !bytes.Equal(again, cookieKey) {
		t.Errorf("the restart replaced the cookie key")
	}
	c.expectValid(t, "password login's session after restart", loggedIn.AccessToken)
	keep(login("login after restart"))

	c.expectValid(t, "active session after restart", active.AccessToken)
	c.expectIntrospected(t, "active refresh token after restart", active.RefreshToken, "active")
	for name, tok := range map[string]tokens{"admin-revoked": revoked, "logged out": loggedOut, "force-logged-out": forced1, "second force-logged-out": forced2} {
		c.expectInvalid(t, name+" session after restart", tok.AccessToken)
		c.expectIntrospected(t, name+" access token after restart", tok.AccessToken, "revoked")
		c.expectIntrospected(t, name+" refresh token after restart", tok.RefreshToken, "revoked")
	}
	// The rotated session: old pair dead, new pair alive.
	c.expectInvalid(t, "pre-refresh access token after restart", rotated.AccessToken)
	c.expectIntrospected(t, "pre-refresh refresh token after restart", rotated.RefreshToken, "revoked")
	c.expectValid(t, "post-refresh access token after restart", rotated2.AccessToken)
	rotated3 := c.refreshOK(t, "refresh with the post-refresh token after restart", rotated2.RefreshToken)
	keep(rotated3)
	c.expectValid(t, "access token minted after restart", rotated3.AccessToken)
	// The access-only revocation survived; the session can still be refreshed.
	c.expectInvalid(t, "revoked access token after restart", accessOnly.AccessToken)
	accessOnly2 := c.refreshOK(t, "refresh of the session whose access token was revoked", accessOnly.RefreshToken)
	keep(accessOnly2)
	// Reuse detection still knows the rotated token.
	c.expect(t, "reuse of the pre-refresh token after restart", c.refresh(t, rotated.RefreshToken), http.StatusUnauthorized)
	c.expectInvalid(t, "session after reuse", rotated3.AccessToken)
	fresh := c.create(t, "gina")
	keep(fresh)
	c.expectValid(t, "session created after restart", fresh.AccessToken)

	second.terminate(t)

	logs := first.out.String() + second.out.String()
	if strings.Contains(logs, key) {
		t.Errorf("the admin key appears in the process output")
	}
	for _, tok := range issued {
		if strings.Contains(logs, tok) || strings.Contains(logs, tok[3:]) {
			t.Errorf("token %s… appears in the process output", tok[:8])
		}
	}
	checkNoSecretsStored(t, dataDir, issued, key)
	if strings.Contains(logs, password) || strings.Contains(logs, "$argon2id$") {
		t.Errorf("a password or password hash appears in the process output")
	}
	checkNotStored(t, dataDir, "the password", []byte(password))
}

// eachFile calls f with the path (relative to dir) and the contents of
// every file under dir.
func eachFile(t *testing.T, dir string, f func(rel string, data []byte)) {
	t.Helper()
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		f(rel, data)
		return nil
	})
	if err != nil {
		t.Fatalf("scan %s: %v", dir, err)
	}
}

// checkNotStored fails if any file under dir contains secret.
func checkNotStored(t *testing.T, dir, what string, secret []byte) {
	t.Helper()
	eachFile(t, dir, func(rel string, data []byte) {
		if bytes.Contains(data, secret) {
			t.Errorf("%s is stored in %s", what, rel)
		}
	})
}

// checkNoSecretsStored reads every file under dir and fails if any holds a
// token, in its text form or as its decoded random bytes, or the admin key
// outside admin.key. As a control, the tokens' SHA-256 hashes (which the
// log does hold) must be found, proving the scan reads the Raft log.
func checkNoSecretsStored(t *testing.T, dir string, issued []string, adminKey string) {
	t.Helper()
	type needle struct {
		what string
		b    []byte
	}
	var needles []needle
	var hashes [][]byte
	for _, tok := range issued {
		raw, err := base64.RawURLEncoding.DecodeString(tok[3:])
		if err != nil || len(raw) != 32 {
			t.Fatalf("token %s… is not base64url of 32 bytes: %v", tok[:8], err)
		}
		name := tok[:8] + "…"
		needles = append(needles,
			needle{"token " + name, []byte(tok)},
			needle{"token body of " + name, []byte(tok[3:])},
			needle{"raw bytes of " + name, raw},
			needle{"hex of " + name, []byte(hex.EncodeToString(raw))},
			needle{"std base64 of " + name, []byte(base64.StdEncoding.EncodeToString(raw))},
		)
		h := sha256.Sum256([]byte(tok))
		hashes = append(hashes, h[:])
	}
	hashesFound, files := 0, 0
	eachFile(t, dir, func(rel string, data []byte) {
		files++
		for _, n := range needles {
			if bytes.Contains(data, n.b) {
				t.Errorf("%s is stored in %s", n.what, rel)
			}
		}
		if rel != "admin.key" && bytes.Contains(data, []byte(adminKey)) {
			t.Errorf("the admin key is stored in %s", rel)
		}
		for _, h := range hashes {
			if bytes.Contains(data, h) {
				hashesFound++
			}
		}
	})
	if files < 2 {
		t.Errorf("scanned %d files under %s, want at least admin.key and raft.db", files, dir)
	}
	if hashesFound == 0 {
		t.Errorf("no token hash found under %s: the scan did not see the Raft log", dir)
	}
}

func testRestartWithoutWrites(t *testing.T, bin string) {
	dataDir := filepath.Join(t.TempDir(), "data")
	httpAddr, raftAddr := testkit.FreeAddr(t), testkit.FreeAddr(t)
	args := []string{"--data-dir", dataDir, "--http-addr", httpAddr, "--raft-addr", raftAddr, "--gossip-addr", testkit.FreeAddr(t)}
	c := newClient(t, "http://"+httpAddr, "", nil)

	// A node that wrote nothing since its last start must still become
	// ready after a restart: the entries Raft adds on its own (the leader's
	// no-op after each election) never reach the state machine.
	for i := range 3 {
		d := start(t, bin, nil, args...)
		d.waitReady(t, c)
		if i == 1 {
			c.key = readAdminKey(t, dataDir)
			c.create(t, "between-restarts")
		}
		d.terminate(t)
	}
}

func testSIGTERM(t *testing.T, bin string) {
	dataDir := filepath.Join(t.TempDir(), "data")
	httpAddr := testkit.FreeAddr(t)
	d := start(t, bin, nil, "--data-dir", dataDir, "--http-addr", httpAddr, "--raft-addr", testkit.FreeAddr(t), "--gossip-addr", testkit.FreeAddr(t))
	c := newClient(t, "http://"+httpAddr, "", nil)
	d.waitReady(t, c)
	c.key = readAdminKey(t, dataDir)
	tok := c.create(t, "sigterm")
	c.expectValid(t, "session before SIGTERM", tok.AccessToken)

	// A second process on the same data dir refuses to start, and leaves the
	// first one alone.
	out, err := runToExit(t, bin, nil, "--data-dir", dataDir, "--http-addr", testkit.FreeAddr(t), "--raft-addr", testkit.FreeAddr(t), "--gossip-addr", testkit.FreeAddr(t))
	if err == nil || !strings.Contains(out, "in use") {
		t.Errorf("second process on the same data dir: err %v, output:\n%s\nwant a failure saying the data dir is in use", err, out)
	}
	c.expectValid(t, "session while a second process tried the data dir", tok.AccessToken)
	began := time.Now()
	d.terminate(t)
	t.Logf("exited %v after SIGTERM", time.Since(began).Round(time.Millisecond))
	if _, err := net.DialTimeout("tcp", httpAddr, time.Second); err == nil {
		t.Errorf("HTTP address %s still accepts connections after exit", httpAddr)
	}
}

// A read waiting for a min_index (up to 30 s) when SIGTERM arrives must not
// hold the shutdown up, and is answered 503 ("shutting down",
// docs/api.md#errors) rather than cut off by the process exiting.
func testSIGTERMWithWaitingRead(t *testing.T, bin string) {
	dataDir := filepath.Join(t.TempDir(), "data")
	httpAddr := testkit.FreeAddr(t)
	// Debug logging shows when the read is really waiting on the server: a
	// request still on the wire when shutdown begins is dropped by net/http
	// unanswered, which is not what this test is about.
	d := start(t, bin, nil, "--data-dir", dataDir, "--http-addr", httpAddr, "--raft-addr", testkit.FreeAddr(t), "--gossip-addr", testkit.FreeAddr(t), "--log-level", "debug")
	c := newClient(t, "http://"+httpAddr, "", nil)
	d.waitReady(t, c)
	c.key = readAdminKey(t, dataDir)
	tok := c.create(t, "waiter")

	type result struct {
		status int
		err    error
	}
	done := make(chan result, 1)
	wrote := make(chan struct{})
	go func() {
		// A connection of its own, which the client will not retry on.
		tr := &http.Transport{DisableKeepAlives: true}
		defer tr.CloseIdleConnections()
		trace := &httptrace.ClientTrace{WroteRequest: func(httptrace.WroteRequestInfo) { close(wrote) }}
		req, _ := http.NewRequest(http.MethodGet, c.base+"/v1/session?min_index=999999999&wait=30s", nil)
		req = req.WithContext(httptrace.WithClientTrace(req.Context(), trace))
		req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
		resp, err := (&http.Client{Transport: tr, Timeout: 40 * time.Second}).Do(req)
		if err != nil {
			done <- result{err: err}
			return
		}
		resp.Body.Close()
		done <- result{status: resp.StatusCode}
	}()
	select {
	case <-wrote:
	case r := <-done:
		t.Fatalf("the waiting read ended before SIGTERM: %+v", r)
	case <-time.After(5 * time.Second):
		t.Fatalf("the waiting read was not sent within 5s")
	}
	if !testkit.Wait(10*time.Second, func() bool { return strings.Contains(d.out.String(), "read waiting for index") }) {
		t.Fatalf("the server did not log the waiting read within 10s:\n%s", d.out.String())
	}

	began := time.Now()
	d.terminate(t)
	took := time.Since(began)
	t.Logf("exited %v after SIGTERM with a read waiting", took.Round(time.Millisecond))
	select {
	case r := <-done:
		if r.err != nil {
			t.Errorf("the waiting read was cut off (%v) instead of answered 503 during shutdown (exit took %v)", r.err, took.Round(time.Millisecond))
		} else if r.status != http.StatusServiceUnavailable {
			t.Errorf("the waiting read answered %d during shutdown, want 503", r.status)
		}
	case <-time.After(5 * time.Second):
		t.Errorf("the waiting read has no answer 5s after the process exited")
	}
}

// envCoveredFlags are the flags testEnvironment sets through SESSIOND_*.
var envCoveredFlags = []string{
	"node-id", "data-dir", "http-addr", "raft-addr", "gossip-addr", "advertise-addr",
	"api-key-file", "http-tls-cert", "http-tls-key", "log-level", "log-format",
}

func testEnvironment(t *testing.T, bin string) {
	dir := t.TempDir()
	dataDir := filepath.Join(dir, "env-data")
	httpAddr, raftAddr, advertise := testkit.FreeAddr(t), testkit.FreeAddr(t), testkit.FreeAddr(t)
	const apiKey = "key-from-the-env-file-0123456789"
	keyFile := filepath.Join(dir, "api.keys")
	if err := os.WriteFile(keyFile, []byte("# admin keys\n\n"+apiKey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ca := testkit.NewCA(t, "sessiond test")
	certFile, certKey := ca.Issue("sessiond", net.IPv4(127, 0, 0, 1))
	env := []string{
		"SESSIOND_NODE_ID=env-node",
		"SESSIOND_DATA_DIR=" + dataDir,
		"SESSIOND_HTTP_ADDR=" + httpAddr,
		"SESSIOND_RAFT_ADDR=" + raftAddr,
		"SESSIOND_GOSSIP_ADDR=" + testkit.FreeAddr(t),
		"SESSIOND_ADVERTISE_ADDR=" + advertise,
		"SESSIOND_API_KEY_FILE=" + keyFile,
		"SESSIOND_HTTP_TLS_CERT=" + certFile,
		"SESSIOND_HTTP_TLS_KEY=" + certKey,
		"SESSIOND_LOG_LEVEL=debug",
		"SESSIOND_LOG_FORMAT=json",
	}
	d := start(t, bin, env) // no flags at all
	c := newClient(t, "https://"+httpAddr, apiKey, &tls.Config{RootCAs: ca.Pool()})
	d.waitReady(t, c) // SESSIOND_HTTP_ADDR, SESSIOND_HTTP_TLS_CERT, SESSIOND_HTTP_TLS_KEY

	tok := c.create(t, "env-user") // SESSIOND_API_KEY_FILE
	c.expectValid(t, "session over TLS", tok.AccessToken)
	if _, err := os.Stat(filepath.Join(dataDir, "raft.db")); err != nil { // SESSIOND_DATA_DIR
		t.Errorf("raft.db not in SESSIOND_DATA_DIR: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dataDir, "admin.key")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("admin.key generated although SESSIOND_API_KEY_FILE names the keys (stat: %v)", err)
	}
	if conn, err := net.DialTimeout("tcp", raftAddr, time.Second); err != nil { // SESSIOND_RAFT_ADDR
		t.Errorf("nothing listens on SESSIOND_RAFT_ADDR %s: %v", raftAddr, err)
	} else {
		conn.Close()
	}
	plain := newClient(t, "http://"+httpAddr, apiKey, nil)
	if resp, err := plain.http.Get(plain.base + "/healthz"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Errorf("plain HTTP answered 200 although TLS is configured")
		}
	}
	d.terminate(t)

	// SESSIOND_LOG_FORMAT=json: every line is a JSON object.
	// SESSIOND_LOG_LEVEL=debug: debug lines appear.
	// SESSIOND_NODE_ID and SESSIOND_ADVERTISE_ADDR: the node reports them.
	var debug, started bool
	sc := bufio.NewScanner(strings.NewReader(d.out.String()))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Errorf("log line is not JSON: %s", line)
			continue
		}
		if rec["level"] == "DEBUG" {
			debug = true
		}
		if rec["msg"] == "node started" {
			started = true
			if rec["node_id"] != "env-node" {
				t.Errorf("node started with node_id %v, want env-node from SESSIOND_NODE_ID", rec["node_id"])
			}
			if rec["raft_addr"] != advertise {
				t.Errorf("node advertises raft_addr %v, want %s from SESSIOND_ADVERTISE_ADDR", rec["raft_addr"], advertise)
			}
		}
	}
	if !debug {
		t.Errorf("no DEBUG log line although SESSIOND_LOG_LEVEL=debug")
	}
	if !started {
		t.Errorf("no \"node started\" log line")
	}
	if strings.Contains(d.out.String(), apiKey) {
		t.Errorf("the API key appears in the process output")
	}
}

func testFlagBeatsEnvironment(t *testing.T, bin string) {
	out, err := runToExit(t, bin, []string{"SESSIOND_LOG_FORMAT=from-env"}, "--log-format", "from-flag")
	if err == nil || !strings.Contains(out, "from-flag") || strings.Contains(out, "from-env") {
		t.Errorf("with SESSIOND_LOG_FORMAT=from-env and --log-format from-flag: err %v, output %q; want a failure naming from-flag only", err, out)
	}
	out, err = runToExit(t, bin, []string{"SESSIOND_LOG_LEVEL=loud"})
	if err == nil || !strings.Contains(out, "loud") {
		t.Errorf("with SESSIOND_LOG_LEVEL=loud: err %v, output %q; want a failure naming the value", err, out)
	}
	out, err = runToExit(t, bin, nil, "--log-level", "nonsense", "--data-dir", filepath.Join(t.TempDir(), "d"))
	if err == nil || !strings.Contains(out, "nonsense") {
		t.Errorf("with --log-level nonsense: err %v, output %q; want a failure naming the value", err, out)
	}
}

// specFlags are the flags docs/operations.md#flags promises by name.
var specFlags = []string{
	"node-id", "data-dir", "http-addr", "raft-addr", "gossip-addr", "advertise-addr", "join",
	"bootstrap-expect", "region", "voter", "api-key-file", "cookie-key-file", "max-stale",
	"dead-node-timeout", "tls-cert", "tls-key", "tls-ca", "gossip-key", "log-level", "log-format",
	"trusted-proxies",
}

func testHelp(t *testing.T, bin string) {
	out, err := runToExit(t, bin, nil, "--help")
	if err != nil {
		t.Fatalf("--help: %v\n%s", err, out)
	}
	listed := map[string]bool{}
	for _, line := range strings.Split(out, "\n") {
		fields := strings.Fields(line)
		// Flag lines start with the flag ("--x" or "-h, --help"); other
		// lines (commands, usage) may mention flags in their text.
		if len(fields) == 0 || !strings.HasPrefix(fields[0], "-") {
			continue
		}
		for _, f := range fields[:min(2, len(fields))] {
			if strings.HasPrefix(f, "--") {
				name := strings.TrimPrefix(f, "--")
				listed[name] = true
				if name != "help" && !strings.Contains(line, envName(name)) {
					t.Errorf("--help line for --%s does not name %s: %q", name, envName(name), line)
				}
				break
			}
		}
	}
	for _, name := range envCoveredFlags {
		if !listed[name] {
			t.Errorf("--help does not list --%s", name)
		}
	}
	for name := range listed {
		if name != "help" && !slices.Contains(envCoveredFlags, name) {
			t.Logf("--%s is not exercised through %s by this test yet", name, envName(name))
		}
	}
	var missing []string
	for _, name := range specFlags {
		if !listed[name] {
			missing = append(missing, "--"+name)
		}
	}
	if len(missing) > 0 {
		t.Logf("documented flags this build does not have yet: %s", strings.Join(missing, " "))
	}
	if !strings.Contains(out, "SESSIOND_") {
		t.Errorf("--help does not mention the SESSIOND_* environment variables:\n%s", out)
	}
}

// A node that joins others must be given the admin and cookie key files every
// node shares (docs/operations.md#flags): keys generated per node would make
// cookies and keys work on one node only.
func testJoiningNeedsKeyFiles(t *testing.T, bin string) {
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "admin.keys")
	if err := os.WriteFile(keyFile, []byte("shared-admin-key-0123456789\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	base := []string{"--data-dir", filepath.Join(dir, "data"), "--http-addr", testkit.FreeAddr(t), "--raft-addr", testkit.FreeAddr(t), "--gossip-addr", testkit.FreeAddr(t)}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--join", "127.0.0.1:1"}, "--api-key-file"},
		{[]string{"--bootstrap-expect", "3"}, "--api-key-file"},
		{[]string{"--join", "127.0.0.1:1", "--api-key-file", keyFile}, "--cookie-key-file"},
		{[]string{"--bootstrap-expect", "3", "--api-key-file", keyFile}, "--cookie-key-file"},
	} {
		out, err := runToExit(t, bin, nil, append(base, c.args...)...)
		if err == nil || !strings.Contains(out, c.want) {
			t.Errorf("sessiond %v: err %v, output %q; want a refusal naming %s", c.args, err, out, c.want)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "data", "cookie.key")); err == nil {
		t.Error("a node refused for missing key files still generated a cookie key")
	}
}
