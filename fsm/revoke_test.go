package fsm

import (
	"errors"
	"reflect"
	"testing"

	"github.com/sessiond/sessiond/events"
)

func revokeEv(id events.SessionID, scope events.RevokeScope) *events.SessionRevoked {
	return &events.SessionRevoked{SessionID: id, Scope: scope, Reason: events.ReasonLogout}
}

func TestRevoke_WholeSessionEndsBothTokens(t *testing.T) {
	h := newHarness(t)
	h.create(t0, "s1", "alice")
	h.create(t0, "s2", "alice")
	at := t0 + minute
	res := h.mustApply(at, revokeEv("s1", events.RevokeWholeSession))
	if res.Count != 1 || res.Session == nil || !res.Session.Revoked() {
		t.Fatalf("revoke result: count %d session %+v", res.Count, res.Session)
	}
	s := h.session("s1")
	if s.RevokedAt() != at || s.RevokeReason() != events.ReasonLogout || s.Status(at) != StatusRevoked {
		t.Errorf("revoked at %s reason %q status %s", rel(s.RevokedAt()), s.RevokeReason(), s.Status(at))
	}
	h.wantAccess(accessToken("s1", 0), at, StatusRevoked)
	h.wantLookup(refreshToken("s1", 0), at, TokenRefresh, StatusRevoked)
	if res := h.apply(at, refreshed("s1", 1)); !errors.Is(res.Err, ErrUnauthenticated) {
		t.Errorf("refresh of a revoked session: %v", res.Err)
	}
	// The user's other session is untouched.
	h.wantAccess(accessToken("s2", 0), at, StatusActive)
	if us := h.f.UserSessions("alice", at); len(us) != 1 || us[0].ID() != "s2" {
		t.Errorf("UserSessions = %v, want [s2]", us)
	}
	// Revoking again is a successful no-op that counts nothing and keeps the
	// first revocation's time and reason.
	again := h.apply(at+minute, &events.SessionRevoked{SessionID: "s1", Scope: events.RevokeWholeSession, Reason: events.ReasonAdmin})
	if again.Err != nil || again.Count != 0 {
		t.Errorf("second revoke: err %v count %d", again.Err, again.Count)
	}
	if s := h.session("s1"); s.RevokedAt() != at || s.RevokeReason() != events.ReasonLogout {
		t.Errorf("second revoke changed the revocation to %s %q", rel(s.RevokedAt()), s.RevokeReason())
	}
}

func TestRevoke_AccessOnlyLeavesSessionRefreshable(t *testing.T) {
	h := newHarness(t)
	h.create(t0, "s1", "alice")
	at := t0 + minute
	res := h.mustApply(at, revokeEv("s1", events.RevokeAccessToken))
	if res.Count != 1 || !res.Session.AccessRevoked() || res.Session.Revoked() {
		t.Fatalf("access revoke: count %d, access revoked %v, revoked %v", res.Count, res.Session.AccessRevoked(), res.Session.Revoked())
	}
	h.wantAccess(accessToken("s1", 0), at, StatusRevoked)
	h.wantLookup(refreshToken("s1", 0), at, TokenRefresh, StatusActive)
	if st := h.session("s1").Status(at); st != StatusActive {
		t.Errorf("session status %s, want active (it can still be refreshed)", st)
	}
	if us := h.f.UserSessions("alice", at); len(us) != 1 {
		t.Errorf("UserSessions lists %d sessions, want 1", len(us))
	}
	// Again: nothing more to do.
	if again := h.mustApply(at, revokeEv("s1", events.RevokeAccessToken)); again.Count != 0 {
		t.Errorf("second access revoke counted %d", again.Count)
	}
	// Refresh mints a new access token that works.
	s := *h.mustApply(at+minute, refreshed("s1", 1)).Session
	if s.AccessRevoked() {
		t.Error("the new access token inherited the revocation")
	}
	h.wantAccess(accessToken("s1", 1), at+minute, StatusActive)
	h.wantAccess(accessToken("s1", 0), at+minute, StatusUnknown)
}

func TestRevoke_RefreshOnlyLetsAccessRunToExpiry(t *testing.T) {
	h := newHarness(t)
	s0 := h.create(t0, "s1", "alice")
	at := t0 + minute
	res := h.mustApply(at, revokeEv("s1", events.RevokeRefreshToken))
	if res.Count != 1 || !res.Session.RefreshRevoked() || res.Session.Revoked() {
		t.Fatalf("refresh revoke: count %d, refresh revoked %v, revoked %v", res.Count, res.Session.RefreshRevoked(), res.Session.Revoked())
	}
	h.wantLookup(refreshToken("s1", 0), at, TokenRefresh, StatusRevoked)
	h.wantAccess(accessToken("s1", 0), at, StatusActive)
	h.wantAccess(accessToken("s1", 0), s0.AccessExpiresAt-1, StatusActive)
	h.wantAccess(accessToken("s1", 0), s0.AccessExpiresAt, StatusExpired)
	if res := h.apply(at, refreshed("s1", 1)); !errors.Is(res.Err, ErrUnauthenticated) {
		t.Errorf("refresh after refresh revoke: %v, want ErrUnauthenticated", res.Err)
	}
	// The session is active while its access token lives, then revoked: no
	// usable token is left.
	s := h.session("s1")
	if st := s.Status(s0.AccessExpiresAt - 1); st != StatusActive {
		t.Errorf("status before access expiry: %s", st)
	}
	if st := s.Status(s0.AccessExpiresAt); st != StatusRevoked {
		t.Errorf("status after access expiry: %s, want revoked", st)
	}
	// Revoking the access token too revokes it at once.
	h.mustApply(at, revokeEv("s1", events.RevokeAccessToken))
	if st := h.session("s1").Status(at); st != StatusRevoked {
		t.Errorf("status with both tokens revoked: %s", st)
	}
}

func TestRevoke_TokenGuardIgnoresTokensNoLongerCurrent(t *testing.T) {
	type tokenCase struct {
		name  string
		scope events.RevokeScope
		hash  events.TokenHash
		want  error
	}
	// After one refresh, pair 1 is current and pair 0 is stale.
	cases := []tokenCase{
		{"whole, current access", events.RevokeWholeSession, ah("s1", 1), nil},
		{"whole, current refresh", events.RevokeWholeSession, rh("s1", 1), nil},
		{"whole, stale access", events.RevokeWholeSession, ah("s1", 0), ErrUnauthenticated},
		{"whole, stale refresh", events.RevokeWholeSession, rh("s1", 0), ErrUnauthenticated},
		{"whole, unrelated", events.RevokeWholeSession, events.HashToken("x"), ErrUnauthenticated},
		{"access, current", events.RevokeAccessToken, ah("s1", 1), nil},
		{"access, stale", events.RevokeAccessToken, ah("s1", 0), ErrUnauthenticated},
		{"access, given the refresh token", events.RevokeAccessToken, rh("s1", 1), ErrUnauthenticated},
		{"refresh, current", events.RevokeRefreshToken, rh("s1", 1), nil},
		{"refresh, stale", events.RevokeRefreshToken, rh("s1", 0), ErrUnauthenticated},
		{"refresh, given the access token", events.RevokeRefreshToken, ah("s1", 1), ErrUnauthenticated},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			h.create(t0, "s1", "alice")
			h.mustApply(t0+minute, refreshed("s1", 1))
			before := snapshotSessions(t, h.f)
			ev := revokeEv("s1", tc.scope)
			ev.TokenHash = tc.hash
			res := h.apply(t0+2*minute, ev)
			if !errors.Is(res.Err, tc.want) {
				t.Fatalf("err %v, want %v", res.Err, tc.want)
			}
			after := snapshotSessions(t, h.f)
			if tc.want != nil {
				if res.Count != 0 || !reflect.DeepEqual(before, after) {
					t.Errorf("a guarded revoke of a stale token changed the state (count %d)", res.Count)
				}
				h.wantAccess(accessToken("s1", 1), t0+2*minute, StatusActive)
				return
			}
			if res.Count != 1 || reflect.DeepEqual(before, after) {
				t.Errorf("a guarded revoke of a current token did nothing (count %d)", res.Count)
			}
		})
	}
}

func TestRevoke_UnknownSessionIsNotFound(t *testing.T) {
	h := newHarness(t)
	h.create(t0, "s1", "alice")
	for _, scope := range []events.RevokeScope{events.RevokeWholeSession, events.RevokeAccessToken, events.RevokeRefreshToken} {
		if res := h.apply(t0, revokeEv("nope", scope)); !errors.Is(res.Err, ErrNotFound) || res.Count != 0 {
			t.Errorf("scope %d: err %v count %d, want ErrNotFound", scope, res.Err, res.Count)
		}
	}
}

func TestRevoke_RejectsUnknownScopeAndReason(t *testing.T) {
	h := newHarness(t)
	h.create(t0, "s1", "alice")
	before := snapshotSessions(t, h.f)
	for name, ev := range map[string]*events.SessionRevoked{
		"scope 0":    {SessionID: "s1", Scope: 0, Reason: events.ReasonLogout},
		"scope 9":    {SessionID: "s1", Scope: 9, Reason: events.ReasonLogout},
		"reason 200": {SessionID: "s1", Scope: events.RevokeWholeSession, Reason: 200},
	} {
		if res := h.apply(t0, ev); !errors.Is(res.Err, ErrInvalid) {
			t.Errorf("%s: err %v, want ErrInvalid", name, res.Err)
		}
	}
	if after := snapshotSessions(t, h.f); !reflect.DeepEqual(before, after) {
		t.Error("invalid revokes changed the state")
	}
}

// Regression guard (was a bug in fsm/session.go, Session.Status): Status documents "revoked ... when a
// revocation left it no usable token", but only checks the case of a
// revoked refresh token. A revoked access token next to an expired (not
// revoked) refresh token leaves no usable token either, yet the session
// reports active until the access token's own expiry: UserSessions lists
// it, and force logout / bulk revocation count it as revoked.
func TestStatus_AccessRevokedWithRefreshExpiredIsNotActive(t *testing.T) {
	h := newHarness(t)
	h.create(t0, "s1", "alice") // refresh expires at t0+22m30s
	// A late refresh mints an access token that outlives the refresh token.
	h.mustApply(t0+20*minute, refreshed("s1", 1)) // access until t0+35m
	at := t0 + 25*minute
	h.mustApply(at, revokeEv("s1", events.RevokeAccessToken))
	h.wantAccess(accessToken("s1", 1), at, StatusRevoked)
	h.wantLookup(refreshToken("s1", 1), at, TokenRefresh, StatusExpired)
	if res := h.apply(at, refreshed("s1", 2)); !errors.Is(res.Err, ErrUnauthenticated) {
		t.Fatalf("refresh: %v, want ErrUnauthenticated", res.Err)
	}
	// No token of the session can be used any more.
	if st := h.session("s1").Status(at); st == StatusActive {
		t.Errorf("Status = active for a session with a revoked access token and an expired refresh token")
	}
	if us := h.f.UserSessions("alice", at); len(us) != 0 {
		t.Errorf("UserSessions lists %d sessions with no usable token", len(us))
	}
	if res := h.mustApply(at, &events.UserForceLoggedOut{UserID: "alice", Reason: events.ReasonAdmin}); res.Count != 0 {
		t.Errorf("force logout counted %d sessions that had no usable token", res.Count)
	}
}
