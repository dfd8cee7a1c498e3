package events

// Event is the payload of an envelope.
type Event interface {
	// EventType is the type byte written in front of the payload.
	EventType() Type
}

// SessionCreated starts a session. The node minted the session id and the
// tokens; only the tokens' hashes are carried. Expiry times are computed by
// the state machine from the replicated policy and the event's time.
type SessionCreated struct {
	SessionID   SessionID   `msgpack:"sid"`
	UserID      UserID      `msgpack:"uid"`
	App         string      `msgpack:"app"`
	AuthMethod  AuthMethod  `msgpack:"method"`
	RememberMe  bool        `msgpack:"remember"`
	Scopes      []string    `msgpack:"scopes"`
	Attributes  []Attribute `msgpack:"attrs"`
	Device      Device      `msgpack:"device"`
	AccessHash  TokenHash   `msgpack:"ah"`
	RefreshHash TokenHash   `msgpack:"rh"`
}

// SessionRefreshed rotates a session's tokens. It applies only if
// PresentedHash is the session's current refresh token; a previous one is
// treated as theft and revokes the session.
type SessionRefreshed struct {
	SessionID      SessionID `msgpack:"sid"`
	PresentedHash  TokenHash `msgpack:"ph"`
	NewAccessHash  TokenHash `msgpack:"ah"`
	NewRefreshHash TokenHash `msgpack:"rh"`
}

// SessionRevoked revokes one session, or only one of its tokens. When
// TokenHash is set the event applies only while that token is still the
// session's current one of the given scope, so a revocation never hits a
// token minted after the caller looked.
type SessionRevoked struct {
	SessionID SessionID   `msgpack:"sid"`
	Scope     RevokeScope `msgpack:"scope"`
	Reason    Reason      `msgpack:"reason"`
	TokenHash TokenHash   `msgpack:"th"`
}

// UserForceLoggedOut revokes every active session of a user, except the one
// named in Except (if any).
type UserForceLoggedOut struct {
	UserID UserID    `msgpack:"uid"`
	Reason Reason    `msgpack:"reason"`
	Except SessionID `msgpack:"except"`
}

// SessionsBulkRevoked revokes every active session created strictly before
// CreatedBefore (Unix nanoseconds; 0, or a time after the event's own, means
// every session created up to and including the event's time), limited to
// Apps when that list is not empty. Apps is sorted.
type SessionsBulkRevoked struct {
	CreatedBefore int64    `msgpack:"before"`
	Apps          []string `msgpack:"apps"`
	Reason        Reason   `msgpack:"reason"`
}

// SessionsExpired removes sessions and tombstones that can no longer be used
// by Until (Unix nanoseconds, never later than the event's time).
type SessionsExpired struct {
	Until int64 `msgpack:"until"`
}

func (*SessionCreated) EventType() Type      { return TypeSessionCreated }
func (*SessionRefreshed) EventType() Type    { return TypeSessionRefreshed }
func (*SessionRevoked) EventType() Type      { return TypeSessionRevoked }
func (*UserForceLoggedOut) EventType() Type  { return TypeUserForceLoggedOut }
func (*SessionsBulkRevoked) EventType() Type { return TypeSessionsBulkRevoked }
func (*SessionsExpired) EventType() Type     { return TypeSessionsExpired }

// SessionOf names the one session an event is about, or "" when it is about
// a user or many sessions.
func SessionOf(ev Event) SessionID {
	switch ev := ev.(type) {
	case *SessionCreated:
		return ev.SessionID
	case *SessionRefreshed:
		return ev.SessionID
	case *SessionRevoked:
		return ev.SessionID
	}
	return ""
}
