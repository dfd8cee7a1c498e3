package httpapi

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"
)

// The admin console (/ui/): a static page embedded in the binary. Loading it
// needs no credentials; everything it shows comes from the admin API, which
// the page calls with the key the operator types in (held in a variable of
// the page, nowhere else). The page is plain HTML, CSS and JavaScript with no
// build step, served under a strict Content-Security-Policy: no inline
// script or style, no third-party origin, no framing.

//go:embed console/index.html console/console.js console/console.css
var consoleFiles embed.FS

const consolePrefix = "/ui/"

// consoleCSP allows the page's own script, style and API calls and nothing
// else (data: images for the icon).
const consoleCSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"

// consoleAsset is one embedded file as served.
type consoleAsset struct {
	body        []byte
	contentType string
	etag        string
	// noStore: never cached (the page); the others are revalidated.
	noStore bool
}

// consoleAssets maps a name under /ui/ to its file; "" is the page itself.
var consoleAssets = loadConsoleAssets()

func loadConsoleAssets() map[string]consoleAsset {
	read := func(name, contentType string, noStore bool) consoleAsset {
		b, err := consoleFiles.ReadFile("console/" + name)
		if err != nil {
			panic("httpapi: console asset missing from the build: " + name) // embedded at compile time
		}
		sum := sha256.Sum256(b)
		return consoleAsset{body: b, contentType: contentType, noStore: noStore,
			etag: `"` + hex.EncodeToString(sum[:12]) + `"`}
	}
	index := read("index.html", "text/html; charset=utf-8", true)
	return map[string]consoleAsset{
		"":            index,
		"index.html":  index,
		"console.js":  read("console.js", "text/javascript; charset=utf-8", false),
		"console.css": read("console.css", "text/css; charset=utf-8", false),
	}
}

// consoleRoutes serves the console at /ui/ (and sends /ui there).
func (s *Server) consoleRoutes(e *echo.Echo) {
	methods := []string{http.MethodGet, http.MethodHead}
	e.Match(methods, "/ui", func(c echo.Context) error {
		return c.Redirect(http.StatusMovedPermanently, consolePrefix)
	}, consoleHeaders)
	e.Match(methods, consolePrefix, serveConsole, consoleHeaders)
	e.Match(methods, consolePrefix+":file", serveConsole, consoleHeaders)
}

// consoleHeaders sets the security headers on every answer under /ui,
// errors included.
func consoleHeaders(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		h := c.Response().Header()
		h.Set("Content-Security-Policy", consoleCSP)
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
		h.Set("Cross-Origin-Resource-Policy", "same-origin")
		return next(c)
	}
}

var errConsoleNotFound = &apiError{Status: http.StatusNotFound, Code: codeNotFound, Message: "no such console file"}

func serveConsole(c echo.Context) error {
	a, ok := consoleAssets[c.Param("file")]
	if !ok {
		return errConsoleNotFound
	}
	h := c.Response().Header()
	if a.noStore {
		h.Set("Cache-Control", "no-store")
	} else {
		// Revalidated on every use, so a new binary's files are picked up
		// at once; an unchanged file costs a 304.
		h.Set("Cache-Control", "no-cache")
		h.Set("ETag", a.etag)
		if etagMatches(c.Request().Header.Get("If-None-Match"), a.etag) {
			return c.NoContent(http.StatusNotModified)
		}
	}
	return c.Blob(http.StatusOK, a.contentType, a.body)
}

// etagMatches reports whether an If-None-Match header lists the tag.
func etagMatches(header, etag string) bool {
	for _, t := range strings.Split(header, ",") {
		t = strings.TrimPrefix(strings.TrimSpace(t), "W/")
		if t == etag || t == "*" {
			return true
		}
	}
	return false
}
