package fsm

import (
	"bytes"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/sessiond/sessiond/events"
)

// sibling presents session id's refresh token of pair from and asks for
// pair to: a plain refresh when from is the live pair, a reuse otherwise.
func sibling(id events.SessionID, from, to int) *events.SessionRefreshed {
	return &events.SessionRefreshed{SessionID: id, PresentedHash: rh(id, from), NewAccessHash: ah(id, to), NewRefreshHash: rh(id, to)}
}

// graceSession sets a one-minute refresh grace, creates s1 at t0 and
// rotates its first pair at t0+5m. It returns the rotation time.
func graceSession(w *twins) int64 {
	w.mustApply(t0, policySet(func(p *Policy) { p.RefreshReuseGrace = time.Minute }))
	w.create(t0, "s1", "alice", "default")
	t1 := t0 + 5*minute
	w.mustApply(t1, sibling("s1", 0, 1))
	return t1
}

// wantAccessAll checks ValidateAccess of several of s1's pairs at now.
func (w *twins) wantAccessAll(now int64, want Status, pairs ...int) {
	w.tb.Helper()
	for _, n := range pairs {
		w.wantAccess(accessToken("s1", n), now, want)
	}
}

const sec = int64(time.Second)

func TestGrace_TwoRefreshesWithTheSameTokenBothSucceed(t *testing.T) {
	w := newTwins(t)
	t1 := graceSession(w)
	t2 := t1 + 10*sec
	res := w.mustApply(t2, sibling("s1", 0, 2))
	if res.Session == nil || res.Session.AccessHash != ah("s1", 2) || res.Session.RefreshHash != rh("s1", 2) || res.Count != 0 {
		t.Fatalf("second use within the grace: %+v", res)
	}
	if n := w.session("s1").LivePairs(); n != 2 {
		t.Fatalf("%d live pairs, want 2", n)
	}
	w.wantAccessAll(t2, StatusActive, 1, 2)
	w.wantAccess(accessToken("s1", 0), t2, StatusUnknown)
	// Each pair's access token keeps its own expiry.
	for _, c := range []struct {
		n       int
		expires int64
	}{{1, t1 + 15*minute}, {2, t2 + 15*minute}} {
		w.wantAccess(accessToken("s1", c.n), c.expires-1, StatusActive)
		w.wantAccess(accessToken("s1", c.n), c.expires, StatusExpired)
		view, kind, st := w.f().LookupToken(ah("s1", c.n), t2)
		if kind != TokenAccess || st != StatusActive || view.AccessExpiresAt != c.expires || view.AccessHash != ah("s1", c.n) {
			t.Errorf("LookupToken(access %d) = %d %s expiring %s", c.n, kind, st, rel(view.AccessExpiresAt))
		}
		w.a.wantLookup(refreshToken("s1", c.n), t2, TokenRefresh, StatusActive)
	}

	// Each pair then rotates on its own.
	t3 := t2 + 10*sec
	w.mustApply(t3, sibling("s1", 1, 3))
	w.wantAccessAll(t3, StatusActive, 2, 3)
	w.wantAccess(accessToken("s1", 1), t3, StatusUnknown)
	t4 := t3 + 10*sec
	w.mustApply(t4, sibling("s1", 2, 4))
	w.wantAccessAll(t4, StatusActive, 3, 4)
	w.wantAccess(accessToken("s1", 2), t4, StatusUnknown)
	if n := w.session("s1").LivePairs(); n != 2 {
		t.Errorf("%d live pairs after both rotated, want 2", n)
	}
	// And the new pairs refresh further, well after the grace.
	t5 := t4 + 10*minute
	w.mustApply(t5, sibling("s1", 3, 5))
	w.mustApply(t5, sibling("s1", 4, 6))
	w.wantAccessAll(t5, StatusActive, 5, 6)
	w.wantActive("s1", t5)
	w.checkSnapshots()
}

func TestGrace_ReuseAfterTheGraceIsTheft(t *testing.T) {
	w := newTwins(t)
	t1 := graceSession(w)
	// Exactly at the end of the grace the reuse is still allowed.
	w.mustApply(t1+minute, sibling("s1", 0, 2))
	at := t1 + minute + 1
	res := w.apply(at, sibling("s1", 0, 3))
	if !errors.Is(res.Err, ErrRefreshReuse) || res.Count != 1 || res.Session != nil {
		t.Fatalf("reuse after the grace: %+v, want ErrRefreshReuse and count 1", res)
	}
	w.wantRevoked("s1", at, events.ReasonRefreshTokenReuse)
	w.wantAccessAll(at, StatusRevoked, 1, 2)
	w.wantAccess(accessToken("s1", 3), at, StatusUnknown)
	for _, n := range []int{1, 2} {
		w.wantErr(at, sibling("s1", n, 10+n), ErrUnauthenticated)
	}
	w.checkSnapshots()
}

func TestGrace_IsCountedFromTheFirstRotation(t *testing.T) {
	w := newTwins(t)
	t1 := graceSession(w)
	w.mustApply(t1+30*sec, sibling("s1", 0, 2))
	// 31s after the last sibling, but 61s after the token was rotated.
	w.wantErr(t1+61*sec, sibling("s1", 0, 3), ErrRefreshReuse)
	w.wantRevoked("s1", t1+61*sec, events.ReasonRefreshTokenReuse)
}

func TestGrace_ReuseOfATokenTwoRotationsBackIsTheft(t *testing.T) {
	w := newTwins(t)
	t1 := graceSession(w)
	w.mustApply(t1+5*sec, sibling("s1", 1, 2))
	// Well within the grace of both rotations, but token 0 is not the
	// immediately previous one of any live pair.
	at := t1 + 10*sec
	if res := w.wantErr(at, sibling("s1", 0, 3), ErrRefreshReuse); res.Count != 1 {
		t.Errorf("Count = %d", res.Count)
	}
	w.wantRevoked("s1", at, events.ReasonRefreshTokenReuse)
	w.wantAccess(accessToken("s1", 2), at, StatusRevoked)
}

func TestGrace_ZeroGraceSecondUseIsTheft(t *testing.T) {
	w := newTwins(t)
	w.create(t0, "s1", "alice", "default")
	w.mustApply(t0+minute, sibling("s1", 0, 1))
	res := w.wantErr(t0+minute, sibling("s1", 0, 2), ErrRefreshReuse)
	if res.Count != 1 {
		t.Errorf("Count = %d", res.Count)
	}
	w.wantRevoked("s1", t0+minute, events.ReasonRefreshTokenReuse)
	if n := w.session("s1").LivePairs(); n != 1 {
		t.Errorf("%d live pairs without a grace", n)
	}
}

func TestGrace_AtMostFourLivePairs(t *testing.T) {
	build := func(t *testing.T) (*twins, int64) {
		w := newTwins(t)
		t1 := graceSession(w)
		for n := 2; n <= 4; n++ {
			w.mustApply(t1+int64(n)*sec, sibling("s1", 0, n))
		}
		at := t1 + 4*sec
		if got := w.session("s1").LivePairs(); got != 4 {
			t.Fatalf("%d live pairs after four uses of the same token, want 4", got)
		}
		w.wantAccessAll(at, StatusActive, 1, 2, 3, 4)

		// A fifth sibling drops the oldest pair.
		at = t1 + 5*sec
		w.mustApply(at, sibling("s1", 0, 5))
		if got := w.session("s1").LivePairs(); got != 4 {
			t.Fatalf("%d live pairs after a fifth sibling, want 4", got)
		}
		w.wantAccessAll(at, StatusActive, 2, 3, 4, 5)
		w.wantAccess(accessToken("s1", 1), at, StatusUnknown)
		w.a.wantLookup(refreshToken("s1", 1), at, TokenRefresh, StatusRevoked)
		for n := 2; n <= 5; n++ {
			w.a.wantLookup(refreshToken("s1", n), at, TokenRefresh, StatusActive)
		}
		return w, at
	}
	t.Run("remaining pairs refresh", func(t *testing.T) {
		w, at := build(t)
		for n := 2; n <= 5; n++ {
			w.mustApply(at+sec, sibling("s1", n, 10+n))
		}
		w.wantAccessAll(at+sec, StatusActive, 12, 13, 14, 15)
		w.checkSnapshots()
	})
	t.Run("dropped pair's refresh token counts as reuse", func(t *testing.T) {
		w, at := build(t)
		// The dropped token is remembered like a rotated one; it is not the
		// parent of a live pair, so presenting it is taken for theft.
		w.wantErr(at+sec, sibling("s1", 1, 11), ErrRefreshReuse)
		w.wantRevoked("s1", at+sec, events.ReasonRefreshTokenReuse)
		w.wantAccessAll(at+sec, StatusRevoked, 2, 3, 4, 5)
	})
}

func TestGrace_RevokingAnOlderPairsAccessTokenAffectsOnlyThatPair(t *testing.T) {
	w := newTwins(t)
	t1 := graceSession(w)
	t2 := t1 + 10*sec
	w.mustApply(t2, sibling("s1", 0, 2))

	res := w.mustApply(t2, &events.SessionRevoked{SessionID: "s1", Scope: events.RevokeAccessToken, Reason: events.ReasonLogout, TokenHash: ah("s1", 1)})
	if res.Count != 1 || res.Session == nil || res.Session.Revoked() || res.Session.AccessRevoked() {
		t.Fatalf("revoking pair 1's access token: %+v", res)
	}
	w.wantAccess(accessToken("s1", 1), t2, StatusRevoked)
	w.wantAccess(accessToken("s1", 2), t2, StatusActive)
	w.wantActive("s1", t2)
	// Pair 1 can still be refreshed: that is what RFC 7009 promises for an
	// access token's revocation.
	w.mustApply(t2+sec, sibling("s1", 1, 3))
	w.wantAccessAll(t2+sec, StatusActive, 2, 3)
	w.wantAccess(accessToken("s1", 1), t2+sec, StatusUnknown)

	// Revoking the newest pair's access token by its hash leaves the other.
	w.mustApply(t2+2*sec, &events.SessionRevoked{SessionID: "s1", Scope: events.RevokeAccessToken, Reason: events.ReasonLogout, TokenHash: ah("s1", 3)})
	w.wantAccess(accessToken("s1", 3), t2+2*sec, StatusRevoked)
	w.wantAccess(accessToken("s1", 2), t2+2*sec, StatusActive)

	// The revocation of pair 2's access token survives a snapshot.
	w.mustApply(t2+3*sec, &events.SessionRevoked{SessionID: "s1", Scope: events.RevokeAccessToken, Reason: events.ReasonLogout, TokenHash: ah("s1", 2)})
	r := w.checkSnapshots()
	for _, n := range []int{2, 3} {
		if _, st := r.ValidateAccess(ah("s1", n), t2+3*sec); st != StatusRevoked {
			t.Errorf("restored: access %d is %s, want revoked", n, st)
		}
	}
	// A stale access token (pair 1, rotated) is refused.
	w.unchangedBy(t2+3*sec, &events.SessionRevoked{SessionID: "s1", Scope: events.RevokeAccessToken, Reason: events.ReasonLogout, TokenHash: ah("s1", 1)}, ErrUnauthenticated)
}

func TestGrace_RevokeWholeSessionWithAnyLivePairsToken(t *testing.T) {
	tokens := []struct {
		name string
		hash events.TokenHash
	}{
		{"older pair's access", ah("s1", 1)},
		{"older pair's refresh", rh("s1", 1)},
		{"newest pair's access", ah("s1", 2)},
		{"newest pair's refresh", rh("s1", 2)},
	}
	for _, tc := range tokens {
		t.Run(tc.name, func(t *testing.T) {
			w := newTwins(t)
			t1 := graceSession(w)
			at := t1 + 10*sec
			w.mustApply(at, sibling("s1", 0, 2))
			res := w.mustApply(at, &events.SessionRevoked{SessionID: "s1", Scope: events.RevokeWholeSession, Reason: events.ReasonLogout, TokenHash: tc.hash})
			if res.Count != 1 {
				t.Errorf("Count = %d", res.Count)
			}
			w.wantRevoked("s1", at, events.ReasonLogout)
			w.wantAccessAll(at, StatusRevoked, 1, 2)
			for _, n := range []int{1, 2} {
				w.wantErr(at, sibling("s1", n, 10+n), ErrUnauthenticated)
			}
			w.checkSnapshots()
		})
	}
	t.Run("rotated refresh token", func(t *testing.T) {
		w := newTwins(t)
		t1 := graceSession(w)
		w.mustApply(t1, sibling("s1", 0, 2))
		w.unchangedBy(t1, &events.SessionRevoked{SessionID: "s1", Scope: events.RevokeWholeSession, Reason: events.ReasonLogout, TokenHash: rh("s1", 0)}, ErrUnauthenticated)
	})
}

func TestGrace_NoSiblingForARevokedRefreshOrSession(t *testing.T) {
	t.Run("refresh revoked", func(t *testing.T) {
		w := newTwins(t)
		t1 := graceSession(w)
		w.mustApply(t1, &events.SessionRevoked{SessionID: "s1", Scope: events.RevokeRefreshToken, Reason: events.ReasonAdmin})
		w.unchangedBy(t1+sec, sibling("s1", 0, 2), ErrUnauthenticated)
		w.unchangedBy(t1+sec, sibling("s1", 1, 2), ErrUnauthenticated)
	})
	t.Run("session revoked", func(t *testing.T) {
		w := newTwins(t)
		t1 := graceSession(w)
		w.mustApply(t1, &events.SessionRevoked{SessionID: "s1", Scope: events.RevokeWholeSession, Reason: events.ReasonAdmin})
		w.unchangedBy(t1+sec, sibling("s1", 0, 2), ErrUnauthenticated)
		w.wantRevoked("s1", t1, events.ReasonAdmin)
	})
}

func TestGrace_PairsSurviveSnapshotRestore(t *testing.T) {
	w := newTwins(t)
	t1 := graceSession(w)
	w.mustApply(t1+sec, sibling("s1", 0, 2))
	w.mustApply(t1+2*sec, sibling("s1", 0, 3))
	w.mustApply(t1+3*sec, sibling("s1", 2, 4))
	at := t1 + 3*sec
	r := w.checkSnapshots()
	if s, ok := r.Session("s1"); !ok || s.LivePairs() != 3 {
		t.Fatalf("restored session: %v, %d live pairs, want 3", ok, s.LivePairs())
	}
	for _, n := range []int{1, 3, 4} {
		if _, st := r.ValidateAccess(ah("s1", n), at); st != StatusActive {
			t.Errorf("restored: access %d is %s", n, st)
		}
	}
	// The restored FSM goes on like the original: a sibling within the grace
	// of pair 4's parent, and a theft of token 0 after its grace.
	hr := &harness{tb: t, f: r, index: w.a.index, req: w.a.req}
	for _, step := range []struct {
		at int64
		ev *events.SessionRefreshed
	}{
		{at + sec, sibling("s1", 2, 5)},
		{at + 2*sec, sibling("s1", 3, 6)},
		{t1 + 2*minute, sibling("s1", 0, 7)},
	} {
		ra, rr := w.a.apply(step.at, step.ev), hr.apply(step.at, step.ev)
		if !sameResult(ra, rr) {
			t.Fatalf("refresh at %s: original %+v, restored %+v", rel(step.at), ra, rr)
		}
	}
	if !bytes.Equal(snapshotBytes(t, w.a.f), snapshotBytes(t, r)) {
		t.Error("the restored FSM diverges from the original")
	}
	checkInvariants(t, r)
	if s := w.a.session("s1"); s.RevokeReason() != events.ReasonRefreshTokenReuse {
		t.Errorf("token 0 two minutes after its rotation: session %s", fmt.Sprint(s.RevokeReason()))
	}
}

func TestGrace_RevokingAnOlderPairsAccessTokenTwiceCountsOnce(t *testing.T) {
	// Like the newest pair's access token (TestRevoke_AccessOnlyLeaves-
	// SessionRefreshable): a second revocation has nothing left to do.
	w := newTwins(t)
	t1 := graceSession(w)
	w.mustApply(t1+sec, sibling("s1", 0, 2))
	rev := &events.SessionRevoked{SessionID: "s1", Scope: events.RevokeAccessToken, Reason: events.ReasonLogout, TokenHash: ah("s1", 1)}
	if res := w.mustApply(t1+2*sec, rev); res.Count != 1 {
		t.Errorf("first revocation: Count %d, want 1", res.Count)
	}
	if res := w.mustApply(t1+3*sec, rev); res.Count != 0 {
		t.Errorf("second revocation of the same access token: Count %d, want 0", res.Count)
	}
}
