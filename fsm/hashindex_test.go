package fsm

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/sessiond/sessiond/events"
)

// Two stored hashes that share their first eight bytes must both be found,
// and removing one must leave the other.
func TestHashIndex_PrefixCollisions(t *testing.T) {
	var a, b, c events.TokenHash
	for i := range a {
		a[i], b[i], c[i] = 1, 1, 1
	}
	b[31], c[31] = 2, 3 // same 8-byte prefix as a, different hashes
	sa := &Session{text: mustPack(t, "s-a"), AccessHash: a}
	sb := &Session{text: mustPack(t, "s-b"), AccessHash: b}
	matches := func(h events.TokenHash) func(*Session) bool {
		return func(s *Session) bool { return s.AccessHash == h }
	}
	x := newHashIndex(0)
	x.add(a, sa)
	x.add(b, sb)
	for h, want := range map[events.TokenHash]*Session{a: sa, b: sb} {
		if got := x.get(h, matches(h)); got != want {
			t.Fatalf("get(%v) = %v; want %v", h, got, want)
		}
	}
	if x.get(c, matches(c)) != nil {
		t.Fatal("an unstored hash with a shared prefix was found")
	}
	// A removal naming the wrong session changes nothing.
	x.remove(a, sb)
	if x.get(a, matches(a)) != sa {
		t.Fatal("removal for the wrong session dropped an entry")
	}
	// Repointing follows a replacement.
	sa2 := &Session{text: sa.text, AccessHash: a}
	x.repoint(a, sa, sa2)
	if x.get(a, matches(a)) != sa2 {
		t.Fatal("repoint did not move the entry to the new value")
	}
	x.remove(a, sa2)
	if x.get(a, matches(a)) != nil {
		t.Fatal("removed hash still found")
	}
	if x.get(b, matches(b)) != sb {
		t.Fatal("removing one colliding hash lost the other")
	}
	x.remove(b, sb)
	if len(x.primary) != 0 || len(x.overflow) != 0 {
		t.Fatalf("index not empty after removing everything: %d primary, %d overflow", len(x.primary), len(x.overflow))
	}
}

// The state machine keeps working when two sessions' access hashes collide
// on the prefix: both validate, and revoking and collecting one leaves the
// other intact.
func TestState_CollidingAccessHashes(t *testing.T) {
	st := newState(0)
	var h1, h2, r1, r2 events.TokenHash
	for i := range h1 {
		h1[i], h2[i], r1[i], r2[i] = 7, 7, 8, 9
	}
	h2[31] = 1
	st.apply(1, events.Envelope{Time: 1, Event: &events.SessionCreated{SessionID: "one", UserID: "u", App: "a", AccessHash: h1, RefreshHash: r1}})
	st.apply(2, events.Envelope{Time: 2, Event: &events.SessionCreated{SessionID: "two", UserID: "u", App: "a", AccessHash: h2, RefreshHash: r2}})
	if s := st.byAccessHash(h1); s == nil || s.ID() != "one" {
		t.Fatal("first session not found by its access hash")
	}
	if s := st.byAccessHash(h2); s == nil || s.ID() != "two" {
		t.Fatal("second session not found by its colliding access hash")
	}
	one := st.sessions.get("one")
	st.remove(one)
	if st.byAccessHash(h1) != nil {
		t.Fatal("removed session still found")
	}
	if s := st.byAccessHash(h2); s == nil || s.ID() != "two" {
		t.Fatal("removing the first session lost the second")
	}
}

func mustPack(t *testing.T, id events.SessionID) string {
	t.Helper()
	text, ok := packText(id, "default", "", "")
	if !ok {
		t.Fatalf("packing %q", id)
	}
	return text
}

// Session ids whose keys collide are all found, replaced and removed by
// their own id, whichever of them came first.
func TestSessionIndex_KeyCollisions(t *testing.T) {
	const k = 42 // one key for every id below
	x := newSessionIndex(0)
	sa := &Session{text: mustPack(t, "s-a")}
	sb := &Session{text: mustPack(t, "s-b")}
	sc := &Session{text: mustPack(t, "s-c")}
	x.putKeyed(sa, k)
	x.putKeyed(sb, k)
	x.putKeyed(sc, k)
	for id, want := range map[events.SessionID]*Session{"s-a": sa, "s-b": sb, "s-c": sc} {
		if got := x.getKeyed(id, k); got != want {
			t.Fatalf("get(%q) = %v; want %v", id, got, want)
		}
	}
	if x.getKeyed("s-d", k) != nil {
		t.Fatal("an unstored id sharing the key was found")
	}
	// Replacing a value keeps it where it was.
	sb2 := &Session{text: sb.text, AccessHash: events.TokenHash{1}}
	x.putKeyed(sb2, k)
	if x.getKeyed("s-b", k) != sb2 || x.len() != 3 {
		t.Fatalf("replacement not found in place (%d stored)", x.len())
	}
	// Removing the primary holder leaves the others; a new id may then
	// take the free primary slot and all are still found.
	x.removeKeyed("s-a", k)
	if x.getKeyed("s-a", k) != nil || x.getKeyed("s-b", k) != sb2 || x.getKeyed("s-c", k) != sc {
		t.Fatal("removing the primary holder disturbed the others")
	}
	sd := &Session{text: mustPack(t, "s-d")}
	x.putKeyed(sd, k)
	x.putKeyed(&Session{text: sb.text}, k) // still replaces in overflow
	if x.getKeyed("s-d", k) != sd || x.len() != 3 {
		t.Fatalf("after refilling the primary slot: %d stored", x.len())
	}
	// An id moved to overflow and re-put after the primary slot emptied
	// stays where it is: one copy, the newest.
	x.removeKeyed("s-d", k)
	sb3 := &Session{text: sb.text, AccessHash: events.TokenHash{3}}
	x.putKeyed(sb3, k)
	if x.getKeyed("s-b", k) != sb3 || x.len() != 2 {
		t.Fatalf("re-put with the primary slot free: got %v, %d stored", x.getKeyed("s-b", k), x.len())
	}
	// Removing an id that was never stored, under a shared key, removes
	// nothing.
	x.putKeyed(sd, k)
	x.removeKeyed("s-z", k)
	if x.getKeyed("s-d", k) != sd || x.len() != 3 {
		t.Fatalf("removing an absent id disturbed the others (%d stored)", x.len())
	}
	seen := 0
	x.all(func(*Session) { seen++ })
	if seen != 3 {
		t.Fatalf("all visited %d sessions; want 3", seen)
	}
	for _, id := range []events.SessionID{"s-b", "s-c", "s-d"} {
		x.removeKeyed(id, k)
	}
	if len(x.primary) != 0 || len(x.overflow) != 0 {
		t.Fatalf("index not empty after removing everything: %d primary, %d overflow", len(x.primary), len(x.overflow))
	}
}

// The packed id, app, agent and IP read back as given, at the length
// limits too; a field past its limit is refused.
func TestPackText(t *testing.T) {
	long := func(n int) string { return strings.Repeat("x", n) }
	for _, tc := range []struct{ id, app, agent, ip string }{
		{"s1", "default", "Mozilla/5.0", "192.0.2.1"},
		{"s1", "", "", ""},
		{long(maxPackedID), long(maxPackedApp), long(maxPackedAgent), long(maxPackedIP)},
	} {
		text, ok := packText(events.SessionID(tc.id), tc.app, tc.agent, tc.ip)
		if !ok {
			t.Fatalf("packing fields of %d, %d, %d, %d bytes refused", len(tc.id), len(tc.app), len(tc.agent), len(tc.ip))
		}
		s := &Session{text: text}
		if string(s.ID()) != tc.id || s.App() != tc.app || s.UserAgent() != tc.agent || s.IP() != tc.ip {
			t.Fatalf("read back %q %q %q %q", s.ID(), s.App(), s.UserAgent(), s.IP())
		}
	}
	for name, f := range map[string][4]string{
		"id":    {long(maxPackedID + 1), "a", "", ""},
		"app":   {"s1", long(maxPackedApp + 1), "", ""},
		"agent": {"s1", "a", long(maxPackedAgent + 1), ""},
		"ip":    {"s1", "a", "", long(maxPackedIP + 1)},
	} {
		if _, ok := packText(events.SessionID(f[0]), f[1], f[2], f[3]); ok {
			t.Errorf("an over-long %s was packed", name)
		}
	}
	// Through the state machine the create is refused before it changes
	// anything, even what it would have changed first (end_sessions).
	h := newHarness(t)
	h.create(t0, "s1", "alice")
	ev := created("s2", "alice")
	ev.Device.IP = long(maxPackedIP + 1)
	ev.EndSessions = []events.SessionID{"s1"}
	if res := h.apply(t0+1, ev); !errors.Is(res.Err, ErrInvalid) || res.Count != 0 {
		t.Fatalf("over-long IP: err %v, count %d", res.Err, res.Count)
	}
	if h.session("s1").Revoked() || h.f.Stats().Sessions != 1 {
		t.Fatalf("a refused create changed the state: s1 revoked %v, %d sessions", h.session("s1").Revoked(), h.f.Stats().Sessions)
	}
}

// Sessions whose fields are at the packing limits come back from a
// snapshot byte for byte (a user agent past 255 bytes needs both of its
// length bytes).
func TestPackText_SnapshotRoundTripAtTheLimits(t *testing.T) {
	long := func(c string, n int) string { return strings.Repeat(c, n) }
	h := newHarness(t)
	fields := []struct{ id, app, agent, ip string }{
		{long("i", maxPackedID), long("a", maxPackedApp), long("u", maxPackedAgent), long("p", maxPackedIP)},
		{"s-300", "default", long("u", 300), "192.0.2.1"},
		{"s-256", "x", long("u", 256), ""},
		{"s-empty", "", "", ""},
	}
	for i, f := range fields {
		ev := created(events.SessionID(f.id), "alice")
		ev.App, ev.Device = f.app, events.Device{UserAgent: f.agent, IP: f.ip}
		ev.AccessHash, ev.RefreshHash = ah(events.SessionID(f.id), 0), rh(events.SessionID(f.id), 0)
		h.mustApply(t0+int64(i), ev)
	}
	restored := New(Config{})
	if err := restored.Restore(io.NopCloser(bytes.NewReader(snapshotBytes(t, h.f)))); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	for _, f := range fields {
		s, ok := restored.Session(events.SessionID(f.id))
		if !ok {
			t.Fatalf("session of %d-byte id not restored", len(f.id))
		}
		if s.App() != f.app || s.UserAgent() != f.agent || s.IP() != f.ip {
			t.Fatalf("session %.12q: restored app %d, agent %d, ip %d bytes; want %d, %d, %d",
				f.id, len(s.App()), len(s.UserAgent()), len(s.IP()), len(f.app), len(f.agent), len(f.ip))
		}
	}
	if !bytes.Equal(snapshotBytes(t, restored), snapshotBytes(t, h.f)) {
		t.Fatal("the restored state snapshots differently")
	}
}
