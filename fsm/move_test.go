package fsm

import (
	"bytes"
	"errors"
	"testing"

	"github.com/sessiond/sessiond/events"
)

// A move, as the three groups see it: the old home freezes the user (every
// write for it refused, its state left for lookups), the new home takes
// the exported state once, and the directory names the new home.
func TestMove_FreezeExportImport(t *testing.T) {
	eu := newHarness(t)
	eu.mustApply(t0, &events.UserCredentialsSet{UserID: "ada", Email: "ada@example.com", PasswordHash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA", Reason: events.ReasonPasswordChange})
	eu.create(t0+minute, "s-ada-1", "ada")
	eu.create(t0+minute, "s-ada-2", "ada")
	eu.mustApply(t0+2*minute, refreshed("s-ada-2", 1))
	eu.mustApply(t0+2*minute, &events.SessionRevoked{SessionID: "s-ada-1", Scope: events.RevokeWholeSession, Reason: events.ReasonLogout})
	eu.mustApply(t0+2*minute, &events.LoginFailed{LoginID: LoginByUser + "ada", UserID: "ada"})
	eu.mustApply(t0+2*minute, &events.UserLimitSet{UserID: "ada", MaxSessions: 7})
	eu.create(t0+2*minute, "s-bob", "bob")

	if res := eu.mustApply(t0+3*minute, &events.UserFrozen{UserID: "ada", To: "us", Move: "m1"}); res.Count != 1 {
		t.Errorf("freeze: count %d", res.Count)
	}
	eu.mustApply(t0+3*minute, &events.UserFrozen{UserID: "ada", To: "us", Move: "m1"}) // repeated: fine
	if res := eu.apply(t0+3*minute, &events.UserFrozen{UserID: "ada", To: "ap", Move: "m2"}); !errors.Is(res.Err, ErrConflict) {
		t.Errorf("a second move while frozen: %v, want ErrConflict", res.Err)
	}
	for _, ev := range []events.Event{
		created("s-ada-3", "ada"),
		refreshed("s-ada-2", 2),
		&events.SessionRevoked{SessionID: "s-ada-2", Scope: events.RevokeWholeSession, Reason: events.ReasonAdmin},
		&events.UserForceLoggedOut{UserID: "ada", Reason: events.ReasonAdmin},
		&events.UserCredentialsSet{UserID: "ada", Email: "new@example.com", Reason: events.ReasonPasswordChange},
		&events.UserDeleted{UserID: "ada"},
		&events.LoginFailed{LoginID: LoginByUser + "ada", UserID: "ada"},
		&events.UserUnlocked{UserID: "ada"},
		&events.UserLimitSet{UserID: "ada", Clear: true},
	} {
		if res := eu.apply(t0+4*minute, ev); !errors.Is(res.Err, ErrMoved) {
			t.Errorf("%s for the frozen user: %v, want ErrMoved", ev.EventType(), res.Err)
		}
	}
	// Bulk revocation and touches pass over the frozen user's sessions.
	if res := eu.mustApply(t0+4*minute, &events.SessionsBulkRevoked{Reason: events.ReasonBulk}); res.Count != 1 {
		t.Errorf("bulk revocation revoked %d, want bob's one", res.Count)
	}
	eu.wantAccess(accessToken("s-ada-2", 1), t0+4*minute, StatusActive)
	if to, move, ok := eu.f.MovedTo("ada"); !ok || to != "us" || move != "m1" {
		t.Errorf("MovedTo = %q %q %v", to, move, ok)
	}

	state, err := eu.f.ExportUser("ada")
	if err != nil {
		t.Fatal(err)
	}
	us := newHarness(t)
	us.create(t0, "s-ada-stale", "ada") // from an earlier stay in us: replaced
	if res := us.mustApply(t0+5*minute, &events.UserImported{UserID: "ada", From: "eu", Move: "m1", State: state}); res.Count != 2 {
		t.Errorf("import took %d sessions, want 2", res.Count)
	}
	if _, ok := us.f.Session("s-ada-stale"); ok {
		t.Error("the import kept a session the old home did not have")
	}
	// The new home holds the same state: tokens, statuses, credentials,
	// limit, lockout.
	us.wantAccess(accessToken("s-ada-2", 1), t0+5*minute, StatusActive)
	for _, tok := range []string{accessToken("s-ada-2", 0), accessToken("s-ada-2", 1), accessToken("s-ada-1", 0), refreshToken("s-ada-2", 0), refreshToken("s-ada-2", 1)} {
		_, kindEU, statusEU := eu.f.LookupToken(events.HashToken(tok), t0+5*minute)
		_, kindUS, statusUS := us.f.LookupToken(events.HashToken(tok), t0+5*minute)
		if kindEU != kindUS || statusEU != statusUS {
			t.Errorf("token %s: old home says (%d, %s), new home (%d, %s)", tok, kindEU, statusEU, kindUS, statusUS)
		}
	}
	u, ok := us.f.User("ada")
	if !ok || u.Email != "ada@example.com" || !u.HasLimit || u.MaxSessions != 7 || u.PasswordHash == "" {
		t.Errorf("imported user %+v, %v", u, ok)
	}
	if byEmail, ok := us.f.UserByEmail("ada@example.com"); !ok || byEmail.ID != "ada" {
		t.Error("the imported email does not find the user")
	}
	again, _ := us.f.ExportUser("ada")
	if !bytes.Equal(again, state) {
		t.Error("the new home's state of the user differs from what the old one exported")
	}
	// Writes go on in the new home; a late repeat of the import undoes
	// none of them.
	us.mustApply(t0+6*minute, refreshed("s-ada-2", 2))
	if res := us.mustApply(t0+6*minute, &events.UserImported{UserID: "ada", From: "eu", Move: "m1", State: state}); res.Count != 0 {
		t.Errorf("a repeated import took %d sessions", res.Count)
	}
	us.wantAccess(accessToken("s-ada-2", 2), t0+6*minute, StatusActive)
	// A state of another user is refused.
	bobs, _ := eu.f.ExportUser("bob")
	if res := us.apply(t0+6*minute, &events.UserImported{UserID: "ada", From: "eu", Move: "m9", State: bobs}); !errors.Is(res.Err, ErrInvalid) {
		t.Errorf("bob's state imported as ada's: %v, want ErrInvalid", res.Err)
	}

	g := newHarness(t)
	g.mustApply(t0, homed("ada", "eu"))
	if res := g.apply(t0, &events.HomeMoved{UserID: "ada", From: "ap", To: "us"}); !errors.Is(res.Err, ErrConflict) {
		t.Errorf("a move from a region that is not the home: %v", res.Err)
	}
	g.mustApply(t0, &events.HomeMoved{UserID: "ada", From: "eu", To: "us"})
	g.mustApply(t0, &events.HomeMoved{UserID: "ada", From: "eu", To: "us"}) // repeated: fine
	g.wantHome("ada", "us")

	// Both groups' states survive snapshots, frozen users and moves taken
	// in included.
	for name, f := range map[string]*FSM{"old home": eu.f, "new home": us.f} {
		data := snapshotBytes(t, f)
		if got := snapshotFormatOf(t, data); got != snapshotFormat {
			t.Errorf("%s: format %d, want %d", name, got, snapshotFormat)
		}
		if !bytes.Equal(snapshotBytes(t, restored(t, data)), data) {
			t.Errorf("%s: a restored state writes other bytes", name)
		}
	}
	if _, _, ok := restored(t, snapshotBytes(t, eu.f)).MovedTo("ada"); !ok {
		t.Error("the frozen user is not frozen after a restore")
	}
}
