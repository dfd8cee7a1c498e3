package httpapi

import (
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/sessiond/sessiond/node"
)

// Idempotency-Key: a client that retries a write after an unknown outcome
// (a timeout, a 503) sends the same key again, and the write is applied at
// most once — the key becomes the write's request id, which the state
// machine remembers for its last 16,384 writes. A retried revocation
// answers as the first did; a retried create, login, exchange or refresh
// whose first attempt applied answers 409 conflict, since the tokens went
// to that attempt and are not kept anywhere.

const headerIdempotencyKey = "Idempotency-Key"

// maxIdempotencyKey bounds the key; request ids live in every snapshot.
const maxIdempotencyKey = 64

// validIdempotencyKey accepts 1–64 characters of [A-Za-z0-9_.:-].
func validIdempotencyKey(k string) bool {
	if k == "" || len(k) > maxIdempotencyKey {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if !('A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.' || c == ':') {
			return false
		}
	}
	return true
}

// idempotency attaches a write's Idempotency-Key to its context.
func (s *Server) idempotency(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		key := c.Request().Header.Get(headerIdempotencyKey)
		if key == "" {
			return next(c)
		}
		switch c.Request().Method {
		case http.MethodGet, http.MethodHead, http.MethodOptions:
			return next(c)
		}
		// The key is stored in the Raft log and in snapshots, where no
		// secret may go: a token or an admin key is refused.
		if !validIdempotencyKey(key) || s.isSecret(key) {
			return badRequest("%s must be 1–%d characters of letters, digits and -_.: (and not a token or key)", headerIdempotencyKey, maxIdempotencyKey)
		}
		req := c.Request()
		c.SetRequest(req.WithContext(node.WithIdempotencyKey(req.Context(), key)))
		return next(c)
	}
}
