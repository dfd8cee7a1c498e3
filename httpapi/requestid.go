package httpapi

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/sessiond/sessiond/node"
)

// Request ids. Every request gets one: the caller's X-Request-Id when it is
// 1–64 characters of [A-Za-z0-9._-], else a new random one. It is sent back
// in the X-Request-Id answer header and appears in the request's log lines,
// so that a client's report, a proxy's log and sessiond's log can be
// matched. An incoming id that is, or looks like, a secret (a session token,
// an admin key) is replaced, so that it never reaches a log line.

const (
	headerRequestID = "X-Request-Id"
	maxRequestIDLen = 64
)

// assignRequestID picks the request's id and sets it as the answer header,
// where requestIDOf finds it. It runs before the handler.
func (s *Server) assignRequestID(c echo.Context) string {
	id := c.Request().Header.Get(headerRequestID)
	if !validRequestID(id) || s.isSecret(id) {
		id = newRequestID()
	}
	// Not also in echo's context store, which costs a map per request.
	c.Response().Header()[headerRequestID] = []string{id}
	return id
}

// requestIDOf is the id assigned to the request ("" before assignment).
func requestIDOf(c echo.Context) string {
	if v := c.Response().Header()[headerRequestID]; len(v) > 0 {
		return v[0]
	}
	return ""
}

func validRequestID(id string) bool {
	if id == "" || len(id) > maxRequestIDLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		switch b := id[i]; {
		case 'a' <= b && b <= 'z', 'A' <= b && b <= 'Z', '0' <= b && b <= '9', b == '.', b == '_', b == '-':
		default:
			return false
		}
	}
	return true
}

// isSecret reports whether an incoming id is a session token (by its
// prefix) or one of the admin keys.
func (s *Server) isSecret(id string) bool {
	if strings.HasPrefix(id, node.AccessTokenPrefix) || strings.HasPrefix(id, node.RefreshTokenPrefix) {
		return true
	}
	h := sha256.Sum256([]byte(id))
	match := 0
	for i := range s.keys {
		match |= subtle.ConstantTimeCompare(h[:], s.keys[i][:])
	}
	return match == 1
}

// newRequestID is 16 random bytes in hex.
func newRequestID() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
