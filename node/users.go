package node

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/sessiond/sessiond/events"
	"github.com/sessiond/sessiond/fsm"
	"github.com/sessiond/sessiond/node/password"
)

// Built-in credentials and logins. Passwords are hashed and verified here,
// on the node that received the request, never inside the state machine;
// the events carry the argon2id hash (for a new password) or the
// credential version that was verified (for a login).

// ErrEmailInUse: another user already has this email (409).
var ErrEmailInUse = fsm.ErrEmailInUse

// LoginRequest is a password login. Exactly one of Email and UserID is set;
// the HTTP layer has checked every field.
type LoginRequest struct {
	Email    string
	UserID   events.UserID
	Password string
	Session  CreateRequest // app, remember-me, device, end_sessions
}

// loginKey is the identifier failures are counted under.
func (r LoginRequest) loginKey() string {
	if r.Email != "" {
		return fsm.LoginByEmail + strings.ToLower(r.Email)
	}
	return fsm.LoginByUser + string(r.UserID)
}

// Login verifies a password and creates a session. Every failure that says
// nothing about which part was wrong is fsm.ErrUnauthenticated; a locked
// identifier or account is a *LockedError (even with the right password);
// a session over a deny limit is a *SessionLimitError.
func (n *Node) Login(ctx context.Context, req LoginRequest) (_ Issued, err error) {
	defer func() { n.metrics.login(err) }()
	key := req.loginKey()
	user, found, err := n.findLoginUser(ctx, req)
	if err != nil {
		return Issued{}, err
	}
	now := n.now()
	lockKeys := []string{key}
	if found {
		lockKeys = append(lockKeys, fsm.LoginByUser+string(user.ID))
	}
	if n.fsm.LockedUntil(now, lockKeys...) != 0 {
		// An unlock acknowledged through another node may not have reached
		// this one: confirm with the leader before refusing.
		if err := n.confirm(ctx); err != nil {
			return Issued{}, err
		}
		now = n.now()
		if until := n.fsm.LockedUntil(now, lockKeys...); until != 0 {
			return Issued{}, n.lockedError(until)
		}
	}
	ok := false
	if found && user.PasswordHash != "" {
		ok, err = n.cfg.Passwords.Verify(ctx, user.PasswordHash, req.Password)
		if err != nil && ctx.Err() != nil {
			return Issued{}, fmt.Errorf("%w: password check not done in time", ErrUnavailable)
		}
		if err != nil {
			// A stored hash this build cannot read: refuse, and say so in the log.
			n.log.Error("stored password hash is unreadable", "user_id", string(user.ID), "error", err)
			ok = false
		}
	} else {
		// Unknown users cost what a wrong password costs.
		n.cfg.Passwords.VerifyNothing(ctx, req.Password)
	}
	if !ok {
		n.recordFailure(ctx, key, user.ID)
		return Issued{}, fsm.ErrUnauthenticated
	}
	create := req.Session
	create.UserID = user.ID
	create.AuthMethod = events.AuthPassword
	create.loginID = key
	create.credentialVersion = user.CredentialVersion
	return n.CreateSession(ctx, create)
}

// findLoginUser looks the login's user up. A user this node does not know
// may have been created through another node a moment ago: the node
// confirms with the leader and looks once more.
func (n *Node) findLoginUser(ctx context.Context, req LoginRequest) (fsm.User, bool, error) {
	lookup := func() (fsm.User, bool) {
		if req.Email != "" {
			return n.fsm.UserByEmail(strings.ToLower(req.Email))
		}
		return n.fsm.User(req.UserID)
	}
	if u, ok := lookup(); ok {
		return u, true, nil
	}
	if err := n.confirm(ctx); err != nil {
		return fsm.User{}, false, err
	}
	u, ok := lookup()
	return u, ok, nil
}

// recordFailure replicates a failed login for the lockout. The caller's
// answer is 401 whatever happens here.
func (n *Node) recordFailure(ctx context.Context, key string, user events.UserID) {
	// Written even when this node's policy has lockout off: the node may not
	// have applied a policy that turned it on. The state machine decides.
	res, err := n.write(ctx, &events.LoginFailed{LoginID: key, UserID: user})
	if err != nil {
		n.log.Warn("could not record a failed login", "error", err)
		return
	}
	if res.LockedUntil != 0 {
		n.log.Info("login locked after repeated failures", "until", time.Unix(0, res.LockedUntil).UTC())
	}
}

// SetUserRequest creates a user's built-in credentials or changes them.
type SetUserRequest struct {
	UserID   events.UserID
	Email    string // "" keeps the current one
	Password string // "" keeps the current one (a new user needs one)
}

// SetUser stores a user's email and password (hashed here). Replacing an
// existing password counts as a password change for the policy.
func (n *Node) SetUser(ctx context.Context, req SetUserRequest) (revoked int, index uint64, err error) {
	ev := &events.UserCredentialsSet{UserID: req.UserID, Email: strings.ToLower(req.Email), Reason: events.ReasonPasswordChange}
	if req.Password != "" {
		if ev.PasswordHash, err = n.hash(ctx, req.Password); err != nil {
			return 0, 0, err
		}
	}
	res, err := n.write(ctx, ev)
	if errors.Is(err, fsm.ErrInvalid) {
		return 0, 0, fmt.Errorf("%w: a new user needs a password", ErrBadRequest)
	}
	if err != nil {
		return 0, 0, err
	}
	return res.Count, res.Index, nil
}

// ErrBadRequest is a request the state machine refused as malformed, with
// the reason in the message.
var ErrBadRequest = errors.New("bad request")

// SetPassword changes (reason ReasonPasswordChange) or resets
// (ReasonPasswordReset) the password of a user with credentials; the policy
// decides whether the user's sessions end.
func (n *Node) SetPassword(ctx context.Context, user events.UserID, newPassword string, reason events.Reason) (int, uint64, error) {
	hash, err := n.hash(ctx, newPassword)
	if err != nil {
		return 0, 0, err
	}
	res, err := n.write(ctx, &events.UserCredentialsSet{UserID: user, PasswordHash: hash, Reason: reason, MustExist: true})
	if err != nil {
		return 0, 0, err
	}
	return res.Count, res.Index, nil
}

func (n *Node) hash(ctx context.Context, pw string) (string, error) {
	h, err := n.cfg.Passwords.Hash(ctx, pw)
	if err != nil {
		if ctx.Err() != nil {
			return "", fmt.Errorf("%w: password hashing not done in time", ErrUnavailable)
		}
		return "", err
	}
	return h, nil
}

// DeleteUser removes a user's credentials, limit and lockout and revokes
// its sessions (fsm.ErrNotFound when there was nothing).
func (n *Node) DeleteUser(ctx context.Context, user events.UserID) (int, uint64, error) {
	res, err := n.write(ctx, &events.UserDeleted{UserID: user})
	if err != nil {
		return 0, 0, err
	}
	return res.Count, res.Index, nil
}

// SetUserLimit sets a user's own session limit (0: unlimited), or with nil
// removes it so the policy's applies.
func (n *Node) SetUserLimit(ctx context.Context, user events.UserID, max *int) (uint64, error) {
	ev := &events.UserLimitSet{UserID: user, Clear: max == nil}
	if max != nil {
		ev.MaxSessions = *max
	}
	res, err := n.write(ctx, ev)
	if err != nil {
		return 0, err
	}
	return res.Index, nil
}

// Unlock clears a user's lockout (fsm.ErrNotFound for an unknown user).
func (n *Node) Unlock(ctx context.Context, user events.UserID) (uint64, error) {
	res, err := n.write(ctx, &events.UserUnlocked{UserID: user})
	if err != nil {
		return 0, err
	}
	return res.Index, nil
}

// UserInfo is what an admin sees of a user.
type UserInfo struct {
	User        fsm.User
	LockedUntil time.Time // zero when not locked
}

// User returns a user's record and lockout, if it has a record.
func (n *Node) User(id events.UserID) (UserInfo, bool) {
	u, ok := n.fsm.User(id)
	if !ok {
		return UserInfo{}, false
	}
	info := UserInfo{User: u}
	keys := []string{fsm.LoginByUser + string(id)}
	if u.Email != "" {
		keys = append(keys, fsm.LoginByEmail+u.Email)
	}
	if until := n.fsm.LockedUntil(n.now(), keys...); until != 0 {
		info.LockedUntil = time.Unix(0, until)
	}
	return info, true
}

// SetPolicy replaces the replicated policy (checked by the caller and again
// by the state machine).
func (n *Node) SetPolicy(ctx context.Context, p fsm.Policy) (uint64, error) {
	if err := p.Validate(); err != nil {
		return 0, fmt.Errorf("%w: %v", ErrBadRequest, err)
	}
	res, err := n.write(ctx, &events.PolicySet{Policy: p})
	if err != nil {
		return 0, err
	}
	return res.Index, nil
}

// PasswordParams describes the password hashing in use (for the docs and
// the startup log).
func (n *Node) PasswordParams() password.Params { return n.cfg.Passwords.Params() }
