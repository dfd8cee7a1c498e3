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
// a session over a deny limit is a *SessionLimitError. Everything is
// decided in the group of the user's home region; failures for an unknown
// identifier are counted in this node's own region's group.
func (n *Node) Login(ctx context.Context, req LoginRequest) (_ Issued, err error) {
	defer func() { n.metrics.login(err) }()
	key := req.loginKey()
	g, user, found, err := n.findLoginUser(ctx, req)
	if err != nil {
		return Issued{}, err
	}
	now := n.now()
	lockKeys := []string{key}
	if found {
		lockKeys = append(lockKeys, fsm.LoginByUser+string(user.ID))
	}
	if g.fsm.LockedUntil(now, lockKeys...) != 0 {
		// An unlock acknowledged through another node may not have reached
		// this one: confirm with the leader before refusing.
		if err := g.confirm(ctx); err != nil {
			return Issued{}, err
		}
		now = n.now()
		if until := g.fsm.LockedUntil(now, lockKeys...); until != 0 {
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
		n.recordFailure(ctx, g, key, user.ID)
		return Issued{}, fsm.ErrUnauthenticated
	}
	create := req.Session
	create.UserID = user.ID
	create.AuthMethod = events.AuthPassword
	create.loginID = key
	create.credentialVersion = user.CredentialVersion
	return n.createSession(ctx, home{raftGroup: g}, create)
}

// findLoginUser looks the login's user up, in the group of its home
// region, which it returns (this node's own region's group for a user it
// cannot find). A user this node does not know may have been created
// through another node a moment ago: the node confirms with the leader
// and looks once more.
func (n *Node) findLoginUser(ctx context.Context, req LoginRequest) (*raftGroup, fsm.User, bool, error) {
	g := n.raftGroup
	if n.cfg.regional() {
		id := req.UserID
		if req.Email != "" {
			owner, err := n.emailOwner(ctx, strings.ToLower(req.Email))
			if err != nil || owner == "" {
				return g, fsm.User{}, false, err
			}
			id = owner
		}
		home, err := n.homeGroup(ctx, id, false)
		if errors.Is(err, errNoHome) {
			return g, fsm.User{}, false, nil
		}
		if err != nil {
			return g, fsm.User{}, false, err
		}
		g = home.raftGroup
	}
	lookup := func() (fsm.User, bool) {
		if req.Email != "" {
			return g.fsm.UserByEmail(strings.ToLower(req.Email))
		}
		return g.fsm.User(req.UserID)
	}
	if u, ok := lookup(); ok {
		return g, u, true, nil
	}
	if err := g.confirm(ctx); err != nil {
		return g, fsm.User{}, false, err
	}
	u, ok := lookup()
	return g, u, ok, nil
}

// emailOwner is the user the directory lists with an email ("" for
// none), confirmed with the global group's leader when this node's replica
// lists nobody.
func (n *Node) emailOwner(ctx context.Context, email string) (events.UserID, error) {
	if id, ok := n.global.fsm.EmailOwner(email); ok {
		return id, nil
	}
	if err := n.global.confirm(ctx); err != nil {
		return "", err
	}
	if id, ok := n.global.fsm.EmailOwner(email); ok {
		return id, nil
	}
	return n.legacyEmailOwner(ctx, email)
}

// legacyEmailOwner is the user holding an email in the group a
// single-region cluster's data became, while its users are not all in the
// directory yet ("" otherwise).
func (n *Node) legacyEmailOwner(ctx context.Context, email string) (events.UserID, error) {
	lg := n.pendingLegacyGroup()
	if lg == nil {
		return "", nil
	}
	if err := lg.confirm(ctx); err != nil {
		return "", err
	}
	u, _ := lg.fsm.UserByEmail(email)
	return u.ID, nil
}

// recordFailure replicates a failed login for the lockout. The caller's
// answer is 401 whatever happens here.
func (n *Node) recordFailure(ctx context.Context, g *raftGroup, key string, user events.UserID) {
	// Written even when this node's policy has lockout off: the node may not
	// have applied a policy that turned it on. The state machine decides.
	ev := &events.LoginFailed{LoginID: key, UserID: user}
	res, _, err := n.writeHome(ctx, user, home{raftGroup: g}, func(*raftGroup) events.Event { return ev })
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
	// Region is the user's home region; "" lets the user's first write set
	// it (this node's region). A user's home, once set, stays: moving it is
	// ErrHomeMove for now.
	Region string
}

// ErrHomeMove: the request names another home region than the user's.
// Moving a user's home is not done yet (docs/regions.md).
var ErrHomeMove = errors.New("moving a user to another home region is not supported yet")

// ErrUnknownRegion: the request names a region this cluster does not have.
var ErrUnknownRegion = errors.New("no such region in this cluster")

// SetUser stores a user's email and password (hashed here). Replacing an
// existing password counts as a password change for the policy. With
// regions, a new email is first claimed in the directory, so that no two
// users anywhere share one, and the credentials go to the user's home
// region's group.
func (n *Node) SetUser(ctx context.Context, req SetUserRequest) (revoked int, index Index, err error) {
	ev := &events.UserCredentialsSet{UserID: req.UserID, Email: strings.ToLower(req.Email), Reason: events.ReasonPasswordChange}
	if req.Password != "" {
		if ev.PasswordHash, err = n.hash(ctx, req.Password); err != nil {
			return 0, Index{}, err
		}
	}
	if n.cfg.regional() && req.Password == "" {
		// A user with no home has never been written: it is new, and
		// without a password nothing may be written for it, its home
		// neither.
		if _, err := n.homeGroup(ctx, req.UserID, false); errors.Is(err, errNoHome) {
			return 0, Index{}, fmt.Errorf("%w: a new user needs a password", ErrBadRequest)
		}
	}
	h, err := n.userHome(ctx, req.UserID, req.Region)
	if err != nil {
		return 0, Index{}, err
	}
	if req.Email == "" && req.Password == "" {
		// Only the home was asked for (and set, or moved to).
		if _, ok := h.fsm.User(req.UserID); !ok && !n.cfg.regional() {
			return 0, Index{}, fmt.Errorf("%w: a new user needs a password", ErrBadRequest)
		}
		return 0, h.indexOf(h.fsm.AppliedIndex()), nil
	}
	if n.cfg.regional() && ev.Email != "" {
		// An address of a user the import has not listed yet is taken too.
		if owner, err := n.legacyEmailOwner(ctx, ev.Email); err != nil {
			return 0, Index{}, err
		} else if owner != "" && owner != req.UserID {
			return 0, Index{}, ErrEmailInUse
		}
		claimed, err := n.global.write(ctx, &events.EmailClaimed{UserID: req.UserID, Email: ev.Email})
		if err != nil {
			return 0, Index{}, err
		}
		h.directory = claimed.Index
	}
	res, h, err := n.writeHome(ctx, req.UserID, h, func(*raftGroup) events.Event { return ev })
	if errors.Is(err, fsm.ErrInvalid) {
		return 0, Index{}, fmt.Errorf("%w: a new user needs a password", ErrBadRequest)
	}
	if err != nil {
		return 0, Index{}, err
	}
	return res.Count, h.indexOf(res.Index), nil
}

// userHome is the group of a user's home for a write that may set it:
// region names the home the caller wants ("" for any).
func (n *Node) userHome(ctx context.Context, user events.UserID, region string) (home, error) {
	if region == "" {
		return n.homeGroup(ctx, user, true)
	}
	if !n.cfg.regional() {
		if region != n.cfg.Region {
			return home{}, fmt.Errorf("%w: %q (this cluster has one region, %q)", ErrUnknownRegion, region, n.cfg.Region)
		}
		return home{raftGroup: n.raftGroup}, nil
	}
	if g := n.groups[region]; g == nil || !g.isRegionGroup() {
		return home{}, fmt.Errorf("%w: %q (regions: %s)", ErrUnknownRegion, region, strings.Join(n.cfg.Regions, ", "))
	}
	h, err := n.homeGroup(ctx, user, false)
	if errors.Is(err, errNoHome) {
		h, err = n.claimHome(ctx, user, region)
	}
	if err != nil {
		return home{}, err
	}
	if h.name != region {
		if n.pendingLegacyGroup() != nil {
			// The directory does not list every user yet: a move would
			// have no home to change there.
			return home{}, fmt.Errorf("%w: the directory is being built from the single-region data; a home can move once it is done", ErrUnavailable)
		}
		return n.moveHome(ctx, user, h.raftGroup, n.groups[region])
	}
	return h, nil
}

// ErrBadRequest is a request the state machine refused as malformed, with
// the reason in the message.
var ErrBadRequest = errors.New("bad request")

// SetPassword changes (reason ReasonPasswordChange) or resets
// (ReasonPasswordReset) the password of a user with credentials; the policy
// decides whether the user's sessions end.
func (n *Node) SetPassword(ctx context.Context, user events.UserID, newPassword string, reason events.Reason) (int, Index, error) {
	hash, err := n.hash(ctx, newPassword)
	if err != nil {
		return 0, Index{}, err
	}
	g, err := n.existingHome(ctx, user)
	if err != nil {
		return 0, Index{}, err
	}
	ev := &events.UserCredentialsSet{UserID: user, PasswordHash: hash, Reason: reason, MustExist: true}
	res, h, err := n.writeHome(ctx, user, home{raftGroup: g}, func(*raftGroup) events.Event { return ev })
	if err != nil {
		return 0, Index{}, err
	}
	return res.Count, h.indexOf(res.Index), nil
}

// existingHome is the group of a user's home for a write about a user that
// must exist: a user with no home has nothing (fsm.ErrNotFound).
func (n *Node) existingHome(ctx context.Context, user events.UserID) (*raftGroup, error) {
	h, err := n.homeGroup(ctx, user, false)
	if errors.Is(err, errNoHome) {
		return nil, fsm.ErrNotFound
	}
	return h.raftGroup, err
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
// its sessions (fsm.ErrNotFound when there was nothing). With regions the
// user's email is then given back in the directory; the home stays, so a
// user written again later lives where its sessions were.
func (n *Node) DeleteUser(ctx context.Context, user events.UserID) (int, Index, error) {
	g, err := n.existingHome(ctx, user)
	if err != nil {
		return 0, Index{}, err
	}
	res, h, err := n.writeHome(ctx, user, home{raftGroup: g}, func(*raftGroup) events.Event { return &events.UserDeleted{UserID: user} })
	g = h.raftGroup
	if err != nil && !errors.Is(err, fsm.ErrNotFound) {
		return 0, Index{}, err
	}
	deleted := err
	if n.cfg.regional() {
		// Also after ErrNotFound: a retry of a delete whose release failed.
		if _, held := n.global.fsm.UserEmail(user); held {
			if _, err := n.global.write(ctx, &events.EmailClaimed{UserID: user}); err != nil {
				return 0, Index{}, err
			}
		}
	}
	if deleted != nil {
		return 0, Index{}, deleted
	}
	return res.Count, g.index(res.Index), nil
}

// SetUserLimit sets a user's own session limit (0: unlimited), or with nil
// removes it so the policy's applies.
func (n *Node) SetUserLimit(ctx context.Context, user events.UserID, max *int) (Index, error) {
	ev := &events.UserLimitSet{UserID: user, Clear: max == nil}
	if max != nil {
		ev.MaxSessions = *max
	}
	h, err := n.homeGroup(ctx, user, true)
	if err != nil {
		return Index{}, err
	}
	res, h, err := n.writeHome(ctx, user, h, func(*raftGroup) events.Event { return ev })
	if err != nil {
		return Index{}, err
	}
	return h.indexOf(res.Index), nil
}

// Unlock clears a user's lockout (fsm.ErrNotFound for an unknown user).
func (n *Node) Unlock(ctx context.Context, user events.UserID) (Index, error) {
	g, err := n.existingHome(ctx, user)
	if err != nil {
		return Index{}, err
	}
	res, h, err := n.writeHome(ctx, user, home{raftGroup: g}, func(*raftGroup) events.Event { return &events.UserUnlocked{UserID: user} })
	if err != nil {
		return Index{}, err
	}
	return h.indexOf(res.Index), nil
}

// UserInfo is what an admin sees of a user.
type UserInfo struct {
	User        fsm.User
	LockedUntil time.Time // zero when not locked
	// Region is the user's home region; "" in a single-region cluster.
	Region string
}

// User returns a user's record and lockout, if it has a record, as this
// node's replica of the user's home group holds them.
func (n *Node) User(id events.UserID) (UserInfo, bool) {
	g := n.localHome(id)
	if g == nil {
		return UserInfo{}, false
	}
	u, ok := g.fsm.User(id)
	if !ok {
		return UserInfo{}, false
	}
	info := UserInfo{User: u, Region: n.HomeRegion(id)}
	keys := []string{fsm.LoginByUser + string(id)}
	if u.Email != "" {
		keys = append(keys, fsm.LoginByEmail+u.Email)
	}
	if until := g.fsm.LockedUntil(n.now(), keys...); until != 0 {
		info.LockedUntil = time.Unix(0, until)
	}
	return info, true
}

// SetPolicy replaces the replicated policy (checked by the caller and again
// by the state machine). With regions it is written to the global group,
// then into every region's group (regions.go).
func (n *Node) SetPolicy(ctx context.Context, p fsm.Policy) (Index, error) {
	if err := p.Validate(); err != nil {
		return Index{}, fmt.Errorf("%w: %v", ErrBadRequest, err)
	}
	if n.cfg.regional() && n.pendingLegacyGroup() != nil {
		return Index{}, fmt.Errorf("%w: the directory is being built from the single-region data; the policy can change once it is done", ErrUnavailable)
	}
	g := n.policyGroup()
	res, err := g.write(ctx, &events.PolicySet{Policy: p})
	if err != nil {
		return Index{}, err
	}
	if n.cfg.regional() {
		n.pushPolicy(ctx, p)
	}
	return g.index(res.Index), nil
}

// PasswordParams describes the password hashing in use (for the docs and
// the startup log).
func (n *Node) PasswordParams() password.Params { return n.cfg.Passwords.Params() }
