package fsm

import (
	"errors"
	"testing"

	"github.com/sessiond/sessiond/events"
)

// gcTime is the earliest time at which garbage collection removes a session
// ending at end: GC works in whole buckets of expiryBucket.
func gcTime(end int64) int64 { return (end/expiryBucket + 1) * expiryBucket }

func TestExpire_TombstoneStaysUntilItsEndThenLeavesEveryIndex(t *testing.T) {
	h := newHarness(t)
	h.create(t0, "s1", "alice")
	h.mustApply(t0+minute, refreshed("s1", 1))
	h.mustApply(t0+2*minute, revokeEv("s1", events.RevokeWholeSession))
	end := h.session("s1").EndsAt()

	// Before its end, GC keeps the tombstone: introspection says revoked and
	// reuse of a rotated refresh token is still recognised.
	for _, at := range []int64{t0 + 10*minute, end - 1} {
		if res := h.mustApply(at, &events.SessionsExpired{Until: at}); res.Count != 0 {
			t.Errorf("GC at %s removed %d sessions, want 0", rel(at), res.Count)
		}
		h.wantLookup(accessToken("s1", 1), at, TokenAccess, StatusRevoked)
		h.wantLookup(refreshToken("s1", 1), at, TokenRefresh, StatusRevoked)
		h.wantLookup(refreshToken("s1", 0), at, TokenRefresh, StatusRevoked)
		if _, ok := h.f.Session("s1"); !ok {
			t.Fatalf("tombstone gone at %s, before its end %s", rel(at), rel(end))
		}
	}
	if stats := h.f.Stats(); stats != (Stats{Sessions: 1, Revoked: 1, Users: 1}) {
		t.Errorf("Stats with a tombstone = %+v", stats)
	}
	if next := h.f.NextExpiry(); next < end || next != gcTime(end) {
		t.Errorf("NextExpiry = %s, want %s (the end of the bucket holding %s)", rel(next), rel(gcTime(end)), rel(end))
	}

	at := gcTime(end)
	if res := h.mustApply(at, &events.SessionsExpired{Until: at}); res.Count != 1 {
		t.Fatalf("GC at %s removed %d sessions, want 1", rel(at), res.Count)
	}
	for _, tok := range []string{accessToken("s1", 0), accessToken("s1", 1), refreshToken("s1", 0), refreshToken("s1", 1)} {
		h.wantLookup(tok, at, TokenNone, StatusUnknown)
	}
	h.wantAccess(accessToken("s1", 1), at, StatusUnknown)
	if _, ok := h.f.Session("s1"); ok {
		t.Error("Session() still finds the collected session")
	}
	if us := h.f.UserSessions("alice", t0); len(us) != 0 {
		t.Errorf("UserSessions still lists %d sessions", len(us))
	}
	if stats := h.f.Stats(); stats != (Stats{}) {
		t.Errorf("Stats after GC = %+v, want zero", stats)
	}
	if next := h.f.NextExpiry(); next != 1<<63-1 {
		t.Errorf("NextExpiry with nothing left = %d", next)
	}
	// The revoke guard and refresh now see an unknown session.
	if res := h.apply(at, revokeEv("s1", events.RevokeWholeSession)); !errors.Is(res.Err, ErrNotFound) {
		t.Errorf("revoke after GC: %v, want ErrNotFound", res.Err)
	}
	// The id and hashes are free again.
	h.create(at, "s1", "alice")
}

func TestExpire_RemovesExpiredSessionsOnlyAfterTheirEnd(t *testing.T) {
	h := newHarness(t)
	// Sessions ending at various points, one per user.
	ends := map[events.SessionID]int64{}
	for i, offset := range []int64{0, 30 * 1e9, 59 * 1e9, 61 * 1e9, 5 * minute, 2 * hour} {
		id := events.SessionID(rune('a' + i))
		s := h.create(t0+offset, id, events.UserID("u"+string(id)))
		ends[id] = s.EndsAt()
	}
	for at := t0; at <= t0+3*hour; at += 7 * 1e9 {
		h.mustApply(at, &events.SessionsExpired{Until: at})
		for id, end := range ends {
			_, ok := h.f.Session(id)
			if at < end && !ok {
				t.Fatalf("session %s (ends %s) removed at %s", id, rel(end), rel(at))
			}
			if at >= gcTime(end) && ok {
				t.Fatalf("session %s (ends %s) still there at %s", id, rel(end), rel(at))
			}
		}
	}
	if stats := h.f.Stats(); stats != (Stats{}) {
		t.Errorf("Stats at the end = %+v", stats)
	}
}

func TestExpire_UntilLaterThanEventTimeIsClamped(t *testing.T) {
	h := newHarness(t)
	s := h.create(t0, "s1", "alice")
	at := t0 + minute
	if res := h.mustApply(at, &events.SessionsExpired{Until: t0 + 365*day}); res.Count != 0 {
		t.Errorf("GC with a future Until removed %d live sessions", res.Count)
	}
	h.wantAccess(accessToken("s1", 0), at, StatusActive)
	// An Until earlier than the event time is honoured as given.
	late := gcTime(s.EndsAt())
	if res := h.mustApply(late+hour, &events.SessionsExpired{Until: s.EndsAt()}); res.Count != 0 {
		t.Errorf("GC until the session's end (before its bucket is done) removed %d", res.Count)
	}
	if res := h.mustApply(late+hour, &events.SessionsExpired{Until: late}); res.Count != 1 {
		t.Errorf("GC until its bucket's end removed %d, want 1", res.Count)
	}
}

func TestExpire_CollectsOneUserOfMany(t *testing.T) {
	h := newHarness(t)
	h.create(t0, "a1", "alice")
	h.create(t0, "b1", "bob")
	h.create(t0+hour, "a2", "alice")
	at := gcTime(h.session("a1").EndsAt())
	if res := h.mustApply(at, &events.SessionsExpired{Until: at}); res.Count != 2 {
		t.Fatalf("removed %d, want 2", res.Count)
	}
	if stats := h.f.Stats(); stats != (Stats{Sessions: 1, Live: 1, Users: 1}) {
		t.Errorf("Stats = %+v, want 1 live session of 1 user", stats)
	}
	if us := h.f.UserSessions("alice", at); len(us) != 1 || us[0].ID() != "a2" {
		t.Errorf("UserSessions(alice) = %v", us)
	}
}
