package fsm

import (
	"slices"

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
			if s := st.sessions[id]; s != nil {
				c := *s
				res.Session = &c
			}
		}
		return res
	}

	var res *Result
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
	if _, exists := st.sessions[ev.SessionID]; exists {
		return failed(ErrConflict)
	}
	if st.byAccessHash(ev.AccessHash) != nil || st.byRefreshHash(ev.RefreshHash) != nil {
		return failed(ErrConflict)
	}
	p := st.policy
	absolute, refreshTTL := p.AbsoluteTTL, p.EffectiveRefreshTTL()
	if ev.RememberMe {
		absolute, refreshTTL = p.RememberMeTTL, p.RememberMeTTL
	}
	expiresAt := now + int64(absolute)
	s := &Session{
		ID:               ev.SessionID,
		UserID:           ev.UserID,
		App:              ev.App,
		UserAgent:        ev.Device.UserAgent,
		IP:               ev.Device.IP,
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
	}
	if ev.Device.Label != "" || len(ev.Scopes) > 0 || len(ev.Attributes) > 0 {
		s.extra = &sessionExtra{label: ev.Device.Label, scopes: ev.Scopes, attributes: ev.Attributes}
	}
	st.insert(s)
	return withSession(s)
}

func (st *state) refresh(now int64, ev *events.SessionRefreshed) *Result {
	s := st.sessions[ev.SessionID]
	if s == nil {
		return failed(ErrUnauthenticated)
	}
	if ev.PresentedHash != s.RefreshHash {
		if s.hasPreviousRefresh(ev.PresentedHash) && !s.Revoked() {
			// A rotated refresh token came back: someone holds a copy. End the
			// session so that neither holder can go on.
			st.replace(s, s.revoked(now, events.ReasonRefreshTokenReuse))
			return &Result{Err: ErrRefreshReuse, Count: 1}
		}
		return failed(ErrUnauthenticated)
	}
	if s.RefreshStatus(ev.PresentedHash, now) != StatusActive {
		return failed(ErrUnauthenticated)
	}
	if ev.NewAccessHash.IsZero() || ev.NewRefreshHash.IsZero() || ev.NewAccessHash == ev.NewRefreshHash {
		return failed(ErrInvalid)
	}
	if st.byAccessHash(ev.NewAccessHash) != nil || st.byRefreshHash(ev.NewRefreshHash) != nil {
		return failed(ErrConflict)
	}
	p := st.policy
	next := s.withExtra(func(e *sessionExtra) {
		history := append(slices.Clone(e.prevRefresh), s.RefreshHash)
		if len(history) > maxRefreshHistory {
			history = history[len(history)-maxRefreshHistory:]
		}
		e.prevRefresh = history
	})
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

func (st *state) revoke(now int64, ev *events.SessionRevoked) *Result {
	s := st.sessions[ev.SessionID]
	if s == nil {
		return failed(ErrNotFound)
	}
	if !ev.Reason.Valid() {
		return failed(ErrInvalid)
	}
	var next *Session
	switch ev.Scope {
	case events.RevokeWholeSession:
		if !ev.TokenHash.IsZero() && ev.TokenHash != s.AccessHash && ev.TokenHash != s.RefreshHash {
			return failed(ErrUnauthenticated)
		}
		if s.Revoked() {
			return withSession(s)
		}
		next = s.revoked(now, ev.Reason)
	case events.RevokeAccessToken:
		if !ev.TokenHash.IsZero() && ev.TokenHash != s.AccessHash {
			return failed(ErrUnauthenticated)
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
		s := st.sessions[id]
		if s == nil || id == ev.Except || s.Status(now) != StatusActive {
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
	for _, s := range st.sessions {
		if s.CreatedAt >= before || s.Status(now) != StatusActive {
			continue
		}
		if len(ev.Apps) > 0 {
			if _, found := slices.BinarySearch(ev.Apps, s.App); !found {
				continue
			}
		}
		st.replace(s, s.revoked(now, ev.Reason))
		revoked++
	}
	return &Result{Count: revoked}
}

func (st *state) expire(now int64, ev *events.SessionsExpired) *Result {
	until := min(ev.Until, now)
	removed := 0
	st.expiry.popDue(until, func(id events.SessionID) {
		s := st.sessions[id]
		if s == nil || s.EndsAt() > until {
			return // already gone, or moved to a later bucket
		}
		st.remove(s)
		removed++
	})
	return &Result{Count: removed}
}
