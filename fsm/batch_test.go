package fsm

import (
	"bytes"
	"errors"
	"testing"

	"github.com/hashicorp/raft"

	"github.com/sessiond/sessiond/events"
)

// batchLog packs envelopes into one batch entry at index.
func batchLog(tb testing.TB, index uint64, envs ...events.Envelope) *raft.Log {
	tb.Helper()
	var data [][]byte
	for _, env := range envs {
		d, err := events.Encode(env)
		if err != nil {
			tb.Fatal(err)
		}
		data = append(data, d)
	}
	entry, err := events.EncodeBatch(data)
	if err != nil {
		tb.Fatal(err)
	}
	return &raft.Log{Type: raft.LogCommand, Index: index, Term: 1, Data: entry}
}

// A batch entry's events apply in order at the entry's index, each with
// its own outcome, as if they were consecutive entries: a later event sees
// what an earlier one did, and a refused event changes nothing.
func TestApplyBatch_BatchEntryAppliesItsEventsInOrder(t *testing.T) {
	envs := []events.Envelope{
		{Time: t0, RequestID: "c1", Event: created("s1", "alice")},
		{Time: t0 + 1, RequestID: "c2", Event: created("s2", "bob")},
		{Time: t0 + 2, RequestID: "r1", Event: revokeEv("s1", events.RevokeWholeSession)},
		{Time: t0 + 3, RequestID: "r2", Event: revokeEv("nope", events.RevokeWholeSession)},
		{Time: t0 + 4, RequestID: "c1", Event: created("s1", "alice")}, // a retry of c1
	}
	var seen []AppliedEvent
	f := New(Config{OnApply: func(applied []AppliedEvent) { seen = append(seen, applied...) }})
	logs := []*raft.Log{
		commandLog(t, 4, events.Envelope{Time: t0 - 1, RequestID: "c0", Event: created("s0", "carol")}),
		batchLog(t, 5, envs...),
	}
	out := f.ApplyBatch(logs)
	if _, ok := out[0].(*Result); !ok {
		t.Fatalf("a single entry's response is %T", out[0])
	}
	results, ok := out[1].(BatchResult)
	if !ok || len(results) != len(envs) {
		t.Fatalf("batch response %T %v, want %d results", out[1], out[1], len(envs))
	}
	for i, res := range results {
		if res.Index != 5 {
			t.Errorf("result %d at index %d, want 5", i, res.Index)
		}
	}
	if results[0].Err != nil || results[0].Session == nil || results[1].Err != nil {
		t.Errorf("creates: %+v %+v", results[0], results[1])
	}
	if results[2].Err != nil || results[2].Count != 1 {
		t.Errorf("revoke of s1 created earlier in the batch: %+v", results[2])
	}
	if !errors.Is(results[3].Err, ErrNotFound) {
		t.Errorf("revoke of an unknown session: %v, want ErrNotFound", results[3].Err)
	}
	if !results[4].Duplicate {
		t.Errorf("a request id seen earlier in the batch is not a duplicate: %+v", results[4])
	}
	if s, ok := f.Session("s1"); !ok || s.RevokedAt() == 0 {
		t.Errorf("s1 after the batch: %+v %v, want revoked", s, ok)
	}
	if s, ok := f.Session("s2"); !ok || s.RevokedAt() != 0 {
		t.Errorf("s2 after the batch: %+v %v, want live", s, ok)
	}
	if f.AppliedIndex() != 5 {
		t.Errorf("applied index %d, want 5", f.AppliedIndex())
	}
	if len(seen) != 1+len(envs) || seen[0].Index != 4 {
		t.Fatalf("OnApply saw %d events, want %d", len(seen), 1+len(envs))
	}
	for i, a := range seen[1:] {
		if a.Index != 5 || a.Envelope.RequestID != envs[i].RequestID || a.Result != results[i] {
			t.Errorf("OnApply event %d: index %d request %q", i, a.Index, a.Envelope.RequestID)
		}
	}

	// Replayed on another node, the same entries give the same state.
	g := New(Config{})
	g.ApplyBatch([]*raft.Log{logs[0]})
	g.ApplyBatch([]*raft.Log{batchLog(t, 5, envs...)})
	if !bytes.Equal(snapshotBytes(t, f), snapshotBytes(t, g)) {
		t.Error("two state machines fed the same batch entries differ")
	}
}
