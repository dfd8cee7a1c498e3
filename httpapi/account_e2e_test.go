package httpapi_test

// The self-service page in a real browser: headless Chromium driven by
// chromedp signs in through the page's own origin, sees its devices, ends
// one, signs out everywhere else and finally ends its own session.
// Screenshots go to $SESSIOND_ARTIFACTS (else a temporary directory);
// with SESSIOND_UPDATE_SCREENSHOTS=1 the three-device view is also copied to
// docs/images/account-sessions.png for the README.

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// chromiumPath finds Debian's chromium for a browser test, or skips the
// test (also in -short mode).
func chromiumPath(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		skipBrowserTest(t, "-short mode")
	}
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	skipBrowserTest(t, "chromium not installed: apt-get install chromium")
	return ""
}

// artifactsDir is where a browser test leaves its screenshots:
// $SESSIOND_ARTIFACTS (made if missing), else a temporary directory.
func artifactsDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("SESSIOND_ARTIFACTS")
	if dir == "" {
		return t.TempDir()
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatalf("artifacts dir: %v", err)
	}
	return dir
}

// headlessChromium are the allocator options of a browser test: the
// chromium at execPath, headless, in a window of the given size.
func headlessChromium(execPath string, width, height int, more ...chromedp.ExecAllocatorOption) []chromedp.ExecAllocatorOption {
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(execPath),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.WindowSize(width, height),
	)
	return append(opts, more...)
}

// skipBrowserTest skips t and, under CI ($SESSIOND_ARTIFACTS set), notes
// the skip in skipped-tests.txt there: go test prints skips only with -v,
// and .ci/run prints that file so that a skipped browser test is seen.
func skipBrowserTest(t *testing.T, reason string) {
	t.Helper()
	if dir := os.Getenv("SESSIOND_ARTIFACTS"); dir != "" {
		if f, err := os.OpenFile(filepath.Join(dir, "skipped-tests.txt"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644); err == nil {
			fmt.Fprintf(f, "%s skipped: %s\n", t.Name(), reason)
			f.Close()
		}
	}
	t.Skip(reason)
}

// browserTest is one headless Chromium tab on a test server.
type browserTest struct {
	t   *testing.T
	ctx context.Context
	dir string // where screenshots go
}

// do runs actions in the tab, each call bounded in time.
func (b *browserTest) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		b.t.Fatalf("browser: %s: %v", what, err)
	}
}

// eval runs JavaScript in the page (awaiting a promise) and decodes its
// result.
func eval[T any](b *browserTest, what, js string) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](js, chromedp.EvalAwaitPromise))
	if err != nil {
		b.t.Fatalf("browser: %s: %v", what, err)
	}
	return v
}

// screenshot saves a full-page PNG and returns its path.
func (b *browserTest) screenshot(name string) string {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)) // quality 100 is PNG
	if err != nil {
		b.t.Fatalf("browser: screenshot %s: %v", name, err)
	}
	path := filepath.Join(b.dir, name)
	if err := os.WriteFile(path, png, 0o644); err != nil {
		b.t.Fatal(err)
	}
	b.t.Logf("screenshot: %s", path)
	return path
}

// listedDevice is a device as the page shows it.
type listedDevice struct {
	ID      string `json:"id"`
	Current bool   `json:"current"`
	Name    string `json:"name"`
	Text    string `json:"text"`
}

const readDevices = `[...document.querySelectorAll('#sessions > li')].map(li => ({
	id: li.dataset.sessionId,
	current: li.classList.contains('session-current'),
	name: li.querySelector('h3').textContent,
	text: li.innerText,
}))`

func TestAccountPage_EndToEndInChromium(t *testing.T) {
	chromium := chromiumPath(t)
	a := startMe(t, serverSetup{}) // dev-mode cookies on plain HTTP 127.0.0.1
	page := a.base + "/account/sessions"

	dir := artifactsDir(t)
	opts := headlessChromium(chromium, 1024, 900, chromedp.Flag("lang", "en-US"))
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelAlloc()
	ctx, cancel := chromedp.NewContext(allocCtx)
	defer cancel()
	// The first run starts the browser, which lives as long as ctx: no
	// timeout on this one.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start chromium %s: %v", chromium, err)
	}
	b := &browserTest{t: t, ctx: ctx, dir: dir}

	// Any exception or console error (a CSP violation among them) fails the
	// test; failed network loads (a favicon) do not.
	var mu sync.Mutex
	var problems []string
	messages := chromedp.Console(ctx)
	consoleDone := make(chan struct{})
	go func() {
		defer close(consoleDone)
		for m, err := range messages {
			if err != nil {
				return
			}
			if (m.IsException() || m.Type == chromedp.ConsoleError) && m.Source != "network" {
				mu.Lock()
				problems = append(problems, m.String())
				mu.Unlock()
			}
		}
	}()
	defer func() {
		cancel()
		<-consoleDone
		mu.Lock()
		defer mu.Unlock()
		for _, p := range problems {
			t.Errorf("browser console: %s", p)
		}
	}()

	// Not signed in: the page says so.
	b.do("open the page signed out", chromedp.Navigate(page), chromedp.WaitVisible(chromedp.ID("signed-out")))
	if text := eval[string](b, "signed-out text", `document.getElementById('signed-out').innerText`); !strings.Contains(text, "You are not signed in") {
		t.Errorf("signed-out page says %q", text)
	}
	b.screenshot("account-1-signed-out.png")

	// Sign in from the page's origin, as the application's login form would.
	type login struct {
		Status      int    `json:"status"`
		SessionID   string `json:"session_id"`
		AccessToken string `json:"access_token"`
	}
	me := eval[login](b, "log in with cookies", fmt.Sprintf(`fetch('/v1/login?cookie=true', {
		method: 'POST', credentials: 'same-origin',
		headers: {'Content-Type': 'application/json'},
		body: JSON.stringify({email: %q, password: %q, remember_me: true}),
	}).then(async r => { const b = await r.json(); return {status: r.status, session_id: b.session_id, access_token: b.access_token}; })`,
		aliceEmail, alicePassword))
	if me.Status != http.StatusCreated || me.SessionID == "" {
		t.Fatalf("login from the page: %+v", me)
	}

	// Two other devices.
	otherLogin := func(ua, ip string) tokenResponse {
		return a.loginOK(t, "login from another device", map[string]any{
			"user_id": "alice", "password": alicePassword,
			"device": map[string]string{"user_agent": ua, "ip": ip},
		})
	}
	laptop := otherLogin(firefoxLinux, "203.0.113.24")
	phone := otherLogin(safariIPhone, "198.51.100.7")

	// Reload: three devices, newest first, this one marked.
	item := func(id string) chromedp.CSS { return chromedp.CSS(`#sessions > li[data-session-id="` + id + `"]`) }
	b.do("reload with three devices", chromedp.Navigate(page),
		chromedp.WaitVisible(item(me.SessionID)), chromedp.WaitVisible(item(laptop.SessionID)), chromedp.WaitVisible(item(phone.SessionID)))
	devices := eval[[]listedDevice](b, "read the devices", readDevices)
	if len(devices) != 3 || devices[0].ID != phone.SessionID || devices[1].ID != laptop.SessionID || devices[2].ID != me.SessionID {
		t.Fatalf("devices %+v, want phone, laptop, this browser (newest first)", devices)
	}
	for _, d := range devices {
		if d.Current != (d.ID == me.SessionID) || strings.Contains(d.Text, "This device") != d.Current {
			t.Errorf("device %s: current %v, text %q; only %s is this device", d.ID, d.Current, d.Text, me.SessionID)
		}
		if !strings.Contains(d.Text, "End session") {
			t.Errorf("device %s has no End session button: %q", d.ID, d.Text)
		}
	}
	if devices[0].Name != "Safari on iOS" || devices[1].Name != "Firefox on Linux" || !strings.Contains(devices[2].Name, " on Linux") {
		t.Errorf("device names %q, %q, %q", devices[0].Name, devices[1].Name, devices[2].Name)
	}
	for _, want := range []string{"IP address", "203.0.113.24", "Signed in", "Last active", "Expires", "Remember me"} {
		if !strings.Contains(devices[1].Text, want) {
			t.Errorf("the laptop's entry lacks %q: %q", want, devices[1].Text)
		}
	}
	if !strings.Contains(devices[2].Text, "Remember me\nYes") {
		t.Errorf("this device signed in with remember-me: %q", devices[2].Text)
	}
	shot := b.screenshot("account-2-three-devices.png")
	if os.Getenv("SESSIOND_UPDATE_SCREENSHOTS") == "1" {
		docs := filepath.Join("..", "docs", "images")
		data, err := os.ReadFile(shot)
		if err == nil {
			err = os.MkdirAll(docs, 0o755)
		}
		if err == nil {
			err = os.WriteFile(filepath.Join(docs, "account-sessions.png"), data, 0o644)
		}
		if err != nil {
			t.Fatalf("update docs/images/account-sessions.png: %v", err)
		}
		t.Log("updated docs/images/account-sessions.png")
	}

	// On a phone: one column, nothing wider than the screen.
	b.do("phone viewport", chromedp.EmulateViewport(390, 844, chromedp.EmulateScale(2)))
	if fits := eval[bool](b, "no horizontal scrolling", `document.documentElement.scrollWidth <= window.innerWidth`); !fits {
		t.Errorf("the page is wider than a phone's screen")
	}
	b.screenshot("account-2-three-devices-phone.png")
	b.do("desktop viewport", chromedp.EmulateViewport(1024, 900))

	// End the laptop's session: it vanishes, and its token is refused.
	b.do("end the laptop's session", chromedp.Click(chromedp.CSS(`#sessions > li[data-session-id="`+laptop.SessionID+`"] button.end-session`)),
		chromedp.WaitNotPresent(item(laptop.SessionID)))
	a.expectInvalid(t, "the ended laptop session", laptop.AccessToken)
	if got := eval[[]listedDevice](b, "devices after ending one", readDevices); len(got) != 2 {
		t.Errorf("after ending one: %+v", got)
	}
	if status := eval[string](b, "status", `document.getElementById('status').textContent`); !strings.Contains(status, "Firefox on Linux") {
		t.Errorf("status after ending a session: %q", status)
	}
	if focused := eval[string](b, "focus", `document.activeElement.id`); focused != "devices-heading" {
		t.Errorf("focus after ending a session is on %q, want the list's heading", focused)
	}
	b.screenshot("account-3-one-ended.png")

	// Sign out everywhere else: only this device is left.
	b.do("sign out everywhere else", chromedp.Click(chromedp.ID("end-others")), chromedp.WaitNotPresent(item(phone.SessionID)),
		chromedp.WaitVisible(chromedp.ID("only-this")))
	a.expectInvalid(t, "the phone after sign-out everywhere else", phone.AccessToken)
	left := eval[[]listedDevice](b, "devices after sign-out everywhere else", readDevices)
	if len(left) != 1 || left[0].ID != me.SessionID || !left[0].Current {
		t.Fatalf("after sign-out everywhere else: %+v, want only this device", left)
	}
	if hidden := eval[bool](b, "the button is gone", `document.getElementById('end-others').hidden`); !hidden {
		t.Errorf("Sign out everywhere else is still offered with no other device")
	}
	a.expectValid(t, "this browser's session", me.AccessToken)
	b.screenshot("account-4-only-this-device.png")

	// Ending this device's session signs the browser out.
	b.do("end this device's session", chromedp.Click(chromedp.CSS(`#sessions > li[data-session-id="`+me.SessionID+`"] button.end-session`)),
		chromedp.WaitVisible(chromedp.ID("signed-out")))
	a.expectInvalid(t, "this browser's session after ending it", me.AccessToken)
	if cookies := eval[string](b, "cookies", `fetch('/v1/me/sessions', {credentials: 'same-origin'}).then(r => String(r.status))`); cookies != "401" {
		t.Errorf("the browser's cookies still work: %s", cookies)
	}
	b.screenshot("account-5-signed-out.png")
}
