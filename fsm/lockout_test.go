package fsm

import (
	"bytes"
	"testing"
	"time"

	"github.com/sessiond/sessiond/events"
)

// lockoutPolicy locks after 3 failures within 10 minutes, for 15 minutes.
func lockoutPolicy() *events.PolicySet {
	return policySet(func(p *Policy) {
		p.Lockout = Lockout{MaxFailures: 3, Window: 10 * time.Minute, Duration: 15 * time.Minute}
	})
}

const (
	aliceEmail = LoginByEmail + "alice@example.com"
	aliceUser  = LoginByUser + "alice"
)

// withAlice sets the lockout policy and gives alice an email and a password.
// It returns the credential version a login must name.
func withAlice(w *twins) uint64 {
	w.mustApply(t0, lockoutPolicy())
	return w.mustApply(t0, credentials("alice", "alice@example.com", pwHash1)).Index
}

func failed3(loginID string, user events.UserID) *events.LoginFailed {
	return &events.LoginFailed{LoginID: loginID, UserID: user}
}

// wantLocked checks what LockedUntil reports for each identifier at now.
func (w *twins) wantLocked(now int64, want map[string]int64) {
	w.tb.Helper()
	for key, until := range want {
		if got := w.f().LockedUntil(now, key); got != until {
			w.tb.Errorf("LockedUntil(%s) at %s = %s, want %s", key, rel(now), relOrZero(got), relOrZero(until))
		}
	}
}

func relOrZero(t int64) string {
	if t == 0 {
		return "0"
	}
	return rel(t)
}

func TestLockout_LocksAtTheNthFailureWithinTheWindow(t *testing.T) {
	w := newTwins(t)
	cv := withAlice(w)
	for i, at := range []int64{t0 + minute, t0 + 2*minute} {
		if res := w.mustApply(at, failed3(aliceEmail, "alice")); res.LockedUntil != 0 {
			t.Fatalf("failure %d locked until %s", i+1, rel(res.LockedUntil))
		}
		w.wantLocked(at, map[string]int64{aliceEmail: 0, aliceUser: 0})
	}
	third := t0 + 3*minute
	until := third + 15*minute
	res := w.mustApply(third, failed3(aliceEmail, "alice"))
	if res.LockedUntil != until {
		t.Fatalf("third failure: LockedUntil %s, want %s", relOrZero(res.LockedUntil), rel(until))
	}
	w.wantLocked(third, map[string]int64{aliceEmail: until, aliceUser: until})

	// Locked logins are refused even with the right password, and change
	// nothing.
	for _, loginID := range []string{aliceEmail, aliceUser} {
		res := w.unchangedBy(third+minute, login("s1", "alice", loginID, cv), ErrLocked)
		if res.LockedUntil != until || res.Session != nil {
			t.Errorf("login by %s: LockedUntil %s session %v, want %s and no session", loginID, relOrZero(res.LockedUntil), res.Session, rel(until))
		}
	}
	// The lock ends exactly at lockedUntil.
	w.unchangedBy(until-1, login("s1", "alice", aliceEmail, cv), ErrLocked)
	w.wantLocked(until, map[string]int64{aliceEmail: 0, aliceUser: 0})
	w.mustApply(until, login("s1", "alice", aliceEmail, cv))
	w.checkSnapshots()
}

func TestLockout_FailuresOlderThanTheWindowDoNotCount(t *testing.T) {
	w := newTwins(t)
	withAlice(w)
	w.mustApply(t0, failed3(aliceEmail, "alice"))
	w.mustApply(t0+minute, failed3(aliceEmail, "alice"))
	// Ten minutes after the first failure, it has left the window: two
	// failures count, not three.
	if res := w.mustApply(t0+10*minute, failed3(aliceEmail, "alice")); res.LockedUntil != 0 {
		t.Fatalf("a failure outside the window counted: locked until %s", rel(res.LockedUntil))
	}
	w.wantLocked(t0+10*minute, map[string]int64{aliceEmail: 0, aliceUser: 0})
	// The next one, while the second is still inside, locks.
	at := t0 + 10*minute + 30*time.Second.Nanoseconds()
	if res := w.mustApply(at, failed3(aliceEmail, "alice")); res.LockedUntil != at+15*minute {
		t.Fatalf("third failure within the window: locked until %s, want %s", relOrZero(res.LockedUntil), rel(at+15*minute))
	}
}

func TestLockout_FailuresWhileLockedDoNotExtendIt(t *testing.T) {
	w := newTwins(t)
	cv := withAlice(w)
	for i := range 3 {
		w.mustApply(t0+int64(i)*minute, failed3(aliceUser, "alice"))
	}
	until := t0 + 2*minute + 15*minute
	w.wantLocked(t0+2*minute, map[string]int64{aliceUser: until, aliceEmail: 0})
	for _, at := range []int64{t0 + 5*minute, t0 + 10*minute, until - 1} {
		res := w.mustApply(at, failed3(aliceUser, "alice"))
		if res.LockedUntil != until {
			t.Errorf("failure at %s while locked: LockedUntil %s, want %s unchanged", rel(at), relOrZero(res.LockedUntil), rel(until))
		}
	}
	w.wantLocked(until-1, map[string]int64{aliceUser: until})
	w.wantLocked(until, map[string]int64{aliceUser: 0})

	// Once the lock is over, counting starts again from zero: the failures
	// made while locked were not recorded.
	for i := range 2 {
		if res := w.mustApply(until+int64(i)*minute, failed3(aliceUser, "alice")); res.LockedUntil != 0 {
			t.Fatalf("failure %d after the lock: locked until %s", i+1, rel(res.LockedUntil))
		}
	}
	w.mustApply(until+2*minute, login("s1", "alice", aliceUser, cv))
}

func TestLockout_EmailFailuresLockTheUserAndUserFailuresLockTheEmail(t *testing.T) {
	until := t0 + 17*minute
	for _, c := range []struct {
		name      string
		failed    string           // the key the failures are counted under
		locked    map[string]int64 // key -> locked until
		loginWith string           // a login by the other key
	}{
		{"by email", aliceEmail, map[string]int64{aliceEmail: until, aliceUser: until}, aliceUser},
		// Only the user key is counted, but a login by email checks it too.
		{"by user id", aliceUser, map[string]int64{aliceEmail: 0, aliceUser: until}, aliceEmail},
	} {
		t.Run(c.name, func(t *testing.T) {
			w := newTwins(t)
			cv := withAlice(w)
			for i := range 3 {
				w.mustApply(t0+int64(i)*minute, failed3(c.failed, "alice"))
			}
			w.wantLocked(t0+3*minute, c.locked)
			if res := w.unchangedBy(t0+3*minute, login("s1", "alice", c.loginWith, cv), ErrLocked); res.LockedUntil != until {
				t.Errorf("login by %s: LockedUntil %s", c.loginWith, relOrZero(res.LockedUntil))
			}
		})
	}
	t.Run("mixed", func(t *testing.T) {
		w := newTwins(t)
		cv := withAlice(w)
		w.mustApply(t0, failed3(aliceEmail, "alice"))
		w.mustApply(t0+minute, failed3(aliceUser, "alice"))
		res := w.mustApply(t0+2*minute, failed3(aliceEmail, "alice"))
		// The user key saw three failures, the email two.
		until := t0 + 17*minute
		if res.LockedUntil != until {
			t.Errorf("LockedUntil %s, want %s (the user key's lock)", relOrZero(res.LockedUntil), rel(until))
		}
		w.wantLocked(t0+2*minute, map[string]int64{aliceEmail: 0, aliceUser: until})
		w.unchangedBy(t0+2*minute, login("s1", "alice", aliceEmail, cv), ErrLocked)
	})
}

func TestLockout_UnknownIdentifiersAreCounted(t *testing.T) {
	w := newTwins(t)
	w.mustApply(t0, lockoutPolicy())
	const nobody = LoginByEmail + "nobody@example.com"
	var res *Result
	for i := range 3 {
		// A UserID naming no known user is not counted under "user:".
		res = w.mustApply(t0+int64(i)*minute, failed3(nobody, "ghost"))
	}
	until := t0 + 17*minute
	if res.LockedUntil != until {
		t.Fatalf("LockedUntil %s, want %s", relOrZero(res.LockedUntil), rel(until))
	}
	w.wantLocked(t0+2*minute, map[string]int64{nobody: until, LoginByUser + "ghost": 0})
	if st := w.f().Stats(); st.Lockouts != 1 || st.Accounts != 0 {
		t.Errorf("Stats = %+v, want one lockout record and no account", st)
	}
	// A user id that names nobody locks under its own identifier the same
	// way: a 423 tells nothing about which accounts exist.
	for i := range 3 {
		res = w.mustApply(t0+int64(i)*minute, failed3(LoginByUser+"ghost", ""))
	}
	if res.LockedUntil != until {
		t.Errorf("unknown user id: LockedUntil %s, want %s", relOrZero(res.LockedUntil), rel(until))
	}
}

func TestLockout_OffRecordsNothing(t *testing.T) {
	w := newTwins(t)
	w.mustApply(t0, policySet(func(p *Policy) { p.Lockout.MaxFailures = 0 }))
	w.mustApply(t0, credentials("alice", "alice@example.com", pwHash1))
	before := stateBytes(t, w.f())
	for i := range 10 {
		res := w.mustApply(t0+int64(i), failed3(aliceEmail, "alice"))
		if res.LockedUntil != 0 || res.Count != 0 {
			t.Fatalf("failure %d with lockout off: %+v", i+1, res)
		}
	}
	if after := stateBytes(t, w.f()); !bytes.Equal(before, after) {
		t.Error("failures with lockout off changed the state")
	}
	if st := w.f().Stats(); st.Lockouts != 0 {
		t.Errorf("%d lockout records with lockout off", st.Lockouts)
	}
	if next := w.f().NextExpiry(); next != noTime {
		t.Errorf("NextExpiry %s with nothing to collect", rel(next))
	}
}

func TestLockout_EmptyLoginIDIsInvalid(t *testing.T) {
	w := newTwins(t)
	w.mustApply(t0, lockoutPolicy())
	w.unchangedBy(t0, failed3("", "alice"), ErrInvalid)
}

func TestLogin_SuccessClearsTheFailureCount(t *testing.T) {
	w := newTwins(t)
	cv := withAlice(w)
	w.mustApply(t0, failed3(aliceEmail, "alice"))
	w.mustApply(t0+minute, failed3(aliceEmail, "alice"))
	w.mustApply(t0+2*minute, login("s1", "alice", aliceEmail, cv))
	// Two more failures would have been the fourth and fifth: they are the
	// first and second now.
	for i := range 2 {
		if res := w.mustApply(t0+3*minute+int64(i), failed3(aliceEmail, "alice")); res.LockedUntil != 0 {
			t.Fatalf("failure %d after a successful login locked until %s", i+1, rel(res.LockedUntil))
		}
	}
	w.mustApply(t0+4*minute, login("s2", "alice", aliceUser, cv))
	// The login by user id cleared the user key; the email's count was
	// cleared by the first login and holds two failures since.
	w.wantLocked(t0+4*minute, map[string]int64{aliceEmail: 0, aliceUser: 0})
	if res := w.mustApply(t0+5*minute, failed3(aliceEmail, "alice")); res.LockedUntil != t0+20*minute {
		t.Errorf("third email failure since the first login: LockedUntil %s, want %s", relOrZero(res.LockedUntil), rel(t0+20*minute))
	}
}

func TestUnlock_ClearsTheUserAndItsEmail(t *testing.T) {
	w := newTwins(t)
	cv := withAlice(w)
	for i := range 3 {
		w.mustApply(t0+int64(i), failed3(aliceEmail, "alice"))
	}
	w.mustApply(t0, failed3(LoginByEmail+"nobody@example.com", ""))
	res := w.mustApply(t0+minute, &events.UserUnlocked{UserID: "alice"})
	if res.Count != 2 {
		t.Errorf("Count = %d, want 2 (the user id and the email)", res.Count)
	}
	w.wantLocked(t0+minute, map[string]int64{aliceEmail: 0, aliceUser: 0})
	if st := w.f().Stats(); st.Lockouts != 1 {
		t.Errorf("%d lockout records left, want only the unrelated one", st.Lockouts)
	}
	w.mustApply(t0+minute, login("s1", "alice", aliceEmail, cv))

	// A known user with nothing to clear.
	if res := w.mustApply(t0+minute, &events.UserUnlocked{UserID: "alice"}); res.Count != 0 {
		t.Errorf("unlocking an unlocked user: Count %d", res.Count)
	}
	// An unknown user with no lockout.
	w.unchangedBy(t0+minute, &events.UserUnlocked{UserID: "ghost"}, ErrNotFound)
	// An unknown user id that was locked as an identifier.
	for i := range 3 {
		w.mustApply(t0+2*minute+int64(i), failed3(LoginByUser+"ghost", ""))
	}
	if res := w.mustApply(t0+3*minute, &events.UserUnlocked{UserID: "ghost"}); res.Count != 1 {
		t.Errorf("unlocking an unknown but locked user id: Count %d, want 1", res.Count)
	}
	w.wantLocked(t0+3*minute, map[string]int64{LoginByUser + "ghost": 0})
	w.checkSnapshots()
}

func TestLockout_PrunedOnceItNoLongerMatters(t *testing.T) {
	w := newTwins(t)
	withAlice(w)
	const nobody = LoginByEmail + "nobody@example.com"
	w.mustApply(t0, failed3(nobody, "")) // one failure: matters until t0+10m
	for i := range 3 {
		w.mustApply(t0+int64(i+1)*minute, failed3(aliceUser, "alice")) // locked until t0+18m
	}
	if next := w.f().NextExpiry(); next != t0+10*minute {
		t.Fatalf("NextExpiry %s, want t0+10m (the oldest failure leaves the window)", rel(next))
	}
	// Collecting before that drops nothing.
	w.mustApply(t0+9*minute, &events.SessionsExpired{Until: t0 + 9*minute})
	if st := w.f().Stats(); st.Lockouts != 2 {
		t.Fatalf("%d lockout records at t0+9m, want 2", st.Lockouts)
	}
	w.mustApply(t0+10*minute, &events.SessionsExpired{Until: t0 + 10*minute})
	if st := w.f().Stats(); st.Lockouts != 1 {
		t.Fatalf("%d lockout records at t0+10m, want 1 (the lock)", st.Lockouts)
	}
	if next := w.f().NextExpiry(); next != t0+18*minute {
		t.Errorf("NextExpiry %s, want t0+18m (the end of the lock)", rel(next))
	}
	w.wantLocked(t0+10*minute, map[string]int64{aliceUser: t0 + 18*minute})
	w.mustApply(t0+18*minute, &events.SessionsExpired{Until: t0 + 18*minute})
	if st := w.f().Stats(); st.Lockouts != 0 {
		t.Errorf("%d lockout records after the lock ended", st.Lockouts)
	}
	if next := w.f().NextExpiry(); next != noTime {
		t.Errorf("NextExpiry %s with nothing left", rel(next))
	}
	w.checkSnapshots()
}

func TestLockout_SurvivesSnapshotRestore(t *testing.T) {
	w := newTwins(t)
	cv := withAlice(w)
	for i := range 3 {
		w.mustApply(t0+int64(i)*minute, failed3(aliceEmail, "alice"))
	}
	w.mustApply(t0+3*minute, failed3(LoginByEmail+"nobody@example.com", ""))
	r := w.checkSnapshots()
	until := t0 + 17*minute
	for _, key := range []string{aliceEmail, aliceUser} {
		if got := r.LockedUntil(t0+4*minute, key); got != until {
			t.Errorf("restored LockedUntil(%s) = %s, want %s", key, relOrZero(got), rel(until))
		}
	}
	if r.Stats() != w.f().Stats() || r.NextExpiry() != w.f().NextExpiry() {
		t.Errorf("restored stats %+v next %d, original %+v next %d", r.Stats(), r.NextExpiry(), w.f().Stats(), w.f().NextExpiry())
	}
	// The restored FSM refuses the login like the original and goes on
	// exactly like it.
	hr := &harness{tb: t, f: r, index: w.a.index, req: w.a.req}
	resR := hr.apply(t0+4*minute, login("s1", "alice", aliceUser, cv))
	resA := w.a.apply(t0+4*minute, login("s1", "alice", aliceUser, cv))
	if !sameResult(resR, resA) || resR.LockedUntil != until || resA.LockedUntil != until {
		t.Errorf("login after restore %+v, original %+v", resR, resA)
	}
	hr.apply(t0+20*minute, &events.SessionsExpired{Until: t0 + 20*minute})
	w.a.apply(t0+20*minute, &events.SessionsExpired{Until: t0 + 20*minute})
	if !bytes.Equal(snapshotBytes(t, r), snapshotBytes(t, w.a.f)) {
		t.Error("the restored FSM diverges from the original")
	}
}
