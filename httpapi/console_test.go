package httpapi_test

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/sessiond/sessiond/httpapi"
	"github.com/sessiond/sessiond/node"
)

// consoleStubBackend plays the roles Config.Backend asks for, but serving
// the console touches only the Cluster role's consistency headers: the
// other roles are nil, so any data call would panic, which these tests must
// never reach.
type consoleStubBackend struct {
	httpapi.Sessions
	httpapi.Users
	httpapi.PolicyStore
	consoleStubCluster
}

// consoleStubCluster answers what the consistency headers ask of every
// answer; anything else would panic.
type consoleStubCluster struct{ httpapi.Cluster }

func (consoleStubCluster) AppliedIn(string) (node.Index, error) { return node.Index{N: 7}, nil }
func (consoleStubCluster) LastContact() time.Duration           { return 0 }

const wantConsoleCSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"

func newConsoleServer(t *testing.T) *httptest.Server {
	t.Helper()
	cfg := httpapi.Default()
	cfg.Backend = consoleStubBackend{}
	cfg.APIKeys = []string{consoleKey}
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	api, err := httpapi.New(cfg)
	if err != nil {
		t.Fatalf("new API: %v", err)
	}
	srv := httptest.NewServer(api.Handler())
	t.Cleanup(srv.Close)
	return srv
}

type consoleAnswer struct {
	status int
	header http.Header
	body   string
}

func consoleGet(t *testing.T, srv *httptest.Server, method, path string, hdrs ...string) consoleAnswer {
	t.Helper()
	req, err := http.NewRequest(method, srv.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdrs); i += 2 {
		req.Header.Set(hdrs[i], hdrs[i+1])
	}
	client := &http.Client{
		Timeout:       10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	res, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("%s %s: reading the body: %v", method, path, err)
	}
	return consoleAnswer{status: res.StatusCode, header: res.Header, body: string(b)}
}

func checkConsoleSecurityHeaders(t *testing.T, what string, h http.Header) {
	t.Helper()
	for name, want := range map[string]string{
		"Content-Security-Policy": wantConsoleCSP,
		"X-Frame-Options":         "DENY",
		"Referrer-Policy":         "no-referrer",
		"X-Content-Type-Options":  "nosniff",
	} {
		if got := h.Get(name); got != want {
			t.Errorf("%s: %s = %q, want %q", what, name, got, want)
		}
	}
}

func TestConsole_PageServedWithSecurityHeaders(t *testing.T) {
	srv := newConsoleServer(t)
	for _, path := range []string{"/ui/", "/ui/index.html"} {
		r := consoleGet(t, srv, http.MethodGet, path)
		if r.status != http.StatusOK {
			t.Fatalf("GET %s: %d %s", path, r.status, r.body)
		}
		checkConsoleSecurityHeaders(t, "GET "+path, r.header)
		if got := r.header.Get("Content-Type"); got != "text/html; charset=utf-8" {
			t.Errorf("GET %s: Content-Type %q", path, got)
		}
		if got := r.header.Get("Cache-Control"); got != "no-store" {
			t.Errorf("GET %s: Cache-Control %q, want no-store", path, got)
		}
		if !strings.Contains(r.body, `<script src="console.js" defer></script>`) ||
			!strings.Contains(r.body, `<link rel="stylesheet" href="console.css">`) {
			t.Errorf("GET %s: the page does not load console.js and console.css", path)
		}
	}

	head := consoleGet(t, srv, http.MethodHead, "/ui/")
	if head.status != http.StatusOK || head.body != "" {
		t.Errorf("HEAD /ui/: %d with %d bytes", head.status, len(head.body))
	}
	checkConsoleSecurityHeaders(t, "HEAD /ui/", head.header)
}

func TestConsole_RedirectsToSlash(t *testing.T) {
	srv := newConsoleServer(t)
	r := consoleGet(t, srv, http.MethodGet, "/ui")
	if r.status != http.StatusMovedPermanently || r.header.Get("Location") != "/ui/" {
		t.Fatalf("GET /ui: %d Location %q, want 301 to /ui/", r.status, r.header.Get("Location"))
	}
}

func TestConsole_AssetsHaveContentTypes(t *testing.T) {
	srv := newConsoleServer(t)
	for path, ctype := range map[string]string{
		"/ui/console.js":  "text/javascript; charset=utf-8",
		"/ui/console.css": "text/css; charset=utf-8",
	} {
		r := consoleGet(t, srv, http.MethodGet, path)
		if r.status != http.StatusOK {
			t.Fatalf("GET %s: %d", path, r.status)
		}
		if got := r.header.Get("Content-Type"); got != ctype {
			t.Errorf("GET %s: Content-Type %q, want %q", path, got, ctype)
		}
		checkConsoleSecurityHeaders(t, "GET "+path, r.header)
		etag := r.header.Get("ETag")
		if etag == "" || r.header.Get("Cache-Control") != "no-cache" {
			t.Errorf("GET %s: ETag %q, Cache-Control %q: want a tag and no-cache", path, etag, r.header.Get("Cache-Control"))
			continue
		}
		again := consoleGet(t, srv, http.MethodGet, path, "If-None-Match", etag)
		if again.status != http.StatusNotModified || again.body != "" {
			t.Errorf("GET %s with If-None-Match: %d, want 304 without a body", path, again.status)
		}
	}
	for _, path := range []string{"/ui/nothing.js", "/ui/console/console.js", "/ui/../go.mod"} {
		r := consoleGet(t, srv, http.MethodGet, path)
		if r.status != http.StatusNotFound {
			t.Errorf("GET %s: %d, want 404", path, r.status)
		}
	}
	if r := consoleGet(t, srv, http.MethodPost, "/ui/"); r.status != http.StatusMethodNotAllowed {
		t.Errorf("POST /ui/: %d, want 405", r.status)
	}
}

// The console's files are public, its data is not: the API it calls still
// wants the key.
func TestConsole_DataCallsNeedTheKey(t *testing.T) {
	srv := newConsoleServer(t)
	for _, path := range []string{"/v1/cluster", "/v1/policy", "/v1/events", "/v1/users/alice/sessions"} {
		if r := consoleGet(t, srv, http.MethodGet, path); r.status != http.StatusUnauthorized {
			t.Errorf("GET %s without a key: %d, want 401", path, r.status)
		}
	}
}

// The page keeps the admin key in memory only, inserts API data as text,
// and needs nothing from elsewhere: checked on the files as served from
// the binary.
func TestConsole_SourcesKeepTheKeyInMemory(t *testing.T) {
	srv := newConsoleServer(t)
	html := consoleGet(t, srv, http.MethodGet, "/ui/").body
	js := consoleGet(t, srv, http.MethodGet, "/ui/console.js").body
	css := consoleGet(t, srv, http.MethodGet, "/ui/console.css").body
	if len(js) < 1000 || len(css) < 500 {
		t.Fatalf("console.js (%d bytes) or console.css (%d bytes) look empty", len(js), len(css))
	}
	for _, banned := range []string{"localStorage", "sessionStorage", "document.cookie", "indexedDB",
		"innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function",
		"history.pushState", "history.replaceState", "location.hash", "location.search"} {
		if strings.Contains(js, banned) {
			t.Errorf("console.js uses %s", banned)
		}
	}
	for name, src := range map[string]string{"index.html": html, "console.js": js, "console.css": css} {
		if m := regexp.MustCompile(`(?i)(https?:)?//[a-z0-9.-]+\.[a-z]{2,}/`).FindString(src); m != "" {
			t.Errorf("%s refers to another origin: %q", name, m)
		}
		if strings.Contains(src, "@import") || strings.Contains(src, "@font-face") {
			t.Errorf("%s imports styles or fonts", name)
		}
	}
	// No inline script, style or event handler in the page: the CSP would
	// block them.
	if m := regexp.MustCompile(`(?i)<script(\s[^>]*)?>`).FindAllString(html, -1); len(m) != 1 || !strings.Contains(m[0], `src="console.js"`) {
		t.Errorf("the page has scripts %q, want only console.js", m)
	}
	for _, re := range []string{`(?i)<style`, `(?i)\sstyle=`, `(?i)\son[a-z]+=`, `(?i)javascript:`} {
		if m := regexp.MustCompile(re).FindString(html); m != "" {
			t.Errorf("the page has inline code or style: %q", m)
		}
	}
	// The key's field has no name, so even a form submitted without the
	// script could not put it into a URL.
	if m := regexp.MustCompile(`<input id="signin-key"[^>]*>`).FindString(html); m == "" || strings.Contains(m, "name=") || !strings.Contains(m, `type="password"`) {
		t.Errorf("the key field %q must be an unnamed password field", m)
	}
	// Every form control has a label.
	for _, id := range regexp.MustCompile(`<(?:input|select)[^>]*\sid="([^"]+)"`).FindAllStringSubmatch(html, -1) {
		if !strings.Contains(html, `<label for="`+id[1]+`"`) {
			t.Errorf("the control %s has no <label for>", id[1])
		}
	}
}
