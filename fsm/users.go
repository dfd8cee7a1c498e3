package fsm

import "github.com/sessiond/sessiond/events"

// User is a user the state machine knows beyond its sessions: built-in
// credentials, an own session limit, or both. Like sessions, a stored User
// is never changed in place; a change stores a copy.
type User struct {
	ID    events.UserID
	Email string // lower-cased; "" when none
	// PasswordHash is the argon2id string; "" when the user has no password.
	PasswordHash string
	// CredentialVersion is the index of the entry that last set the
	// password. A login names the version it verified, so a password change
	// racing with a login wins.
	CredentialVersion uint64
	// MaxSessions is the user's own session limit (0: unlimited) when
	// HasLimit; otherwise the policy's applies.
	MaxSessions int
	HasLimit    bool
	CreatedAt   int64
	UpdatedAt   int64
}

func (u *User) empty() bool { return u.PasswordHash == "" && u.Email == "" && !u.HasLimit }

// Login identifiers under which failed logins are counted.
const (
	LoginByEmail = "email:"
	LoginByUser  = "user:"
)

// lockout counts one login identifier's recent failures. Never changed in
// place once a snapshot may hold it: changes store a copy.
type lockout struct {
	failures    []int64 // times of failures within the window, oldest first
	lockedUntil int64
}

// endsAt is when the record no longer matters: the lock is over and every
// failure has left the window.
func (l *lockout) endsAt(window int64) int64 {
	end := l.lockedUntil
	if n := len(l.failures); n > 0 {
		end = max(end, l.failures[n-1]+window)
	}
	return end
}

// lockedUntil is when the lock on identifier key ends, or 0 if it is not
// locked at now.
func (st *state) lockedUntil(key string, now int64) int64 {
	if st.policy.Lockout.MaxFailures == 0 {
		return 0 // lockout turned off releases every lock
	}
	if l := st.lockouts[key]; l != nil && l.lockedUntil > now {
		return l.lockedUntil
	}
	return 0
}

// countFailure records a failed login under key and locks it when the
// policy's limit is reached within its window.
func (st *state) countFailure(key string, now int64) {
	p := st.policy.Lockout
	prev := st.lockouts[key]
	next := &lockout{}
	if prev != nil {
		if prev.lockedUntil > now {
			return // already locked; failures while locked do not extend it
		}
		for _, t := range prev.failures {
			if t > now-int64(p.Window) {
				next.failures = append(next.failures, t)
			}
		}
	}
	next.failures = append(next.failures, now)
	if len(next.failures) >= p.MaxFailures {
		next.failures = nil
		next.lockedUntil = now + int64(p.Duration)
	}
	st.lockouts[key] = next
	st.lockoutsPruneAt = min(st.lockoutsPruneAt, next.endsAt(int64(p.Window)))
}

// pruneLockouts drops records that no longer matter at now. The decision
// for each record depends on that record alone, so map order is irrelevant.
func (st *state) pruneLockouts(now int64) {
	if now < st.lockoutsPruneAt {
		return
	}
	window := int64(st.policy.Lockout.Window)
	next := noTime
	for key, l := range st.lockouts {
		if end := l.endsAt(window); end <= now {
			delete(st.lockouts, key)
		} else {
			next = min(next, end)
		}
	}
	st.lockoutsPruneAt = next
}

func (st *state) loginFailed(now int64, ev *events.LoginFailed) *Result {
	if ev.LoginID == "" {
		return failed(ErrInvalid)
	}
	if st.policy.Lockout.MaxFailures == 0 {
		return &Result{}
	}
	st.countFailure(ev.LoginID, now)
	until := st.lockedUntil(ev.LoginID, now)
	if ev.UserID != "" && st.users[ev.UserID] != nil {
		if key := LoginByUser + string(ev.UserID); key != ev.LoginID {
			st.countFailure(key, now)
			until = max(until, st.lockedUntil(key, now))
		}
	}
	return &Result{LockedUntil: until}
}

func (st *state) unlock(ev *events.UserUnlocked) *Result {
	u := st.users[ev.UserID]
	key := LoginByUser + string(ev.UserID)
	if u == nil && st.lockouts[key] == nil {
		return failed(ErrNotFound)
	}
	n := 0
	if st.lockouts[key] != nil {
		delete(st.lockouts, key)
		n++
	}
	if u != nil && u.Email != "" {
		if st.lockouts[LoginByEmail+u.Email] != nil {
			delete(st.lockouts, LoginByEmail+u.Email)
			n++
		}
	}
	return &Result{Count: n}
}

func (st *state) setCredentials(index uint64, now int64, ev *events.UserCredentialsSet) *Result {
	if ev.UserID == "" || !ev.Reason.Valid() {
		return failed(ErrInvalid)
	}
	prev := st.users[ev.UserID]
	if ev.MustExist && (prev == nil || prev.PasswordHash == "") {
		return failed(ErrNotFound)
	}
	if (prev == nil || prev.PasswordHash == "") && ev.PasswordHash == "" {
		return failed(ErrInvalid) // built-in credentials always include a password
	}
	if !validEmail(ev.Email) {
		return failed(ErrInvalid) // emails are compared lower-cased
	}
	if ev.Email != "" {
		if owner, taken := st.emails[ev.Email]; taken && owner != ev.UserID {
			return failed(ErrEmailInUse)
		}
	}
	next := &User{ID: ev.UserID, CreatedAt: now}
	if prev != nil {
		c := *prev
		next = &c
	}
	next.UpdatedAt = now
	if ev.Email != "" && ev.Email != next.Email {
		if next.Email != "" {
			delete(st.emails, next.Email)
		}
		next.Email = ev.Email
		st.emails[ev.Email] = ev.UserID
	}
	changed := false
	if ev.PasswordHash != "" {
		changed = next.PasswordHash != ""
		next.PasswordHash = ev.PasswordHash
		next.CredentialVersion = index
	}
	st.users[ev.UserID] = next
	res := &Result{}
	if changed && st.policy.ForceLogoutOnPasswordChange {
		reason := ev.Reason
		if reason != events.ReasonPasswordReset {
			reason = events.ReasonPasswordChange
		}
		res.Count = st.revokeUserSessions(now, ev.UserID, reason, "")
	}
	return res
}

func (st *state) deleteUser(now int64, ev *events.UserDeleted) *Result {
	u := st.users[ev.UserID]
	revoked := st.revokeUserSessions(now, ev.UserID, events.ReasonUserDeleted, "")
	if u == nil && revoked == 0 && st.lockouts[LoginByUser+string(ev.UserID)] == nil {
		return failed(ErrNotFound)
	}
	if u != nil {
		if u.Email != "" {
			delete(st.emails, u.Email)
			delete(st.lockouts, LoginByEmail+u.Email)
		}
		delete(st.users, ev.UserID)
	}
	delete(st.lockouts, LoginByUser+string(ev.UserID))
	return &Result{Count: revoked}
}

func (st *state) setUserLimit(now int64, ev *events.UserLimitSet) *Result {
	if ev.UserID == "" || ev.MaxSessions < 0 || ev.MaxSessions > 10000 {
		return failed(ErrInvalid)
	}
	prev := st.users[ev.UserID]
	next := &User{ID: ev.UserID, CreatedAt: now}
	if prev != nil {
		c := *prev
		next = &c
	}
	next.UpdatedAt = now
	next.HasLimit, next.MaxSessions = !ev.Clear, ev.MaxSessions
	if ev.Clear {
		next.MaxSessions = 0
	}
	if next.empty() {
		delete(st.users, ev.UserID)
		return &Result{}
	}
	st.users[ev.UserID] = next
	return &Result{}
}

func (st *state) setPolicy(ev *events.PolicySet) *Result {
	if err := ev.Policy.Validate(); err != nil {
		return failed(ErrInvalid)
	}
	p := ev.Policy
	p.AppMaxSessions = append([]AppLimit(nil), p.AppMaxSessions...)
	st.policy = p
	return &Result{}
}

// revokeUserSessions revokes every active session of a user except one and
// returns how many it revoked. u.ids is in creation order.
func (st *state) revokeUserSessions(now int64, user events.UserID, reason events.Reason, except events.SessionID) int {
	u := st.byUser[user]
	if u == nil {
		return 0
	}
	revoked := 0
	for _, id := range u.ids {
		s := st.sessions.get(id)
		if s == nil || id == except || !s.revocable(now) {
			continue
		}
		st.replace(s, s.revoked(now, reason))
		revoked++
	}
	return revoked
}
