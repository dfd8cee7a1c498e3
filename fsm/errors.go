package fsm

import "errors"

// Errors an applied entry or a read can report. They are shared with the
// layers above so that errors.Is works from the FSM to the HTTP answer.
var (
	// ErrNotFound: no such session or user.
	ErrNotFound = errors.New("not found")
	// ErrUnauthenticated: the token is unknown, expired or revoked.
	ErrUnauthenticated = errors.New("unauthenticated")
	// ErrRefreshReuse: a refresh token was used a second time; the session
	// has been revoked as stolen.
	ErrRefreshReuse = errors.New("refresh token reused: session revoked")
	// ErrInvalid: the event's content breaks a rule of its own (an empty id).
	ErrInvalid = errors.New("invalid event")
	// ErrConflict: the session id or a token hash is already in use.
	ErrConflict = errors.New("conflict")
	// ErrEmailInUse: another user already has this email.
	ErrEmailInUse = errors.New("email already used by another user")
	// ErrSessionLimit: a new session would go over the user's or the app's
	// session limit and the policy says deny.
	ErrSessionLimit = errors.New("session limit exceeded")
	// ErrLocked: too many failed logins; the account is locked for a while.
	ErrLocked = errors.New("account locked")
)

// errCode is the compact form of an error kept in the request-id table and
// in snapshots. The numbers are part of the snapshot format.
type errCode uint8

const (
	codeOK errCode = iota
	codeNotFound
	codeUnauthenticated
	codeRefreshReuse
	codeInvalid
	codeConflict
	codeEmailInUse
	codeSessionLimit
	codeLocked
	codeMoved
)

func codeOf(err error) errCode {
	switch {
	case err == nil:
		return codeOK
	case errors.Is(err, ErrNotFound):
		return codeNotFound
	case errors.Is(err, ErrRefreshReuse):
		return codeRefreshReuse
	case errors.Is(err, ErrUnauthenticated):
		return codeUnauthenticated
	case errors.Is(err, ErrConflict):
		return codeConflict
	case errors.Is(err, ErrEmailInUse):
		return codeEmailInUse
	case errors.Is(err, ErrSessionLimit):
		return codeSessionLimit
	case errors.Is(err, ErrLocked):
		return codeLocked
	case errors.Is(err, ErrMoved):
		return codeMoved
	}
	return codeInvalid
}

func (c errCode) err() error {
	switch c {
	case codeOK:
		return nil
	case codeNotFound:
		return ErrNotFound
	case codeUnauthenticated:
		return ErrUnauthenticated
	case codeRefreshReuse:
		return ErrRefreshReuse
	case codeConflict:
		return ErrConflict
	case codeEmailInUse:
		return ErrEmailInUse
	case codeSessionLimit:
		return ErrSessionLimit
	case codeLocked:
		return ErrLocked
	case codeMoved:
		return ErrMoved
	}
	return ErrInvalid
}

// Stable names of the errors, for carrying them between nodes.
var errorNames = map[errCode]string{
	codeNotFound:        "not_found",
	codeUnauthenticated: "unauthenticated",
	codeRefreshReuse:    "refresh_token_reuse",
	codeInvalid:         "invalid",
	codeConflict:        "conflict",
	codeEmailInUse:      "email_in_use",
	codeSessionLimit:    "session_limit_exceeded",
	codeLocked:          "account_locked",
	codeMoved:           "moved",
}

// ErrorName is the stable name of an apply error ("" for nil).
func ErrorName(err error) string { return errorNames[codeOf(err)] }

// ErrorFromName is the inverse of ErrorName; an unknown name is ErrInvalid.
func ErrorFromName(name string) error {
	if name == "" {
		return nil
	}
	for c, n := range errorNames {
		if n == name {
			return c.err()
		}
	}
	return ErrInvalid
}
