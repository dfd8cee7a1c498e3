package fsm

import (
	"bytes"
	"fmt"
	"maps"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"

	"github.com/hashicorp/raft"

	"github.com/sessiond/sessiond/events"
)

// eventGen produces a random but seeded stream of meaningful events: it
// applies each one to its own FSM and looks at the outcome to decide what
// comes next (which token pair is current, which sessions exist), so the
// stream exercises successful refreshes, reuse, guarded revocations of stale
// tokens and so on, not only rejections.
type eventGen struct {
	tb    testing.TB
	r     *rand.Rand
	f     *FSM
	now   int64
	index uint64
	req   int

	ids   []events.SessionID
	pair  map[events.SessionID]int // current token pair number
	users []events.UserID
	sent  []events.Envelope // for retries

	// directory mixes in the global group's directory events (UserHomed,
	// EmailClaimed). Off, the stream is what it was before they existed.
	directory bool

	outcomes map[string]int // "type: outcome" → how many, to see what the stream exercised
}

func newEventGen(tb testing.TB, seed uint64) *eventGen {
	g := &eventGen{
		tb:       tb,
		r:        rand.New(rand.NewPCG(seed, seed^0x5e55)),
		f:        New(Config{}),
		now:      t0,
		pair:     map[events.SessionID]int{},
		outcomes: map[string]int{},
	}
	for i := range 40 {
		g.users = append(g.users, events.UserID(fmt.Sprintf("user-%02d", i)))
	}
	return g
}

var genApps = []string{"admin", "default", "mobile", "web"}

// next produces, applies and returns the next log entry.
func (g *eventGen) next() *raft.Log {
	r := g.r
	// Time mostly moves forward; sometimes a leader's clock is behind.
	switch p := r.IntN(100); {
	case p < 5:
		g.now -= r.Int64N(2 * minute)
	case p < 10:
		// same time as the previous event
	default:
		g.now += r.Int64N(20e9)
	}
	var env events.Envelope
	if p := r.IntN(100); p < 5 && len(g.sent) > 0 {
		// A retry of an earlier write, stamped now.
		env = g.sent[r.IntN(len(g.sent))]
		env.Time = g.now
	} else {
		g.req++
		env = events.Envelope{Time: g.now, RequestID: fmt.Sprintf("req-%06d", g.req), Event: g.event()}
		if r.IntN(50) == 0 {
			env.RequestID = "" // writes without an id are never deduplicated
		}
		g.sent = append(g.sent, env)
	}
	g.index++
	l := commandLog(g.tb, g.index, env)
	res := g.f.Apply(l).(*Result)
	if !res.Duplicate && res.Index != g.index {
		g.tb.Fatalf("result index %d for log %d", res.Index, g.index)
	}
	outcome := "ok"
	switch {
	case res.Duplicate:
		outcome = "duplicate"
	case res.Err != nil:
		outcome = res.Err.Error()
	case res.Count > 0:
		outcome = "ok, count>0"
	}
	g.outcomes[env.Type().String()+": "+outcome]++
	if ev, ok := env.Event.(*events.SessionRefreshed); ok && res.Err == nil && !res.Duplicate {
		g.pair[ev.SessionID]++
	}
	return l
}

func (g *eventGen) logs(n int) []*raft.Log {
	out := make([]*raft.Log, n)
	for i := range out {
		out[i] = g.next()
	}
	return out
}

func (g *eventGen) someSession() (events.SessionID, bool) {
	if len(g.ids) == 0 {
		return "", false
	}
	// Prefer recent sessions: they are more likely alive.
	n := len(g.ids)
	return g.ids[n-1-min(n-1, int(g.r.ExpFloat64()*20))], true
}

func (g *eventGen) reason() events.Reason {
	return events.Reason(1 + g.r.IntN(int(events.ReasonUser)))
}

func (g *eventGen) event() events.Event {
	r := g.r
	if g.directory && r.IntN(5) == 0 {
		return g.directoryEvent()
	}
	p := r.IntN(100)
	id, ok := g.someSession()
	if !ok {
		p = 0
	}
	switch {
	case p < 30:
		id := events.SessionID(fmt.Sprintf("s%05d", len(g.ids)))
		g.ids = append(g.ids, id)
		ev := created(id, g.users[r.IntN(len(g.users))])
		ev.App = genApps[r.IntN(len(genApps))]
		ev.RememberMe = r.IntN(10) == 0
		ev.AuthMethod = events.AuthMethod(1 + r.IntN(3))
		ev.Device = events.Device{UserAgent: fmt.Sprintf("agent/%d", r.IntN(5)), IP: fmt.Sprintf("10.0.0.%d", r.IntN(256))}
		if r.IntN(4) == 0 {
			ev.Device.Label = "label-" + string(id)
			ev.Scopes = []string{"read", "write"}[:1+r.IntN(2)]
			ev.Attributes = []events.Attribute{{Key: "role", Value: genApps[r.IntN(4)]}}
		}
		if r.IntN(100) == 0 {
			ev.AccessHash = ah(g.ids[r.IntN(len(g.ids))], 0) // a conflict
		}
		return ev
	case p < 60:
		n := g.pair[id]
		ev := refreshed(id, n+1)
		switch q := r.IntN(100); {
		case q < 15 && n > 0:
			ev.PresentedHash = rh(id, r.IntN(n)) // reuse of a rotated token
			ev.NewAccessHash = events.HashToken(fmt.Sprintf("sa_x%d", g.req))
			ev.NewRefreshHash = events.HashToken(fmt.Sprintf("sr_x%d", g.req))
		case q < 17:
			ev.NewRefreshHash = ev.NewAccessHash // invalid
		}
		return ev
	case p < 75:
		ev := &events.SessionRevoked{SessionID: id, Scope: events.RevokeScope(1 + r.IntN(3)), Reason: g.reason()}
		n := g.pair[id]
		switch r.IntN(4) {
		case 0:
			ev.TokenHash = ah(id, n)
		case 1:
			ev.TokenHash = rh(id, n)
		case 2:
			ev.TokenHash = ah(id, max(0, n-1)) // maybe stale
		}
		if r.IntN(30) == 0 {
			ev.SessionID = "no-such-session"
		}
		return ev
	case p < 80:
		ev := &events.UserForceLoggedOut{UserID: g.users[r.IntN(len(g.users))], Reason: g.reason()}
		if r.IntN(2) == 0 {
			ev.Except = id
		}
		return ev
	case p < 81:
		ev := &events.SessionsBulkRevoked{Reason: events.ReasonBulk}
		if r.IntN(2) == 0 {
			ev.CreatedBefore = g.now - r.Int64N(hour)
		}
		if r.IntN(2) == 0 {
			ev.Apps = []string{genApps[r.IntN(2)], genApps[2+r.IntN(2)]}
		}
		return ev
	default:
		until := g.now
		switch r.IntN(3) {
		case 0:
			until -= r.Int64N(hour)
		case 1:
			until += r.Int64N(hour) // clamped to the event time
		}
		return &events.SessionsExpired{Until: until}
	}
}

var genRegions = []string{"ap-south-1", "eu-west-1", "us-east-1"}

// genEmails is the pool of addresses the generator's users claim: fewer
// than the users, so claims collide.
const genEmails = 30

func genEmail(i int) string { return fmt.Sprintf("u%02d@example.com", i) }

// directoryEvent is a home or a claim for a random user: mostly claims of
// the shared pool of addresses (moves, conflicts), some releases, some
// invalid events.
func (g *eventGen) directoryEvent() events.Event {
	r := g.r
	user := g.users[r.IntN(len(g.users))]
	switch p := r.IntN(23); {
	case p == 21:
		// Frozen for a move: later writes for the user are refused.
		return &events.UserFrozen{UserID: user, To: genRegions[r.IntN(len(genRegions))], Move: fmt.Sprint("m", r.IntN(3))}
	case p == 22:
		// A move taken in with an empty state: the user's state goes.
		return &events.UserImported{UserID: user, From: genRegions[0], Move: fmt.Sprint("m", r.IntN(3)), State: []byte{0x93, 0, 0, 0}}
	case p == 20:
		// An import batch: some users and addresses of the pool, the
		// region mostly the first import's (another is refused).
		ev := &events.DirectoryImported{Region: genRegions[r.IntN(2)], Done: r.IntN(4) == 0}
		for range 1 + r.IntN(4) {
			u := events.ImportedUser{UserID: g.users[r.IntN(len(g.users))]}
			if r.IntN(2) == 0 {
				u.Email = genEmail(r.IntN(genEmails))
			}
			ev.Users = append(ev.Users, u)
		}
		return ev
	case p < 6:
		return &events.UserHomed{UserID: user, Region: genRegions[r.IntN(len(genRegions))]}
	case p < 8:
		return &events.EmailClaimed{UserID: user}
	case p < 9:
		return &events.EmailClaimed{UserID: user, Email: "U@example.com"} // invalid
	case p < 10:
		return &events.UserHomed{UserID: user, Region: "EU"} // invalid
	default:
		return &events.EmailClaimed{UserID: user, Email: genEmail(r.IntN(genEmails))}
	}
}

// randomLogs returns n random log entries of the given seed.
func randomLogs(tb testing.TB, seed uint64, n int) []*raft.Log {
	return newEventGen(tb, seed).logs(n)
}

// applyInRandomBatches feeds logs to f in batches of random sizes.
func applyInRandomBatches(f *FSM, logs []*raft.Log, seed uint64) []any {
	r := rand.New(rand.NewPCG(seed, 1))
	var out []any
	for i := 0; i < len(logs); {
		end := min(len(logs), i+1+r.IntN(200))
		out = append(out, f.ApplyBatch(logs[i:end])...)
		i = end
	}
	return out
}

func TestDeterminism_SameLogSameSnapshot(t *testing.T) {
	// Logs of two lengths: the shorter one once showed what the longer one
	// hid (a restored node garbage-collected a session later than one
	// that replayed the log).
	lengths := []int{1500, 4000}
	if testing.Short() {
		lengths = lengths[:1]
	}
	for _, c := range []struct {
		seed      uint64
		directory bool
	}{{1, false}, {2, false}, {3, true}, {4, true}} {
		for _, n := range lengths {
			testDeterminism(t, c.seed, c.directory, n)
		}
	}
}

func testDeterminism(t *testing.T, seed uint64, directory bool, n int) {
	t.Helper()
	{
		name := fmt.Sprint("seed=", seed, ",entries=", n)
		if directory {
			name += ",directory"
		}
		t.Run(name, func(t *testing.T) {
			g := newEventGen(t, seed)
			g.directory = directory
			logs := g.logs(n)

			a := New(Config{})
			applyInRandomBatches(a, logs, seed)
			b := New(Config{})
			for _, l := range logs {
				b.Apply(l)
			}
			snapA, snapB, snapG := snapshotBytes(t, a), snapshotBytes(t, b), snapshotBytes(t, g.f)
			if !bytes.Equal(snapA, snapB) || !bytes.Equal(snapA, snapG) {
				t.Fatalf("snapshots differ: %d / %d / %d bytes", len(snapA), len(snapB), len(snapG))
			}
			checkInvariants(t, a)
			stats := a.Stats()
			t.Logf("%d events: %d sessions of %d users stored, %d ever created, snapshot %d bytes",
				n, stats.Sessions, stats.Users, len(g.ids), len(snapA))
			keys := slices.Sorted(maps.Keys(g.outcomes))
			for _, k := range keys {
				t.Logf("  %-50s %d", k, g.outcomes[k])
			}
			if stats.Sessions == 0 || stats.Sessions == len(g.ids) {
				t.Errorf("the stream should leave some but not all sessions (%d of %d)", stats.Sessions, len(g.ids))
			}
			homes, emails := a.DirectorySize()
			wantFormat := uint64(snapshotFormatNoDirectory)
			if directory {
				wantFormat = snapshotFormat
				if homes == 0 || emails == 0 || g.outcomes["EmailClaimed: "+ErrEmailInUse.Error()] == 0 ||
					g.outcomes["EmailClaimed: duplicate"]+g.outcomes["UserHomed: duplicate"] == 0 {
					t.Errorf("the stream should hold homes and claims, refuse claims and retry some (%d homes, %d emails)", homes, emails)
				}
			} else if homes != 0 || emails != 0 {
				t.Errorf("a stream without directory events made a directory")
			}
			if got := snapshotFormatOf(t, snapA); got != wantFormat {
				t.Errorf("snapshot format %d, want %d", got, wantFormat)
			}

			c := restored(t, snapA)
			if snapC := snapshotBytes(t, c); !bytes.Equal(snapA, snapC) {
				t.Fatal("a restored FSM writes a different snapshot")
			}
			checkInvariants(t, c)
			compareQueries(t, g, a, c)

			// The restored FSM goes on exactly like the original.
			more := g.logs(n / 4)
			resA := applyInRandomBatches(a, more, seed+1)
			resC := applyInRandomBatches(c, more, seed+2)
			for i := range resA {
				if !sameResult(resA[i].(*Result), resC[i].(*Result)) {
					t.Fatalf("after restore, entry %d gives %+v, the original %+v", more[i].Index, resC[i], resA[i])
				}
			}
			if !bytes.Equal(snapshotBytes(t, a), snapshotBytes(t, c)) {
				t.Fatal("original and restored FSM diverge after more events")
			}
			if !bytes.Equal(snapshotBytes(t, a), snapshotBytes(t, g.f)) {
				t.Fatal("original and generator FSM diverge after more events")
			}
			checkInvariants(t, c)
			compareQueries(t, g, a, c)
		})
	}
}

// compareQueries checks that two FSMs answer every read alike.
func compareQueries(t *testing.T, g *eventGen, a, b *FSM) {
	t.Helper()
	if a.AppliedIndex() != b.AppliedIndex() || a.LastEventTime() != b.LastEventTime() || a.Stats() != b.Stats() ||
		!reflect.DeepEqual(a.Policy(), b.Policy()) {
		t.Fatalf("index/time/stats/policy differ: %d %d %+v / %d %d %+v",
			a.AppliedIndex(), a.LastEventTime(), a.Stats(), b.AppliedIndex(), b.LastEventTime(), b.Stats())
	}
	times := []int64{g.now, g.now + 10*minute, g.now + day}
	for _, id := range g.ids {
		sa, oka := a.Session(id)
		sb, okb := b.Session(id)
		if oka != okb || !reflect.DeepEqual(sa, sb) {
			t.Fatalf("Session(%s) differs: %v %+v / %v %+v", id, oka, sa, okb, sb)
		}
		for n := 0; n <= g.pair[id]+1; n++ {
			for _, h := range []events.TokenHash{ah(id, n), rh(id, n)} {
				for _, now := range times {
					va, sta := a.ValidateAccess(h, now)
					vb, stb := b.ValidateAccess(h, now)
					if sta != stb || !reflect.DeepEqual(va, vb) {
						t.Fatalf("ValidateAccess(%s pair %d) differs: %s / %s", id, n, sta, stb)
					}
					la, ka, lsa := a.LookupToken(h, now)
					lb, kb, lsb := b.LookupToken(h, now)
					if ka != kb || lsa != lsb || !reflect.DeepEqual(la, lb) {
						t.Fatalf("LookupToken(%s pair %d) differs: %d %s / %d %s", id, n, ka, lsa, kb, lsb)
					}
				}
			}
		}
	}
	for _, u := range g.users {
		for _, now := range times {
			if ua, ub := a.UserSessions(u, now), b.UserSessions(u, now); !reflect.DeepEqual(ua, ub) {
				t.Fatalf("UserSessions(%s) differs: %d / %d sessions", u, len(ua), len(ub))
			}
		}
		ra, oka := a.Home(u)
		rb, okb := b.Home(u)
		ea, eoka := a.UserEmail(u)
		eb, eokb := b.UserEmail(u)
		if ra != rb || oka != okb || ea != eb || eoka != eokb {
			t.Fatalf("directory of %s differs: home %q %v / %q %v, email %q %v / %q %v", u, ra, oka, rb, okb, ea, eoka, eb, eokb)
		}
	}
	for i := range genEmails {
		ua, oka := a.EmailOwner(genEmail(i))
		ub, okb := b.EmailOwner(genEmail(i))
		if ua != ub || oka != okb {
			t.Fatalf("EmailOwner(%s) differs: %q %v / %q %v", genEmail(i), ua, oka, ub, okb)
		}
	}
	ha, ea := a.DirectorySize()
	hb, eb := b.DirectorySize()
	if ha != hb || ea != eb {
		t.Fatalf("DirectorySize differs: %d %d / %d %d", ha, ea, hb, eb)
	}
}

// checkInvariants verifies the FSM's indexes against its sessions: every
// session is found by each of its hashes and by its user, and the indexes
// hold nothing else.
func checkInvariants(tb testing.TB, f *FSM) {
	tb.Helper()
	f.mu.RLock()
	defer f.mu.RUnlock()
	st := f.st
	nAccess, nRefresh, nUser, nRevoked := 0, 0, 0, 0
	for k, s := range st.sessions.primary {
		if idKey(s.ID()) != k {
			tb.Fatalf("session %q stored under key %x", s.ID(), k)
		}
	}
	for id, s := range st.sessions.overflow {
		if s.ID() != id {
			tb.Fatalf("session %q stored in overflow under %q", s.ID(), id)
		}
	}
	st.sessions.all(func(s *Session) {
		id := s.ID()
		if st.sessions.get(id) != s {
			tb.Fatalf("session %q not found by its id", id)
		}
		if st.byAccessHash(s.AccessHash) != s {
			tb.Fatalf("session %s not found by its access hash", id)
		}
		if st.byRefreshHash(s.RefreshHash) != s {
			tb.Fatalf("session %s not found by its refresh hash", id)
		}
		for _, h := range s.ex().prevRefresh {
			if st.byRefreshHash(h) != s {
				tb.Fatalf("session %s not found by a previous refresh hash", id)
			}
		}
		if len(s.ex().prevRefresh) > maxRefreshHistory {
			tb.Fatalf("session %s remembers %d refresh hashes", id, len(s.ex().prevRefresh))
		}
		u := st.byUser[s.UserID]
		if u == nil || !slices.Contains(u.ids, id) {
			tb.Fatalf("session %s not listed under its user", id)
		}
		if !slices.Contains(st.expiry.buckets[bucketOf(s.EndsAt())], id) {
			tb.Fatalf("session %s not queued for collection at its end", id)
		}
		for _, p := range s.ex().pairs {
			if st.byAccessHash(p.access) != s || st.byRefreshHash(p.refresh) != s {
				tb.Fatalf("session %s not found by the hashes of a sibling pair", id)
			}
		}
		if s.LivePairs() > maxLivePairs {
			tb.Fatalf("session %s holds %d live pairs", id, s.LivePairs())
		}
		if revokedForGood(s) {
			nRevoked++
		}
		nAccess += s.LivePairs()
		nRefresh += s.LivePairs() + len(s.ex().prevRefresh)
	})
	for _, u := range st.byUser {
		nUser += len(u.ids)
		if len(u.ids) == 0 {
			tb.Fatalf("user %s kept with no sessions", u.id)
		}
	}
	if got := len(st.byAccess.primary) + len(st.byAccess.overflow); got != nAccess {
		tb.Fatalf("access index holds %d hashes, sessions hold %d", got, nAccess)
	}
	if got := len(st.byRefresh.primary) + len(st.byRefresh.overflow); got != nRefresh {
		tb.Fatalf("refresh index holds %d hashes, sessions hold %d", got, nRefresh)
	}
	if nUser != st.sessions.len() {
		tb.Fatalf("user index lists %d sessions, %d stored", nUser, st.sessions.len())
	}
	if len(st.expiry.keys) != len(st.expiry.buckets) {
		tb.Fatalf("expiry heap has %d keys for %d buckets", len(st.expiry.keys), len(st.expiry.buckets))
	}
	if st.tombstones != nRevoked {
		tb.Fatalf("the state counts %d tombstones, %d of its %d sessions are", st.tombstones, nRevoked, st.sessions.len())
	}
	// The directory: valid homes, and the two maps of claims each other's
	// reverse.
	for u, r := range st.dir.homes {
		if u == "" || !events.ValidRegion(r) {
			tb.Fatalf("home %q of user %q", r, u)
		}
	}
	if len(st.dir.owners) != len(st.dir.emails) {
		tb.Fatalf("%d emails have owners, %d users hold emails", len(st.dir.owners), len(st.dir.emails))
	}
	for e, u := range st.dir.owners {
		if e == "" || u == "" || !validEmail(e) || st.dir.emails[u] != e {
			tb.Fatalf("email %q held by %q, who holds %q", e, u, st.dir.emails[u])
		}
	}
}

// revokedForGood is the brute-force test of a tombstone, independent of
// Session.tombstone: at its creation every token a session holds is within
// its lifetime (the policy's lifetimes are a minute at least) and it was
// not idle, so its status then, as the state holds it now, is active unless
// revocations took every token away.
func revokedForGood(s *Session) bool { return s.Status(s.CreatedAt) != StatusActive }

// bruteStats counts the stored sessions one by one.
func bruteStats(f *FSM) (stored, live, revoked int) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	f.st.sessions.all(func(s *Session) {
		stored++
		if revokedForGood(s) {
			revoked++
		} else {
			live++
		}
	})
	return stored, live, revoked
}
