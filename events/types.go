package events

// Type identifies an event's payload type. The numbers are part of the wire
// format: never reuse or renumber one.
type Type uint8

const (
	TypeSessionCreated      Type = 1
	TypeSessionRefreshed    Type = 2
	TypeSessionRevoked      Type = 3
	TypeUserForceLoggedOut  Type = 4
	TypeSessionsExpired     Type = 5
	TypeSessionsBulkRevoked Type = 6
	TypeSessionsTouched     Type = 7
	TypeUserCredentialsSet  Type = 8
	TypeUserDeleted         Type = 9
	TypeLoginFailed         Type = 10
	TypeUserUnlocked        Type = 11
	TypeUserLimitSet        Type = 12
	TypePolicySet           Type = 13
	// 14 is TypeBatch (batch.go), the marker of a batch entry.
	TypeEmailClaimed Type = 15
	TypeUserHomed    Type = 16
	// TypeDirectoryImported lists the users of a single-region cluster's
	// data in the directory, when that cluster is turned into regions.
	TypeDirectoryImported Type = 17
	// Moving a user's home (move.go).
	TypeUserFrozen   Type = 18
	TypeUserImported Type = 19
	TypeHomeMoved    Type = 20
)

// String names the type as the API and logs show it.
func (t Type) String() string {
	switch t {
	case TypeSessionCreated:
		return "SessionCreated"
	case TypeSessionRefreshed:
		return "SessionRefreshed"
	case TypeSessionRevoked:
		return "SessionRevoked"
	case TypeUserForceLoggedOut:
		return "UserForceLoggedOut"
	case TypeSessionsExpired:
		return "SessionsExpired"
	case TypeSessionsBulkRevoked:
		return "SessionsBulkRevoked"
	case TypeSessionsTouched:
		return "SessionsTouched"
	case TypeUserCredentialsSet:
		return "UserCredentialsSet"
	case TypeUserDeleted:
		return "UserDeleted"
	case TypeLoginFailed:
		return "LoginFailed"
	case TypeUserUnlocked:
		return "UserUnlocked"
	case TypeUserLimitSet:
		return "UserLimitSet"
	case TypePolicySet:
		return "PolicySet"
	case TypeEmailClaimed:
		return "EmailClaimed"
	case TypeUserHomed:
		return "UserHomed"
	case TypeDirectoryImported:
		return "DirectoryImported"
	case TypeUserFrozen:
		return "UserFrozen"
	case TypeUserImported:
		return "UserImported"
	case TypeHomeMoved:
		return "HomeMoved"
	case TypeBatch:
		return "Batch"
	}
	return "Unknown"
}

// AuthMethod says how a session was authenticated.
type AuthMethod uint8

const (
	AuthPassword      AuthMethod = 1
	AuthExchange      AuthMethod = 2
	AuthImpersonation AuthMethod = 3
)

// String is the API spelling of the method.
func (m AuthMethod) String() string {
	switch m {
	case AuthPassword:
		return "password"
	case AuthExchange:
		return "exchange"
	case AuthImpersonation:
		return "impersonation"
	}
	return "unknown"
}

// RevokeScope says what a SessionRevoked event revokes.
type RevokeScope uint8

const (
	// RevokeWholeSession ends the session: both tokens stop working.
	RevokeWholeSession RevokeScope = 1
	// RevokeAccessToken stops the current access token only; the session can
	// still be refreshed.
	RevokeAccessToken RevokeScope = 2
	// RevokeRefreshToken stops the refresh token only; the access token works
	// until it expires.
	RevokeRefreshToken RevokeScope = 3
)

// Reason says why a session ended. The numbers are part of the wire format.
type Reason uint8

const (
	ReasonNone Reason = iota
	ReasonLogout
	ReasonAdmin
	ReasonRefreshTokenReuse
	ReasonPasswordChange
	ReasonPasswordReset
	ReasonUserDeleted
	ReasonSessionLimit
	ReasonBulk
	ReasonUser
)

var reasonNames = [...]string{
	ReasonNone:              "",
	ReasonLogout:            "logout",
	ReasonAdmin:             "admin",
	ReasonRefreshTokenReuse: "refresh_token_reuse",
	ReasonPasswordChange:    "password_change",
	ReasonPasswordReset:     "password_reset",
	ReasonUserDeleted:       "user_deleted",
	ReasonSessionLimit:      "session_limit",
	ReasonBulk:              "bulk_revocation",
	ReasonUser:              "user",
}

// String is the API spelling of the reason.
func (r Reason) String() string {
	if int(r) < len(reasonNames) {
		return reasonNames[r]
	}
	return "unknown"
}

// ParseReason reads the API spelling of a reason.
func ParseReason(s string) (Reason, bool) {
	for i, name := range reasonNames {
		if i != 0 && name == s {
			return Reason(i), true
		}
	}
	return ReasonNone, false
}

// Valid reports whether r is a known reason.
func (r Reason) Valid() bool { return int(r) < len(reasonNames) }

// Device describes where a session was made from.
type Device struct {
	UserAgent string `msgpack:"ua"`
	IP        string `msgpack:"ip"`
	Label     string `msgpack:"label"`
}

// Attribute is one key/value pair attached to a session. Events carry
// attributes as a slice sorted by key, never as a map, so that encoding is
// deterministic.
type Attribute struct {
	Key   string `msgpack:"k"`
	Value string `msgpack:"v"`
}
