package fsm

import (
	"fmt"
	"testing"
	"time"

	"github.com/sessiond/sessiond/events"
)

// counts are the session counts of Stats.
type counts struct{ stored, live, revoked int }

func statsCounts(s Stats) counts { return counts{s.Sessions, s.Live, s.Revoked} }

// wantCounts checks f's session counts against want and against a count of
// the stored sessions one by one.
func wantCounts(tb testing.TB, f *FSM, want counts) {
	tb.Helper()
	got := statsCounts(f.Stats())
	stored, live, revoked := bruteStats(f)
	if brute := (counts{stored, live, revoked}); got != brute {
		tb.Errorf("Stats counts %+v, the stored sessions %+v", got, brute)
	}
	if got != want {
		tb.Errorf("Stats counts %+v, want %+v", got, want)
	}
}

// Every way a session is made, changed or removed keeps the counts, and a
// restored copy rebuilds them.
func TestStats_CountsFollowEveryChange(t *testing.T) {
	w := newTwins(t)
	w.mustApply(t0, policySet(func(p *Policy) {
		p.MaxSessionsPerUser = 3
		p.OnSessionLimit = events.OnLimitEvictOldest
		p.RefreshReuseGrace = time.Minute
	}))
	revoke := func(id events.SessionID, scope events.RevokeScope, h events.TokenHash) *events.SessionRevoked {
		return &events.SessionRevoked{SessionID: id, Scope: scope, Reason: events.ReasonLogout, TokenHash: h}
	}
	late := t0 + 3*hour
	steps := []struct {
		name string
		do   func(t *testing.T)
		want counts
	}{
		{"create", func(t *testing.T) {
			for _, s := range []struct {
				id   events.SessionID
				user events.UserID
				app  string
			}{
				{"a1", "alice", "default"}, {"a2", "alice", "default"}, {"a3", "alice", "default"},
				{"b1", "bob", "default"}, {"b2", "bob", "default"}, {"c1", "carol", "default"}, {"c2", "carol", "default"},
				{"d1", "dave", "default"}, {"e1", "erin", "default"}, {"g1", "gina", "web"}, {"g2", "gina", "mobile"},
			} {
				w.create(t0, s.id, s.user, s.app)
			}
		}, counts{11, 11, 0}},
		{"refresh", func(t *testing.T) { w.mustApply(t0+minute, refreshed("a1", 1)) }, counts{11, 11, 0}},
		{"touch", func(t *testing.T) {
			w.mustApply(t0+2*minute, touches(events.Touch{SessionID: "a2", At: t0 + 2*minute}))
		}, counts{11, 11, 0}},
		{"revoke a session", func(t *testing.T) {
			w.mustApply(t0+3*minute, revoke("a2", events.RevokeWholeSession, events.TokenHash{}))
		}, counts{11, 10, 1}},
		{"revoke it again", func(t *testing.T) {
			w.mustApply(t0+3*minute, revoke("a2", events.RevokeWholeSession, events.TokenHash{}))
		}, counts{11, 10, 1}},
		{"revoke an access token alone", func(t *testing.T) {
			w.mustApply(t0+3*minute, revoke("a3", events.RevokeAccessToken, events.TokenHash{}))
		}, counts{11, 10, 1}},
		{"revoke its refresh token too", func(t *testing.T) {
			w.mustApply(t0+3*minute, revoke("a3", events.RevokeRefreshToken, events.TokenHash{}))
		}, counts{11, 9, 2}},
		{"refresh token reuse", func(t *testing.T) {
			ev := refreshed("a1", 9)
			ev.PresentedHash = rh("a1", 0) // rotated four minutes ago: past the grace
			w.wantErr(t0+5*minute, ev, ErrRefreshReuse)
		}, counts{11, 8, 3}},
		{"revoke all but one token of two pairs", func(t *testing.T) {
			w.mustApply(t0+6*minute, sibling("d1", 0, 1))
			w.mustApply(t0+6*minute+10*sec, sibling("d1", 0, 2)) // within the grace: a second pair
			w.mustApply(t0+6*minute+20*sec, revoke("d1", events.RevokeRefreshToken, events.TokenHash{}))
			w.mustApply(t0+6*minute+20*sec, revoke("d1", events.RevokeAccessToken, ah("d1", 2)))
		}, counts{11, 8, 3}},
		{"revoke the last token", func(t *testing.T) {
			w.mustApply(t0+6*minute+30*sec, revoke("d1", events.RevokeAccessToken, ah("d1", 1)))
		}, counts{11, 7, 4}},
		{"force logout", func(t *testing.T) {
			res := w.mustApply(t0+7*minute, &events.UserForceLoggedOut{UserID: "bob", Reason: events.ReasonAdmin, Except: "b2"})
			if res.Count != 1 {
				t.Errorf("force logout revoked %d", res.Count)
			}
		}, counts{11, 6, 5}},
		{"password change", func(t *testing.T) {
			w.mustApply(t0+8*minute, credentials("carol", "", "hash-1"))
			w.mustApply(t0+8*minute, credentials("carol", "", "hash-2"))
		}, counts{11, 4, 7}},
		{"bulk revoke", func(t *testing.T) {
			w.mustApply(t0+9*minute, &events.SessionsBulkRevoked{Reason: events.ReasonBulk, Apps: []string{"web"}})
		}, counts{11, 3, 8}},
		{"user deletion", func(t *testing.T) { w.mustApply(t0+10*minute, &events.UserDeleted{UserID: "erin"}) }, counts{11, 2, 9}},
		{"create up to the limit", func(t *testing.T) {
			for i := 1; i <= 3; i++ {
				w.create(t0+11*minute, events.SessionID(fmt.Sprint("f", i)), "frank", "default")
			}
		}, counts{14, 5, 9}},
		{"eviction", func(t *testing.T) {
			if res := w.mustApply(t0+12*minute, created("f4", "frank")); res.Count != 1 {
				t.Errorf("create evicted %d", res.Count)
			}
		}, counts{15, 5, 10}},
		{"end_sessions", func(t *testing.T) {
			ev := created("f5", "frank")
			ev.EndSessions = []events.SessionID{"f2"}
			if res := w.mustApply(t0+13*minute, ev); res.Count != 1 {
				t.Errorf("create ended %d", res.Count)
			}
		}, counts{16, 5, 11}},
		{"sessions that end later", func(t *testing.T) {
			w.create(late, "z1", "zoe", "default")
			w.create(late, "z2", "zoe", "default")
			w.mustApply(late, revoke("z2", events.RevokeWholeSession, events.TokenHash{}))
		}, counts{18, 6, 12}},
		{"expiry collection", func(t *testing.T) {
			if res := w.mustApply(late, &events.SessionsExpired{Until: late}); res.Count != 16 {
				t.Errorf("collected %d", res.Count)
			}
		}, counts{2, 1, 1}},
		{"everything collected", func(t *testing.T) {
			w.mustApply(late+day, &events.SessionsExpired{Until: late + day})
		}, counts{0, 0, 0}},
	}
	for _, step := range steps {
		t.Run(step.name, func(t *testing.T) {
			step.do(t)
			wantCounts(t, w.f(), step.want)
			wantCounts(t, w.checkSnapshots(), step.want)
		})
	}
}

// Through a random log the counts stay those of the stored sessions after
// every entry, and a snapshot restores them.
func TestStats_CountsMatchTheSessionsThroughARandomLog(t *testing.T) {
	n := 3000
	if testing.Short() {
		n = 1000
	}
	g := newEventGen(t, 7)
	f := New(Config{})
	for i, l := range g.logs(n) {
		f.Apply(l)
		stored, live, revoked := bruteStats(f)
		if got, want := statsCounts(f.Stats()), (counts{stored, live, revoked}); got != want {
			env, _ := events.Decode(l.Data)
			t.Fatalf("after entry %d (%s): Stats counts %+v, the stored sessions %+v", l.Index, env.Type(), got, want)
		}
		if i%500 == 0 {
			if r := restored(t, snapshotBytes(t, f)); r.Stats() != f.Stats() {
				t.Fatalf("after entry %d: restored Stats %+v, original %+v", l.Index, r.Stats(), f.Stats())
			}
		}
	}
	st := f.Stats()
	if st.Live == 0 || st.Revoked == 0 {
		t.Errorf("the log should leave live sessions and tombstones: %+v", st)
	}
}
