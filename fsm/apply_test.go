package fsm

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/hashicorp/raft"

	"github.com/sessiond/sessiond/events"
)

func TestApplyBatch_OneResponsePerLog(t *testing.T) {
	f := New(Config{})
	env := func(id events.SessionID) events.Envelope {
		return events.Envelope{Time: t0, RequestID: "r-" + string(id), Event: created(id, "alice")}
	}
	logs := []*raft.Log{
		{Type: raft.LogConfiguration, Index: 1, Data: []byte("not an event")},
		commandLog(t, 2, env("s1")),
		{Type: raft.LogNoop, Index: 3},
		{Type: raft.LogBarrier, Index: 4},
		commandLog(t, 5, env("s2")),
		{Type: raft.LogConfiguration, Index: 6},
	}
	out := f.ApplyBatch(logs)
	if len(out) != len(logs) {
		t.Fatalf("%d responses for %d logs", len(out), len(logs))
	}
	for i, l := range logs {
		if l.Type != raft.LogCommand {
			if out[i] != nil {
				t.Errorf("response %d for a %s entry is %v, want nil", i, l.Type, out[i])
			}
			continue
		}
		res, ok := out[i].(*Result)
		if !ok || res.Err != nil || res.Index != l.Index {
			t.Errorf("response %d: %#v, want a *Result of index %d", i, out[i], l.Index)
		}
	}
	if got := f.AppliedIndex(); got != 6 {
		t.Errorf("AppliedIndex = %d, want 6 (the last entry, whatever its type)", got)
	}
	if stats := f.Stats(); stats.Sessions != 2 {
		t.Errorf("Stats = %+v", stats)
	}
	if got := f.Apply(&raft.Log{Type: raft.LogNoop, Index: 7}); got != nil {
		t.Errorf("Apply of a no-op = %v, want nil", got)
	}
	if got := f.AppliedIndex(); got != 7 {
		t.Errorf("AppliedIndex after a no-op = %d, want 7", got)
	}
	if out := f.ApplyBatch(nil); len(out) != 0 {
		t.Errorf("ApplyBatch(nil) = %v", out)
	}
}

func TestApplyBatch_PanicsOnUndecodableCommand(t *testing.T) {
	good, err := events.Encode(events.Envelope{Time: t0, Event: &events.SessionsExpired{Until: t0}})
	if err != nil {
		t.Fatal(err)
	}
	cases := map[string][]byte{
		"empty":          nil,
		"garbage":        []byte("hello, raft"),
		"unknown type":   append([]byte{0xee}, good[1:]...),
		"future version": append([]byte{good[0], events.CurrentVersion + 1}, good[2:]...),
		"truncated":      good[:len(good)-1],
		"batch with an undecodable event": func() []byte {
			batch, err := events.EncodeBatch([][]byte{good, append([]byte{0xee}, good[1:]...)})
			if err != nil {
				t.Fatal(err)
			}
			return batch
		}(),
	}
	for name, data := range cases {
		t.Run(name, func(t *testing.T) {
			f := New(Config{})
			logs := []*raft.Log{
				{Type: raft.LogCommand, Index: 41, Data: good},
				{Type: raft.LogCommand, Index: 42, Data: data},
			}
			msg := func() (msg string) {
				defer func() {
					if r := recover(); r != nil {
						msg = fmt.Sprint(r)
					}
				}()
				f.ApplyBatch(logs)
				return ""
			}()
			if msg == "" {
				t.Fatal("ApplyBatch skipped an undecodable command instead of panicking")
			}
			if !strings.Contains(msg, "42") {
				t.Errorf("panic message %q does not name the entry's index", msg)
			}
			// The lock was released: reads still work after the panic.
			done := make(chan struct{})
			go func() { f.Stats(); close(done) }()
			select {
			case <-done:
			case <-time.After(5 * time.Second):
				t.Fatal("the FSM stays locked after the panic")
			}
		})
	}
}

func TestApply_OnApplySeesEveryCommandOutsideTheLock(t *testing.T) {
	var seen []AppliedEvent
	var f *FSM
	f = New(Config{OnApply: func(applied []AppliedEvent) {
		// Reading the FSM here would deadlock if the lock were held.
		f.Stats()
		seen = append(seen, applied...)
	}})
	logs := []*raft.Log{
		commandLog(t, 1, events.Envelope{Time: t0, RequestID: "a", Event: created("s1", "alice")}),
		{Type: raft.LogNoop, Index: 2},
		commandLog(t, 3, events.Envelope{Time: t0, RequestID: "b", Event: revokeEv("s1", events.RevokeWholeSession)}),
	}
	out := f.ApplyBatch(logs)
	if len(seen) != 2 || seen[0].Index != 1 || seen[1].Index != 3 {
		t.Fatalf("OnApply saw %+v", seen)
	}
	if seen[0].Result != out[0] || seen[1].Result != out[2] || seen[1].Envelope.RequestID != "b" {
		t.Error("OnApply's events do not carry the entries' results and envelopes")
	}
	if seen[1].Envelope.Type() != events.TypeSessionRevoked {
		t.Errorf("second event is a %s", seen[1].Envelope.Type())
	}
}

func TestApplyBatch_EqualsApplyOneByOne(t *testing.T) {
	logs := randomLogs(t, 7, 1500)
	one := New(Config{})
	batched := New(Config{})
	var want []any
	for _, l := range logs {
		want = append(want, one.Apply(l))
	}
	var got []any
	for i, size := 0, 1; i < len(logs); i, size = i+size, size%97+1 {
		end := min(i+size, len(logs))
		got = append(got, batched.ApplyBatch(logs[i:end])...)
	}
	if len(got) != len(want) {
		t.Fatalf("%d results batched, %d one by one", len(got), len(want))
	}
	for i := range want {
		if !sameResult(want[i].(*Result), got[i].(*Result)) {
			t.Fatalf("result %d differs:\none by one %+v\nbatched    %+v", i, want[i], got[i])
		}
	}
	if a, b := snapshotBytes(t, one), snapshotBytes(t, batched); string(a) != string(b) {
		t.Error("snapshots differ between batched and one-by-one application")
	}
}

// Waiters are woken by the entry they wait for, not before; synctest.Wait
// lets every waiter reach its wait (or return) before the test looks.
func TestWaitForIndex_ReturnsOnceApplied(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t)
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		errs := make(chan error, 3)
		for _, idx := range []uint64{1, 3, 3} {
			go func() { errs <- h.f.WaitForIndex(ctx, idx) }()
		}
		synctest.Wait()
		if len(errs) != 0 {
			t.Fatalf("%d waits returned before anything was applied", len(errs))
		}
		for i, returned := range []int{1, 1, 3} { // after applying index i+1
			h.create(t0, events.SessionID(fmt.Sprint("s", i+1)), "alice")
			synctest.Wait()
			if len(errs) != returned {
				t.Fatalf("index %d applied: %d waits returned, want %d", i+1, len(errs), returned)
			}
		}
		for range 3 {
			if err := <-errs; err != nil {
				t.Errorf("WaitForIndex: %v", err)
			}
		}
		// Already applied: returns at once.
		start := time.Now()
		if err := h.f.WaitForIndex(ctx, 2); err != nil {
			t.Errorf("WaitForIndex of an applied index: %v", err)
		}
		if d := time.Since(start); d != 0 {
			t.Errorf("WaitForIndex of an applied index took %v", d)
		}
	})
}

func TestWaitForIndex_TimesOut(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t)
		h.create(t0, "s1", "alice")
		const limit = 20 * time.Millisecond
		ctx, cancel := context.WithTimeout(t.Context(), limit)
		defer cancel()
		start := time.Now()
		err := h.f.WaitForIndex(ctx, 2)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("WaitForIndex past the deadline: %v, want context.DeadlineExceeded", err)
		}
		if d := time.Since(start); d != limit {
			t.Errorf("WaitForIndex returned after %v, want at its deadline, %v", d, limit)
		}
		cctx, ccancel := context.WithCancel(t.Context())
		ccancel()
		start = time.Now()
		if err := h.f.WaitForIndex(cctx, 99); !errors.Is(err, context.Canceled) {
			t.Errorf("WaitForIndex with a cancelled context: %v", err)
		}
		if d := time.Since(start); d != 0 {
			t.Errorf("WaitForIndex with a cancelled context took %v", d)
		}
	})
}

func TestWaitForIndex_WokenByRestore(t *testing.T) {
	src := newHarness(t)
	for i := range 5 {
		src.create(t0, events.SessionID(fmt.Sprint("s", i)), "alice")
	}
	data := snapshotBytes(t, src.f)
	f := New(Config{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	errc := make(chan error, 1)
	go func() { errc <- f.WaitForIndex(ctx, 5) }()
	if err := f.Restore(&closeTracker{Reader: strings.NewReader(string(data))}); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Errorf("WaitForIndex across a restore: %v", err)
	}
	if got := f.AppliedIndex(); got != 5 {
		t.Errorf("AppliedIndex after restore = %d", got)
	}
}
