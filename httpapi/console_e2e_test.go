package httpapi_test

// End-to-end test of the admin console (/ui/) in headless Chromium: a real
// node and API on 127.0.0.1, the page driven through the DevTools protocol
// (chromedp), and the outcome of each click checked through the API too.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"

	"github.com/sessiond/sessiond/httpapi"
	"github.com/sessiond/sessiond/node"
	"github.com/sessiond/sessiond/transport/testkit"
)

const consoleKey = "console-e2e-admin-key-0123456789"

// consoleNode is one node with its API, for the console test.
type consoleNode struct {
	base   string
	client *http.Client
}

// startConsoleNode starts a single-node cluster in region eu-west and its
// API (startServer, with the console's admin key); both stop when the test
// ends.
func startConsoleNode(t *testing.T) *consoleNode {
	t.Helper()
	a := startServer(t, serverSetup{
		Node: func(cfg *node.Config) { cfg.Region = "eu-west" },
		API:  func(cfg *httpapi.Config) { cfg.APIKeys = []string{consoleKey} },
	})
	return &consoleNode{base: a.base, client: a.client}
}

// call sends a request (body marshalled to JSON when not nil) with the
// admin key, or with "Authorization: Bearer <bearer>" when bearer is set,
// and answers the status and body.
func (c *consoleNode) call(t *testing.T, method, path string, body any, bearer string) (int, []byte) {
	t.Helper()
	auth := []string{"X-API-Key", consoleKey}
	if bearer != "" {
		auth = []string{"Authorization", "Bearer " + bearer}
	}
	r, err := testkit.Send(c.client, method, c.base+path, body, auth...)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	return r.Status, r.Body
}

// mustCall is call that wants the given status and decodes the answer.
func (c *consoleNode) mustCall(t *testing.T, want int, method, path string, body any, out any) {
	t.Helper()
	status, b := c.call(t, method, path, body, "")
	if status != want {
		t.Fatalf("%s %s: %d %s, want %d", method, path, status, bytes.TrimSpace(b), want)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: decoding %s: %v", method, path, b, err)
		}
	}
}

// consoleBrowser drives one tab and records what goes wrong in the page.
type consoleBrowser struct {
	t      *testing.T
	ctx    context.Context
	shots  string
	n      int
	mu     sync.Mutex
	issues []string
}

func newConsoleBrowser(t *testing.T, execPath string) *consoleBrowser {
	t.Helper()
	dir := artifactsDir(t)
	// The whole browser lives at most this long.
	parent, cancelParent := context.WithTimeout(context.Background(), 3*time.Minute)
	t.Cleanup(cancelParent)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(parent, headlessChromium(execPath, 1280, 900)...)
	t.Cleanup(cancelAlloc)
	ctx, cancel := chromedp.NewContext(allocCtx, chromedp.WithLogf(t.Logf))
	t.Cleanup(cancel)
	b := &consoleBrowser{t: t, ctx: ctx, shots: dir}

	// Everything the page reports: an exception, a console error or a
	// Content-Security-Policy violation fails the test. Failed requests
	// ("network", such as the 401 of a wrong key) are expected.
	messages := chromedp.Console(ctx)
	go func() {
		for m, err := range messages {
			if err != nil {
				return
			}
			if m.IsException() || (m.Type == chromedp.ConsoleError && m.Source != "network") || m.Source == "security" {
				b.mu.Lock()
				b.issues = append(b.issues, fmt.Sprintf("%s (%s %s:%d)", m, m.Source, m.URL, m.Line))
				b.mu.Unlock()
			}
		}
	}()
	return b
}

func (b *consoleBrowser) do(what string, actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	if err := chromedp.Do(b.ctx, actions...); err != nil {
		b.t.Fatalf("%s: %v", what, err)
	}
}

// consoleClearInput empties a text field (chromedp.Clear resets only the
// value attribute, not what was typed).
func consoleClearInput(id string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := chromedp.Evaluate[bool](`(document.getElementById(`+strconv.Quote(id)+`).value = '') === ''`)(ctx, t)
		return err
	})
}

// consoleEval runs JavaScript in the page (DevTools evaluation is not subject to
// the page's CSP; chromedp.Poll is, since it compiles the predicate with
// new Function, so waits use this instead).
func consoleEval[T any](b *consoleBrowser, expr string) (T, error) {
	return chromedp.Run(b.ctx, chromedp.Evaluate[T](expr))
}

// waitJS waits until the expression is true in the page.
func (b *consoleBrowser) waitJS(what, expr string) {
	b.t.Helper()
	var lastErr error
	if !testkit.Wait(20*time.Second, func() bool {
		ok, err := consoleEval[bool](b, expr)
		lastErr = err
		return err == nil && ok
	}) {
		b.shot("timeout")
		b.t.Fatalf("timed out waiting for %s (%s): last error %v", what, expr, lastErr)
	}
}

// text is an element's textContent.
func (b *consoleBrowser) text(id string) string {
	b.t.Helper()
	s, err := consoleEval[string](b, `document.getElementById(`+strconv.Quote(id)+`).textContent`)
	if err != nil {
		b.t.Fatalf("text of #%s: %v", id, err)
	}
	return strings.Join(strings.Fields(s), " ")
}

// shot saves a full-page screenshot and answers its path.
func (b *consoleBrowser) shot(name string) string {
	b.t.Helper()
	// Two frames first, so that the capture has the page's latest size.
	if _, err := chromedp.Run(b.ctx, chromedp.Evaluate[bool](`new Promise(function (r) {
		requestAnimationFrame(function () { requestAnimationFrame(function () { r(true); }); });
	})`, chromedp.EvalAwaitPromise)); err != nil {
		b.t.Errorf("screenshot %s: waiting for a frame: %v", name, err)
	}
	png, err := chromedp.Run(b.ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Errorf("screenshot %s: %v", name, err)
		return ""
	}
	b.n++
	path := filepath.Join(b.shots, fmt.Sprintf("console-%02d-%s.png", b.n, name))
	if err := os.WriteFile(path, png, 0o644); err != nil {
		b.t.Errorf("screenshot %s: %v", name, err)
		return ""
	}
	b.t.Logf("screenshot: %s", path)
	return path
}

func (b *consoleBrowser) checkNoIssues() {
	b.t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, i := range b.issues {
		b.t.Errorf("the page reported: %s", i)
	}
}

type consoleTokens struct {
	SessionID   string `json:"session_id"`
	AccessToken string `json:"access_token"`
}

func TestConsole_EndToEndInChromium(t *testing.T) {
	chromium := chromiumPath(t)
	n := startConsoleNode(t)

	// A user with built-in credentials, three sessions on three devices,
	// and a lockout from failed logins.
	const user = "alice@example.com"
	userPath := "/v1/users/" + strings.ReplaceAll(user, "@", "%40")
	n.mustCall(t, http.StatusOK, http.MethodPut, userPath,
		map[string]string{"email": "alice@example.com", "password": "correct horse battery"}, nil)
	devices := []struct{ app, ua, ip, label string }{
		{"web", "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0", "203.0.113.7", "Work laptop"},
		{"mobile", "SessiondDemo/2.4 (iPhone; iOS 18.1)", "198.51.100.23", "Phone"},
		{"web", "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36", "192.0.2.44", "<b>Home</b> desktop"},
	}
	var sessions []consoleTokens
	for _, d := range devices {
		var tok consoleTokens
		n.mustCall(t, http.StatusCreated, http.MethodPost, "/v1/sessions", map[string]any{
			"user_id": user, "app": d.app,
			"device": map[string]string{"user_agent": d.ua, "ip": d.ip, "label": d.label},
		}, &tok)
		sessions = append(sessions, tok)
	}
	for i := 0; i < 5; i++ {
		status, b := n.call(t, http.MethodPost, "/v1/login", map[string]string{"user_id": user, "password": "wrong password"}, "")
		if status != http.StatusUnauthorized && status != http.StatusLocked {
			t.Fatalf("failed login %d: %d %s", i, status, b)
		}
	}
	var rec struct {
		LockedUntil *string `json:"locked_until"`
	}
	n.mustCall(t, http.StatusOK, http.MethodGet, userPath, nil, &rec)
	if rec.LockedUntil == nil {
		t.Fatalf("five failed logins did not lock %s", user)
	}
	victim := sessions[1] // "Phone"

	b := newConsoleBrowser(t, chromium)

	// Sign in: a wrong key is refused, the right one opens the cluster view.
	b.do("open /ui", chromedp.Navigate(n.base+"/ui"), chromedp.WaitVisible(chromedp.ID("signin-key")))
	if loc, err := chromedp.Run(b.ctx, chromedp.Location()); err != nil || loc != n.base+"/ui/" {
		t.Fatalf("/ui led to %q (%v), want %s/ui/", loc, err, n.base)
	}
	b.do("type a wrong key",
		chromedp.SendKeys(chromedp.ID("signin-key"), "not-the-admin-key-0000"),
		chromedp.Click(chromedp.ID("signin-submit")))
	b.waitJS("the wrong key to be refused", `document.getElementById('signin-error').textContent.includes('not accepted')`)
	b.shot("signin-wrong-key")

	b.do("type the key",
		consoleClearInput("signin-key"),
		chromedp.SendKeys(chromedp.ID("signin-key"), consoleKey),
		chromedp.Click(chromedp.ID("signin-submit")))
	b.waitJS("the cluster view with one leader", `!document.getElementById('view-cluster').hidden &&
		document.getElementById('cluster-leader').textContent === 'n1' &&
		document.querySelectorAll('#members-body tr').length === 1 &&
		document.querySelectorAll('#members-body tr.is-leader').length === 1 &&
		document.getElementById('cluster-state').textContent === 'Leader'`)
	if got := b.text("members-body"); !strings.Contains(got, "eu-west") || !strings.Contains(got, "alive") || !strings.Contains(got, "voter") {
		t.Errorf("members table %q lacks region, status or voter", got)
	}
	// The key is in a variable of the page only.
	b.waitJS("no trace of the key in the page's storage, cookies, URL or DOM",
		`localStorage.length === 0 && sessionStorage.length === 0 && document.cookie === '' &&
		!location.href.includes(`+strconv.Quote(consoleKey)+`) &&
		!document.documentElement.outerHTML.includes(`+strconv.Quote(consoleKey)+`) &&
		document.getElementById('signin-key').value === ''`)
	// The view refreshes itself: the applied index moves after a write.
	applied := b.text("cluster-applied")
	n.mustCall(t, http.StatusCreated, http.MethodPost, "/v1/sessions", map[string]any{"user_id": "carol"}, nil)
	b.waitJS("the cluster view to refresh", `document.getElementById('cluster-applied').textContent !== `+strconv.Quote(applied))
	b.shot("cluster")

	// Find the user: the record (locked) and the three sessions.
	b.do("find the user",
		chromedp.Click(chromedp.CSS(`.view-button[data-view="users"]`)),
		chromedp.SendKeys(chromedp.ID("user-id"), user),
		chromedp.Click(chromedp.CSS(`#user-form button[type="submit"]`)))
	b.waitJS("the three sessions and the locked record", `document.querySelectorAll('#sessions-body tr').length === 3 &&
		!document.getElementById('user-unlock').hidden`)
	// A label with markup in it is shown as text.
	b.waitJS("the label shown as text", `!document.querySelector('#sessions-body b')`)
	table := b.text("sessions-body")
	for _, want := range []string{"Work laptop", "Phone", "<b>Home</b> desktop", "203.0.113.7", "Firefox/128.0", "mobile", "impersonation", victim.SessionID} {
		if !strings.Contains(table, want) {
			t.Errorf("the sessions table lacks %q: %s", want, table)
		}
	}
	if got := b.text("user-record"); !strings.Contains(got, "alice@example.com") || !strings.Contains(got, "set") || !strings.Contains(got, "locked") {
		t.Errorf("the user record shows %q", got)
	}
	b.shot("user-sessions")

	// Revoke one session from the page, after the confirmation.
	b.do("revoke the phone's session", chromedp.Click(chromedp.CSS(`button[data-revoke="`+victim.SessionID+`"]`)))
	b.waitJS("the confirmation", `document.getElementById('confirm').open`)
	b.shot("revoke-confirm")
	b.do("confirm", chromedp.Click(chromedp.ID("confirm-ok")))
	b.waitJS("the session to leave the list", `document.querySelectorAll('#sessions-body tr').length === 2 &&
		!document.querySelector('#sessions-body tr[data-session-id="`+victim.SessionID+`"]') &&
		document.getElementById('users-status').textContent.includes('revoked')`)
	if status, body := n.call(t, http.MethodGet, "/v1/session", nil, victim.AccessToken); status != http.StatusUnauthorized {
		t.Errorf("the revoked session's access token: %d %s, want 401", status, body)
	}
	if status, body := n.call(t, http.MethodGet, "/v1/session", nil, sessions[0].AccessToken); status != http.StatusOK {
		t.Errorf("another session's access token: %d %s, want 200", status, body)
	}
	b.shot("session-revoked")

	// Unlock the user.
	b.do("unlock", chromedp.Click(chromedp.ID("user-unlock")))
	b.waitJS("the record to show no lock", `document.getElementById('user-record-locked').textContent === 'not locked' &&
		document.getElementById('user-unlock').hidden`)
	n.mustCall(t, http.StatusOK, http.MethodGet, userPath, nil, &rec)
	if rec.LockedUntil != nil {
		t.Errorf("after Unlock the API still says locked until %s", *rec.LockedUntil)
	}

	// On a phone-sized screen the sessions list is readable without
	// scrolling sideways.
	b.do("phone viewport", chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile))
	b.waitJS("no sideways scrolling", `document.documentElement.scrollWidth <= window.innerWidth + 1`)
	b.shot("phone-sessions")
	if _, err := chromedp.Call(b.ctx, emulation.ClearDeviceMetricsOverride, cdp.Empty{}); err != nil {
		t.Fatalf("back to the desktop viewport: %v", err)
	}
	b.waitJS("the desktop layout", `window.innerWidth >= 1200`)

	// Policy editor: an out-of-range access_ttl is caught next to the
	// field, and nothing is sent.
	b.do("open the policy editor", chromedp.Click(chromedp.CSS(`.view-button[data-view="policy"]`)))
	b.waitJS("the policy form", `document.getElementById('policy-access_ttl').value === '15m0s' &&
		document.getElementById('policy-refresh_ttl_follows_access').checked`)
	b.do("enter access_ttl 1s and save",
		consoleClearInput("policy-access_ttl"),
		chromedp.SendKeys(chromedp.ID("policy-access_ttl"), "1s"),
		chromedp.Click(chromedp.ID("policy-save")))
	b.waitJS("the field error", `document.getElementById('err-access_ttl').textContent.includes('between 1m and 129600m') &&
		document.getElementById('policy-access_ttl').getAttribute('aria-invalid') === 'true' &&
		document.activeElement.id === 'policy-access_ttl'`)
	b.shot("policy-field-error")
	var pol struct {
		AccessTTL  string `json:"access_ttl"`
		RefreshTTL string `json:"refresh_ttl"`
	}
	n.mustCall(t, http.StatusOK, http.MethodGet, "/v1/policy", nil, &pol)
	if pol.AccessTTL != "15m0s" {
		t.Errorf("an out-of-range value reached the node: access_ttl %s", pol.AccessTTL)
	}
	// A good value is saved (and the refresh lifetime follows it).
	b.do("enter access_ttl 20m and save",
		consoleClearInput("policy-access_ttl"),
		chromedp.SendKeys(chromedp.ID("policy-access_ttl"), "20m"),
		chromedp.Click(chromedp.ID("policy-save")))
	b.waitJS("the policy to be saved", `document.getElementById('policy-status').textContent.includes('saved') &&
		document.getElementById('err-access_ttl').textContent === '' &&
		document.getElementById('policy-access_ttl').value === '20m0s'`)
	n.mustCall(t, http.StatusOK, http.MethodGet, "/v1/policy", nil, &pol)
	if pol.AccessTTL != "20m0s" || pol.RefreshTTL != "30m0s" {
		t.Errorf("after saving, the node's policy has access_ttl %s refresh_ttl %s, want 20m0s and 30m0s", pol.AccessTTL, pol.RefreshTTL)
	}

	// The node's own 400 is shown next to the field it names. The page's
	// checks mirror the node's, so to reach the node with a bad value the
	// test rewrites the request on its way out, as a page older than the
	// node's rules would send it.
	b.waitJS("a rewriting fetch", `(function () {
		var f = window.fetch;
		window.fetch = function (url, init) {
			if (init && init.method === 'PUT') {
				window.fetch = f;
				init = Object.assign({}, init, { body: init.body.replace('"window":"15m0s"', '"window":"0s"') });
			}
			return f(url, init);
		};
		return true;
	})()`)
	b.do("save again", chromedp.Click(chromedp.ID("policy-save")))
	b.waitJS("the node's message next to lockout.window", `document.getElementById('err-lockout.window').textContent.startsWith('lockout.window must be between') &&
		document.getElementById('policy-lockout.window').getAttribute('aria-invalid') === 'true' &&
		document.getElementById('policy-error').textContent.includes('The node refused the policy') &&
		document.activeElement.id === 'policy-lockout.window'`)
	b.shot("policy-server-error")

	// The event feed shows the revocation (and the rest, newest first).
	b.do("open the event feed", chromedp.Click(chromedp.CSS(`.view-button[data-view="events"]`)))
	b.waitJS("the revocation in the feed", `(function () {
		var r = document.querySelector('#events-body tr[data-type="SessionRevoked"][data-session-id="`+victim.SessionID+`"]');
		return !!r && r.textContent.includes('admin') && r.textContent.includes('applied') &&
			!!document.querySelector('#events-body tr[data-type="PolicySet"]') &&
			!!document.querySelector('#events-body tr[data-type="UserUnlocked"]');
	})()`)
	// Paused, the feed takes nothing; resumed, it catches up.
	b.do("pause", chromedp.Click(chromedp.ID("events-pause")))
	b.waitJS("the feed to pause", `document.getElementById('events-pause').getAttribute('aria-pressed') === 'true'`)
	var bob consoleTokens
	n.mustCall(t, http.StatusCreated, http.MethodPost, "/v1/sessions", map[string]any{"user_id": "bob", "app": "web"}, &bob)
	bobRow := `!!document.querySelector('#events-body tr[data-type="SessionCreated"][data-session-id="` + bob.SessionID + `"]')`
	for end := time.Now().Add(500 * time.Millisecond); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		if shown, _ := consoleEval[bool](b, bobRow); shown {
			t.Fatal("a paused feed showed a new event")
		}
	}
	b.do("resume", chromedp.Click(chromedp.ID("events-pause")))
	b.waitJS("the feed to catch up after resuming", bobRow)
	final := b.shot("event-feed")

	// Sign out forgets the key and what was shown.
	b.do("sign out", chromedp.Click(chromedp.ID("signout")))
	b.waitJS("the sign-in form, and nothing left shown", `!document.getElementById('view-signin').hidden &&
		document.getElementById('views').hidden &&
		document.getElementById('members-body').children.length === 0 &&
		document.getElementById('sessions-body').children.length === 0 &&
		document.getElementById('events-body').children.length === 0 &&
		document.getElementById('policy-access_ttl').value === '' &&
		document.getElementById('signin-status').textContent.includes('Signed out')`)

	b.checkNoIssues()

	if os.Getenv("SESSIOND_UPDATE_SCREENSHOTS") == "1" && final != "" {
		png, err := os.ReadFile(final)
		if err != nil {
			t.Fatal(err)
		}
		dst := filepath.Join("..", "docs", "images", "console.png")
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst, png, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("screenshot copied to %s", dst)
	}
}
