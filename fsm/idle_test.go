package fsm

import (
	"testing"
	"time"

	"github.com/sessiond/sessiond/events"
)

// idlePolicy sets a ten-minute idle timeout and a 30-minute access token, so
// that idleness, not the token's expiry, is what ends a quiet session.
func idlePolicy(idle time.Duration) *events.PolicySet {
	return policySet(func(p *Policy) {
		p.AccessTTL = 30 * time.Minute
		p.IdleTimeout = idle
	})
}

func touches(ts ...events.Touch) *events.SessionsTouched {
	return &events.SessionsTouched{Touches: ts}
}

func TestIdle_SessionsCarryTheIdleTimeoutOfTheirCreation(t *testing.T) {
	w := newTwins(t)
	w.mustApply(t0, idlePolicy(0))
	before := w.create(t0, "s-before", "alice", "default")
	w.mustApply(t0, idlePolicy(10*time.Minute))
	after := w.create(t0, "s-after", "alice", "default")
	w.mustApply(t0+minute, idlePolicy(0))
	later := w.create(t0+minute, "s-later", "alice", "default")

	if before.IdleTimeout() != 0 || after.IdleTimeout() != 10*minute || later.IdleTimeout() != 0 {
		t.Fatalf("idle timeouts %d / %d / %d, want 0 / 10m / 0", before.IdleTimeout(), after.IdleTimeout(), later.IdleTimeout())
	}
	if d := before.IdleDeadline(0); d != noTime {
		t.Errorf("IdleDeadline without an idle timeout = %d, want never", d)
	}
	// Twenty quiet minutes: only the session created under the timeout is
	// over, and turning the timeout off later did not change it.
	at := t0 + 20*minute
	w.wantAccess(accessToken("s-before", 0), at, StatusActive)
	w.wantAccess(accessToken("s-after", 0), at, StatusExpired)
	w.wantAccess(accessToken("s-later", 0), at, StatusActive)
	r := w.checkSnapshots()
	if s, _ := r.Session("s-after"); s.IdleTimeout() != 10*minute {
		t.Errorf("restored idle timeout %d", s.IdleTimeout())
	}
}

func TestIdle_ValidateAccessExpiresAtLastSeenPlusTheTimeout(t *testing.T) {
	w := newTwins(t)
	w.mustApply(t0, idlePolicy(10*time.Minute))
	w.create(t0, "s1", "alice", "default")
	deadline := t0 + 10*minute

	w.wantAccess(accessToken("s1", 0), deadline-1, StatusActive)
	w.wantAccess(accessToken("s1", 0), deadline, StatusExpired)
	w.a.wantLookup(accessToken("s1", 0), deadline, TokenAccess, StatusExpired)
	w.a.wantLookup(refreshToken("s1", 0), deadline-1, TokenRefresh, StatusActive)
	w.a.wantLookup(refreshToken("s1", 0), deadline, TokenRefresh, StatusExpired)

	s := w.session("s1")
	if d := s.IdleDeadline(0); d != deadline {
		t.Errorf("IdleDeadline(0) = %s", rel(d))
	}
	if st := s.Status(deadline); st != StatusExpired {
		t.Errorf("Status at the deadline %s", st)
	}
	// A use this node saw, not yet replicated, keeps it alive for another
	// timeout from that use; an older one changes nothing.
	lastUse := t0 + 5*minute
	if d := s.IdleDeadline(lastUse); d != lastUse+10*minute {
		t.Errorf("IdleDeadline(t0+5m) = %s", rel(d))
	}
	if d := s.IdleDeadline(t0 - minute); d != deadline {
		t.Errorf("IdleDeadline of a use before the last seen = %s", rel(d))
	}
	for _, c := range []struct {
		now  int64
		use  int64
		want Status
	}{
		{deadline, lastUse, StatusActive},
		{lastUse + 10*minute - 1, lastUse, StatusActive},
		{lastUse + 10*minute, lastUse, StatusExpired},
		{deadline, 0, StatusExpired},
	} {
		if got := s.AccessStatusOf(ah("s1", 0), c.now, c.use); got != c.want {
			t.Errorf("AccessStatusOf at %s with last use %s = %s, want %s", rel(c.now), relOrZero(c.use), got, c.want)
		}
		if got := s.StatusAt(c.now, c.use); got != c.want {
			t.Errorf("StatusAt(%s, %s) = %s, want %s", rel(c.now), relOrZero(c.use), got, c.want)
		}
		if got := s.RefreshStatusAt(rh("s1", 0), c.now, c.use); got != c.want {
			t.Errorf("RefreshStatusAt(%s, %s) = %s, want %s", rel(c.now), relOrZero(c.use), got, c.want)
		}
	}
	if got := s.AccessStatusOf(ah("s1", 9), deadline-1, 0); got != StatusUnknown {
		t.Errorf("AccessStatusOf a token the session never held = %s", got)
	}

	// UserSessions lists only sessions that are not idle.
	w.wantActiveSessions("alice", deadline-1, "s1")
	w.wantActiveSessions("alice", deadline)
}

func TestTouch_MovesLastSeenForwardOnly(t *testing.T) {
	w := newTwins(t)
	w.mustApply(t0, idlePolicy(10*time.Minute))
	for _, id := range []events.SessionID{"s1", "s2", "s3"} {
		w.create(t0, id, "alice", "default")
	}
	w.mustApply(t0+minute, &events.SessionRevoked{SessionID: "s3", Scope: events.RevokeWholeSession, Reason: events.ReasonLogout})

	at := t0 + 5*minute
	res := w.mustApply(at, touches(
		events.Touch{SessionID: "ghost", At: t0 + 4*minute},
		events.Touch{SessionID: "s1", At: t0 + 3*minute},
		events.Touch{SessionID: "s2", At: t0 + 4*minute},
		events.Touch{SessionID: "s3", At: t0 + 4*minute},
	))
	if res.Count != 2 {
		t.Errorf("Count = %d, want 2 (unknown and revoked sessions are ignored)", res.Count)
	}
	wantSeen := func(id events.SessionID, want int64) {
		t.Helper()
		if got := w.session(id).LastSeenAt; got != want {
			t.Errorf("%s last seen %s, want %s", id, rel(got), rel(want))
		}
	}
	wantSeen("s1", t0+3*minute)
	wantSeen("s2", t0+4*minute)
	wantSeen("s3", t0)
	if _, ok := w.f().Session("ghost"); ok {
		t.Error("a touch created a session")
	}

	// Never back, never past the event's own time; the same time again is
	// no change.
	at = t0 + 6*minute
	res = w.mustApply(at, touches(
		events.Touch{SessionID: "s1", At: t0 + 2*minute},
		events.Touch{SessionID: "s2", At: t0 + 9*minute},
	))
	if res.Count != 1 {
		t.Errorf("Count = %d, want 1", res.Count)
	}
	wantSeen("s1", t0+3*minute)
	wantSeen("s2", at)
	if res := w.mustApply(at, touches(events.Touch{SessionID: "s1", At: t0 + 3*minute})); res.Count != 0 {
		t.Errorf("a touch at the last seen time counted %d", res.Count)
	}
	if res := w.mustApply(at, touches()); res.Count != 0 {
		t.Errorf("an empty touch counted %d", res.Count)
	}

	// The touches moved the idle deadlines.
	w.wantAccess(accessToken("s1", 0), t0+13*minute-1, StatusActive)
	w.wantAccess(accessToken("s1", 0), t0+13*minute, StatusExpired)
	w.wantAccess(accessToken("s2", 0), t0+16*minute-1, StatusActive)
	w.wantAccess(accessToken("s2", 0), t0+16*minute, StatusExpired)
	w.wantAccess(accessToken("s3", 0), at, StatusRevoked)
	r := w.checkSnapshots()
	if s, _ := r.Session("s2"); s.LastSeenAt != at {
		t.Errorf("restored last seen %s", rel(s.LastSeenAt))
	}
}

func TestIdle_RefreshCarryingALaterUseSucceeds(t *testing.T) {
	w := newTwins(t)
	w.mustApply(t0, idlePolicy(10*time.Minute))
	w.create(t0, "s1", "alice", "default")
	at := t0 + 12*minute // idle since t0+10m as far as the FSM knows

	w.unchangedBy(at, refreshed("s1", 1), ErrUnauthenticated)
	tooOld := refreshed("s1", 1)
	tooOld.LastUsedAt = t0 + 2*minute // the window ended at t0+12m
	w.unchangedBy(at, tooOld, ErrUnauthenticated)

	ev := refreshed("s1", 1)
	ev.LastUsedAt = t0 + 5*minute
	res := w.mustApply(at, ev)
	if res.Session == nil || res.Session.LastSeenAt != at {
		t.Fatalf("refresh with a recent use: %+v", res)
	}
	w.wantAccess(accessToken("s1", 1), at+10*minute-1, StatusActive)
	w.wantAccess(accessToken("s1", 1), at+10*minute, StatusExpired)
	w.checkSnapshots()
}

func TestIdle_RevocationsStillReachAnIdleSession(t *testing.T) {
	w := newTwins(t)
	w.mustApply(t0, idlePolicy(10*time.Minute))
	w.mustApply(t0, credentials("carol", "", pwHash1))
	for _, s := range []struct {
		id   events.SessionID
		user events.UserID
	}{{"a1", "alice"}, {"a2", "alice"}, {"b1", "bob"}, {"c1", "carol"}, {"d1", "dave"}} {
		w.create(t0, s.id, s.user, "default")
	}
	// Idle as far as the FSM knows, yet perhaps used on a node that has
	// not replicated it: a revocation must still take it away.
	at := t0 + 11*minute
	w.wantActiveSessions("alice", at)
	if res := w.mustApply(at, &events.UserForceLoggedOut{UserID: "alice", Reason: events.ReasonAdmin}); res.Count != 2 {
		t.Errorf("force logout: Count %d, want 2", res.Count)
	}
	w.wantRevoked("a1", at, events.ReasonAdmin)
	w.wantRevoked("a2", at, events.ReasonAdmin)
	if res := w.mustApply(at, &events.SessionsBulkRevoked{Apps: []string{"default"}, Reason: events.ReasonBulk}); res.Count != 3 {
		t.Errorf("bulk revoke: Count %d, want 3", res.Count)
	}
	for _, id := range []events.SessionID{"b1", "c1", "d1"} {
		w.wantRevoked(id, at, events.ReasonBulk)
	}
	w.wantAccess(accessToken("a1", 0), at, StatusRevoked)
	w.checkSnapshots()
}

func TestIdle_PasswordChangeAndSingleRevokeReachAnIdleSession(t *testing.T) {
	w := newTwins(t)
	w.mustApply(t0, idlePolicy(10*time.Minute))
	w.mustApply(t0, credentials("alice", "", pwHash1))
	w.create(t0, "a1", "alice", "default")
	w.create(t0, "a2", "alice", "default")
	at := t0 + 11*minute
	if res := w.mustApply(at, &events.UserCredentialsSet{UserID: "alice", PasswordHash: pwHash2, Reason: events.ReasonPasswordReset}); res.Count != 2 {
		t.Errorf("password reset: Count %d, want 2", res.Count)
	}
	w.wantRevoked("a1", at, events.ReasonPasswordReset)

	w.create(at, "b1", "bob", "default")
	at2 := at + 11*minute
	if res := w.mustApply(at2, &events.SessionRevoked{SessionID: "b1", Scope: events.RevokeWholeSession, Reason: events.ReasonLogout}); res.Count != 1 {
		t.Errorf("revoke: Count %d, want 1", res.Count)
	}
	w.wantRevoked("b1", at2, events.ReasonLogout)
}

func TestIdle_IdleSessionsDoNotCountTowardsLimits(t *testing.T) {
	w := newTwins(t)
	w.mustApply(t0, policySet(func(p *Policy) {
		p.AccessTTL = 30 * time.Minute
		p.IdleTimeout = 10 * time.Minute
		p.MaxSessionsPerUser = 1
		p.OnSessionLimit = events.OnLimitEvictOldest
	}))
	w.create(t0, "s1", "alice", "default")
	w.mustApply(t0+5*minute, touches(events.Touch{SessionID: "s1", At: t0 + 5*minute}))
	// Still in use: the new session evicts it.
	res := w.mustApply(t0+14*minute, createIn("s2", "alice", "default"))
	if res.Count != 1 {
		t.Errorf("Count = %d, want 1", res.Count)
	}
	w.wantRevoked("s1", t0+14*minute, events.ReasonSessionLimit)
	// Idle: it no longer counts, and nothing is evicted.
	res = w.mustApply(t0+24*minute, createIn("s3", "alice", "default"))
	if res.Count != 0 {
		t.Errorf("Count = %d, want 0", res.Count)
	}
	if s := w.session("s2"); s.Revoked() {
		t.Error("an idle session was evicted")
	}
}
