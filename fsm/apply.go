package fsm

import (
	"cmp"
	"slices"
	"strings"
	"time"

	"github.com/sessiond/sessiond/events"
)

// apply applies one decoded entry at the given index. The caller holds the
// write lock.
func (st *state) apply(index uint64, env events.Envelope) *Result {
	// Event times never go back, whatever the leaders' clocks did.
	now := max(st.lastTime, env.Time)
	st.lastTime = now

	if seen, ok := st.dedup.lookup(env.RequestID); ok {
		res := &Result{Index: seen.Index, Err: seen.Code.err(), Count: int(seen.Count), Duplicate: true}
		if id := events.SessionOf(env.Event); id != "" {
			if s := st.sessions.get(id); s != nil {
				c := *s
				res.Session = &c
			}
		}
		return res
	}

	var res *Result
	if _, frozen := st.frozenUser(env.Event); frozen {
		res = failed(ErrMoved)
		res.Index = index
		st.dedup.remember(dedupEntry{RequestID: env.RequestID, Index: index, Code: codeOf(res.Err)})
		return res
	}
	switch ev := env.Event.(type) {
	case *events.SessionCreated:
		res = st.create(now, ev)
	case *events.SessionRefreshed:
		res = st.refresh(now, ev)
	case *events.SessionRevoked:
		res = st.revoke(now, ev)
	case *events.UserForceLoggedOut:
		res = st.forceLogout(now, ev)
	case *events.SessionsBulkRevoked:
		res = st.bulkRevoke(now, ev)
	case *events.SessionsExpired:
		res = st.expire(now, ev)
	case *events.SessionsTouched:
		res = st.touch(now, ev)
	case *events.UserCredentialsSet:
		res = st.setCredentials(index, now, ev)
	case *events.UserDeleted:
		res = st.deleteUser(now, ev)
	case *events.LoginFailed:
		res = st.loginFailed(now, ev)
	case *events.UserUnlocked:
		res = st.unlock(ev)
	case *events.UserLimitSet:
		res = st.setUserLimit(now, ev)
	case *events.PolicySet:
		res = st.setPolicy(ev)
	case *events.UserHomed:
		res = st.homeUser(ev)
	case *events.EmailClaimed:
		res = st.claimEmail(ev)
	case *events.DirectoryImported:
		res = st.importDirectory(ev)
	case *events.UserFrozen:
		res = st.freezeUser(ev)
	case *events.UserImported:
		res = st.importUser(now, ev)
	case *events.HomeMoved:
		res = st.moveHome(ev)
	default:
		// Decode only returns known types; reaching this is a programming error
		// that must not be skipped silently.
		panic("fsm: no handler for event type " + env.Event.EventType().String())
	}
	res.Index = index
	st.dedup.remember(dedupEntry{RequestID: env.RequestID, Index: index, Code: codeOf(res.Err), Count: uint32(res.Count)})
	return res
}

func failed(err error) *Result { return &Result{Err: err} }

func withSession(s *Session) *Result {
	c := *s
	return &Result{Session: &c}
}

func (st *state) create(now int64, ev *events.SessionCreated) *Result {
	if ev.SessionID == "" || ev.UserID == "" || ev.AccessHash.IsZero() || ev.RefreshHash.IsZero() || ev.AccessHash == ev.RefreshHash {
		return failed(ErrInvalid)
	}
	// Packed first: a field too long to store refuses the event before
	// anything (a lockout, an eviction, end_sessions) has changed.
	text, ok := packText(ev.SessionID, ev.App, ev.Device.UserAgent, ev.Device.IP)
	if !ok {
		return failed(ErrInvalid)
	}
	if st.sessions.get(ev.SessionID) != nil {
		return failed(ErrConflict)
	}
	if st.byAccessHash(ev.AccessHash) != nil || st.byRefreshHash(ev.RefreshHash) != nil {
		return failed(ErrConflict)
	}
	login := ev.AuthMethod == events.AuthPassword && ev.LoginID != ""
	if login {
		if res := st.checkLogin(now, ev); res != nil {
			return res
		}
	}
	evicted, res := st.makeRoom(now, ev)
	if res != nil {
		return res
	}
	if login {
		// A successful login clears the failure count; a refused one (above)
		// changes nothing.
		delete(st.lockouts, LoginByUser+string(ev.UserID))
		delete(st.lockouts, ev.LoginID)
	}
	p := st.policy
	absolute, refreshTTL := p.AbsoluteTTL, p.EffectiveRefreshTTL()
	if ev.RememberMe {
		absolute, refreshTTL = p.RememberMeTTL, p.RememberMeTTL
	}
	expiresAt := now + int64(absolute)
	s := &Session{
		text:             text,
		UserID:           ev.UserID,
		AccessHash:       ev.AccessHash,
		RefreshHash:      ev.RefreshHash,
		CreatedAt:        now,
		LastSeenAt:       now,
		TokensIssuedAt:   now,
		AccessExpiresAt:  min(now+int64(p.AccessTTL), expiresAt),
		RefreshExpiresAt: min(now+int64(refreshTTL), expiresAt),
		ExpiresAt:        expiresAt,
		AuthMethod:       ev.AuthMethod,
		RememberMe:       ev.RememberMe,
		idleSeconds:      uint32(p.IdleTimeout / time.Second),
	}
	if ev.Device.Label != "" || len(ev.Scopes) > 0 || len(ev.Attributes) > 0 {
		s.extra = &sessionExtra{label: ev.Device.Label, scopes: ev.Scopes, attributes: ev.Attributes}
	}
	st.insert(s)
	res = withSession(s)
	res.Count = evicted
	return res
}

// checkLogin applies the rules of a password login at apply time: the
// account is not locked and the password verified is still the current one.
func (st *state) checkLogin(now int64, ev *events.SessionCreated) *Result {
	userKey := LoginByUser + string(ev.UserID)
	until := st.lockedUntil(userKey, now)
	if ev.LoginID != "" {
		until = max(until, st.lockedUntil(ev.LoginID, now))
	}
	if until != 0 {
		return &Result{Err: ErrLocked, LockedUntil: until}
	}
	u := st.users[ev.UserID]
	if u == nil || u.PasswordHash == "" || u.CredentialVersion != ev.CredentialVersion {
		return failed(ErrUnauthenticated)
	}
	return nil
}

// makeRoom applies the session limits (docs/logins.md#session-limits) to a new
// session: first the sessions the request asked to end, then, over a limit,
// either a refusal that changes nothing (deny) or the revocation of the oldest
// sessions (evict_oldest). It returns how many sessions it revoked, or a failed
// result.
func (st *state) makeRoom(now int64, ev *events.SessionCreated) (int, *Result) {
	userLimit := st.policy.MaxSessionsPerUser
	if u := st.users[ev.UserID]; u != nil && u.HasLimit {
		userLimit = u.MaxSessions
	}
	appLimit := st.policy.AppLimit(ev.App)
	if userLimit <= 0 && appLimit <= 0 && len(ev.EndSessions) == 0 {
		return 0, nil // no limit applies: nothing to count
	}
	var ids []events.SessionID
	if u := st.byUser[ev.UserID]; u != nil {
		ids = u.ids
	}
	ending := func(id events.SessionID) bool {
		_, found := slices.BinarySearch(ev.EndSessions, id)
		return found
	}
	// Active sessions that stay, oldest first (ids are in creation order).
	var staying []*Session
	var toEnd []*Session
	for _, id := range ids {
		s := st.sessions.get(id)
		switch {
		case s == nil:
		case ending(id):
			if s.revocable(now) {
				toEnd = append(toEnd, s)
			}
		case s.Status(now) == StatusActive:
			staying = append(staying, s)
		}
	}
	userOver, appOver := overLimits(staying, ev.App, userLimit, appLimit)
	var evict []*Session
	if userOver > 0 || appOver > 0 {
		if st.policy.OnSessionLimit != events.OnLimitEvictOldest {
			return 0, failed(ErrSessionLimit)
		}
		// The oldest sessions of the app first (each also counts toward the
		// user limit), then the oldest of any app: no more than needed.
		evicted := make(map[events.SessionID]bool)
		for _, s := range staying {
			if appOver <= 0 {
				break
			}
			if s.App() == ev.App {
				evict = append(evict, s)
				evicted[s.ID()] = true
				appOver--
				userOver--
			}
		}
		for _, s := range staying {
			if userOver <= 0 {
				break
			}
			if !evicted[s.ID()] {
				evict = append(evict, s)
				userOver--
			}
		}
		// Revoked in creation order, as they were found.
		slices.SortFunc(evict, func(a, b *Session) int {
			if c := cmp.Compare(a.CreatedAt, b.CreatedAt); c != 0 {
				return c
			}
			return strings.Compare(string(a.ID()), string(b.ID()))
		})
	}
	for _, s := range toEnd {
		st.replace(s, s.revoked(now, events.ReasonUser))
	}
	for _, s := range evict {
		st.replace(s, s.revoked(now, events.ReasonSessionLimit))
	}
	return len(toEnd) + len(evict), nil
}

// overLimits says by how many sessions a new one in app would go over the
// user limit and over the app limit (0 or less: within; a limit of 0 is
// none).
func overLimits(active []*Session, app string, userLimit, appLimit int) (userOver, appOver int) {
	if userLimit > 0 {
		userOver = len(active) + 1 - userLimit
	}
	if appLimit > 0 {
		inApp := 0
		for _, s := range active {
			if s.App() == app {
				inApp++
			}
		}
		appOver = inApp + 1 - appLimit
	}
	return userOver, appOver
}

func (st *state) refresh(now int64, ev *events.SessionRefreshed) *Result {
	s := st.sessions.get(ev.SessionID)
	if s == nil {
		return failed(ErrUnauthenticated)
	}
	if ev.NewAccessHash.IsZero() || ev.NewRefreshHash.IsZero() || ev.NewAccessHash == ev.NewRefreshHash {
		return failed(ErrInvalid)
	}
	lastUse := min(ev.LastUsedAt, now)
	x := s.ex()
	var next *Session
	switch {
	case s.holdsLiveRefresh(ev.PresentedHash):
		if s.RefreshStatusAt(ev.PresentedHash, now, lastUse) != StatusActive {
			return failed(ErrUnauthenticated)
		}
		next = s.rotated(ev.PresentedHash, ev.PresentedHash, now, now)
	case s.hasPreviousRefresh(ev.PresentedHash):
		if s.Revoked() {
			return failed(ErrUnauthenticated)
		}
		grace := int64(st.policy.RefreshReuseGrace)
		rotatedAt, ok := int64(0), false
		if grace > 0 {
			if x.parent == ev.PresentedHash && now-x.rotatedAt <= grace {
				rotatedAt, ok = x.rotatedAt, true
			}
			for _, p := range x.pairs {
				if p.parent == ev.PresentedHash && now-p.rotatedAt <= grace {
					rotatedAt, ok = p.rotatedAt, true
				}
			}
		}
		if !ok {
			// A rotated refresh token came back: someone holds a copy. End the
			// session so that neither holder can go on.
			st.replace(s, s.revoked(now, events.ReasonRefreshTokenReuse))
			return &Result{Err: ErrRefreshReuse, Count: 1}
		}
		if s.StatusAt(now, lastUse) != StatusActive || s.RefreshRevoked() || now >= s.RefreshExpiresAt {
			return failed(ErrUnauthenticated)
		}
		// Within the grace (two tabs refreshing at once): a sibling pair.
		next = s.rotated(events.TokenHash{}, ev.PresentedHash, rotatedAt, now)
	default:
		return failed(ErrUnauthenticated)
	}
	if st.byAccessHash(ev.NewAccessHash) != nil || st.byRefreshHash(ev.NewRefreshHash) != nil {
		return failed(ErrConflict)
	}
	p := st.policy
	next.AccessHash = ev.NewAccessHash
	next.RefreshHash = ev.NewRefreshHash
	next.flags &^= flagAccessRevoked
	next.TokensIssuedAt = now
	next.LastSeenAt = now
	next.AccessExpiresAt = min(now+int64(p.AccessTTL), s.ExpiresAt)
	if p.SlidingRefresh {
		ttl := p.EffectiveRefreshTTL()
		if s.RememberMe {
			ttl = p.RememberMeTTL
		}
		next.RefreshExpiresAt = min(now+int64(ttl), s.ExpiresAt)
	}
	st.replace(s, next)
	return withSession(next)
}

// rotated returns a copy of s ready to take a new newest pair (the caller
// sets its hashes and times). used is the live refresh token being rotated
// (zero when a sibling is minted within the grace); parent and rotatedAt
// describe the new pair's origin. The pair that was newest stays live unless
// it is the one rotated; live pairs past maxLivePairs are dropped oldest
// first. Rotated and dropped refresh tokens are remembered, so that their
// reuse is caught.
func (s *Session) rotated(used, parent events.TokenHash, rotatedAt, now int64) *Session {
	return s.withExtra(func(e *sessionExtra) {
		var retired []events.TokenHash
		pairs := make([]tokenPair, 0, len(e.pairs)+1)
		for _, p := range e.pairs {
			if p.refresh == used {
				retired = append(retired, p.refresh)
				continue
			}
			pairs = append(pairs, p)
		}
		if s.RefreshHash == used {
			retired = append(retired, s.RefreshHash)
		} else {
			pairs = append(pairs, tokenPair{
				access: s.AccessHash, refresh: s.RefreshHash, accessExpiresAt: s.AccessExpiresAt,
				issuedAt: s.TokensIssuedAt, accessRevoked: s.AccessRevoked(),
				parent: e.parent, rotatedAt: e.rotatedAt,
			})
		}
		// Pairs are kept oldest first; the oldest go when there are too many.
		slices.SortStableFunc(pairs, func(a, b tokenPair) int { return cmp.Compare(a.issuedAt, b.issuedAt) })
		for len(pairs) > maxLivePairs-1 {
			retired = append(retired, pairs[0].refresh)
			pairs = pairs[1:]
		}
		if len(pairs) == 0 {
			pairs = nil
		}
		e.pairs = pairs
		history := append(slices.Clone(e.prevRefresh), retired...)
		if len(history) > maxRefreshHistory {
			history = history[len(history)-maxRefreshHistory:]
		}
		e.prevRefresh = history
		e.parent, e.rotatedAt = parent, rotatedAt
	})
}

func (st *state) revoke(now int64, ev *events.SessionRevoked) *Result {
	s := st.sessions.get(ev.SessionID)
	if s == nil {
		return failed(ErrNotFound)
	}
	if !ev.Reason.Valid() {
		return failed(ErrInvalid)
	}
	var next *Session
	switch ev.Scope {
	case events.RevokeWholeSession:
		if !ev.TokenHash.IsZero() && !s.holdsAccess(ev.TokenHash) && !s.holdsLiveRefresh(ev.TokenHash) {
			return failed(ErrUnauthenticated)
		}
		if s.Revoked() {
			return withSession(s)
		}
		next = s.revoked(now, ev.Reason)
	case events.RevokeAccessToken:
		if !ev.TokenHash.IsZero() && !s.holdsAccess(ev.TokenHash) {
			return failed(ErrUnauthenticated)
		}
		if !ev.TokenHash.IsZero() && ev.TokenHash != s.AccessHash {
			// An older live pair's access token (refresh grace).
			if s.Revoked() {
				return withSession(s)
			}
			for _, p := range s.ex().pairs {
				if p.access == ev.TokenHash && p.accessRevoked {
					return withSession(s)
				}
			}
			next = s.withExtra(func(e *sessionExtra) {
				e.pairs = slices.Clone(e.pairs)
				for i := range e.pairs {
					if e.pairs[i].access == ev.TokenHash {
						e.pairs[i].accessRevoked = true
					}
				}
			})
			break
		}
		if s.Revoked() || s.AccessRevoked() {
			return withSession(s)
		}
		c := *s
		c.flags |= flagAccessRevoked
		next = &c
	case events.RevokeRefreshToken:
		if !ev.TokenHash.IsZero() && ev.TokenHash != s.RefreshHash {
			return failed(ErrUnauthenticated)
		}
		if s.Revoked() || s.RefreshRevoked() {
			return withSession(s)
		}
		c := *s
		c.flags |= flagRefreshRevoked
		next = &c
	default:
		return failed(ErrInvalid)
	}
	st.replace(s, next)
	res := withSession(next)
	res.Count = 1
	return res
}

func (st *state) forceLogout(now int64, ev *events.UserForceLoggedOut) *Result {
	if !ev.Reason.Valid() {
		return failed(ErrInvalid)
	}
	u := st.byUser[ev.UserID]
	if u == nil {
		return &Result{}
	}
	revoked := 0
	for _, id := range u.ids {
		s := st.sessions.get(id)
		if s == nil || id == ev.Except || !s.revocable(now) {
			continue
		}
		st.replace(s, s.revoked(now, ev.Reason))
		revoked++
	}
	return &Result{Count: revoked}
}

func (st *state) bulkRevoke(now int64, ev *events.SessionsBulkRevoked) *Result {
	if !ev.Reason.Valid() {
		return failed(ErrInvalid)
	}
	before := ev.CreatedBefore
	if before == 0 || before > now {
		// Every session so far, including those stamped with this very time
		// (a leader whose clock lags stamps many events alike).
		before = now + 1
	}
	revoked := 0
	// Map order does not matter here: each session's change depends on that
	// session alone, and only the count is reported.
	st.sessions.all(func(s *Session) {
		if s.CreatedAt >= before || !s.revocable(now) || st.isMoved(s) {
			// A frozen user's sessions are revoked in its new home's group.
			return
		}
		if len(ev.Apps) > 0 {
			if _, found := slices.BinarySearch(ev.Apps, s.App()); !found {
				return
			}
		}
		st.replace(s, s.revoked(now, ev.Reason))
		revoked++
	})
	return &Result{Count: revoked}
}

func (st *state) expire(now int64, ev *events.SessionsExpired) *Result {
	until := min(ev.Until, now)
	st.pruneLockouts(until)
	removed := 0
	st.expiry.popDue(until, func(id events.SessionID) {
		s := st.sessions.get(id)
		// A session goes when its own bucket is due, not when an older
		// bucket that still lists it is: a node restored from a snapshot
		// lists each session in its current bucket only, and must remove
		// exactly what a node that replayed the log removes.
		if s == nil || (bucketOf(s.EndsAt())+1)*expiryBucket > until {
			return // already gone, or moved to a bucket not due yet
		}
		st.remove(s)
		removed++
	})
	return &Result{Count: removed}
}

func (st *state) touch(now int64, ev *events.SessionsTouched) *Result {
	touched := 0
	for _, t := range ev.Touches {
		s := st.sessions.get(t.SessionID)
		at := min(t.At, now)
		if s == nil || s.Revoked() || at <= s.LastSeenAt || st.isMoved(s) {
			continue
		}
		c := *s
		c.LastSeenAt = at
		st.replace(s, &c)
		touched++
	}
	return &Result{Count: touched}
}
