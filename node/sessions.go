package node

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/sessiond/sessiond/events"
	"github.com/sessiond/sessiond/fsm"
)

// CreateRequest asks for a new session. The caller (the HTTP layer) has checked
// every field against docs/api.md#input-limits.
type CreateRequest struct {
	UserID     events.UserID
	App        string
	AuthMethod events.AuthMethod
	RememberMe bool
	Scopes     []string
	Attributes map[string]string
	Device     events.Device
	// EndSessions are sessions of the same user to end in the same step.
	EndSessions []events.SessionID

	// Set by Login only: the identifier and the credential version verified.
	loginID           string
	credentialVersion uint64
}

// Issued is a session with its freshly minted tokens. The tokens exist only
// here and in the answer to the client; the cluster keeps their hashes.
type Issued struct {
	Session      fsm.Session
	AccessToken  string
	RefreshToken string
	Index        Index
}

// CreateSession mints a session id and a token pair and replicates the
// session, in the group of the user's home region (set to this node's
// region by the user's first write, regions.go).
func (n *Node) CreateSession(ctx context.Context, req CreateRequest) (Issued, error) {
	h, err := n.homeGroup(ctx, req.UserID, true)
	if err != nil {
		return Issued{}, err
	}
	return n.createSession(ctx, h, req)
}

// createSession mints and replicates a session of a user homed in h (or,
// when the user's home moves meanwhile, in the new home: its tokens then
// carry that region).
func (n *Node) createSession(ctx context.Context, h home, req CreateRequest) (Issued, error) {
	var access, refresh string
	res, h, err := n.writeHome(ctx, req.UserID, h, func(g *raftGroup) events.Event {
		tag := g.regionTag()
		var accessHash, refreshHash events.TokenHash
		access, accessHash = mintToken(AccessTokenPrefix, tag)
		refresh, refreshHash = mintToken(RefreshTokenPrefix, tag)
		return &events.SessionCreated{
			SessionID:   newSessionID(tag),
			UserID:      req.UserID,
			App:         req.App,
			AuthMethod:  req.AuthMethod,
			RememberMe:  req.RememberMe,
			Scopes:      req.Scopes,
			Attributes:  sortedAttributes(req.Attributes),
			Device:      req.Device,
			AccessHash:  accessHash,
			RefreshHash: refreshHash,

			LoginID:           req.loginID,
			CredentialVersion: req.credentialVersion,
			EndSessions:       sortedIDs(req.EndSessions),
		}
	})
	g := h.raftGroup
	switch {
	case errors.Is(err, fsm.ErrSessionLimit):
		// This node has applied the refused entry: its list is current.
		now := n.now()
		return Issued{}, &SessionLimitError{Sessions: g.fsm.UserSessionsAt(req.UserID, now, g.touches.lastUse), Now: now}
	case errors.Is(err, fsm.ErrLocked):
		// A forwarded write's answer does not carry the time: this node has
		// applied the entry and knows it.
		until := g.fsm.LockedUntil(n.now(), req.loginID, fsm.LoginByUser+string(req.UserID))
		if res != nil {
			until = max(until, res.LockedUntil)
		}
		return Issued{}, n.lockedError(until)
	case err != nil:
		return Issued{}, err
	}
	return Issued{Session: *res.Session, AccessToken: access, RefreshToken: refresh, Index: h.indexOf(res.Index)}, nil
}

func sortedIDs(ids []events.SessionID) []events.SessionID {
	if len(ids) == 0 {
		return nil
	}
	out := slices.Clone(ids)
	slices.Sort(out)
	return slices.Compact(out)
}

// SessionLimitError is a refused session over a limit (deny,
// docs/logins.md#session-limits): it lists the user's active sessions, so the
// caller can pick some to end.
type SessionLimitError struct {
	Sessions []fsm.Session
	// Now is the node's clock when they were listed (their status is judged
	// at it).
	Now int64
}

func (e *SessionLimitError) Error() string { return fsm.ErrSessionLimit.Error() }
func (e *SessionLimitError) Unwrap() error { return fsm.ErrSessionLimit }

// LockedError is a login refused because the account is locked.
type LockedError struct {
	Until time.Time
	// RetryAfter is how long until then, by the node's clock.
	RetryAfter time.Duration
}

func (n *Node) lockedError(until int64) *LockedError {
	return &LockedError{Until: time.Unix(0, until), RetryAfter: time.Duration(until - n.now())}
}

func (e *LockedError) Error() string { return fsm.ErrLocked.Error() }
func (e *LockedError) Unwrap() error { return fsm.ErrLocked }

func sortedAttributes(m map[string]string) []events.Attribute {
	if len(m) == 0 {
		return nil
	}
	out := make([]events.Attribute, 0, len(m))
	for k, v := range m {
		out = append(out, events.Attribute{Key: k, Value: v})
	}
	slices.SortFunc(out, func(a, b events.Attribute) int {
		switch {
		case a.Key < b.Key:
			return -1
		case a.Key > b.Key:
			return 1
		}
		return 0
	})
	return out
}

// Refresh exchanges a refresh token for a new token pair. A rotated refresh
// token presented again revokes the session (fsm.ErrRefreshReuse). The
// write goes to the group holding the session: the one the token was
// minted in, or its user's new home after a move.
func (n *Node) Refresh(ctx context.Context, refreshToken string) (Issued, error) {
	g := n.tokenGroup(refreshToken, RefreshTokenPrefix)
	if g == nil {
		return Issued{}, fsm.ErrUnauthenticated
	}
	presented := events.HashToken(refreshToken)
	var access, refresh string
	holder, res, err := n.writeByToken(ctx, g, presented, func(holder *raftGroup, s fsm.Session, kind fsm.TokenKind, status fsm.Status) (events.Event, error) {
		if kind != fsm.TokenRefresh || s.Revoked() || status == fsm.StatusExpired {
			// Nothing a write could change: no Raft entry for a dead
			// session's token (the endpoint is public).
			return nil, fsm.ErrUnauthenticated
		}
		// The state machine decides at apply time whether the token is
		// still current, so two racing refreshes can never both win.
		tag := holder.regionTag()
		var accessHash, refreshHash events.TokenHash
		access, accessHash = mintToken(AccessTokenPrefix, tag)
		refresh, refreshHash = mintToken(RefreshTokenPrefix, tag)
		return &events.SessionRefreshed{
			SessionID:      s.ID(),
			PresentedHash:  presented,
			NewAccessHash:  accessHash,
			NewRefreshHash: refreshHash,
			LastUsedAt:     holder.touches.lastUse(s.ID()),
		}, nil
	})
	if err != nil {
		return Issued{}, err
	}
	return Issued{Session: *res.Session, AccessToken: access, RefreshToken: refresh, Index: holder.index(res.Index)}, nil
}

// writeByToken looks a token up (lookupHeld) and writes, in the group
// holding its session, the event write makes of what it found; an error
// from write (errNoWrite when there is nothing to do) ends it instead. A
// write refused because the session's user is moving finishes the move and
// is made again where the session went.
func (n *Node) writeByToken(ctx context.Context, g *raftGroup, h events.TokenHash,
	write func(holder *raftGroup, s fsm.Session, kind fsm.TokenKind, status fsm.Status) (events.Event, error)) (*raftGroup, *fsm.Result, error) {
	for range maxMoveHops {
		holder, s, kind, status, err := n.lookupHeld(ctx, g, h)
		if err != nil {
			return holder, nil, err
		}
		ev, err := write(holder, s, kind, status)
		if err != nil {
			return holder, nil, err
		}
		res, err := holder.write(ctx, ev)
		if errors.Is(err, fsm.ErrMoved) {
			if _, err := n.finishMove(ctx, s.UserID, holder); err != nil {
				return holder, nil, err
			}
			continue
		}
		return holder, res, err
	}
	return g, nil, fmt.Errorf("%w: the session's home kept moving", ErrUnavailable)
}

// errNoWrite: writeByToken's write function found nothing to write.
var errNoWrite = errors.New("nothing to write")

// lookupHeld looks a token up in g, the group it was minted in, and when
// its session's user moved, where the session is held now (holderOf).
func (n *Node) lookupHeld(ctx context.Context, g *raftGroup, h events.TokenHash) (*raftGroup, fsm.Session, fsm.TokenKind, fsm.Status, error) {
	s, kind, status, err := g.lookupToken(ctx, h)
	if err != nil || kind == fsm.TokenNone {
		return g, s, kind, status, err
	}
	holder, err := n.holderOf(ctx, g, s.UserID)
	if err != nil {
		return g, s, kind, status, err
	}
	if holder == g {
		return g, s, kind, status, nil
	}
	s, kind, status, err = holder.lookupToken(ctx, h)
	return holder, s, kind, status, err
}

// tokenGroup is the group a well-formed token of the given prefix belongs
// to; nil for anything else, which no group knows.
func (n *Node) tokenGroup(token, prefix string) *raftGroup {
	if !wellFormed(token, prefix) {
		return nil
	}
	return n.groupOfToken(token)
}

// anyTokenGroup is tokenGroup for a token of either kind.
func (n *Node) anyTokenGroup(token string) *raftGroup {
	if g := n.tokenGroup(token, AccessTokenPrefix); g != nil {
		return g
	}
	return n.tokenGroup(token, RefreshTokenPrefix)
}

// lookupToken finds the session holding a token, for a write that acts
// on it or an introspection. A token this node does not know may have been minted through
// another node a moment ago (or this node may be a leader that has just
// been deposed): rather than answer 401 from a lagging state, the node
// confirms with the leader and catches up (a read barrier) and looks once
// more. When no leader confirms in time the answer is ErrUnavailable, not a
// 401 it cannot vouch for. Known tokens cost nothing extra.
func (g *raftGroup) lookupToken(ctx context.Context, h events.TokenHash) (fsm.Session, fsm.TokenKind, fsm.Status, error) {
	now := g.node.now()
	s, kind, status := g.fsm.LookupToken(h, now)
	if kind != fsm.TokenNone {
		return s, kind, g.withLocalUse(s, kind, h, status, now), nil
	}
	if err := g.confirm(ctx); err != nil {
		return s, kind, status, err
	}
	now = g.node.now()
	s, kind, status = g.fsm.LookupToken(h, now)
	return s, kind, g.withLocalUse(s, kind, h, status, now), nil
}

// now is the node's clock, in Unix nanoseconds.
func (n *Node) now() int64 { return n.cfg.Clock().UnixNano() }

// Now is the node's clock: the "now" its reads are judged at.
func (n *Node) Now() time.Time { return n.cfg.Clock() }

// Validate checks an access token as this node may vouch for it: the
// session if the token is active, else fsm.ErrUnauthenticated. The node
// answers from its own state of the token's group only while that state is
// fresh (Vouch with MaxStale); and since a token it does not know may have
// been minted through another node a moment ago, it answers 401 for one
// only after confirming with the group's leader. Either confirmation
// failing is ErrUnavailable, never a 401 the node cannot vouch for.
func (n *Node) Validate(ctx context.Context, accessToken string) (fsm.Session, error) {
	g := n.tokenGroup(accessToken, AccessTokenPrefix)
	if g == nil {
		return fsm.Session{}, fsm.ErrUnauthenticated
	}
	return n.validateIn(ctx, g, accessToken, 0)
}

// validateIn is Validate in group g; a session whose user moved is judged
// where it is held now (holderOf), hops moves on.
func (n *Node) validateIn(ctx context.Context, g *raftGroup, accessToken string, hops int) (fsm.Session, error) {
	if !g.fresh.within(n.cfg.MaxStale) {
		if err := g.confirm(ctx); err != nil {
			return fsm.Session{}, err
		}
	}
	h := events.HashToken(accessToken)
	now := n.now()
	s, status := g.fsm.ValidateAccess(h, now)
	if s == nil {
		if err := g.confirm(ctx); err != nil {
			return fsm.Session{}, err
		}
		now = n.now()
		if s, status = g.fsm.ValidateAccess(h, now); s == nil {
			return fsm.Session{}, fsm.ErrUnauthenticated
		}
	}
	if hops < maxMoveHops {
		holder, err := n.holderOf(ctx, g, s.UserID)
		if err != nil {
			return fsm.Session{}, err
		}
		if holder != g {
			return n.validateIn(ctx, holder, accessToken, hops+1)
		}
	}
	if idle := s.IdleTimeout(); idle > 0 {
		// A use seen here and not replicated yet may keep it alive; this
		// validation is a use too.
		if status != fsm.StatusActive {
			status = s.AccessStatusOf(h, now, g.touches.lastUse(s.ID()))
		}
		if status == fsm.StatusActive {
			g.touches.record(s.ID(), now, idle)
		}
	}
	if status != fsm.StatusActive {
		return fsm.Session{}, fsm.ErrUnauthenticated
	}
	return *s, nil
}

// withLocalUse judges a token's status again counting this node's own
// unreplicated uses of its session (idle timeout).
func (g *raftGroup) withLocalUse(s fsm.Session, kind fsm.TokenKind, h events.TokenHash, status fsm.Status, now int64) fsm.Status {
	if status != fsm.StatusExpired || s.IdleTimeout() == 0 {
		return status
	}
	used := g.touches.lastUse(s.ID())
	switch kind {
	case fsm.TokenAccess:
		return s.AccessStatusOf(h, now, used)
	case fsm.TokenRefresh:
		return s.RefreshStatusAt(h, now, used)
	}
	return status
}

// TokenInfo is what introspection reports about a token.
type TokenInfo struct {
	Session fsm.Session
	Kind    fsm.TokenKind
	Status  fsm.Status
}

// Introspect finds a token of either kind as this node may vouch for it:
// like Validate, from a fresh state of the group holding its session, and
// an unknown token only after confirming with the group's leader (else
// ErrUnavailable).
func (n *Node) Introspect(ctx context.Context, token string) (TokenInfo, error) {
	g := n.anyTokenGroup(token)
	if g == nil {
		return TokenInfo{Status: fsm.StatusUnknown}, nil
	}
	if !g.fresh.within(n.cfg.MaxStale) {
		if err := g.confirm(ctx); err != nil {
			return TokenInfo{}, err
		}
	}
	_, s, kind, status, err := n.lookupHeld(ctx, g, events.HashToken(token))
	if err != nil {
		return TokenInfo{}, err
	}
	return TokenInfo{Session: s, Kind: kind, Status: status}, nil
}

// Logout revokes the session of an active access token.
func (n *Node) Logout(ctx context.Context, accessToken string) (Index, error) {
	g := n.tokenGroup(accessToken, AccessTokenPrefix)
	if g == nil {
		return Index{}, fsm.ErrUnauthenticated
	}
	h := events.HashToken(accessToken)
	holder, res, err := n.writeByToken(ctx, g, h, func(_ *raftGroup, s fsm.Session, kind fsm.TokenKind, status fsm.Status) (events.Event, error) {
		if kind != fsm.TokenAccess || status != fsm.StatusActive {
			return nil, fsm.ErrUnauthenticated
		}
		return &events.SessionRevoked{SessionID: s.ID(), Scope: events.RevokeWholeSession, Reason: events.ReasonLogout, TokenHash: h}, nil
	})
	if err != nil {
		return Index{}, err
	}
	return holder.index(res.Index), nil
}

// RevokeToken is RFC 7009 revocation: a refresh token ends its session, an
// access token stops only itself. An unknown, expired or already revoked
// token is not an error (RFC 7009 §2.2); the index is then the applied one.
func (n *Node) RevokeToken(ctx context.Context, token string) (Index, error) {
	g := n.anyTokenGroup(token)
	if g == nil {
		return n.appliedIndex(), nil
	}
	h := events.HashToken(token)
	holder, res, err := n.writeByToken(ctx, g, h, func(_ *raftGroup, s fsm.Session, kind fsm.TokenKind, status fsm.Status) (events.Event, error) {
		if status != fsm.StatusActive {
			return nil, errNoWrite
		}
		ev := &events.SessionRevoked{SessionID: s.ID(), Reason: events.ReasonUser, TokenHash: h, Scope: events.RevokeAccessToken}
		if kind == fsm.TokenRefresh {
			ev.Scope = events.RevokeWholeSession
		}
		return ev, nil
	})
	switch {
	case errors.Is(err, errNoWrite):
		return holder.appliedIndex(), nil
	case errors.Is(err, fsm.ErrUnauthenticated) || errors.Is(err, fsm.ErrNotFound):
		// The token stopped being current between the lookup and the apply.
		return holder.index(res.Index), nil
	case err != nil:
		return Index{}, err
	}
	return holder.index(res.Index), nil
}

// RevokeSession revokes a session, or only one of its tokens, by id, in
// the group holding it: the one the id was minted in, or its user's new
// home after a move. The state machine says at apply time whether the
// session exists, so a session created through another node a moment ago
// is found even when this node has not applied it yet.
func (n *Node) RevokeSession(ctx context.Context, id events.SessionID, scope events.RevokeScope, reason events.Reason) (Index, error) {
	g := n.groupOfSession(id)
	if g == nil {
		return Index{}, fsm.ErrNotFound
	}
	for range maxMoveHops {
		holder := g
		s, known := g.fsm.Session(id)
		if known {
			var err error
			if holder, err = n.holderOf(ctx, g, s.UserID); err != nil {
				return Index{}, err
			}
		}
		res, err := holder.write(ctx, &events.SessionRevoked{SessionID: id, Scope: scope, Reason: reason})
		if errors.Is(err, fsm.ErrMoved) {
			// Known to the group that refused it: s is set (the refusal
			// was applied here before the write returned).
			if !known {
				s, _ = holder.fsm.Session(id)
			}
			if _, err := n.finishMove(ctx, s.UserID, holder); err != nil {
				return Index{}, err
			}
			continue
		}
		if err != nil {
			return Index{}, err
		}
		return holder.index(res.Index), nil
	}
	return Index{}, fmt.Errorf("%w: the session's home kept moving", ErrUnavailable)
}

// ForceLogout revokes every active session of a user except one. A user
// with no home region has none: nothing is written.
func (n *Node) ForceLogout(ctx context.Context, user events.UserID, reason events.Reason, except events.SessionID) (int, Index, error) {
	g, err := n.homeGroup(ctx, user, false)
	if errors.Is(err, errNoHome) {
		return 0, n.global.appliedIndex(), nil
	}
	if err != nil {
		return 0, Index{}, err
	}
	ev := &events.UserForceLoggedOut{UserID: user, Reason: reason, Except: except}
	res, g, err := n.writeHome(ctx, user, g, func(*raftGroup) events.Event { return ev })
	if err != nil {
		return 0, Index{}, err
	}
	return res.Count, g.indexOf(res.Index), nil
}

// BulkRevoke revokes every active session created before the given time
// (the zero time means now), only of the given apps when any are named. With
// regions it runs in every region's group at once and reports the sum, and
// the index of this node's own region's write; a region that cannot be
// reached makes it ErrUnavailable (what did apply stays applied: running it
// again revokes the rest).
func (n *Node) BulkRevoke(ctx context.Context, createdBefore time.Time, apps []string) (int, Index, error) {
	var before int64
	if !createdBefore.IsZero() {
		before = createdBefore.UnixNano()
	}
	apps = slices.Clone(apps)
	slices.Sort(apps)
	apps = slices.Compact(apps)
	groups := n.regionGroups()
	type outcome struct {
		res *fsm.Result
		err error
	}
	outcomes := make([]outcome, len(groups))
	var wg sync.WaitGroup
	for i, g := range groups {
		wg.Go(func() {
			res, err := g.write(ctx, &events.SessionsBulkRevoked{CreatedBefore: before, Apps: apps, Reason: events.ReasonBulk})
			outcomes[i] = outcome{res, err}
		})
	}
	wg.Wait()
	count, index := 0, Index{}
	var errs []error
	for i, o := range outcomes {
		if o.err != nil {
			errs = append(errs, fmt.Errorf("group %q: %w", groups[i].name, o.err))
			continue
		}
		count += o.res.Count
		if groups[i] == n.raftGroup || index == (Index{}) {
			index = groups[i].index(o.res.Index)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return count, Index{}, err
	}
	return count, index, nil
}

// Session returns a session by id, whatever its status, as the group
// holding it has it.
func (n *Node) Session(id events.SessionID) (fsm.Session, bool) {
	g := n.groupOfSession(id)
	if g == nil {
		return fsm.Session{}, false
	}
	s, ok := g.fsm.Session(id)
	if !ok {
		return s, false
	}
	if holder := n.localHolder(g, s.UserID); holder != g {
		return holder.fsm.Session(id)
	}
	return s, true
}

// UserSessions lists a user's active sessions, newest first, as this
// node's replica of the user's home group holds them.
func (n *Node) UserSessions(user events.UserID) []fsm.Session {
	g := n.localHome(user)
	if g == nil {
		return nil
	}
	return g.fsm.UserSessionsAt(user, n.now(), g.touches.lastUse)
}

// SessionStatus is a session's status now, counting this node's own
// unreplicated uses for the idle timeout.
func (n *Node) SessionStatus(s fsm.Session) fsm.Status {
	var used int64
	if s.IdleTimeout() > 0 {
		if g := n.groupOfSession(s.ID()); g != nil {
			used = n.localHolder(g, s.UserID).touches.lastUse(s.ID())
		}
	}
	return s.StatusAt(n.now(), used)
}

// Policy is the replicated policy in force (with regions, as the global
// group holds it).
func (n *Node) Policy() fsm.Policy { return n.policyGroup().fsm.Policy() }

// WaitForIndex waits until the local state has applied index in its group,
// or ctx ends. A group this node does not host is ErrUnknownGroup.
func (n *Node) WaitForIndex(ctx context.Context, index Index) error {
	g, ok := n.groups[index.Group]
	if !ok {
		return fmt.Errorf("%w: %q", ErrUnknownGroup, index.Group)
	}
	return g.fsm.WaitForIndex(ctx, index.N)
}
