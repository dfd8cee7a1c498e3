package fsm

import (
	"context"
	"slices"
	"strings"

	"github.com/sessiond/sessiond/events"
)

// Reads. Each takes the read lock briefly and returns copies; the caller
// passes its own "now" (the FSM has no clock).

// AppliedIndex is the index of the last applied log entry.
func (f *FSM) AppliedIndex() uint64 { return f.applied.Load() }

// WaitForIndex blocks until the FSM has applied index, or ctx ends.
func (f *FSM) WaitForIndex(ctx context.Context, index uint64) error {
	for {
		f.waitMu.Lock()
		ch := f.appliedCh
		f.waitMu.Unlock()
		if f.applied.Load() >= index {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// ValidateAccess finds the session of an access token by its hash and
// reports the token's status at now. It is the validation hot path: no
// allocation, one read lock, one map lookup. The session returned is the
// stored value itself, which is never modified (changes store a copy): read
// it, never write it.
func (f *FSM) ValidateAccess(h events.TokenHash, now int64) (*Session, Status) {
	f.mu.RLock()
	s := f.st.byAccessHash(h)
	f.mu.RUnlock()
	if s == nil {
		return nil, StatusUnknown
	}
	return s, s.AccessStatusOf(h, now, 0)
}

// TokenKind says which of a session's tokens a hash matched.
type TokenKind uint8

const (
	TokenNone TokenKind = iota
	TokenAccess
	TokenRefresh
)

// LookupToken finds the session holding a token of either kind (a refresh
// token may be a rotated, previous one) and reports its status at now.
func (f *FSM) LookupToken(h events.TokenHash, now int64) (Session, TokenKind, Status) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	if s := f.st.byAccessHash(h); s != nil {
		return s.ViewFor(h), TokenAccess, s.AccessStatusOf(h, now, 0)
	}
	if s := f.st.byRefreshHash(h); s != nil {
		return s.ViewFor(h), TokenRefresh, s.RefreshStatus(h, now)
	}
	return Session{}, TokenNone, StatusUnknown
}

// Session returns the session with the given id, whatever its status.
func (f *FSM) Session(id events.SessionID) (Session, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	s := f.st.sessions.get(id)
	if s == nil {
		return Session{}, false
	}
	return *s, true
}

// UserSessions returns a user's sessions that are active at now, newest
// first (ties broken by id, so the order is stable).
func (f *FSM) UserSessions(user events.UserID, now int64) []Session {
	return f.UserSessionsAt(user, now, nil)
}

// UserSessionsAt is UserSessions counting, for the idle timeout, the uses
// lastUse reports (a node's own unreplicated ones; nil: none).
func (f *FSM) UserSessionsAt(user events.UserID, now int64, lastUse func(events.SessionID) int64) []Session {
	f.mu.RLock()
	u := f.st.byUser[user]
	var out []Session
	if u != nil {
		out = make([]Session, 0, len(u.ids))
		for _, id := range u.ids {
			s := f.st.sessions.get(id)
			if s == nil {
				continue
			}
			var used int64
			if lastUse != nil && s.idleSeconds > 0 {
				used = lastUse(id)
			}
			if s.StatusAt(now, used) == StatusActive {
				out = append(out, *s)
			}
		}
	}
	f.mu.RUnlock()
	slices.SortFunc(out, func(a, b Session) int {
		if a.CreatedAt != b.CreatedAt {
			if a.CreatedAt > b.CreatedAt {
				return -1
			}
			return 1
		}
		return strings.Compare(string(a.ID()), string(b.ID()))
	})
	return out
}

// Policy is the policy in force.
func (f *FSM) Policy() Policy {
	f.mu.RLock()
	defer f.mu.RUnlock()
	p := f.st.policy
	p.AppMaxSessions = slices.Clone(p.AppMaxSessions)
	return p
}

// LastEventTime is the time of the latest applied event; a leader stamps new
// events no earlier than this.
func (f *FSM) LastEventTime() int64 {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.st.lastTime
}

// NextExpiry is the earliest time at which garbage collection has sessions
// to remove (math.MaxInt64 when there are none).
func (f *FSM) NextExpiry() int64 {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return min(f.st.expiry.next(), f.st.lockoutsPruneAt)
}

// Stats are counts for operators and metrics. They are exact for the
// state as of the last applied entry, and the same on every node that has
// applied it. The state machine has no clock, so none of them depends on
// time: a session whose tokens have all expired, or that ended by its idle
// timeout, is counted as what it is stored as (Live, unless revoked) until
// garbage collection removes it.
type Stats struct {
	// Sessions are the stored sessions: Live plus Revoked.
	Sessions int
	// Live are the stored sessions that still hold a token no revocation
	// stopped. A live session is active unless time ended it (expiry, idle
	// timeout); garbage collection removes those once their last token has
	// expired (up to a minute later, plus the time until the leader's next
	// sweep).
	Live int
	// Revoked are the stored sessions that revocations ended for good
	// (tombstones): the session was revoked, or its refresh tokens and every
	// live access token were revoked one by one. Each stays until garbage
	// collection removes it at its end.
	Revoked int
	Users   int // users with sessions
	// Accounts are users with credentials or an own limit; Lockouts are
	// login identifiers with recent failures or a lock.
	Accounts int
	Lockouts int
}

// Stats counts what the state holds.
func (f *FSM) Stats() Stats {
	f.mu.RLock()
	defer f.mu.RUnlock()
	st := f.st
	stored := st.sessions.len()
	return Stats{Sessions: stored, Live: stored - st.tombstones, Revoked: st.tombstones,
		Users: len(st.byUser), Accounts: len(st.users), Lockouts: len(st.lockouts)}
}

// User returns a user's record (credentials, limit), if it has one.
func (f *FSM) User(id events.UserID) (User, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	u := f.st.users[id]
	if u == nil {
		return User{}, false
	}
	return *u, true
}

// UserByEmail finds the user with a (lower-cased) email.
func (f *FSM) UserByEmail(email string) (User, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	id, ok := f.st.emails[email]
	if !ok {
		return User{}, false
	}
	return *f.st.users[id], true
}

// LockedUntil is when the lockout of any of the given login identifiers
// ends, or 0 when none is locked at now.
func (f *FSM) LockedUntil(now int64, loginIDs ...string) int64 {
	f.mu.RLock()
	defer f.mu.RUnlock()
	var until int64
	for _, key := range loginIDs {
		until = max(until, f.st.lockedUntil(key, now))
	}
	return until
}
