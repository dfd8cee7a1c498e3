package fsm

import (
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
	sa := &Session{ID: "s-a", AccessHash: a}
	sb := &Session{ID: "s-b", AccessHash: b}
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
	sa2 := &Session{ID: "s-a", AccessHash: a}
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
	if s := st.byAccessHash(h1); s == nil || s.ID != "one" {
		t.Fatal("first session not found by its access hash")
	}
	if s := st.byAccessHash(h2); s == nil || s.ID != "two" {
		t.Fatal("second session not found by its colliding access hash")
	}
	one := st.sessions["one"]
	st.remove(one)
	if st.byAccessHash(h1) != nil {
		t.Fatal("removed session still found")
	}
	if s := st.byAccessHash(h2); s == nil || s.ID != "two" {
		t.Fatal("removing the first session lost the second")
	}
}
