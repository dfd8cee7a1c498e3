package fsm

import (
	"bytes"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/sessiond/sessiond/events"
)

// wantActiveSessions checks the ids of a user's active sessions at now,
// newest first.
func (w *twins) wantActiveSessions(user events.UserID, now int64, want ...events.SessionID) {
	w.tb.Helper()
	var got []events.SessionID
	for _, s := range w.f().UserSessions(user, now) {
		got = append(got, s.ID())
	}
	if !reflect.DeepEqual(got, want) {
		w.tb.Errorf("active sessions of %s at %s = %v, want %v", user, rel(now), got, want)
	}
}

// createIn is a SessionCreated of user in app.
func createIn(id events.SessionID, user events.UserID, app string) *events.SessionCreated {
	ev := created(id, user)
	ev.App = app
	return ev
}

func TestLimits_GlobalLimitDeniesAndChangesNothing(t *testing.T) {
	w := newTwins(t)
	w.mustApply(t0, policySet(func(p *Policy) { p.MaxSessionsPerUser = 2 }))
	w.create(t0, "s1", "alice", "default")
	w.create(t0+1, "s2", "alice", "web")
	res := w.unchangedBy(t0+2, createIn("s3", "alice", "mobile"), ErrSessionLimit)
	if res.Session != nil || res.Count != 0 {
		t.Errorf("refused create: %+v", res)
	}
	if _, ok := w.f().Session("s3"); ok {
		t.Error("the refused session was stored")
	}
	w.wantAccess(accessToken("s3", 0), t0+2, StatusUnknown)
	// Another user is not affected.
	w.create(t0+3, "b1", "bob", "default")
	w.wantActiveSessions("alice", t0+3, "s2", "s1")
	w.checkSnapshots()
}

// wantAccess checks ValidateAccess of a token at now on the first FSM.
func (w *twins) wantAccess(token string, now int64, want Status) {
	w.tb.Helper()
	w.a.wantAccess(token, now, want)
}

func TestLimits_RevokedAndExpiredSessionsDoNotCount(t *testing.T) {
	w := newTwins(t)
	w.mustApply(t0, policySet(func(p *Policy) { p.MaxSessionsPerUser = 2 }))
	w.create(t0, "s1", "alice", "default")
	w.create(t0, "s2", "alice", "default")
	w.mustApply(t0+minute, &events.SessionRevoked{SessionID: "s1", Scope: events.RevokeWholeSession, Reason: events.ReasonLogout})
	w.create(t0+minute, "s3", "alice", "default")
	w.unchangedBy(t0+minute, createIn("s4", "alice", "default"), ErrSessionLimit)

	// s2 ends at t0+22m30s (its refresh expiry); s3 a minute later.
	end := w.session("s2").EndsAt()
	if end != t0+22*minute+30*time.Second.Nanoseconds() {
		t.Fatalf("s2 ends at %s", rel(end))
	}
	w.unchangedBy(end-1, createIn("s4", "alice", "default"), ErrSessionLimit)
	w.create(end, "s4", "alice", "default")
	w.unchangedBy(end, createIn("s5", "alice", "default"), ErrSessionLimit)
	// A session whose access token alone was revoked still counts: it can
	// be refreshed.
	w.mustApply(end, &events.SessionRevoked{SessionID: "s4", Scope: events.RevokeAccessToken, Reason: events.ReasonLogout})
	w.unchangedBy(end, createIn("s5", "alice", "default"), ErrSessionLimit)
}

func TestLimits_UserLimitOverridesTheGlobalOne(t *testing.T) {
	cases := []struct {
		name    string
		global  int
		user    int
		allowed int // -1: unlimited
	}{
		{"stricter", 3, 1, 1},
		{"looser", 1, 3, 3},
		{"zero means unlimited", 1, 0, -1},
		{"limit where the policy has none", 0, 2, 2},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			w := newTwins(t)
			w.mustApply(t0, policySet(func(p *Policy) { p.MaxSessionsPerUser = tc.global }))
			w.mustApply(t0, &events.UserLimitSet{UserID: "alice", MaxSessions: tc.user})
			if u := w.user("alice"); !u.HasLimit || u.MaxSessions != tc.user {
				t.Fatalf("alice = %+v", u)
			}
			n := tc.allowed
			if n < 0 {
				n = 6
			}
			var ids []events.SessionID
			for i := range n {
				id := events.SessionID(fmt.Sprintf("a%d", i))
				w.create(t0+int64(i), id, "alice", "default")
				ids = append([]events.SessionID{id}, ids...)
			}
			if tc.allowed >= 0 {
				w.unchangedBy(t0+int64(n), createIn("over", "alice", "default"), ErrSessionLimit)
			}
			// The user's own limit does not apply to others.
			for i := range tc.global {
				w.create(t0+int64(n), events.SessionID(fmt.Sprintf("b%d", i)), "bob", "default")
			}
			if tc.global > 0 {
				w.unchangedBy(t0+int64(n), createIn("b-over", "bob", "default"), ErrSessionLimit)
			}

			// Clearing the user's limit falls back to the global one.
			w.mustApply(t0+int64(n), &events.UserLimitSet{UserID: "alice", Clear: true})
			if _, ok := w.f().User("alice"); ok {
				t.Error("a user with nothing but a cleared limit is still stored")
			}
			at := t0 + minute
			if tc.global == 0 || n < tc.global {
				w.create(at, "after-clear", "alice", "default")
			} else {
				w.unchangedBy(at, createIn("after-clear", "alice", "default"), ErrSessionLimit)
			}
			w.checkSnapshots()
		})
	}
}

func TestLimits_UserLimitSetRejectsOutOfRange(t *testing.T) {
	w := newTwins(t)
	for _, ev := range []*events.UserLimitSet{
		{UserID: "alice", MaxSessions: -1},
		{UserID: "alice", MaxSessions: 10001},
		{UserID: "", MaxSessions: 1},
	} {
		w.unchangedBy(t0, ev, ErrInvalid)
	}
	w.mustApply(t0, &events.UserLimitSet{UserID: "alice", MaxSessions: 10000})
}

func TestLimits_AppLimitCountsOnlyThatAppOfThatUser(t *testing.T) {
	w := newTwins(t)
	w.mustApply(t0, policySet(func(p *Policy) {
		p.AppMaxSessions = []AppLimit{{App: "mobile", MaxSessions: 3}, {App: "web", MaxSessions: 1}}
	}))
	w.create(t0, "m1", "alice", "mobile")
	w.create(t0, "m2", "alice", "mobile")
	w.create(t0, "w1", "alice", "web")
	w.create(t0, "bw1", "bob", "web") // bob's web session is bob's
	w.unchangedBy(t0, createIn("w2", "alice", "web"), ErrSessionLimit)
	w.create(t0, "m3", "alice", "mobile")
	w.unchangedBy(t0, createIn("m4", "alice", "mobile"), ErrSessionLimit)
	// Apps without a limit are unlimited.
	for i := range 5 {
		w.create(t0, events.SessionID(fmt.Sprintf("d%d", i)), "alice", "default")
	}
	w.checkSnapshots()
}

func TestLimits_TheStricterOfUserAndAppLimitApplies(t *testing.T) {
	t.Run("app stricter", func(t *testing.T) {
		w := newTwins(t)
		w.mustApply(t0, policySet(func(p *Policy) { p.AppMaxSessions = []AppLimit{{App: "web", MaxSessions: 2}} }))
		w.mustApply(t0, &events.UserLimitSet{UserID: "alice", MaxSessions: 5})
		w.create(t0, "w1", "alice", "web")
		w.create(t0, "w2", "alice", "web")
		w.unchangedBy(t0, createIn("w3", "alice", "web"), ErrSessionLimit)
		w.create(t0, "m1", "alice", "mobile")
	})
	t.Run("user stricter", func(t *testing.T) {
		w := newTwins(t)
		w.mustApply(t0, policySet(func(p *Policy) { p.AppMaxSessions = []AppLimit{{App: "web", MaxSessions: 5}} }))
		w.mustApply(t0, &events.UserLimitSet{UserID: "alice", MaxSessions: 2})
		w.create(t0, "m1", "alice", "mobile")
		w.create(t0, "w1", "alice", "web")
		w.unchangedBy(t0, createIn("w2", "alice", "web"), ErrSessionLimit)
	})
}

func TestLimits_EvictOldestRevokesTheOldestSessions(t *testing.T) {
	w := newTwins(t)
	w.mustApply(t0, policySet(func(p *Policy) {
		p.MaxSessionsPerUser = 2
		p.OnSessionLimit = events.OnLimitEvictOldest
	}))
	w.create(t0, "s1", "alice", "default")
	w.create(t0+minute, "s2", "alice", "web")
	w.create(t0+minute, "b1", "bob", "default")

	at := t0 + 2*minute
	res := w.mustApply(at, createIn("s3", "alice", "mobile"))
	if res.Count != 1 || res.Session == nil || res.Session.ID() != "s3" {
		t.Fatalf("create over the limit: %+v, want s3 with one eviction", res)
	}
	w.wantRevoked("s1", at, events.ReasonSessionLimit)
	if events.ReasonSessionLimit.String() != "session_limit" {
		t.Errorf("reason spelled %q", events.ReasonSessionLimit)
	}
	w.wantActiveSessions("alice", at, "s3", "s2")
	w.wantActive("b1", at)

	// A revoked session is neither counted nor evicted again.
	w.mustApply(at, &events.SessionRevoked{SessionID: "s2", Scope: events.RevokeWholeSession, Reason: events.ReasonLogout})
	if res := w.mustApply(at+minute, createIn("s4", "alice", "default")); res.Count != 0 {
		t.Errorf("create with room: Count %d", res.Count)
	}
	w.wantRevoked("s2", at, events.ReasonLogout)

	// A user limit lowered below the sessions held evicts as many as needed.
	w.mustApply(at+minute, &events.UserLimitSet{UserID: "alice", MaxSessions: 1})
	res = w.mustApply(at+2*minute, createIn("s5", "alice", "default"))
	if res.Count != 2 {
		t.Errorf("Count = %d, want 2", res.Count)
	}
	w.wantRevoked("s3", at+2*minute, events.ReasonSessionLimit)
	w.wantRevoked("s4", at+2*minute, events.ReasonSessionLimit)
	w.wantActiveSessions("alice", at+2*minute, "s5")
	w.checkSnapshots()
}

func TestLimits_EvictOldestOnlyInTheAppWhenTheAppLimitIsExceeded(t *testing.T) {
	w := newTwins(t)
	w.mustApply(t0, policySet(func(p *Policy) {
		p.AppMaxSessions = []AppLimit{{App: "web", MaxSessions: 1}}
		p.OnSessionLimit = events.OnLimitEvictOldest
	}))
	w.create(t0, "m1", "alice", "mobile") // the oldest, but not in web
	w.create(t0+minute, "w1", "alice", "web")
	w.create(t0+minute, "bw1", "bob", "web")
	at := t0 + 2*minute
	res := w.mustApply(at, createIn("w2", "alice", "web"))
	if res.Count != 1 {
		t.Errorf("Count = %d, want 1", res.Count)
	}
	w.wantRevoked("w1", at, events.ReasonSessionLimit)
	w.wantActiveSessions("alice", at, "w2", "m1")
	w.wantActive("bw1", at)
	w.checkSnapshots()
}

func TestLimits_EndSessionsEndsThemInTheSameStep(t *testing.T) {
	w := newTwins(t)
	w.mustApply(t0, policySet(func(p *Policy) { p.MaxSessionsPerUser = 2 }))
	w.create(t0, "s1", "alice", "default")
	w.create(t0, "s2", "alice", "default")

	at := t0 + minute
	ev := createIn("s3", "alice", "default")
	ev.EndSessions = []events.SessionID{"s1"}
	res := w.mustApply(at, ev)
	if res.Count != 1 || res.Session == nil {
		t.Fatalf("create ending s1: %+v", res)
	}
	w.wantRevoked("s1", at, events.ReasonUser)
	w.wantActiveSessions("alice", at, "s3", "s2")

	// Ending more than needed ends all that were named.
	ev = createIn("s4", "alice", "default")
	ev.EndSessions = []events.SessionID{"s2", "s3"}
	if res := w.mustApply(at+minute, ev); res.Count != 2 {
		t.Errorf("Count = %d, want 2", res.Count)
	}
	w.wantRevoked("s2", at+minute, events.ReasonUser)
	w.wantRevoked("s3", at+minute, events.ReasonUser)
	w.wantActiveSessions("alice", at+minute, "s4")
	w.checkSnapshots()
}

func TestLimits_EndSessionsNotEnoughIsDeniedAndEndsNothing(t *testing.T) {
	w := newTwins(t)
	w.create(t0, "s1", "alice", "default")
	w.create(t0, "s2", "alice", "default")
	w.mustApply(t0, &events.UserLimitSet{UserID: "alice", MaxSessions: 1})
	ev := createIn("s3", "alice", "default")
	ev.EndSessions = []events.SessionID{"s1"}
	w.unchangedBy(t0+minute, ev, ErrSessionLimit)
	w.wantActive("s1", t0+minute)
	w.wantActive("s2", t0+minute)
}

func TestLimits_EndSessionsWithEvictEndsOnlyWhatIsNeeded(t *testing.T) {
	w := newTwins(t)
	w.mustApply(t0, policySet(func(p *Policy) {
		p.MaxSessionsPerUser = 2
		p.OnSessionLimit = events.OnLimitEvictOldest
	}))
	w.create(t0, "s1", "alice", "default")
	w.create(t0, "s2", "alice", "default")
	at := t0 + minute
	ev := createIn("s3", "alice", "default")
	ev.EndSessions = []events.SessionID{"s2"}
	if res := w.mustApply(at, ev); res.Count != 1 {
		t.Errorf("Count = %d, want 1", res.Count)
	}
	w.wantRevoked("s2", at, events.ReasonUser)
	w.wantActiveSessions("alice", at, "s3", "s1")
}

func TestLimits_EndSessionsNeverTouchesAnotherUsersSession(t *testing.T) {
	w := newTwins(t)
	w.mustApply(t0, policySet(func(p *Policy) { p.MaxSessionsPerUser = 1 }))
	w.create(t0, "a1", "alice", "default")
	w.create(t0, "b1", "bob", "default")
	ev := createIn("a2", "alice", "default")
	ev.EndSessions = []events.SessionID{"b1"}
	w.unchangedBy(t0+minute, ev, ErrSessionLimit)
	w.wantActive("b1", t0+minute)

	// With room to spare, naming bob's session still leaves it alone.
	w.mustApply(t0+minute, &events.UserLimitSet{UserID: "alice", MaxSessions: 0})
	ev = createIn("a2", "alice", "default")
	ev.EndSessions = []events.SessionID{"a1", "b1"}
	if res := w.mustApply(t0+2*minute, ev); res.Count != 1 {
		t.Errorf("Count = %d, want 1 (alice's a1 only)", res.Count)
	}
	w.wantRevoked("a1", t0+2*minute, events.ReasonUser)
	w.wantActive("b1", t0+2*minute)
	w.wantActiveSessions("bob", t0+2*minute, "b1")
}

func TestLimits_ApplyToEveryWayOfMakingASession(t *testing.T) {
	for _, method := range []events.AuthMethod{events.AuthPassword, events.AuthExchange, events.AuthImpersonation} {
		t.Run(method.String(), func(t *testing.T) {
			w := newTwins(t)
			w.mustApply(t0, policySet(func(p *Policy) { p.MaxSessionsPerUser = 1 }))
			cv := w.mustApply(t0, credentials("alice", "alice@example.com", pwHash1)).Index
			ev := func(id events.SessionID) *events.SessionCreated {
				ev := created(id, "alice")
				ev.AuthMethod = method
				if method == events.AuthPassword {
					ev.LoginID, ev.CredentialVersion = aliceEmail, cv
				}
				return ev
			}
			w.mustApply(t0, ev("s1"))
			w.unchangedBy(t0+minute, ev("s2"), ErrSessionLimit)

			w.mustApply(t0+minute, policySet(func(p *Policy) {
				p.MaxSessionsPerUser = 1
				p.OnSessionLimit = events.OnLimitEvictOldest
			}))
			if res := w.mustApply(t0+2*minute, ev("s2")); res.Count != 1 {
				t.Errorf("evicting create: Count %d", res.Count)
			}
			w.wantRevoked("s1", t0+2*minute, events.ReasonSessionLimit)
		})
	}
}

func TestPolicySet_InvalidIsRefusedAndChangesNothing(t *testing.T) {
	valid := policySet(func(p *Policy) { p.AccessTTL = 5 * time.Minute; p.MaxSessionsPerUser = 3 })
	cases := []struct {
		name string
		edit func(p *Policy)
	}{
		{"access_ttl zero", func(p *Policy) { p.AccessTTL = 0 }},
		{"refresh_ttl too long", func(p *Policy) { p.RefreshTTL = 366 * 24 * time.Hour }},
		{"idle_timeout too short", func(p *Policy) { p.IdleTimeout = time.Second }},
		{"unknown on_session_limit", func(p *Policy) { p.OnSessionLimit = "queue" }},
		{"grace too long", func(p *Policy) { p.RefreshReuseGrace = 6 * time.Minute }},
		{"app limits unsorted", func(p *Policy) {
			p.AppMaxSessions = []AppLimit{{App: "web", MaxSessions: 1}, {App: "mobile", MaxSessions: 1}}
		}},
		{"negative max sessions", func(p *Policy) { p.MaxSessionsPerUser = -1 }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			w := newTwins(t)
			w.mustApply(t0, valid)
			w.unchangedBy(t0+minute, policySet(tc.edit), ErrInvalid)
			if got := w.f().Policy(); !reflect.DeepEqual(got, valid.Policy) {
				t.Errorf("policy after a refused change = %+v, want %+v", got, valid.Policy)
			}
		})
	}
}

func TestPolicySet_AppliesToSessionsCreatedAfterIt(t *testing.T) {
	w := newTwins(t)
	before := w.create(t0, "s1", "alice", "default")
	p := DefaultPolicy()
	p.AccessTTL = 5 * time.Minute
	p.RefreshTTL = time.Hour
	p.AbsoluteTTL = 2 * 24 * time.Hour
	p.RememberMeTTL = 3 * time.Hour
	at := t0 + minute
	w.mustApply(at, &events.PolicySet{Policy: p})
	if got := w.f().Policy(); !reflect.DeepEqual(got, p) {
		t.Errorf("Policy() = %+v, want %+v", got, p)
	}
	if s := w.session("s1"); !reflect.DeepEqual(*s, before) {
		t.Errorf("the policy change altered an existing session:\n%+v\nwas\n%+v", s, before)
	}
	s2 := w.create(at, "s2", "alice", "default")
	if s2.AccessExpiresAt != at+5*minute || s2.RefreshExpiresAt != at+hour || s2.ExpiresAt != at+2*day {
		t.Errorf("new session: access %s refresh %s absolute %s", rel(s2.AccessExpiresAt), rel(s2.RefreshExpiresAt), rel(s2.ExpiresAt))
	}
	ev := createIn("s3", "alice", "default")
	ev.RememberMe = true
	s3 := *w.mustApply(at, ev).Session
	if s3.AccessExpiresAt != at+5*minute || s3.RefreshExpiresAt != at+3*hour || s3.ExpiresAt != at+3*hour {
		t.Errorf("new remember-me session: access %s refresh %s absolute %s", rel(s3.AccessExpiresAt), rel(s3.RefreshExpiresAt), rel(s3.ExpiresAt))
	}
	// s1 keeps living by the old policy's times.
	w.wantAccess(accessToken("s1", 0), t0+15*minute-1, StatusActive)
	w.wantAccess(accessToken("s2", 0), at+5*minute, StatusExpired)
	if r := w.checkSnapshots(); !reflect.DeepEqual(r.Policy(), p) {
		t.Errorf("restored policy %+v", r.Policy())
	}
}

func TestPolicySet_RefreshTTLFollowsAccessTTL(t *testing.T) {
	w := newTwins(t)
	for i, access := range []time.Duration{10 * time.Minute, 40 * time.Minute} {
		at := t0 + int64(i)*hour
		w.mustApply(at, policySet(func(p *Policy) { p.AccessTTL = access }))
		got := w.f().Policy()
		if !got.RefreshFollowsAccess() || got.EffectiveRefreshTTL() != access*3/2 {
			t.Errorf("access %s: follows %v, effective refresh %s", access, got.RefreshFollowsAccess(), got.EffectiveRefreshTTL())
		}
		id := events.SessionID(fmt.Sprintf("s%d", i))
		s := w.create(at, id, "alice", "default")
		if s.AccessExpiresAt != at+int64(access) || s.RefreshExpiresAt != at+int64(access)*3/2 {
			t.Errorf("access %s: session access %s refresh %s", access, rel(s.AccessExpiresAt), rel(s.RefreshExpiresAt))
		}
	}
	// Set explicitly, it no longer follows.
	w.mustApply(t0+3*hour, policySet(func(p *Policy) { p.AccessTTL = 40 * time.Minute; p.RefreshTTL = 10 * time.Minute }))
	if got := w.f().Policy(); got.RefreshFollowsAccess() || got.EffectiveRefreshTTL() != 10*time.Minute {
		t.Errorf("explicit refresh: follows %v, effective %s", got.RefreshFollowsAccess(), got.EffectiveRefreshTTL())
	}
	s := w.create(t0+3*hour, "s-explicit", "alice", "default")
	if s.RefreshExpiresAt != t0+3*hour+10*minute {
		t.Errorf("explicit refresh expiry %s", rel(s.RefreshExpiresAt))
	}
}

func TestLimits_DeniedPasswordLoginChangesNothing(t *testing.T) {
	// docs/cluster.md#the-replicated-state-machine: an entry the rules reject
	// is a no-op. A password login over the limit is refused (409); it must not
	// clear the failure count.
	w := newTwins(t)
	w.mustApply(t0, policySet(func(p *Policy) {
		p.MaxSessionsPerUser = 1
		p.Lockout = Lockout{MaxFailures: 3, Window: 10 * time.Minute, Duration: 15 * time.Minute}
	}))
	cv := w.mustApply(t0, credentials("alice", "alice@example.com", pwHash1)).Index
	w.mustApply(t0, login("s1", "alice", aliceEmail, cv))
	w.mustApply(t0+minute, &events.LoginFailed{LoginID: aliceEmail, UserID: "alice"})
	w.mustApply(t0+minute, &events.LoginFailed{LoginID: aliceEmail, UserID: "alice"})

	before := stateBytes(t, w.f())
	w.wantErr(t0+2*minute, login("s2", "alice", aliceEmail, cv), ErrSessionLimit)
	if after := stateBytes(t, w.f()); !bytes.Equal(before, after) {
		t.Errorf("the refused login changed the state (lockout records %d)", w.f().Stats().Lockouts)
	}
	// No login succeeded: the third failure within the window locks.
	res := w.mustApply(t0+3*minute, &events.LoginFailed{LoginID: aliceEmail, UserID: "alice"})
	if res.LockedUntil != t0+18*minute {
		t.Errorf("third failure: LockedUntil %s, want %s", relOrZero(res.LockedUntil), rel(t0+18*minute))
	}
}

func TestLimits_EvictOldestEvictsNoMoreThanNeeded(t *testing.T) {
	// Over both the user limit (3) and the web limit (1): evicting the
	// oldest web session brings the user within both, so the older mobile
	// session must stay.
	w := newTwins(t)
	w.mustApply(t0, policySet(func(p *Policy) {
		p.MaxSessionsPerUser = 3
		p.AppMaxSessions = []AppLimit{{App: "web", MaxSessions: 1}}
		p.OnSessionLimit = events.OnLimitEvictOldest
	}))
	w.create(t0, "m1", "alice", "mobile")
	w.create(t0+minute, "w1", "alice", "web")
	w.create(t0+2*minute, "m2", "alice", "mobile")
	at := t0 + 3*minute
	res := w.mustApply(at, createIn("w2", "alice", "web"))
	if res.Count != 1 {
		t.Errorf("Count = %d, want 1", res.Count)
	}
	w.wantRevoked("w1", at, events.ReasonSessionLimit)
	w.wantActive("m1", at)
	w.wantActiveSessions("alice", at, "w2", "m2", "m1")
}
