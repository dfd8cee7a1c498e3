package httpapi

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"html/template"
	"net/http"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/medama-io/go-useragent"
	"github.com/medama-io/go-useragent/agents"

	"github.com/sessiond/sessiond/fsm"
)

// The self-service page (docs/api.md#endpoints, GET /account/sessions): "your
// devices", this one marked, end one, sign out everywhere else. It is plain
// HTML, CSS and JavaScript embedded in the binary, served with a strict Content
// Security Policy (no inline script or style, nothing from elsewhere, no
// framing); its script calls the /v1/me routes (me.go) with the session cookie
// and the X-Requested-With header.

//go:embed account/account.html account/account.css account/account.js
var accountFiles embed.FS

var accountTemplate = template.Must(template.ParseFS(accountFiles, "account/account.html"))

// accountCSP allows the page its own script, style and API calls only.
const accountCSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; " +
	"connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"

// accountAsset is a static file of the page.
type accountAsset struct {
	body        []byte
	contentType string
	etag        string
}

var accountAssets = func() map[string]accountAsset {
	out := make(map[string]accountAsset)
	for name, ct := range map[string]string{
		"account.css": "text/css; charset=utf-8",
		"account.js":  "text/javascript; charset=utf-8",
	} {
		body, err := accountFiles.ReadFile("account/" + name)
		if err != nil {
			panic("httpapi: embedded asset missing: " + name)
		}
		sum := sha256.Sum256(body)
		out[name] = accountAsset{body: body, contentType: ct, etag: `"` + hex.EncodeToString(sum[:8]) + `"`}
	}
	return out
}()

func (s *Server) accountRoutes(e *echo.Echo) {
	e.GET("/account/sessions", s.accountPage)
	e.GET("/account/assets/:name", s.accountAsset)
}

// accountPageData fills account.html.
type accountPageData struct {
	// State is "signed-in", "signed-out" or "unknown" (the script decides
	// from the API's answer).
	State string
	// LoginURL is Config.AccountLoginURL ("" when not configured).
	LoginURL string
}

// GET /account/sessions: the page. The server judges the session cookie
// only to show the right part at once (and to refresh an expired access
// cookie); the list itself is fetched by the script.
func (s *Server) accountPage(c echo.Context) error {
	data := accountPageData{State: "signed-in", LoginURL: s.cfg.AccountLoginURL}
	if _, err := s.validateCaller(c); err != nil {
		data.State = "unknown"
		if errors.Is(err, fsm.ErrUnauthenticated) || errors.Is(err, fsm.ErrRefreshReuse) {
			data.State = "signed-out"
		}
	}
	var buf bytes.Buffer
	if err := accountTemplate.Execute(&buf, data); err != nil {
		return err
	}
	h := c.Response().Header()
	setPageSecurityHeaders(h)
	h.Set(echo.HeaderCacheControl, "no-store")
	return c.HTMLBlob(http.StatusOK, buf.Bytes())
}

// setPageSecurityHeaders: no framing, no referrer, no sniffing, and the
// page may load and call only its own origin.
func setPageSecurityHeaders(h http.Header) {
	h.Set("Content-Security-Policy", accountCSP)
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
}

// GET /account/assets/:name: the page's script and style sheet, revalidated
// by ETag.
func (s *Server) accountAsset(c echo.Context) error {
	a, ok := accountAssets[c.Param("name")]
	if !ok {
		return echo.ErrNotFound
	}
	h := c.Response().Header()
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set(echo.HeaderCacheControl, "no-cache")
	h.Set("ETag", a.etag)
	h.Set(echo.HeaderContentType, a.contentType)
	// ServeContent answers If-None-Match with 304 and serves HEAD and ranges.
	http.ServeContent(c.Response(), c.Request(), "", time.Time{}, bytes.NewReader(a.body))
	return nil
}

// deviceName is a readable name for a user agent: "Firefox on Linux",
// "Safari on iOS"; for a non-browser client its product name ("curl");
// "Unknown device" when nothing is recognised.
func deviceName(ua string) string {
	if ua == "" {
		return "Unknown device"
	}
	agent := useragent.NewParser().Parse(ua) // built once per process, then shared
	browser, os := string(agent.Browser()), osName(agent.OS())
	switch {
	case browser != "" && os != "":
		return browser + " on " + os
	case browser != "":
		return browser
	case os != "":
		return "Unknown browser on " + os
	}
	if product := productToken(ua); product != "" {
		return product
	}
	return "Unknown device"
}

// osName spells operating systems as their makers do.
func osName(os agents.OS) string {
	if os == agents.OSMacOS {
		return "macOS"
	}
	return string(os)
}

// productToken is the first product name of a user agent ("curl" in
// "curl/8.5.0"), when it is a plain short name.
func productToken(ua string) string {
	name, _, _ := strings.Cut(ua, "/")
	name, _, _ = strings.Cut(name, " ")
	if name == "" || len(name) > 40 || strings.EqualFold(name, "Mozilla") {
		return ""
	}
	for _, r := range name {
		if !('A' <= r && r <= 'Z' || 'a' <= r && r <= 'z' || '0' <= r && r <= '9' || r == '-' || r == '_' || r == '.') {
			return ""
		}
	}
	return name
}
