package client

import (
	"encoding/json"
	"fmt"
	"time"
)

// The types below encode to JSON with the API's field names, so that
// json.Marshal of an answer reads like the server's answer.

// Session statuses.
const (
	StatusActive  = "active"
	StatusExpired = "expired"
	StatusRevoked = "revoked"
	StatusUnknown = "unknown"
)

// Device describes where a session was opened.
type Device struct {
	UserAgent string `json:"user_agent"`
	IP        string `json:"ip"`
	Label     string `json:"label"`
}

// Session is a session's metadata (never its tokens).
type Session struct {
	SessionID  string `json:"session_id"`
	UserID     string `json:"user_id"`
	App        string `json:"app"`
	AuthMethod string `json:"auth_method"`
	// Status is active, expired, revoked or unknown.
	Status           string            `json:"status"`
	CreatedAt        time.Time         `json:"created_at"`
	LastSeenAt       time.Time         `json:"last_seen_at"`
	AccessExpiresAt  time.Time         `json:"access_expires_at"`
	RefreshExpiresAt time.Time         `json:"refresh_expires_at"`
	ExpiresAt        time.Time         `json:"expires_at"`
	RememberMe       bool              `json:"remember_me"`
	Scopes           []string          `json:"scopes"`
	Attributes       map[string]string `json:"attributes"`
	Device           Device            `json:"device"`
	RevokedAt        *time.Time        `json:"revoked_at,omitempty"`
	RevokeReason     string            `json:"revoke_reason,omitempty"`
	// DeviceName is a readable browser and OS ("Firefox on Linux"), in
	// MySessions only.
	DeviceName string `json:"device_name,omitempty"`
	// Current marks the caller's own session in MySessions.
	Current bool `json:"current,omitempty"`
}

// Tokens is the answer of every call that makes or refreshes a session.
type Tokens struct {
	SessionID    string `json:"session_id"`
	UserID       string `json:"user_id"`
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
	TokenType    string `json:"token_type"`
	// ExpiresIn is the access token's lifetime in seconds (RFC 6749).
	ExpiresIn        int64     `json:"expires_in"`
	AccessExpiresAt  time.Time `json:"access_expires_at"`
	RefreshExpiresAt time.Time `json:"refresh_expires_at"`
	ExpiresAt        time.Time `json:"expires_at"`
	// IssuedTokenType is set by token exchange (RFC 8693).
	IssuedTokenType string `json:"issued_token_type,omitempty"`
	// Index is the Raft index of the write; with regions, its number in the
	// log of the group that applied it (LastIndexes names the group).
	Index uint64 `json:"index"`
}

// CreateSessionRequest is POST /v1/sessions: a session for a user without a
// login (impersonation).
type CreateSessionRequest struct {
	UserID string `json:"user_id"`
	// App defaults to "default" on the server.
	App        string            `json:"app,omitempty"`
	Scopes     []string          `json:"scopes,omitempty"`
	Attributes map[string]string `json:"attributes,omitempty"`
	RememberMe bool              `json:"remember_me,omitempty"`
	Device     *Device           `json:"device,omitempty"`
}

// LoginRequest is POST /v1/login: exactly one of Email and UserID, and the
// password.
type LoginRequest struct {
	Email      string  `json:"email,omitempty"`
	UserID     string  `json:"user_id,omitempty"`
	Password   string  `json:"password"`
	App        string  `json:"app,omitempty"`
	RememberMe bool    `json:"remember_me,omitempty"`
	Device     *Device `json:"device,omitempty"`
	// EndSessions names sessions of the user to end in the same step when
	// the session limit is reached (see Error.Sessions).
	EndSessions []string `json:"end_sessions,omitempty"`
}

// Subject token types accepted by token exchange.
const (
	TokenTypeJWT         = "urn:ietf:params:oauth:token-type:jwt"
	TokenTypeIDToken     = "urn:ietf:params:oauth:token-type:id_token"
	TokenTypeAccessToken = "urn:ietf:params:oauth:token-type:access_token"
)

// ExchangeRequest is POST /v1/token/exchange (RFC 8693 style).
type ExchangeRequest struct {
	SubjectToken string `json:"subject_token"`
	// SubjectTokenType defaults to TokenTypeJWT.
	SubjectTokenType string   `json:"subject_token_type"`
	App              string   `json:"app,omitempty"`
	RememberMe       bool     `json:"remember_me,omitempty"`
	Device           *Device  `json:"device,omitempty"`
	EndSessions      []string `json:"end_sessions,omitempty"`
}

// AuthInfo is what forward auth (GET /v1/auth) answers in headers.
type AuthInfo struct {
	SessionID string    `json:"session_id"`
	UserID    string    `json:"user_id"`
	App       string    `json:"app,omitempty"`
	Scopes    []string  `json:"scopes"`
	ExpiresAt time.Time `json:"expires_at"`
}

// Introspection is RFC 7662's answer plus status, which is present on
// inactive tokens too.
type Introspection struct {
	Active bool
	// Status is active, expired, revoked or unknown.
	Status string
	// TokenType is access_token or refresh_token ("" for unknown tokens).
	TokenType string
	Sub       string // user id
	SID       string // session id
	ClientID  string // app
	Scope     string // space-separated
	IssuedAt  time.Time
	ExpiresAt time.Time
}

type introspectionWire struct {
	Active    bool   `json:"active"`
	Status    string `json:"status"`
	TokenType string `json:"token_type,omitempty"`
	Sub       string `json:"sub,omitempty"`
	SID       string `json:"sid,omitempty"`
	ClientID  string `json:"client_id,omitempty"`
	Scope     string `json:"scope,omitempty"`
	Iat       int64  `json:"iat,omitempty"`
	Exp       int64  `json:"exp,omitempty"`
}

// MarshalJSON writes the RFC 7662 form (iat and exp in Unix seconds).
func (i Introspection) MarshalJSON() ([]byte, error) {
	w := introspectionWire{Active: i.Active, Status: i.Status, TokenType: i.TokenType, Sub: i.Sub,
		SID: i.SID, ClientID: i.ClientID, Scope: i.Scope}
	if !i.IssuedAt.IsZero() {
		w.Iat = i.IssuedAt.Unix()
	}
	if !i.ExpiresAt.IsZero() {
		w.Exp = i.ExpiresAt.Unix()
	}
	return json.Marshal(w)
}

// UnmarshalJSON reads the RFC 7662 form.
func (i *Introspection) UnmarshalJSON(b []byte) error {
	var w introspectionWire
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	*i = Introspection{Active: w.Active, Status: w.Status, TokenType: w.TokenType, Sub: w.Sub,
		SID: w.SID, ClientID: w.ClientID, Scope: w.Scope}
	if w.Iat != 0 {
		i.IssuedAt = time.Unix(w.Iat, 0).UTC()
	}
	if w.Exp != 0 {
		i.ExpiresAt = time.Unix(w.Exp, 0).UTC()
	}
	return nil
}

// Revoked is the answer of bulk revocation, force logout and "sign out
// everywhere else".
type Revoked struct {
	Revoked int    `json:"revoked"`
	Index   uint64 `json:"index"`
}

// BulkRevokeRequest is POST /v1/sessions/revoke.
type BulkRevokeRequest struct {
	// CreatedBefore: sessions created before it are revoked; zero means
	// now (as the leader stamps it).
	CreatedBefore time.Time
	// Apps, when not empty, limits the revocation to these apps.
	Apps []string
}

// Force-logout reasons (docs/api.md#endpoints).
const (
	ReasonAdmin          = "admin"
	ReasonPasswordChange = "password_change"
	ReasonPasswordReset  = "password_reset"
	ReasonUserDeleted    = "user_deleted"
)

// ForceLogoutRequest is DELETE /v1/users/{id}/sessions.
type ForceLogoutRequest struct {
	// Reason is one of the Reason constants; "" means admin.
	Reason string `json:"reason,omitempty"`
	// Except names a session to keep.
	Except string `json:"except,omitempty"`
}

// User is a user's record (never the password hash).
type User struct {
	UserID      string `json:"user_id"`
	Email       string `json:"email,omitempty"`
	HasPassword bool   `json:"has_password"`
	// MaxSessions is the user's own session limit; nil when none is set.
	MaxSessions *int `json:"max_sessions"`
	// LockedUntil is set while logins are locked out.
	LockedUntil *time.Time `json:"locked_until"`
	CreatedAt   time.Time  `json:"created_at"`
	UpdatedAt   time.Time  `json:"updated_at"`
	// Region is the user's home region, whose Raft group holds the user's
	// state; "" in a single-region cluster.
	Region string `json:"region,omitempty"`
}

// SetUserRequest is PUT /v1/users/{id}. A new user needs a password; an
// existing one keeps what is left empty.
type SetUserRequest struct {
	Email    string `json:"email,omitempty"`
	Password string `json:"password,omitempty"`
	// Region sets the user's home region in a cluster with regions; ""
	// leaves it to the user's first write (the region of the node that
	// takes it). A region the cluster lacks answers ErrBadRequest; a user
	// who has another home already answers ErrConflict.
	Region string `json:"region,omitempty"`
}

// Password change reasons.
const (
	PasswordChange = "change"
	PasswordReset  = "reset"
)

// UserChange answers writes to a user: the sessions it revoked (a password
// change under force_logout_on_password_change, a delete).
type UserChange struct {
	UserID  string `json:"user_id"`
	Revoked int    `json:"revoked"`
	Index   uint64 `json:"index"`
}

// UserLimit answers PUT /v1/users/{id}/limits.
type UserLimit struct {
	UserID      string `json:"user_id"`
	MaxSessions *int   `json:"max_sessions"`
	Index       uint64 `json:"index"`
}

// Session-limit behaviours.
const (
	OnLimitDeny        = "deny"
	OnLimitEvictOldest = "evict_oldest"
)

// Policy is the replicated policy (docs/logins.md#policy-settings).
type Policy struct {
	AccessTTL time.Duration
	// RefreshTTL is the effective refresh lifetime; with
	// RefreshTTLFollowsAccess it is 1.5 × AccessTTL and ignored on Put.
	RefreshTTL              time.Duration
	RefreshTTLFollowsAccess bool
	AbsoluteTTL             time.Duration
	// IdleTimeout is the longest time between two uses; 0 is off.
	IdleTimeout    time.Duration
	SlidingRefresh bool
	RememberMeTTL  time.Duration
	// MaxSessionsPerUser is the global limit; 0 is unlimited.
	MaxSessionsPerUser int
	// AppMaxSessions limits sessions per app.
	AppMaxSessions map[string]int
	// OnSessionLimit is OnLimitDeny or OnLimitEvictOldest.
	OnSessionLimit              string
	Lockout                     Lockout
	ForceLogoutOnPasswordChange bool
	RefreshReuseGrace           time.Duration
	// Index is the Raft index of the write that set it (only in answers
	// to SetPolicy).
	Index uint64
}

// Lockout is the policy's login lockout.
type Lockout struct {
	// MaxFailures within Window lock the account for Duration; 0 is off.
	MaxFailures int
	Window      time.Duration
	Duration    time.Duration
}

type policyWire struct {
	AccessTTL                   string         `json:"access_ttl"`
	RefreshTTL                  *string        `json:"refresh_ttl"` // null: follows access_ttl
	RefreshTTLFollowsAccess     bool           `json:"refresh_ttl_follows_access"`
	AbsoluteTTL                 string         `json:"absolute_ttl"`
	IdleTimeout                 string         `json:"idle_timeout"`
	SlidingRefresh              bool           `json:"sliding_refresh"`
	RememberMeTTL               string         `json:"remember_me_ttl"`
	MaxSessionsPerUser          int            `json:"max_sessions_per_user"`
	AppMaxSessions              map[string]int `json:"app_max_sessions"`
	OnSessionLimit              string         `json:"on_session_limit"`
	Lockout                     lockoutWire    `json:"lockout"`
	ForceLogoutOnPasswordChange bool           `json:"force_logout_on_password_change"`
	RefreshReuseGrace           string         `json:"refresh_reuse_grace"`
	Index                       uint64         `json:"index,omitempty"`
}

type lockoutWire struct {
	MaxFailures int    `json:"max_failures"`
	Window      string `json:"window"`
	Duration    string `json:"duration"`
}

// MarshalJSON writes the API's form, as GET /v1/policy answers it:
// durations as Go duration strings, refresh_ttl the effective value (the
// server ignores it while refresh_ttl_follows_access is true). The result
// is a valid PUT body once Index is zero.
func (p Policy) MarshalJSON() ([]byte, error) {
	w := policyWire{
		AccessTTL:                   p.AccessTTL.String(),
		RefreshTTL:                  new(p.RefreshTTL.String()),
		RefreshTTLFollowsAccess:     p.RefreshTTLFollowsAccess,
		AbsoluteTTL:                 p.AbsoluteTTL.String(),
		IdleTimeout:                 p.IdleTimeout.String(),
		SlidingRefresh:              p.SlidingRefresh,
		RememberMeTTL:               p.RememberMeTTL.String(),
		MaxSessionsPerUser:          p.MaxSessionsPerUser,
		AppMaxSessions:              p.AppMaxSessions,
		OnSessionLimit:              p.OnSessionLimit,
		Lockout:                     lockoutWire{MaxFailures: p.Lockout.MaxFailures, Window: p.Lockout.Window.String(), Duration: p.Lockout.Duration.String()},
		ForceLogoutOnPasswordChange: p.ForceLogoutOnPasswordChange,
		RefreshReuseGrace:           p.RefreshReuseGrace.String(),
		Index:                       p.Index,
	}
	if w.AppMaxSessions == nil {
		w.AppMaxSessions = map[string]int{}
	}
	return json.Marshal(w)
}

// UnmarshalJSON reads the API's form.
func (p *Policy) UnmarshalJSON(b []byte) error {
	var w policyWire
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	out := Policy{
		RefreshTTLFollowsAccess:     w.RefreshTTLFollowsAccess,
		SlidingRefresh:              w.SlidingRefresh,
		MaxSessionsPerUser:          w.MaxSessionsPerUser,
		AppMaxSessions:              w.AppMaxSessions,
		OnSessionLimit:              w.OnSessionLimit,
		Lockout:                     Lockout{MaxFailures: w.Lockout.MaxFailures},
		ForceLogoutOnPasswordChange: w.ForceLogoutOnPasswordChange,
		Index:                       w.Index,
	}
	refresh := ""
	if w.RefreshTTL != nil {
		refresh = *w.RefreshTTL
	}
	for _, f := range []struct {
		name string
		v    string
		into *time.Duration
	}{
		{"access_ttl", w.AccessTTL, &out.AccessTTL},
		{"refresh_ttl", refresh, &out.RefreshTTL},
		{"absolute_ttl", w.AbsoluteTTL, &out.AbsoluteTTL},
		{"idle_timeout", w.IdleTimeout, &out.IdleTimeout},
		{"remember_me_ttl", w.RememberMeTTL, &out.RememberMeTTL},
		{"refresh_reuse_grace", w.RefreshReuseGrace, &out.RefreshReuseGrace},
		{"lockout.window", w.Lockout.Window, &out.Lockout.Window},
		{"lockout.duration", w.Lockout.Duration, &out.Lockout.Duration},
	} {
		if f.v == "" {
			continue
		}
		d, err := time.ParseDuration(f.v)
		if err != nil {
			return fmt.Errorf("policy: %s: %w", f.name, err)
		}
		*f.into = d
	}
	*p = out
	return nil
}

// ClusterStatus is one node's view of the cluster (GET /v1/cluster).
type ClusterStatus struct {
	NodeID       string `json:"node_id"`
	Region       string `json:"region"`
	Leader       Leader `json:"leader"`
	RaftState    string `json:"raft_state"`
	Term         uint64 `json:"term"`
	AppliedIndex uint64 `json:"applied_index"`
	CommitIndex  uint64 `json:"commit_index"`
	// LastContactMS is the time since this node last heard from the
	// leader, in milliseconds: 0 on the leader, -1 when it never has.
	LastContactMS int64    `json:"last_contact_ms"`
	Members       []Member `json:"members"`
	// Groups lists every Raft group of a cluster with regions: one per
	// region and the global one, as the answering node sees them. The
	// fields above then describe the group of the node's own region. Nil
	// in a single-region cluster.
	Groups []GroupStatus `json:"groups,omitempty"`
}

// LastContact is LastContactMS as a duration (negative: never).
func (s ClusterStatus) LastContact() time.Duration {
	return time.Duration(s.LastContactMS) * time.Millisecond
}

// GroupStatus is one Raft group as the answering node sees it: a region's
// group or the global one.
type GroupStatus struct {
	// Name is the region, or "global"; an Index of this group names it.
	Name   string `json:"name"`
	Leader Leader `json:"leader"`
	// RaftState is the answering node's state in the group (Leader,
	// Follower, ...): a node votes in its own region's group and is a
	// non-voting replica of the others.
	RaftState    string `json:"raft_state"`
	Term         uint64 `json:"term"`
	AppliedIndex uint64 `json:"applied_index"`
	CommitIndex  uint64 `json:"commit_index"`
	// LastContactMS is the time since the answering node last heard from
	// the group's leader, in milliseconds: 0 on the leader, -1 when it
	// never has.
	LastContactMS int64 `json:"last_contact_ms"`
	// Fresh: the answering node vouches for the group's sessions from its
	// own copy now: it has applied what the group's leader had applied
	// max-stale ago. When false it confirms through the leader, or answers
	// 503.
	Fresh bool `json:"fresh"`
	// Voters and Replicas are the node ids of the group's voters and
	// non-voting replicas.
	Voters   []string `json:"voters"`
	Replicas []string `json:"replicas"`
}

// LastContact is LastContactMS as a duration (negative: never).
func (g GroupStatus) LastContact() time.Duration {
	return time.Duration(g.LastContactMS) * time.Millisecond
}

// Leader names the leader as the answering node knows it.
type Leader struct {
	ID       string `json:"id"`
	RaftAddr string `json:"raft_addr"`
}

// Member is one node of the cluster.
type Member struct {
	ID       string `json:"id"`
	RaftAddr string `json:"raft_addr"`
	HTTPAddr string `json:"http_addr"`
	Region   string `json:"region"`
	Voter    bool   `json:"voter"`
	// InRaft: in the Raft configuration (gossip may show a node not added
	// yet).
	InRaft bool `json:"in_raft"`
	Leader bool `json:"leader"`
	// Status is what gossip says: alive, suspect or dead.
	Status string `json:"status"`
}

// Event is one applied event of GET /v1/events: ids, times, reasons and
// outcomes, never tokens.
type Event struct {
	// Index is the event's Raft index. Writes the leader packed into one
	// log entry share it, so several events in a row can have the same.
	// To resume later with Events(ctx, after, ...), save the Index of an
	// event with EndsIndex: resuming after an index given in part loses the
	// rest of it.
	//
	// EndsIndex is true for the last event of its index (the one the server
	// gave the SSE id).
	Index     uint64 `json:"index"`
	EndsIndex bool   `json:"-"`
	// Type is the event type (SessionCreated, SessionRevoked, ...).
	Type       string    `json:"type"`
	Time       time.Time `json:"time"`
	SessionID  string    `json:"session_id,omitempty"`
	UserID     string    `json:"user_id,omitempty"`
	App        string    `json:"app,omitempty"`
	AuthMethod string    `json:"auth_method,omitempty"`
	Reason     string    `json:"reason,omitempty"`
	Scope      string    `json:"scope,omitempty"`
	// Count is how many sessions the event revoked, removed or touched.
	Count int `json:"count,omitempty"`
	// Error names the rule that refused the event ("" when it applied).
	Error string `json:"error,omitempty"`
	// Duplicate marks a retried write that the state machine had applied
	// already.
	Duplicate bool `json:"duplicate,omitempty"`
}

// Health is the answer of GET /healthz and GET /readyz.
type Health struct {
	Status string `json:"status"`
	// Index is the node's applied index (readyz only).
	Index uint64 `json:"index,omitempty"`
}
