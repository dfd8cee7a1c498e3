package node

import (
	"errors"
	"testing"
)

func TestEventTail_KeepsTheLastAndSaysWhenOlderAreGone(t *testing.T) {
	tail := newEventTail(4, 0)
	for i := uint64(1); i <= 6; i++ {
		tail.add(EventRecord{Index: i * 10, Type: "SessionCreated"})
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
	tail.add(EventRecord{Index: 70})
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
