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
