package httpapi

import (
	"context"
	"time"

	"github.com/sessiond/sessiond/events"
	"github.com/sessiond/sessiond/fsm"
	"github.com/sessiond/sessiond/node"
)

// The API reaches the node through four roles, each held by the Server in a
// field of its own, and a handler uses only the roles its routes need:
//
//	Sessions     sessions and their tokens: handlers.go, auth.go, me.go
//	Users        credentials and logins: users.go, the login in auth.go
//	PolicyStore  the replicated policy: policy.go
//	Cluster      membership, readiness and the freshness of this node's
//	             state: cluster.go and the read-consistency policy
//	             (consistency.go)
//
// Two more are optional, found by type assertion on Config.Backend: the
// event stream (EventSource) and the node's own metrics. *node.Node plays
// every role; a test double may leave nil the roles its routes never touch.

// Sessions creates, refreshes, validates and ends sessions, and reads them.
type Sessions interface {
	// CreateSession mints a session and its token pair (admin creation,
	// token exchange).
	CreateSession(ctx context.Context, req node.CreateRequest) (node.Issued, error)
	// Refresh exchanges a refresh token for a new token pair.
	Refresh(ctx context.Context, refreshToken string) (node.Issued, error)
	// Validate checks an access token as this node may vouch for it.
	Validate(ctx context.Context, accessToken string) (fsm.Session, error)
	// Introspect finds a token of either kind as this node may vouch for it.
	Introspect(ctx context.Context, token string) (node.TokenInfo, error)
	// Logout revokes the session of an active access token.
	Logout(ctx context.Context, accessToken string) (node.Index, error)
	// RevokeToken is RFC 7009 revocation.
	RevokeToken(ctx context.Context, token string) (node.Index, error)
	// RevokeSession revokes a session, or only one of its tokens, by id.
	RevokeSession(ctx context.Context, id events.SessionID, scope events.RevokeScope, reason events.Reason) (node.Index, error)
	// ForceLogout revokes every active session of a user except one.
	ForceLogout(ctx context.Context, user events.UserID, reason events.Reason, except events.SessionID) (int, node.Index, error)
	// BulkRevoke revokes every active session created before a time,
	// optionally only of some apps.
	BulkRevoke(ctx context.Context, createdBefore time.Time, apps []string) (int, node.Index, error)
	// Session is a session by id, whatever its status.
	Session(id events.SessionID) (fsm.Session, bool)
	// UserSessions lists a user's active sessions, newest first.
	UserSessions(user events.UserID) []fsm.Session
	// SessionStatus is a session's status now.
	SessionStatus(s fsm.Session) fsm.Status
	// Now is the node's clock: the "now" sessions are judged at.
	Now() time.Time
	// TokenGroup and SessionGroup name the Raft group a token or a session
	// id belongs to, for the read-consistency options ("" for this node's
	// own group).
	TokenGroup(token string) string
	SessionGroup(id events.SessionID) string
}

// Users manages credentials and logs users in.
type Users interface {
	// Login verifies a password and creates a session.
	Login(ctx context.Context, req node.LoginRequest) (node.Issued, error)
	// SetUser stores a user's email and password.
	SetUser(ctx context.Context, req node.SetUserRequest) (int, node.Index, error)
	// SetPassword changes or resets a user's password.
	SetPassword(ctx context.Context, user events.UserID, newPassword string, reason events.Reason) (int, node.Index, error)
	// DeleteUser removes a user's credentials and revokes its sessions.
	DeleteUser(ctx context.Context, user events.UserID) (int, node.Index, error)
	// SetUserLimit sets or (nil) removes a user's own session limit.
	SetUserLimit(ctx context.Context, user events.UserID, max *int) (node.Index, error)
	// Unlock clears a user's lockout.
	Unlock(ctx context.Context, user events.UserID) (node.Index, error)
	// User is a user's record and lockout, if it has a record.
	User(id events.UserID) (node.UserInfo, bool)
	// UserGroup names the Raft group holding a user's state, for the
	// read-consistency options ("" for this node's own group).
	UserGroup(id events.UserID) string
}

// PolicyStore reads and replaces the replicated policy (session lifetimes
// and limits, lockout).
type PolicyStore interface {
	// Policy is the policy in force.
	Policy() fsm.Policy
	// SetPolicy replaces it.
	SetPolicy(ctx context.Context, p fsm.Policy) (node.Index, error)
	// PolicyGroup names the Raft group holding the policy ("" for this
	// node's own group).
	PolicyGroup() string
}

// Cluster is this node's place in the Raft cluster: its members, whether it
// is ready, how far it has applied, and how fresh its state is (what the
// read-consistency policy in consistency.go asks of it).
type Cluster interface {
	// ClusterStatus is this node's view of the cluster.
	ClusterStatus() node.ClusterStatus
	// RemoveMember removes a server from the Raft configuration.
	RemoveMember(ctx context.Context, id string) error
	// Ready reports whether a leader is known and this node has caught up.
	Ready() bool
	// AppliedIndex is the last index applied to the local state of this
	// node's own group.
	AppliedIndex() uint64
	// AppliedIn is the last index applied here in a group ("": this
	// node's own).
	AppliedIn(group string) (node.Index, error)
	// WaitForIndex waits until the local state has applied index in its
	// group, or ctx ends.
	WaitForIndex(ctx context.Context, index node.Index) error
	// LastContact is the time since this node last heard from the leader
	// (zero on the leader, negative when never).
	LastContact() time.Duration
	// ReadBarrierIn makes the local reads of a group ("": this node's
	// own) that follow linearizable.
	ReadBarrierIn(ctx context.Context, group string) (node.Index, error)
	// ReadBarrierForToken and ReadBarrierForSession make the reads of a
	// token's or a session's state that follow linearizable, wherever its
	// user's home moved.
	ReadBarrierForToken(ctx context.Context, token string) (node.Index, error)
	ReadBarrierForSession(ctx context.Context, id events.SessionID) (node.Index, error)
	// VouchIn returns nil when this node may answer a validation from its
	// own state of a group under maxStale, confirming through the group's
	// leader if need be.
	VouchIn(ctx context.Context, group string, maxStale time.Duration) error
	// MaxStale is this node's own staleness bound (--max-stale).
	MaxStale() time.Duration
}

// Backend plays every role: what Config takes, and New splits into the
// roles. *node.Node is one.
type Backend interface {
	Sessions
	Users
	PolicyStore
	Cluster
}

var _ Backend = (*node.Node)(nil)
