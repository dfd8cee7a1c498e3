package fsm

import "github.com/sessiond/sessiond/events"

// Status of a session or of one of its tokens at a given time.
type Status uint8

const (
	StatusUnknown Status = iota
	StatusActive
	StatusExpired
	StatusRevoked
)

// String is the API spelling of the status.
func (s Status) String() string {
	switch s {
	case StatusActive:
		return "active"
	case StatusExpired:
		return "expired"
	case StatusRevoked:
		return "revoked"
	}
	return "unknown"
}

// maxRefreshHistory bounds how many previous refresh-token hashes a session
// remembers for reuse detection. A token older than that is simply unknown.
const maxRefreshHistory = 16

// Session is one session as the state machine holds it. Times are Unix
// nanoseconds. Reads hand out copies; the slices behind Scopes, Attributes
// and the refresh history are shared and must not be modified.
//
// The layout is kept small on purpose (a node holds millions): rarely set
// fields live in a separate, usually absent, sessionExtra.
type Session struct {
	// What validating an access token reads comes first, in one cache line.
	AccessHash      events.TokenHash
	AccessExpiresAt int64
	// ExpiresAt is the absolute end: nothing moves past it.
	ExpiresAt  int64
	flags      sessionFlags
	AuthMethod events.AuthMethod
	RememberMe bool
	extra      *sessionExtra

	ID        events.SessionID
	UserID    events.UserID
	App       string
	UserAgent string
	IP        string

	RefreshHash events.TokenHash

	CreatedAt  int64
	LastSeenAt int64
	// TokensIssuedAt is when the current token pair was minted (creation or
	// the last refresh).
	TokensIssuedAt   int64
	RefreshExpiresAt int64
}

type sessionFlags uint8

const (
	flagRevoked sessionFlags = 1 << iota
	flagAccessRevoked
	flagRefreshRevoked
)

// sessionExtra holds what most sessions lack. Like Session it is never
// modified once attached; a change attaches a new copy.
type sessionExtra struct {
	label        string
	scopes       []string
	attributes   []events.Attribute
	prevRefresh  []events.TokenHash
	revokedAt    int64
	revokeReason events.Reason
}

func (s *Session) ex() *sessionExtra {
	if s.extra == nil {
		return &emptyExtra
	}
	return s.extra
}

var emptyExtra sessionExtra

// Label is the device label given at creation.
func (s *Session) Label() string { return s.ex().label }

// Scopes are the session's scopes (read-only).
func (s *Session) Scopes() []string { return s.ex().scopes }

// Attributes are the session's attributes sorted by key (read-only).
func (s *Session) Attributes() []events.Attribute { return s.ex().attributes }

// Revoked reports whether the whole session was revoked.
func (s *Session) Revoked() bool { return s.flags&flagRevoked != 0 }

// AccessRevoked reports whether the current access token alone was revoked.
func (s *Session) AccessRevoked() bool { return s.flags&flagAccessRevoked != 0 }

// RefreshRevoked reports whether the refresh token alone was revoked.
func (s *Session) RefreshRevoked() bool { return s.flags&flagRefreshRevoked != 0 }

// RevokedAt is when the session was revoked (0 if it was not).
func (s *Session) RevokedAt() int64 { return s.ex().revokedAt }

// RevokeReason is why the session was revoked.
func (s *Session) RevokeReason() events.Reason { return s.ex().revokeReason }

// EndsAt is when no token of the session can be valid any more, revocation
// aside: the later of the two token expiries, capped by the absolute expiry.
// Tombstones of revoked sessions are kept until then.
func (s *Session) EndsAt() int64 {
	end := max(s.AccessExpiresAt, s.RefreshExpiresAt)
	return min(end, s.ExpiresAt)
}

// Status is the session's status at now: active while either token is
// usable; otherwise revoked when a revocation is what took the last usable
// token away (or the whole session was revoked), else expired.
func (s *Session) Status(now int64) Status {
	if s.Revoked() {
		return StatusRevoked
	}
	if now >= s.ExpiresAt {
		return StatusExpired
	}
	accessLive, refreshLive := now < s.AccessExpiresAt, now < s.RefreshExpiresAt
	if (accessLive && !s.AccessRevoked()) || (refreshLive && !s.RefreshRevoked()) {
		return StatusActive
	}
	if (accessLive && s.AccessRevoked()) || (refreshLive && s.RefreshRevoked()) {
		return StatusRevoked
	}
	return StatusExpired
}

// AccessStatus is the status of the session's current access token at now.
func (s *Session) AccessStatus(now int64) Status {
	switch {
	case s.Revoked() || s.AccessRevoked():
		return StatusRevoked
	case now >= s.AccessExpiresAt || now >= s.ExpiresAt:
		return StatusExpired
	}
	return StatusActive
}

// RefreshStatus is the status of the refresh token with hash h at now: the
// current one, or a previous (rotated, so no longer valid) one.
func (s *Session) RefreshStatus(h events.TokenHash, now int64) Status {
	if h != s.RefreshHash {
		if s.hasPreviousRefresh(h) {
			return StatusRevoked
		}
		return StatusUnknown
	}
	switch {
	case s.Revoked() || s.RefreshRevoked():
		return StatusRevoked
	case now >= s.RefreshExpiresAt || now >= s.ExpiresAt:
		return StatusExpired
	}
	return StatusActive
}

func (s *Session) hasPreviousRefresh(h events.TokenHash) bool {
	for _, p := range s.ex().prevRefresh {
		if p == h {
			return true
		}
	}
	return false
}

// withExtra returns a copy of s whose extra is a copy changed by edit.
func (s *Session) withExtra(edit func(*sessionExtra)) *Session {
	c := *s
	e := *s.ex()
	edit(&e)
	c.extra = &e
	return &c
}

// revoked returns a revoked copy of s.
func (s *Session) revoked(at int64, reason events.Reason) *Session {
	c := s.withExtra(func(e *sessionExtra) {
		e.revokedAt = at
		e.revokeReason = reason
	})
	c.flags |= flagRevoked
	return c
}
