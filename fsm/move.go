package fsm

import (
	"bytes"
	"errors"
	"slices"
	"strings"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/sessiond/sessiond/events"
)

// Moving a user's home (events/move.go). The old home's group freezes the
// user (UserFrozen): every write for the user is refused with ErrMoved from
// then on, and its state of the user stays as it was, for the move to copy
// (ExportUser) and for the nodes to find where the user's tokens went. The
// new home's group takes the copy (UserImported), replacing whatever it
// held of the user, once per move. The global group's directory then names
// the new home (HomeMoved).

// ErrMoved: the user's home is moving or has moved to another region's
// group; this group takes no more writes for the user.
var ErrMoved = errors.New("user moved to another region")

// movedUser is where a frozen user went, and the move that took it.
type movedUser struct {
	to, move string
}

// freezeUser applies UserFrozen. Freezing again for the same move changes
// nothing; a user frozen for another move is ErrConflict.
func (st *state) freezeUser(ev *events.UserFrozen) *Result {
	if ev.UserID == "" || !events.ValidRegion(ev.To) || ev.Move == "" {
		return failed(ErrInvalid)
	}
	if m, ok := st.moved[ev.UserID]; ok {
		if m.move == ev.Move {
			return &Result{}
		}
		return failed(ErrConflict)
	}
	st.moved[ev.UserID] = movedUser{to: ev.To, move: ev.Move}
	return &Result{Count: 1}
}

// importUser applies UserImported: the user's state in this group becomes
// the one the event carries, unless this group took that move already (a
// late repeat must not undo the writes taken since). Count is the number
// of sessions taken.
func (st *state) importUser(now int64, ev *events.UserImported) *Result {
	if ev.UserID == "" || !events.ValidRegion(ev.From) || ev.Move == "" {
		return failed(ErrInvalid)
	}
	if st.imported[ev.UserID] == ev.Move {
		return &Result{}
	}
	in, err := decodeUserState(ev.UserID, ev.State)
	if err != nil {
		return failed(ErrInvalid)
	}
	// What another user holds here cannot be taken over (ids and hashes are
	// random: only a forged state collides).
	for _, s := range in.sessions {
		if held := st.sessions.get(s.ID()); held != nil && held.UserID != ev.UserID {
			return failed(ErrConflict)
		}
		conflict := false
		s.accessHashes(func(h events.TokenHash) {
			if o := st.byAccessHash(h); o != nil && o.UserID != ev.UserID {
				conflict = true
			}
		})
		s.refreshHashes(func(h events.TokenHash) {
			if o := st.byRefreshHash(h); o != nil && o.UserID != ev.UserID {
				conflict = true
			}
		})
		if conflict {
			return failed(ErrConflict)
		}
	}
	if in.user != nil && in.user.Email != "" {
		if owner, ok := st.emails[in.user.Email]; ok && owner != ev.UserID {
			return failed(ErrEmailInUse)
		}
	}
	st.dropUser(ev.UserID)
	for _, s := range in.sessions {
		st.insert(s)
	}
	if in.user != nil {
		st.users[ev.UserID] = in.user
		if in.user.Email != "" {
			st.emails[in.user.Email] = ev.UserID
		}
	}
	for key, l := range in.lockouts {
		st.lockouts[key] = l
		st.lockoutsPruneAt = min(st.lockoutsPruneAt, now)
	}
	delete(st.moved, ev.UserID)
	st.imported[ev.UserID] = ev.Move
	return &Result{Count: len(in.sessions)}
}

// dropUser removes everything this state holds of a user: its sessions,
// its credentials and own limit, and its lockouts.
func (st *state) dropUser(user events.UserID) {
	if u := st.byUser[user]; u != nil {
		for _, id := range slices.Clone(u.ids) {
			if s := st.sessions.get(id); s != nil {
				st.remove(s)
			}
		}
	}
	if u := st.users[user]; u != nil {
		if u.Email != "" {
			delete(st.emails, u.Email)
			delete(st.lockouts, LoginByEmail+u.Email)
		}
		delete(st.users, user)
	}
	delete(st.lockouts, LoginByUser+string(user))
}

// moveHome applies HomeMoved in the directory: the user's home becomes To
// if it was From; already To, nothing changes; else ErrConflict.
func (st *state) moveHome(ev *events.HomeMoved) *Result {
	if ev.UserID == "" || !events.ValidRegion(ev.From) || !events.ValidRegion(ev.To) {
		return failed(ErrInvalid)
	}
	switch st.dir.homes[ev.UserID] {
	case ev.To:
		return &Result{}
	case ev.From:
		st.dir.setHome(ev.UserID, ev.To)
		return &Result{Count: 1}
	}
	return failed(ErrConflict)
}

// frozenUser is the user an event writes for, when this group has frozen
// that user: the event is then refused with ErrMoved. Events about many
// users (bulk revocation, touches) skip frozen users' sessions themselves.
func (st *state) frozenUser(ev events.Event) (events.UserID, bool) {
	if len(st.moved) == 0 {
		return "", false
	}
	var user events.UserID
	switch ev := ev.(type) {
	case *events.SessionCreated:
		user = ev.UserID
	case *events.SessionRefreshed:
		if s := st.sessions.get(ev.SessionID); s != nil {
			user = s.UserID
		}
	case *events.SessionRevoked:
		if s := st.sessions.get(ev.SessionID); s != nil {
			user = s.UserID
		}
	case *events.UserForceLoggedOut:
		user = ev.UserID
	case *events.UserCredentialsSet:
		user = ev.UserID
	case *events.UserDeleted:
		user = ev.UserID
	case *events.LoginFailed:
		user = ev.UserID
	case *events.UserUnlocked:
		user = ev.UserID
	case *events.UserLimitSet:
		user = ev.UserID
	}
	_, frozen := st.moved[user]
	return user, frozen && user != ""
}

// isMoved reports whether a session's user is frozen here.
func (st *state) isMoved(s *Session) bool {
	_, ok := st.moved[s.UserID]
	return ok
}

// MovedTo is where a user frozen in this group is moving, and the move;
// ok is false for a user not frozen here.
func (f *FSM) MovedTo(user events.UserID) (to, move string, ok bool) {
	if !f.anyMoved.Load() {
		return "", "", false
	}
	f.mu.RLock()
	defer f.mu.RUnlock()
	m, ok := f.st.moved[user]
	return m.to, m.move, ok
}

// userState is one user's part of a state, as a move carries it.
type userState struct {
	sessions []*Session
	user     *User
	lockouts map[string]*lockout
}

// userStateFields is the length of the array that starts an exported
// user's state: [#sessions, #users (0 or 1), #lockouts], then the records
// in snapshot form (snapshot.go), sorted as there.
const userStateFields = 3

// ExportUser encodes everything this state holds of a user — sessions
// (token hashes only), credentials (a password hash), own limit, lockouts
// — for UserImported.
func (f *FSM) ExportUser(user events.UserID) ([]byte, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	st := f.st
	var sessions []*Session
	if u := st.byUser[user]; u != nil {
		for _, id := range u.ids {
			if s := st.sessions.get(id); s != nil {
				sessions = append(sessions, s)
			}
		}
	}
	slices.SortFunc(sessions, func(a, b *Session) int { return strings.Compare(string(a.ID()), string(b.ID())) })
	var users []*User
	var lockouts []keyedLockout
	if u := st.users[user]; u != nil {
		users = append(users, u)
		if l := st.lockouts[LoginByEmail+u.Email]; u.Email != "" && l != nil {
			lockouts = append(lockouts, keyedLockout{key: LoginByEmail + u.Email, lockout: l})
		}
	}
	if l := st.lockouts[LoginByUser+string(user)]; l != nil {
		lockouts = append(lockouts, keyedLockout{key: LoginByUser + string(user), lockout: l})
	}
	slices.SortFunc(lockouts, func(a, b keyedLockout) int { return strings.Compare(a.key, b.key) })

	var buf bytes.Buffer
	e := &snapshotEncoder{enc: msgpack.NewEncoder(&buf)}
	e.arrayLen(userStateFields)
	e.int(int64(len(sessions)))
	e.int(int64(len(users)))
	e.int(int64(len(lockouts)))
	for _, s := range sessions {
		e.session(s)
	}
	for _, u := range users {
		e.user(u)
	}
	for _, l := range lockouts {
		e.lockout(l)
	}
	if e.err != nil {
		return nil, e.err
	}
	return buf.Bytes(), nil
}

// decodeUserState reads what ExportUser wrote, and checks that all of it
// is the user's.
func decodeUserState(user events.UserID, data []byte) (userState, error) {
	d := &snapshotDecoder{dec: msgpack.NewDecoder(bytes.NewReader(data))}
	d.arrayLen(userStateFields, "user state")
	nSessions := d.count("session", 1<<20)
	nUsers := d.count("user", 1)
	nLockouts := d.count("lockout", 2)
	if d.err != nil {
		return userState{}, d.err
	}
	tmp := newState(nSessions)
	sessions := d.sessions(nSessions, decodeSession)
	d.users(tmp, nUsers)
	d.lockouts(tmp, nLockouts)
	if d.err != nil {
		return userState{}, d.err
	}
	out := userState{sessions: sessions, user: tmp.users[user], lockouts: tmp.lockouts}
	for _, s := range sessions {
		if s.UserID != user {
			return userState{}, ErrInvalid
		}
	}
	if len(tmp.users) != len(users(out.user)) {
		return userState{}, ErrInvalid
	}
	for key := range tmp.lockouts {
		if key != LoginByUser+string(user) && (out.user == nil || key != LoginByEmail+out.user.Email) {
			return userState{}, ErrInvalid
		}
	}
	return out, nil
}

// users is u as a list (none for nil).
func users(u *User) []*User {
	if u == nil {
		return nil
	}
	return []*User{u}
}

// ImportedMove is the move a user last came into this group with ("" for
// none).
func (f *FSM) ImportedMove(user events.UserID) string {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.st.imported[user]
}
