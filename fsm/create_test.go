package fsm

import (
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/sessiond/sessiond/events"
)

func TestCreate_ExpiryFollowsDefaultPolicy(t *testing.T) {
	p := DefaultPolicy()
	if p.AccessTTL != 15*time.Minute || p.EffectiveRefreshTTL() != 22*time.Minute+30*time.Second ||
		p.AbsoluteTTL != 30*24*time.Hour || p.RememberMeTTL != 30*24*time.Hour || !p.RefreshFollowsAccess() {
		t.Fatalf("DefaultPolicy does not match docs/logins.md#policy-settings: %+v", p)
	}
	cases := []struct {
		name        string
		rememberMe  bool
		wantAccess  int64
		wantRefresh int64
		wantAbs     int64
	}{
		{"plain", false, 15 * minute, 15 * minute * 3 / 2, 30 * day},
		{"remember me", true, 15 * minute, 30 * day, 30 * day},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			ev := created("s1", "alice")
			ev.RememberMe = tc.rememberMe
			ev.Scopes = []string{"read", "write"}
			ev.Attributes = []events.Attribute{{Key: "role", Value: "admin"}}
			ev.Device.Label = "laptop"
			res := h.mustApply(t0, ev)
			s := *res.Session
			if s.CreatedAt != t0 || s.LastSeenAt != t0 || s.TokensIssuedAt != t0 {
				t.Errorf("created/last seen/issued = %s/%s/%s, want t0", rel(s.CreatedAt), rel(s.LastSeenAt), rel(s.TokensIssuedAt))
			}
			if got := s.AccessExpiresAt - t0; got != tc.wantAccess {
				t.Errorf("access lifetime %v, want %v", time.Duration(got), time.Duration(tc.wantAccess))
			}
			if got := s.RefreshExpiresAt - t0; got != tc.wantRefresh {
				t.Errorf("refresh lifetime %v, want %v", time.Duration(got), time.Duration(tc.wantRefresh))
			}
			if got := s.ExpiresAt - t0; got != tc.wantAbs {
				t.Errorf("absolute lifetime %v, want %v", time.Duration(got), time.Duration(tc.wantAbs))
			}
			if s.ID() != "s1" || s.UserID != "alice" || s.App() != "default" || s.AuthMethod != events.AuthPassword ||
				s.RememberMe != tc.rememberMe || s.UserAgent() != "Mozilla/5.0 (test)" || s.IP() != "192.0.2.1" || s.Label() != "laptop" ||
				!reflect.DeepEqual(s.Scopes(), []string{"read", "write"}) ||
				!reflect.DeepEqual(s.Attributes(), []events.Attribute{{Key: "role", Value: "admin"}}) {
				t.Errorf("session does not carry the event's fields: %+v", s)
			}
			if s.AccessHash != ah("s1", 0) || s.RefreshHash != rh("s1", 0) {
				t.Error("session does not hold the event's token hashes")
			}
			if stored := h.session("s1"); !reflect.DeepEqual(*stored, s) {
				t.Errorf("Session() = %+v, want the result's %+v", stored, s)
			}
			got, st := h.f.ValidateAccess(ah("s1", 0), t0)
			if st != StatusActive || got.ID() != "s1" {
				t.Errorf("ValidateAccess right after create = %s (%q), want active s1", st, got.ID())
			}
			h.wantLookup(refreshToken("s1", 0), t0, TokenRefresh, StatusActive)
			if st := h.session("s1").Status(t0); st != StatusActive {
				t.Errorf("session status %s, want active", st)
			}
			if us := h.f.UserSessions("alice", t0); len(us) != 1 || us[0].ID() != "s1" {
				t.Errorf("UserSessions = %v, want [s1]", us)
			}
			if stats := h.f.Stats(); stats != (Stats{Sessions: 1, Live: 1, Users: 1}) {
				t.Errorf("Stats = %+v", stats)
			}
		})
	}
}

func TestValidateAccess_ExpiresAtTheNanosecond(t *testing.T) {
	h := newHarness(t)
	s := h.create(t0, "s1", "alice")
	tok := accessToken("s1", 0)
	h.wantAccess(tok, s.AccessExpiresAt-1, StatusActive)
	h.wantAccess(tok, s.AccessExpiresAt, StatusExpired)
	h.wantAccess(tok, s.AccessExpiresAt+1, StatusExpired)

	// The refresh token outlives the access token by its own boundary.
	rt := refreshToken("s1", 0)
	h.wantLookup(rt, s.AccessExpiresAt, TokenRefresh, StatusActive)
	h.wantLookup(rt, s.RefreshExpiresAt-1, TokenRefresh, StatusActive)
	h.wantLookup(rt, s.RefreshExpiresAt, TokenRefresh, StatusExpired)

	// The session is active while a token can be used, expired after.
	if st := h.session("s1").Status(s.RefreshExpiresAt - 1); st != StatusActive {
		t.Errorf("status just before the end = %s, want active", st)
	}
	if st := h.session("s1").Status(s.RefreshExpiresAt); st != StatusExpired {
		t.Errorf("status at the end = %s, want expired", st)
	}
	if us := h.f.UserSessions("alice", s.RefreshExpiresAt); len(us) != 0 {
		t.Errorf("UserSessions after the end lists %d sessions", len(us))
	}
	h.wantAccess("sa_never_issued", t0, StatusUnknown)
}

func TestValidateAccess_AbsoluteExpiryCapsEverything(t *testing.T) {
	// A policy whose absolute lifetime is shorter than the access lifetime:
	// both token expiries are capped by it.
	h := newHarness(t)
	p := DefaultPolicy()
	p.AccessTTL = time.Hour
	p.AbsoluteTTL = 10 * time.Minute
	h.f.st.policy = p // no event sets the policy yet; set it as a restore would
	s := h.create(t0, "s1", "alice")
	if s.ExpiresAt != t0+10*minute || s.AccessExpiresAt != s.ExpiresAt || s.RefreshExpiresAt != s.ExpiresAt {
		t.Fatalf("expiries %s/%s/%s, want all at t0+10m", rel(s.AccessExpiresAt), rel(s.RefreshExpiresAt), rel(s.ExpiresAt))
	}
	h.wantAccess(accessToken("s1", 0), s.ExpiresAt-1, StatusActive)
	h.wantAccess(accessToken("s1", 0), s.ExpiresAt, StatusExpired)
}

func TestCreate_RejectsInvalidAndConflictingEvents(t *testing.T) {
	h := newHarness(t)
	h.create(t0, "s1", "alice")
	before := snapshotSessions(t, h.f)

	mod := func(edit func(*events.SessionCreated)) *events.SessionCreated {
		ev := created("s2", "bob")
		edit(ev)
		return ev
	}
	cases := []struct {
		name string
		ev   *events.SessionCreated
		want error
	}{
		{"empty session id", mod(func(e *events.SessionCreated) { e.SessionID = "" }), ErrInvalid},
		{"empty user id", mod(func(e *events.SessionCreated) { e.UserID = "" }), ErrInvalid},
		{"no access hash", mod(func(e *events.SessionCreated) { e.AccessHash = events.TokenHash{} }), ErrInvalid},
		{"no refresh hash", mod(func(e *events.SessionCreated) { e.RefreshHash = events.TokenHash{} }), ErrInvalid},
		{"same hash twice", mod(func(e *events.SessionCreated) { e.RefreshHash = e.AccessHash }), ErrInvalid},
		{"session id taken", mod(func(e *events.SessionCreated) { e.SessionID = "s1" }), ErrConflict},
		{"access hash taken", mod(func(e *events.SessionCreated) { e.AccessHash = ah("s1", 0) }), ErrConflict},
		{"refresh hash taken", mod(func(e *events.SessionCreated) { e.RefreshHash = rh("s1", 0) }), ErrConflict},
	}
	for _, tc := range cases {
		res := h.apply(t0+minute, tc.ev)
		if !errors.Is(res.Err, tc.want) {
			t.Errorf("%s: err = %v, want %v", tc.name, res.Err, tc.want)
		}
		if res.Session != nil || res.Count != 0 {
			t.Errorf("%s: a rejected create reports session %v, count %d", tc.name, res.Session, res.Count)
		}
	}
	if after := snapshotSessions(t, h.f); !reflect.DeepEqual(before, after) {
		t.Errorf("rejected creates changed the sessions:\nbefore %v\nafter  %v", before, after)
	}
	if stats := h.f.Stats(); stats != (Stats{Sessions: 1, Live: 1, Users: 1}) {
		t.Errorf("Stats = %+v after rejected creates", stats)
	}
}

func TestApply_EventTimeNeverGoesBack(t *testing.T) {
	h := newHarness(t)
	h.create(t0+time.Hour.Nanoseconds(), "s1", "alice")
	// The next leader's clock is an hour behind: its event is applied at the
	// last event time, not at the time it carries.
	s2 := h.create(t0, "s2", "alice")
	if s2.CreatedAt != t0+hour {
		t.Errorf("session stamped earlier was created at %s, want t0+1h", rel(s2.CreatedAt))
	}
	if s2.AccessExpiresAt != t0+hour+15*minute {
		t.Errorf("its access expiry is %s, want t0+1h15m", rel(s2.AccessExpiresAt))
	}
	if got := h.f.LastEventTime(); got != t0+hour {
		t.Errorf("LastEventTime = %s, want t0+1h", rel(got))
	}
	// Revoking "in the past" also happens at the last time.
	res := h.mustApply(t0-day, &events.SessionRevoked{SessionID: "s1", Scope: events.RevokeWholeSession, Reason: events.ReasonLogout})
	if res.Session.RevokedAt() != t0+hour {
		t.Errorf("revoked at %s, want t0+1h", rel(res.Session.RevokedAt()))
	}
	if got := h.f.LastEventTime(); got != t0+hour {
		t.Errorf("LastEventTime went back to %s", rel(got))
	}
}

// snapshotSessions returns every stored session, sorted by id (by way of a
// captured snapshot, the same view Persist streams).
func snapshotSessions(tb testing.TB, f *FSM) []Session {
	tb.Helper()
	snap, err := f.Snapshot()
	if err != nil {
		tb.Fatal(err)
	}
	fs := snap.(*fsmSnapshot)
	sortSnapshot(fs)
	out := make([]Session, len(fs.sessions))
	for i, s := range fs.sessions {
		out[i] = *s
	}
	return out
}

// sortSnapshot orders a captured snapshot's records as encode does,
// so that tests can compare captured views without encoding them.
func sortSnapshot(s *fsmSnapshot) { s.sort() }
