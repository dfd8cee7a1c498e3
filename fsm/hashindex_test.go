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

	sessions := map[events.SessionID]events.TokenHash{"s-a": a, "s-b": b}
	matches := func(h events.TokenHash) func(events.SessionID) bool {
		return func(id events.SessionID) bool { return sessions[id] == h }
	}
	x := newHashIndex(0)
	x.add(a, "s-a")
	x.add(b, "s-b")
	for h, want := range map[events.TokenHash]events.SessionID{a: "s-a", b: "s-b"} {
		if got, ok := x.get(h, matches(h)); !ok || got != want {
			t.Fatalf("get(%v) = %q, %v; want %q", h, got, ok, want)
		}
	}
	if _, ok := x.get(c, matches(c)); ok {
		t.Fatal("an unstored hash with a shared prefix was found")
	}
	// A removal naming the wrong session changes nothing.
	x.remove(a, "s-b")
	if _, ok := x.get(a, matches(a)); !ok {
		t.Fatal("removal for the wrong session dropped an entry")
	}
	x.remove(a, "s-a")
	if _, ok := x.get(a, matches(a)); ok {
		t.Fatal("removed hash still found")
	}
	if got, ok := x.get(b, matches(b)); !ok || got != "s-b" {
		t.Fatal("removing one colliding hash lost the other")
	}
	x.remove(b, "s-b")
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
