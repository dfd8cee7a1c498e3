package client

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Error codes of docs/api.md#errors, as Error.Code holds them.
const (
	CodeBadRequest           = "bad_request"
	CodeUnauthenticated      = "unauthenticated"
	CodeNotFound             = "not_found"
	CodeMethodNotAllowed     = "method_not_allowed"
	CodeConflict             = "conflict"
	CodeSessionLimit         = "session_limit_exceeded"
	CodeGone                 = "gone"
	CodePayloadTooLarge      = "payload_too_large"
	CodeUnsupportedMediaType = "unsupported_media_type"
	CodeLocked               = "account_locked"
	CodeRateLimited          = "rate_limited"
	CodeUnavailable          = "unavailable"
	CodeInternal             = "internal"
)

// Sentinels for errors.Is: an *Error matches the one of its code.
var (
	ErrBadRequest           = errors.New("sessiond: " + CodeBadRequest)
	ErrUnauthenticated      = errors.New("sessiond: " + CodeUnauthenticated)
	ErrNotFound             = errors.New("sessiond: " + CodeNotFound)
	ErrMethodNotAllowed     = errors.New("sessiond: " + CodeMethodNotAllowed)
	ErrConflict             = errors.New("sessiond: " + CodeConflict)
	ErrSessionLimit         = errors.New("sessiond: " + CodeSessionLimit)
	ErrGone                 = errors.New("sessiond: " + CodeGone)
	ErrPayloadTooLarge      = errors.New("sessiond: " + CodePayloadTooLarge)
	ErrUnsupportedMediaType = errors.New("sessiond: " + CodeUnsupportedMediaType)
	ErrLocked               = errors.New("sessiond: " + CodeLocked)
	ErrRateLimited          = errors.New("sessiond: " + CodeRateLimited)
	ErrUnavailable          = errors.New("sessiond: " + CodeUnavailable)
	ErrInternal             = errors.New("sessiond: " + CodeInternal)
)

var sentinels = map[string]error{
	CodeBadRequest:           ErrBadRequest,
	CodeUnauthenticated:      ErrUnauthenticated,
	CodeNotFound:             ErrNotFound,
	CodeMethodNotAllowed:     ErrMethodNotAllowed,
	CodeConflict:             ErrConflict,
	CodeSessionLimit:         ErrSessionLimit,
	CodeGone:                 ErrGone,
	CodePayloadTooLarge:      ErrPayloadTooLarge,
	CodeUnsupportedMediaType: ErrUnsupportedMediaType,
	CodeLocked:               ErrLocked,
	CodeRateLimited:          ErrRateLimited,
	CodeUnavailable:          ErrUnavailable,
	CodeInternal:             ErrInternal,
}

// Error is an error answer of the API.
type Error struct {
	// Status is the HTTP status.
	Status int
	// Code is the API's error code (CodeNotFound, ...). An answer without the
	// error object (a proxy's page) gets the code of its status.
	Code string
	// Message is the server's message.
	Message string
	// RetryAfter is the server's Retry-After (423, 429, 503), else zero.
	RetryAfter time.Duration
	// Sessions lists the user's active sessions with
	// session_limit_exceeded: metadata only, to choose end_sessions from.
	Sessions []Session
	// RequestID is the answer's X-Request-Id: the server logs the request
	// under it.
	RequestID string
}

func (e *Error) Error() string {
	return "sessiond: " + e.Code + ": " + e.Message
}

// Is makes errors.Is(err, ErrNotFound) and the other sentinels work.
func (e *Error) Is(target error) bool {
	s, ok := sentinels[e.Code]
	return ok && s == target
}

// AsError returns the *Error in err's chain, if there is one.
func AsError(err error) (*Error, bool) {
	var e *Error
	ok := errors.As(err, &e)
	return e, ok
}

// IsBadRequest reports a 400 bad_request.
func IsBadRequest(err error) bool { return errors.Is(err, ErrBadRequest) }

// IsUnauthenticated reports a 401: a missing, wrong, expired or revoked
// token, a bad password or a wrong API key.
func IsUnauthenticated(err error) bool { return errors.Is(err, ErrUnauthenticated) }

// IsNotFound reports a 404.
func IsNotFound(err error) bool { return errors.Is(err, ErrNotFound) }

// IsConflict reports a 409 conflict (an email used by another user).
func IsConflict(err error) bool { return errors.Is(err, ErrConflict) }

// IsSessionLimit reports a 409 session_limit_exceeded; the *Error's
// Sessions lists the user's active sessions.
func IsSessionLimit(err error) bool { return errors.Is(err, ErrSessionLimit) }

// IsGone reports a 410 from the event stream: the node no longer holds the
// events asked for.
func IsGone(err error) bool { return errors.Is(err, ErrGone) }

// IsLocked reports a 423 account_locked; RetryAfter says for how long.
func IsLocked(err error) bool { return errors.Is(err, ErrLocked) }

// IsRateLimited reports a 429.
func IsRateLimited(err error) bool { return errors.Is(err, ErrRateLimited) }

// IsUnavailable reports a 503: no leader or quorum in time, a min_index not
// reached, or a node shutting down.
func IsUnavailable(err error) bool { return errors.Is(err, ErrUnavailable) }

// RetryAfter is the Retry-After of an error answer, or zero.
func RetryAfter(err error) time.Duration {
	if e, ok := AsError(err); ok {
		return e.RetryAfter
	}
	return 0
}

type errorBody struct {
	Error *struct {
		Code     string    `json:"code"`
		Message  string    `json:"message"`
		Sessions []Session `json:"sessions"`
	} `json:"error"`
}

// decodeError builds the *Error of a non-2xx answer from its body.
func decodeError(status int, header http.Header, body []byte) *Error {
	e := &Error{Status: status, RetryAfter: parseRetryAfter(header.Get("Retry-After"), time.Now()),
		RequestID: header.Get("X-Request-Id")}
	var b errorBody
	if json.Unmarshal(body, &b) == nil && b.Error != nil && b.Error.Code != "" {
		e.Code, e.Message, e.Sessions = b.Error.Code, b.Error.Message, b.Error.Sessions
		return e
	}
	e.Code = codeForStatus(status)
	e.Message = strings.TrimSpace(string(body))
	if len(e.Message) > 200 || e.Message == "" || strings.HasPrefix(e.Message, "<") {
		e.Message = http.StatusText(status)
	}
	if e.Message == "" {
		e.Message = "HTTP " + strconv.Itoa(status)
	}
	return e
}

func codeForStatus(status int) string {
	switch status {
	case http.StatusBadRequest:
		return CodeBadRequest
	case http.StatusUnauthorized, http.StatusForbidden:
		return CodeUnauthenticated
	case http.StatusNotFound:
		return CodeNotFound
	case http.StatusMethodNotAllowed:
		return CodeMethodNotAllowed
	case http.StatusConflict:
		return CodeConflict
	case http.StatusGone:
		return CodeGone
	case http.StatusRequestEntityTooLarge:
		return CodePayloadTooLarge
	case http.StatusUnsupportedMediaType:
		return CodeUnsupportedMediaType
	case http.StatusLocked:
		return CodeLocked
	case http.StatusTooManyRequests:
		return CodeRateLimited
	case http.StatusServiceUnavailable, http.StatusBadGateway, http.StatusGatewayTimeout:
		return CodeUnavailable
	}
	if status >= 500 {
		return CodeInternal
	}
	return CodeBadRequest
}

// parseRetryAfter reads Retry-After as seconds or an HTTP date.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs <= 0 {
			return 0
		}
		return time.Duration(min(secs, int64(maxRetryAfter/time.Second))) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		return min(max(0, t.Sub(now)), maxRetryAfter)
	}
	return 0
}

// maxRetryAfter caps what a Retry-After can make the client wait.
const maxRetryAfter = 10 * time.Minute
