package fsm

import (
	"bytes"
	"errors"
	"testing"

	"github.com/sessiond/sessiond/events"
)

// Helpers shared by the tests of users, lockout, limits, the refresh grace
// and the idle timeout.

// Two argon2id strings standing for two different passwords. The state
// machine never verifies them; it only stores them.
const (
	pwHash1 = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdDE$a2V5MQ"
	pwHash2 = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdDI$a2V5Mg"
)

// twins feeds every event to two FSMs through the real decode+apply path,
// checks that both answer alike and that the indexes stay consistent after
// each entry, and can compare their snapshots at any point.
type twins struct {
	tb   testing.TB
	a, b *harness
}

func newTwins(tb testing.TB) *twins {
	return &twins{tb: tb, a: newHarness(tb), b: newHarness(tb)}
}

// f is the first FSM, the one the tests query.
func (w *twins) f() *FSM { return w.a.f }

// apply applies ev at the given time to both FSMs and returns the first's
// result.
func (w *twins) apply(at int64, ev events.Event) *Result {
	w.tb.Helper()
	ra, rb := w.a.apply(at, ev), w.b.apply(at, ev)
	if !sameResult(ra, rb) || ra.LockedUntil != rb.LockedUntil {
		w.tb.Fatalf("%s at %s: the two FSMs answer differently: %+v / %+v", ev.EventType(), rel(at), ra, rb)
	}
	checkInvariants(w.tb, w.a.f)
	return ra
}

// mustApply applies an event that must succeed.
func (w *twins) mustApply(at int64, ev events.Event) *Result {
	w.tb.Helper()
	res := w.apply(at, ev)
	if res.Err != nil {
		w.tb.Fatalf("%s at %s (index %d): unexpected error %v", ev.EventType(), rel(at), res.Index, res.Err)
	}
	return res
}

// wantErr applies an event that must fail with want.
func (w *twins) wantErr(at int64, ev events.Event, want error) *Result {
	w.tb.Helper()
	res := w.apply(at, ev)
	if !errors.Is(res.Err, want) {
		w.tb.Fatalf("%s at %s: err %v, want %v", ev.EventType(), rel(at), res.Err, want)
	}
	return res
}

// checkSnapshots checks that both FSMs write byte-identical snapshots and
// that a restored copy writes the same bytes and keeps its indexes
// consistent. It returns the restored copy.
func (w *twins) checkSnapshots() *FSM {
	w.tb.Helper()
	sa, sb := snapshotBytes(w.tb, w.a.f), snapshotBytes(w.tb, w.b.f)
	if !bytes.Equal(sa, sb) {
		w.tb.Fatalf("two FSMs fed the same log write different snapshots (%d / %d bytes)", len(sa), len(sb))
	}
	r := restored(w.tb, sa)
	if again := snapshotBytes(w.tb, r); !bytes.Equal(again, sa) {
		w.tb.Fatal("a restored FSM writes a different snapshot")
	}
	checkInvariants(w.tb, r)
	return r
}

// stateBytes encodes everything the state machine holds except the applied
// index, the last event time and the request-id table: what a rejected entry
// must leave exactly as it was (every entry moves the index and the clock,
// and its outcome is remembered under its request id).
func stateBytes(tb testing.TB, f *FSM) []byte {
	tb.Helper()
	f.mu.RLock()
	snap := f.st.capture(0)
	f.mu.RUnlock()
	snap.dedup, snap.lastTime = nil, 0
	var buf bytes.Buffer
	if err := snap.encode(&buf); err != nil {
		tb.Fatalf("encode state: %v", err)
	}
	return buf.Bytes()
}

// unchangedBy applies an event that must fail with want and change nothing
// but the applied index, the last event time and the request-id table.
func (w *twins) unchangedBy(at int64, ev events.Event, want error) *Result {
	w.tb.Helper()
	before := stateBytes(w.tb, w.a.f)
	res := w.wantErr(at, ev, want)
	if after := stateBytes(w.tb, w.a.f); !bytes.Equal(before, after) {
		w.tb.Fatalf("%s refused with %v changed the state", ev.EventType(), res.Err)
	}
	return res
}

// policySet is a PolicySet of the defaults changed by edit.
func policySet(edit func(p *Policy)) *events.PolicySet {
	p := DefaultPolicy()
	edit(&p)
	return &events.PolicySet{Policy: p}
}

// credentials is a UserCredentialsSet.
func credentials(user events.UserID, email, pw string) *events.UserCredentialsSet {
	return &events.UserCredentialsSet{UserID: user, Email: email, PasswordHash: pw}
}

// login is a password login of user under loginID that verified the
// credential version cv.
func login(id events.SessionID, user events.UserID, loginID string, cv uint64) *events.SessionCreated {
	ev := created(id, user)
	ev.LoginID = loginID
	ev.CredentialVersion = cv
	return ev
}

// user returns a user's record, which must exist.
func (w *twins) user(id events.UserID) User {
	w.tb.Helper()
	u, ok := w.f().User(id)
	if !ok {
		w.tb.Fatalf("user %s not found", id)
	}
	return u
}

// create creates a session of user in app at the given time.
func (w *twins) create(at int64, id events.SessionID, user events.UserID, app string) Session {
	w.tb.Helper()
	ev := created(id, user)
	ev.App = app
	return *w.mustApply(at, ev).Session
}

// session returns a stored session, which must exist.
func (w *twins) session(id events.SessionID) *Session {
	w.tb.Helper()
	s, ok := w.f().Session(id)
	if !ok {
		w.tb.Fatalf("session %s not found", id)
	}
	return &s
}

// wantRevoked checks that a session was revoked at the given time for the
// given reason.
func (w *twins) wantRevoked(id events.SessionID, at int64, reason events.Reason) {
	w.tb.Helper()
	s := w.session(id)
	if !s.Revoked() || s.RevokedAt() != at || s.RevokeReason() != reason {
		w.tb.Errorf("session %s: revoked=%v at %s reason %q, want revoked at %s reason %q",
			id, s.Revoked(), rel(s.RevokedAt()), s.RevokeReason(), rel(at), reason)
	}
}

// wantActive checks that a session is active at now.
func (w *twins) wantActive(id events.SessionID, now int64) {
	w.tb.Helper()
	if st := w.session(id).Status(now); st != StatusActive {
		w.tb.Errorf("session %s at %s is %s, want active", id, rel(now), st)
	}
}

func TestCredentials_SetCreatesUserWithEmailAndPassword(t *testing.T) {
	w := newTwins(t)
	res := w.mustApply(t0, credentials("alice", "alice@example.com", pwHash1))
	if res.Count != 0 || res.Session != nil {
		t.Errorf("result %+v, want nothing revoked", res)
	}
	u := w.user("alice")
	want := User{ID: "alice", Email: "alice@example.com", PasswordHash: pwHash1, CredentialVersion: res.Index, CreatedAt: t0, UpdatedAt: t0}
	if u != want {
		t.Errorf("User = %+v, want %+v", u, want)
	}
	if got, ok := w.f().UserByEmail("alice@example.com"); !ok || got != want {
		t.Errorf("UserByEmail = %+v, %v", got, ok)
	}
	if st := w.f().Stats(); st.Accounts != 1 || st.Sessions != 0 {
		t.Errorf("Stats = %+v, want one account and no session", st)
	}

	// A user without an email is fine too.
	w.mustApply(t0+minute, credentials("bob", "", pwHash2))
	if u := w.user("bob"); u.Email != "" || u.PasswordHash != pwHash2 {
		t.Errorf("bob = %+v", u)
	}
	w.checkSnapshots()
}

func TestCredentials_NewUserNeedsAPassword(t *testing.T) {
	w := newTwins(t)
	w.mustApply(t0, &events.UserLimitSet{UserID: "limited", MaxSessions: 3})
	for _, ev := range []*events.UserCredentialsSet{
		credentials("alice", "alice@example.com", ""),
		credentials("alice", "", ""),
		// A user known only by its limit has no password yet either.
		credentials("limited", "limited@example.com", ""),
		{UserID: "", Email: "x@example.com", PasswordHash: pwHash1},
		{UserID: "alice", PasswordHash: pwHash1, Reason: events.Reason(200)},
	} {
		w.unchangedBy(t0, ev, ErrInvalid)
	}
	if _, ok := w.f().User("alice"); ok {
		t.Error("a refused event created alice")
	}
	if _, ok := w.f().UserByEmail("limited@example.com"); ok {
		t.Error("a refused event mapped an email")
	}
}

func TestCredentials_EmailChangeFreesTheOldEmail(t *testing.T) {
	w := newTwins(t)
	first := w.mustApply(t0, credentials("alice", "alice@example.com", pwHash1))

	// An email change alone keeps the password and its version.
	w.mustApply(t0+minute, credentials("alice", "alice@new.example", ""))
	u := w.user("alice")
	if u.Email != "alice@new.example" || u.PasswordHash != pwHash1 || u.CredentialVersion != first.Index ||
		u.CreatedAt != t0 || u.UpdatedAt != t0+minute {
		t.Errorf("after the email change: %+v", u)
	}
	if _, ok := w.f().UserByEmail("alice@example.com"); ok {
		t.Error("the old email still finds a user")
	}
	if got, ok := w.f().UserByEmail("alice@new.example"); !ok || got.ID != "alice" {
		t.Errorf("UserByEmail(new) = %+v, %v", got, ok)
	}

	// Another user can take the freed email.
	w.mustApply(t0+2*minute, credentials("bob", "alice@example.com", pwHash2))
	if got, ok := w.f().UserByEmail("alice@example.com"); !ok || got.ID != "bob" {
		t.Errorf("UserByEmail(old) = %+v, %v, want bob", got, ok)
	}
	// Setting the email a user already has changes nothing about it.
	w.mustApply(t0+3*minute, credentials("bob", "alice@example.com", ""))
	if got, ok := w.f().UserByEmail("alice@example.com"); !ok || got.ID != "bob" {
		t.Errorf("UserByEmail after re-setting the same email = %+v, %v", got, ok)
	}
	w.checkSnapshots()
}

func TestCredentials_EmailTakenByAnotherUserChangesNothing(t *testing.T) {
	w := newTwins(t)
	w.mustApply(t0, credentials("alice", "alice@example.com", pwHash1))
	w.mustApply(t0, credentials("bob", "bob@example.com", pwHash2))
	w.create(t0, "s-bob", "bob", "default")

	// An existing user moving onto alice's email, even with a new password
	// (which would otherwise end bob's sessions).
	res := w.unchangedBy(t0+minute, &events.UserCredentialsSet{UserID: "bob", Email: "alice@example.com", PasswordHash: pwHash1, Reason: events.ReasonPasswordChange}, ErrEmailInUse)
	if res.Count != 0 {
		t.Errorf("refused change revoked %d sessions", res.Count)
	}
	// A new user asking for it.
	w.unchangedBy(t0+minute, credentials("carol", "alice@example.com", pwHash1), ErrEmailInUse)

	if _, ok := w.f().User("carol"); ok {
		t.Error("carol was created")
	}
	if got, _ := w.f().UserByEmail("alice@example.com"); got.ID != "alice" {
		t.Errorf("alice@example.com now belongs to %q", got.ID)
	}
	if u := w.user("bob"); u.Email != "bob@example.com" || u.PasswordHash != pwHash2 {
		t.Errorf("bob changed: %+v", u)
	}
	w.wantActive("s-bob", t0+minute)
}

func TestCredentials_MustExistOnUnknownUserIsNotFound(t *testing.T) {
	w := newTwins(t)
	w.mustApply(t0, &events.UserLimitSet{UserID: "limited", MaxSessions: 2})
	for _, user := range []events.UserID{"ghost", "limited"} {
		w.unchangedBy(t0, &events.UserCredentialsSet{UserID: user, PasswordHash: pwHash1, Reason: events.ReasonPasswordReset, MustExist: true}, ErrNotFound)
	}
	if _, ok := w.f().User("ghost"); ok {
		t.Error("ghost was created")
	}
	// An existing user: MustExist is satisfied.
	w.mustApply(t0, credentials("alice", "", pwHash1))
	w.mustApply(t0+minute, &events.UserCredentialsSet{UserID: "alice", PasswordHash: pwHash2, Reason: events.ReasonPasswordReset, MustExist: true})
	if u := w.user("alice"); u.PasswordHash != pwHash2 {
		t.Errorf("alice's password is %q after the reset", u.PasswordHash)
	}
}

func TestCredentials_PasswordChangeBumpsCredentialVersion(t *testing.T) {
	w := newTwins(t)
	first := w.mustApply(t0, credentials("alice", "alice@example.com", pwHash1))
	if v := w.user("alice").CredentialVersion; v != first.Index || v == 0 {
		t.Fatalf("version %d after the first password, want its index %d", v, first.Index)
	}
	w.mustApply(t0+minute, credentials("bob", "", pwHash1)) // another entry between
	second := w.mustApply(t0+2*minute, &events.UserCredentialsSet{UserID: "alice", PasswordHash: pwHash2, Reason: events.ReasonPasswordChange})
	u := w.user("alice")
	if u.CredentialVersion != second.Index || u.PasswordHash != pwHash2 || u.UpdatedAt != t0+2*minute || u.CreatedAt != t0 {
		t.Errorf("after the change: %+v, want version %d", u, second.Index)
	}
	// Setting the same hash again is still a new version: a login verified
	// before it must verify again.
	third := w.mustApply(t0+3*minute, &events.UserCredentialsSet{UserID: "alice", PasswordHash: pwHash2, Reason: events.ReasonPasswordChange})
	if u := w.user("alice"); u.CredentialVersion != third.Index {
		t.Errorf("version %d after re-setting the password, want %d", u.CredentialVersion, third.Index)
	}
	w.checkSnapshots()
}

func TestCredentials_PasswordChangeEndsSessionsWhenPolicySaysSo(t *testing.T) {
	cases := []struct {
		name       string
		force      bool
		reason     events.Reason
		wantReason events.Reason
	}{
		{"change", true, events.ReasonPasswordChange, events.ReasonPasswordChange},
		{"reset", true, events.ReasonPasswordReset, events.ReasonPasswordReset},
		{"no reason counts as a change", true, events.ReasonNone, events.ReasonPasswordChange},
		{"change, policy off", false, events.ReasonPasswordChange, 0},
		{"reset, policy off", false, events.ReasonPasswordReset, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			w := newTwins(t)
			w.mustApply(t0, policySet(func(p *Policy) { p.ForceLogoutOnPasswordChange = tc.force }))
			w.mustApply(t0, credentials("alice", "alice@example.com", pwHash1))
			w.create(t0, "s1", "alice", "default")
			w.create(t0+minute, "s2", "alice", "web")
			w.create(t0+minute, "s-old", "alice", "default")
			w.mustApply(t0+2*minute, &events.SessionRevoked{SessionID: "s-old", Scope: events.RevokeWholeSession, Reason: events.ReasonLogout})
			w.create(t0+minute, "s-bob", "bob", "default")

			at := t0 + 5*minute
			res := w.mustApply(at, &events.UserCredentialsSet{UserID: "alice", PasswordHash: pwHash2, Reason: tc.reason, MustExist: true})
			if tc.force {
				if res.Count != 2 {
					t.Errorf("Count = %d, want 2 (the already revoked session is not counted)", res.Count)
				}
				w.wantRevoked("s1", at, tc.wantReason)
				w.wantRevoked("s2", at, tc.wantReason)
				if _, st := w.f().ValidateAccess(ah("s1", 0), at); st != StatusRevoked {
					t.Errorf("s1's access token is %s after the password change", st)
				}
			} else {
				if res.Count != 0 {
					t.Errorf("Count = %d with the policy off", res.Count)
				}
				w.wantActive("s1", at)
				w.wantActive("s2", at)
			}
			// Untouched either way.
			w.wantRevoked("s-old", t0+2*minute, events.ReasonLogout)
			w.wantActive("s-bob", at)
			w.checkSnapshots()
		})
	}
}

func TestCredentials_FirstPasswordRevokesNothing(t *testing.T) {
	w := newTwins(t)
	// alice has sessions (from an exchange) and an own limit, no password.
	ev := created("s1", "alice")
	ev.AuthMethod = events.AuthExchange
	w.mustApply(t0, ev)
	w.mustApply(t0, &events.UserLimitSet{UserID: "alice", MaxSessions: 5})
	res := w.mustApply(t0+minute, &events.UserCredentialsSet{UserID: "alice", Email: "alice@example.com", PasswordHash: pwHash1, Reason: events.ReasonPasswordChange})
	if res.Count != 0 {
		t.Errorf("a first password revoked %d sessions", res.Count)
	}
	w.wantActive("s1", t0+minute)
	u := w.user("alice")
	if !u.HasLimit || u.MaxSessions != 5 || u.PasswordHash != pwHash1 || u.CreatedAt != t0 || u.CredentialVersion != res.Index {
		t.Errorf("alice = %+v: the limit must stay and the password be set", u)
	}
}

func TestUserDeleted_RevokesSessionsFreesEmailAndClearsLockouts(t *testing.T) {
	w := newTwins(t)
	w.mustApply(t0, credentials("alice", "alice@example.com", pwHash1))
	w.mustApply(t0, &events.UserLimitSet{UserID: "alice", MaxSessions: 4})
	w.create(t0, "s1", "alice", "default")
	w.create(t0, "s2", "alice", "web")
	w.create(t0, "s-bob", "bob", "default")
	w.mustApply(t0+minute, &events.LoginFailed{LoginID: LoginByEmail + "alice@example.com", UserID: "alice"})
	w.mustApply(t0+minute, &events.LoginFailed{LoginID: LoginByEmail + "nobody@example.com"})
	if st := w.f().Stats(); st.Lockouts != 3 {
		t.Fatalf("%d lockout records before the delete, want 3", st.Lockouts)
	}

	at := t0 + 2*minute
	res := w.mustApply(at, &events.UserDeleted{UserID: "alice"})
	if res.Count != 2 {
		t.Errorf("Count = %d, want 2", res.Count)
	}
	w.wantRevoked("s1", at, events.ReasonUserDeleted)
	w.wantRevoked("s2", at, events.ReasonUserDeleted)
	w.wantActive("s-bob", at)
	if _, ok := w.f().User("alice"); ok {
		t.Error("alice's record survives")
	}
	if _, ok := w.f().UserByEmail("alice@example.com"); ok {
		t.Error("alice's email still maps to a user")
	}
	if st := w.f().Stats(); st.Lockouts != 1 || st.Accounts != 0 {
		t.Errorf("Stats = %+v, want only the unknown identifier's lockout record and no account", st)
	}
	// The email is free for someone else; the counters start from zero.
	w.mustApply(at, credentials("carol", "alice@example.com", pwHash2))
	// And alice's limit went with her: she can have any number of sessions.
	for i, id := range []events.SessionID{"n1", "n2", "n3", "n4", "n5"} {
		w.create(at+int64(i), id, "alice", "default")
	}
	w.checkSnapshots()
}

func TestUserDeleted_UnknownUserWithoutSessionsIsNotFound(t *testing.T) {
	w := newTwins(t)
	w.unchangedBy(t0, &events.UserDeleted{UserID: "ghost"}, ErrNotFound)

	// A user known only by its sessions (no credentials) can be deleted.
	w.create(t0, "s1", "dave", "default")
	res := w.mustApply(t0+minute, &events.UserDeleted{UserID: "dave"})
	if res.Count != 1 {
		t.Errorf("Count = %d, want 1", res.Count)
	}
	w.wantRevoked("s1", t0+minute, events.ReasonUserDeleted)
	// A user known only by its limit too, and the limit goes.
	w.mustApply(t0+minute, &events.UserLimitSet{UserID: "erin", MaxSessions: 1})
	if res := w.mustApply(t0+minute, &events.UserDeleted{UserID: "erin"}); res.Count != 0 {
		t.Errorf("Count = %d for a user without sessions", res.Count)
	}
	if _, ok := w.f().User("erin"); ok {
		t.Error("erin's limit survives the delete")
	}
}

func TestLogin_PasswordChangedSinceVerificationIsUnauthenticated(t *testing.T) {
	w := newTwins(t)
	v1 := w.mustApply(t0, credentials("alice", "alice@example.com", pwHash1)).Index
	// A node verified version v1; the password changes before the login is
	// applied.
	v2 := w.mustApply(t0+minute, &events.UserCredentialsSet{UserID: "alice", PasswordHash: pwHash2, Reason: events.ReasonPasswordChange}).Index
	res := w.unchangedBy(t0+minute, login("s1", "alice", LoginByEmail+"alice@example.com", v1), ErrUnauthenticated)
	if res.Session != nil || res.LockedUntil != 0 {
		t.Errorf("refused login: %+v", res)
	}
	if _, ok := w.f().Session("s1"); ok {
		t.Error("the refused login created a session")
	}
	// A login for a user without credentials, or naming a version never
	// issued, is refused the same way.
	w.unchangedBy(t0+minute, login("s2", "ghost", LoginByUser+"ghost", v1), ErrUnauthenticated)
	w.unchangedBy(t0+minute, login("s3", "alice", LoginByUser+"alice", 0), ErrUnauthenticated)

	// The current version logs in.
	res = w.mustApply(t0+2*minute, login("s1", "alice", LoginByEmail+"alice@example.com", v2))
	if res.Session == nil || res.Session.ID() != "s1" || res.Session.AuthMethod != events.AuthPassword {
		t.Errorf("login result %+v", res)
	}
	w.checkSnapshots()
}
