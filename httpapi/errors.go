package httpapi

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/sessiond/sessiond/fsm"
	"github.com/sessiond/sessiond/node"
)

// Error codes of docs/api.md#errors.
const (
	codeBadRequest       = "bad_request"
	codeUnauthenticated  = "unauthenticated"
	codeNotFound         = "not_found"
	codeMethodNotAllowed = "method_not_allowed"
	codeConflict         = "conflict"
	codePayloadTooLarge  = "payload_too_large"
	codeUnsupportedMedia = "unsupported_media_type"
	codeUnavailable      = "unavailable"
	codeInternal         = "internal"
	codeSessionLimit     = "session_limit_exceeded"
	codeAccountLocked    = "account_locked"
	codeRateLimited      = "rate_limited"
)

// unauthenticatedMessage is the one answer to every authentication failure,
// so that no answer hints at which part was wrong.
const unauthenticatedMessage = "missing or invalid credentials"

// apiError is an error with its HTTP status and API error code.
type apiError struct {
	Status  int
	Code    string
	Message string
	detail  string // logged at debug level, never sent
	// retryAfter, when set, is sent as Retry-After (seconds).
	retryAfter int64
	// sessions, for session_limit_exceeded, lists the user's active
	// sessions inside the error object.
	sessions []sessionJSON
}

func (e *apiError) Error() string { return e.Code + ": " + e.Message }

func badRequest(format string, args ...any) error {
	return &apiError{Status: http.StatusBadRequest, Code: codeBadRequest, Message: fmt.Sprintf(format, args...)}
}

var (
	errUnauthenticated = &apiError{Status: http.StatusUnauthorized, Code: codeUnauthenticated, Message: unauthenticatedMessage}
	errSessionNotFound = &apiError{Status: http.StatusNotFound, Code: codeNotFound, Message: "no such session"}
	errTooLarge        = &apiError{Status: http.StatusRequestEntityTooLarge, Code: codePayloadTooLarge, Message: "request body is larger than 64 KiB"}
)

type errorBody struct {
	Error errorDetail `json:"error"`
}

type errorDetail struct {
	Code     string        `json:"code"`
	Message  string        `json:"message"`
	Sessions []sessionJSON `json:"sessions,omitempty"`
}

// toAPIError maps any error a handler returns to its documented answer
// (docs/api.md#errors).
func toAPIError(err error) *apiError {
	var ae *apiError
	if errors.As(err, &ae) {
		return ae
	}
	var he *echo.HTTPError
	if errors.As(err, &he) {
		switch he.Code {
		case http.StatusNotFound:
			return &apiError{Status: http.StatusNotFound, Code: codeNotFound, Message: "no such route"}
		case http.StatusMethodNotAllowed:
			return &apiError{Status: http.StatusMethodNotAllowed, Code: codeMethodNotAllowed, Message: "method not allowed on this route"}
		case http.StatusRequestEntityTooLarge:
			return errTooLarge
		case http.StatusServiceUnavailable:
			return &apiError{Status: http.StatusServiceUnavailable, Code: codeUnavailable, Message: "request timed out"}
		case http.StatusUnauthorized:
			return errUnauthenticated
		}
		if he.Code >= 400 && he.Code < 500 {
			return &apiError{Status: he.Code, Code: codeBadRequest, Message: fmt.Sprint(he.Message)}
		}
	}
	var tooLarge *http.MaxBytesError
	var duplicate *node.DuplicateError
	var locked *node.LockedError
	var overLimit *node.SessionLimitError
	switch {
	case errors.As(err, &duplicate):
		return &apiError{Status: http.StatusConflict, Code: codeConflict,
			Message: fmt.Sprintf("this Idempotency-Key was already used: the request applied at index %d, and the tokens it issued are not shown again", duplicate.Index)}
	case errors.As(err, &locked):
		return &apiError{Status: http.StatusLocked, Code: codeAccountLocked,
			Message: "too many failed logins: try again later", retryAfter: retryAfterSeconds(locked.RetryAfter)}
	case errors.Is(err, fsm.ErrLocked):
		return &apiError{Status: http.StatusLocked, Code: codeAccountLocked, Message: "too many failed logins: try again later", retryAfter: 1}
	case errors.As(err, &overLimit):
		// Listed as of now on this node; sessions are metadata only.
		list := make([]sessionJSON, 0, len(overLimit.Sessions))
		for _, s := range overLimit.Sessions {
			list = append(list, toSessionJSON(s, fsm.StatusActive)) // listed because active
		}
		return &apiError{Status: http.StatusConflict, Code: codeSessionLimit,
			Message: "session limit reached: end some sessions (end_sessions) or try later", sessions: list}
	case errors.Is(err, fsm.ErrSessionLimit):
		return &apiError{Status: http.StatusConflict, Code: codeSessionLimit, Message: "session limit reached"}
	case errors.Is(err, fsm.ErrEmailInUse):
		return &apiError{Status: http.StatusConflict, Code: codeConflict, Message: "email already used by another user"}
	case errors.Is(err, node.ErrHomeMove):
		return &apiError{Status: http.StatusConflict, Code: codeConflict, Message: err.Error()}
	case errors.Is(err, node.ErrUnknownRegion):
		return &apiError{Status: http.StatusBadRequest, Code: codeBadRequest, Message: err.Error()}
	case errors.Is(err, node.ErrBadRequest):
		return &apiError{Status: http.StatusBadRequest, Code: codeBadRequest, Message: strings.TrimPrefix(err.Error(), node.ErrBadRequest.Error()+": ")}
	case errors.As(err, &tooLarge):
		return errTooLarge
	case errors.Is(err, fsm.ErrUnauthenticated), errors.Is(err, fsm.ErrRefreshReuse):
		return errUnauthenticated
	case errors.Is(err, fsm.ErrNotFound):
		return &apiError{Status: http.StatusNotFound, Code: codeNotFound, Message: "not found"}
	case errors.Is(err, fsm.ErrConflict):
		return &apiError{Status: http.StatusConflict, Code: codeConflict, Message: "conflict: retry the request"}
	case errors.Is(err, fsm.ErrInvalid):
		return &apiError{Status: http.StatusBadRequest, Code: codeBadRequest, Message: "the request breaks a rule of the state machine"}
	case errors.Is(err, node.ErrUnavailable):
		// The detail (which may name cluster addresses) goes to the log at
		// debug level, not to the client.
		return &apiError{Status: http.StatusServiceUnavailable, Code: codeUnavailable,
			Message: "no leader or quorum answered in time; retry", detail: err.Error()}
	}
	return nil
}

// handleError is echo's error handler: every failure leaves as the API's error
// object (docs/api.md#errors). Anything unmapped is a bug and answered 500.
func (s *Server) handleError(err error, c echo.Context) {
	if c.Response().Committed {
		return
	}
	ae := toAPIError(err)
	if ae == nil {
		s.log.Error("unhandled error", "request_id", requestIDOf(c), "route", c.Path(), "method", c.Request().Method, "error", err)
		ae = &apiError{Status: http.StatusInternalServerError, Code: codeInternal, Message: "internal error"}
	}
	if ae.detail != "" {
		s.log.Debug("request failed", "request_id", requestIDOf(c), "route", c.Path(), "status", ae.Status, "detail", ae.detail)
	}
	h := c.Response().Header()
	// No error answer is worth keeping in a cache, and some must not be
	// kept: the 401 of a token check, a session limit listing sessions.
	h[echo.HeaderCacheControl] = []string{"no-store"}
	if ae.retryAfter > 0 {
		h.Set("Retry-After", strconv.FormatInt(ae.retryAfter, 10))
	}
	switch ae.Status {
	case http.StatusServiceUnavailable:
		if ae.retryAfter == 0 {
			h.Set("Retry-After", "1")
		}
	case http.StatusUnauthorized:
		h.Set("WWW-Authenticate", `Bearer realm="sessiond"`)
	}
	body := errorBody{Error: errorDetail{Code: ae.Code, Message: ae.Message, Sessions: ae.sessions}}
	if c.Request().Method == http.MethodHead {
		err = c.NoContent(ae.Status)
	} else {
		err = c.JSON(ae.Status, body)
	}
	if err != nil {
		s.log.Debug("writing error answer failed", "request_id", requestIDOf(c), slog.String("error", err.Error()))
	}
}

// retryAfterSeconds rounds a wait up to whole seconds, at least one.
func retryAfterSeconds(d time.Duration) int64 {
	return max(1, int64((d+time.Second-1)/time.Second))
}
