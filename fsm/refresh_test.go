package fsm

import (
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/sessiond/sessiond/events"
)

func TestRefresh_RotatesTokens(t *testing.T) {
	h := newHarness(t)
	s0 := h.create(t0, "s1", "alice")
	at := t0 + 10*minute
	res := h.mustApply(at, refreshed("s1", 1))
	if res.Session == nil || res.Count != 0 {
		t.Fatalf("refresh result %+v", res)
	}
	s1 := *res.Session
	if s1.AccessHash != ah("s1", 1) || s1.RefreshHash != rh("s1", 1) {
		t.Error("refresh did not install the new hashes")
	}
	if s1.TokensIssuedAt != at || s1.LastSeenAt != at || s1.CreatedAt != t0 {
		t.Errorf("issued/last seen/created = %s/%s/%s", rel(s1.TokensIssuedAt), rel(s1.LastSeenAt), rel(s1.CreatedAt))
	}
	if s1.AccessExpiresAt != at+15*minute {
		t.Errorf("new access expiry %s, want now+15m", rel(s1.AccessExpiresAt))
	}
	// Without sliding refresh the refresh expiry and the absolute end stay.
	if s1.RefreshExpiresAt != s0.RefreshExpiresAt || s1.ExpiresAt != s0.ExpiresAt {
		t.Errorf("refresh/absolute expiry moved: %s/%s, were %s/%s",
			rel(s1.RefreshExpiresAt), rel(s1.ExpiresAt), rel(s0.RefreshExpiresAt), rel(s0.ExpiresAt))
	}

	h.wantAccess(accessToken("s1", 1), at, StatusActive)
	h.wantLookup(refreshToken("s1", 1), at, TokenRefresh, StatusActive)
	// The previous pair stops working at once.
	h.wantAccess(accessToken("s1", 0), at, StatusUnknown)
	h.wantLookup(accessToken("s1", 0), at, TokenNone, StatusUnknown)
	h.wantLookup(refreshToken("s1", 0), at, TokenRefresh, StatusRevoked)
	if got := h.session("s1"); !reflect.DeepEqual(*got, s1) {
		t.Errorf("Session() = %+v, want the result's %+v", got, s1)
	}
}

func TestRefresh_ReuseRevokesSession(t *testing.T) {
	h := newHarness(t)
	h.create(t0, "s1", "alice")
	h.mustApply(t0+minute, refreshed("s1", 1))
	h.mustApply(t0+2*minute, refreshed("s1", 2))

	// The thief (or the victim) presents refresh token 0 again.
	reuse := &events.SessionRefreshed{SessionID: "s1", PresentedHash: rh("s1", 0), NewAccessHash: ah("s1", 99), NewRefreshHash: rh("s1", 99)}
	at := t0 + 3*minute
	res := h.apply(at, reuse)
	if !errors.Is(res.Err, ErrRefreshReuse) || res.Count != 1 {
		t.Fatalf("reuse: err %v count %d, want ErrRefreshReuse and 1", res.Err, res.Count)
	}
	s := h.session("s1")
	if !s.Revoked() || s.RevokeReason() != events.ReasonRefreshTokenReuse || s.RevokeReason().String() != "refresh_token_reuse" || s.RevokedAt() != at {
		t.Errorf("after reuse: revoked=%v reason=%q at %s", s.Revoked(), s.RevokeReason(), rel(s.RevokedAt()))
	}
	// The pair minted by the reuse attempt was never installed, and the
	// legitimate current pair is revoked.
	h.wantAccess(accessToken("s1", 99), at, StatusUnknown)
	h.wantAccess(accessToken("s1", 2), at, StatusRevoked)
	h.wantLookup(refreshToken("s1", 2), at, TokenRefresh, StatusRevoked)
	h.wantLookup(refreshToken("s1", 1), at, TokenRefresh, StatusRevoked)
	if st := s.Status(at); st != StatusRevoked {
		t.Errorf("session status %s, want revoked", st)
	}
	// The holder of the current refresh token cannot go on either.
	if res := h.apply(at, refreshed("s1", 3)); !errors.Is(res.Err, ErrUnauthenticated) {
		t.Errorf("refresh with the current token after reuse: %v, want ErrUnauthenticated", res.Err)
	}
	// Reusing again changes nothing and does not count again.
	if res := h.apply(at, reuse); !errors.Is(res.Err, ErrUnauthenticated) || res.Count != 0 {
		t.Errorf("second reuse: err %v count %d, want ErrUnauthenticated and 0", res.Err, res.Count)
	}
	if got := h.session("s1"); got.RevokedAt() != at {
		t.Errorf("a second reuse moved the revocation time to %s", rel(got.RevokedAt()))
	}
}

func TestRefresh_InvalidSessionIsUnauthenticatedAndChangesNothing(t *testing.T) {
	type setup struct {
		name string
		// prepare brings session s1 into the state under test and returns the
		// time of the refresh attempt.
		prepare func(h *harness) int64
	}
	cases := []setup{
		{"unknown session", func(h *harness) int64 { return t0 + minute }},
		{"refresh token expired", func(h *harness) int64 {
			h.create(t0, "s1", "alice")
			return h.session("s1").RefreshExpiresAt
		}},
		{"absolute expiry passed", func(h *harness) int64 {
			// Remember-me: the refresh lifetime is the absolute one.
			ev := created("s1", "alice")
			ev.RememberMe = true
			h.mustApply(t0, ev)
			h.mustApply(t0+29*day, refreshed("s1", 1))
			h.mustApply(t0+30*day-1, refreshed("s1", 2))
			return h.session("s1").ExpiresAt
		}},
		{"session revoked", func(h *harness) int64 {
			h.create(t0, "s1", "alice")
			h.mustApply(t0+minute, &events.SessionRevoked{SessionID: "s1", Scope: events.RevokeWholeSession, Reason: events.ReasonAdmin})
			return t0 + 2*minute
		}},
		{"refresh token revoked", func(h *harness) int64 {
			h.create(t0, "s1", "alice")
			h.mustApply(t0+minute, &events.SessionRevoked{SessionID: "s1", Scope: events.RevokeRefreshToken, Reason: events.ReasonAdmin})
			return t0 + 2*minute
		}},
		{"token never issued", func(h *harness) int64 {
			h.create(t0, "s1", "alice")
			return t0 + minute
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			at := tc.prepare(h)
			before := snapshotSessions(t, h.f)
			ev := refreshed("s1", 1)
			if tc.name == "absolute expiry passed" {
				ev = refreshed("s1", 3)
			}
			if tc.name == "token never issued" {
				ev.PresentedHash = events.HashToken("sr_forged")
			}
			res := h.apply(at, ev)
			if !errors.Is(res.Err, ErrUnauthenticated) || res.Session != nil || res.Count != 0 {
				t.Errorf("refresh: err %v session %v count %d, want ErrUnauthenticated only", res.Err, res.Session, res.Count)
			}
			if after := snapshotSessions(t, h.f); !reflect.DeepEqual(before, after) {
				t.Errorf("a refused refresh changed the state:\nbefore %+v\nafter  %+v", before, after)
			}
			h.wantAccess(accessToken("s1", 1), at, StatusUnknown)
		})
	}
}

func TestRefresh_RejectsBadOrTakenNewHashes(t *testing.T) {
	h := newHarness(t)
	h.create(t0, "s1", "alice")
	h.create(t0, "s2", "bob")
	before := snapshotSessions(t, h.f)
	cases := []struct {
		name string
		edit func(*events.SessionRefreshed)
		want error
	}{
		{"no new access hash", func(e *events.SessionRefreshed) { e.NewAccessHash = events.TokenHash{} }, ErrInvalid},
		{"no new refresh hash", func(e *events.SessionRefreshed) { e.NewRefreshHash = events.TokenHash{} }, ErrInvalid},
		{"same new hash twice", func(e *events.SessionRefreshed) { e.NewRefreshHash = e.NewAccessHash }, ErrInvalid},
		{"access hash of another session", func(e *events.SessionRefreshed) { e.NewAccessHash = ah("s2", 0) }, ErrConflict},
		{"refresh hash of another session", func(e *events.SessionRefreshed) { e.NewRefreshHash = rh("s2", 0) }, ErrConflict},
		{"the presented refresh hash again", func(e *events.SessionRefreshed) { e.NewRefreshHash = e.PresentedHash }, ErrConflict},
		{"its own current access hash", func(e *events.SessionRefreshed) { e.NewAccessHash = ah("s1", 0) }, ErrConflict},
	}
	for _, tc := range cases {
		ev := refreshed("s1", 1)
		tc.edit(ev)
		if res := h.apply(t0+minute, ev); !errors.Is(res.Err, tc.want) {
			t.Errorf("%s: err %v, want %v", tc.name, res.Err, tc.want)
		}
	}
	if after := snapshotSessions(t, h.f); !reflect.DeepEqual(before, after) {
		t.Errorf("rejected refreshes changed the state")
	}
	// The presented token is still good after all those rejections.
	h.mustApply(t0+minute, refreshed("s1", 1))
}

func TestRefresh_HistoryIsBounded(t *testing.T) {
	h := newHarness(t)
	h.create(t0, "s1", "alice")
	n := maxRefreshHistory + 1
	at := t0
	for i := 1; i <= n; i++ {
		at += time.Second.Nanoseconds()
		h.mustApply(at, refreshed("s1", i))
	}
	s := h.session("s1")
	if got := len(s.ex().prevRefresh); got != maxRefreshHistory {
		t.Fatalf("history holds %d hashes, want %d", got, maxRefreshHistory)
	}
	// Token 0 fell out of the history: it is unknown, and presenting it is
	// not detected as reuse (and so does not revoke the session).
	h.wantLookup(refreshToken("s1", 0), at, TokenNone, StatusUnknown)
	stale := &events.SessionRefreshed{SessionID: "s1", PresentedHash: rh("s1", 0), NewAccessHash: ah("s1", 100), NewRefreshHash: rh("s1", 100)}
	if res := h.apply(at, stale); !errors.Is(res.Err, ErrUnauthenticated) {
		t.Errorf("refresh with a forgotten token: %v, want ErrUnauthenticated", res.Err)
	}
	h.wantAccess(accessToken("s1", n), at, StatusActive)
	// Every remembered one still reports revoked...
	for i := 1; i < n; i++ {
		h.wantLookup(refreshToken("s1", i), at, TokenRefresh, StatusRevoked)
	}
	// ...and the oldest remembered one is detected as reuse.
	old := &events.SessionRefreshed{SessionID: "s1", PresentedHash: rh("s1", 1), NewAccessHash: ah("s1", 101), NewRefreshHash: rh("s1", 101)}
	if res := h.apply(at, old); !errors.Is(res.Err, ErrRefreshReuse) {
		t.Errorf("refresh with the oldest remembered token: %v, want ErrRefreshReuse", res.Err)
	}
	h.wantAccess(accessToken("s1", n), at, StatusRevoked)

	// A forgotten hash is free for another session again: the index no
	// longer holds it.
	ev := created("s2", "bob")
	ev.RefreshHash = rh("s1", 0)
	if res := h.apply(at, ev); res.Err != nil {
		t.Errorf("creating a session with a forgotten refresh hash: %v", res.Err)
	}
	h.wantLookup(refreshToken("s1", 0), at, TokenRefresh, StatusActive)
}

func TestRefresh_SlidingPolicyMovesRefreshExpiry(t *testing.T) {
	cases := []struct {
		name       string
		rememberMe bool
		ttl        int64
	}{
		{"plain", false, 2 * hour},
		{"remember me", true, 30 * day},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			p := DefaultPolicy()
			p.SlidingRefresh = true
			p.RefreshTTL = 2 * time.Hour
			h.f.st.policy = p
			ev := created("s1", "alice")
			ev.RememberMe = tc.rememberMe
			h.mustApply(t0, ev)
			at := t0 + 90*minute
			s := *h.mustApply(at, refreshed("s1", 1)).Session
			want := min(at+tc.ttl, s.ExpiresAt)
			if s.RefreshExpiresAt != want {
				t.Errorf("sliding refresh expiry %s, want %s", rel(s.RefreshExpiresAt), rel(want))
			}
		})
	}
}

func TestRefresh_AccessOutlivingRefreshKeepsSessionUntilAccessEnds(t *testing.T) {
	// Without sliding, a late refresh can mint an access token that outlives
	// the refresh token; the session must not be collected before it ends.
	h := newHarness(t)
	h.create(t0, "s1", "alice") // refresh ends at t0+22m30s
	at := t0 + 20*minute
	s := *h.mustApply(at, refreshed("s1", 1)).Session
	if s.AccessExpiresAt != at+15*minute || s.EndsAt() != s.AccessExpiresAt {
		t.Fatalf("access ends %s, session ends %s", rel(s.AccessExpiresAt), rel(s.EndsAt()))
	}
	gcAt := s.RefreshExpiresAt + 2*minute
	if res := h.mustApply(gcAt, &events.SessionsExpired{Until: gcAt}); res.Count != 0 {
		t.Errorf("GC after the refresh expiry removed %d sessions, want 0", res.Count)
	}
	h.wantAccess(accessToken("s1", 1), gcAt, StatusActive)
	h.wantLookup(refreshToken("s1", 1), gcAt, TokenRefresh, StatusExpired)
}
