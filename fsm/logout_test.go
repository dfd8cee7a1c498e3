package fsm

import (
	"errors"
	"testing"

	"github.com/sessiond/sessiond/events"
)

func TestForceLogout_RevokesUsersActiveSessions(t *testing.T) {
	h := newHarness(t)
	for _, id := range []events.SessionID{"a1", "a2", "a3", "a4"} {
		h.create(t0, id, "alice")
	}
	h.create(t0, "b1", "bob")
	h.mustApply(t0+minute, revokeEv("a2", events.RevokeWholeSession))

	at := t0 + 2*minute
	res := h.mustApply(at, &events.UserForceLoggedOut{UserID: "alice", Reason: events.ReasonPasswordChange, Except: "a3"})
	if res.Count != 2 {
		t.Errorf("force logout except a3 revoked %d, want 2 (a1, a4; a2 was already revoked)", res.Count)
	}
	for id, want := range map[events.SessionID]Status{"a1": StatusRevoked, "a2": StatusRevoked, "a3": StatusActive, "a4": StatusRevoked, "b1": StatusActive} {
		h.wantAccess(accessToken(id, 0), at, want)
	}
	for _, id := range []events.SessionID{"a1", "a4"} {
		if s := h.session(id); s.RevokeReason() != events.ReasonPasswordChange || s.RevokedAt() != at {
			t.Errorf("%s: reason %q at %s", id, s.RevokeReason(), rel(s.RevokedAt()))
		}
	}
	if s := h.session("a2"); s.RevokeReason() != events.ReasonLogout {
		t.Errorf("force logout overwrote a2's earlier revocation reason with %q", s.RevokeReason())
	}
	if us := h.f.UserSessions("alice", at); len(us) != 1 || us[0].ID() != "a3" {
		t.Errorf("UserSessions = %v, want [a3]", us)
	}

	// Without Except: the remaining one.
	res = h.mustApply(at+minute, &events.UserForceLoggedOut{UserID: "alice", Reason: events.ReasonAdmin})
	if res.Count != 1 {
		t.Errorf("second force logout revoked %d, want 1", res.Count)
	}
	res = h.mustApply(at+minute, &events.UserForceLoggedOut{UserID: "alice", Reason: events.ReasonAdmin})
	if res.Count != 0 {
		t.Errorf("third force logout revoked %d, want 0", res.Count)
	}
	h.wantAccess(accessToken("b1", 0), at+minute, StatusActive)
}

func TestForceLogout_SkipsExpiredSessionsAndUnknownUsers(t *testing.T) {
	h := newHarness(t)
	s := h.create(t0, "a1", "alice")
	h.create(s.EndsAt(), "a2", "alice")
	res := h.mustApply(s.EndsAt(), &events.UserForceLoggedOut{UserID: "alice", Reason: events.ReasonUserDeleted})
	if res.Count != 1 {
		t.Errorf("revoked %d, want 1 (a1 had expired)", res.Count)
	}
	if h.session("a1").Revoked() {
		t.Error("an expired session was marked revoked")
	}
	res = h.apply(s.EndsAt(), &events.UserForceLoggedOut{UserID: "nobody", Reason: events.ReasonAdmin})
	if res.Err != nil || res.Count != 0 {
		t.Errorf("unknown user: err %v count %d", res.Err, res.Count)
	}
	if res := h.apply(s.EndsAt(), &events.UserForceLoggedOut{UserID: "alice", Reason: 200}); !errors.Is(res.Err, ErrInvalid) {
		t.Errorf("unknown reason: %v, want ErrInvalid", res.Err)
	}
}

func TestBulkRevoke_CreatedBeforeIsStrict(t *testing.T) {
	h := newHarness(t)
	h.create(t0, "s0", "u0")
	h.create(t0+1, "s1", "u1")
	h.create(t0+2, "s2", "u2")
	res := h.mustApply(t0+10, &events.SessionsBulkRevoked{CreatedBefore: t0 + 1, Reason: events.ReasonBulk})
	if res.Count != 1 {
		t.Errorf("revoked %d, want 1 (only s0 was created strictly before t0+1)", res.Count)
	}
	for id, want := range map[events.SessionID]Status{"s0": StatusRevoked, "s1": StatusActive, "s2": StatusActive} {
		h.wantAccess(accessToken(id, 0), t0+10, want)
	}
	if s := h.session("s0"); s.RevokeReason() != events.ReasonBulk || s.RevokedAt() != t0+10 {
		t.Errorf("s0 revoked with %q at %s", s.RevokeReason(), rel(s.RevokedAt()))
	}
}

func TestBulkRevoke_AppsFilter(t *testing.T) {
	h := newHarness(t)
	for i, app := range []string{"mobile", "web", "admin", "web"} {
		ev := created(events.SessionID(rune('a'+i)), "alice")
		ev.App = app
		h.mustApply(t0, ev)
	}
	res := h.mustApply(t0+minute, &events.SessionsBulkRevoked{Apps: []string{"admin", "web"}, Reason: events.ReasonBulk})
	if res.Count != 3 {
		t.Errorf("revoked %d, want 3", res.Count)
	}
	for id, want := range map[events.SessionID]Status{"a": StatusActive, "b": StatusRevoked, "c": StatusRevoked, "d": StatusRevoked} {
		h.wantAccess(accessToken(id, 0), t0+minute, want)
	}
	// Already revoked sessions are not counted again.
	if res := h.mustApply(t0+minute, &events.SessionsBulkRevoked{Reason: events.ReasonBulk}); res.Count != 1 {
		t.Errorf("bulk revoke of everything revoked %d, want 1", res.Count)
	}
}

func TestBulkRevoke_ZeroMeansEverySessionSoFar(t *testing.T) {
	h := newHarness(t)
	h.create(t0, "old", "alice")
	at := t0 + minute
	h.create(at, "same-time", "alice")
	res := h.mustApply(at, &events.SessionsBulkRevoked{Reason: events.ReasonBulk})
	if res.Count != 2 {
		t.Errorf("revoked %d, want 2", res.Count)
	}
	h.wantAccess(accessToken("old", 0), at, StatusRevoked)
	// Every session so far, including one stamped with the event's own time.
	h.wantAccess(accessToken("same-time", 0), at, StatusRevoked)
	// Sessions created later are not touched.
	h.create(at+1, "new", "alice")
	h.wantAccess(accessToken("new", 0), at+1, StatusActive)
	if res := h.apply(at, &events.SessionsBulkRevoked{Reason: 200}); !errors.Is(res.Err, ErrInvalid) {
		t.Errorf("unknown reason: %v, want ErrInvalid", res.Err)
	}
}

// Regression guard (was a bug in fsm/apply.go, state.bulkRevoke: `if before == 0 || before > now {
// before = now }`): a CreatedBefore later than the event time is clamped
// to the event time, which is then excluded by the strict comparison. Every
// stored session was created at or before the event time, so the clamp
// changes nothing except that sessions created at exactly the event time
// escape a revocation whose CreatedBefore plainly includes them. node.stamp
// stamps events max(wall clock, last event time), so after a leader whose
// clock is behind takes over, many consecutive sessions share that very
// time; an admin "sign everyone out created before <my now>" then misses
// all of them.
func TestBulkRevoke_FutureCreatedBeforeIncludesSessionsOfTheEventTime(t *testing.T) {
	h := newHarness(t)
	at := t0 + hour
	h.create(at, "s1", "alice")
	h.create(at-minute, "s2", "alice") // a leader whose clock is behind: applied at `at` too
	res := h.mustApply(at, &events.SessionsBulkRevoked{CreatedBefore: at + minute, Reason: events.ReasonBulk})
	if res.Count != 2 {
		t.Errorf("bulk revoke of sessions created before t0+1h1m revoked %d, want 2", res.Count)
	}
	h.wantAccess(accessToken("s1", 0), at, StatusRevoked)
	h.wantAccess(accessToken("s2", 0), at, StatusRevoked)
}
