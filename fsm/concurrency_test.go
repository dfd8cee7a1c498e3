package fsm

import (
	"bytes"
	"context"
	"fmt"
	"reflect"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/sessiond/sessiond/events"
)

// TestSnapshot_PersistWhileApplyingIsPointInTime streams a snapshot while
// applies (refreshes, revocations, creates, garbage collection, even a
// Restore) and reads go on, and checks that what was streamed is exactly
// the state at the moment of Snapshot(). Run it with -race.
func TestSnapshot_PersistWhileApplyingIsPointInTime(t *testing.T) {
	n := 8000 // enough for several 256 KiB chunks
	users := 100
	h := newHarness(t)
	var logs []*raft.Log
	for i := range n {
		id := events.SessionID(fmt.Sprintf("s%05d", i))
		h.index++
		ev := created(id, events.UserID(fmt.Sprintf("u%03d", i%users)))
		if i%5 == 0 {
			ev.Scopes = []string{"read"}
			ev.Attributes = []events.Attribute{{Key: "k", Value: string(id)}}
		}
		logs = append(logs, commandLog(t, h.index, h.nextEnv(t0, ev)))
	}
	h.f.ApplyBatch(logs)
	for i := 0; i < n; i += 7 {
		h.mustApply(t0+minute, refreshed(events.SessionID(fmt.Sprintf("s%05d", i)), 1))
	}
	for i := 0; i < n; i += 11 {
		h.mustApply(t0+minute, revokeEv(events.SessionID(fmt.Sprintf("s%05d", i)), events.RevokeAccessToken))
	}

	// The state at the moment of the snapshot, and its expected bytes.
	snap, err := h.f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	wantSessions := snapshotSessions(t, h.f)
	want := snapshotBytes(t, h.f)
	if len(wantSessions) != n {
		t.Fatalf("%d sessions before the snapshot, want %d", len(wantSessions), n)
	}

	// The changes that will race with the streaming, pre-encoded so the
	// applier is fast: refresh, revoke, force logouts, new sessions, then
	// collect every original session, then replace the state by a restore.
	var changes []*raft.Log
	add := func(at int64, ev events.Event) {
		h.index++
		changes = append(changes, commandLog(t, h.index, h.nextEnv(at, ev)))
	}
	for i := 1; i < n; i += 7 {
		add(t0+2*minute, refreshed(events.SessionID(fmt.Sprintf("s%05d", i)), 1))
	}
	for i := 2; i < n; i += 9 {
		add(t0+2*minute, revokeEv(events.SessionID(fmt.Sprintf("s%05d", i)), events.RevokeWholeSession))
	}
	for u := 0; u < users; u += 3 {
		add(t0+3*minute, &events.UserForceLoggedOut{UserID: events.UserID(fmt.Sprintf("u%03d", u)), Reason: events.ReasonAdmin})
	}
	for i := range n / 4 {
		add(t0+4*minute, created(events.SessionID(fmt.Sprintf("new%05d", i)), "u000"))
	}
	gcAt := t0 + day
	add(gcAt, &events.SessionsExpired{Until: gcAt})
	empty := snapshotBytes(t, New(Config{}))

	var (
		applied  atomic.Int64
		done     = make(chan struct{})
		wg       sync.WaitGroup
		readErrs = make(chan string, 16)
	)
	// The applier: the role of Raft's apply goroutine.
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; i < len(changes); i += 16 {
			h.f.ApplyBatch(changes[i:min(i+16, len(changes))])
			applied.Add(int64(min(16, len(changes)-i)))
		}
		if err := h.f.Restore(&closeTracker{Reader: bytes.NewReader(empty)}); err != nil {
			readErrs <- "restore: " + err.Error()
		}
		applied.Add(1)
	}()
	// Readers.
	for r := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-done:
					return
				default:
				}
				id := events.SessionID(fmt.Sprintf("s%05d", (i*7919+r)%n))
				if s, st := h.f.ValidateAccess(ah(id, 0), t0+5*minute); st != StatusUnknown && s.ID() != id {
					readErrs <- fmt.Sprintf("ValidateAccess(%s) found %s", id, s.ID())
					return
				}
				h.f.LookupToken(rh(id, 0), t0+5*minute)
				if s, ok := h.f.Session(id); ok {
					_ = s.Scopes()
					_ = s.Attributes()
				}
				h.f.UserSessions(events.UserID(fmt.Sprintf("u%03d", i%users)), t0+5*minute)
				h.f.Stats()
				h.f.NextExpiry()
				ctx, cancel := context.WithTimeout(context.Background(), time.Microsecond)
				_ = h.f.WaitForIndex(ctx, h.f.AppliedIndex()+1)
				cancel()
			}
		}()
	}

	// Stream the snapshot taken before all that. After each chunk, wait
	// for the applier to make progress, so the streaming certainly
	// overlaps with the changes.
	sink := &memSink{}
	writes := 0
	sink.onWrite = func() {
		writes++
		// After four chunks every change, the restore included, has been
		// applied while the rest of the snapshot is still to be written.
		target := min(applied.Load()+int64(len(changes)/4), int64(len(changes)+1))
		for applied.Load() < target {
			time.Sleep(100 * time.Microsecond)
		}
	}
	if err := snap.Persist(sink); err != nil {
		t.Fatal(err)
	}
	snap.Release()
	for applied.Load() < int64(len(changes)+1) {
		time.Sleep(time.Millisecond)
	}
	close(done)
	wg.Wait()
	close(readErrs)
	for e := range readErrs {
		t.Error(e)
	}
	t.Logf("snapshot of %d sessions, %d bytes in %d writes, %d changes and a restore applied meanwhile", n, sink.Len(), writes, len(changes))
	if writes < 5 {
		t.Errorf("the snapshot was written in %d chunk(s); the test needs more to interleave", writes)
	}
	if got := h.f.Stats(); got != (Stats{}) {
		t.Errorf("after the final restore the FSM holds %+v", got)
	}

	if !bytes.Equal(sink.Bytes(), want) {
		t.Fatal("the streamed snapshot differs from the state at the moment of Snapshot()")
	}
	r := restored(t, sink.Bytes())
	if got := snapshotSessions(t, r); !reflect.DeepEqual(got, wantSessions) {
		t.Fatalf("the streamed snapshot lists %d sessions, want the %d that existed at Snapshot()", len(got), len(wantSessions))
	}
	checkInvariants(t, r)
}
