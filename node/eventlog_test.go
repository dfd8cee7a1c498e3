package node

import (
	"errors"
	"strings"
	"testing"
)

func TestEventTail_KeepsTheLastAndSaysWhenOlderAreGone(t *testing.T) {
	tail := newEventTail(4, 0)
	for i := uint64(1); i <= 6; i++ {
		tail.add([]EventRecord{{Index: i * 10, Type: "SessionCreated"}})
	}
	// Held: 30, 40, 50, 60. After 20 (or later) is complete; after 10 is not.
	if _, _, err := tail.after(10, 100); !errors.Is(err, ErrEventsGone) {
		t.Errorf("after 10 with 20 dropped: %v, want ErrEventsGone", err)
	}
	recs, _, err := tail.after(20, 100)
	if err != nil || len(recs) != 4 || recs[0].Index != 30 || recs[3].Index != 60 {
		t.Fatalf("after 20: %v %v", recs, err)
	}
	recs, _, _ = tail.after(45, 1)
	if len(recs) != 1 || recs[0].Index != 50 {
		t.Errorf("after 45, max 1: %v", recs)
	}
	recs, changed, _ := tail.after(60, 100)
	if len(recs) != 0 {
		t.Errorf("after the last: %v", recs)
	}
	tail.add([]EventRecord{{Index: 70}})
	select {
	case <-changed:
	default:
		t.Error("adding an event did not wake the waiting reader")
	}
	// A snapshot install: nothing up to its index is held any more.
	tail.reset(100)
	if _, _, err := tail.after(70, 100); !errors.Is(err, ErrEventsGone) {
		t.Errorf("after 70 once reset to 100: %v, want ErrEventsGone", err)
	}
	if recs, _, err := tail.after(100, 100); err != nil || len(recs) != 0 {
		t.Errorf("after 100 once reset: %v %v", recs, err)
	}
}

// A batch entry's events share its index: a reader resumes after the last
// index it got, so it must get every event of an index in one read, and an
// index partly dropped from the ring is gone as a whole.
func TestEventTail_NeverSplitsTheEventsOfOneIndex(t *testing.T) {
	tail := newEventTail(6, 0)
	tail.add([]EventRecord{{Index: 1, SessionID: "a"}})
	tail.add([]EventRecord{{Index: 2, SessionID: "b"}, {Index: 2, SessionID: "c"}, {Index: 2, SessionID: "d"}})
	tail.add([]EventRecord{{Index: 3, SessionID: "e"}})

	recs, _, err := tail.after(0, 2)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range recs {
		got = append(got, r.SessionID)
	}
	if strings.Join(got, ",") != "a,b,c,d" {
		t.Fatalf("after 0, max 2: got %v, want a and all of index 2", got)
	}
	if recs, _, _ := tail.after(2, 2); len(recs) != 1 || recs[0].SessionID != "e" {
		t.Fatalf("after 2: %v", recs)
	}

	// Three more push a and b out: index 2 is now held only in part.
	tail.add([]EventRecord{{Index: 4, SessionID: "f"}, {Index: 4, SessionID: "g"}, {Index: 4, SessionID: "h"}})
	if _, _, err := tail.after(1, 100); !errors.Is(err, ErrEventsGone) {
		t.Errorf("after 1 with part of index 2 dropped: %v, want ErrEventsGone", err)
	}
	recs, _, err = tail.after(2, 100)
	if err != nil || len(recs) != 4 || recs[0].SessionID != "e" {
		t.Errorf("after 2: %v %v", recs, err)
	}
}
