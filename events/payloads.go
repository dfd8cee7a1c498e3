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
	// For password logins: the login identifier (see LoginFailed) and the
	// credential version the node verified. The state machine refuses the
	// login if the account is locked or the password changed since.
	LoginID           string `msgpack:"login"`
	CredentialVersion uint64 `msgpack:"cv"`
	// EndSessions are sessions of the same user to end in the same step
	// (docs/logins.md#session-limits), sorted.
	EndSessions []SessionID `msgpack:"end"`
}

// SessionRefreshed rotates a session's tokens. It applies only if
// PresentedHash is the session's current refresh token; a previous one is
// treated as theft and revokes the session.
type SessionRefreshed struct {
	SessionID      SessionID `msgpack:"sid"`
	PresentedHash  TokenHash `msgpack:"ph"`
	NewAccessHash  TokenHash `msgpack:"ah"`
	NewRefreshHash TokenHash `msgpack:"rh"`
	// LastUsedAt is the latest use of the session the refreshing node knows
	// of (its own uses not yet replicated), for the idle timeout; 0 if none.
	LastUsedAt int64 `msgpack:"used"`
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

// SessionsTouched records when sessions were last used (idle timeout,
// docs/logins.md#idle-timeout). Each node batches the uses it saw; Touches is
// sorted by session id and each time is no later than the event's.
type SessionsTouched struct {
	Touches []Touch `msgpack:"t"`
}

// Touch is one session's latest use seen by a node.
type Touch struct {
	SessionID SessionID `msgpack:"sid"`
	At        int64     `msgpack:"at"`
}

// UserCredentialsSet creates a user's built-in credentials or changes them.
// PasswordHash is an argon2id string ("" keeps the current password). Email
// is lower-cased ("" keeps the current email, or none). Reason is
// ReasonPasswordChange or ReasonPasswordReset when an existing password is
// replaced; the policy decides whether that ends the user's sessions.
type UserCredentialsSet struct {
	UserID       UserID `msgpack:"uid"`
	Email        string `msgpack:"email"`
	PasswordHash string `msgpack:"pw"`
	Reason       Reason `msgpack:"reason"`
	// MustExist makes the event fail with not-found for a user without
	// credentials (password change and reset).
	MustExist bool `msgpack:"must_exist"`
}

// UserDeleted removes a user's credentials, limit and lockout and revokes
// its sessions.
type UserDeleted struct {
	UserID UserID `msgpack:"uid"`
}

// LoginFailed counts a failed login towards lockout. LoginID is the
// identifier the login named ("email:" + lower-cased email, or "user:" +
// user id), counted whether or not such a user exists; UserID, when the
// identifier named an existing user, is counted too, so the account locks
// whichever identifier is used.
type LoginFailed struct {
	LoginID string `msgpack:"login"`
	UserID  UserID `msgpack:"uid"`
}

// UserUnlocked clears a user's lockout (under its user id and its email).
type UserUnlocked struct {
	UserID UserID `msgpack:"uid"`
}

// UserLimitSet sets (or with Clear, removes) a user's own session limit,
// which overrides the policy's max_sessions_per_user; 0 means unlimited.
type UserLimitSet struct {
	UserID      UserID `msgpack:"uid"`
	MaxSessions int    `msgpack:"max"`
	Clear       bool   `msgpack:"clear"`
}

// PolicySet replaces the policy. It applies to sessions created after it.
type PolicySet struct {
	Policy Policy `msgpack:"policy"`
}

func (*SessionCreated) EventType() Type      { return TypeSessionCreated }
func (*SessionRefreshed) EventType() Type    { return TypeSessionRefreshed }
func (*SessionRevoked) EventType() Type      { return TypeSessionRevoked }
func (*UserForceLoggedOut) EventType() Type  { return TypeUserForceLoggedOut }
func (*SessionsBulkRevoked) EventType() Type { return TypeSessionsBulkRevoked }
func (*SessionsExpired) EventType() Type     { return TypeSessionsExpired }
func (*SessionsTouched) EventType() Type     { return TypeSessionsTouched }
func (*UserCredentialsSet) EventType() Type  { return TypeUserCredentialsSet }
func (*UserDeleted) EventType() Type         { return TypeUserDeleted }
func (*LoginFailed) EventType() Type         { return TypeLoginFailed }
func (*UserUnlocked) EventType() Type        { return TypeUserUnlocked }
func (*UserLimitSet) EventType() Type        { return TypeUserLimitSet }
func (*PolicySet) EventType() Type           { return TypePolicySet }

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
