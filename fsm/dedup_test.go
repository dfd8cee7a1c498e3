package fsm

import (
	"errors"
	"fmt"
	"reflect"
	"testing"

	"github.com/hashicorp/raft"

	"github.com/sessiond/sessiond/events"
)

func TestDedup_RetriedEnvelopeAppliesOnce(t *testing.T) {
	cases := []struct {
		name    string
		prepare func(h *harness)
		ev      events.Event
		wantErr error
		count   int
	}{
		{"create", func(*harness) {}, created("s1", "alice"), nil, 0},
		// Without dedup the retried refresh would look like reuse and revoke
		// the session.
		{"refresh", func(h *harness) { h.create(t0, "s1", "alice") }, refreshed("s1", 1), nil, 0},
		{"revoke", func(h *harness) { h.create(t0, "s1", "alice") }, revokeEv("s1", events.RevokeWholeSession), nil, 1},
		{"force logout", func(h *harness) { h.create(t0, "s1", "alice"); h.create(t0, "s2", "alice") },
			&events.UserForceLoggedOut{UserID: "alice", Reason: events.ReasonAdmin}, nil, 2},
		{"failed revoke", func(*harness) {}, revokeEv("nope", events.RevokeWholeSession), ErrNotFound, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			tc.prepare(h)
			env := events.Envelope{Time: t0 + minute, RequestID: "retried-request", Event: tc.ev}
			first := h.applyEnv(env)
			if !errors.Is(first.Err, tc.wantErr) || first.Count != tc.count || first.Duplicate {
				t.Fatalf("first apply: %+v", first)
			}
			state := snapshotSessions(t, h.f)
			env.Time += minute // the retry is stamped later by the new leader
			second := h.applyEnv(env)
			if !second.Duplicate || second.Index != first.Index || second.Index == h.index {
				t.Errorf("retry: duplicate=%v index=%d, want duplicate of index %d", second.Duplicate, second.Index, first.Index)
			}
			if !errors.Is(second.Err, tc.wantErr) || second.Count != first.Count {
				t.Errorf("retry reports err %v count %d, want the first outcome %v %d", second.Err, second.Count, first.Err, first.Count)
			}
			if (first.Session == nil) != (second.Session == nil) {
				t.Errorf("retry session %v, first %v", second.Session, first.Session)
			} else if first.Session != nil && !reflect.DeepEqual(*first.Session, *second.Session) {
				t.Errorf("retry session %+v, want %+v", *second.Session, *first.Session)
			}
			if after := snapshotSessions(t, h.f); !reflect.DeepEqual(state, after) {
				t.Error("the retry changed the sessions")
			}
		})
	}
}

func TestDedup_WithoutRequestIDEveryEntryApplies(t *testing.T) {
	h := newHarness(t)
	h.create(t0, "s1", "alice")
	env := events.Envelope{Time: t0, Event: refreshed("s1", 1)}
	if res := h.applyEnv(env); res.Err != nil || res.Duplicate {
		t.Fatalf("first: %+v", res)
	}
	if res := h.applyEnv(env); !errors.Is(res.Err, ErrRefreshReuse) || res.Duplicate {
		t.Errorf("second without request id: err %v duplicate %v, want reuse detected", res.Err, res.Duplicate)
	}
}

func TestDedup_TableIsBounded(t *testing.T) {
	h := newHarness(t)
	const batch = 1024
	env := func(i int) events.Envelope {
		return events.Envelope{Time: t0, RequestID: fmt.Sprintf("r%05d", i), Event: &events.SessionsExpired{Until: t0}}
	}
	var logs []*raft.Log
	flush := func() {
		h.f.ApplyBatch(logs)
		logs = logs[:0]
	}
	for i := 0; i <= dedupCapacity; i++ {
		h.index++
		logs = append(logs, commandLog(t, h.index, env(i)))
		if len(logs) == batch {
			flush()
		}
	}
	flush()
	if n := len(h.f.st.dedup.byID); n != dedupCapacity {
		t.Fatalf("table holds %d ids, want %d", n, dedupCapacity)
	}
	// r00000 has been pushed out by dedupCapacity newer ids: it applies again.
	if res := h.applyEnv(env(0)); res.Duplicate {
		t.Errorf("the oldest id is still remembered after %d newer ones", dedupCapacity)
	}
	// r00001 is now the oldest remembered... and re-applying r00000 pushed it
	// out. r00002 is still there.
	if res := h.applyEnv(env(1)); res.Duplicate {
		t.Error("r00001 should have been pushed out by the re-applied r00000")
	}
	if res := h.applyEnv(env(3)); !res.Duplicate || res.Index != 4 {
		t.Errorf("r00003: duplicate %v index %d, want duplicate of index 4", res.Duplicate, res.Index)
	}
	if res := h.applyEnv(env(dedupCapacity)); !res.Duplicate {
		t.Error("the newest id is not remembered")
	}
}

func TestDedup_SurvivesSnapshotRestore(t *testing.T) {
	h := newHarness(t)
	h.create(t0, "s1", "alice")
	env := events.Envelope{Time: t0 + minute, RequestID: "refresh-1", Event: refreshed("s1", 1)}
	first := h.applyEnv(env)
	if first.Err != nil {
		t.Fatal(first.Err)
	}
	data := snapshotBytes(t, h.f)

	f2 := restored(t, data)
	out := f2.ApplyBatch([]*raft.Log{commandLog(t, h.index+1, env)})
	res := out[0].(*Result)
	if !res.Duplicate || res.Index != first.Index || res.Err != nil {
		t.Errorf("retry after restore: %+v, want a duplicate of index %d", res, first.Index)
	}
	if _, st := f2.ValidateAccess(ah("s1", 1), t0+minute); st != StatusActive {
		t.Errorf("after the retried refresh the token is %s, want active", st)
	}
	// The restored table keeps its order: it evicts the same ids as the
	// original would.
	if !reflect.DeepEqual(f2.st.dedup.inOrder(), h.f.st.dedup.inOrder()) {
		t.Error("restored request-id table differs from the original")
	}
}

func TestErrorName_RoundTrips(t *testing.T) {
	for _, err := range []error{nil, ErrNotFound, ErrUnauthenticated, ErrRefreshReuse, ErrInvalid, ErrConflict} {
		name := ErrorName(err)
		if (err == nil) != (name == "") {
			t.Errorf("ErrorName(%v) = %q", err, name)
		}
		if back := ErrorFromName(name); back != err {
			t.Errorf("ErrorFromName(ErrorName(%v)) = %v", err, back)
		}
		// The names travel inside the request-id table's codes too: a
		// duplicate's error is the same sentinel.
		if back := codeOf(err).err(); back != err {
			t.Errorf("code round trip of %v gives %v", err, back)
		}
	}
	if got := ErrorName(fmt.Errorf("wrapped: %w", ErrRefreshReuse)); got != "refresh_token_reuse" {
		t.Errorf("ErrorName of a wrapped error = %q", got)
	}
	if got := ErrorFromName("no such name"); got != ErrInvalid {
		t.Errorf("ErrorFromName of an unknown name = %v, want ErrInvalid", got)
	}
}
