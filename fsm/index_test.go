package fsm

import (
	"bytes"
	"reflect"
	"testing"

	"github.com/sessiond/sessiond/events"
)

// collidingHash returns a hash that shares its first eight bytes (the
// index's primary key) with every other collidingHash, and differs after.
func collidingHash(n byte) events.TokenHash {
	var h events.TokenHash
	copy(h[:8], "prefix!!")
	h[31] = n
	return h
}

func TestHashIndex_PrefixCollisionsStayDistinct(t *testing.T) {
	h := newHarness(t)
	mk := func(id events.SessionID, a, r byte) {
		ev := created(id, "alice")
		ev.AccessHash = collidingHash(a)
		ev.RefreshHash = collidingHash(r)
		h.mustApply(t0, ev)
	}
	mk("s1", 1, 2)
	mk("s2", 3, 4) // both hashes land in the overflow maps
	mk("s3", 5, 6)
	checkInvariants(t, h.f)
	at := t0 + minute
	for id, a := range map[events.SessionID]byte{"s1": 1, "s2": 3, "s3": 5} {
		s, st := h.f.ValidateAccess(collidingHash(a), at)
		if st != StatusActive || s.ID() != id {
			t.Errorf("ValidateAccess(colliding %d) = %s %q, want active %s", a, st, s.ID(), id)
		}
	}
	if _, st := h.f.ValidateAccess(collidingHash(99), at); st != StatusUnknown {
		t.Errorf("an unissued hash sharing the prefix is %s", st)
	}
	if _, kind, st := h.f.LookupToken(collidingHash(4), at); kind != TokenRefresh || st != StatusActive {
		t.Errorf("LookupToken(colliding refresh) = %d %s", kind, st)
	}
	// A colliding hash that is a known hash's exact copy is a conflict.
	dup := created("s4", "bob")
	dup.AccessHash = collidingHash(3)
	if res := h.apply(at, dup); res.Err != ErrConflict {
		t.Errorf("create with an existing colliding hash: %v, want ErrConflict", res.Err)
	}

	// s1 (holder of the primary slots) rotates to other colliding hashes:
	// its old access hash leaves, its old refresh hash stays in the history.
	ev := &events.SessionRefreshed{SessionID: "s1", PresentedHash: collidingHash(2), NewAccessHash: collidingHash(7), NewRefreshHash: collidingHash(8)}
	h.mustApply(at, ev)
	checkInvariants(t, h.f)
	if _, st := h.f.ValidateAccess(collidingHash(1), at); st != StatusUnknown {
		t.Errorf("rotated colliding access hash is %s, want unknown", st)
	}
	for a, id := range map[byte]events.SessionID{7: "s1", 3: "s2", 5: "s3"} {
		if s, st := h.f.ValidateAccess(collidingHash(a), at); st != StatusActive || s.ID() != id {
			t.Errorf("after rotation, colliding %d = %s %q, want active %s", a, st, s.ID(), id)
		}
	}
	if _, kind, st := h.f.LookupToken(collidingHash(2), at); kind != TokenRefresh || st != StatusRevoked {
		t.Errorf("previous colliding refresh hash = %d %s, want refresh revoked", kind, st)
	}
	// Reuse of the colliding previous refresh hash is detected.
	reuse := &events.SessionRefreshed{SessionID: "s1", PresentedHash: collidingHash(2), NewAccessHash: collidingHash(9), NewRefreshHash: collidingHash(10)}
	if res := h.apply(at, reuse); res.Err != ErrRefreshReuse {
		t.Errorf("reuse of a colliding refresh hash: %v", res.Err)
	}

	// Snapshot and restore (which inserts in id order, so different hashes
	// end up in the primary slots) keep every lookup.
	data := snapshotBytes(t, h.f)
	r := restored(t, data)
	checkInvariants(t, r)
	for _, a := range []byte{1, 3, 5, 7, 99} {
		sa, sta := h.f.ValidateAccess(collidingHash(a), at)
		sb, stb := r.ValidateAccess(collidingHash(a), at)
		if sta != stb || !reflect.DeepEqual(sa, sb) {
			t.Errorf("restored FSM disagrees on colliding %d: %s / %s", a, sta, stb)
		}
	}

	// Collect everything: every index empties.
	gc := gcTime(t0 + 30*day)
	h.mustApply(gc, &events.SessionsExpired{Until: gc})
	checkInvariants(t, h.f)
	if n := len(h.f.st.byAccess.primary) + len(h.f.st.byAccess.overflow) + len(h.f.st.byRefresh.primary) + len(h.f.st.byRefresh.overflow); n != 0 {
		t.Errorf("indexes hold %d hashes after everything was collected", n)
	}
	r.ApplyBatch(nil)
	if !bytes.Equal(snapshotBytes(t, r), data) {
		t.Error("the restored FSM changed without applying anything")
	}
}

func TestUserSessions_NewestFirstThenByID(t *testing.T) {
	h := newHarness(t)
	h.create(t0, "b", "alice")
	h.create(t0, "a", "alice")
	h.create(t0+1, "c", "alice")
	h.create(t0+2, "z", "bob")
	h.create(t0+3, "d", "alice")
	h.mustApply(t0+4, revokeEv("c", events.RevokeWholeSession))
	var ids []events.SessionID
	for _, s := range h.f.UserSessions("alice", t0+5) {
		ids = append(ids, s.ID())
	}
	if want := []events.SessionID{"d", "a", "b"}; !reflect.DeepEqual(ids, want) {
		t.Errorf("UserSessions = %v, want %v", ids, want)
	}
	if got := h.f.UserSessions("nobody", t0); len(got) != 0 {
		t.Errorf("UserSessions of an unknown user = %v", got)
	}
}

func TestPolicy_ReadIsACopy(t *testing.T) {
	h := newHarness(t)
	p := DefaultPolicy()
	p.AppMaxSessions = []AppLimit{{App: "web", MaxSessions: 3}}
	h.f.st.policy = p
	got := h.f.Policy()
	got.AppMaxSessions[0].MaxSessions = 99
	if h.f.Policy().AppMaxSessions[0].MaxSessions != 3 {
		t.Error("Policy() hands out the state's own slice")
	}
}
